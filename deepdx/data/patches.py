"""Natural-image patches cut from the photographs that ship inside scikit-image.

The photographs (``skimage.data``; no download) and their licences, as scikit-image
states them: ``grass``, ``gravel``, ``brick`` (CC0 textures), ``camera``, ``coffee``,
``chelsea`` (CC0 by the photographers), ``astronaut``, ``rocket`` (public domain),
``moon`` (a classic test image; scikit-image states no licence). Colour photographs are
converted to luminance with ``skimage.color.rgb2gray``; all pixels are in [0, 1].

Patches are drawn uniformly over all valid positions in all photographs (so a photo
contributes in proportion to its area), vectorised per photograph.

ZCA whitening (optional) decorrelates the pixels while staying as close as possible to
the original patches, the usual preprocessing for sparse coding and ICA on images:

    mu = mean_i x_i,   C = (1/n) sum_i (x_i - mu)(x_i - mu)^T = U diag(lambda) U^T
    W  = U diag((lambda + epsilon)^(-1/2)) U^T,    x_white = W (x - mu)

so cov(x_white) = U diag(lambda / (lambda + epsilon)) U^T, which is ~I when epsilon is
small against the smallest eigenvalue (about 3e-4 for 12 x 12 patches of these photos).

Symbols
-------
n         number of patches
s         patch side (``size``)
d         s * s pixels per patch
lambda    (d,) eigenvalues of the patch covariance C
epsilon   regulariser added to lambda before the inverse square root
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from deepdx._random import numpy_rng
from deepdx.data._optional import require
from deepdx.data.dataset import Dataset
from deepdx.exceptions import InvalidParameterError

__all__ = ["PHOTOGRAPHS", "extract_patches", "load_patches", "zca_whiten"]

PHOTOGRAPHS: tuple[str, ...] = (
    "grass", "gravel", "brick", "camera", "moon", "coffee", "astronaut", "chelsea", "rocket",
)  # fmt: skip


def extract_patches(
    images: Sequence[np.ndarray], size: int, n_patches: int, *, seed: int | None = 0
) -> np.ndarray:
    """Cut ``n_patches`` square patches at uniformly random positions from ``images``.

    Parameters
    ----------
    images : sequence of ndarray of shape (H_k, W_k)
        Grayscale images, each at least ``size`` pixels high and wide.
    size : int
        Patch side s.
    n_patches : int
        Number of patches, >= 1.
    seed : int or None, default=0
        Seed of the NumPy generator that picks the positions.

    Returns
    -------
    ndarray of shape (n_patches, size, size)
        Patches in the dtype of the images, grouped by source image.

    Notes
    -----
    Image k is picked with probability proportional to its number of valid top-left
    corners (H_k - s + 1)(W_k - s + 1); the corner is then uniform. Each image's patches
    are gathered with one fancy-indexing call.

    Examples
    --------
    >>> image = np.arange(100.0).reshape(10, 10)
    >>> patches = extract_patches([image], size=3, n_patches=4, seed=0)
    >>> patches.shape, bool(np.all(np.diff(patches[0], axis=1) == 1.0))
    ((4, 3, 3), True)
    """
    images = [np.asarray(image) for image in images]
    if min(min(image.shape[:2]) for image in images) < size or size < 1 or n_patches < 1:
        raise InvalidParameterError(
            f"extract_patches needs 1 <= size <= the smallest image side and n_patches >= 1; "
            f"got size={size}, n_patches={n_patches}, image shapes "
            f"{[image.shape for image in images]}."
        )
    rng = numpy_rng(seed)
    corners = np.array([(h - size + 1) * (w - size + 1) for h, w in (i.shape for i in images)])
    source = rng.choice(len(images), size=n_patches, p=corners / corners.sum())  # (n,)
    offsets = np.arange(size)
    parts = []
    for k, image in enumerate(images):
        count = int(np.sum(source == k))
        rows = rng.integers(0, image.shape[0] - size + 1, count)  # (count,)
        cols = rng.integers(0, image.shape[1] - size + 1, count)  # (count,)
        parts.append(
            image[rows[:, None, None] + offsets[:, None], cols[:, None, None] + offsets[None, :]]
        )  # (count, s, s)
    return np.concatenate(parts)


def zca_whiten(
    X: np.ndarray, *, epsilon: float = 1e-5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ZCA-whiten rows of ``X`` with a covariance fitted on ``X`` itself.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Samples in rows; n > d for a full-rank covariance.
    epsilon : float, default=1e-5
        Added to each eigenvalue before the inverse square root (> 0).

    Returns
    -------
    X_white : ndarray of shape (n, d), float32
        W (x - mu) for every row.
    W : ndarray of shape (d, d), float64
        The symmetric whitening matrix U diag((lambda + epsilon)^(-1/2)) U^T.
    mu : ndarray of shape (d,), float64
        The mean that was subtracted.

    Notes
    -----
    cov(X_white) = U diag(lambda / (lambda + epsilon)) U^T, computed in float64 with
    ``np.linalg.eigh``; cost O(n d^2 + d^3).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(2000, 3)) @ np.array([[2.0, 0, 0], [1.0, 1, 0], [0, 0, 0.5]])
    >>> Xw, W, mu = zca_whiten(X, epsilon=1e-8)
    >>> Xw.shape, bool(np.allclose(np.cov(Xw, rowvar=False, bias=True), np.eye(3), atol=1e-4))
    ((2000, 3), True)
    """
    if not epsilon > 0:
        raise InvalidParameterError(f"epsilon of zca_whiten must be > 0; got {epsilon!r}.")
    X = np.asarray(X, dtype=np.float64)
    mu = X.mean(axis=0)  # (d,)
    centred = X - mu  # (n, d)
    eigenvalues, U = np.linalg.eigh(centred.T @ centred / len(X))  # (d,), (d, d)
    W = (U / np.sqrt(np.maximum(eigenvalues, 0.0) + epsilon)) @ U.T  # (d, d)
    return (centred @ W).astype(np.float32), W, mu


