"""tessera.io: safetensors, .npy/.npz and checkpoints, against NumPy, safetensors and PyTorch.

Every file tessera writes is read back by the reference library and the other way round; bad
files must raise tessera.IOError (an OSError) naming the file and the problem.
"""
import json
import pathlib
import struct

import numpy as np
import pytest

import tessera as ts
from tessera import io

from conftest import requires_torch, torch

try:  # the interop tests need the safetensors package; the others run without it
    import safetensors
    import safetensors.numpy as safetensors_numpy
except ImportError:  # pragma: no cover - depends on the machine
    safetensors = None

requires_safetensors = pytest.mark.skipif(safetensors is None,
                                          reason="safetensors is not installed")

# (tessera dtype, NumPy dtype); bfloat16 has no NumPy dtype and is tested through PyTorch.
DTYPES = [(ts.bool, np.bool_), (ts.uint8, np.uint8), (ts.int8, np.int8), (ts.int16, np.int16),
          (ts.int32, np.int32), (ts.int64, np.int64), (ts.float16, np.float16),
          (ts.float32, np.float32), (ts.float64, np.float64), (ts.complex64, np.complex64)]


def sample(np_dtype, rng, shape=(3, 4)):
    if np_dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if np.issubdtype(np_dtype, np.integer):
        info = np.iinfo(np_dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=np_dtype, endpoint=True)
    if np_dtype == np.complex64:
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np_dtype)
    return rng.standard_normal(shape).astype(np_dtype)


def bf16_values(rng, n=12):
    # float32 values with 8 significant bits are exact in bfloat16
    return (rng.integers(-128, 128, size=n) / 16.0).astype(np.float32)


# ---- safetensors ----------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["auto", "mmap", "read"])
def test_safetensors_round_trip_every_dtype(tmp_path, rng, mode):
    arrays = {f"t_{np.dtype(n).name}": sample(n, rng) for _, n in DTYPES}
    arrays["scalar"] = np.array(2.5)
    arrays["empty"] = np.zeros((0, 3), np.float32)
    tensors = {k: ts.tensor(v) for k, v in arrays.items()}
    bf = bf16_values(rng)
    tensors["bf16"] = ts.tensor(bf, dtype=ts.bfloat16)
    path = tmp_path / "all.safetensors"
    io.save_safetensors(tensors, path, metadata={"epoch": "3", "note": "ünïcode"})
    back = io.load_safetensors(path, mode=mode)
    assert sorted(back) == sorted(tensors)
    for k, v in arrays.items():
        assert back[k].dtype == tensors[k].dtype and back[k].shape == v.shape
        np.testing.assert_array_equal(back[k].numpy(), v)
    assert back["bf16"].dtype == ts.bfloat16
    np.testing.assert_array_equal(back["bf16"].float().numpy(), bf)
    assert io.load_safetensors_metadata(path) == {"epoch": "3", "note": "ünïcode"}
    assert io.save_file is io.save_safetensors and io.load_file is io.load_safetensors


@requires_safetensors
def test_safetensors_interop_with_the_safetensors_package(tmp_path, rng):
    arrays = {f"t_{np.dtype(n).name}": sample(n, rng, (2, 5)) for _, n in DTYPES}
    ours = tmp_path / "ours.safetensors"
    io.save_safetensors({k: ts.tensor(v) for k, v in arrays.items()}, ours, metadata={"a": "b"})
    theirs_view = safetensors_numpy.load_file(str(ours))
    for k, v in arrays.items():
        assert theirs_view[k].dtype == v.dtype
        np.testing.assert_array_equal(theirs_view[k], v)
    with safetensors.safe_open(str(ours), framework="numpy") as f:
        assert f.metadata() == {"a": "b"}

    theirs = tmp_path / "theirs.safetensors"
    safetensors_numpy.save_file(arrays, str(theirs), metadata={"k": "v"})
    back = io.load_file(theirs)
    for k, v in arrays.items():
        np.testing.assert_array_equal(back[k].numpy(), v)
    assert io.load_safetensors_metadata(str(theirs)) == {"k": "v"}


