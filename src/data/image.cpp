// Images through stb_image, and the ImageFolder dataset.
#include <stb/stb_image.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "tessera/core/error.h"
#include "tessera/data/readers.h"
#include "tessera/ops/creation.h"

namespace tessera::data {
namespace fs = std::filesystem;

Tensor read_image(const std::string& path, int channels) {
  TS_CHECK(channels >= 0 && channels <= 4, ValueError, "read_image",
           "channels must be 0 (as stored) or 1-4, got {}", channels);
  TS_CHECK(fs::is_regular_file(path), IOError, "read_image", "{}: no such file", path);
  int w = 0, h = 0, stored = 0;
  unsigned char* pixels = stbi_load(path.c_str(), &w, &h, &stored, channels);
  TS_CHECK(pixels != nullptr, IOError, "read_image", "{}: cannot decode ({})", path,
           stbi_failure_reason());
  const int c = channels == 0 ? stored : channels;
  // The tensor owns stb's buffer: no copy of the pixels.
  return from_blob(pixels, {h, w, c}, kUInt8, std::nullopt, [](void* q) { stbi_image_free(q); });
}

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return s;
}

bool has_extension(const fs::path& p, const std::vector<std::string>& extensions) {
  const std::string ext = lower(p.extension().string());
  return std::any_of(extensions.begin(), extensions.end(),
                     [&](const std::string& e) { return lower(e) == ext; });
}

std::vector<std::string> sorted_subfolders(const fs::path& root) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(root)) {
    if (entry.is_directory()) names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> sorted_images(const fs::path& dir, const ImageFolderOptions& opt) {
  std::vector<std::string> files;
  const auto follow = fs::directory_options::follow_directory_symlink;
  for (const auto& entry : fs::recursive_directory_iterator(dir, follow)) {
    if (entry.is_regular_file() && has_extension(entry.path(), opt.extensions))
      files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

ImageFolder::ImageFolder(std::string root, ImageFolderOptions options)
    : root_(std::move(root)), opt_(std::move(options)) {
  TS_CHECK(opt_.channels >= 1 && opt_.channels <= 4, ValueError, "ImageFolder",
           "channels must be 1-4 so that images stack, got {}", opt_.channels);
  TS_CHECK(fs::is_directory(root_), IOError, "ImageFolder", "{}: not a directory", root_);
  classes_ = sorted_subfolders(root_);
  TS_CHECK(!classes_.empty(), IOError, "ImageFolder", "{}: no class folders inside", root_);
  for (size_t k = 0; k < classes_.size(); ++k) {
    std::vector<std::string> files = sorted_images(fs::path(root_) / classes_[k], opt_);
    TS_CHECK(!files.empty(), IOError, "ImageFolder", "{}: class '{}' has no image ({})", root_,
             classes_[k], fmt::join(opt_.extensions, " "));
    for (auto& f : files) samples_.emplace_back(std::move(f), static_cast<int64_t>(k));
  }
}

Example ImageFolder::get(int64_t i) const {
  TS_CHECK(i >= 0 && i < size(), IndexError, "ImageFolder",
           "index {} out of range for a dataset of size {}", i, size());
  const auto& [path, label] = samples_[static_cast<size_t>(i)];
  Tensor image = to_tensor()(read_image(path, opt_.channels));
  if (opt_.transform) image = opt_.transform(image);
  return {image, scalar_tensor(label, kInt64)};
}

}  // namespace tessera::data
