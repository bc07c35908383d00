"""Threads, the scheduler's switches, the profiler and build facts from Python."""
import json

import numpy as np
import pytest

import tessera as ts


def test_profiler_records_the_ops_run_in_its_block(tmp_path):
    a = ts.tensor(np.ones((64, 32), dtype=np.float32))
    b = ts.tensor(np.ones((32, 16), dtype=np.float32))
    trace = tmp_path / "trace.json"
    with ts.profiler.Session(output=str(trace)) as prof:
        with ts.profiler.Scope("user-block"):
            c = a @ b
            d = c + 1.0
    assert d.shape == (64, 16)
    ops = prof.ops()
    names = [o.name for o in ops]
    assert "matmul" in names and "add" in names
    mm = ops[names.index("matmul")]
    assert mm.shapes == [(64, 32), (32, 16)] or mm.shapes == [[64, 32], [32, 16]]
    assert mm.flops == pytest.approx(2 * 64 * 32 * 16)
    assert mm.device == ts.device("cpu") and mm.seconds > 0
    # CPU kernels are timed by the host; GPU kernels by device events (device_timed, stream).
    assert not mm.device_timed and mm.stream == -1 and mm.host_seconds == mm.seconds
    assert "matmul" in prof.summary()
    events = json.loads(trace.read_text())
    events = events["traceEvents"] if isinstance(events, dict) else events
    assert any(e.get("name") == "user-block" for e in events)
    assert any(e.get("name") == "matmul" for e in events)


def test_profiler_session_must_be_entered():
    s = ts.profiler.Session()
    with pytest.raises(ValueError, match="not started"):
        s.ops()


def test_thread_count_round_trips():
    before = ts.get_num_threads()
    try:
        ts.set_num_threads(1)
        assert ts.get_num_threads() == 1
    finally:
        ts.set_num_threads(before)
    assert ts.get_num_threads() == before


def test_scheduler_switches_round_trip():
    ts.scheduler.set_deterministic(True)
    assert ts.scheduler.deterministic()
    ts.scheduler.set_deterministic(False)
    assert not ts.scheduler.deterministic()


def test_cuda_requests_fail_clearly_without_the_backend():
    info = ts.build_info()
    assert "cpu" in info["backends"] and info["version"] == ts.__version__
    if not ts.cuda.is_built():
        assert not ts.cuda.is_available()
        with pytest.raises(ts.NotBuiltError, match="not built with CUDA"):
            ts.tensor([1.0]).to("cuda")
    elif not ts.cuda.is_available():
        assert ts.cuda.device_count() == 0
        with pytest.raises(ts.DeviceError, match="no CUDA device"):
            ts.tensor([1.0]).to("cuda")
    else:
        n = ts.cuda.device_count()
        with pytest.raises(ts.DeviceError, match="does not exist"):
            ts.tensor([1.0]).to(f"cuda:{n}")
    with pytest.raises(ts.DeviceError):
        ts.device("tpu")


def test_cudnn_benchmark_switch():
    # Off by default (as torch.backends.cudnn.benchmark); needs no device, only the CUDA build.
    assert ts.cuda.cudnn_benchmark() is False
    if not ts.cuda.is_built():
        with pytest.raises(ts.NotBuiltError, match=r"not built with CUDA \(set_cudnn_benchmark\)"):
            ts.cuda.set_cudnn_benchmark(True)
        assert ts.cuda.cudnn_benchmark() is False
        return
    try:
        ts.cuda.set_cudnn_benchmark(True)
        assert ts.cuda.cudnn_benchmark() is True
    finally:
        ts.cuda.set_cudnn_benchmark(False)
    assert ts.cuda.cudnn_benchmark() is False
    assert "cuDNN" in ts.cuda.set_cudnn_benchmark.__doc__


def test_cuda_memory_functions_fail_clearly_without_a_device():
    if ts.cuda.is_available():
        assert ts.cuda.memory_allocated() >= 0
        assert ts.cuda.get_device_properties(0).total_memory > 0
        return
    error = ts.NotBuiltError if not ts.cuda.is_built() else ts.DeviceError
    with pytest.raises(error):
        ts.cuda.memory_allocated()
    with pytest.raises(error):
        ts.cuda.synchronize()
