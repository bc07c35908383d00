// tessera.cuda: devices, streams, events, synchronization, the caching allocator and pinned
// memory, with PyTorch's names, over tessera::cuda (include/tessera/runtime/cuda.h):
//   s = tessera.cuda.Stream()
//   s.wait_stream(tessera.cuda.current_stream())   # s sees x complete
//   with tessera.cuda.stream(s):
//       y = x @ x                                  # queued on s
//   tessera.cuda.current_stream().wait_stream(s)   # the default stream sees y complete
// Without the CUDA build every call raises NotBuiltError, without a device DeviceError. Calls
// that wait for the device (the synchronizes, Event.elapsed_time) release the GIL.
#include <fmt/format.h>

#include <climits>
#include <memory>
#include <thread>
#include <vector>

#include "bind.h"
#include "tessera/runtime/cuda.h"

namespace tessera::py {

// A `device` argument: None (the current device), an index, 'cuda:1' or a tessera.device.
// Strings and devices are checked when the call runs, where the op's name is known: a caster
// can only answer TypeError, and 'cpu' deserves a ValueError that says what was wrong.
struct CudaDevice {
  int index = -1;
  std::string spec;  // a string or device, parsed by get()

  int get(const char* op) const {
    if (spec.empty()) return index;
    const Device d = Device::parse(spec);  // DeviceError for a name that is no device
    if (!d.is_cuda()) fail<ValueError>(op, "expected a CUDA device, got '{}'", spec);
    return d.index;
  }
};

}  // namespace tessera::py

namespace nanobind::detail {
template <>
struct type_caster<tessera::py::CudaDevice> {
  // "| None" is added by nanobind where the default is None.
  NB_TYPE_CASTER(tessera::py::CudaDevice,
                 const_name("int | str | ") + make_caster<tessera::Device>::Name)

  bool from_python(handle src, uint8_t, cleanup_list*) noexcept {
    value = {};
    PyObject* o = src.ptr();
    if (src.is_none()) return true;
    if (PyBool_Check(o)) return false;  // True is no device
    if (PyLong_Check(o)) {
      const long v = PyLong_AsLong(o);
      if ((v == -1 && PyErr_Occurred()) || v < INT_MIN || v > INT_MAX) {
        PyErr_Clear();
        return false;
      }
      value.index = static_cast<int>(v);
      return true;
    }
    if (PyUnicode_Check(o)) {
      Py_ssize_t n = 0;
      const char* s = PyUnicode_AsUTF8AndSize(o, &n);
      if (!s) {
        PyErr_Clear();
        return false;
      }
      value.spec.assign(s, static_cast<size_t>(n));
      return !value.spec.empty();
    }
    tessera::Device d;
    if (!nanobind::try_cast(src, d, false)) return false;
    value.spec = d.str();
    return true;
  }

  static handle from_cpp(const tessera::py::CudaDevice& d, rv_policy, cleanup_list*) noexcept {
    return PyLong_FromLong(d.index);
  }
};
}  // namespace nanobind::detail

namespace tessera::py {
namespace {

// A stream made current by a `with` block. Like PyTorch's stream context it also makes the
// stream's device the current one; both are given back on exit. The guard comes first, so a
// failing device switch leaves nothing installed.
class StreamScope {
 public:
  explicit StreamScope(const cuda::Stream& s)
      : guard_(s), previous_device_(switch_device(s.device())) {}
  ~StreamScope() {
    if (previous_device_ < 0) return;
    try {
      cuda::set_device(previous_device_);
    } catch (...) {  // the device was usable on entry; nothing sensible to do here
    }
  }
  StreamScope(const StreamScope&) = delete;
  StreamScope& operator=(const StreamScope&) = delete;

  const std::thread::id thread = std::this_thread::get_id();

 private:
  // The previous device, or -1 when the stream's device is current already.
  static int switch_device(int device) {
    const int current = cuda::current_device();
    if (current == device) return -1;
    cuda::set_device(device);
    return current;
  }

  cuda::StreamGuard guard_;
  int previous_device_;
};

// tessera.cuda.Stream: the C++ handle plus the `with` blocks open on it. Guards are per
// thread, so each block is closed on the thread that opened it, even when threads share the
// Python object.
struct PyStream {
  cuda::Stream stream;
  std::vector<std::unique_ptr<StreamScope>> scopes;

  explicit PyStream(cuda::Stream s) : stream(std::move(s)) {}
  PyStream(PyStream&&) = default;
  PyStream(const PyStream&) = delete;  // the open scopes belong to one Python object
  PyStream& operator=(const PyStream&) = delete;

