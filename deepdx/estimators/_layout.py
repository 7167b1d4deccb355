"""Laying rows of features out as images for :class:`~deepdx.estimators.ConvNetClassifier`.

Symbols
-------
n        samples
d        features per row, ``n_features_in_``
C, H, W  channels, height and width of one image, ``input_shape_``
s        side of the square image a row is laid out on when no shape is given

Layout rule
-----------
A row of d features fills an image (C, H, W) in row-major order (C-order ``reshape``), padded
with zeros at the end when C·H·W > d. Without an explicit shape the image is (1, s, s), the
smallest square that holds d features and survives the conv stack's pooling:
s = min {s' >= ceil(√d) : every pooled map of the conv plan of s' is non-empty}.
A perfect square d (64 for 8x8 digits, 784 for MNIST) is laid out without padding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from deepdx.estimators._params import Sizes
from deepdx.exceptions import DataError
from deepdx.nets.convnet import conv_plan

__all__ = ["rows_to_images", "square_image_shape"]


def _fits(side: int, n_layers: int, kernel_size: int) -> bool:
    """Return whether a side x side image survives ``n_layers`` conv-and-pool layers."""
    return all(size >= 1 for _, size in conv_plan(side, n_layers, kernel_size))


def square_image_shape(n_features: int, channels: object, kernel_size: object) -> tuple[int, ...]:
    """Return (1, s, s): the smallest square image for ``n_features`` and the conv stack.

    Parameters
    ----------
    n_features : int
        d, features per row.
    channels : sequence of int
        Conv channels; only their number matters. An invalid value is left for the
        :class:`~deepdx.nets.ConvNet` constructor to report, and s = ceil(√d) is returned.
    kernel_size : int
        k, the side of the kernels (invalid values as for ``channels``).

    Returns
    -------
    tuple of int
        (1, s, s).

    Examples
    --------
    >>> square_image_shape(64, (6, 16), 5), square_image_shape(3, (6, 16), 5)
    ((1, 8, 8), (1, 4, 4))
    """
    side = math.isqrt(n_features - 1) + 1  # ceil(sqrt(d)) for d >= 1
    if (
        isinstance(channels, Sequence)
        and Sizes(allow_empty=False).accepts(channels)
        and isinstance(kernel_size, int)
        and not isinstance(kernel_size, bool)
        and kernel_size > 0
    ):
        while not _fits(side, len(channels), kernel_size):
            side += 1
    return (1, side, side)


def rows_to_images(rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Lay rows (n, d) out as images (n, C, H, W), zero-padding each row to C·H·W.

    Parameters
    ----------
    rows : ndarray of shape (n, d)
        Validated features.
    shape : tuple of int
        (C, H, W) with C·H·W >= d.

    Returns
    -------
    ndarray of shape (n, C, H, W)
        Row-major layout; a view of ``rows`` when no padding is needed.

    Raises
    ------
    DataError
        If C·H·W < d.

    Examples
    --------
    >>> rows_to_images(np.arange(6.0).reshape(2, 3), (1, 2, 2))[1].tolist()
    [[[3.0, 4.0], [5.0, 0.0]]]
    """
    n, d = rows.shape
    size = math.prod(shape)
    if size < d:
        raise DataError(
            f"rows of {d} features do not fit images of shape {shape} ({size} pixels); pass "
            "input_shape with C*H*W equal to the number of features."
        )
    if size > d:
        rows = np.pad(rows, ((0, 0), (0, size - d)))  # (n, C·H·W)
    return rows.reshape(n, *shape)  # (n, C, H, W)
