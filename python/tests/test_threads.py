"""Several Python threads may call Tessera at once; large kernels run without the GIL."""
import threading
import time

import numpy as np

import tessera as ts


def run_threads(fn, n=4):
    errors, results = [], [None] * n

    def target(i):
        try:
            results[i] = fn(i)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors
    return results


def test_concurrent_ops_give_the_serial_results(rng):
    mats = [rng.standard_normal((256, 256)).astype(np.float32) for _ in range(4)]

    def work(i):
        a = ts.from_numpy(mats[i])
        out = a
        for _ in range(5):
            out = ts.tensor(np.tanh((out @ a).numpy() / 256.0))
        return out.numpy()

    expected = [work(i) for i in range(4)]
    got = run_threads(work)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_concurrent_backward_passes_with_python_hooks():
    def work(i):
        seen = []
        x = ts.tensor(np.full(50_000, float(i + 1)), requires_grad=True)
        y = x * x
        y.register_hook(lambda g: seen.append(g.shape) or g * 2)
        (y * 3.0).backward(ts.tensor(np.ones(50_000)))
        return x.grad.numpy(), seen

    for i, (grad, seen) in enumerate(run_threads(work)):
        np.testing.assert_allclose(grad, 12.0 * (i + 1))  # d/dx 3x^2, doubled by the hook
        assert seen == [(50_000,)]


def test_a_thread_can_run_while_another_holds_a_large_kernel():
    # The GIL is released around large kernels: a pure-Python counter keeps advancing while
    # the main thread is inside one long matmul. With the GIL held it could only advance in
    # the few switch intervals around the call.
    stop = threading.Event()
    ticks = [0]

    def spin():
        while not stop.is_set():
            ticks[0] += 1

    threads_before = ts.get_num_threads()
    ts.set_num_threads(1)  # leave a core for the spinning thread
    t = threading.Thread(target=spin)
    t.start()
    try:
        t0, start_ticks = time.perf_counter(), ticks[0]
        time.sleep(0.1)  # sleeping releases the GIL: the spinner's free-running rate
        rate = (ticks[0] - start_ticks) / (time.perf_counter() - t0)
        a = ts.tensor(np.ones((1024, 1024), dtype=np.float32))
        before, t0 = ticks[0], time.perf_counter()
        for _ in range(4):  # ~0.2 s: much longer than a few 5 ms GIL switch intervals
            a @ a
        elapsed = time.perf_counter() - t0
        progressed = ticks[0] - before
    finally:
        stop.set()
        t.join()
        ts.set_num_threads(threads_before)
    assert progressed > 0.5 * rate * elapsed, (progressed, rate, elapsed)


def test_concurrent_backward_passes_on_shared_leaves():
    # Every thread's graph ends in the same leaves: their accumulators and .grad are shared.
    w = ts.randn(64, 128, requires_grad=True)
    b = ts.randn(64, requires_grad=True)

    def work(i):
        for _ in range(50):
            (ts.randn(32, 128) @ w.t() + b).sum().backward()

    run_threads(work)
    np.testing.assert_array_equal(b.grad.numpy(), np.full(64, 4 * 50 * 32, dtype=np.float32))
    assert w.grad.shape == (64, 128)
