"""tessera.cuda streams, events, record_stream and pinned memory, with PyTorch's names.

Without a device every call raises DeviceError (NotBuiltError without the CUDA build) and
never crashes; the tests that need a GPU skip without one."""
import gc
import threading

import numpy as np
import pytest

import tessera as ts

gpu = pytest.mark.skipif(not ts.cuda.is_available(), reason="needs a CUDA device")


def no_device_error():
    """The exception class and message every CUDA call raises on this machine."""
    if not ts.cuda.is_built():
        return ts.NotBuiltError, "not built with CUDA"
    return ts.DeviceError, r"no CUDA device \(requested cuda:0\)"


# ---- without a device ------------------------------------------------------------------------

NEEDS_A_DEVICE = {
    "Stream()": lambda: ts.cuda.Stream(),
    "Stream(0)": lambda: ts.cuda.Stream(0),
    "Stream('cuda:0')": lambda: ts.cuda.Stream("cuda:0"),
    "current_stream()": lambda: ts.cuda.current_stream(),
    "current_stream(0)": lambda: ts.cuda.current_stream(0),
    "default_stream()": lambda: ts.cuda.default_stream(),
    "default_stream(device)": lambda: ts.cuda.default_stream(ts.device("cuda:0")),
    "Event()": lambda: ts.cuda.Event(),
    "Event(enable_timing=True)": lambda: ts.cuda.Event(enable_timing=True),
    "synchronize()": lambda: ts.cuda.synchronize(),
    "synchronize(0)": lambda: ts.cuda.synchronize(0),
    "set_device(0)": lambda: ts.cuda.set_device(0),
    "current_device()": lambda: ts.cuda.current_device(),
    "get_device_properties()": lambda: ts.cuda.get_device_properties(),
    "memory_allocated('cuda:0')": lambda: ts.cuda.memory_allocated("cuda:0"),
    "max_memory_allocated()": lambda: ts.cuda.max_memory_allocated(),
    "memory_reserved()": lambda: ts.cuda.memory_reserved(),
    "reset_peak_memory_stats()": lambda: ts.cuda.reset_peak_memory_stats(),
    "empty_cache()": lambda: ts.cuda.empty_cache(),
    "empty_pinned(4)": lambda: ts.cuda.empty_pinned(4),
    "empty(4, pin_memory=True)": lambda: ts.empty(4, pin_memory=True),
    "Tensor.pin_memory()": lambda: ts.ones(3).pin_memory(),
}


@pytest.mark.skipif(ts.cuda.is_available(), reason="checks the behaviour without a device")
@pytest.mark.parametrize("call", sorted(NEEDS_A_DEVICE))
def test_every_stream_event_and_memory_call_fails_clearly_without_a_device(call):
    error, message = no_device_error()
    with pytest.raises(error, match=message):
        NEEDS_A_DEVICE[call]()


@pytest.mark.skipif(ts.cuda.is_available(), reason="checks the behaviour without a device")
def test_what_needs_no_device_works_without_one():
    assert not ts.ones(3).is_pinned()
    with ts.cuda.stream(None) as s:  # PyTorch: stream(None) is a no-op context
        assert s is None
        assert (ts.ones(2) + 1).tolist() == [2.0, 2.0]
    if ts.cuda.is_built():
        assert ts.cuda.device_count() == 0 and ts.cuda.unavailable_reason()
        # The pinned memory cache is one per process and answers without a device: empty.
        stats = ts.cuda.host_memory_stats()
        assert stats["reserved_bytes"] == 0 and stats["num_allocs"] == 0
        ts.cuda.empty_host_cache()
        ts.cuda.reset_peak_host_memory_stats()
    else:
        with pytest.raises(ts.NotBuiltError):
            ts.cuda.host_memory_stats()


def test_device_arguments_are_checked_before_the_device_is_asked():
    # A CPU device or an unknown name is wrong whatever the machine has.
    for call in (lambda: ts.cuda.synchronize("cpu"), lambda: ts.cuda.Stream(ts.device("cpu")),
                 lambda: ts.cuda.current_stream("cpu"), lambda: ts.cuda.memory_allocated("cpu")):
        with pytest.raises(ts.ValueError, match="expected a CUDA device, got 'cpu'"):
            call()
    with pytest.raises(ts.DeviceError):
        ts.cuda.synchronize("tpu")
    with pytest.raises(TypeError):
        ts.cuda.synchronize(True)
    with pytest.raises(TypeError):
        ts.cuda.synchronize(1.0)
    with pytest.raises(TypeError):
        ts.cuda.stream("cuda:0")  # a stream, not a device
    with pytest.raises(TypeError):
        ts.ones(2).record_stream(None)
    with pytest.raises(ts.ValueError, match="only CPU tensors can be pinned"):
        ts.empty(2, device="cuda:0", pin_memory=True)
    assert ts.empty(2, 3, pin_memory=False).shape == (2, 3)


