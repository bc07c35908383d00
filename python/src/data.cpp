// tessera.data: datasets, the DataLoader, transforms and readers, over tessera::data.
//
// Python datasets join the C++ stack in two ways. Subclasses of tessera.data.Dataset and
// IterableDataset are C++ datasets through trampolines; any other object with __getitem__ and
// __len__ (a list, a dataset whose __init__ skipped Dataset.__init__) or with __iter__ is
// wrapped in an adapter. Either way each Python sample travels through the C++ loader as it
// is, boxed in a 0-element tensor (an Example is a vector of tensors), and each batch is
// fetched and collated under one acquisition of the GIL, by default_collate (PyTorch's rules,
// data_collate.cpp) or by the user's collate_fn. Datasets that are C++ all the way down
// (TensorDataset, ImageFolder and their Subsets and ConcatDatasets) keep the loader's fast
// path, Dataset::get_batch, and never touch Python.
//
// GIL: every C++ path that calls Python takes the GIL (trampolines, adapters, collate, Python
// transforms, reference drops), and the loader is only entered with the GIL released, so its
// worker threads can run Python code while the iterating thread waits for a batch.
#include <nanobind/stl/filesystem.h>
#include <nanobind/trampoline.h>

#include <fmt/format.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "data_common.h"

namespace tessera::py {

// ---- calling Python from loader threads ----------------------------------------------------

namespace data_bind {
namespace {

struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool closed = false;
  int64_t inside = 0;  // threads that passed the gate and have not left
};

Gate& gate() {
  static Gate* g = new Gate;  // never destroyed: loader threads may use it during exit
  return *g;
}

}  // namespace

// Only threads without a Python thread state (loader threads) go through the gate; Python's
// own threads, the finalizing main thread among them, take the GIL as usual.
LoaderGil::LoaderGil(bool required) : gated_(PyGILState_GetThisThreadState() == nullptr) {
  if (gated_) {
    Gate& g = gate();
    std::lock_guard lock(g.mu);
    if (g.closed) {
      gated_ = false;
      if (required) fail<Error>("DataLoader", "the Python interpreter is shutting down");
      return;
    }
    ++g.inside;
  }
  state_ = PyGILState_Ensure();
  acquired_ = true;
  ++depth_;
}

LoaderGil::~LoaderGil() {
  if (!acquired_) return;
  --depth_;
  PyGILState_Release(state_);
  if (!gated_) return;
  Gate& g = gate();
  {
    std::lock_guard lock(g.mu);
    --g.inside;
  }
  g.cv.notify_all();
}

void close_python_gate() {
  Gate& g = gate();
  {
    std::lock_guard lock(g.mu);
    g.closed = true;
  }
  nb::gil_scoped_release release;  // the threads inside need the GIL to leave
  std::unique_lock lock(g.mu);
  // A thread stuck in user code must not hang the exit for ever.
  g.cv.wait_for(lock, std::chrono::seconds(10), [&] { return g.inside == 0; });
}

}  // namespace data_bind

