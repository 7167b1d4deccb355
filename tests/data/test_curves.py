import math
import time

import numpy as np
import pytest

from deepdx.data.curves import curve_through, load_curves, make_curves, render_curves
from deepdx.exceptions import InvalidParameterError


def test_make_curves_shape_dtype_and_range():
    X = make_curves(50, seed=0)
    assert X.shape == (50, 1, 28, 28) and X.dtype == np.float32
    assert X.min() >= 0.0 and X.max() <= 1.0
    # worst case, a stroke midway between two pixel rows, peaks at about 0.71
    assert np.all(X.max(axis=(1, 2, 3)) > 0.7)


def test_make_curves_same_seed_same_images():
    np.testing.assert_array_equal(make_curves(20, seed=3), make_curves(20, seed=3))


def test_make_curves_different_seed_different_images():
    a, b = make_curves(20, seed=0), make_curves(20, seed=1)
    assert np.abs(a - b).reshape(20, -1).sum(axis=1).min() > 1.0


def test_make_curves_rejects_bad_count():
    with pytest.raises(InvalidParameterError, match="n_images must be an int >= 1"):
        make_curves(0)


def test_load_curves_marks_test_rows():
    ds = load_curves(n_train=7, n_test=3, seed=0)
    assert ds.task == "unsupervised" and ds.y is None and ds.name == "curves"
    assert ds.X.shape == (10, 1, 28, 28)
    assert ds.is_test.tolist() == [False] * 7 + [True] * 3
    np.testing.assert_array_equal(ds.X, make_curves(10, seed=0))


def test_load_curves_rejects_bad_sizes():
    with pytest.raises(InvalidParameterError, match="n_test of curves must be an int >= 1"):
        load_curves(n_train=5, n_test=0)


def test_curve_through_matches_polyfit_quadratic():
    rng = np.random.default_rng(0)
    P = rng.uniform(0, 27, size=(5, 3, 2))
    curve = curve_through(P, 11)
    t = np.linspace(0, 1, 11)
    for k in range(5):
        d01, d12 = np.linalg.norm(P[k, 1] - P[k, 0]), np.linalg.norm(P[k, 2] - P[k, 1])
        knots = np.array([0.0, d01 / (d01 + d12), 1.0])
        for axis in range(2):
            coeffs = np.polyfit(knots, P[k, :, axis], 2)  # exact interpolating parabola
            np.testing.assert_allclose(curve[k, :, axis], np.polyval(coeffs, t), atol=1e-9)


def test_curve_through_passes_through_control_points():
    P = np.array([[[3.0, 4.0], [10.0, 20.0], [22.0, 5.0]]])
    curve = curve_through(P, 4001)
    np.testing.assert_allclose(curve[0, 0], P[0, 0])
    np.testing.assert_allclose(curve[0, -1], P[0, 2])
    assert np.linalg.norm(curve[0] - P[0, 1], axis=1).min() < 0.02


def test_curve_through_rejects_coinciding_points():
    with pytest.raises(InvalidParameterError, match="consecutive points distinct"):
        curve_through(np.zeros((1, 3, 2)), 5)


def test_render_curves_straight_line_has_gaussian_profile():
    line = np.stack([np.linspace(4, 20, 40), np.full(40, 12.0)], axis=-1)[None]
    image = render_curves(line, width=0.8)[0]
    column = image[:, 12].astype(np.float64)
    distance = np.arange(28) - 12.0
    expected = np.exp(-(distance**2) / (2 * 0.8**2))  # analytic stroke profile
    np.testing.assert_allclose(column, np.minimum(expected, 1.0), atol=0.01)


def test_render_curves_total_ink_is_gain_times_length():
    line = np.stack([np.linspace(5, 21, 30), np.linspace(6, 18, 30)], axis=-1)[None]
    length = math.hypot(16, 12)
    width = 0.6
    image = render_curves(line, width=width)[0]
    # blurring conserves ink away from the border; the gain is sqrt(2 pi) sigma per unit length
    # (clipping at 1 removes only a little where the stroke centre sits on a pixel centre)
    total = image.sum()
    assert 0.97 * math.sqrt(2 * math.pi) * width * length < total
    assert total <= 1.0001 * math.sqrt(2 * math.pi) * width * length


@pytest.mark.slow
def test_make_curves_30000_images_in_a_few_seconds():
    start = time.perf_counter()
    X = make_curves(30000, seed=0)
    assert X.shape == (30000, 1, 28, 28)
    assert time.perf_counter() - start < 5.0
