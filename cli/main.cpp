#include <iostream>

#include "tessera/tessera.h"

int main() {
  using namespace tessera;
  std::cout << "Tessera " << build_info().version << "\n";
  return 0;
}
