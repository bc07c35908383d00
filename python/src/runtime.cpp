// The runtime from Python: threads, the scheduler's switches, the profiler, build facts.
//   tessera.set_num_threads(2)
//   with tessera.profiler.Session(output="trace.json") as prof:
//       with tessera.profiler.Scope("data"): ...
//   print(prof.summary())
#include <nanobind/stl/map.h>

#include <fmt/format.h>

#include <memory>

#include "bind.h"

namespace tessera::py {
namespace {

// A profiler session that starts on __enter__ (like PyTorch's profiler), not on construction.
struct PySession {
  profiler::Options options;
  std::unique_ptr<profiler::Session> session;

  profiler::Session& get() {
    if (!session)
      fail<ValueError>("profiler.Session", "the session has not started (use it in a with block)");
    return *session;
  }
};

// A user scope; entering and leaving must happen on the same thread (scopes nest per thread).
struct PyScope {
  std::string name;
  std::unique_ptr<profiler::Scope> scope;
};

void def_profiler(nb::module_& m) {
  auto p = m.def_submodule("profiler", "Per-op timing, FLOPs, bytes and roofline fractions.");
  nb::class_<profiler::OpRecord>(p, "OpRecord", "One kernel call recorded by a session.")
      .def_ro("name", &profiler::OpRecord::name)
      .def_ro("impl", &profiler::OpRecord::impl)
      .def_ro("device", &profiler::OpRecord::device)
      .def_ro("shapes", &profiler::OpRecord::shapes)
      .def_ro("dtypes", &profiler::OpRecord::dtypes)
      .def_ro("thread", &profiler::OpRecord::thread)
      .def_ro("flops", &profiler::OpRecord::flops)
      .def_ro("bytes", &profiler::OpRecord::bytes)
      .def_ro("gflops", &profiler::OpRecord::gflops)
      .def_ro("gbps", &profiler::OpRecord::gbps)
      .def_ro("roofline", &profiler::OpRecord::roofline)
      .def_ro("decision", &profiler::OpRecord::decision)
      .def_ro("backward_of", &profiler::OpRecord::backward_of)
      .def_ro("stream", &profiler::OpRecord::stream,
              "Device stream it ran on (0, 1, ...) for GPU kernels; -1 for host-timed calls.")
      .def_prop_ro("device_timed", &profiler::OpRecord::device_timed,
                   "Whether seconds is device time (GPU kernels, timed by events).")
      .def_prop_ro("seconds", &profiler::OpRecord::seconds,
                   "Time of the call: device time for GPU kernels, else host wall time.")
      .def_prop_ro("host_seconds", &profiler::OpRecord::host_seconds,
                   "Host wall time of the call (for a GPU kernel, its launch).")
      .def("__repr__", [](const profiler::OpRecord& r) {
        return fmt::format("OpRecord({}, impl={}, device={}, {:.3g} s)", r.name, r.impl,
                           r.device.str(), r.seconds());
      });

  nb::class_<PySession>(p, "Session",
                        "Records every op run inside its `with` block: "
                        "`with tessera.profiler.Session(output='trace.json') as prof: ...`.")
      .def("__init__",
           [](PySession* s, std::optional<std::string> output, bool record_shapes,
              bool record_memory, bool print_summary) {
             new (s) PySession();
             s->options.output = output.value_or("");
             s->options.record_shapes = record_shapes;
             s->options.record_memory = record_memory;
             s->options.print_summary = print_summary;
           },
           nb::arg("output") = nb::none(), nb::arg("record_shapes") = true,
           nb::arg("record_memory") = true, nb::arg("print_summary") = false)
      .def("__enter__",
           [](PySession& s) -> PySession& {
             s.session = std::make_unique<profiler::Session>(s.options);
             return s;
           },
           nb::rv_policy::reference)
      .def("__exit__", [](PySession& s, nb::args) { s.get().stop(); })
      .def("ops", [](PySession& s) { return s.get().ops(); }, "The recorded kernel calls.")
      .def("summary", [](PySession& s, size_t top) { return s.get().summary(top); },
           nb::arg("top") = 0, "A table of ops sorted by total time (top=0: all).")
      .def("write_chrome_trace",
           [](PySession& s, const std::string& path) { s.get().write_chrome_trace(path); },
           nb::arg("path"), "Writes a Chrome trace (opens in Perfetto).")
      .def("memory_peak", [](PySession& s, Device d) { return s.get().memory_peak(d); },
           nb::arg("device") = Device::cpu(), "Peak bytes in use on a device during the session.");

  nb::class_<PyScope>(p, "Scope", "Marks a region of user code: `with Scope('data'): ...`.")
      .def(nb::init<std::string>(), nb::arg("name"))
      .def("__enter__",
           [](PyScope& s) -> PyScope& {
             s.scope = std::make_unique<profiler::Scope>(s.name);
             return s;
           },
           nb::rv_policy::reference)
      .def("__exit__", [](PyScope& s, nb::args) { s.scope.reset(); });
}

void def_scheduler(nb::module_& m) {
  auto s = m.def_submodule("scheduler", "Where and how ops run (see docs/design/scheduler.md).");
  s.def("set_deterministic", &set_deterministic, nb::arg("on"),
        "Fixes kernel and placement choices so runs are reproducible.");
  s.def("deterministic", &deterministic, "Whether deterministic mode is on.");
  s.def("set_tuning", &set_tuning, nb::arg("on"),
        "Times the candidate kernels on first sight of a shape bucket and remembers the best.");
  s.def("tuning", &tuning, "Whether tuning is on.");
  s.def("set_log", &set_scheduler_log, nb::arg("on"), "Prints each decision to stderr.");
  s.def("remembered_choices", &remembered_choices, "The kernel choices remembered so far.");
}

}  // namespace

void init_runtime(nb::module_& m) {
  m.def("set_num_threads", &set_num_threads, nb::arg("n"),
        "Sets the number of threads CPU kernels use.");
  m.def("get_num_threads", &num_threads, "The number of threads CPU kernels use.");
  m.def("set_default_device",
        [](const Device& d) { set_default_device(d); }, nb::arg("device"),
        "The device new tensors go to ('auto' lets the scheduler place each op).");
  m.def("get_default_device", &default_device, "The device new tensors go to.");
  def_profiler(m);
  def_scheduler(m);

  m.def("build_info",
        []() {
          BuildInfo b = build_info();
          nb::dict d;
          d["version"] = b.version;
          d["compiler"] = b.compiler;
          d["blas_vendor"] = b.blas_vendor;
          d["onednn"] = b.onednn;
          d["backends"] = b.backends;
          d["cuda_built"] = b.cuda_built;
          d["cpu"] = cpu_description();
          d["simd"] = simd_target();
          return d;
        },
        "Facts about the build and the machine (what `tessera info` prints).");
}

}  // namespace tessera::py