@requires_torch
@requires_safetensors
def test_bfloat16_and_float16_interop_with_pytorch(tmp_path, rng):
    import safetensors.torch as st
    bf = bf16_values(rng)
    half = rng.standard_normal(7).astype(np.float16)
    ours = tmp_path / "ours.safetensors"
    io.save_safetensors({"bf": ts.tensor(bf, dtype=ts.bfloat16), "h": ts.tensor(half)}, ours)
    loaded = st.load_file(str(ours))
    assert loaded["bf"].dtype == torch.bfloat16 and loaded["h"].dtype == torch.float16
    np.testing.assert_array_equal(loaded["bf"].float().numpy(), bf)
    np.testing.assert_array_equal(loaded["h"].numpy(), half)

    theirs = tmp_path / "theirs.safetensors"
    st.save_file({"bf": torch.tensor(bf).bfloat16(), "h": torch.tensor(half)}, str(theirs))
    back = io.load_safetensors(theirs)
    assert back["bf"].dtype == ts.bfloat16
    np.testing.assert_array_equal(back["bf"].float().numpy(), bf)
    np.testing.assert_array_equal(back["h"].numpy(), half)


def test_non_contiguous_and_strided_tensors_are_saved_by_value(tmp_path, rng):
    x = rng.standard_normal((4, 6)).astype(np.float32)
    t = ts.tensor(x)
    io.save_safetensors({"T": t.T, "s": t[:, ::2]}, tmp_path / "v.safetensors")
    back = io.load_safetensors(tmp_path / "v.safetensors")
    np.testing.assert_array_equal(back["T"].numpy(), x.T)
    np.testing.assert_array_equal(back["s"].numpy(), x[:, ::2])


def write_raw(path, header, data=b""):
    blob = json.dumps(header).encode() if isinstance(header, dict) else header
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)
    return path