namespace {

using namespace data_bind;
using data::Example;

// ---- Python samples inside Examples --------------------------------------------------------

// A Python sample boxed in an Example: a 0-element uint8 tensor whose 16-byte storage holds a
// tag and the object. The tag (with the exact storage size) tells boxes from user tensors.
struct Box {
  uint64_t tag;
  PyObject* obj;
};
constexpr uint64_t kBoxTag = 0x7e55e7a5a3b1e0b1ULL;

Tensor box(nb::handle obj) {
  auto* b = new Box{kBoxTag, obj.inc_ref().ptr()};
  auto storage = Storage::wrap(b, sizeof(Box), Device::cpu(), [](void* p) {
    auto* bx = static_cast<Box*>(p);
    release_ref(bx->obj);
    delete bx;
  });
  return Tensor::make(std::move(storage), {0}, {1}, 0, kUInt8);
}

// The object boxed in e, or null when e is not a single box.
PyObject* unbox(const Example& e) {
  if (e.size() != 1 || !e[0].defined() || e[0].numel() != 0 || e[0].dtype() != kUInt8)
    return nullptr;
  const auto& s = e[0].storage();
  if (!s || s->released() || s->nbytes() != sizeof(Box) || !s->device().is_cpu()) return nullptr;
  const auto* b = static_cast<const Box*>(s->data());
  return b->tag == kBoxTag ? b->obj : nullptr;
}

// A sample as Python sees it: the boxed object, or a C++ example's tensors as a tuple (as
// PyTorch's TensorDataset yields).
nb::object sample_to_python(const Example& e) {
  if (PyObject* o = unbox(e)) return nb::borrow(o);
  nb::list fields;
  for (const Tensor& t : e) fields.append(nb::cast(t));
  return nb::tuple(fields);
}

// A batch: the boxed collate result, or a C++ batch's tensors as a list (PyTorch's
// default_collate turns tuple samples into lists).
nb::object batch_to_python(const Example& e) {
  if (PyObject* o = unbox(e)) return nb::borrow(o);
  nb::list fields;
  for (const Tensor& t : e) fields.append(nb::cast(t));
  return fields;
}

// ---- Python datasets in C++ ---------------------------------------------------------------

// Subclasses of tessera.data.Dataset. The tickets find the Python override (and take the GIL);
// a subclass that lacks one gets NotImplementedError, not a recursion into the base's binding.
class PyDataset : public data::Dataset {
 public:
  NB_TRAMPOLINE(data::Dataset);
  int64_t size() const override {
    LoaderGil gil;  // the gate (see LoaderGil) comes before the ticket
    nb::detail::ticket t(nb_trampoline, "__len__", nb::detail::str_hash("__len__"), false);
    if (!t.key.is_valid()) missing("__len__");
    return nb::cast<int64_t>(nb_trampoline.base().attr(t.key)());
  }
  Example get(int64_t i) const override {
    LoaderGil gil;  // the gate (see LoaderGil) comes before the ticket
    nb::detail::ticket t(nb_trampoline, "__getitem__", nb::detail::str_hash("__getitem__"), false);
    if (!t.key.is_valid()) missing("__getitem__");
    return {box(nb_trampoline.base().attr(t.key)(i))};
  }

 private:
  [[noreturn]] static void missing(const char* method) {
    fail<NotImplementedError>("Dataset", "subclasses of Dataset must define {}", method);
  }
};

// The next item of a Python iterator, boxed; nullopt at its end. Call with the GIL.
std::optional<Example> next_boxed(const PyRef& it) {
  PyObject* o = PyIter_Next(it.get().ptr());
  if (!o) {
    if (PyErr_Occurred()) throw nb::python_error();
    return std::nullopt;
  }
  return Example{box(nb::steal(o))};
}

// The stream of an iterable: iter(obj) afresh each epoch. `obj` is borrowed; the iterator
// (which often refers back to obj, e.g. a generator method) is owned.
class Stream {
 public:
  explicit Stream(nb::handle obj) : obj_(obj.ptr()) {}
  std::optional<Example> next() {
    LoaderGil gil;
    if (!it_) it_ = PyRef(nb::iter(nb::handle(obj_)));
    const PyRef it = it_;  // held while it runs: a collection may clear it_ meanwhile
    return next_boxed(it);
  }
  void reset() {
    LoaderGil gil;
    it_ = PyRef(nb::iter(nb::handle(obj_)));
  }
  int traverse(visitproc visit, void* arg) const {
    Py_VISIT(it_.get().ptr());
    return 0;
  }
  void clear() { it_ = PyRef(); }

 private:
  PyObject* obj_;
  PyRef it_;
};

// Subclasses of tessera.data.IterableDataset (each epoch iterates iter(self) afresh).
class PyIterableDataset : public data::IterableDataset {
 public:
  NB_TRAMPOLINE(data::IterableDataset);
  std::optional<Example> next() override { return stream_.next(); }
  void reset() override { stream_.reset(); }
  Stream& stream() { return stream_; }

