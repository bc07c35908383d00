// Numeric CSV: parsed into float64 with from_chars, validated row by row, then one tensor.
#include <charconv>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "data/file.h"
#include "tessera/core/error.h"
#include "tessera/data/readers.h"
#include "tessera/ops/creation.h"

namespace tessera::data {
namespace {

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t") - first + 1);
}

// The file being parsed and where we are, for error messages.
struct CsvParser {
  const std::string& path;
  const CsvOptions& opt;
  std::vector<double> values;
  int64_t rows = 0, cols = -1, first_data_line = 0;

  double parse_field(std::string_view raw, int64_t line, int64_t col) const {
    std::string_view f = trim(raw);
    TS_CHECK(!f.empty(), IOError, "read_csv", "{}: line {}, column {}: empty field", path, line,
             col);
    std::string_view digits = f.front() == '+' ? f.substr(1) : f;
    double v = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
    const bool ok = ec == std::errc() && end == digits.data() + digits.size();
    TS_CHECK(ok || ec == std::errc::result_out_of_range, IOError, "read_csv",
             "{}: line {}, column {}: '{}' is not a number{}", path, line, col, f,
             rows == 0 ? " (a header? use skip_rows)" : "");
    TS_CHECK(ok, IOError, "read_csv", "{}: line {}, column {}: '{}' is out of the float64 range",
             path, line, col, f);
    return v;
  }

  void parse_line(std::string_view text, int64_t line) {
    int64_t col = 0;
    size_t start = 0;
    for (;;) {
      const size_t stop = text.find(opt.delimiter, start);
      values.push_back(parse_field(text.substr(start, stop - start), line, ++col));
      if (stop == std::string_view::npos) break;
      start = stop + 1;
    }
    if (cols < 0) {
      cols = col;
      first_data_line = line;
    }
    TS_CHECK(col == cols, IOError, "read_csv",
             "{}: line {} has {} columns but line {} has {} (ragged rows)", path, line, col,
             first_data_line, cols);
    ++rows;
  }

  void parse(std::string_view text) {
    int64_t line = 0;
    size_t start = 0;
    while (start < text.size()) {
      size_t stop = text.find('\n', start);
      if (stop == std::string_view::npos) stop = text.size();
      std::string_view row = text.substr(start, stop - start);
      if (!row.empty() && row.back() == '\r') row.remove_suffix(1);
      start = stop + 1;
      if (++line <= opt.skip_rows || trim(row).empty()) continue;
      parse_line(row, line);
    }
  }
};

}  // namespace

Tensor read_csv(const std::string& path, const CsvOptions& opt) {
  TS_CHECK(opt.dtype == kFloat32 || opt.dtype == kFloat64, DTypeError, "read_csv",
           "dtype must be float32 or float64, got {}", dtype_name(opt.dtype));
  TS_CHECK(opt.delimiter != '\n' && opt.delimiter != '\r', ValueError, "read_csv",
           "the delimiter cannot be a line break");
  TS_CHECK(opt.skip_rows >= 0, ValueError, "read_csv", "skip_rows must be >= 0, got {}",
           opt.skip_rows);
  const std::string text = detail::read_all(path, "read_csv");
  CsvParser p{path, opt, {}};
  p.parse(text);
  if (p.rows == 0) return empty({0, 0}, opt.dtype);
  return from_buffer_copy(p.values.data(), {p.rows, p.cols}, kFloat64).to(opt.dtype);
}

namespace {

// Each value as the shortest text that reads back to the same value of type T.
template <class T>
std::string csv_text(const Tensor& table, int64_t cols, char delimiter) {
  const std::vector<T> v = table.to_vector<T>();
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    fmt::format_to(std::back_inserter(out), "{}", v[i]);
    out += (static_cast<int64_t>(i + 1) % cols == 0) ? '\n' : delimiter;
  }
  return out;
}

}  // namespace

void write_csv(const std::string& path, const Tensor& table, char delimiter) {
  TS_CHECK(table.dim() == 1 || table.dim() == 2, ShapeError, "write_csv",
           "needs a 1-d or 2-d tensor, got shape {}", shape_str(table.shape()));
  TS_CHECK(!is_complex(table.dtype()), DTypeError, "write_csv", "complex values are not supported");
  const int64_t cols = table.dim() == 2 ? table.size(1) : 1;
  // float32 (and narrower) values print as floats: 0.1f is "0.1", not its double expansion.
  const bool narrow = is_floating(table.dtype()) && table.dtype() != kFloat64;
  const DType dt = table.dtype();
  const std::string text = is_integral(dt, true) ? csv_text<int64_t>(table, cols, delimiter)
                           : narrow              ? csv_text<float>(table, cols, delimiter)
                                                 : csv_text<double>(table, cols, delimiter);
  detail::write_all(path, text, "write_csv");
}

}  // namespace tessera::data
