"""Work-arounds for PyTorch behaviour that the curvature functions must not leak to users."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_forward_ad() -> Iterator[None]:
    """Silence the ``torch.jit.script`` DeprecationWarning forward-mode AD emits on first use.

    PyTorch loads its forward-mode decompositions lazily with ``torch.jit.script``, which
    warns once per process; the warning concerns PyTorch internals, not the caller's code.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*torch\.jit\.script.*deprecated", category=DeprecationWarning
        )
        yield