 private:
  Stream stream_{nb_trampoline.base()};
};

// The iterator of a PyIterableDataset is seen by the collector through its Python object.
PyIterableDataset& iterable_of(PyObject* self) {
  return static_cast<PyIterableDataset&>(*nb::inst_ptr<data::IterableDataset>(self));
}
int iterable_traverse(PyObject* self, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(self));
  return nb::inst_ready(self) ? iterable_of(self).stream().traverse(visit, arg) : 0;
}
int iterable_clear(PyObject* self) {
  if (nb::inst_ready(self)) iterable_of(self).stream().clear();
  return 0;
}
PyType_Slot iterable_slots[] = {{Py_tp_traverse, reinterpret_cast<void*>(&iterable_traverse)},
                                {Py_tp_clear, reinterpret_cast<void*>(&iterable_clear)},
                                {0, nullptr}};

// Any object with __getitem__ and __len__ (borrowed).
class ObjectDataset : public data::Dataset {
 public:
  explicit ObjectDataset(nb::handle obj) : obj_(obj.ptr()) {}
  int64_t size() const override {
    LoaderGil gil;
    return static_cast<int64_t>(nb::len(nb::handle(obj_)));
  }
  Example get(int64_t i) const override {
    LoaderGil gil;
    return {box(nb::handle(obj_)[nb::int_(i)])};
  }

 private:
  PyObject* obj_;
};

// Any iterable object (borrowed).
class ObjectIterable : public data::IterableDataset {
 public:
  explicit ObjectIterable(nb::handle obj) : stream_(obj) {}
  std::optional<Example> next() override { return stream_.next(); }
  void reset() override { stream_.reset(); }
  const Stream& stream() const { return stream_; }

 private:
  Stream stream_;
};

bool is_map_style(nb::handle ds) {
  if (nb::isinstance<data::IterableDataset>(ds)) return false;
  return nb::isinstance<data::Dataset>(ds) ||
         (nb::hasattr(ds, "__getitem__") && nb::hasattr(ds, "__len__"));
}

// A shared_ptr that does not own: the Python object owns the C++ one.
template <class T>
std::shared_ptr<T> view_of(nb::handle h) {
  return std::shared_ptr<T>(std::shared_ptr<void>(), nb::inst_ptr<T>(h));
}

// A C++ view of a Python dataset; the caller keeps `ds` alive as long as the view.
std::shared_ptr<data::Dataset> dataset_view(nb::handle ds, const char* op) {
  if (nb::isinstance<data::Dataset>(ds) && nb::inst_ready(ds)) return view_of<data::Dataset>(ds);
  if (is_map_style(ds)) return std::make_shared<ObjectDataset>(ds);
  type_error(
      fmt::format("{}(): expected a map-style dataset (an object with __getitem__ and "
                  "__len__), got {}",
                  op, py_type_name(ds)));
}

// ---- C++ datasets that own their Python parts ---------------------------------------------

// A Subset that owns the Python dataset its base views (PyTorch's Subset.dataset).
class PySubset : public data::Subset {
 public:
  PySubset(nb::handle dataset, std::shared_ptr<data::Dataset> base, std::vector<int64_t> indices)
      : data::Subset(std::move(base), std::move(indices)), dataset_(nb::borrow(dataset)) {}
  nb::handle dataset() const { return dataset_; }
  int traverse(visitproc visit, void* arg) const {
    Py_VISIT(dataset_.ptr());
    return 0;
  }

 private:
  nb::object dataset_;
};

class PyConcatDataset : public data::ConcatDataset {
 public:
  PyConcatDataset(nb::list datasets, std::vector<std::shared_ptr<data::Dataset>> parts)
      : data::ConcatDataset(std::move(parts)), datasets_(std::move(datasets)) {}
  nb::handle datasets() const { return datasets_; }
  int traverse(visitproc visit, void* arg) const {
    Py_VISIT(datasets_.ptr());
    return 0;
  }

