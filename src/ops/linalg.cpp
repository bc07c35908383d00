// Products. matmul is the one primitive (numpy semantics, batch broadcasting); dot, outer and
// einsum are composites of views and matmul, so they inherit every funnel layer for free.
// Kernels: backends/cpu/linalg.cpp (BLAS for f32/f64/c64, a blocked builtin for the rest).
#include "tessera/ops/linalg.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/primitive.h"
#include "tessera/runtime/autocast.h"
#include "tessera/runtime/dispatch.h"

namespace tessera {
namespace {

// Broadcast of the batch dims (all but the last two) of two shapes; nullopt when they clash.
std::optional<Shape> broadcast_batch(const Shape& a, const Shape& b) {
  const size_t na = a.size() - 2, nb = b.size() - 2, n = std::max(na, nb);
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t x = i < n - na ? 1 : a[i - (n - na)];
    const int64_t y = i < n - nb ? 1 : b[i - (n - nb)];
    if (x != y && x != 1 && y != 1) return std::nullopt;
    out[i] = x == 1 ? y : x;
  }
  return out;
}

void check_not_bool(std::string_view op, const Tensor& a, const Tensor& b) {
  if (a.dtype() == kBool || b.dtype() == kBool)
    fail<DTypeError>(op, "bool operands are not supported ({} and {}); cast to an integer dtype",
                     dtype_name(a.dtype()), dtype_name(b.dtype()));
}

// The primitive sees operands of >= 2 dims (the public op lifts 1-d ones) and one dtype.
std::vector<TensorMeta> matmul_meta(Inputs in, const Attrs&) {
  const Tensor &a = in[0], &b = in[1];
  if (a.dim() < 2 || b.dim() < 2)
    fail<ShapeError>("matmul", "the primitive needs operands of at least 2 dims: {} @ {}",
                     shape_str(a.shape()), shape_str(b.shape()));
  if (a.dtype() != b.dtype())
    fail<DTypeError>("matmul", "operands have different dtypes: {} @ {}", dtype_name(a.dtype()),
                     dtype_name(b.dtype()));
  check_not_bool("matmul", a, b);
  if (a.size(-1) != b.size(-2))
    fail<ShapeError>("matmul", "inner dimensions differ: {} @ {}", shape_str(a.shape()),
                     shape_str(b.shape()));
  std::optional<Shape> out = broadcast_batch(a.shape(), b.shape());
  if (!out)
    fail<ShapeError>("matmul", "batch dimensions do not broadcast: {} @ {}", shape_str(a.shape()),
                     shape_str(b.shape()));
  out->push_back(a.size(-2));
  out->push_back(b.size(-1));
  checked_numel(*out, "matmul");
  return {{std::move(*out), a.dtype()}};
}

// 2*m*n*k per matrix (a multiply and an add per term), times the batch.
Cost matmul_cost(Inputs in, std::span<const Tensor> out, const Attrs&) {
  const double k = static_cast<double>(in[0].size(-1));
  return {2.0 * k * static_cast<double>(out[0].numel()),
          static_cast<double>(in[0].nbytes() + in[1].nbytes() + out[0].nbytes())};
}

}  // namespace

void register_linalg_prims(Registry& r) {
  r.define({.name = "matmul", .kind = PrimKind::Matmul, .infer = matmul_meta, .cost = matmul_cost});
}

