"""Train a tiny MLP with a checkpoint after every epoch: the process the kill tests kill.

Run::

    python -m tests.reliability._train_script --out DIR [--epochs 8] [--seed 0] [--resume]
        [--save-delay SECONDS --delay-epoch K]

Writes ``DIR/started`` once the data and model are built, checkpoints to
``DIR/checkpoints/`` (``deepdx.train.fit`` with ``checkpoint_dir``), and the final weights
to ``DIR/model.safetensors``. ``--resume`` continues from the latest checkpoint.

``--save-delay`` sleeps after each tensor file that the checkpoint of epoch ``K`` writes
into its staging folder (``.tmp-epoch-00000K-*``), so a test can kill the process in the
middle of that save. It patches this process's ``deepdx.train.checkpoint.save_tensors``
only; the library is untouched.

The model has dropout and trains with Adam and a cosine schedule, so an exact resume must
restore the weights, the optimizer moments, the schedule, the minibatch order and the
dropout RNG.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deepdx._random import numpy_rng, seeded_torch
from deepdx.data.dataset import Dataset, from_arrays
from deepdx.io import TEMP_PREFIX, atomic_write_text, save_tensors
from deepdx.train import checkpoint, fit
from deepdx.train.checkpoint import clean_stale

N_SAMPLES = 96
N_FEATURES = 4


def make_data(seed: int) -> Dataset:
    """Two Gaussian blobs: X (96, 4) float32, y (96,) in {0, 1}."""
    rng = numpy_rng(seed)
    y = rng.integers(0, 2, N_SAMPLES)
    X = (rng.normal(size=(N_SAMPLES, N_FEATURES)) + 1.5 * y[:, None]).astype(np.float32)
    return from_arrays(X, y, name="blobs")


def make_model(seed: int) -> nn.Module:
    """4 -> 16 (tanh, dropout 0.2) -> 2, initialised from ``seed``."""
    with seeded_torch(seed):
        return nn.Sequential(
            nn.Linear(N_FEATURES, 16), nn.Tanh(), nn.Dropout(0.2), nn.Linear(16, 2)
        )


def slow_down_save(epoch: int, delay: float) -> None:
    """Sleep ``delay`` seconds after each tensor file of epoch ``epoch``'s checkpoint."""
    staging = f"{TEMP_PREFIX}epoch-{epoch:06d}-"
    original: Callable[..., Path] = checkpoint.save_tensors

    @functools.wraps(original)
    def save_tensors_slowly(path, *args, **kwargs):
        written = original(path, *args, **kwargs)
        if Path(path).parent.name.startswith(staging):
            time.sleep(delay)
        return written

    checkpoint.save_tensors = save_tensors_slowly


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--save-delay", type=float, default=0.0)
    parser.add_argument("--delay-epoch", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Train (or resume) the run in ``--out``; return 0."""
    args = parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    clean_stale(args.out)  # the final model's temporary file, if a kill left one
    if args.save_delay > 0:
        slow_down_save(args.delay_epoch, args.save_delay)
    data, model = make_data(args.seed), make_model(args.seed)
    atomic_write_text(args.out / "started", "")
    fit(
        model,
        data,
        epochs=args.epochs,
        optimizer="adam",
        lr=0.05,
        batch_size=32,
        schedule="cosine",
        seed=args.seed,
        checkpoint_dir=args.out / "checkpoints",
        resume=args.resume,
    )
    save_tensors(args.out / "model.safetensors", dict(model.state_dict()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
