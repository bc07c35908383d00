"""No leaks across the binding: memory stays flat over 10,000 training steps."""
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import gc
    import tessera as ts
    F = ts.nn.functional

    def rss_kib():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * (__import__("os").sysconf("SC_PAGE_SIZE") // 1024)

    ts.manual_seed(0)
    model = ts.nn.Sequential(ts.nn.Linear(32, 16), ts.nn.ReLU(), ts.nn.Linear(16, 4))
    opt = ts.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = ts.randn(8, 32), ts.randint(0, 4, (8,))

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(1000):  # warm up: caches, allocator pools, optimizer state
        step()
    gc.collect()
    before = rss_kib()
    for _ in range(10_000):
        step()
    gc.collect()
    print("GROWTH_KIB", rss_kib() - before)
""")


def test_training_steps_do_not_grow_memory(tmp_path):
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    growth = int(proc.stdout.split("GROWTH_KIB")[1])
    # A leak of one 8x32 float tensor per step would be 10 MiB; allow 2 MiB of noise.
    assert growth < 2048, f"RSS grew by {growth} KiB over 10,000 steps"