namespace {

// (..., m, 1) @ (..., 1, n). With no sum, the broadcasting multiply gives the same values as a
// GEMM and its streaming stores write the (often large) result about twice as fast
// (per-example weight gradients under vmap are such products). The multiply runs with the
// longer of m and n innermost, since its loop is fast only along long rows; the result is
// then a transposed view.
Tensor outer_product(const Tensor& lhs, const Tensor& rhs) {
  if (lhs.size(-2) > rhs.size(-1)) return mul(rhs.mT(), lhs.mT()).mT();
  return mul(lhs, rhs);
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  static const Primitive& p = prim("matmul");
  if (a.dim() == 0 || b.dim() == 0)
    fail<ShapeError>("matmul", "both operands need at least 1 dimension: {} @ {}",
                     shape_str(a.shape()), shape_str(b.shape()));
  const int64_t kb = b.dim() == 1 ? b.size(0) : b.size(-2);
  if (a.size(-1) != kb)
    fail<ShapeError>("matmul", "inner dimensions differ: {} @ {}", shape_str(a.shape()),
                     shape_str(b.shape()));
  check_not_bool("matmul", a, b);
  // Under autocast, mixed dtypes go on as they are: the funnel lowers both with one cast each.
  const bool unified = a.dtype() == b.dtype() || amp::unifies(p, {a, b});
  const DType dt = promote_types(a.dtype(), b.dtype());
  // numpy: a 1-d operand becomes a row (left) or column (right) and that dim is dropped after.
  Tensor lhs = a.dim() == 1 ? a.unsqueeze(0) : a;
  Tensor rhs = b.dim() == 1 ? b.unsqueeze(1) : b;
  if (!unified) {
    lhs = lhs.to(dt);
    rhs = rhs.to(dt);
  }
  Tensor out = kb == 1 && (is_floating(dt) || is_complex(dt)) ? outer_product(lhs, rhs)
                                                              : dispatch1(p, {lhs, rhs});
  if (a.dim() == 1) out = out.squeeze(-2);
  if (b.dim() == 1) out = out.squeeze(-1);
  return out;
}

Tensor dot(const Tensor& a, const Tensor& b) {
  if (a.dim() != 1 || b.dim() != 1)
    fail<ShapeError>("dot", "expects two 1-d tensors, got {} and {}", shape_str(a.shape()),
                     shape_str(b.shape()));
  if (a.size(0) != b.size(0))
    fail<ShapeError>("dot", "sizes differ: {} and {}", shape_str(a.shape()), shape_str(b.shape()));
  check_not_bool("dot", a, b);
  return matmul(a, b);
}

Tensor outer(const Tensor& a, const Tensor& b) {
  if (a.dim() != 1 || b.dim() != 1)
    fail<ShapeError>("outer", "expects two 1-d tensors, got {} and {}", shape_str(a.shape()),
                     shape_str(b.shape()));
  check_not_bool("outer", a, b);
  return matmul(a.unsqueeze(1), b.unsqueeze(0));  // (n, 1) @ (1, m): a GEMM with k = 1
}

// ---- einsum ------------------------------------------------------------------------------
// Labels are small ints: 0-25 'A'-'Z', 26-51 'a'-'z' (so implicit outputs sort like numpy),
// 52+ the dims covered by "...", right-aligned across operands.
namespace {

constexpr int kEllipsisLabel = -1;  // placeholder for "..." before expansion
constexpr int kFirstEllipsisDim = 52;

int label_of(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return 26 + (c - 'a');
  return -2;
}
char label_char(int l) { return static_cast<char>(l < 26 ? 'A' + l : 'a' + (l - 26)); }

std::vector<int> parse_term(std::string_view s, const std::string& eq) {
  std::vector<int> labels;
  bool ellipsis = false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '.') {
      if (s.substr(i, 3) != "..." || ellipsis)
        fail<ValueError>("einsum", "invalid '.' in equation '{}' (only one '...' per operand)", eq);
      ellipsis = true;
      labels.push_back(kEllipsisLabel);
      i += 2;
      continue;
    }
    const int l = label_of(s[i]);
    if (l < 0)
      fail<ValueError>("einsum", "invalid subscript '{}' in equation '{}' (use a-z, A-Z, '...')",
                       s[i], eq);
    labels.push_back(l);
  }
  return labels;
}

struct Equation {
  std::vector<std::vector<int>> inputs;
  std::optional<std::vector<int>> output;  // nullopt: implicit
};

