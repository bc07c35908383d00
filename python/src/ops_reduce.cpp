// Reductions, scans and softmax. `dim` takes None (all dims), an int or a sequence of ints;
// max/min with a dim return tessera.return_types.max/min (values, indices).
#include "ops_common.h"

namespace tessera::py::ops {
namespace {

using T = const Tensor&;
using OptDType = std::optional<DType>;
/// A required dim argument: an int or a sequence of ints.
using DimsArg = std::variant<int64_t, std::vector<int64_t>>;

Dims required_dims(const DimsArg& d) { return to_dims(DimArg(d)); }

// PyTorch's dtype= on reductions: the input is cast first, so the accumulation uses it.
Tensor cast_to(T x, const OptDType& dtype) { return dtype ? x.to(*dtype) : x; }

using ReduceFn = Tensor (*)(const Tensor&, Dims, bool);

struct Reduction {
  const char* name;
  ReduceFn fn;
  bool has_dtype;  ///< takes dtype= (cast before reducing)
  const char* doc;
};

const Reduction kReductions[] = {
    {"mean", &tessera::mean, true, "The mean over dim (all dims when None)."},
    {"prod", &tessera::prod, true, "The product over dim (all dims when None)."},
    {"amax", &tessera::amax, false, "The max over dim (all dims when None); NaN propagates."},
    {"amin", &tessera::amin, false, "The min over dim (all dims when None); NaN propagates."},
    {"all", &tessera::all, false, "True where every element over dim is non-zero."},
    {"any", &tessera::any, false, "True where some element over dim is non-zero."},
};

void def_reductions(nb::module_& m, nb::class_<Tensor>& c) {
  def_both(
      m, c, "sum",
      [](T x, const DimArg& dim, bool keepdim, OptDType dtype) {
        ReleaseGilIfLarge gil(work(x));
        return sum(x, to_dims(dim), keepdim, dtype);
      },
      nb::arg("dim") = nb::none(), nb::arg("keepdim") = false, nb::kw_only(),
      nb::arg("dtype") = nb::none(),
      "The sum over dim (all dims when None); bool and integer inputs sum in int64.");
  for (const Reduction& r : kReductions) {
    if (r.has_dtype) {
      def_both(
          m, c, r.name,
          [fn = r.fn](T x, const DimArg& dim, bool keepdim, OptDType dtype) {
            ReleaseGilIfLarge gil(work(x));
            return fn(cast_to(x, dtype), to_dims(dim), keepdim);
          },
          nb::arg("dim") = nb::none(), nb::arg("keepdim") = false, nb::kw_only(),
          nb::arg("dtype") = nb::none(), r.doc);
    } else {
      def_both(
          m, c, r.name,
          [fn = r.fn](T x, const DimArg& dim, bool keepdim) {
            ReleaseGilIfLarge gil(work(x));
            return fn(x, to_dims(dim), keepdim);
          },
          nb::arg("dim") = nb::none(), nb::arg("keepdim") = false, r.doc);
    }
  }
  def_both(
      m, c, "logsumexp",
      [](T x, const DimsArg& dim, bool keepdim) {
        ReleaseGilIfLarge gil(work(x));
        return logsumexp(x, required_dims(dim), keepdim);
      },
      nb::arg("dim"), nb::arg("keepdim") = false,
      "log(sum(exp(input))) over dim, computed without overflow.");
  def_both(
      m, c, "count_nonzero",
      [](T x, const DimArg& dim) {
        ReleaseGilIfLarge gil(work(x));
        return sum(ne(x, Scalar(0)), to_dims(dim));
      },
      nb::arg("dim") = nb::none(), "The number of non-zero elements over dim (int64).");
}

// max/min: over everything, along one dim with indices, or elementwise with another tensor.
void def_extremum(nb::module_& m, nb::class_<Tensor>& c, bool is_max) {
  const char* name = is_max ? "max" : "min";
  const Named kind = is_max ? Named::Max : Named::Min;
  def_both(
      m, c, name,
      [is_max](T x) {
        ReleaseGilIfLarge gil(work(x));
        return is_max ? max(x) : min(x);
      },
      is_max ? "The largest element; with dim, the named tuple (values, indices) along "
               "dim; with another tensor, the elementwise maximum."
             : "The smallest element; with dim, the named tuple (values, indices) along "
               "dim; with another tensor, the elementwise minimum.");
  def_both(
      m, c, name,
      [is_max, kind](T x, int64_t dim, bool keepdim) {
        std::tuple<Tensor, Tensor> r;
        {
          ReleaseGilIfLarge gil(work(x));
          r = is_max ? max(x, dim, keepdim) : min(x, dim, keepdim);
        }
        return values_indices(kind, std::move(std::get<0>(r)), std::move(std::get<1>(r)));
      },
      nb::arg("dim"), nb::arg("keepdim") = false);
  def_both(
      m, c, name,
      [is_max](T x, T other) {
        ReleaseGilIfLarge gil(work(x, other));
        return is_max ? maximum(x, other) : minimum(x, other);
      },
      nb::arg("other"));
}

void def_arg_extremum(nb::module_& m, nb::class_<Tensor>& c) {
  for (const bool is_max : {true, false})
    def_both(
        m, c, is_max ? "argmax" : "argmin",
        [is_max](T x, std::optional<int64_t> dim, bool keepdim) {
          ReleaseGilIfLarge gil(work(x));
          return is_max ? argmax(x, dim, keepdim) : argmin(x, dim, keepdim);
        },
        nb::arg("dim") = nb::none(), nb::arg("keepdim") = false,
        is_max ? "The int64 index of the first max (into the flattened input when dim is "
                 "None)."
               : "The int64 index of the first min (into the flattened input when dim is "
                 "None).");
}

// var/std accept PyTorch's two spellings: correction= (new) and unbiased= (legacy).
Tensor var_std(bool is_std, T x, const DimArg& dim, std::optional<bool> unbiased, bool keepdim,
               std::optional<int64_t> correction) {
  if (unbiased && correction)
    fail<ValueError>(is_std ? "std" : "var", "give either unbiased or correction, not both");
  const int64_t corr = correction ? *correction : (unbiased.value_or(true) ? 1 : 0);
  ReleaseGilIfLarge gil(work(x));
  return is_std ? tessera::std(x, to_dims(dim), corr, keepdim)
                : var(x, to_dims(dim), corr, keepdim);
}

void def_moments(nb::module_& m, nb::class_<Tensor>& c) {
  for (const bool is_std : {false, true}) {
    const char* name = is_std ? "std" : "var";
    def_both(
        m, c, name,
        [is_std](T x, bool unbiased) {
          return var_std(is_std, x, std::nullopt, unbiased, false, std::nullopt);
        },
        nb::arg("unbiased"),
        is_std ? "The standard deviation over dim (all when None) with correction "
                 "(1: unbiased, 0: population; unbiased=False is correction 0)."
               : "The variance over dim (all when None) with correction (1: unbiased, "
                 "0: population; unbiased=False is correction 0).");
    def_both(
        m, c, name,
        [is_std](T x, const DimArg& dim, std::optional<bool> unbiased, bool keepdim,
                 std::optional<int64_t> correction) {
          return var_std(is_std, x, dim, unbiased, keepdim, correction);
        },
        nb::arg("dim") = nb::none(), nb::arg("unbiased") = nb::none(), nb::arg("keepdim") = false,
        nb::kw_only(), nb::arg("correction") = nb::none());
  }
}

// p: a number (inf for the max norm) or 'fro' (the 2-norm of the selected elements).
Tensor norm_any(T x, const std::variant<double, std::string>& p, const DimArg& dim, bool keepdim,
                OptDType dtype) {
  double order = 2.0;
  if (const auto* s = std::get_if<std::string>(&p)) {
    if (*s != "fro") fail<ValueError>("norm", "p must be a number or 'fro', got '{}'", *s);
  } else {
    order = std::get<double>(p);
  }
  ReleaseGilIfLarge gil(work(x));
  return norm(cast_to(x, dtype), order, to_dims(dim), keepdim);
}

void def_norm_scan_softmax(nb::module_& m, nb::class_<Tensor>& c) {
  def_both(m, c, "norm", &norm_any, nb::arg("p") = "fro", nb::arg("dim") = nb::none(),
           nb::arg("keepdim") = false, nb::arg("dtype") = nb::none(),
           "The p-norm of input over dim (all dims when None); p may be any number, inf, "
           "-inf, or 'fro' (= 2).");
  using AlongDim = Tensor (*)(const Tensor&, int64_t);
  struct Scan {
    const char* name;
    AlongDim fn;
    const char* doc;
  };
  const Scan scans[] = {
      {"cumsum", &tessera::cumsum, "Running sums along dim."},
      {"cumprod", &tessera::cumprod, "Running products along dim."},
      {"softmax", &tessera::softmax, "exp(input) normalized to sum to 1 along dim."},
      {"log_softmax", &tessera::log_softmax, "log(softmax(input, dim)), computed stably."},
  };
  for (const Scan& s : scans) {
    auto f = [fn = s.fn](T x, int64_t dim, OptDType dtype) {
      ReleaseGilIfLarge gil(work(x));
      return fn(cast_to(x, dtype), dim);
    };
    def_both(m, c, s.name, f, nb::arg("dim"), nb::kw_only(), nb::arg("dtype") = nb::none(), s.doc);
  }
}

}  // namespace

void init_reduce(nb::module_& m, nb::class_<Tensor>& c) {
  def_reductions(m, c);
  def_extremum(m, c, true);
  def_extremum(m, c, false);
  def_arg_extremum(m, c);
  def_moments(m, c);
  def_norm_scan_softmax(m, c);
}

}  // namespace tessera::py::ops
