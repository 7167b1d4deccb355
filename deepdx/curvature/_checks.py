"""Argument checks shared by the curvature functions; each error says what, expected, got, fix."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from torch import Tensor

from deepdx.exceptions import InvalidParameterError


def check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    """Raise unless ``value`` is one of ``choices``, suggesting the closest one."""
    if value in choices:
        return
    close = difflib.get_close_matches(str(value), choices, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise InvalidParameterError(
        f"`{name}` must be one of {', '.join(map(repr, choices))}; got {value!r}.{hint}"
    )


def check_positive(name: str, value: float, *, integer: bool = False) -> None:
    """Raise unless ``value`` is a number > 0 (an int when ``integer``)."""
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
        what = "an int >= 1" if integer else "a float > 0"
        raise InvalidParameterError(f"`{name}` must be {what}; got {value!r}.")


def check_nonnegative(name: str, value: float) -> None:
    """Raise unless ``value`` is a finite float >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise InvalidParameterError(f"`{name}` must be a float >= 0; got {value!r}.")


def check_params(params: Sequence[Tensor]) -> list[Tensor]:
    """Return ``params`` as a list after checking each is a tensor that requires grad."""
    params = list(params)
    if not params:
        raise InvalidParameterError(
            "`params` must hold at least one tensor; got an empty sequence. "
            "Pass list(model.parameters())."
        )
    for i, p in enumerate(params):
        if not isinstance(p, Tensor) or not p.requires_grad:
            raise InvalidParameterError(
                f"params[{i}] must be a tensor with requires_grad=True; got "
                f"{type(p).__name__}{'' if not isinstance(p, Tensor) else ' without grad'}. "
                "Pass only trainable parameters, e.g. [p for p in model.parameters() "
                "if p.requires_grad]."
            )
    return params


def check_scalar(value: object, what: str) -> Tensor:
    """Return ``value`` after checking it is a scalar tensor that depends on something."""
    if not isinstance(value, Tensor) or value.numel() != 1:
        got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise InvalidParameterError(
            f"{what} must return a scalar tensor; got {got}. Reduce it with .mean() or .sum()."
        )
    return value.reshape(())


def check_like_params(v: Sequence[Tensor], params: Sequence[Tensor], name: str) -> list[Tensor]:
    """Return ``v`` as a list after checking it has one tensor per parameter, same shapes."""
    v = list(v)
    shapes = [tuple(p.shape) for p in params]
    got = [tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__ for t in v]
    if got != shapes:
        raise InvalidParameterError(
            f"`{name}` must hold one tensor per parameter with the same shapes {shapes}; "
            f"got {got}. Use unflatten(vector, params) to split a flat vector."
        )
    return v


def check_flat(v: Tensor, n: int, name: str = "v") -> None:
    """Raise unless ``v`` is a tensor of shape ``(n,)``."""
    if not isinstance(v, Tensor) or tuple(v.shape) != (n,):
        got = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
        raise InvalidParameterError(
            f"`{name}` must be a flat vector of shape ({n},), one entry per parameter; "
            f"got {got}. Use flatten(tensors) to build one."
        )


def check_k(k: int, n: int) -> None:
    """Raise unless ``1 <= k <= n``."""
    check_positive("k", k, integer=True)
    if k > n:
        raise InvalidParameterError(
            f"`k` must be at most the operator size {n}; got k={k}. Ask for fewer eigenvalues."
        )