Equation parse_equation(std::string_view equation) {
  std::string eq;
  for (char c : equation)
    if (c != ' ') eq += c;
  const size_t arrow = eq.find("->");
  if (eq.find_first_of("->", arrow == std::string::npos ? 0 : arrow + 2) != std::string::npos)
    fail<ValueError>("einsum", "malformed '->' in equation '{}'", std::string(equation));
  const std::string lhs = eq.substr(0, arrow);
  Equation e;
  size_t start = 0;
  while (true) {
    const size_t comma = lhs.find(',', start);
    e.inputs.push_back(parse_term(std::string_view(lhs).substr(start, comma - start), eq));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (arrow != std::string::npos) e.output = parse_term(std::string_view(eq).substr(arrow + 2), eq);
  return e;
}

struct Operand {
  Tensor t;
  std::vector<int> labels;  // one per dim of t
};

// Replaces "..." by the labels of the dims it covers and checks the subscript count.
std::vector<int> expand_ellipsis(const std::vector<int>& term, int64_t ndim, int64_t n_ell,
                                 const std::string& eq, size_t operand) {
  const bool has = std::find(term.begin(), term.end(), kEllipsisLabel) != term.end();
  const auto letters = static_cast<int64_t>(term.size()) - (has ? 1 : 0);
  if (has ? letters > ndim : letters != ndim)
    fail<ValueError>("einsum", "operand {} has {} dims but its subscripts in '{}' name {}{}",
                     operand, ndim, eq, letters, has ? " plus '...'" : "");
  std::vector<int> out;
  for (int l : term) {
    if (l != kEllipsisLabel) {
      out.push_back(l);
      continue;
    }
    const int64_t own = ndim - letters;  // dims this operand's "..." covers
    for (int64_t j = n_ell - own; j < n_ell; ++j)
      out.push_back(kFirstEllipsisDim + static_cast<int>(j));
  }
  return out;
}

// A label repeated inside one operand ("ii") selects the diagonal of those dims.
void take_diagonals(Operand& o, const std::string& eq) {
  for (size_t p = 0; p < o.labels.size(); ++p)
    for (size_t q = p + 1; q < o.labels.size(); ++q) {
      if (o.labels[p] != o.labels[q]) continue;
      if (o.t.size(p) != o.t.size(q))
        fail<ShapeError>("einsum", "repeated subscript '{}' in '{}' spans dims of sizes {} and {}",
                         label_char(o.labels[p]), eq, o.t.size(p), o.t.size(q));
      const int l = o.labels[p];
      o.t = o.t.diagonal(0, static_cast<int64_t>(p), static_cast<int64_t>(q));
      o.labels.erase(o.labels.begin() + static_cast<std::ptrdiff_t>(q));
      o.labels.erase(o.labels.begin() + static_cast<std::ptrdiff_t>(p));
      o.labels.push_back(l);
      take_diagonals(o, eq);
      return;
    }
}

bool has_label(const std::vector<int>& ls, int l) {
  return std::find(ls.begin(), ls.end(), l) != ls.end();
}

// Sums o over the given labels: permute them last, flatten them, multiply by a ones vector.
void sum_labels(Operand& o, const std::vector<int>& drop) {
  if (drop.empty()) return;
  std::vector<int64_t> perm;
  std::vector<int> kept;
  Shape shape;
  int64_t n = 1;
  for (size_t d = 0; d < o.labels.size(); ++d)
    if (!has_label(drop, o.labels[d])) {
      perm.push_back(static_cast<int64_t>(d));
      kept.push_back(o.labels[d]);
      shape.push_back(o.t.size(d));
    }
  for (size_t d = 0; d < o.labels.size(); ++d)
    if (has_label(drop, o.labels[d])) {
      perm.push_back(static_cast<int64_t>(d));
      n *= o.t.size(d);
    }
  shape.push_back(n);
  o.t = matmul(o.t.permute(perm).reshape(shape), ones({n}, {o.t.dtype(), o.t.device()}));
  o.labels = std::move(kept);
}

// Contracts two operands into one whose labels are exactly those in `keep` (plus nothing else):
// shared kept labels become batch dims, shared dropped labels the GEMM's k.
Operand contract(Operand a, Operand b, const std::vector<int>& keep,
                 const std::vector<int64_t>& sizes) {
  auto only = [&](const Operand& x, const Operand& y) {
    std::vector<int> d;
    for (int l : x.labels)
      if (!has_label(keep, l) && !has_label(y.labels, l)) d.push_back(l);
    return d;
  };
  sum_labels(a, only(a, b));
  sum_labels(b, only(b, a));
  std::vector<int> batch, inner, a_rest, b_rest;
  for (int l : a.labels) {
    if (!has_label(b.labels, l))
      a_rest.push_back(l);
    else
      (has_label(keep, l) ? batch : inner).push_back(l);
  }
  for (int l : b.labels)
    if (!has_label(a.labels, l)) b_rest.push_back(l);
  // Lays x out as (batch..., rows, cols) with the row and column label groups flattened.
  auto arrange = [&](const Operand& x, const std::vector<int>& rows, const std::vector<int>& cols) {
    std::vector<int64_t> perm;
    Shape full, shape;
    for (const std::vector<int>* group : {&std::as_const(batch), &rows, &cols}) {
      int64_t n = 1;
      for (int l : *group) {
        const auto d = std::find(x.labels.begin(), x.labels.end(), l) - x.labels.begin();
        perm.push_back(d);
        // Batch and contracted dims broadcast (size 1 -> the label's size).
        full.push_back(group == &batch || has_label(inner, l) ? sizes[l] : x.t.size(d));
        n *= full.back();
      }
      if (group == &batch)
        shape = full;
      else
        shape.push_back(n);
    }
    return x.t.permute(perm).expand(full).reshape(shape);
  };
  Tensor r = matmul(arrange(a, a_rest, inner), arrange(b, inner, b_rest));
  Operand out{Tensor(), batch};
  Shape shape;
  for (int l : batch) shape.push_back(sizes[l]);
  for (const std::vector<int>* group : {&a_rest, &b_rest})
    for (int l : *group) {
      const Operand& src = group == &a_rest ? a : b;
      shape.push_back(
          src.t.size(std::find(src.labels.begin(), src.labels.end(), l) - src.labels.begin()));
      out.labels.push_back(l);
    }
  out.t = r.reshape(shape);
  return out;
}

// numpy's rule: "..." first, then the letters used exactly once (counting repeats in a term).
std::vector<int> implicit_output(const std::vector<std::vector<int>>& terms, int64_t n_ell) {
  std::vector<int> count(kFirstEllipsisDim, 0), out;
  for (const std::vector<int>& t : terms)
    for (int l : t)
      if (l >= 0) ++count[l];
  for (int64_t j = 0; j < n_ell; ++j) out.push_back(kFirstEllipsisDim + static_cast<int>(j));
  for (int l = 0; l < kFirstEllipsisDim; ++l)
    if (count[l] == 1) out.push_back(l);
  return out;
}

std::vector<int> explicit_output(const std::vector<int>& term, const std::vector<Operand>& ops,
                                 int64_t n_ell, const std::string& eq) {
  std::vector<int> out;
  for (int l : term) {
    if (l == kEllipsisLabel) {
      for (int64_t j = 0; j < n_ell; ++j) out.push_back(kFirstEllipsisDim + static_cast<int>(j));
      continue;
    }
    if (has_label(out, l))
      fail<ValueError>("einsum", "output subscript '{}' repeats in '{}'", label_char(l), eq);
    if (std::none_of(ops.begin(), ops.end(),
                     [&](const Operand& o) { return has_label(o.labels, l); }))
      fail<ValueError>("einsum", "output subscript '{}' in '{}' is not in any input", label_char(l),
                       eq);
    out.push_back(l);
  }
  return out;
}

// The size of every label after broadcasting (1 stretches); ShapeError on a clash.
std::vector<int64_t> label_sizes(const std::vector<Operand>& ops, int64_t n_ell,
                                 const std::string& eq) {
  std::vector<int64_t> sizes(kFirstEllipsisDim + n_ell, -1);
  for (const Operand& o : ops)
    for (size_t d = 0; d < o.labels.size(); ++d) {
      int64_t& s = sizes[o.labels[d]];
      const int64_t n = o.t.size(static_cast<int64_t>(d));
      if (s == -1 || s == 1)
        s = n;
      else if (n != 1 && n != s)
        fail<ShapeError>(
            "einsum", "subscript {} has sizes {} and {} in '{}'",
            o.labels[d] < kFirstEllipsisDim ? std::string(1, label_char(o.labels[d])) : "...", s, n,
            eq);
    }
  return sizes;
}

}  // namespace

