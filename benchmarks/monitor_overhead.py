"""Time ``deepdx.train.fit`` with and without the diagnosis monitors.

Same data (mnist5k, standardized splits), model (``mlp:256``: 784-256-10, ReLU), optimizer
(Adam at its default rate), batch size, seed and epochs. By default every run is the training
run of a diagnosis (20 epochs, the validation split and a 2,000-row training probe evaluated
each epoch, and the monitors measuring activations and curvature on a fixed probe of 256
random training rows); ``--bare`` drops the evaluations, the worst case for the monitors, and
``--probe-size 0`` makes the monitors copy the run's first minibatch (64 rows). Variants:

- plain fit, no callbacks
- ``default_monitors(curvature=False)``: gradients, activations, distance from init
- ``default_monitors()``: the same plus the top Hessian eigenvalue
- with ``--profile``, each monitor alone (and the gradient monitor logging ‖g‖ every 4
  steps instead of every step)

Runs of each variant are interleaved, so a change in machine load hits all of them alike.
Three overheads are printed, from the medians of ``--repeats`` runs:

- wall: median seconds of a variant over those of plain ``fit``, minus 1;
- cpu: the same with the CPU seconds of the process, which leave out the time it waited
  for a core, so other programs on a shared machine disturb it less;
- in hooks: seconds spent inside the monitors' hooks over the seconds outside them, in
  the same run. It needs no second run to compare with, so it is the steadier number on
  a shared machine (it leaves out effects such as cache pollution, which wall includes).

Only the hooks a monitor overrides are timed (the others are the base class's no-ops), so
the stopwatch itself adds as little as it can to the wall and cpu columns.

Run: python benchmarks/monitor_overhead.py [--repeats 7] [--threads 1] [--profile]
    [--probe-size 256] [--bare] [--epochs 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from deepdx.data import Dataset, load, prepare
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


def variants(profile: bool, probe: tuple[Tensor, ...] | None) -> dict[str, Variant]:
    """Return the callback lists to time, by name; the first is the baseline."""
    chosen: dict[str, Variant] = {
        "plain fit": list,
        "monitors, no curvature": lambda: default_monitors(curvature=False, probe=probe),
        "default_monitors()": lambda: default_monitors(probe=probe),
    }
    if profile:
        chosen |= {
            "GradientMonitor": lambda: [GradientMonitor()],
            "GradientMonitor(4)": lambda: [GradientMonitor(4)],
            "ActivationMonitor": lambda: [ActivationMonitor(probe=probe)],
            "DistanceMonitor": lambda: [DistanceMonitor()],
            "CurvatureMonitor": lambda: [CurvatureMonitor(probe=probe)],
        }
    return chosen


def sample_probe(data: Dataset, size: int, seed: int) -> tuple[Tensor, ...] | None:
    """Return ``size`` random rows (X, y) of ``data`` as a fixed probe, or None for size 0."""
    if size == 0:
        return None
    rows = np.sort(np.random.default_rng(seed).permutation(len(data))[:size])
    assert data.y is not None
    return torch.from_numpy(data.X[rows]), torch.from_numpy(data.y[rows])


class Stopwatch:
    """Add up the seconds spent inside the hooks of some callbacks (wraps them in place)."""

    def __init__(self, callbacks: list[Callback]) -> None:
        self.seconds = 0.0
        for callback in callbacks:
            for hook in HOOKS:
                if getattr(type(callback), hook) is not getattr(Callback, hook):
                    setattr(callback, hook, self._timed(getattr(callback, hook)))

    def _timed(self, hook: Callable) -> Callable:
        def timed_hook(state) -> None:
            start = time.perf_counter()
            hook(state)
            self.seconds += time.perf_counter() - start

        return timed_hook


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--profile", action="store_true", help="also time each monitor alone")
    parser.add_argument("--bare", action="store_true", help="no per-epoch evaluations")
    parser.add_argument(
        "--probe-size", type=int, default=256, help="fixed monitor probe rows (0: first batch)"
    )
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

    def timed(callbacks: list[Callback]) -> tuple[float, float, float]:
        """Return seconds of the whole fit, its CPU seconds, and seconds inside the hooks."""
        model = build_model("mlp:256", train.sample_shape, train.n_classes, seed=args.seed)
        watch = Stopwatch(callbacks)
        start, cpu = time.perf_counter(), time.process_time()
        fit(model, train, val, callbacks=callbacks, **options)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start, time.process_time() - cpu, watch.seconds

    chosen = variants(args.profile, sample_probe(train, args.probe_size, args.seed))
    timed(chosen["default_monitors()"]())  # warm-up: first calls of torch, double backward
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in chosen}
    for _ in range(args.repeats):
        for name, make in chosen.items():
            runs[name].append(timed(make()))

    base = [statistics.median(run[i] for run in runs["plain fit"]) for i in (0, 1)]
    print(
        f"mnist5k train {len(train)} x 784, MLP 784-256-10, Adam lr {args.lr or 'default'}, "
        f"batch {args.batch_size}, {args.epochs} epochs, "
        f"{'no evaluations' if args.bare else 'val + train probe each epoch'}, "
        f"monitor probe {args.probe_size or 'first batch'}, "
        f"{args.device}, torch threads "
        f"{torch.get_num_threads()}, median of {args.repeats}"
    )
    print(f"{'callbacks':<26}{'median s':>10}{'wall':>9}{'cpu':>9}{'in hooks':>10}")
    for name, triples in runs.items():
        wall, cpu = (statistics.median(run[i] for run in triples) for i in (0, 1))
        inside = statistics.median(hooks / (total - hooks) for total, _, hooks in triples)
        print(
            f"{name:<26}{wall:>10.3f}{100 * (wall / base[0] - 1):>8.1f}%"
            f"{100 * (cpu / base[1] - 1):>8.1f}%{100 * inside:>9.1f}%"
        )


if __name__ == "__main__":
    main()
