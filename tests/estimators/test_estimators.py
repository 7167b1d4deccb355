from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_iris, make_regression
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.metrics import accuracy_score, r2_score

from deepdx.estimators import ConvNetClassifier, MLPClassifier, MLPRegressor
from deepdx.estimators._layout import rows_to_images, square_image_shape
from deepdx.exceptions import DataError, InvalidParameterError, NotFittedError
from deepdx.nets import ConvNet
from deepdx.train import Callback


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return (X - X.mean(0)) / X.std(0), y


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- outputs against references


def test_mlp_classifier_outputs_match_numpy_forward_pass(iris):
    X, y = iris
    clf = MLPClassifier((5,), max_iter=3, random_state=0, module__activation="tanh").fit(X, y)
    layers = clf.module_.layers
    W1, b1 = (p.detach().double().numpy() for p in (layers.linear1.weight, layers.linear1.bias))
    W2, b2 = (p.detach().double().numpy() for p in (layers.output.weight, layers.output.bias))
    h = np.tanh(X @ W1.T + b1)  # (n, 5)
    p = _softmax(h @ W2.T + b2)  # (n, 3)
    np.testing.assert_allclose(clf.transform(X), h, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(clf.predict_proba(X), p, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(p), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[p.argmax(1)])


def test_mlp_classifier_predict_proba_rows_sum_to_one(iris):
    X, y = iris
    proba = MLPClassifier((8,), max_iter=3, random_state=0).fit(X, y).predict_proba(X)
    assert proba.shape == (150, 3) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert (proba >= 0).all()


def test_mlp_classifier_score_is_accuracy(iris):
    X, y = iris
    clf = MLPClassifier((8,), max_iter=5, random_state=0).fit(X, y)
    assert clf.score(X, y) == accuracy_score(y, clf.predict(X))


def test_mlp_regressor_score_is_r2_and_handles_many_targets():
    X, y = make_regression(n_samples=80, n_features=3, n_targets=2, random_state=0)
    y = y / y.std(0)
    reg = MLPRegressor((8,), max_iter=5, random_state=0).fit(X, y)
    prediction = reg.predict(X)
    assert prediction.shape == (80, 2) and prediction.dtype == np.float64
    assert reg.score(X, y) == pytest.approx(r2_score(y, prediction), rel=1e-12)
    assert reg.module_.n_outputs == 2


def test_mlp_regressor_predicts_1d_for_1d_targets():
    X, y = make_regression(n_samples=40, n_features=3, random_state=0)
    reg = MLPRegressor((4,), max_iter=2, random_state=0).fit(X, y / y.std())
    assert reg.predict(X).shape == (40,)


# ---------------------------------------------------------------- labels and data handling


def test_mlp_classifier_string_labels_round_trip(iris):
    X, y = iris
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = MLPClassifier((8,), max_iter=20, random_state=0).fit(X, names)
    assert clf.classes_.tolist() == ["setosa", "versicolor", "virginica"]
    prediction = clf.predict(X)
    assert prediction.dtype == names.dtype and set(prediction) <= set(names)
    assert clf.score(X, names) > 0.5  # three balanced classes: chance is 1/3


def test_mlp_classifier_one_class_raises(iris):
    X, _ = iris
    with pytest.raises(DataError, match="at least two classes"):
        MLPClassifier(max_iter=1).fit(X, np.zeros(len(X)))


def test_estimator_predict_before_fit_raises_not_fitted(iris):
    X, _ = iris
    with pytest.raises(NotFittedError, match="This MLPClassifier instance is not fitted yet"):
        MLPClassifier().predict(X)
    with pytest.raises(SklearnNotFittedError):  # deepdx's error is scikit-learn's too
        MLPRegressor().transform(X)


def test_estimator_fit_keeps_no_reference_and_leaves_inputs_unchanged(iris):
    X, y = iris
    X, y = X.astype(np.float32), y.copy()
    X_before, y_before = X.copy(), y.copy()
    clf = MLPClassifier((4,), max_iter=2, random_state=0).fit(X, y)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)
    X_ref = weakref.ref(X)
    del X
    gc.collect()
    assert X_ref() is None
    assert clf.n_features_in_ == 4


def test_estimator_feature_names_from_dataframe(iris):
    pd = pytest.importorskip("pandas")
    X, y = iris
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = MLPClassifier((4,), max_iter=2, random_state=0).fit(frame, y)
    assert clf.feature_names_in_.tolist() == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="The feature names should match"):
        clf.predict(frame.rename(columns={"a": "z"}))


