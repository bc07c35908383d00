#pragma once
// NumPy's .npy and .npz files.
//
//   io::save_npy("x.npy", x);                       // np.load("x.npy") in Python
//   Tensor y = io::load_npy("x.npy");
//   io::save_npz("arrays.npz", {{"a", a}, {"b", b}});  // np.load("arrays.npz")["a"]
//
// Loading takes format versions 1.0, 2.0 and 3.0, C and Fortran order (returned as a C-contiguous
// tensor), little- and big-endian data, and dtypes bool, u1, i1, i2, i4, i8, f2, f4, f8, c8.
// Malformed headers, sizes that disagree with the file, and unsupported dtypes raise IOError.
#include <filesystem>

#include "tessera/io/state_dict.h"

namespace tessera::io {

/// Writes t as a little-endian C-order .npy (version 1.0, or 2.0 when the header needs it).
/// bfloat16 has no NumPy dtype and raises DTypeError.
void save_npy(const std::filesystem::path& path, const Tensor& t);
/// Reads a .npy file into a new contiguous CPU tensor.
Tensor load_npy(const std::filesystem::path& path);

/// Writes a .npz: a zip archive (stored, not compressed) with one "<name>.npy" per tensor.
void save_npz(const std::filesystem::path& path, const StateDict& arrays);
/// Reads a .npz written by save_npz, np.savez or np.savez_compressed (stored or deflate members);
/// keys lose their ".npy" suffix. CRCs are checked.
StateDict load_npz(const std::filesystem::path& path);

}  // namespace tessera::io
