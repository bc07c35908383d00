// tessera.data readers: CSV, IDX (MNIST) and images, over tessera::data's readers.
#include <nanobind/stl/filesystem.h>

#include <filesystem>
#include <string>

#include "data_common.h"

namespace tessera::py {
namespace {

using namespace data_bind;

// ---- readers ------------------------------------------------------------------------------

char one_char(const std::string& s, const char* op) {
  TS_CHECK(s.size() == 1, ValueError, op, "delimiter must be one character, got '{}'", s);
  return s[0];
}

}  // namespace

void bind_readers(nb::module_& m) {
  m.def(
      "read_csv",
      [](const std::filesystem::path& path, const std::string& delimiter, int64_t skip_rows,
         DType dtype) {
        data::CsvOptions o{one_char(delimiter, "read_csv"), skip_rows, dtype};
        nb::gil_scoped_release release;
        return data::read_csv(path.string(), o);
      },
      nb::arg("path"), nb::arg("delimiter") = ",", nb::arg("skip_rows") = 0,
      nb::arg("dtype") = kFloat32,
      "A numeric CSV file (gzipped when it ends in .gz) as a (rows, cols) float32 or float64 "
      "tensor; skip_rows skips a header. Malformed files raise tessera.IOError naming the line "
      "and column.");
  m.def(
      "write_csv",
      [](const Tensor& table, const std::filesystem::path& path, const std::string& delimiter) {
        const char d = one_char(delimiter, "write_csv");
        nb::gil_scoped_release release;
        data::write_csv(path.string(), table, d);
      },
      nb::arg("table"), nb::arg("path"), nb::arg("delimiter") = ",",
      "Writes a 1-d or 2-d tensor as CSV (gzipped when the path ends in .gz) with enough digits "
      "to read back the same values.");
  m.def(
      "read_idx",
      [](const std::filesystem::path& path) {
        nb::gil_scoped_release release;
        return data::read_idx(path.string());
      },
      nb::arg("path"),
      "An IDX file (the MNIST format, gzipped or not) as a tensor of its own dtype.");
  m.def(
      "read_image",
      [](const std::filesystem::path& path, int channels) {
        nb::gil_scoped_release release;
        return data::read_image(path.string(), channels);
      },
      nb::arg("path"), nb::arg("channels") = 3,
      "Decodes a PNG/JPEG/BMP/GIF/TGA image into uint8 (H, W, C); channels=0 keeps the file's "
      "channel count, 1-4 converts.");
}

}  // namespace tessera::py
