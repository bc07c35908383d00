#pragma once
// The per-element updates of the fused optimizer kernels (optim.cu), written once for
// nvcc and g++ like functors.cuh: the CPU loops' formulas of src/optim/optimizers.cpp, operation
// for operation, so tests/unit/test_cuda_optim_rules.cpp can check them bit for bit against the
// CPU optimizers on the host without a GPU. Every product that feeds an addition goes through
// mul_rn: nvcc would otherwise contract it into an FMA, which the CPU build (no -mfma) never
// does. sqrt and division are IEEE (correctly rounded) on both sides: nvcc's defaults
// -prec-sqrt=true and -prec-div=true, no fast math. Coefficients are cast from the host's
// doubles once per thread, as the CPU casts them once per parameter.
#include "backends/cuda/functors.cuh"
#include "backends/cuda/kernels.h"


namespace tessera::cuda::fn {
inline namespace TS_FN_NS {

TS_HD float f_sqrt(float x) { return sqrtf(x); }
TS_HD double f_sqrt(double x) { return sqrt(x); }

/// SGD: weight decay, then the momentum buffer (the first one is the gradient itself), then
/// p += -lr * d.
template <class T>
struct SgdRule {
  T wd, mom, keep, neg_lr;
  bool decay, first, nesterov, maximize;

  TS_HD explicit SgdRule(const k::SgdArgs& a)
      : wd(T(a.weight_decay)),
        mom(T(a.momentum)),
        keep(T(1 - a.dampening)),
        neg_lr(T(-a.lr)),
        decay(a.weight_decay != 0),
        first(a.first),
        nesterov(a.nesterov),
        maximize(a.maximize) {}

  /// Element i; buf is null without momentum.
  TS_HD void operator()(int64_t i, T* p, const T* g, T* buf) const {
    T d = maximize ? -g[i] : g[i];
    if (decay) d = d + mul_rn(wd, p[i]);
    if (buf) {
      const T b = first ? d : mul_rn(buf[i], mom) + mul_rn(keep, d);
      buf[i] = b;
      d = nesterov ? d + mul_rn(mom, b) : b;
    }
    p[i] = p[i] + mul_rn(neg_lr, d);
  }
};

/// Adam / AdamW: decoupled (AdamW) or coupled weight decay, m a lerp towards the gradient,
/// v += (1 - beta2) g^2, amsgrad's running maximum (NaN wins, torch.maximum), then
/// p += -step_size * m / (sqrt(vhat) / sqrt(1 - beta2^t) + eps).
template <class T>
struct AdamRule {
  T wd, decay, w1, b2, c2, eps, neg_step, bc2s;
  bool coupled_wd, decoupled_wd, maximize;

  TS_HD explicit AdamRule(const k::AdamArgs& a)
      : wd(T(a.weight_decay)),
        decay(T(1 - a.lr * a.weight_decay)),
        w1(T(1 - a.beta1)),
        b2(T(a.beta2)),
        c2(T(1 - a.beta2)),
        eps(T(a.eps)),
        neg_step(T(-a.step_size)),
        bc2s(T(a.bc2_sqrt)),
        coupled_wd(!a.decoupled && a.weight_decay != 0),
        decoupled_wd(a.decoupled && a.weight_decay != 0),
        maximize(a.maximize) {}

  /// Element i; vmax is null without amsgrad.
  TS_HD void operator()(int64_t i, T* p, const T* g, T* m, T* v, T* vmax) const {
    T d = maximize ? -g[i] : g[i];
    T x = p[i];
    if (decoupled_wd) x = x * decay;
    if (coupled_wd) d = d + mul_rn(wd, x);
    const T mi = lerp_of(m[i], d, w1);
    const T vi = mul_rn(v[i], b2) + mul_rn(mul_rn(c2, d), d);
    m[i] = mi;
    v[i] = vi;
    T vhat = vi;
    if (vmax) {
      const T old = vmax[i];
      vhat = (old != old || old > vi) ? old : vi;
      vmax[i] = vhat;
    }
    const T denom = f_sqrt(vhat) / bc2s + eps;
    p[i] = x + mul_rn(neg_step, mi) / denom;
  }
};

/// RMSprop: square_avg = alpha * square_avg + (1 - alpha) * g^2, optionally centered by the
/// running mean of g (grad_avg), optionally with a momentum buffer.
template <class T>
struct RmspropRule {
  T wd, alpha, c, eps, mom, neg_lr;
  bool decay, centered, momentum, maximize;

  TS_HD explicit RmspropRule(const k::RmspropArgs& a)
      : wd(T(a.weight_decay)),
        alpha(T(a.alpha)),
        c(T(1 - a.alpha)),
        eps(T(a.eps)),
        mom(T(a.momentum)),
        neg_lr(T(-a.lr)),
        decay(a.weight_decay != 0),
        centered(a.centered),
        momentum(a.momentum > 0),
        maximize(a.maximize) {}

  /// Element i: ga is read and written only when centered, buf only with momentum.
  TS_HD void operator()(int64_t i, T* p, const T* g, T* sq, T* ga, T* buf) const {
    T d = maximize ? -g[i] : g[i];
    if (decay) d = d + mul_rn(wd, p[i]);
    const T s = mul_rn(sq[i], alpha) + mul_rn(mul_rn(c, d), d);
    sq[i] = s;
    T avg;
    if (centered) {
      const T m = lerp_of(ga[i], d, c);  // detail::lerp of src/optim/fused.h
      ga[i] = m;
      avg = f_sqrt(s + mul_rn(mul_rn(T(-1), m), m));
    } else {
      avg = f_sqrt(s);
    }
    avg = avg + eps;
    if (momentum) {
      const T b = mul_rn(buf[i], mom) + d / avg;
      buf[i] = b;
      p[i] = p[i] + mul_rn(neg_lr, b);
    } else {
      p[i] = p[i] + mul_rn(neg_lr, d) / avg;
    }
  }
};

/// Adagrad: sum += g^2, p -= clr * g / (sqrt(sum) + eps).
template <class T>
struct AdagradRule {
  T wd, eps, neg_clr;
  bool decay, maximize;

  TS_HD explicit AdagradRule(const k::AdagradArgs& a)
      : wd(T(a.weight_decay)),
        eps(T(a.eps)),
        neg_clr(T(-a.clr)),
        decay(a.weight_decay != 0),
        maximize(a.maximize) {}

  TS_HD void operator()(int64_t i, T* p, const T* g, T* sum) const {
    T d = maximize ? -g[i] : g[i];
    if (decay) d = d + mul_rn(wd, p[i]);
    const T s = sum[i] + mul_rn(mul_rn(T(1), d), d);
    sum[i] = s;
    const T denom = f_sqrt(s) + eps;
    p[i] = p[i] + mul_rn(neg_clr, d) / denom;
  }
};

}  // namespace TS_FN_NS
}  // namespace tessera::cuda::fn