 private:
  nb::list datasets_;
};

PyConcatDataset make_concat(nb::handle datasets) {
  nb::list list;
  std::vector<std::shared_ptr<data::Dataset>> parts;
  for (nb::handle d : nb::iter(datasets)) {
    list.append(d);
    parts.push_back(dataset_view(d, "ConcatDataset"));
  }
  return PyConcatDataset(std::move(list), std::move(parts));
}

// An ImageFolder that owns its transform (a tessera transform or a Python callable).
class PyImageFolder : public data::ImageFolder {
 public:
  using data::ImageFolder::ImageFolder;
  nb::object transform;
  int traverse(visitproc visit, void* arg) const {
    Py_VISIT(transform.ptr());
    return 0;
  }
};

void init_image_folder(PyImageFolder* self, const std::filesystem::path& root, nb::handle transform,
                       int channels, std::optional<std::vector<std::string>> extensions) {
  data::ImageFolderOptions o;
  if (!transform.is_none()) o.transform = as_transform(transform);
  o.channels = channels;
  if (extensions) o.extensions = std::move(*extensions);
  {
    nb::gil_scoped_release release;  // scans the folder
    new (self) PyImageFolder(root.string(), std::move(o));
  }
  if (!transform.is_none()) self->transform = nb::borrow(transform);
}

// Whether every example comes from C++, so that batches can use Dataset::get_batch (the C++
// dataset classes are final, so a Python subclass cannot change what they return).
bool is_native(nb::handle ds) {
  if (nb::isinstance<data::TensorDataset>(ds) || nb::isinstance<PyImageFolder>(ds)) return true;
  if (nb::isinstance<PySubset>(ds)) return is_native(nb::cast<const PySubset&>(ds).dataset());
  if (!nb::isinstance<PyConcatDataset>(ds)) return false;
  for (nb::handle d : nb::cast<const PyConcatDataset&>(ds).datasets())
    if (!is_native(d)) return false;
  return true;
}

nb::list random_split(nb::handle dataset, nb::handle lengths, nb::handle generator) {
  auto ds = dataset_view(dataset, "random_split");
  Generator* g = as_generator(generator, "random_split");
  Generator& gen = g ? *g : default_generator();
  // All ints: lengths; anything else: fractions (PyTorch's rule).
  std::vector<int64_t> counts;
  std::vector<double> fractions;
  bool all_int = true;
  for (nb::handle l : nb::iter(lengths)) {
    all_int = all_int && PyLong_Check(l.ptr());
    if (all_int) counts.push_back(nb::cast<int64_t>(l));
    fractions.push_back(nb::cast<double>(l));
  }
  std::vector<std::shared_ptr<data::Subset>> parts;
  {
    nb::gil_scoped_release release;  // size() of a Python dataset takes the GIL back
    parts = all_int ? data::random_split(ds, counts, gen)
                    : data::random_split_fractions(ds, fractions, gen);
  }
  nb::list out;
  for (const auto& p : parts) out.append(PySubset(dataset, ds, p->indices()));
  return out;
}

// ---- DataLoader ---------------------------------------------------------------------------

// Collation in Python terms, for batches that are not all C++: the samples, unboxed, go to
// collate_fn (borrowed; default_collate when null) under the GIL, and the result travels boxed.
Example collate_boxed(const std::vector<Example>& examples, PyObject* collate_fn) {
  LoaderGil gil;
  nb::list samples;
  for (const Example& e : examples) samples.append(sample_to_python(e));
  return {box(collate_fn ? nb::handle(collate_fn)(samples) : default_collate(samples))};
}

