"""Constraint types and the routing of ``<route>__<name>`` parameters of the estimators.

The routes and what each may name are described in :mod:`deepdx.estimators`; this module
checks them (all at once, with did-you-mean suggestions) and splits them by route.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from deepdx._validation import check_keys
from deepdx.exceptions import InvalidParameterError

__all__ = [
    "OPTIMIZER_ARGS",
    "ROUTES",
    "TRAIN_ARGS",
    "Predicate",
    "Sizes",
    "is_device",
    "is_random_state",
    "is_routed",
    "module_args",
    "plain",
    "split_routed",
]

ROUTES: tuple[str, ...] = ("module", "optimizer", "train")
OPTIMIZER_ARGS: tuple[str, ...] = ("lr", "momentum", "weight_decay")
TRAIN_ARGS: tuple[str, ...] = ("schedule", "clip_grad_norm", "train_eval_size", "deterministic")
# Arguments of a module's constructor that the estimator derives from the data.
_DATA_ARGS = frozenset({"input_shape", "n_outputs"})


@dataclass(frozen=True)
class Sizes:
    """A sequence of positive ints (layer widths, channels); empty only when ``allow_empty``."""

    allow_empty: bool = True

    def accepts(self, value: Any) -> bool:
        """Return whether ``value`` is such a sequence."""
        if not isinstance(value, Sequence) or isinstance(value, str):
            return False
        if not value and not self.allow_empty:
            return False
        return all(_is_positive_int(v) for v in value)

    def describe(self) -> str:
        """Describe the constraint in words."""
        kind = "a sequence" if self.allow_empty else "a non-empty sequence"
        return f"{kind} of positive ints such as (100,)"


@dataclass(frozen=True)
class Predicate:
    """Any value for which ``test`` returns True; ``text`` says which in words."""

    test: Callable[[Any], bool]
    text: str

    def accepts(self, value: Any) -> bool:
        """Return ``test(value)``."""
        return bool(self.test(value))

    def describe(self) -> str:
        """Describe the constraint in words."""
        return self.text


def _is_positive_int(value: object) -> bool:
    """Return True for an int > 0 that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) > 0


def is_device(value: object) -> bool:
    """Return True for a string torch accepts as a device ("cpu", "cuda:1", ...)."""
    if not isinstance(value, str):
        return False
    try:
        torch.device(value)
    except (RuntimeError, ValueError):
        return False
    return True


def is_random_state(value: object) -> bool:
    """Return True for None, an int in [0, 2**32) or a ``numpy.random.RandomState``."""
    if value is None or isinstance(value, np.random.RandomState):
        return True
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return False
    return 0 <= int(value) < 2**32


def plain(value: object) -> object:
    """Return a NumPy scalar as the Python scalar it holds; anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def is_routed(key: str) -> bool:
    """Return True for a ``<route>__<name>`` key with a known route."""
    route, sep, name = key.partition("__")
    return bool(sep) and bool(name) and route in ROUTES


def module_args(module_class: type) -> list[str]:
    """Names a ``module__`` key may take: the constructor's arguments minus the data's."""
    parameters = inspect.signature(module_class).parameters
    return [name for name in parameters if name not in _DATA_ARGS]


def split_routed(
    owner: str, routed: Mapping[str, object], *, module_names: Collection[str]
) -> dict[str, dict[str, Any]]:
    """Split routed parameters by route, checking every key at once.

    Parameters
    ----------
    owner : str
        The estimator's name, for messages.
    routed : mapping
        The ``<route>__<name>`` keyword arguments the estimator was given.
    module_names : collection of str
        Names the module's constructor accepts (see :func:`module_args`).

    Returns
    -------
    dict
        ``{"module": {...}, "optimizer": {...}, "train": {...}}`` with the prefixes removed
        and NumPy scalars made plain.

    Raises
    ------
    InvalidParameterError
        Naming every key with an unknown route or name, with a did-you-mean.

    Examples
    --------
    >>> split_routed("MLPClassifier", {"module__hidden": (8,)}, module_names=["hidden"])
    {'module': {'hidden': (8,)}, 'optimizer': {}, 'train': {}}
    """
    known = {"module": list(module_names), "optimizer": OPTIMIZER_ARGS, "train": TRAIN_ARGS}
    valid = [f"{route}__{name}" for route, names in known.items() for name in names]
    unknown = [key for key in routed if not is_routed(key) or key not in valid]
    if unknown:
        try:
            check_keys(owner, unknown, valid)
        except InvalidParameterError as error:
            raise InvalidParameterError(
                f"{error} Top-level parameters are set by name; routed ones are "
                "module__<name>, optimizer__<name> or train__<name>."
            ) from None
    split: dict[str, dict[str, Any]] = {route: {} for route in ROUTES}
    for key, value in routed.items():
        route, _, name = key.partition("__")
        split[route][name] = plain(value)
    return split
