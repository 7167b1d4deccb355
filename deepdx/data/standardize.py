"""``Standardizer``: shift and scale features with statistics fitted on the training split only.

    x' = (x - mu) / sigma,   mu = mean over the pooled axes,  sigma = std over them

Which axes are pooled (``per``):

=========  ==========================  ============================  ===================
per        pools over                  mu, sigma shape               typical data
=========  ==========================  ============================  ===================
feature    samples                     sample_shape                  tabular (n, d)
channel    samples, H, W               (C, 1, 1)                     images (n, C, H, W)
global     everything                  (1,) * len(sample_shape)      one scale for all
auto       "feature" for 1-D samples, "channel" for (C, H, W) samples, else "feature"
=========  ==========================  ============================  ===================

A feature (or channel) whose std is below 1e-8 gets sigma = 1, so constant inputs map to
0 instead of dividing by zero. Statistics are accumulated in float64 over row chunks.

Symbols
-------
n        number of samples
mu       ``mean_``, fitted means
sigma    ``scale_``, fitted standard deviations (population, ddof = 0)
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Literal

import numpy as np

from deepdx.data._memory import check_fits_in_memory, dataset_bytes
from deepdx.data.dataset import Dataset
from deepdx.exceptions import DataError, InvalidParameterError, NotFittedError

if TYPE_CHECKING:
    from typing_extensions import Self  # noqa: UP035 (typing.Self needs Python 3.11)

__all__ = ["PER_CHOICES", "Standardizer"]

PER_CHOICES: tuple[str, ...] = ("auto", "feature", "channel", "global")
_TINY_STD = 1e-8
_CHUNK_ROWS = 8192


class Standardizer:
    """Standardize features to zero mean and unit variance, fitted on training data.

    Parameters
    ----------
    per : {"auto", "feature", "channel", "global"}, default="auto"
        Which axes share one mean and std (see the module table).

    Attributes
    ----------
    mean_ : ndarray, float32
        Fitted means, broadcastable to the sample shape.
    scale_ : ndarray, float32
        Fitted standard deviations (1 where the std is below 1e-8).
    per_ : str
        The resolved mode ("feature", "channel" or "global").
    sample_shape_ : tuple of int
        Sample shape seen in :meth:`fit`.

    Raises
    ------
    InvalidParameterError
        If ``per`` is not one of the choices.

    Examples
    --------
    >>> from deepdx.data.dataset import from_arrays
    >>> train = from_arrays([[1.0, 10.0], [3.0, 10.0]])
    >>> scaler = Standardizer().fit(train)
    >>> scaler.transform(train).X.tolist(), scaler.scale_.tolist()
    ([[-1.0, 0.0], [1.0, 0.0]], [1.0, 1.0])
    """

    def __init__(self, per: Literal["auto", "feature", "channel", "global"] = "auto") -> None:
        self.per = _check_per(per)

    def fit(self, data: Dataset) -> Self:
        """Fit the mean and std on ``data`` (the training split).

        Parameters
        ----------
        data : Dataset
            Training data, X of shape (n, *sample_shape).

        Returns
        -------
        Standardizer
            ``self``, with ``mean_``, ``scale_``, ``per_`` and ``sample_shape_`` set.

        Raises
        ------
        InvalidParameterError
            If ``per="channel"`` and the samples are not images (C, H, W).
        """
        per = _resolve(self.per, data.sample_shape)
        axes = _pooled_axes(per, data.X.ndim)
        mean, std = _moments(data.X, axes)  # float64, keepdims without the sample axis
        std[std < _TINY_STD] = 1.0
        self.mean_ = mean.astype(np.float32)
        self.scale_ = std.astype(np.float32)
        self.per_ = per
        self.sample_shape_ = data.sample_shape
        return self

    def transform(self, data: Dataset) -> Dataset:
        """Return a copy of ``data`` with X standardized by the fitted statistics.

        Parameters
        ----------
        data : Dataset
            Any split, X of shape (n, *sample_shape_); targets are left unchanged.

        Returns
        -------
        Dataset
            X replaced by (X - mean_) / scale_, float32.

        Raises
        ------
        NotFittedError
            If :meth:`fit` (or :meth:`load_state_dict`) has not run.
        DataError
            If the sample shape differs from the one seen in :meth:`fit`, or the new X does
            not fit in the available memory (checked before it is allocated).
        """
        self._check_fitted(data.sample_shape)
        check_fits_in_memory(
            dataset_bytes(data.X.size, copy=True),
            what=f"standardizing {data.name!r} (a new float32 X)",
            fix="free memory or use fewer rows.",
        )
        X = np.subtract(data.X, self.mean_, dtype=np.float32)  # (n, *sample_shape)
        X /= self.scale_  # in place: one new array at the peak
        return dataclasses.replace(data, X=X)

    def fit_transform(self, data: Dataset) -> Dataset:
        """Fit on ``data`` and return it standardized."""
        return self.fit(data).transform(data)

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        """Map standardized features (n, *sample_shape) back to the original units."""
        self._check_fitted(tuple(np.shape(X)[1:]))
        return (np.asarray(X, dtype=np.float32) * self.scale_ + self.mean_).astype(np.float32)

    def state_dict(self) -> dict[str, object]:
        """Return the fitted state as JSON-able lists, for checkpoints.

        Examples
        --------
        >>> import json
        >>> from deepdx.data.dataset import from_arrays
        >>> scaler = Standardizer().fit(from_arrays([[0.0], [2.0]]))
        >>> json.dumps(scaler.state_dict())
        '{"per": "auto", "per_": "feature", "sample_shape": [1], "mean": [1.0], "scale": [1.0]}'
        """
        self._check_fitted(None)
        return {
            "per": self.per,
            "per_": self.per_,
            "sample_shape": list(self.sample_shape_),
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore the state written by :meth:`state_dict`."""
        missing = {"per", "per_", "sample_shape", "mean", "scale"} - set(state)
        if missing:
            raise InvalidParameterError(
                f"Standardizer state is missing the keys {sorted(missing)}; pass a dict "
                "returned by Standardizer.state_dict()."
            )
        self.per = _check_per(state["per"])
        self.per_ = _check_per(state["per_"])
        self.sample_shape_ = tuple(np.asarray(state["sample_shape"], dtype=np.int64).tolist())
        self.mean_ = np.asarray(state["mean"], dtype=np.float32)
        self.scale_ = np.asarray(state["scale"], dtype=np.float32)

    def _check_fitted(self, sample_shape: tuple[int, ...] | None) -> None:
        """Raise unless fitted (and, when given, fitted on this sample shape)."""
        if not hasattr(self, "mean_"):
            raise NotFittedError(
                "this Standardizer is not fitted; call fit(train) or load_state_dict first."
            )
        if sample_shape is not None and sample_shape != self.sample_shape_:
            raise DataError(
                f"Standardizer was fitted on samples of shape {self.sample_shape_} but got "
                f"{sample_shape}; standardize data with the same features it was fitted on."
            )


