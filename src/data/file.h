#pragma once
// Whole-file reads and writes for the readers, through zlib so gzipped files work too.
#include <string>
#include <string_view>

namespace tessera::data::detail {

/// The (decompressed) bytes of a file; IOError "[op] path: reason" when it cannot be read.
std::string read_all(const std::string& path, std::string_view op);

/// Writes bytes to a file, gzip-compressed when the path ends in ".gz".
void write_all(const std::string& path, std::string_view bytes, std::string_view op);

}  // namespace tessera::data::detail