def test_estimator_wrong_number_of_features_raises_sklearn_message(iris):
    X, y = iris
    clf = MLPClassifier((4,), max_iter=1, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 4"):
        clf.predict(X[:, :3])


def test_mlp_classifier_flattens_image_samples(iris):
    X, y = iris
    images = X.reshape(150, 1, 2, 2)
    clf = MLPClassifier((4,), max_iter=2, random_state=0).fit(images, y)
    assert clf.n_features_in_ == 4 and clf.input_shape_ == (4,)
    np.testing.assert_array_equal(clf.predict_proba(images), clf.predict_proba(X))


# ---------------------------------------------------------------- parameters


def test_estimator_routed_params_survive_get_params_and_clone():
    clf = MLPClassifier(max_iter=3, module__activation="tanh", optimizer__momentum=0.5)
    params = clf.get_params()
    assert params["module__activation"] == "tanh" and params["optimizer__momentum"] == 0.5
    copy = clone(clf).set_params(module__dropout=0.25, max_iter=4)
    assert copy.get_params()["module__dropout"] == 0.25 and copy.max_iter == 4
    assert "module__dropout" not in clf.get_params()


def test_estimator_routed_params_reach_module_and_optimizer(iris):
    X, y = iris
    clf = MLPClassifier(
        (8,),
        max_iter=4,
        random_state=0,
        learning_rate=0.5,
        module__hidden=(6, 5),
        module__activation="tanh",
        optimizer__lr=0.02,
        train__schedule="cosine",
    ).fit(X, y)
    assert clf.module_.hidden == (6, 5) and clf.module_.activation == "tanh"
    lrs = clf.history_.series("lr")
    assert lrs[0] == pytest.approx(0.02) and np.all(np.diff(lrs) < 0)  # cosine from 0.02


def test_estimator_unknown_routed_param_suggests_a_name(iris):
    X, y = iris
    with pytest.raises(InvalidParameterError, match="Did you mean 'module__hidden'"):
        MLPClassifier(module__hiden=(8,)).fit(X, y)


@pytest.mark.parametrize(
    ("routed", "message"),
    [
        ({"modul__hidden": (8,)}, "routed ones are module__<name>"),
        ({"module__input_shape": (4,)}, "has no option 'module__input_shape'"),
        ({"optimizer__betas": (0.9, 0.99)}, "has no option 'optimizer__betas'"),
        ({"train__epochs": 3}, "has no option 'train__epochs'"),
    ],
)
def test_estimator_rejects_unroutable_params(iris, routed, message):
    X, y = iris
    with pytest.raises(InvalidParameterError, match=message):
        MLPClassifier(max_iter=1, **routed).fit(X, y)


def test_estimator_invalid_params_reported_together(iris):
    X, y = iris
    with pytest.raises(InvalidParameterError, match="(?s)`max_iter`.*`learning_rate`"):
        MLPClassifier(max_iter=0, learning_rate=-1.0).fit(X, y)


def test_estimator_unknown_optimizer_suggests_a_name(iris):
    X, y = iris
    with pytest.raises(InvalidParameterError, match="Did you mean 'adam'"):
        MLPClassifier(optimizer="adm").fit(X, y)


def test_estimator_set_params_unknown_name_raises():
    with pytest.raises(ValueError, match="Invalid parameter 'max_iters'"):
        MLPClassifier().set_params(max_iters=3)


# ---------------------------------------------------------------- training behaviour


def test_estimator_random_state_makes_fit_deterministic(iris):
    X, y = iris
    a, b, c = (MLPClassifier((8,), max_iter=3, random_state=s).fit(X, y) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert not np.allclose(a.predict_proba(X), c.predict_proba(X))


def test_estimator_warm_start_continues_training(iris):
    X, y = iris
    clf = MLPClassifier((8,), max_iter=3, random_state=0, warm_start=True).fit(X, y)
    module, steps = clf.module_, clf.history_.n_steps
    clf.fit(X, y)
    assert clf.module_ is module and clf.n_iter_ == 6
    assert [r.epoch for r in clf.history_.epochs] == [1, 2, 3, 4, 5, 6]
    index, _ = clf.history_.step_series("loss")
    assert clf.history_.n_steps == 2 * steps and np.all(np.diff(index) == 1)
    assert any(event["kind"] == "warm_start" for event in clf.history_.events)


def test_estimator_cold_fit_restarts(iris):
    X, y = iris
    clf = MLPClassifier((8,), max_iter=3, random_state=0).fit(X, y)
    module = clf.module_
    clf.fit(X, y)
    assert clf.module_ is not module and clf.n_iter_ == 3


def test_classifier_warm_start_with_new_class_raises(iris):
    X, y = iris
    clf = MLPClassifier((4,), max_iter=1, random_state=0, warm_start=True).fit(X[y < 2], y[y < 2])
    with pytest.raises(DataError, match="classes seen in the first fit"):
        clf.fit(X, y)


def test_estimator_early_stopping_holds_out_validation(iris):
    X, y = iris
    clf = MLPClassifier(
        (8,),
        max_iter=200,
        random_state=0,
        early_stopping=True,
        n_iter_no_change=2,
        learning_rate=0.1,
    ).fit(X, y)
    assert clf.n_iter_ < 200
    assert all(r.val_loss is not None for r in clf.history_.epochs)
    assert any(event["kind"] == "stop" for event in clf.history_.events)


class _EpochCounter(Callback):
    def __init__(self):
        self.epochs = 0

    def on_epoch_end(self, state):
        self.epochs += 1


def test_estimator_callbacks_are_copied_per_fit(iris):
    X, y = iris
    counter = _EpochCounter()
    clf = MLPClassifier((4,), max_iter=2, random_state=0, callbacks=[counter]).fit(X, y)
    assert counter.epochs == 0 and clf.callbacks[0] is counter


def test_estimator_verbose_callable_receives_epoch_lines(iris):
    X, y = iris
    lines = []
    MLPClassifier((4,), max_iter=2, random_state=0, verbose=lines.append).fit(X, y)
    assert len(lines) == 2 and lines[0].startswith("[MLPClassifier] epoch 1/2")


def test_estimator_transform_without_hidden_layer_raises(iris):
    X, y = iris
    clf = MLPClassifier((), max_iter=1, random_state=0).fit(X, y)
    with pytest.raises(InvalidParameterError, match="no hidden layer"):
        clf.transform(X)


def test_estimator_global_torch_rng_is_left_alone(iris):
    X, y = iris
    state = torch.get_rng_state()
    MLPClassifier((4,), max_iter=1, random_state=0, module__dropout=0.5).fit(X, y)
    assert torch.equal(torch.get_rng_state(), state)


# ---------------------------------------------------------------- conv nets and layout


def test_convnet_classifier_accepts_images_and_rows():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(40, 1, 8, 8))
    y = (images[:, 0, :4].mean(axis=(1, 2)) > 0).astype(int)
    clf = ConvNetClassifier(channels=(2,), hidden_layer_sizes=(4,), max_iter=2, random_state=0)
    clf.fit(images, y)
    assert clf.input_shape_ == (1, 8, 8) and clf.n_features_in_ == 64
    np.testing.assert_array_equal(
        clf.predict_proba(images), clf.predict_proba(images.reshape(40, 64))
    )
    with pytest.raises(DataError, match="fitted on"):
        clf.predict(images.reshape(40, 4, 4, 4))


def test_convnet_classifier_input_shape_lays_rows_out():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 2 * 4 * 4)), np.arange(30) % 2
    clf = ConvNetClassifier((2, 4, 4), channels=(3,), hidden_layer_sizes=(), max_iter=1)
    clf.set_params(random_state=0, module__kernel_size=3).fit(X, y)
    assert clf.module_.input_shape == (2, 4, 4)
    with pytest.raises(DataError, match="input_shape"):
        clf.set_params(input_shape=(1, 4, 4)).fit(X, y)