def test_malformed_safetensors_raise_ioerror(tmp_path):
    good = {"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    cases = {
        "short.safetensors": (b"\x10\x00", "8-byte header size"),
        "header_past_end.safetensors": (struct.pack("<Q", 1000) + b"{}", "header"),
        "not_json.safetensors": (struct.pack("<Q", 5) + b"{abc}", "JSON"),
        "offsets_past_end.safetensors": (
            {"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}}, "offset"),
        "size_mismatch.safetensors": (
            {"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, "x"),
        "bad_dtype.safetensors": (
            {"x": {"dtype": "Q7", "shape": [2], "data_offsets": [0, 8]}}, "Q7"),
        "truncated_data.safetensors": (good, "x|offset|bytes"),
    }
    for name, (content, pattern) in cases.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            write_raw(path, content, b"\0" * (4 if name.startswith("truncated") else 8))
        with pytest.raises(ts.IOError, match=pattern) as info:
            io.load_safetensors(path)
        assert isinstance(info.value, OSError) and name in str(info.value)
    with pytest.raises(ts.IOError, match="missing.safetensors"):
        io.load_safetensors(tmp_path / "missing.safetensors")


def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError):
        io.save_safetensors({"a": 1}, tmp_path / "a.safetensors")
    with pytest.raises(TypeError):
        io.save_safetensors({"a": ts.tensor([1])}, tmp_path / "a.safetensors", metadata={"k": 1})
    with pytest.raises(ValueError, match="mode must be"):
        io.load_safetensors(tmp_path / "a.safetensors", mode="lazy")


# ---- NumPy files ----------------------------------------------------------------------------

@pytest.mark.parametrize("ts_dtype,np_dtype", DTYPES, ids=lambda d: getattr(d, "name", str(d)))
def test_npy_round_trips_with_numpy(tmp_path, rng, ts_dtype, np_dtype):
    a = sample(np_dtype, rng, (3, 2, 4))
    io.save_npy(ts.tensor(a), tmp_path / "ours.npy")
    b = np.load(tmp_path / "ours.npy")
    assert b.dtype == a.dtype
    np.testing.assert_array_equal(b, a)
    np.save(tmp_path / "theirs.npy", a)
    back = io.load_npy(tmp_path / "theirs.npy")
    assert back.dtype == ts_dtype
    np.testing.assert_array_equal(back.numpy(), a)


def test_npy_reads_fortran_order_big_endian_and_version_2(tmp_path, rng):
    a = rng.standard_normal((3, 5))
    np.save(tmp_path / "f.npy", np.asfortranarray(a))
    np.save(tmp_path / "be.npy", a.astype(">f8"))
    with open(tmp_path / "v2.npy", "wb") as f:
        np.lib.format.write_array(f, a, version=(2, 0))
    for name in ("f.npy", "be.npy", "v2.npy"):
        got = io.load_npy(str(tmp_path / name))
        assert got.is_contiguous()
        np.testing.assert_array_equal(got.numpy(), a)
    with pytest.raises(TypeError, match="bfloat16"):
        io.save_npy(ts.tensor([1.0], dtype=ts.bfloat16), tmp_path / "b.npy")
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f8'")
    with pytest.raises(ts.IOError, match="bad.npy"):
        io.load_npy(tmp_path / "bad.npy")


def test_npz_round_trips_with_numpy(tmp_path, rng):
    arrays = {"a": rng.standard_normal((2, 3)), "b": np.arange(5, dtype=np.int16),
              "c": np.array([True, False])}
    io.save_npz({k: ts.tensor(v) for k, v in arrays.items()}, tmp_path / "ours.npz")
    with np.load(tmp_path / "ours.npz") as z:
        assert sorted(z.files) == sorted(arrays)
        for k, v in arrays.items():
            np.testing.assert_array_equal(z[k], v)
    for save in (np.savez, np.savez_compressed):
        path = tmp_path / f"{save.__name__}.npz"
        save(path, **arrays)
        back = io.load_npz(path)
        assert sorted(back) == sorted(arrays)
        for k, v in arrays.items():
            np.testing.assert_array_equal(back[k].numpy(), v)
    data = bytearray((tmp_path / "ours.npz").read_bytes())
    data[60] ^= 0xFF  # inside the first member's data: its CRC no longer matches
    (tmp_path / "flipped.npz").write_bytes(bytes(data))
    with pytest.raises(ts.IOError, match="flipped.npz"):
        io.load_npz(tmp_path / "flipped.npz")


# ---- checkpoints ----------------------------------------------------------------------------

def test_checkpoint_round_trip_of_state_dicts(tmp_path, rng):
    model = {"w": ts.tensor(rng.standard_normal((3, 2))), "b": ts.tensor([1, 2], dtype=ts.int32)}
    opt = {"state.0.momentum_buffer": ts.tensor(rng.standard_normal(3))}
    path = pathlib.Path(tmp_path) / "ck.safetensors"
    io.save_checkpoint(path, model=model, optimizer=opt, step=42, rng=io.RngState(7, 1024),
                       metadata={"run": "a"})
    ck = io.load_checkpoint(path)
    assert isinstance(ck, io.Checkpoint) and ck.step == 42 and ck.metadata["run"] == "a"
    assert ck.rng == io.RngState(seed=7, offset=1024) and ck.scheduler == {}
    for saved, loaded in ((model, ck.model), (opt, ck.optimizer)):
        assert sorted(saved) == sorted(loaded)
        for k in saved:
            assert loaded[k].dtype == saved[k].dtype
            np.testing.assert_array_equal(loaded[k].numpy(), saved[k].numpy())
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # a flipped bit in the tensor bytes
    path.write_bytes(bytes(data))
    with pytest.raises(ts.IOError, match="ck.safetensors"):
        io.load_checkpoint(path)
    with pytest.raises(TypeError, match="model must be"):
        io.save_checkpoint(path, model=3)


def test_rng_state_capture_and_restore():
    before = io.capture_rng()
    try:
        io.restore_rng(io.RngState(seed=123, offset=456))
        assert io.capture_rng() == io.RngState(123, 456)
        if hasattr(ts, "rand"):
            a = ts.rand(5).numpy()
            io.restore_rng(io.RngState(seed=123, offset=456))
            np.testing.assert_array_equal(ts.rand(5).numpy(), a)
    finally:
        io.restore_rng(before)


@pytest.mark.skipif(not (hasattr(ts.nn, "Linear") and hasattr(ts.optim, "SGD")),
                    reason="tessera.nn / tessera.optim are not bound")
def test_checkpoint_resume_of_model_optimizer_and_scheduler_is_exact(tmp_path, rng):
    x = ts.tensor(rng.standard_normal((8, 3)).astype(np.float32))
    y = ts.tensor(rng.standard_normal((8, 2)).astype(np.float32))

    def make():
        model = ts.nn.Linear(3, 2)
        opt = ts.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        return model, opt, ts.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)

    def train(model, opt, sched, steps):
        for _ in range(steps):
            opt.zero_grad()
            ((model(x) - y) ** 2).mean().backward()
            opt.step()
            sched.step()

    model, opt, sched = make()
    train(model, opt, sched, 3)
    io.save_checkpoint(tmp_path / "ck.safetensors", model=model, optimizer=opt, scheduler=sched,
                       step=3)
    train(model, opt, sched, 3)

    model2, opt2, sched2 = make()
    ck = io.load_checkpoint(tmp_path / "ck.safetensors", model=model2, optimizer=opt2,
                            scheduler=sched2)
    assert ck.step == 3
    train(model2, opt2, sched2, 3)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(model2.state_dict()[k].numpy(), v.numpy())
    assert sched2.get_last_lr() == sched.get_last_lr()