// The batches of a map-style dataset with Python parts, each built under one GIL acquisition
// (a loader thread that takes the GIL per sample spends more time switching than working).
class PythonBatches : public data::Dataset {
 public:
  PythonBatches(std::shared_ptr<data::Dataset> base, PyObject* collate_fn)
      : base_(std::move(base)), collate_fn_(collate_fn) {}
  int64_t size() const override { return base_->size(); }
  Example get(int64_t i) const override { return base_->get(i); }
  Example get_batch(const std::vector<int64_t>& indices) const override {
    LoaderGil gil;
    std::vector<Example> examples;
    examples.reserve(indices.size());
    for (int64_t i : indices) examples.push_back(base_->get(i));
    return collate_boxed(examples, collate_fn_);
  }

 private:
  std::shared_ptr<data::Dataset> base_;
  PyObject* collate_fn_;
};

// The loader owns what Python gave it; the C++ loader (and its epochs) borrow it.
struct Loader {
  nb::object dataset, collate_fn, generator;
  std::shared_ptr<ObjectIterable> stream;  // the adapter of a plain iterable, if any
  std::unique_ptr<data::DataLoader> loader;

  int traverse(visitproc visit, void* arg) const {
    Py_VISIT(dataset.ptr());
    Py_VISIT(collate_fn.ptr());
    Py_VISIT(generator.ptr());
    return stream ? stream->stream().traverse(visit, arg) : 0;
  }
};

struct LoaderOptions {
  int64_t batch_size;
  bool shuffle, drop_last;
  int64_t num_workers, prefetch_factor;
  bool pin_memory;
};

// Native map-style datasets without a collate_fn take the C++ path (Dataset::get_batch);
// others have their batches collated in Python terms.
std::unique_ptr<data::DataLoader> make_loader(Loader& l, data::DataLoaderOptions o) {
  PyObject* collate_fn = l.collate_fn.is_none() ? nullptr : l.collate_fn.ptr();
  if (is_map_style(l.dataset)) {
    auto ds = dataset_view(l.dataset, "DataLoader");
    if (collate_fn || !is_native(l.dataset)) ds = std::make_shared<PythonBatches>(ds, collate_fn);
    return std::make_unique<data::DataLoader>(std::move(ds), o);
  }
  o.collate = [collate_fn](const std::vector<Example>& e) { return collate_boxed(e, collate_fn); };
  if (nb::isinstance<data::IterableDataset>(l.dataset) && nb::inst_ready(l.dataset))
    return std::make_unique<data::DataLoader>(view_of<data::IterableDataset>(l.dataset), o);
  if (!nb::hasattr(l.dataset, "__iter__"))
    type_error(
        "DataLoader(): expected a dataset (with __getitem__ and __len__, or __iter__), "
        "got " +
        py_type_name(l.dataset));
  l.stream = std::make_shared<ObjectIterable>(l.dataset);
  return std::make_unique<data::DataLoader>(l.stream, o);
}

void init_loader(Loader* self, nb::handle dataset, const LoaderOptions& lo, nb::handle collate_fn,
                 nb::handle generator, std::optional<uint64_t> seed) {
  if (!collate_fn.is_none() && !PyCallable_Check(collate_fn.ptr()))
    type_error("DataLoader(): collate_fn must be callable or None, got " +
               py_type_name(collate_fn));
  data::DataLoaderOptions o;
  o.batch_size = lo.batch_size;
  o.shuffle = lo.shuffle;
  o.drop_last = lo.drop_last;
  o.num_workers = lo.num_workers;
  o.prefetch_factor = lo.prefetch_factor;
  o.pin_memory = lo.pin_memory;
  o.generator = as_generator(generator, "DataLoader");
  o.seed = seed;
  Loader l{nb::borrow(dataset), nb::borrow(collate_fn), nb::borrow(generator), nullptr, nullptr};
  l.loader = make_loader(l, o);
  new (self) Loader(std::move(l));
}

// Ends an epoch: joins its threads, which may be waiting for the GIL, so without it.
void end_epoch(data::DataLoader::Iterator& it) {
  nb::gil_scoped_release release;
  it = {};
}

