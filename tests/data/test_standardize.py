import json

import numpy as np
import pytest

from deepdx.data.dataset import Dataset, from_arrays
from deepdx.data.standardize import Standardizer
from deepdx.exceptions import DataError, InvalidParameterError, NotFittedError


def images(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3, 4, 5)) * np.array([1.0, 5.0, 0.1])[:, None, None] + 2.0
    return Dataset(X.astype(np.float32), None, "unsupervised", "img")


def test_standardizer_feature_mode_on_tabular_data():
    rng = np.random.default_rng(0)
    train = from_arrays(rng.normal(3.0, 2.0, size=(200, 4)))
    out = Standardizer().fit_transform(train)
    np.testing.assert_allclose(out.X.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.X.std(axis=0), 1.0, atol=1e-5)


def test_standardizer_applies_train_statistics_to_other_data():
    rng = np.random.default_rng(0)
    train = from_arrays(rng.normal(3.0, 2.0, size=(100, 2)))
    test = from_arrays(rng.normal(-1.0, 0.5, size=(30, 2)))
    scaler = Standardizer().fit(train)
    expected = (test.X - train.X.mean(axis=0)) / train.X.std(axis=0)
    np.testing.assert_allclose(scaler.transform(test).X, expected, rtol=1e-5, atol=1e-5)


def test_standardizer_auto_is_per_channel_for_images():
    ds = images()
    scaler = Standardizer().fit(ds)
    assert scaler.per_ == "channel" and scaler.mean_.shape == (3, 1, 1)
    np.testing.assert_allclose(scaler.mean_[:, 0, 0], ds.X.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(scaler.scale_[:, 0, 0], ds.X.std(axis=(0, 2, 3)), rtol=1e-5)
    out = scaler.transform(ds).X
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)


def test_standardizer_global_mode_uses_one_scale():
    ds = images()
    scaler = Standardizer(per="global").fit(ds)
    assert scaler.mean_.shape == (1, 1, 1)
    np.testing.assert_allclose(scaler.scale_.ravel(), [ds.X.std()], rtol=1e-5)


def test_standardizer_feature_mode_on_images_is_per_pixel():
    ds = images()
    scaler = Standardizer(per="feature").fit(ds)
    assert scaler.mean_.shape == (3, 4, 5)
    np.testing.assert_allclose(scaler.mean_, ds.X.mean(axis=0), rtol=1e-5, atol=1e-6)


def test_standardizer_zero_variance_feature_gets_unit_scale():
    train = from_arrays([[1.0, 7.0], [3.0, 7.0], [5.0, 7.0]])
    scaler = Standardizer().fit(train)
    assert scaler.scale_[1] == 1.0
    np.testing.assert_array_equal(scaler.transform(train).X[:, 1], 0.0)


def test_standardizer_chunked_moments_match_numpy():
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(20000, 3)) * [1e3, 1.0, 1e-3] + [1e4, 0.0, 5.0]).astype(np.float32)
    scaler = Standardizer().fit(from_arrays(X))
    np.testing.assert_allclose(scaler.mean_, X.astype(np.float64).mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(scaler.scale_, X.astype(np.float64).std(axis=0), rtol=1e-6)


def test_standardizer_state_dict_round_trip_through_json():
    ds = images()
    scaler = Standardizer().fit(ds)
    state = json.loads(json.dumps(scaler.state_dict()))
    restored = Standardizer(per="global")
    restored.load_state_dict(state)
    assert restored.per == "auto" and restored.per_ == "channel"
    np.testing.assert_array_equal(restored.transform(ds).X, scaler.transform(ds).X)


def test_standardizer_inverse_transform_round_trip():
    ds = images()
    scaler = Standardizer().fit(ds)
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(ds).X), ds.X, atol=1e-5)


def test_standardizer_transform_before_fit_raises():
    with pytest.raises(NotFittedError, match="not fitted; call fit"):
        Standardizer().transform(images())


def test_standardizer_rejects_other_sample_shape():
    scaler = Standardizer().fit(images())
    with pytest.raises(DataError, match=r"fitted on samples of shape \(3, 4, 5\)"):
        scaler.transform(from_arrays(np.zeros((2, 3))))


def test_standardizer_rejects_unknown_per():
    with pytest.raises(InvalidParameterError, match="per of Standardizer must be one of"):
        Standardizer(per="row")  # type: ignore[arg-type]


def test_standardizer_rejects_channel_mode_for_tabular_data():
    with pytest.raises(InvalidParameterError, match="per='channel' needs image samples"):
        Standardizer(per="channel").fit(from_arrays(np.zeros((3, 2))))


def test_standardizer_rejects_incomplete_state():
    with pytest.raises(InvalidParameterError, match=r"missing the keys \['scale'\]"):
        Standardizer().load_state_dict(
            {"per": "auto", "per_": "feature", "sample_shape": [1], "mean": [0.0]}
        )
