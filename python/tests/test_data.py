"""tessera.data: datasets, the DataLoader, default_collate, transforms and readers.

Batches are checked against NumPy slices of the same data, default_collate against PyTorch's
where it is installed, and the readers against files written by NumPy or by hand.
"""
import collections
import faulthandler
import gc
import gzip
import struct
import subprocess
import sys
import threading
import weakref

import numpy as np
import pytest

import tessera as ts
from tessera.data import (
    ConcatDataset,
    DataLoader,
    Dataset,
    ImageFolder,
    IterableDataset,
    Subset,
    TensorDataset,
    default_collate,
    random_split,
    read_csv,
    read_idx,
    read_image,
    transforms,
    write_csv,
)

from conftest import requires_torch, torch

requires_generator = pytest.mark.skipif(not hasattr(ts, "Generator"),
                                        reason="tessera.Generator is not bound")


class Squares(Dataset):
    """Sample i: (x_i = [i, i^2] as float32, i as a Python int)."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return ts.tensor([float(i), float(i * i)]), i


def squares_x(indices):
    return np.array([[i, i * i] for i in indices], dtype=np.float32)


def epoch_indices(loader):
    return [batch[1].tolist() for batch in loader]


@pytest.fixture
def watchdog():
    # A deadlock holds the GIL, so only faulthandler's own thread can end the run.
    faulthandler.dump_traceback_later(60, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


# ---- DataLoader over a Python dataset ------------------------------------------------------

def test_dataloader_batches_in_order_with_default_collate():
    loader = DataLoader(Squares(10), batch_size=4)
    assert len(loader) == 3 and loader.batch_size == 4 and not loader.drop_last
    batches = list(loader)
    assert [b[1].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    for b, start in zip(batches, [0, 4, 8]):
        assert isinstance(b, list) and len(b) == 2  # tuple samples -> list batches (PyTorch)
        idx = range(start, min(start + 4, 10))
        np.testing.assert_array_equal(b[0].numpy(), squares_x(idx))
        assert b[0].dtype == ts.float32 and b[1].dtype == ts.int64  # Python ints -> int64


def test_drop_last_and_len():
    assert len(DataLoader(Squares(10), batch_size=4, drop_last=True)) == 2
    assert epoch_indices(DataLoader(Squares(10), batch_size=4, drop_last=True)) == [
        [0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(DataLoader(Squares(8), batch_size=4, drop_last=True)) == 2
    assert len(DataLoader(Squares(3), batch_size=4)) == 1
    assert len(DataLoader(Squares(3), batch_size=4, drop_last=True)) == 0
    assert list(DataLoader(Squares(3), batch_size=4, drop_last=True)) == []


def test_shuffle_is_a_permutation_fixed_by_the_seed():
    a = DataLoader(Squares(50), batch_size=8, shuffle=True, seed=7)
    b = DataLoader(Squares(50), batch_size=8, shuffle=True, seed=7)
    first, again = epoch_indices(a), epoch_indices(b)
    assert first == again
    flat = sum(first, [])
    assert sorted(flat) == list(range(50)) and flat != list(range(50))
    assert epoch_indices(a) != first  # the next epoch reshuffles
    assert epoch_indices(DataLoader(Squares(50), batch_size=8, shuffle=True, seed=8)) != first
    batch = next(iter(DataLoader(Squares(50), batch_size=8, shuffle=True, seed=7)))
    np.testing.assert_array_equal(batch[0].numpy(), squares_x(first[0]))  # x follows the index


@requires_generator
def test_shuffle_draws_from_a_generator_or_the_default_one():
    def order(**kw):
        return epoch_indices(DataLoader(Squares(30), batch_size=30, shuffle=True, **kw))
    g = ts.Generator()
    first = order(generator=g.manual_seed(3))
    assert order(generator=g.manual_seed(3)) == first
    assert order(generator=g.manual_seed(4)) != first
    ts.manual_seed(11)
    seeded = order()
    ts.manual_seed(11)
    assert order() == seeded


def test_num_workers_run_python_on_worker_threads_and_give_the_same_batches(watchdog):
    class Recording(Squares):
        def __getitem__(self, i):
            threads.add(threading.get_ident())
            return super().__getitem__(i)

    threads = set()
    ds = Recording(37)
    serial = DataLoader(ds, batch_size=4, shuffle=True, seed=5)
    parallel = DataLoader(ds, batch_size=4, shuffle=True, seed=5, num_workers=2)
    expected = [[(b[0].numpy(), b[1].tolist()) for b in serial] for _ in range(3)]
    assert threads == {threading.get_ident()}  # num_workers=0: the iterating thread
    threads.clear()
    for epoch in expected:  # later epochs reshuffle identically in both loaders
        got = [(b[0].numpy(), b[1].tolist()) for b in parallel]
        assert [g[1] for g in got] == [e[1] for e in epoch]
        for (gx, _), (ex, _) in zip(got, epoch):
            np.testing.assert_array_equal(gx, ex)
    assert expected[0][0][1] != expected[1][0][1]
    assert threading.get_ident() not in threads and len(threads) >= 1


def test_abandoned_epoch_with_workers_ends_cleanly(watchdog):
    loader = DataLoader(Squares(100), batch_size=2, num_workers=2, prefetch_factor=4)
    for _ in range(5):
        it = iter(loader)
        next(it)
        del it  # joins workers that may be waiting for the GIL
    assert epoch_indices(loader)[-1] == [98, 99]


def test_python_collate_fn_gets_the_raw_samples(watchdog):
    seen = []

    def collate(samples):
        seen.append([type(s[1]) for s in samples])
        return {"sum": sum(s[1] for s in samples), "n": len(samples)}

    for workers in (0, 2):
        seen.clear()
        got = list(DataLoader(Squares(7), batch_size=3, collate_fn=collate, num_workers=workers))
        assert got == [{"sum": 3, "n": 3}, {"sum": 12, "n": 3}, {"sum": 6, "n": 1}]
        assert all(t is int for batch in seen for t in batch)


def test_dict_samples_are_collated_per_key():
    class Dicts(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return {"image": np.full((2, 3), i, dtype=np.float64), "label": i % 2,
                    "name": f"s{i}", "weight": 0.5 * i}

    batch = next(iter(DataLoader(Dicts(), batch_size=4)))
    assert list(batch) == ["image", "label", "name", "weight"]
    np.testing.assert_array_equal(batch["image"].numpy(),
                                  np.stack([np.full((2, 3), i, np.float64) for i in range(4)]))
    assert batch["image"].dtype == ts.float64  # arrays keep their dtype
    assert batch["label"].tolist() == [0, 1, 0, 1] and batch["label"].dtype == ts.int64
    assert batch["name"] == ["s0", "s1", "s2", "s3"]
    np.testing.assert_array_equal(batch["weight"].numpy(), [0.0, 0.5, 1.0, 1.5])
    assert batch["weight"].dtype == ts.float64


def test_default_collate_structure_and_dtypes():
    point = collections.namedtuple("Point", "x y")
    samples = [(point(np.int32(i), [True, 1.5 * i]), {"t": ts.tensor([i, -i])}) for i in range(3)]
    out = default_collate(samples)
    assert isinstance(out, list) and isinstance(out[0], point)
    assert out[0].x.dtype == ts.int32 and out[0].x.tolist() == [0, 1, 2]
    assert out[0].y[0].dtype == ts.bool and out[0].y[0].tolist() == [True] * 3
    np.testing.assert_array_equal(out[0].y[1].numpy(), [0.0, 1.5, 3.0])
    assert out[1]["t"].tolist() == [[0, 0], [1, -1], [2, -2]]


@requires_torch
def test_default_collate_matches_pytorch():
    samples = [({"a": np.arange(3, dtype=np.float32) + i, "b": (i, 0.25 * i)}, [i % 2 == 0, "w"])
               for i in range(4)]
    ours = default_collate(samples)
    theirs = torch.utils.data.default_collate(samples)

    def compare(a, b):
        if isinstance(b, torch.Tensor):
            assert str(a.dtype).split(".")[-1] == str(b.dtype).split(".")[-1]
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        elif isinstance(b, dict):
            assert type(a) is type(b) and list(a) == list(b)
            for k in b:
                compare(a[k], b[k])
        elif isinstance(b, (list, tuple)):
            assert type(a) is type(b) and len(a) == len(b)
            for x, y in zip(a, b):
                compare(x, y)
        else:
            assert a == b

    compare(ours, theirs)


def test_default_collate_errors_name_the_entry():
    with pytest.raises(ValueError,
                       match=r"sample 1 has shape \(3,\) but sample 0 has \(2,\) at \['x'\]"):
        default_collate([{"x": ts.tensor([1, 2])}, {"x": ts.tensor([1, 2, 3])}])
    with pytest.raises(TypeError, match="sample 1 is a str but sample 0 is a int at \\[1\\]"):
        default_collate([(1, 2), (1, "a")])
    with pytest.raises(ValueError, match="sample 1 has 1 entries but sample 0 has 2"):
        default_collate([(1, 2), (3,)])
    with pytest.raises(TypeError, match="found NoneType"):
        default_collate([None, None])
    with pytest.raises(KeyError):
        default_collate([{"a": 1}, {"b": 1}])


def test_sequences_and_datasets_without_base_init_work():
    class NoInit(Dataset):  # PyTorch-style: never calls Dataset.__init__
        def __init__(self):
            self.values = [3, 1, 4]

        def __len__(self):
            return len(self.values)

        def __getitem__(self, i):
            return self.values[i]

    assert [b.tolist() for b in DataLoader(NoInit(), batch_size=2)] == [[3, 1], [4]]
    pairs = [(np.float32(i), i) for i in range(3)]
    batch = next(iter(DataLoader(pairs, batch_size=3)))
    assert batch[0].dtype == ts.float32 and batch[1].tolist() == [0, 1, 2]


def test_errors_in_getitem_reach_the_iterating_thread(watchdog):
    class Failing(Squares):
        def __getitem__(self, i):
            if i == 5:
                raise KeyError(f"no sample {i}")
            return super().__getitem__(i)

    for workers in (0, 2):
        got = []
        with pytest.raises(KeyError, match="no sample 5"):
            for batch in DataLoader(Failing(10), batch_size=2, num_workers=workers):
                got.append(batch[1].tolist())
        assert got == [[0, 1], [2, 3]]


def test_iterable_dataset_streams_each_epoch(watchdog):
    class Countdown(IterableDataset):
        def __init__(self, n):
            super().__init__()
            self.n = n

        def __iter__(self):
            for i in range(self.n, 0, -1):
                yield {"v": i}

    for workers in (0, 1):
        loader = DataLoader(Countdown(5), batch_size=2, num_workers=workers)
        for _ in range(2):
            assert [b["v"].tolist() for b in loader] == [[5, 4], [3, 2], [1]]
    assert [b.tolist() for b in DataLoader(iter(range(3)), batch_size=2)] == [[0, 1], [2]]
    with pytest.raises(TypeError, match="no length"):
        len(DataLoader(Countdown(5)))
    with pytest.raises(ValueError, match="shuffle"):
        DataLoader(Countdown(5), shuffle=True)


def test_bad_arguments():
    with pytest.raises(TypeError, match="expected a dataset"):
        DataLoader(5)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        DataLoader(Squares(3), batch_size=0)
    with pytest.raises(ValueError, match="empty"):
        DataLoader(Squares(0))
    with pytest.raises(TypeError, match="collate_fn must be callable"):
        DataLoader(Squares(3), collate_fn=3)
    with pytest.raises(TypeError, match="generator must be a tessera.Generator"):
        DataLoader(Squares(3), shuffle=True, generator="g")

    class Incomplete(Dataset):
        def __len__(self):
            return 2

    with pytest.raises(NotImplementedError, match="must define __getitem__"):
        list(DataLoader(Incomplete()))


def test_loader_dataset_cycles_are_collected():
    class Owner(Squares):
        def __init__(self):
            super().__init__(4)
            self.loader = DataLoader(self, batch_size=2, collate_fn=lambda b: b)
            self.epoch = iter(self.loader)
            next(self.epoch)

    class Stream(IterableDataset):
        def __iter__(self):
            yield self  # the iterator refers back to the dataset

    s = Stream()
    s.loader = DataLoader(s, collate_fn=lambda b: None)
    s.epoch = iter(s.loader)
    next(s.epoch)
    refs = [weakref.ref(Owner()), weakref.ref(s)]
    del s
    gc.collect()
    assert all(r() is None for r in refs)


def test_epoch_collected_on_its_own_worker_thread(watchdog):
    # A worker runs a garbage collection (here in collate_fn) that frees its own epoch, garbage
    # in a cycle: it must not join itself; the main thread ends the epoch soon after.
    main = threading.get_ident()
    dropped, collected = threading.Event(), []

    def collate(samples):
        if threading.get_ident() != main and samples[0][1] == 2:
            dropped.wait(10)
            collected.append(gc.collect())
        return samples

    class Owner(Squares):
        def __init__(self):
            super().__init__(100)
            self.loader = DataLoader(self, batch_size=1, num_workers=2, collate_fn=collate)
            self.epoch = iter(self.loader)

    owner = Owner()
    next(owner.epoch)
    ref = weakref.ref(owner)
    del owner
    dropped.set()
    for _ in range(500):  # the main thread ends the epoch between bytecodes
        if ref() is None:
            break
        threading.Event().wait(0.01)
    assert collected and collected[0] > 0 and ref() is None


def test_no_leak_reports_at_exit():
    code = (
        "import tessera as ts\n"
        "from tessera.data import *\n"
        "class D(Dataset):\n"
        "    def __len__(self): return 4\n"
        "    def __getitem__(self, i): return i\n"
        "d = D(); loader = DataLoader(d, batch_size=2, num_workers=2)\n"
        "it = iter(loader); next(it)\n"
        "split = random_split(d, [1, 3])\n"
        "tf = transforms.Compose([lambda x: x])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "leaked" not in r.stderr


# ---- C++ datasets ---------------------------------------------------------------------------

def test_tensor_dataset_subset_and_concat(rng):
    x = rng.standard_normal((6, 3)).astype(np.float32)
    y = np.arange(6)
    ds = TensorDataset(ts.tensor(x), ts.tensor(y))
    assert len(ds) == 6 and len(ds.tensors) == 2
    xi, yi = ds[4]
    np.testing.assert_array_equal(xi.numpy(), x[4])
    assert yi.item() == 4 and ds[-1][1].item() == 5
    with pytest.raises(IndexError):
        ds[6]
    sub = Subset(ds, [5, 0, 2])
    assert sub.dataset is ds and sub.indices == [5, 0, 2]
    batch = next(iter(DataLoader(sub, batch_size=3)))
    np.testing.assert_array_equal(batch[0].numpy(), x[[5, 0, 2]])
    both = ds + Squares(2)
    assert isinstance(both, ConcatDataset) and len(both) == 8
    assert both.cumulative_sizes == [6, 8] and both.datasets[0] is ds
    assert both[7][1] == 1 and both[0][1].item() == 0
    with pytest.raises(ValueError, match="first dims differ"):
        TensorDataset(ts.tensor([1, 2]), ts.tensor([1, 2, 3]))


def test_tensor_dataset_loader_matches_numpy_gather(rng):
    x = rng.standard_normal((23, 4))
    ds = TensorDataset(ts.tensor(x))
    for workers in (0, 2):
        loader = DataLoader(ds, batch_size=5, shuffle=True, seed=1, num_workers=workers)
        seen = []
        for (xb,) in loader:
            rows = [int(np.flatnonzero((x == r).all(axis=1))[0]) for r in xb.numpy()]
            np.testing.assert_array_equal(xb.numpy(), x[rows])
            seen += rows
        assert sorted(seen) == list(range(23))


def test_mixed_chains_and_collate_fn_over_tensor_datasets(watchdog):
    class Pairs(Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return ts.tensor([100.0 + i]), ts.tensor(100 + i)

    td = TensorDataset(ts.tensor([[0.0], [1.0]]), ts.tensor([0, 1]))
    mixed = Subset(ConcatDataset([td, Pairs()]), [4, 0, 2])
    for workers in (0, 2):
        xb, yb = next(iter(DataLoader(mixed, batch_size=3, num_workers=workers)))
        assert xb.tolist() == [[102.0], [0.0], [100.0]] and yb.tolist() == [102, 0, 100]
    raw = next(iter(DataLoader(td, batch_size=2, collate_fn=lambda samples: samples)))
    assert isinstance(raw, list) and [type(s) for s in raw] == [tuple, tuple]
    assert raw[1][0].tolist() == [1.0] and raw[1][1].item() == 1


@pytest.mark.parametrize("lengths,sizes", [([3, 7], [3, 7]), ([0.33, 0.33, 0.34], [4, 3, 3]),
                                           ([0.5, 0.5], [5, 5])])
def test_random_split_sizes_and_disjointness(lengths, sizes):
    ds = Squares(10)
    parts = random_split(ds, lengths)
    assert [len(p) for p in parts] == sizes
    indices = sum((p.indices for p in parts), [])
    assert sorted(indices) == list(range(10))
    assert all(p.dataset is ds for p in parts)
    assert parts[0][0][1] == parts[0].indices[0]
    with pytest.raises(ValueError):
        random_split(ds, [3, 3])


@requires_torch
def test_random_split_fraction_sizes_match_pytorch():
    for n, fractions in [(10, [0.33, 0.33, 0.34]), (7, [0.5, 0.5]), (101, [0.8, 0.1, 0.1])]:
        theirs = [len(p) for p in torch.utils.data.random_split(range(n), fractions)]
        assert [len(p) for p in random_split(Squares(n), fractions)] == theirs


@requires_generator
def test_random_split_is_fixed_by_the_generator():
    g = ts.Generator()
    a = [p.indices for p in random_split(Squares(20), [5, 15], generator=g.manual_seed(2))]
    b = [p.indices for p in random_split(Squares(20), [5, 15], generator=g.manual_seed(2))]
    assert a == b


# ---- transforms -----------------------------------------------------------------------------

def test_to_tensor_normalize_and_compose(rng):
    img = rng.integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
    chw = transforms.ToTensor()(ts.from_numpy(img))
    np.testing.assert_allclose(chw.numpy(), img.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    norm = transforms.Normalize([0.5, 0.25, 0.0], [0.5, 2.0, 1.0])
    ref = (img.transpose(2, 0, 1) / 255.0 - np.array([0.5, 0.25, 0.0])[:, None, None]) / \
        np.array([0.5, 2.0, 1.0])[:, None, None]
    np.testing.assert_allclose(norm(chw).numpy(), ref, rtol=1e-5, atol=1e-6)
    pipeline = transforms.Compose([transforms.ToTensor(), norm, lambda t: t * 2])
    np.testing.assert_allclose(pipeline(ts.from_numpy(img)).numpy(), 2 * ref, rtol=1e-5, atol=1e-6)
    assert len(pipeline.transforms) == 3 and "Normalize(mean=[0.5, 0.25, 0]" in repr(pipeline)
    with pytest.raises(ValueError, match="zero"):
        transforms.Normalize([0.5], [0.0])
    with pytest.raises(TypeError, match="uint8"):
        transforms.ToTensor()(chw)
    with pytest.raises(TypeError, match="callable"):
        transforms.Compose([3])


def test_random_crop_and_flip(rng):
    x = rng.standard_normal((2, 6, 7)).astype(np.float32)
    flip = transforms.RandomHorizontalFlip(p=1.0)
    np.testing.assert_array_equal(flip(ts.tensor(x)).numpy(), x[..., ::-1])
    np.testing.assert_array_equal(transforms.RandomHorizontalFlip(p=0.0)(ts.tensor(x)).numpy(), x)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    crop = transforms.RandomCrop((5, 4), padding=1)
    windows = {(i, j) for i in range(padded.shape[1] - 4) for j in range(padded.shape[2] - 3)}
    seen = set()
    for _ in range(30):
        c = crop(ts.tensor(x)).numpy()
        assert c.shape == (2, 5, 4)
        match = [w for w in windows if np.array_equal(padded[:, w[0]:w[0] + 5, w[1]:w[1] + 4], c)]
        assert match
        seen.add(match[0])
    assert len(seen) > 1  # it is random
    assert transforms.RandomCrop(3)(ts.tensor(x)).shape == (2, 3, 3)
    with pytest.raises(ValueError, match="larger than the padded image"):
        transforms.RandomCrop(8)(ts.tensor(x))


# ---- readers --------------------------------------------------------------------------------

def test_csv_round_trip_against_numpy(tmp_path, rng):
    table = rng.standard_normal((5, 3))
    path = tmp_path / "t.csv"
    np.savetxt(path, table, delimiter=",", header="a,b,c", comments="")
    got = read_csv(path, skip_rows=1, dtype=ts.float64)
    np.testing.assert_array_equal(got.numpy(), table)
    assert read_csv(path, skip_rows=1).dtype == ts.float32
    write_csv(ts.tensor(table), tmp_path / "w.csv.gz", delimiter=";")
    with gzip.open(tmp_path / "w.csv.gz", "rt") as f:
        np.testing.assert_array_equal(np.loadtxt(f, delimiter=";"), table)
    (tmp_path / "bad.csv").write_text("1,2\n3,x\n")
    with pytest.raises(ts.IOError, match="bad.csv.*line 2"):
        read_csv(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="one character"):
        read_csv(path, delimiter=",,")


def test_idx_reader_against_a_handwritten_file(tmp_path, rng):
    images = rng.integers(0, 256, size=(3, 4, 5), dtype=np.uint8)
    raw = struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">III", 3, 4, 5) + images.tobytes()
    (tmp_path / "imgs-idx3-ubyte.gz").write_bytes(gzip.compress(raw))
    got = read_idx(tmp_path / "imgs-idx3-ubyte.gz")
    assert got.dtype == ts.uint8
    np.testing.assert_array_equal(got.numpy(), images)
    values = np.array([1.5, -2.0], dtype=">f4")
    raw = struct.pack(">BBBB", 0, 0, 0x0D, 1) + struct.pack(">I", 2) + values.tobytes()
    (tmp_path / "f.idx").write_bytes(raw)
    np.testing.assert_array_equal(read_idx(tmp_path / "f.idx").numpy(), [1.5, -2.0])
    (tmp_path / "short.idx").write_bytes(raw[:-1])
    with pytest.raises(ts.IOError, match="short.idx"):
        read_idx(tmp_path / "short.idx")


def write_bmp(path, rgb):
    """A 24-bit BMP (bottom-up rows, BGR, rows padded to 4 bytes)."""
    h, w, _ = rgb.shape
    row = w * 3 + (-w * 3) % 4
    pixels = b"".join(rgb[y, :, ::-1].tobytes() + b"\0" * (row - w * 3)
                      for y in range(h - 1, -1, -1))
    header = struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    path.write_bytes(header + info + pixels)


def test_image_folder_and_read_image(tmp_path, rng):
    images = {}
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for k in range(2):
            rgb = rng.integers(0, 256, size=(3, 5, 3), dtype=np.uint8)
            write_bmp(tmp_path / cls / f"{k}.bmp", rgb)
            images[(cls, k)] = rgb
    np.testing.assert_array_equal(read_image(tmp_path / "dog" / "1.bmp").numpy(),
                                  images[("dog", 1)])
    assert read_image(tmp_path / "dog" / "1.bmp", channels=1).shape == (3, 5, 1)
    folder = ImageFolder(tmp_path, transform=lambda t: t * 2)
    assert folder.classes == ["cat", "dog"] and folder.targets == [0, 0, 1, 1]
    assert folder.class_to_idx == {"cat": 0, "dog": 1} and len(folder.samples) == 4
    image, label = folder[2]
    expected = 2 * images[("dog", 0)].transpose(2, 0, 1).astype(np.float64) / 255
    np.testing.assert_allclose(image.numpy(), expected, rtol=1e-6)
    assert label.item() == 1
    xb, yb = next(iter(DataLoader(folder, batch_size=4, num_workers=2)))
    assert xb.shape == (4, 3, 3, 5) and yb.tolist() == [0, 0, 1, 1]
    with pytest.raises(ts.IOError, match="not a directory"):
        ImageFolder(tmp_path / "missing")


def test_pin_memory_needs_a_cuda_device_or_pins_every_batch():
    ds = TensorDataset(ts.arange(0, 40, dtype=ts.float32).reshape(10, 4), ts.arange(0, 10))
    if not ts.cuda.is_available():
        with pytest.raises(ts.DeviceError, match="pin_memory needs a CUDA device"):
            DataLoader(ds, batch_size=4, pin_memory=True)
        with pytest.raises(ts.DeviceError):
            ts.ones(3).pin_memory()
        assert not ts.ones(3).is_pinned()
        return
    seen = []
    for x, y in DataLoader(ds, batch_size=4, num_workers=1, pin_memory=True):
        assert x.is_pinned() and y.is_pinned()
        gpu = x.to("cuda:0", non_blocking=True)
        seen.append(gpu.cpu().numpy())
    np.testing.assert_array_equal(np.concatenate(seen), np.arange(40, dtype=np.float32).reshape(10, 4))