def load_patches(
    *,
    size: int = 12,
    n_patches: int = 10000,
    whiten: bool = False,
    epsilon: float = 1e-5,
    seed: int | None = 0,
) -> Dataset:
    """Return natural-image patches from the scikit-image photographs as a dataset.

    Parameters
    ----------
    size : int, default=12
        Patch side s, between 2 and 300 (the smallest photograph side).
    n_patches : int, default=10000
        Number of patches.
    whiten : bool, default=False
        ZCA-whiten the patches (see :func:`zca_whiten`); needs n_patches > s * s.
    epsilon : float, default=1e-5
        Whitening regulariser, used when ``whiten`` is True.
    seed : int or None, default=0
        Seed for the patch positions.

    Returns
    -------
    Dataset
        Unsupervised; X float32 of shape (n_patches, 1, s, s), in [0, 1] unless whitened.

    Raises
    ------
    InvalidParameterError
        If ``size`` or ``n_patches`` is out of range.

    Examples
    --------
    >>> ds = load_patches(size=8, n_patches=100)
    >>> ds.X.shape, ds.task
    ((100, 1, 8, 8), 'unsupervised')
    """
    if not 2 <= size <= 300 or n_patches < 1 or (whiten and n_patches <= size * size):
        raise InvalidParameterError(
            f"patches needs 2 <= size <= 300 and n_patches >= 1 (and n_patches > size**2 "
            f"when whiten=True, for a full-rank covariance); got size={size}, "
            f"n_patches={n_patches}, whiten={whiten}."
        )
    patches = extract_patches(_photographs(), size, n_patches, seed=seed)  # (n, s, s)
    if whiten:
        flat, _, _ = zca_whiten(patches.reshape(n_patches, -1), epsilon=epsilon)  # (n, d)
        patches = flat.reshape(n_patches, size, size)
    name = "patches_white" if whiten else "patches"
    return Dataset(patches[:, None].astype(np.float32), None, "unsupervised", name)


# ----------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=1)
def _photographs() -> tuple[np.ndarray, ...]:
    """Load the photographs once as read-only float32 grayscale arrays in [0, 1]."""
    data = require("skimage.data", "the patches dataset", "scikit-image")
    color = require("skimage.color", "the patches dataset", "scikit-image")
    photos = []
    for name in PHOTOGRAPHS:
        image = getattr(data, name)()
        gray = color.rgb2gray(image) if image.ndim == 3 else image / 255.0  # (H, W)
        gray = gray.astype(np.float32)
        gray.flags.writeable = False
        photos.append(gray)
    return tuple(photos)