def test_the_new_names_are_where_pytorch_has_them():
    for name in ("Stream", "Event", "stream", "current_stream", "default_stream", "synchronize",
                 "empty_pinned", "host_memory_stats", "reset_peak_host_memory_stats",
                 "empty_host_cache"):
        assert hasattr(ts.cuda, name), name
    for name in ("synchronize", "query", "wait_event", "wait_stream", "record_event",
                 "__enter__", "__exit__"):
        assert hasattr(ts.cuda.Stream, name), name
    for name in ("record", "wait", "synchronize", "query", "elapsed_time"):
        assert hasattr(ts.cuda.Event, name), name
    assert hasattr(ts.Tensor, "record_stream")
    from tessera.cuda import Event, Stream  # noqa: F401  (importable as a module too)


# ---- on a GPU --------------------------------------------------------------------------------

@gpu
def test_streams_compare_and_become_current_inside_with_blocks():
    default = ts.cuda.default_stream()
    assert ts.cuda.current_stream() == default == ts.cuda.default_stream(0)
    assert default.cuda_stream == 0 and default.device == ts.device("cuda:0")
    s = ts.cuda.Stream()
    assert s != default and s.cuda_stream != 0 and s == s
    assert "cuda:0" in repr(s) and s != "not a stream"
    with ts.cuda.stream(s) as entered:
        assert entered is s
        assert ts.cuda.current_stream() == s and hash(ts.cuda.current_stream()) == hash(s)
        with default:  # `with s:` works as well, and nests
            assert ts.cuda.current_stream() == default
        assert ts.cuda.current_stream() == s
    assert ts.cuda.current_stream() == default
    with s:
        with s:  # the same stream twice
            assert ts.cuda.current_stream() == s
        assert ts.cuda.current_stream() == s
    assert ts.cuda.current_stream() == default
    s.synchronize()
    assert s.query()
    with pytest.raises(ts.DeviceError, match="does not exist"):
        ts.cuda.Stream(ts.cuda.device_count())


@gpu
def test_a_current_stream_handle_outlives_the_block_and_the_stream_object():
    s = ts.cuda.Stream()
    with s:
        held = ts.cuda.current_stream()
    del s
    gc.collect()
    x = ts.full((1000,), 2.0, device="cuda:0")
    with held:  # the stream is alive: `held` shares its ownership
        y = x * 3
    held.synchronize()
    assert y.cpu().tolist() == [6.0] * 1000


@gpu
def test_side_stream_results_after_wait_stream():
    rng = np.random.default_rng(0)
    a_np = rng.standard_normal((1024, 1024)).astype(np.float32)
    a = ts.tensor(a_np).to("cuda:0")  # queued on the default stream
    side = ts.cuda.Stream()
    side.wait_stream(ts.cuda.current_stream())  # side sees a complete
    with ts.cuda.stream(side):
        b = a @ a
        c = (b * 2).sum(dim=1)
    ts.cuda.current_stream().wait_stream(side)  # the default stream sees c complete
    want = ((a_np.astype(np.float64) @ a_np) * 2).sum(axis=1)
    np.testing.assert_allclose(c.cpu().numpy(), want, rtol=1e-3, atol=1e-2)


@gpu
def test_events_order_work_across_streams():
    n = 1 << 22
    x = ts.ones(n, device="cuda:0")
    side = ts.cuda.Stream()
    side.wait_stream(ts.cuda.current_stream())
    with side:
        y = x * 3 + 1
        for _ in range(20):  # keep the side stream busy for a while
            y = y * 1.0
    ev = side.record_event()
    assert isinstance(ev, ts.cuda.Event) and ev.device == ts.device("cuda:0")
    ts.cuda.current_stream().wait_event(ev)
    z = y + 1  # on the default stream, after ev
    assert z.cpu().numpy().min() == 5.0 and z.cpu().numpy().max() == 5.0
    ev.synchronize()
    assert ev.query()

    # Event.record(stream) / Event.wait() as PyTorch spells them, and record_event(ev).
    mine = ts.cuda.Event()
    with side:
        w = y * 2
    assert side.record_event(mine) is mine
    mine.wait()  # the current (default) stream waits
    assert (w + 0).cpu().numpy().max() == 8.0
    other = ts.cuda.Event()
    other.record(side)
    other.wait(ts.cuda.default_stream())
    ts.cuda.synchronize()
    assert other.query() and side.query()


@gpu
def test_elapsed_time_is_positive_milliseconds():
    start, end = ts.cuda.Event(enable_timing=True), ts.cuda.Event(enable_timing=True)
    with pytest.raises(ts.ValueError, match="recorded"):
        start.elapsed_time(end)
    a = ts.rand(1024, 1024, device="cuda:0")
    start.record()
    for _ in range(10):
        a = (a @ a) / 1024.0
    end.record()
    ms = start.elapsed_time(end)  # waits for end
    assert 0.0 < ms < 60_000.0
    assert end.query()
    plain = ts.cuda.Event()
    plain.record()
    with pytest.raises(ts.ValueError, match="enable_timing=True"):
        start.elapsed_time(plain)


