"""Declarative parameter constraints, checked all at once with did-you-mean suggestions.

==================  =====================================================================
``Constraint``      what a rule offers: ``accepts(value)`` and ``describe()`` in words
``Interval``        a number of one kind within bounds (``None`` allowed if asked)
``OneOf``           one of a few values, or also any callable if asked
``param_problems``  one sentence per parameter that breaks its rule
``check_params``    raise one :class:`~deepdx.exceptions.InvalidParameterError` for them all
``check_keys``      raise if a key is not known, suggesting close names
``closest_name``    the known name closest to a misspelt one, if any is close
==================  =====================================================================

Every sentence follows one recipe: ``` `lr` of TrainConfig must be a float > 0; got -1. ```,
plus ``Did you mean 'adam'?`` when a misspelt option is close to a valid one.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from deepdx.exceptions import InvalidParameterError

__all__ = [
    "Constraint",
    "Interval",
    "OneOf",
    "check_keys",
    "check_params",
    "closest_name",
    "param_problems",
]

_OPTION_CUTOFF = 0.5
"""Similarity an option must reach to be suggested; looser than difflib's 0.6 so that a
shortened name such as 'wolfe' still finds 'strong_wolfe'."""


class Constraint(Protocol):
    """A rule one parameter must follow."""

    def accepts(self, value: Any) -> bool:
        """Return whether ``value`` satisfies the rule."""
        ...

    def describe(self) -> str:
        """Describe the allowed values in words, to follow "must be"."""
        ...


@dataclass(frozen=True)
class Interval:
    """A number in ``[low, high]`` (ends open when ``*_open``); ``None`` bounds are unbounded.

    ``Interval(float, low=0, low_open=True)`` is "a float > 0"; ``Interval(float, low=0,
    high=1, high_open=True)`` is "a float in [0, 1)". A float interval accepts ints too.
    """

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
        """Describe the constraint in words, e.g. ``a float in (0, 1)`` or ``an int >= 1``."""
        noun = "an int" if self.kind is int else "a float"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            text = f"{noun} in {left}{_number(self.low)}, {_number(self.high)}{right}"
        elif self.low is not None:
            text = f"{noun} {'>' if self.low_open else '>='} {_number(self.low)}"
        elif self.high is not None:
            text = f"{noun} {'<' if self.high_open else '<='} {_number(self.high)}"
        else:
            text = noun
        return text + (" or None" if self.allow_none else "")


@dataclass(frozen=True)
class OneOf:
    """One of a fixed set of values; also any callable when ``callable_name`` names it."""

    options: tuple[Any, ...]
    callable_name: str | None = None

    def accepts(self, value: Any) -> bool:
        """Return whether ``value`` is one of the options (or an allowed callable)."""
        if self.callable_name is not None and callable(value):
            return True
        return isinstance(value, Hashable) and value in self.options

    def describe(self) -> str:
        """Describe the constraint in words."""
        text = "one of " + ", ".join(repr(o) for o in self.options)
        return text if self.callable_name is None else f"{text} or {self.callable_name}"


def param_problems(
    owner: str, params: Mapping[str, Any], constraints: Mapping[str, Constraint]
) -> list[str]:
    """Return one sentence per parameter that breaks its constraint, in table order.

    Examples
    --------
    >>> param_problems("fit", {"lr": 0.0}, {"lr": Interval(float, low=0, low_open=True)})
    ['`lr` of fit must be a float > 0; got 0.0.']
    """
    problems = []
    for name, rule in constraints.items():
        value = params.get(name)
        if not rule.accepts(value):
            problem = f"`{name}` of {owner} must be {rule.describe()}; got {value!r}."
            if isinstance(rule, OneOf) and isinstance(value, str):
                names = [str(o) for o in rule.options if o is not None]
                problem = _with_suggestion(problem, value, names, cutoff=_OPTION_CUTOFF)
            problems.append(problem)
    return problems


def check_params(
    owner: str, params: Mapping[str, Any], constraints: Mapping[str, Constraint]
) -> None:
    """Raise one :class:`InvalidParameterError` listing every parameter that breaks its constraint.

    Examples
    --------
    >>> check_params("fit", {"epochs": 3}, {"epochs": Interval(int, low=1)})
    >>> check_params("fit", {"epochs": 0}, {"epochs": Interval(int, low=1)})
    Traceback (most recent call last):
    ...
    deepdx.exceptions.InvalidParameterError: `epochs` of fit must be an int >= 1; got 0.
    """
    problems = param_problems(owner, params, constraints)
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


def closest_name(
    value: str, choices: Iterable[str], *, cutoff: float = 0.6, ignore_case: bool = False
) -> str | None:
    """Return the choice most similar to ``value`` (difflib ratio >= ``cutoff``), or None.

    Examples
    --------
    >>> closest_name("Relu", ["relu", "tanh"], ignore_case=True), closest_name("x", ["relu"])
    ('relu', None)
    """
    if not ignore_case:
        close = difflib.get_close_matches(value, list(choices), n=1, cutoff=cutoff)
        return close[0] if close else None
    by_lower = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(value.lower(), by_lower, n=1, cutoff=cutoff)
    return by_lower[close[0]] if close else None


def _with_suggestion(message: str, value: str, choices: list[str], *, cutoff: float = 0.6) -> str:
    """Append 'Did you mean ...?' when a close match exists."""
    close = closest_name(value, choices, cutoff=cutoff)
    return f"{message} Did you mean {close!r}?" if close is not None else message


def _number(bound: float) -> str:
    """Write a bound as given for an int, in shortest form for a float (0.0 -> '0')."""
    return str(bound) if isinstance(bound, int) else f"{bound:g}"
