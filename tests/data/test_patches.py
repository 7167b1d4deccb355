import numpy as np
import pytest

from deepdx.data.patches import extract_patches, load_patches, zca_whiten
from deepdx.exceptions import InvalidParameterError


def test_load_patches_shape_range_and_determinism():
    ds = load_patches(size=6, n_patches=300, seed=0)
    assert ds.X.shape == (300, 1, 6, 6) and ds.X.dtype == np.float32
    assert ds.task == "unsupervised" and ds.y is None
    assert ds.X.min() >= 0.0 and ds.X.max() <= 1.0
    np.testing.assert_array_equal(ds.X, load_patches(size=6, n_patches=300, seed=0).X)
    assert not np.array_equal(ds.X, load_patches(size=6, n_patches=300, seed=1).X)


def test_load_patches_default_size_is_12():
    assert load_patches(n_patches=10).sample_shape == (1, 12, 12)


def test_load_patches_whitened_covariance_is_near_identity():
    ds = load_patches(size=6, n_patches=4000, whiten=True, seed=0)
    flat = ds.X.reshape(4000, -1).astype(np.float64)
    np.testing.assert_allclose(flat.mean(axis=0), 0.0, atol=1e-5)
    cov = np.cov(flat, rowvar=False, bias=True)
    # eigenvalues of 6x6 patch covariances are >= ~4e-4, so lambda / (lambda + 1e-5) > 0.97
    np.testing.assert_allclose(cov, np.eye(36), atol=0.03)


def test_zca_whiten_covariance_matches_formula():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 4)) @ rng.normal(size=(4, 4))
    epsilon = 0.5  # large on purpose: the shrinkage lambda / (lambda + epsilon) is visible
    Xw, W, mu = zca_whiten(X, epsilon=epsilon)
    centred = X - X.mean(axis=0)
    lam, U = np.linalg.eigh(centred.T @ centred / len(X))
    expected = U @ np.diag(lam / (lam + epsilon)) @ U.T
    np.testing.assert_allclose(np.cov(Xw, rowvar=False, bias=True), expected, atol=1e-5)
    np.testing.assert_allclose(W, W.T, atol=1e-12)  # ZCA: the symmetric whitening matrix
    np.testing.assert_allclose(mu, X.mean(axis=0))


def test_zca_whiten_rejects_non_positive_epsilon():
    with pytest.raises(InvalidParameterError, match="epsilon of zca_whiten must be > 0"):
        zca_whiten(np.eye(3), epsilon=0.0)


def test_extract_patches_cuts_contiguous_blocks():
    image = np.arange(20 * 30, dtype=np.float64).reshape(20, 30)
    patches = extract_patches([image], size=4, n_patches=50, seed=0)
    grid = 30 * np.arange(4)[:, None] + np.arange(4)[None, :]  # offsets of a 4x4 block
    np.testing.assert_array_equal(patches - patches[:, :1, :1], np.broadcast_to(grid, (50, 4, 4)))
    corners = patches[:, 0, 0].astype(int)
    assert np.all(corners // 30 <= 16) and np.all(corners % 30 <= 26)  # inside the image


def test_extract_patches_samples_images_by_area():
    small, large = np.zeros((10, 10)), np.ones((40, 40))  # 81 vs 1521 corners for s=2
    patches = extract_patches([small, large], size=2, n_patches=4000, seed=0)
    share = patches[:, 0, 0].mean()  # fraction from the large image
    expected = 39 * 39 / (9 * 9 + 39 * 39)
    assert abs(share - expected) < 4 * np.sqrt(expected * (1 - expected) / 4000)


@pytest.mark.parametrize(
    "kwargs", [{"size": 1}, {"size": 301}, {"n_patches": 0}, {"size": 8, "whiten": True}]
)
def test_load_patches_rejects_bad_options(kwargs):
    with pytest.raises(InvalidParameterError, match="patches needs 2 <= size <= 300"):
        load_patches(**{"n_patches": 10, **kwargs})
