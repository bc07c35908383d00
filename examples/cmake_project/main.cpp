// Links against an installed Tessera through find_package(Tessera).
#include <iostream>

#include <tessera/tessera.h>

int main() {
  using namespace tessera;
  Tensor x = arange(1, 5, 1, kFloat32);  // [1, 2, 3, 4]
  Tensor y = (x * x).sum();
  std::cout << "x = " << x << "\n";
  std::cout << "sum of squares = " << y.item<float>() << "\n";
  return 0;
}