# ----------------------------------------------------------------------------- helpers


def _check_per(per: object) -> str:
    """Return ``per`` if it is one of PER_CHOICES, else raise."""
    if per not in PER_CHOICES:
        raise InvalidParameterError(
            f"per of Standardizer must be one of {PER_CHOICES}; got {per!r}."
        )
    return str(per)


def _resolve(per: str, sample_shape: tuple[int, ...]) -> str:
    """Turn "auto" into a concrete mode and check "channel" fits the sample shape."""
    if per == "auto":
        return "channel" if len(sample_shape) == 3 else "feature"
    if per == "channel" and len(sample_shape) != 3:
        raise InvalidParameterError(
            f"per='channel' needs image samples (C, H, W); got sample shape {sample_shape}. "
            "Use per='feature' or per='global'."
        )
    return per


def _pooled_axes(per: str, ndim: int) -> tuple[int, ...]:
    """Axes of X (n, ...) that share one statistic."""
    if per == "feature":
        return (0,)
    if per == "channel":
        return (0, 2, 3)
    return tuple(range(ndim))


def _moments(X: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std over ``axes`` in float64, summed over row chunks.

    Returns arrays with the sample axis dropped and the other pooled axes kept as 1.
    """
    count = int(np.prod([X.shape[a] for a in axes]))
    total = np.zeros(np.sum(X[:1], axis=axes, keepdims=True).shape, dtype=np.float64)
    for start in range(0, len(X), _CHUNK_ROWS):
        total += np.sum(X[start : start + _CHUNK_ROWS], axis=axes, keepdims=True, dtype=np.float64)
    mean = total / count
    squares = np.zeros_like(total)
    for start in range(0, len(X), _CHUNK_ROWS):
        deviation = X[start : start + _CHUNK_ROWS].astype(np.float64) - mean  # (chunk, ...)
        squares += np.sum(deviation * deviation, axis=axes, keepdims=True)
    return mean[0], np.sqrt(squares / count)[0]