// An epoch to end later, with the loader whose dataset its threads still use.
struct EndingEpoch {
  data::DataLoader::Iterator it;
  nb::object loader;
};

int end_epoch_later(void* p) {
  std::unique_ptr<EndingEpoch> e(static_cast<EndingEpoch*>(p));
  end_epoch(e->it);
  return 0;  // then the loader goes, with the GIL
}

// One epoch's batches; it keeps its loader (and so the dataset) alive. Waiting for a batch and
// ending the epoch happen without the GIL: the workers may need it to finish. An epoch freed
// by a garbage collection inside a loader callback (maybe on one of its own threads, which
// cannot join itself) is ended by the main thread, at its next pending-call check.
struct LoaderIterator {
  data::DataLoader::Iterator it;
  nb::object loader;
  bool fresh = true;  // `it` holds the first batch, not yet returned

  LoaderIterator(data::DataLoader::Iterator i, nb::handle l)
      : it(std::move(i)), loader(nb::borrow(l)) {}
  LoaderIterator(LoaderIterator&&) = default;
  LoaderIterator& operator=(LoaderIterator&&) = default;
  ~LoaderIterator() {
    if (!PyGILState_Check()) return;
    if (!LoaderGil::active()) {
      end_epoch(it);
    } else {
      // If the queue is full the epoch is leaked: better than joining from a worker thread.
      Py_AddPendingCall(&end_epoch_later, new EndingEpoch{std::move(it), std::move(loader)});
    }
  }
  int traverse(visitproc visit, void* arg) const {
    Py_VISIT(loader.ptr());
    return 0;
  }
};

LoaderIterator begin_epoch(nb::handle self) {
  data::DataLoader& loader = *nb::inst_ptr<Loader>(self)->loader;
  data::DataLoader::Iterator it;
  {
    nb::gil_scoped_release release;
    it = loader.begin();
  }
  return LoaderIterator(std::move(it), self);
}

nb::object next_batch(LoaderIterator& self) {
  const data::DataLoader::Iterator end;
  if (!self.fresh && !(self.it == end)) {
    nb::gil_scoped_release release;
    ++self.it;
  }
  self.fresh = false;
  if (self.it == end) throw nb::stop_iteration();
  return batch_to_python(*self.it);
}

int64_t loader_len(const Loader& l) {
  if (!is_map_style(l.dataset)) type_error("len(DataLoader): an iterable dataset has no length");
  nb::gil_scoped_release release;  // size() of a Python dataset takes the GIL back
  return l.loader->size();
}

// ---- bindings -----------------------------------------------------------------------------

nb::object dataset_getitem(const data::Dataset& ds, int64_t i) {
  Example e;
  {
    nb::gil_scoped_release release;  // a Python base dataset takes it back
    e = ds.get(i < 0 ? i + ds.size() : i);
  }
  return sample_to_python(e);
}

void bind_base_datasets(nb::module_& m) {
  nb::class_<data::Dataset, PyDataset>(
      m, "Dataset",
      "A map-style dataset: subclass it and define __getitem__(i) and __len__(). Samples may be "
      "tensors, arrays, numbers, strings, or dicts/tuples/lists of them.")
      .def(nb::init<>())
      .def("__len__",
           [](const data::Dataset& ds) {
             nb::gil_scoped_release release;
             return ds.size();
           })
      .def("__getitem__", &dataset_getitem, nb::arg("index"))
      .def(
          "__add__",
          [](nb::handle self, nb::handle other) {
            nb::list pair;
            pair.append(self);
            pair.append(other);
            return make_concat(pair);
          },
          nb::arg("other"), "The two datasets one after the other (a ConcatDataset).");

  nb::class_<data::IterableDataset, PyIterableDataset>(
      m, "IterableDataset",
      "A stream dataset: subclass it and define __iter__(); each epoch iterates it afresh.",
      nb::type_slots(iterable_slots))
      .def(nb::init<>());
}

