"""Time ``deepdx.train.fit`` with and without the diagnosis monitors.

Same data (mnist5k, standardized splits), model (``mlp:256``: 784-256-10, ReLU), optimizer
(Adam at its default rate), batch size, seed and epochs. By default every run is the training
run of a diagnosis (20 epochs, the validation split and a 2,000-row training probe evaluated
each epoch); ``--bare`` drops the evaluations, the worst case for the monitors. Variants:

- plain fit, no callbacks
- ``default_monitors(curvature=False)``: gradients, activations, distance from init
- ``default_monitors()``: the same plus the top Hessian eigenvalue
- with ``--profile``, each monitor alone (and the gradient monitor logging ‖g‖ every 4
  steps instead of every step)

Runs of each variant are interleaved, so a change in machine load hits all of them alike.
Two overheads are printed, from the medians of ``--repeats`` runs:

- wall: median seconds of a variant over those of plain ``fit``, minus 1;
- in hooks: seconds spent inside the monitors' hooks over the seconds outside them, in
  the same run. It needs no second run to compare with, so it is the steadier number on
  a shared machine (it leaves out effects such as cache pollution, which wall includes).

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
HOOKS = ("on_fit_start", "on_step_begin", "on_step_end", "on_epoch_end", "on_fit_end")


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
            "GradientMonitor(4)": lambda: [GradientMonitor(4)],
            "ActivationMonitor": lambda: [ActivationMonitor()],
            "DistanceMonitor": lambda: [DistanceMonitor()],
            "CurvatureMonitor": lambda: [CurvatureMonitor()],
        }
    return chosen


class Stopwatch:
    """Add up the seconds spent inside the hooks of some callbacks (wraps them in place)."""

    def __init__(self, callbacks: list[Callback]) -> None:
        self.seconds = 0.0
        for callback in callbacks:
            for hook in HOOKS:
                setattr(callback, hook, self._timed(getattr(callback, hook)))

    def _timed(self, hook: Callable) -> Callable:
        def timed_hook(state) -> None:
            start = time.perf_counter()
            hook(state)
            self.seconds += time.perf_counter() - start

        return timed_hook


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--profile", action="store_true", help="also time each monitor alone")
    parser.add_argument("--bare", action="store_true", help="no per-epoch evaluations")
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
        train_eval_size=0 if args.bare else min(2000, len(train)),
    )
    val = None if args.bare else splits.val

    def timed(callbacks: list[Callback]) -> tuple[float, float]:
        """Return (seconds of the whole fit, seconds inside the callbacks' hooks)."""
        model = build_model("mlp:256", train.sample_shape, train.n_classes, seed=args.seed)
        watch = Stopwatch(callbacks)
        start = time.perf_counter()
        fit(model, train, val, callbacks=callbacks, **options)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start, watch.seconds

    chosen = variants(args.profile)
    timed([])  # warm-up: first-call costs of torch and the data
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in chosen}
    for _ in range(args.repeats):
        for name, make in chosen.items():
            runs[name].append(timed(make()))

    base = statistics.median(total for total, _ in runs["plain fit"])
    print(
        f"mnist5k train {len(train)} x 784, MLP 784-256-10, Adam lr {args.lr or 'default'}, "
        f"batch {args.batch_size}, {args.epochs} epochs, "
        f"{'no evaluations' if args.bare else 'val + train probe each epoch'}, "
        f"{args.device}, torch threads "
        f"{torch.get_num_threads()}, median of {args.repeats}"
    )
    print(f"{'callbacks':<26}{'median s':>10}{'wall':>9}{'in hooks':>10}")
    for name, pairs in runs.items():
        median = statistics.median(total for total, _ in pairs)
        inside = statistics.median(hooks / (total - hooks) for total, hooks in pairs)
        print(f"{name:<26}{median:>10.3f}{100 * (median / base - 1):>8.1f}%{100 * inside:>9.1f}%")


if __name__ == "__main__":
    main()
