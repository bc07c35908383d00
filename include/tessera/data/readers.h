#pragma once
// Readers for common dataset formats. Files are validated before any tensor is built; a
// malformed file raises IOError naming the file and, for text, the line and column.
//
//   Tensor table = read_csv("iris.csv", {.skip_rows = 1});     // (rows, cols) float32
//   Tensor images = read_idx("train-images-idx3-ubyte.gz");     // (60000, 28, 28) uint8
//   auto folder = std::make_shared<ImageFolder>("pets/train");  // {(3, H, W) float, class}
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tessera/data/dataset.h"
#include "tessera/data/transforms.h"

namespace tessera::data {

struct CsvOptions {
  char delimiter = ',';
  int64_t skip_rows = 0;   ///< lines to skip first (a header)
  DType dtype = kFloat32;  ///< float32 or float64
};

/// A numeric CSV file -> a (rows, cols) tensor. Gzipped files (.gz) are read transparently.
/// Blank lines are skipped; ragged rows and fields that are not numbers raise IOError.
Tensor read_csv(const std::string& path, const CsvOptions& options = {});

/// Writes a 1-d or 2-d tensor as CSV (gzipped when the path ends in ".gz"), with enough
/// digits to read back the same values.
void write_csv(const std::string& path, const Tensor& table, char delimiter = ',');

/// An IDX file (the MNIST format; gzipped or not): big-endian dims and data, any type code
/// (uint8, int8, int16, int32, float32, float64). Bad magic, dims or size raise IOError.
Tensor read_idx(const std::string& path);

/// Decodes a PNG/JPEG/BMP/GIF/TGA image into uint8 (H, W, C); channels 0 keeps the file's
/// channel count, 1-4 converts (e.g. 3 = RGB).
Tensor read_image(const std::string& path, int channels = 3);

struct ImageFolderOptions {
  /// Applied to the image after it becomes a float (C, H, W) tensor in [0, 1].
  Transform transform;
  int channels = 3;  ///< as for read_image
  /// File extensions that count as images (compared case-insensitively).
  std::vector<std::string> extensions = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tga"};
};

/// root/<class>/**/<image>: get(i) = {image (C, H, W) float32, class index (int64, 0-d)}.
/// Classes are the subfolders of root in sorted order; images are sorted by path. A missing
/// root, no classes, or a class with no image raise IOError.
class ImageFolder : public Dataset {
 public:
  explicit ImageFolder(std::string root, ImageFolderOptions options = {});
  int64_t size() const override { return static_cast<int64_t>(samples_.size()); }
  Example get(int64_t i) const override;
  const std::vector<std::string>& classes() const { return classes_; }
  /// (path, class index) for every image.
  const std::vector<std::pair<std::string, int64_t>>& samples() const { return samples_; }

 private:
  std::string root_;
  ImageFolderOptions opt_;
  std::vector<std::string> classes_;
  std::vector<std::pair<std::string, int64_t>> samples_;
};

}  // namespace tessera::data
