"""deepdx: diagnose why a neural net does not work.

The most used names are importable from the top level (loaded on first use)::

    import deepdx
    diagnosis = deepdx.diagnose("digits")          # the whole checklist
    deepdx.gradcheck(model, loss_fn, (X, y))       # finite-difference gradient check
    splits, _ = deepdx.prepare(deepdx.load("mnist5k"))
    history = deepdx.fit(model, splits.train, splits.val)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Dataset": "deepdx.data",
    "load": "deepdx.data",
    "prepare": "deepdx.data",
    "split": "deepdx.data",
    "build_model": "deepdx.nets",
    "fit": "deepdx.train",
    "evaluate": "deepdx.train",
    "TrainConfig": "deepdx.train",
    "diagnose": "deepdx.diagnose",
    "gradcheck": "deepdx.diagnose",
    "Diagnosis": "deepdx.diagnose",
    "compare_optimizers": "deepdx.study",
    "local_optima": "deepdx.study",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'deepdx' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
