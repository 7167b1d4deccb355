"""Declarative parameter constraints, checked all at once with did-you-mean suggestions."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from deepdx.exceptions import InvalidParameterError

__all__ = ["Interval", "OneOf", "check_params", "check_keys"]


@dataclass(frozen=True)
class Interval:
    """A number in ``[low, high]`` (ends open when ``*_open``); ``None`` bounds are unbounded."""

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    allow_none: bool = False

    def accepts(self, value: Any) -> bool:
        """Return whether ``value`` satisfies the constraint."""
        if value is None:
            return self.allow_none
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        low_ok = self.low is None or (value > self.low if self.low_open else value >= self.low)
        high_ok = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return low_ok and high_ok

    def describe(self) -> str:
        """Describe the constraint in words."""
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high}")
        text = f"{'an int' if self.kind is int else 'a float'} {' and '.join(parts)}".strip()
        return text + (" or None" if self.allow_none else "")


@dataclass(frozen=True)
class OneOf:
    """One of a fixed set of values."""

    options: tuple[Any, ...]

    def accepts(self, value: Any) -> bool:
        """Return whether ``value`` is one of the options."""
        return value in self.options

    def describe(self) -> str:
        """Describe the constraint in words."""
        return "one of " + ", ".join(repr(o) for o in self.options)


def check_params(owner: str, params: Mapping[str, Any], constraints: Mapping[str, Any]) -> None:
    """Raise one :class:`InvalidParameterError` listing every parameter that breaks its constraint.

    Examples
    --------
    >>> check_params("fit", {"epochs": 3}, {"epochs": Interval(int, low=1)})
    >>> check_params("fit", {"epochs": 0}, {"epochs": Interval(int, low=1)})
    Traceback (most recent call last):
    ...
    deepdx.exceptions.InvalidParameterError: `epochs` of fit must be an int >= 1; got 0.
    """
    problems = []
    for name, rule in constraints.items():
        value = params.get(name)
        if not rule.accepts(value):
            problem = f"`{name}` of {owner} must be {rule.describe()}; got {value!r}."
            if isinstance(rule, OneOf) and isinstance(value, str):
                problem = _with_suggestion(problem, value, [str(o) for o in rule.options])
            problems.append(problem)
    if problems:
        raise InvalidParameterError("\n".join(problems))


def check_keys(owner: str, given: Iterable[str], known: Iterable[str]) -> None:
    """Raise if any of ``given`` is not in ``known``, suggesting close names."""
    known = list(known)
    problems = [
        _with_suggestion(f"{owner} has no option {key!r}.", key, known)
        for key in given
        if key not in known
    ]
    if problems:
        raise InvalidParameterError(
            "\n".join(problems) + f"\nValid options: {', '.join(sorted(known))}."
        )


def _with_suggestion(message: str, value: str, choices: list[str]) -> str:
    """Append 'Did you mean ...?' when a close match exists."""
    close = difflib.get_close_matches(value, choices, n=1)
    return f"{message} Did you mean {close[0]!r}?" if close else message
