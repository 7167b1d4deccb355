"""Exceptions and warnings raised by deepdx.

Every message follows one recipe: *what* is wrong, what was *expected*, what was *got*,
and the *fix*, in plain sentences.
"""

from __future__ import annotations

from sklearn.exceptions import ConvergenceWarning
from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

__all__ = [
    "ConvergenceWarning",
    "DataError",
    "DeepdxError",
    "DiagnosticWarning",
    "InvalidParameterError",
    "NotFittedError",
    "NumericalError",
    "UnsafeFileError",
]


class DeepdxError(Exception):
    """Base class of every error deepdx raises on purpose."""


class InvalidParameterError(DeepdxError, ValueError):
    """A parameter has a value outside its allowed set or range."""


class DataError(DeepdxError, ValueError):
    """Input data is malformed: wrong shape, NaN, empty, unreadable or inconsistent."""


class NotFittedError(DeepdxError, _SklearnNotFittedError):
    """An estimator or run was used before it was fitted."""


class NumericalError(DeepdxError, ArithmeticError):
    """A computation produced a non-finite value; the message names the step and quantity."""


class UnsafeFileError(DeepdxError, ValueError):
    """A file could execute code on load, or failed an integrity check, and was refused."""


class DiagnosticWarning(UserWarning):
    """A diagnosis check found something worth a look, or could not run."""