  void enter() { scopes.push_back(std::make_unique<StreamScope>(stream)); }
  void exit() {
    const std::thread::id me = std::this_thread::get_id();
    for (auto it = scopes.rbegin(); it != scopes.rend(); ++it)
      if ((*it)->thread == me) {
        scopes.erase(std::next(it).base());
        return;
      }
    fail<ValueError>("cuda.Stream", "__exit__ without a matching __enter__ on this thread");
  }
};

// tessera.cuda.Event: PyTorch creates an event on the device of its first record; here it is
// made on the current device at once (so a missing device is reported at construction) and
// made again on the stream's device if the first record is elsewhere.
struct PyEvent {
  cuda::Event event;
  int device;
  bool timing;
  bool recorded = false;

  PyEvent(int d, bool enable_timing)
      : event(d), device(d < 0 ? cuda::current_device() : d), timing(enable_timing) {}

  void record(const cuda::Stream& s) {
    if (!recorded && s.device() != device) {
      event = cuda::Event(s.device());
      device = s.device();
    }
    event.record(s);
    recorded = true;
  }
};

// The stream a call without one uses: the current stream of the current device.
cuda::Stream stream_or_current(const PyStream* s) {
  return s ? s->stream : cuda::Stream::current(-1);
}

std::string stream_repr(const cuda::Stream& s) {
  return fmt::format("<tessera.cuda.Stream device=cuda:{} cuda_stream={:#x}>", s.device(),
                     reinterpret_cast<uintptr_t>(s.handle()));
}

void def_stream(nb::module_& c) {
  nb::class_<PyStream>(c, "Stream",
                       "A CUDA stream: work queued on it runs in order, concurrently with other "
                       "streams. Destroyed with its last reference, after its queued work.")
      .def(
          "__init__",
          [](PyStream* p, CudaDevice device) {
            new (p) PyStream(cuda::Stream::create(device.get("cuda.Stream")));
          },
          nb::arg("device") = nb::none(),
          "A new non-blocking stream on the device (None: the current one).")
      .def(
          "synchronize",
          [](const PyStream& s) {
            nb::gil_scoped_release release;
            s.stream.synchronize();
          },
          "Waits until the work queued on the stream is done (errors of that work surface "
          "here as DeviceError).")
      .def(
          "query", [](const PyStream& s) { return s.stream.query(); },
          "True when all work queued on the stream so far is done.")
      .def(
          "wait_event", [](const PyStream& s, const PyEvent& e) { e.event.block(s.stream); },
          nb::arg("event"),
          "Makes work queued on this stream from now on wait for the event (without blocking "
          "the host).")
      .def(
          "wait_stream",
          [](const PyStream& s, const PyStream& other) {
            cuda::Event e(other.stream.device());
            e.record(other.stream);
            e.block(s.stream);
          },
          nb::arg("stream"),
          "Makes work queued on this stream from now on wait for the work queued on `stream` "
          "so far (without blocking the host).")
      .def(
          "record_event",
          [](const PyStream& s, PyEvent* event) -> nb::typed<nb::object, PyEvent> {
            if (event) {
              event->record(s.stream);
              return nb::borrow<nb::typed<nb::object, PyEvent>>(nb::find(event));
            }
            PyEvent e(s.stream.device(), false);
            e.record(s.stream);
            return nb::borrow<nb::typed<nb::object, PyEvent>>(nb::cast(std::move(e)));
          },
          nb::arg("event").none() = nb::none(),
          "Records the event (a new one when None) on this stream and returns it.")
      .def_prop_ro(
          "device", [](const PyStream& s) { return Device::cuda(s.stream.device()); },
          "The stream's device.")
      .def_prop_ro(
          "cuda_stream",
          [](const PyStream& s) { return reinterpret_cast<uintptr_t>(s.stream.handle()); },
          "The cudaStream_t as an integer (0: the default stream).")
      .def(
          "__eq__", [](const PyStream& a, const PyStream& b) { return a.stream == b.stream; },
          nb::is_operator())
      .def("__hash__",
           [](const PyStream& s) {
             return reinterpret_cast<uintptr_t>(s.stream.handle()) ^
                    static_cast<uintptr_t>(s.stream.device());
           })
      .def("__repr__", [](const PyStream& s) { return stream_repr(s.stream); })
      .def(
          "__enter__",
          [](PyStream& s) -> PyStream& {
            s.enter();
            return s;
          },
          nb::rv_policy::reference)
      .def("__exit__", [](PyStream& s, nb::args) { s.exit(); });

  c.def(
      "current_stream",
      [](CudaDevice device) {
        return PyStream(cuda::Stream::current(device.get("cuda.current_stream")));
      },
      nb::arg("device") = nb::none(),
      "The stream this thread queues work on for the device (None: the current device): "
      "the default stream unless a `with stream(s)` block says otherwise.");
  c.def(
      "default_stream",
      [](CudaDevice device) {
        return PyStream(cuda::Stream::default_stream(device.get("cuda.default_stream")));
      },
      nb::arg("device") = nb::none(), "The default stream of the device (None: the current one).");
  c.def(
      "stream",
      [](PyStream* s) -> nb::object {
        if (!s) return nb::module_::import_("contextlib").attr("nullcontext")();
        return nb::find(s);
      },
      nb::arg("stream").none(),
      "A context manager that makes `stream` the current stream of its device (and its "
      "device the current device) inside a `with` block: `with tessera.cuda.stream(s): ...`. "
      "`with s:` does the same; None does nothing.");
}

void def_event(nb::module_& c) {
  nb::class_<PyEvent>(c, "Event",
                      "A CUDA event: a marker in a stream's work, to wait for or to time.")
      .def(
          "__init__", [](PyEvent* p, bool enable_timing) { new (p) PyEvent(-1, enable_timing); },
          nb::arg("enable_timing") = false,
          "A new event on the current device. enable_timing: allows elapsed_time.")
      .def(
          "record", [](PyEvent& e, const PyStream* s) { e.record(stream_or_current(s)); },
          nb::arg("stream").none() = nb::none(),
          "Records the event on the stream (None: the current stream).")
      .def(
          "wait", [](const PyEvent& e, const PyStream* s) { e.event.block(stream_or_current(s)); },
          nb::arg("stream").none() = nb::none(),
          "Makes work queued on the stream (None: the current stream) from now on wait for "
          "the work before the last record.")
      .def(
          "synchronize",
          [](const PyEvent& e) {
            nb::gil_scoped_release release;
            e.event.synchronize();
          },
          "Waits until the work before the last record is done.")
      .def(
          "query", [](const PyEvent& e) { return e.event.query(); },
          "True when the work before the last record is done (or nothing was recorded).")
      .def(
          "elapsed_time",
          [](const PyEvent& start, const PyEvent& end) {
            if (!start.timing || !end.timing)
              fail<ValueError>("Event.elapsed_time",
                               "both events must be created with enable_timing=True");
            nb::gil_scoped_release release;  // waits for end
            return start.event.elapsed_ms(end.event);
          },
          nb::arg("end_event"),
          "Milliseconds from this event's record to end_event's (waits for end_event).")
      .def_prop_ro(
          "device", [](const PyEvent& e) { return Device::cuda(e.device); }, "The event's device.")
      .def("__repr__", [](const PyEvent& e) {
        return fmt::format("<tessera.cuda.Event device=cuda:{} enable_timing={}>", e.device,
                           e.timing ? "True" : "False");
      });
}

void def_memory(nb::module_& c) {
  c.def(
      "memory_allocated",
      [](CudaDevice d) { return cuda::memory_stats(d.get("cuda.memory_allocated")).current_bytes; },
      nb::arg("device") = nb::none(), "Bytes held by tensors on the device.");
  c.def(
      "max_memory_allocated",
      [](CudaDevice d) {
        return cuda::memory_stats(d.get("cuda.max_memory_allocated")).peak_bytes;
      },
      nb::arg("device") = nb::none(), "Peak bytes held by tensors since start or the last reset.");
  c.def(
      "memory_reserved",
      [](CudaDevice d) { return cuda::memory_reserved(d.get("cuda.memory_reserved")); },
      nb::arg("device") = nb::none(),
      "Bytes the caching allocator holds from the device (in use plus cached).");
  c.def(
      "reset_peak_memory_stats",
      [](CudaDevice d) { cuda::reset_peak_memory_stats(d.get("cuda.reset_peak_memory_stats")); },
      nb::arg("device") = nb::none(), "Restarts the peak statistic.");
  c.def(
      "empty_cache", [](CudaDevice d) { cuda::empty_cache(d.get("cuda.empty_cache")); },
      nb::arg("device") = nb::none(), "Returns cached, unused blocks to the device.");
  c.def(
      "set_per_process_memory_fraction",
      [](double fraction, CudaDevice d) {
        cuda::set_memory_fraction(fraction, d.get("cuda.set_per_process_memory_fraction"));
      },
      nb::arg("fraction"), nb::arg("device") = nb::none(),
      "Caps the allocator at this fraction of the device's memory.");
  c.def(
      "empty_pinned",
      [](nb::args size, DType dtype) {
        Shape s = shape_from_args(size, "cuda.empty_pinned");
        nb::gil_scoped_release release;  // page-locking takes the driver's time
        return cuda::empty_pinned(std::move(s), dtype);
      },
      nb::arg("size"), nb::kw_only(), nb::arg("dtype") = kFloat32,
      "An uninitialized CPU tensor in pinned (page-locked) memory, from which copies to a "
      "GPU run at full bandwidth and with non_blocking=True without waiting; as "
      "tessera.empty(..., pin_memory=True).");
  c.def(
      "host_memory_stats",
      [] {
        const cuda::HostMemoryStats s = cuda::host_memory_stats();
        nb::dict d;
        d["current_bytes"] = s.current_bytes;
        d["peak_bytes"] = s.peak_bytes;
        d["cached_bytes"] = s.cached_bytes;
        d["reserved_bytes"] = s.reserved_bytes;
        d["peak_reserved_bytes"] = s.peak_reserved_bytes;
        d["num_allocs"] = s.num_allocs;
        d["num_cache_hits"] = s.num_cache_hits;
        d["num_host_alloc"] = s.num_host_alloc;
        d["num_host_free"] = s.num_host_free;
        return d;
      },
      "The pinned host memory cache's statistics (one cache per process; bytes are block "
      "sizes, powers of two): current_bytes, peak_bytes (held by tensors), cached_bytes (free "
      "or waiting for queued copies), reserved_bytes, peak_reserved_bytes (page-locked from the "
      "driver), num_allocs, num_cache_hits, num_host_alloc, num_host_free (cudaHostAlloc / "
      "cudaFreeHost calls).");
  c.def("reset_peak_host_memory_stats", &cuda::reset_peak_host_memory_stats,
        "Restarts the pinned memory cache's peak statistics.");
  c.def(
      "empty_host_cache",
      [] {
        nb::gil_scoped_release release;  // cudaFreeHost waits for the devices
        cuda::empty_host_cache();
      },
      "Returns the cached pinned blocks that no tensor holds and no queued copy uses to the "
      "driver. empty_cache() leaves pinned memory alone, as in PyTorch.");
}

}  // namespace

void init_cuda(nb::module_& m, nb::class_<Tensor>& tensor) {
  auto c = m.def_submodule("cuda", "CUDA devices, streams, events, synchronization and memory.");
  c.def("is_built", &cuda::is_built, "Whether Tessera was compiled with CUDA.");
  c.def("is_available", &cuda::is_available, "Whether a CUDA device can be used now.");
  c.def("device_count", &cuda::device_count, "Number of visible CUDA devices.");
  c.def("unavailable_reason", &cuda::unavailable_reason,
        "Why no device is available ('' when there are devices).");
  c.def("current_device", &cuda::current_device, "This thread's current CUDA device.");
  c.def(
      "set_device",
      [](CudaDevice d) {
        const int index = d.get("cuda.set_device");
        if (index >= 0) cuda::set_device(index);  // negative: nothing, as in PyTorch
      },
      nb::arg("device"), "Makes the device this thread's current device (negative: no-op).");
  c.def(
      "synchronize",
      [](CudaDevice d) {
        const int index = d.get("cuda.synchronize");
        nb::gil_scoped_release release;
        cuda::synchronize(index);
      },
      nb::arg("device") = nb::none(),
      "Waits for all queued work on the device (None: the current one), on every stream.");
  nb::class_<cuda::DeviceProperties>(c, "DeviceProperties", "What a CUDA device is.")
      .def_ro("index", &cuda::DeviceProperties::index)
      .def_ro("name", &cuda::DeviceProperties::name)
      .def_ro("total_memory", &cuda::DeviceProperties::total_memory)
      .def_ro("multi_processor_count", &cuda::DeviceProperties::multiprocessors)
      .def_ro("major", &cuda::DeviceProperties::major)
      .def_ro("minor", &cuda::DeviceProperties::minor);
  c.def(
      "get_device_properties",
      [](CudaDevice d) { return cuda::device_properties(d.get("cuda.get_device_properties")); },
      nb::arg("device") = nb::none(),
      "Name, memory, multiprocessors and compute capability of a device.");
  c.def("set_allow_tf32", &cuda::set_allow_tf32, nb::arg("on"),
        "Lets float32 matmuls use TF32 tensor cores (off by default).");
  c.def("set_cudnn_benchmark", &cuda::set_cudnn_benchmark, nb::arg("on"),
        "Lets cuDNN convolutions time their candidate algorithms on the first call of each "
        "shape and run the fastest (PyTorch's torch.backends.cudnn.benchmark); off by "
        "default, when cuDNN's heuristics choose. Either way the choice is cached per "
        "device, dtype and shape. Under tessera.scheduler.set_deterministic(True) only "
        "deterministic algorithms are chosen. Raises NotBuiltError without the CUDA build.");
  c.def("cudnn_benchmark", &cuda::cudnn_benchmark,
        "Whether cuDNN convolutions time their algorithms (set_cudnn_benchmark); False "
        "without the CUDA build.");
  def_stream(c);
  def_event(c);
  def_memory(c);

  tensor.def(
      "record_stream", [](const Tensor& t, const PyStream& s) { cuda::record_stream(t, s.stream); },
      nb::arg("stream"),
      "Marks the tensor's memory as used by work queued on `stream` (it was allocated on "
      "another): when the tensor is freed, the caching allocator does not reuse the "
      "memory until that work is done.");
}

}  // namespace tessera::py
