#!/usr/bin/env python3
"""Runs `tessera bench train --json` and the same workloads in PyTorch, in separate processes
on the same machine, and prints Tessera's speed relative to PyTorch's (higher is better).

    pip install torch        # CPU wheels are enough
    python3 benchmarks/compare/train_compare.py [--tessera build/cli/tessera] [--threads 2]
        [--runs 3] [--out benchmarks/results]

Each run times both sides back to back (Tessera, then PyTorch), so machine noise hits a run's
pair alike; the summary is the median over runs of each side and of the per-run ratios. With
--out, run k is written to train<variant>-cpu-<date>-run<k>.json (Tessera's records, as
`tessera bench train --json` prints them) and train-compare<variant>-cpu-<date>-run<k>.json
(both sides and the ratio per model, with the OpenBLAS core type asked for, if any).
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

TARGETS = {"MLP": 1.5, "LeNet-5": 1.2}
# The float32 step records of `tessera bench train` (the suite also times autocast variants).
RECORDS = {"MLP": "MLP 784-128-10 batch 256 train step (AdamW)",
           "LeNet-5": "LeNet-5 28x28 batch 64 train step (AdamW)"}


def median_step(torch, model, x, y, repeats, sync=lambda: None):
    """Median seconds of one training step (forward, cross-entropy, backward, AdamW) over
    `repeats` timed runs of at least 50 ms each; sync() ends each step (a GPU waits there)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sync()

    step()
    times = []
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 0.05:
            step()
            n += 1
        times.append((time.perf_counter() - t0) / n)
    return statistics.median(times)


def torch_cases(torch):
    """The training cases of `tessera bench train`: name -> (model, inputs, targets)."""
    nn = torch.nn
    mlp = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    lenet = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                          nn.Linear(84, 10))
    return {
        "MLP": (mlp, torch.randn(256, 784), torch.randint(0, 10, (256,))),
        "LeNet-5": (lenet, torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))),
    }


def torch_steps(threads, repeats):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    return {name: median_step(torch, model, x, y, repeats)
            for name, (model, x, y) in torch_cases(torch).items()}


def tessera_records(binary, threads, repeats):
    env = dict(os.environ, TESSERA_NUM_THREADS=str(threads))
    out = subprocess.run([binary, "bench", "train", "--json", "--repeats", str(repeats)],
                         env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tessera", default="build/cli/tessera")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", help="folder for the per-run JSON files")
    ap.add_argument("--variant", default="", help="file name tag, e.g. openblas-skylakex")
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("PyTorch is not installed: pip install torch")
    date = datetime.date.today().isoformat()
    tag = f"-{args.variant}" if args.variant else ""
    runs = []
    for k in range(1, args.runs + 1):
        records = tessera_records(args.tessera, args.threads, args.repeats)
        by_name = {r["name"]: r["value"] * 1e-3 for r in records}
        ours = {case: by_name[name] for case, name in RECORDS.items()}
        theirs = torch_steps(args.threads, args.repeats)
        run = {name: {"tessera_ms": ours[name] * 1e3, "pytorch_ms": t * 1e3,
                      "speed_ratio": t / ours[name], "target": TARGETS[name]}
               for name, t in theirs.items()}
        runs.append(run)
        print(f"run {k}: " + "  ".join(f"{n} {v['speed_ratio']:.2f}" for n, v in run.items()))
        if args.out:
            with open(os.path.join(args.out, f"train{tag}-cpu-{date}-run{k}.json"), "w") as f:
                json.dump(records, f, indent=2, sort_keys=True)
                f.write("\n")
            meta = {"threads": args.threads, "repeats": args.repeats,
                    "pytorch": torch.__version__, "models": run,
                    "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "(detected)")}
            with open(os.path.join(args.out, f"train-compare{tag}-cpu-{date}-run{k}.json"),
                      "w") as f:
                json.dump(meta, f, indent=2, sort_keys=True)
                f.write("\n")
    for name in TARGETS:
        med = {key: statistics.median(r[name][key] for r in runs)
               for key in ("tessera_ms", "pytorch_ms", "speed_ratio")}
        each = ", ".join(f"{r[name]['speed_ratio']:.2f}" for r in runs)
        print(f"{name:8s} tessera {med['tessera_ms']:7.3f} ms  pytorch {med['pytorch_ms']:7.3f} ms"
              f"  speed ratio {med['speed_ratio']:5.2f} ({each}; target >= {TARGETS[name]})")


if __name__ == "__main__":
    main()
