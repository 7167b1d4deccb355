"""Seeds and generators: library code never touches the global RNGs without restoring them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

__all__ = ["make_generator", "numpy_rng", "seeded_torch"]


def make_generator(seed: int | None, device: str | torch.device = "cpu") -> torch.Generator:
    """Return a ``torch.Generator`` on ``device`` seeded with ``seed`` (fresh entropy if None)."""
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))
    return generator


def numpy_rng(seed: int | None) -> np.random.Generator:
    """Return a NumPy ``Generator`` seeded with ``seed``."""
    return np.random.default_rng(seed)


@contextlib.contextmanager
def seeded_torch(seed: int | None) -> Iterator[None]:
    """Seed torch's global RNG inside the block and restore the caller's state afterwards.

    Module constructors (``nn.Linear``) and ``nn.Dropout`` draw from the global RNG; this
    makes them reproducible without leaking a seed into the caller's program.
    """
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        if seed is not None:
            torch.manual_seed(int(seed))
        yield
