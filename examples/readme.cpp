// The example from README.md, built and run by the tests so it stays correct.
#include <tessera/tessera.h>

#include <iostream>

int main() {
  using namespace tessera;
  manual_seed(0);
  Tensor x = randn({4, 3});                        // float32, shape (4, 3)
  Tensor w = arange(6, kFloat32).reshape({3, 2});  // a view, no copy
  Tensor y = relu(matmul(x, w) + 1.0);             // broadcasting, BLAS matmul
  std::cout << y << "\n" << y.sum({1}) << "\n";
  std::cout << y.index({Slice(None, None, 2), -1}) << "\n";  // y[::2, -1]
  try {
    matmul(ones({3, 4}), ones({5, 2}));
  } catch (const ShapeError& e) {
    std::cout << e.what() << "\n";  // [matmul] inner dimensions differ: (3, 4) @ (5, 2)
  }
}