void bind_tensor_datasets(nb::module_& m) {
  nb::class_<data::TensorDataset, data::Dataset>(
      m, "TensorDataset",
      "Samples are the rows of tensors that share their first dim: ds[i] = (t[i] for t).",
      nb::is_final())
      .def("__init__",
           [](data::TensorDataset* self, const nb::args& tensors) {
             new (self) data::TensorDataset(nb::cast<std::vector<Tensor>>(tensors));
           })
      .def_prop_ro(
          "tensors", [](const data::TensorDataset& d) { return nb::tuple(nb::cast(d.tensors())); },
          "The tensors, as given.");

  nb::class_<PySubset, data::Dataset>(m, "Subset",
                                      "The samples of `dataset` at `indices`, in that order.",
                                      nb::is_final(), nb::type_slots(gc_slots<PySubset>))
      .def(
          "__init__",
          [](PySubset* self, nb::handle dataset, std::vector<int64_t> indices) {
            new (self) PySubset(dataset, dataset_view(dataset, "Subset"), std::move(indices));
          },
          nb::arg("dataset"), nb::arg("indices"))
      .def_prop_ro(
          "dataset", [](const PySubset& s) { return nb::borrow(s.dataset()); },
          "The dataset the indices refer to.")
      .def_prop_ro("indices", &PySubset::indices, "The indices into `dataset`.");

  nb::class_<PyConcatDataset, data::Dataset>(m, "ConcatDataset", "The datasets one after another.",
                                             nb::is_final(),
                                             nb::type_slots(gc_slots<PyConcatDataset>))
      .def(
          "__init__",
          [](PyConcatDataset* self, nb::handle datasets) {
            new (self) PyConcatDataset(make_concat(datasets));
          },
          nb::arg("datasets"))
      .def_prop_ro(
          "datasets", [](const PyConcatDataset& c) { return nb::borrow(c.datasets()); },
          "The datasets, in order.")
      .def_prop_ro(
          "cumulative_sizes",
          [](const PyConcatDataset& c) {
            std::vector<int64_t> ends;
            int64_t total = 0;
            for (nb::handle d : c.datasets()) ends.push_back(total += nb::len(d));
            return ends;
          },
          "The running totals of the datasets' lengths.");
}

void bind_image_folder(nb::module_& m) {
  nb::class_<PyImageFolder, data::Dataset>(
      m, "ImageFolder",
      "root/<class>/**/<image>: ds[i] = (image as float32 (C, H, W) in [0, 1], class index). "
      "Classes are the sorted subfolders; `transform` (a tessera transform or a callable) "
      "applies to the float image.",
      nb::is_final(), nb::type_slots(gc_slots<PyImageFolder>))
      .def("__init__", &init_image_folder, nb::arg("root"), nb::arg("transform") = nb::none(),
           nb::kw_only(), nb::arg("channels") = 3, nb::arg("extensions") = nb::none())
      .def_prop_ro("classes", &PyImageFolder::classes, "The class names, sorted.")
      .def_prop_ro("samples", &PyImageFolder::samples, "(path, class index) of every image.")
      .def_prop_ro(
          "targets",
          [](const PyImageFolder& f) {
            std::vector<int64_t> t;
            for (const auto& s : f.samples()) t.push_back(s.second);
            return t;
          },
          "The class index of every image.")
      .def_prop_ro(
          "class_to_idx",
          [](const PyImageFolder& f) {
            nb::dict d;
            for (size_t k = 0; k < f.classes().size(); ++k) d[f.classes()[k].c_str()] = k;
            return d;
          },
          "{class name: index}.");
}

