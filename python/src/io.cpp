// tessera.io: safetensors, NumPy .npy/.npz and training checkpoints, over tessera::io.
// Writers take what to write first, then where (torch.save(obj, f), safetensors'
// save_file(tensors, filename)); paths are str or os.PathLike. Files are read and written
// without the GIL. A malformed file raises tessera.IOError (an OSError) from the C++ checks.
#include <nanobind/operators.h>
#include <nanobind/stl/filesystem.h>
#include <nanobind/stl/map.h>

#include <fmt/format.h>

#include <filesystem>
#include <string>

#include "bind.h"

namespace tessera::py {
namespace {

using Path = std::filesystem::path;

io::LoadMode load_mode(const std::string& mode) {
  if (mode == "auto") return io::LoadMode::Auto;
  if (mode == "mmap") return io::LoadMode::Map;
  if (mode == "read") return io::LoadMode::Read;
  fail<ValueError>("load_safetensors", "mode must be 'auto', 'mmap' or 'read', got '{}'", mode);
}

Generator& generator_or_default(nb::handle g, const char* op) {
  if (g.is_none()) return default_generator();
  Generator* p = nullptr;
  if (!nb::try_cast(g, p) || !p)
    throw nb::type_error(fmt::format("{}(): generator must be a tessera.Generator or None, got {}",
                                     op, nb::str(nb::type_name(g.type())).c_str())
                             .c_str());
  return *p;
}

// ---- checkpoint parts ---------------------------------------------------------------------
// A part is a C++ object with a state (nn::Module, optim::Optimizer, an LR scheduler), a
// Python object with state_dict()/load_state_dict() returning/taking {str: Tensor}, or (when
// saving) a state dict itself.

StateDict as_state_dict(nb::handle d, const char* part) {
  StateDict sd;
  if (!nb::try_cast(d, sd))
    throw nb::type_error(fmt::format("save_checkpoint(): the {} state must be a dict of str to "
                                     "Tensor",
                                     part)
                             .c_str());
  return sd;
}

StateDict state_of(nb::handle obj, const char* part) {
  if (obj.is_none()) return {};
  if (nn::Module* m = nullptr; nb::try_cast(obj, m) && m) return m->state_dict();
  if (optim::Optimizer* o = nullptr; nb::try_cast(obj, o) && o) return o->state_dict();
  if (optim::LRScheduler* s = nullptr; nb::try_cast(obj, s) && s) return s->state_dict();
  if (optim::ReduceLROnPlateau* p = nullptr; nb::try_cast(obj, p) && p) return p->state_dict();
  if (optim::GradScaler* g = nullptr; nb::try_cast(obj, g) && g) return g->state_dict();
  if (PyDict_Check(obj.ptr())) return as_state_dict(obj, part);
  if (nb::hasattr(obj, "state_dict")) return as_state_dict(obj.attr("state_dict")(), part);
  throw nb::type_error(fmt::format("save_checkpoint(): {} must be an object with state_dict() or "
                                   "a dict of tensors, got {}",
                                   part, nb::str(nb::type_name(obj.type())).c_str())
                           .c_str());
}

void load_into(nb::handle obj, const StateDict& sd, bool strict, const char* part) {
  if (obj.is_none()) return;
  if (nn::Module* m = nullptr; nb::try_cast(obj, m) && m) {
    m->load_state_dict(sd, strict);
  } else if (optim::Optimizer* o = nullptr; nb::try_cast(obj, o) && o) {
    o->load_state_dict(sd);
  } else if (optim::LRScheduler* s = nullptr; nb::try_cast(obj, s) && s) {
    s->load_state_dict(sd);
  } else if (optim::ReduceLROnPlateau* p = nullptr; nb::try_cast(obj, p) && p) {
    p->load_state_dict(sd);
  } else if (optim::GradScaler* g = nullptr; nb::try_cast(obj, g) && g) {
    g->load_state_dict(sd);
  } else if (nb::hasattr(obj, "load_state_dict")) {
    obj.attr("load_state_dict")(sd);
  } else {
    throw nb::type_error(fmt::format("load_checkpoint(): {} must be an object with "
                                     "load_state_dict(), got {} (read the state from the returned "
                                     "Checkpoint instead)",
                                     part, nb::str(nb::type_name(obj.type())).c_str())
                             .c_str());
  }
}

void save_checkpoint(const Path& path, nb::handle model, nb::handle optimizer, nb::handle scheduler,
                     int64_t step, std::optional<io::RngState> rng,
                     std::optional<io::Metadata> metadata, nb::handle scaler) {
  io::Checkpoint ck{state_of(model, "model"),
                    state_of(optimizer, "optimizer"),
                    state_of(scheduler, "scheduler"),
                    rng ? *rng : io::capture_rng(),
                    step,
                    metadata ? std::move(*metadata) : io::Metadata{},
                    state_of(scaler, "scaler")};
  nb::gil_scoped_release release;
  io::save_checkpoint(path, ck);
}

io::Checkpoint load_checkpoint(const Path& path, nb::handle model, nb::handle optimizer,
                               nb::handle scheduler, bool restore_rng, bool strict,
                               nb::handle scaler) {
  io::Checkpoint ck;
  {
    nb::gil_scoped_release release;
    ck = io::load_checkpoint(path);
  }
  // The model first: an optimizer's state refers to its parameters, a scheduler's to both.
  load_into(model, ck.model, strict, "model");
  load_into(optimizer, ck.optimizer, strict, "optimizer");
  load_into(scheduler, ck.scheduler, strict, "scheduler");
  load_into(scaler, ck.scaler, strict, "scaler");
  if (restore_rng) io::restore_rng(ck.rng);
  return ck;
}

void bind_checkpoint_types(nb::module_& m) {
  nb::class_<io::RngState>(m, "RngState", "The whole state of a generator: seed and offset.")
      .def(nb::init<>())
      .def(
          "__init__",
          [](io::RngState* self, uint64_t seed, uint64_t offset) {
            new (self) io::RngState{seed, offset};
          },
          nb::arg("seed"), nb::arg("offset") = 0)
      .def_rw("seed", &io::RngState::seed, "The generator's seed.")
      .def_rw("offset", &io::RngState::offset, "The position in its stream.")
      .def(nb::self == nb::self)
      .def("__repr__", [](const io::RngState& s) {
        return fmt::format("RngState(seed={}, offset={})", s.seed, s.offset);
      });

  nb::class_<io::Checkpoint>(m, "Checkpoint",
                             "What a checkpoint file holds: the model, optimizer and scheduler "
                             "state dicts, the RNG state, the step and free-form metadata.")
      .def(nb::init<>())
      .def_rw("model", &io::Checkpoint::model, "The model's state dict.")
      .def_rw("optimizer", &io::Checkpoint::optimizer, "The optimizer's state dict.")
      .def_rw("scheduler", &io::Checkpoint::scheduler, "The LR scheduler's state dict.")
      .def_rw("scaler", &io::Checkpoint::scaler, "The GradScaler's state dict (may be empty).")
      .def_rw("rng", &io::Checkpoint::rng, "The RNG state when it was saved.")
      .def_rw("step", &io::Checkpoint::step, "The training step.")
      .def_rw("metadata", &io::Checkpoint::metadata, "Free-form {str: str} annotations.")
      .def("__repr__", [](const io::Checkpoint& c) {
        return fmt::format(
            "Checkpoint(step={}, model={} tensors, optimizer={} tensors, "
            "scheduler={} tensors)",
            c.step, c.model.size(), c.optimizer.size(), c.scheduler.size());
      });
}

void bind_checkpoints(nb::module_& m) {
  bind_checkpoint_types(m);
  m.def(
      "capture_rng",
      [](nb::handle generator) {
        return io::capture_rng(generator_or_default(generator, "capture_rng"));
      },
      nb::arg("generator") = nb::none(),
      "The state of a generator (default: the process-wide one).");
  m.def(
      "restore_rng",
      [](const io::RngState& state, nb::handle generator) {
        io::restore_rng(state, generator_or_default(generator, "restore_rng"));
      },
      nb::arg("state"), nb::arg("generator") = nb::none(),
      "Puts a generator (default: the process-wide one) back into a captured state.");
  m.def("save_checkpoint", &save_checkpoint, nb::arg("path"), nb::kw_only(),
        nb::arg("model") = nb::none(), nb::arg("optimizer") = nb::none(),
        nb::arg("scheduler") = nb::none(), nb::arg("step") = 0, nb::arg("rng") = nb::none(),
        nb::arg("metadata") = nb::none(), nb::arg("scaler") = nb::none(),
        "Writes a training checkpoint to one safetensors file, atomically (the old file or the "
        "new one, never half). model/optimizer/scheduler/scaler: objects with a state (their "
        "state_dict() is saved) or state dicts; rng: an RngState (default: the process-wide "
        "generator's current state); metadata: {str: str} (keys starting with 'tessera.' are "
        "reserved). Data is CRC-checked on loading.");
  m.def("load_checkpoint", &load_checkpoint, nb::arg("path"), nb::kw_only(),
        nb::arg("model") = nb::none(), nb::arg("optimizer") = nb::none(),
        nb::arg("scheduler") = nb::none(), nb::arg("restore_rng") = false, nb::arg("strict") = true,
        nb::arg("scaler") = nb::none(),
        "Reads a checkpoint written by save_checkpoint and returns it. The objects given are "
        "restored in place (load_state_dict; strict applies to the model's keys), and "
        "restore_rng=True puts the process-wide generator back. A truncated, corrupted or "
        "foreign file raises tessera.IOError.");
}

// ---- safetensors and NumPy files ----------------------------------------------------------

void bind_safetensors(nb::module_& m) {
  m.def(
      "save_safetensors",
      [](const StateDict& tensors, const Path& path, const std::optional<io::Metadata>& meta) {
        nb::gil_scoped_release release;
        io::save_safetensors(path, tensors, meta ? *meta : io::Metadata{});
      },
      nb::arg("tensors"), nb::arg("path"), nb::arg("metadata") = nb::none(),
      "Writes {name: tensor} (bool, uint8, int8, int16, int32, int64, float16, bfloat16, "
      "float32, float64, complex64) and optional {str: str} metadata as a safetensors file, "
      "atomically (written to a temporary name, then renamed).");
  m.def(
      "load_safetensors",
      [](const Path& path, const std::string& mode) {
        const io::LoadMode lm = load_mode(mode);
        nb::gil_scoped_release release;
        return io::load_safetensors(path, lm);
      },
      nb::arg("path"), nb::kw_only(), nb::arg("mode") = "auto",
      "The tensors of a safetensors file as {name: tensor}. mode: 'mmap' (tensors view a "
      "private copy-on-write mapping), 'read' (own buffers) or 'auto' (mmap from 1 MiB). The "
      "whole header is validated first; problems raise tessera.IOError.");
  m.def(
      "load_safetensors_metadata",
      [](const Path& path) {
        nb::gil_scoped_release release;
        return io::load_safetensors_metadata(path);
      },
      nb::arg("path"), "The {str: str} metadata of a safetensors file (reads only the header).");
}

void bind_numpy_files(nb::module_& m) {
  m.def(
      "save_npy",
      [](const Tensor& tensor, const Path& path) {
        nb::gil_scoped_release release;
        io::save_npy(path, tensor);
      },
      nb::arg("tensor"), nb::arg("path"),
      "Writes a tensor as a .npy file (np.load reads it); bfloat16 has no NumPy dtype and "
      "raises tessera.DTypeError.");
  m.def(
      "load_npy",
      [](const Path& path) {
        nb::gil_scoped_release release;
        return io::load_npy(path);
      },
      nb::arg("path"),
      "Reads a .npy file (versions 1-3, C or Fortran order, either byte order) into a new "
      "tensor.");
  m.def(
      "save_npz",
      [](const StateDict& arrays, const Path& path) {
        nb::gil_scoped_release release;
        io::save_npz(path, arrays);
      },
      nb::arg("arrays"), nb::arg("path"),
      "Writes {name: tensor} as an uncompressed .npz archive (np.load(path)[name]).");
  m.def(
      "load_npz",
      [](const Path& path) {
        nb::gil_scoped_release release;
        return io::load_npz(path);
      },
      nb::arg("path"),
      "Reads a .npz archive (from save_npz, np.savez or np.savez_compressed) as {name: "
      "tensor}; member CRCs are checked.");
}

}  // namespace

void init_io(nb::module_& m) {
  nb::module_ io = m.def_submodule("_io", "safetensors, NumPy .npy/.npz and checkpoint files.");
  bind_safetensors(io);
  bind_numpy_files(io);
  bind_checkpoints(io);
}

}  // namespace tessera::py
