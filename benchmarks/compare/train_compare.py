#!/usr/bin/env python3
"""Runs `tessera bench train --json` and the same workloads in PyTorch, in separate processes
on the same machine, and prints Tessera's speed relative to PyTorch's (higher is better).

    pip install torch        # CPU wheels are enough
    python3 benchmarks/compare/train_compare.py [--tessera build/cli/tessera] [--threads 2]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def torch_steps(threads, repeats):
    import torch
    import torch.nn as nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)

    def median_step(model, x, y):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()

        def step():
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        step()
        times = []
        for _ in range(repeats):
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < 0.05:
                step()
                n += 1
            times.append((time.perf_counter() - t0) / n)
        return statistics.median(times)

    mlp = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    lenet = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                          nn.Linear(84, 10))
    return {
        "MLP": median_step(mlp, torch.randn(256, 784), torch.randint(0, 10, (256,))),
        "LeNet-5": median_step(lenet, torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tessera", default="build/cli/tessera")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    try:
        import torch  # noqa: F401
    except ImportError:
        sys.exit("PyTorch is not installed: pip install torch")
    env = dict(os.environ, TESSERA_NUM_THREADS=str(args.threads))
    out = subprocess.run([args.tessera, "bench", "train", "--json"], env=env, check=True,
                         capture_output=True, text=True).stdout
    ours = {r["name"].split(" ")[0]: r["value"] * 1e-3 for r in json.loads(out)}
    theirs = torch_steps(args.threads, args.repeats)
    targets = {"MLP": 1.5, "LeNet-5": 1.2}
    for name, t in theirs.items():
        ratio = t / ours[name]
        print(f"{name:8s} tessera {ours[name] * 1e3:7.3f} ms  pytorch {t * 1e3:7.3f} ms  "
              f"speed ratio {ratio:5.2f} (target >= {targets[name]})")


if __name__ == "__main__":
    main()
