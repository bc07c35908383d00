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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_compare import median_step, torch_cases  # noqa: E402  (the same models and step)

STEPS = {"MLP": "MLP 784-128-10 batch 256 train step", "LeNet-5": "LeNet-5 28x28 batch 64"}


def torch_steps(repeats):
    import torch

    torch.manual_seed(0)
    dev = torch.device("cuda:0")
    steps = {name: median_step(torch, model.to(dev), x.to(dev), y.to(dev), repeats,
                               sync=torch.cuda.synchronize)
             for name, (model, x, y) in torch_cases(torch).items()}
    return steps, torch.cuda.get_device_name(0)


def tessera_records(binary, repeats):
    """The suite's records; none (every step 'not run') when the suite itself failed, whose
    error is printed: PyTorch's side is still measured and written."""
    run = subprocess.run([binary, "bench", "gpu", "--json", "--repeats", str(repeats)],
                         capture_output=True, text=True)
    if run.returncode != 0:
        print(f"tessera bench gpu failed (status {run.returncode}):\n{run.stderr[-4000:]}",
              file=sys.stderr)
        return []
    return json.loads(run.stdout)


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