void bind_datasets(nb::module_& m) {
  bind_base_datasets(m);
  bind_tensor_datasets(m);
  bind_image_folder(m);
  m.def("random_split", &random_split, nb::arg("dataset"), nb::arg("lengths"),
        nb::arg("generator") = nb::none(),
        "Splits a dataset into non-overlapping random Subsets of the given lengths (ints summing "
        "to len(dataset), or fractions summing to 1, the remainder going to the first subsets "
        "as in PyTorch). The same generator state gives the same split.");
  m.def("default_collate", &default_collate, nb::arg("batch"),
        "Collates a list of samples like PyTorch: tensors, arrays and numbers are stacked along "
        "a new dim 0 (Python ints as int64, floats as float64), strings kept as a list, dicts "
        "and sequences collated entry by entry (tuples become lists).");
}

void bind_loader(nb::module_& m) {
  nb::class_<LoaderIterator>(m, "DataLoaderIterator", "The batches of one epoch of a DataLoader.",
                             nb::type_slots(gc_slots<LoaderIterator>))
      .def("__iter__", [](nb::handle self) { return self; })
      .def("__next__", &next_batch);

  nb::class_<Loader>(
      m, "DataLoader",
      "Batches of a dataset, optionally shuffled, built ahead by num_workers threads. Each "
      "iteration is an epoch (reshuffled when shuffle=True); the order depends only on the "
      "generator or seed, not on num_workers. Without a seed or generator, shuffling draws its "
      "seed from the default generator when the loader is made (so tessera.manual_seed fixes "
      "the order).",
      nb::type_slots(gc_slots<Loader>))
      .def(
          "__init__",
          [](Loader* self, nb::handle dataset, int64_t batch_size, bool shuffle,
             int64_t num_workers, nb::handle collate_fn, bool drop_last, nb::handle generator,
             std::optional<uint64_t> seed, int64_t prefetch_factor, bool pin_memory) {
            init_loader(self, dataset,
                        {batch_size, shuffle, drop_last, num_workers, prefetch_factor, pin_memory},
                        collate_fn, generator, seed);
          },
          nb::arg("dataset"), nb::arg("batch_size") = 1, nb::arg("shuffle") = false, nb::kw_only(),
          nb::arg("num_workers") = 0, nb::arg("collate_fn") = nb::none(),
          nb::arg("drop_last") = false, nb::arg("generator") = nb::none(),
          nb::arg("seed") = nb::none(), nb::arg("prefetch_factor") = 2,
          nb::arg("pin_memory") = false)
      .def("__iter__", &begin_epoch, "Starts an epoch.")
      .def("__len__", &loader_len)
      .def_prop_ro(
          "dataset", [](const Loader& l) { return l.dataset; }, "The dataset.")
      .def_prop_ro(
          "batch_size", [](const Loader& l) { return l.loader->options().batch_size; },
          "Samples per batch.")
      .def_prop_ro(
          "drop_last", [](const Loader& l) { return l.loader->options().drop_last; },
          "Whether a last, smaller batch is dropped.")
      .def_prop_ro(
          "num_workers", [](const Loader& l) { return l.loader->options().num_workers; },
          "Loader threads (0: batches are built on the iterating thread).")
      .def_prop_ro(
          "prefetch_factor", [](const Loader& l) { return l.loader->options().prefetch_factor; },
          "Batches kept ready per worker.")
      .def_prop_ro(
          "collate_fn", [](const Loader& l) { return l.collate_fn; },
          "The collate function (None: default_collate).")
      .def_prop_ro(
          "generator", [](const Loader& l) { return l.generator; },
          "The generator shuffling draws from (None: the seed).");
}

}  // namespace

void init_data(nb::module_& m) {
  nb::module_ d = m.def_submodule("_data", "Datasets, the DataLoader, transforms and readers.");
  bind_datasets(d);
  bind_loader(d);
  bind_readers(d);
  nb::module_ t = d.def_submodule("transforms", "Tensor transforms for preprocessing.");
  init_data_transforms(t);
  // Before finalization starts: loader threads must stop calling Python by then.
  nb::module_::import_("atexit").attr("register")(nb::cpp_function(&data_bind::close_python_gate));
}

}  // namespace tessera::py
