#!/usr/bin/env python3
"""Times the same Python code in Tessera and PyTorch in one process and prints the ratios.

    PYTHONPATH=build/python python3 benchmarks/compare/python_compare.py [--json out.json]

Cases (the Python package issue's targets):
  tiny-op   `a + b` on 1-element tensors: Tessera's time per call <= PyTorch's.
  mlp-step  MLP 784-128-10, batch 256, forward + cross-entropy + backward + AdamW, written the
            same way in both: Tessera >= 1.3x PyTorch's speed.
  per-example-grads  gradients of a 784->10 linear model with cross-entropy for each of 256
            examples: Tessera's vmap(grad(f)) vs a loop in PyTorch (>= 20x faster), and vs
            Tessera's plain batch gradient (within 2x).
Every figure is the median of `--repeats` timing windows; both libraries use `--threads`.
"""
import argparse
import json
import platform
import statistics
import sys
import time
import timeit


def median_time(fn, repeats, window=0.05):
    """Median seconds per call over `repeats` windows of at least `window` seconds each."""
    fn()
    number = 1
    while True:  # calls per window
        t = timeit.timeit(fn, number=number)
        if t >= window / 4:
            break
        number *= 4
    number = max(1, int(number * window / max(t, 1e-9)))
    return statistics.median(timeit.repeat(fn, number=number, repeat=repeats)) / number


def tiny_op(ts, torch, repeats):
    a, b = ts.tensor([1.0]), ts.tensor([2.0])
    ta, tb = torch.tensor([1.0]), torch.tensor([2.0])
    return {"tessera": median_time(lambda: a + b, repeats),
            "torch": median_time(lambda: ta + tb, repeats)}


def mlp_step(lib, repeats):
    """One training step of the MLP; `lib` is tessera or torch (same API)."""
    nn, F = lib.nn, lib.nn.functional
    lib.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = lib.optim.AdamW(model.parameters(), lr=1e-3)
    x = lib.randn(256, 784)
    y = lib.randint(0, 10, (256,))

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return median_time(step, repeats)


def per_example_grads(ts, torch, repeats):
    batch = 256
    ts.manual_seed(0)
    w, b = ts.randn(10, 784) * 0.01, ts.zeros(10)
    x, y = ts.randn(batch, 784), ts.randint(0, 10, (batch,))

    def loss(params, xi, yi):
        logits = xi @ params["w"].T + params["b"]
        return ts.nn.functional.cross_entropy(logits.unsqueeze(0), yi.unsqueeze(0))

    params = {"w": w, "b": b}
    per_example = ts.func.vmap(ts.func.grad(loss), in_axes=(None, 0, 0))

    def batch_loss(params):
        return ts.nn.functional.cross_entropy(x @ params["w"].T + params["b"], y)

    batch_grad = ts.func.grad(batch_loss)

    tw = torch.from_numpy(w.numpy()).requires_grad_()
    tb = torch.from_numpy(b.numpy()).requires_grad_()
    tx, ty = torch.from_numpy(x.numpy()), torch.from_numpy(y.numpy())

    def torch_loop():
        grads = []
        for i in range(batch):
            logits = tx[i:i + 1] @ tw.T + tb
            gw, gb = torch.autograd.grad(torch.nn.functional.cross_entropy(logits, ty[i:i + 1]),
                                         (tw, tb))
            grads.append((gw, gb))
        return grads

    # Same values first: the comparison is only meaningful when both compute the same thing.
    g = per_example(params, x, y)
    ref = torch_loop()
    err = max(abs(g["w"][i].numpy() - ref[i][0].numpy()).max() for i in (0, batch - 1))
    assert err < 1e-4, f"per-example gradients differ from PyTorch's by {err}"
    return {"tessera_vmap_grad": median_time(lambda: per_example(params, x, y), repeats),
            "tessera_batch_grad": median_time(lambda: batch_grad(params), repeats),
            "torch_loop": median_time(torch_loop, max(3, repeats // 3), window=0.2)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args()

    import tessera as ts
    import torch

    torch.set_num_threads(args.threads)
    ts.set_num_threads(args.threads)

    tiny = tiny_op(ts, torch, args.repeats)
    mlp = {"tessera": mlp_step(ts, args.repeats), "torch": mlp_step(torch, args.repeats)}
    pe = per_example_grads(ts, torch, args.repeats)

    rows = [
        ("tiny op a + b (1 element)", tiny["tessera"], tiny["torch"],
         tiny["torch"] / tiny["tessera"], "speedup >= 1.0"),
        ("MLP 784-128-10 b256 AdamW step", mlp["tessera"], mlp["torch"],
         mlp["torch"] / mlp["tessera"], "speedup >= 1.3"),
        ("per-example grads b256: vmap(grad) vs PyTorch loop", pe["tessera_vmap_grad"],
         pe["torch_loop"], pe["torch_loop"] / pe["tessera_vmap_grad"], "speedup >= 20"),
        ("per-example grads: vmap(grad) vs batch grad", pe["tessera_vmap_grad"],
         pe["tessera_batch_grad"], pe["tessera_vmap_grad"] / pe["tessera_batch_grad"],
         "slowdown <= 2"),
    ]
    print(f"{'case':55s} {'tessera':>12s} {'peer':>12s} {'ratio':>8s}  target")
    for name, t, peer, ratio, target in rows:
        print(f"{name:55s} {t * 1e6:10.2f}us {peer * 1e6:10.2f}us {ratio:8.2f}  {target}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or
                       platform.machine(), "threads": args.threads, "torch": torch.__version__,
                       "python": sys.version.split()[0],
                       "cases": [{"name": n, "tessera_s": t, "peer_s": p, "ratio": r,
                                  "target": tg} for n, t, p, r, tg in rows]}, f, indent=2)


if __name__ == "__main__":
    main()
