// The batch gather under the DataLoader: index_select (and every table move whose rows are
// dense on both sides) copies a row at a time. Checked against element-by-element references
// for large (parallel) batches, strided sources, every item size, and constant-padded rows.
#include <gtest/gtest.h>

#include <vector>

#include "tessera/tessera.h"

namespace tessera {
namespace {

// Row-major values of rows `rows` of a 2-d tensor, read one element at a time.
template <class T>
std::vector<T> gathered_rows(const Tensor& x, const std::vector<int64_t>& rows) {
  std::vector<T> out;
  for (int64_t r : rows)
    for (int64_t c = 0; c < x.size(1); ++c) out.push_back(x.index({r, c}).item<T>());
  return out;
}

TEST(DataGather, LargeShuffledBatchMatchesTheRows) {
  manual_seed(0);
  auto ds = std::make_shared<data::TensorDataset>(
      std::vector<Tensor>{randn({500, 300}), arange(500, kInt64)});
  Generator gen(7);
  std::vector<int64_t> idx = data::randperm(500, gen);
  idx.resize(256);  // 256 * 300 elements: more than one parallel grain
  data::Example b = ds->get_batch(idx);
  ASSERT_EQ(b[0].shape(), (Shape{256, 300}));
  EXPECT_EQ(b[0].to_vector<float>(), gathered_rows<float>(ds->tensors()[0], idx));
  EXPECT_EQ(b[1].to_vector<int64_t>(), idx);
}

TEST(DataGather, StridedSourceAndEveryItemSize) {
  const std::vector<int64_t> idx = {3, 0, 3, 5, 1};
  for (DType dt : {kUInt8, kInt16, kFloat32, kFloat64}) {
    // Rows of 7 dense elements, 10 apart: the source is not contiguous.
    Tensor base = arange(60, dt).reshape({6, 10});
    Tensor x = base.slice(1, 2, 9);
    ASSERT_FALSE(x.is_contiguous());
    Tensor got = index_select(x, 0, tensor(idx));
    EXPECT_EQ(got.dtype(), dt);
    EXPECT_EQ(got.to_vector<double>(), gathered_rows<double>(x, idx)) << dtype_name(dt);
    // And the copy of the strided source itself.
    EXPECT_EQ(x.contiguous().to_vector<double>(), gathered_rows<double>(x, {0, 1, 2, 3, 4, 5}));
  }
}

TEST(DataGather, ConstantPadOfWholeRows) {
  // Padding only the first dim: the last dim stays dense, whole rows are the fill value.
  Tensor x = arange(12, kFloat32).reshape({3, 4});
  Tensor y = pad(x, {0, 0, 2, 1}, "constant", 7.0);
  ASSERT_EQ(y.shape(), (Shape{6, 4}));
  std::vector<float> want(24, 7.0f);
  for (int k = 0; k < 12; ++k) want[8 + k] = static_cast<float>(k);
  EXPECT_EQ(y.to_vector<float>(), want);
}

}  // namespace
}  // namespace tessera