def test_convnet_classifier_transform_without_head_returns_conv_map():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 16)), np.arange(20) % 2
    clf = ConvNetClassifier(channels=(3,), hidden_layer_sizes=(), max_iter=1, random_state=0)
    clf.set_params(module__kernel_size=3).fit(X, y)
    assert clf.input_shape_ == (1, 4, 4)
    assert clf.transform(X).shape == (20, 3 * 4 * 4)  # "same" padding keeps 4x4 before pooling


def test_layout_rows_to_images_pads_with_zeros_row_major():
    rows = np.arange(10.0).reshape(2, 5)
    images = rows_to_images(rows, (1, 3, 3))
    expected = np.zeros((2, 9))
    expected[:, :5] = rows
    np.testing.assert_array_equal(images, expected.reshape(2, 1, 3, 3))
    with pytest.raises(DataError, match="do not fit"):
        rows_to_images(rows, (1, 2, 2))


def _builds(side, channels, kernel_size):
    try:
        ConvNet((1, side, side), 2, channels=channels, hidden=(), kernel_size=kernel_size)
    except InvalidParameterError:
        return False
    return True


@pytest.mark.parametrize(("channels", "kernel_size"), [((6, 16), 5), ((4,), 3), ((2, 2, 2), 3)])
def test_layout_square_image_shape_is_smallest_square_a_convnet_accepts(channels, kernel_size):
    for d in (1, 2, 3, 5, 10, 17, 64):
        _, side, _ = square_image_shape(d, channels, kernel_size)
        smallest = next(  # brute force: the smallest square that holds d and builds
            s for s in range(1, 100) if s * s >= d and _builds(s, channels, kernel_size)
        )
        assert side == smallest