Tensor einsum(std::string_view equation, const std::vector<Tensor>& operands) {
  const std::string eq(equation);
  const Equation e = parse_equation(equation);
  if (e.inputs.size() != operands.size())
    fail<ValueError>("einsum", "equation '{}' names {} operand(s) but {} were given", eq,
                     e.inputs.size(), operands.size());
  int64_t n_ell = 0;
  for (size_t i = 0; i < operands.size(); ++i) {
    const auto letters =
        std::count_if(e.inputs[i].begin(), e.inputs[i].end(), [](int l) { return l >= 0; });
    n_ell = std::max<int64_t>(n_ell, operands[i].dim() - letters);
  }
  DType dt = operands[0].dtype();
  for (const Tensor& t : operands) dt = promote_types(dt, t.dtype());
  if (dt == kBool) fail<DTypeError>("einsum", "bool operands are not supported in '{}'", eq);
  std::vector<Operand> ops;
  for (size_t i = 0; i < operands.size(); ++i) {
    ops.push_back(
        {operands[i].to(dt), expand_ellipsis(e.inputs[i], operands[i].dim(), n_ell, eq, i)});
    take_diagonals(ops.back(), eq);
  }
  const std::vector<int> out =
      e.output ? explicit_output(*e.output, ops, n_ell, eq) : implicit_output(e.inputs, n_ell);
  const std::vector<int64_t> sizes = label_sizes(ops, n_ell, eq);
  // Left to right; after each step keep only labels still needed by the output or later operands.
  Operand acc = std::move(ops[0]);
  for (size_t i = 1; i <= ops.size(); ++i) {
    std::vector<int> keep = out;
    for (size_t j = i + 1; j < ops.size(); ++j)
      keep.insert(keep.end(), ops[j].labels.begin(), ops[j].labels.end());
    if (i < ops.size()) {
      acc = contract(std::move(acc), std::move(ops[i]), keep, sizes);
      continue;
    }
    std::vector<int> drop;
    for (int l : acc.labels)
      if (!has_label(keep, l)) drop.push_back(l);
    sum_labels(acc, drop);
  }
  std::vector<int64_t> perm;
  Shape shape;
  for (int l : out) {
    perm.push_back(std::find(acc.labels.begin(), acc.labels.end(), l) - acc.labels.begin());
    shape.push_back(sizes[l]);
  }
  return acc.t.permute(perm).expand(shape);
}

}  // namespace tessera
