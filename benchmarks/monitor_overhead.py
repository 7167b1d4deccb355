"""Time ``deepdx.train.fit`` with and without the diagnosis monitors.

Same data (mnist5k, standardized train split), model (``mlp:256``: 784-256-10, ReLU),
optimizer (Adam, lr 1e-3), batch size, seed and epochs. Runs of each variant are
interleaved, so a change in machine load hits all of them alike, and the median of
``--repeats`` runs is reported:

- plain fit, no callbacks
- ``default_monitors(curvature=False)``: gradients, activations, distance from init
- ``default_monitors()``: the same plus the top Hessian eigenvalue

and the overhead of each over plain ``fit`` in percent, of the medians and of the fastest
runs (the fastest run is the least disturbed by other work on a shared machine).
``--profile`` also times each monitor alone, to see where the overhead goes.

Run: python benchmarks/monitor_overhead.py [--epochs 10] [--repeats 7] [--threads 1] [--profile]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from deepdx.data import load, prepare
from deepdx.diagnose.monitors import (
    ActivationMonitor,
    CurvatureMonitor,
    DistanceMonitor,
    GradientMonitor,
    default_monitors,
)
from deepdx.nets import build_model
from deepdx.train import Callback, fit

Variant = Callable[[], list[Callback]]


def variants(profile: bool) -> dict[str, Variant]:
    """Return the callback lists to time, by name; the first is the baseline."""
    chosen: dict[str, Variant] = {
        "plain fit": list,
        "monitors, no curvature": lambda: default_monitors(curvature=False),
        "default_monitors()": default_monitors,
    }
    if profile:
        chosen |= {
            "GradientMonitor": lambda: [GradientMonitor()],
            "ActivationMonitor": lambda: [ActivationMonitor()],
            "DistanceMonitor": lambda: [DistanceMonitor()],
            "CurvatureMonitor": lambda: [CurvatureMonitor()],
        }
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--profile", action="store_true", help="also time each monitor alone")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    splits, _ = prepare(load("mnist5k"), seed=args.seed)
    train = splits.train
    options = dict(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        optimizer="adam",
        device=args.device,
    )

    def timed(callbacks: list[Callback]) -> float:
        model = build_model("mlp:256", train.sample_shape, train.n_classes, seed=args.seed)
        start = time.perf_counter()
        fit(model, train, callbacks=callbacks, **options)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    chosen = variants(args.profile)
    timed([])  # warm-up: first-call costs of torch and the data
    times: dict[str, list[float]] = {name: [] for name in chosen}
    for _ in range(args.repeats):
        for name, make in chosen.items():
            times[name].append(timed(make()))

    base = statistics.median(times["plain fit"])
    print(
        f"mnist5k train {len(train)} x 784, MLP 784-256-10, Adam lr {args.lr}, batch "
        f"{args.batch_size}, {args.epochs} epochs, {args.device}, torch threads "
        f"{torch.get_num_threads()}, median of {args.repeats}"
    )
    base_min = min(times["plain fit"])
    print(f"{'callbacks':<26}{'median s':>10}{'overhead':>10}{'min s':>9}{'overhead':>10}")
    for name, values in times.items():
        median, fastest = statistics.median(values), min(values)
        print(
            f"{name:<26}{median:>10.3f}{100 * (median / base - 1):>9.1f}%"
            f"{fastest:>9.3f}{100 * (fastest / base_min - 1):>9.1f}%"
        )


if __name__ == "__main__":
    main()