@gpu
def test_record_stream_keeps_memory_from_reuse_until_the_stream_is_done():
    n = 1000003  # an odd size: no cached block of another test fits it as well
    x = ts.full((n,), 3.0, device="cuda:0")
    ptr = x.data_ptr()
    big = ts.rand(4096, 4096, device="cuda:0")
    side = ts.cuda.Stream()
    side.wait_stream(ts.cuda.current_stream())
    with side:
        for _ in range(20):  # tens of milliseconds of work before x is read
            big = (big @ big) / 4096.0
        y = x * 2
    x.record_stream(side)
    del x  # freed while the side stream has yet to read it
    busy = not side.query()
    early = ts.empty(n, device="cuda:0")  # kept: the next request must not get its block
    if busy:
        assert early.data_ptr() != ptr, "reused while the side stream still reads it"
    side.synchronize()
    later = ts.empty(n, device="cuda:0")
    assert later.data_ptr() == ptr or early.data_ptr() == ptr, \
        "reusable once the side stream is synchronized"
    ts.cuda.current_stream().wait_stream(side)
    assert y.cpu().numpy().min() == 6.0 and y.cpu().numpy().max() == 6.0
    with pytest.raises(ts.DeviceError, match="expected a CUDA tensor"):
        ts.ones(2).record_stream(side)


@gpu
def test_pinned_memory():
    p = ts.cuda.empty_pinned(2, 3, dtype=ts.float64)
    assert p.is_pinned() and p.shape == (2, 3) and p.dtype == ts.float64
    q = ts.empty(100, pin_memory=True)
    assert q.is_pinned() and q.device == ts.device("cpu")
    x = ts.arange(0, 100, dtype=ts.float32)
    pinned = x.pin_memory()
    assert pinned.is_pinned() and not x.is_pinned()
    assert pinned.pin_memory().data_ptr() == pinned.data_ptr()  # pinned already: no copy
    gpu_x = pinned.to("cuda:0", non_blocking=True)
    ts.cuda.synchronize()
    assert gpu_x.cpu().tolist() == x.tolist()
    for device in (None, 0, "cuda:0", ts.device("cuda:0")):
        ts.cuda.synchronize(device)
        assert ts.cuda.memory_allocated(device) >= 0


@gpu
def test_pinned_memory_comes_from_a_cache():
    ts.cuda.synchronize()
    before = ts.cuda.host_memory_stats()
    x = ts.arange(0, 1 << 20, dtype=ts.float32)
    p = x.pin_memory()
    first = p.data_ptr()
    on_gpu = p.to("cuda:0", non_blocking=True)
    del p  # the block waits for the copy, then serves the next request of its size
    ts.cuda.synchronize()
    q = ts.empty(1 << 20, pin_memory=True)
    assert q.data_ptr() == first
    assert on_gpu.cpu().tolist() == x.tolist()
    after = ts.cuda.host_memory_stats()
    assert set(after) == {"current_bytes", "peak_bytes", "cached_bytes", "reserved_bytes",
                          "peak_reserved_bytes", "num_allocs", "num_cache_hits",
                          "num_host_alloc", "num_host_free"}
    assert after["num_allocs"] - before["num_allocs"] == 2
    assert after["num_cache_hits"] - before["num_cache_hits"] >= 1
    assert after["current_bytes"] + after["cached_bytes"] == after["reserved_bytes"]
    del q
    ts.cuda.empty_cache()  # the device's cache only, as torch.cuda.empty_cache
    assert ts.cuda.host_memory_stats()["reserved_bytes"] == after["reserved_bytes"]
    ts.cuda.empty_host_cache()
    stats = ts.cuda.host_memory_stats()
    assert stats["cached_bytes"] == 0 and stats["reserved_bytes"] == stats["current_bytes"]
    ts.cuda.reset_peak_host_memory_stats()
    assert ts.cuda.host_memory_stats()["peak_bytes"] == stats["current_bytes"]


@gpu
def test_stream_blocks_are_per_thread():
    s = ts.cuda.Stream()
    inside, release = threading.Event(), threading.Event()
    seen = {}

    def worker():
        with s:
            seen["worker"] = ts.cuda.current_stream() == s
            inside.set()
            release.wait(10)
        seen["after"] = ts.cuda.current_stream() == ts.cuda.default_stream()

    t = threading.Thread(target=worker)
    t.start()
    inside.wait(10)
    # The worker's block does not change this thread's stream.
    assert ts.cuda.current_stream() == ts.cuda.default_stream()
    with s:
        assert ts.cuda.current_stream() == s
        release.set()
        t.join()  # the worker closes its block, opened before this one, on its own thread
        assert ts.cuda.current_stream() == s
    assert seen == {"worker": True, "after": True}
    assert ts.cuda.current_stream() == ts.cuda.default_stream()
