#!/usr/bin/env python3
"""Runs `tessera bench gpu --json` and the same training steps in PyTorch eager on the same GPU,
in separate processes, and prints Tessera's speed relative to PyTorch's (higher is better).

    python3 benchmarks/compare/gpu_compare.py [--tessera build-gpu/cli/tessera] [--runs 3]
        [--out benchmarks/results]

Each run times both sides back to back (Tessera, then PyTorch); the summary is the median over
runs. Steps wait for the GPU at their end on both sides (a loop reading its loss does). With
--out, run k is written to gpu-<date>-run<k>.json (Tessera's records) and
gpu-compare-<date>-run<k>.json (both sides, the GPU's name and the ratios).
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

STEPS = {"MLP": "MLP 784-128-10 batch 256 train step", "LeNet-5": "LeNet-5 28x28 batch 64"}


def torch_steps(repeats):
    import torch
    import torch.nn as nn

    torch.manual_seed(0)
    dev = torch.device("cuda:0")

    def median_step(model, x, y):
        model = model.to(dev)
        x, y = x.to(dev), y.to(dev)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()

        def step():
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            torch.cuda.synchronize()

        for _ in range(5):
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
    }, torch.cuda.get_device_name(0)


def tessera_records(binary, repeats):
    out = subprocess.run([binary, "bench", "gpu", "--json", "--repeats", str(repeats)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def step_ms(records, prefix):
    for r in records:
        if r["name"].startswith(prefix) and r["unit"] == "ms":
            return r["value"]
    return None  # not run: a kernel is missing (the record says which)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tessera", default="build/cli/tessera")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", help="folder for the per-run JSON files")
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("PyTorch is not installed")
    if not torch.cuda.is_available():
        sys.exit("PyTorch sees no GPU")
    date = datetime.date.today().isoformat()
    runs = []
    for k in range(1, args.runs + 1):
        records = tessera_records(args.tessera, args.repeats)
        theirs, gpu = torch_steps(args.repeats)
        run = {}
        for name, t in theirs.items():
            ours = step_ms(records, STEPS[name])
            run[name] = {"tessera_ms": ours, "pytorch_ms": t * 1e3,
                         "speed_ratio": (t * 1e3 / ours) if ours else None}
        runs.append(run)
        for r in records:
            if r["unit"] != "ms":
                print(f"  {r['name']}: {r['value']:.4g} {r['unit']} "
                      f"(ratio {r['ratio']:.3f}, target {r['target']}) {r['reference']}")
        print(f"run {k} on {gpu}: " + "  ".join(
            f"{n} {v['speed_ratio']:.2f}" if v["speed_ratio"] else f"{n} not run"
            for n, v in run.items()))
        if args.out:
            with open(os.path.join(args.out, f"gpu-{date}-run{k}.json"), "w") as f:
                json.dump(records, f, indent=2, sort_keys=True)
                f.write("\n")
            meta = {"gpu": gpu, "pytorch": torch.__version__, "repeats": args.repeats,
                    "models": run}
            with open(os.path.join(args.out, f"gpu-compare-{date}-run{k}.json"), "w") as f:
                json.dump(meta, f, indent=2, sort_keys=True)
                f.write("\n")
    for name in STEPS:
        done = [r[name] for r in runs if r[name]["speed_ratio"]]
        if not done:
            print(f"{name:8s} not run on the GPU (see the records)")
            continue
        med = {key: statistics.median(r[key] for r in done)
               for key in ("tessera_ms", "pytorch_ms", "speed_ratio")}
        print(f"{name:8s} tessera {med['tessera_ms']:7.3f} ms  pytorch {med['pytorch_ms']:7.3f} ms"
              f"  speed ratio {med['speed_ratio']:5.2f} (target > 1)")


if __name__ == "__main__":
    main()
