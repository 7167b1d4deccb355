import math

import numpy as np
import pytest
import torch
from joblib import parallel_config

from deepdx._random import make_generator
from deepdx.data.dataset import from_arrays
from deepdx.diagnose import generalization
from deepdx.diagnose._budget import Budget, CheckSkipped
from deepdx.diagnose.evidence import LearningCurve
from deepdx.diagnose.generalization import (
    bias_variance,
    bootstrap_bias_variance,
    bootstrap_indices,
    fit_power_law,
    learning_curve,
    more_data_prediction,
    stratified_order,
)
from deepdx.exceptions import DataError, InvalidParameterError
from deepdx.nets import MLP, build_model
from deepdx.train.config import TrainConfig


def _noisy_classes(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = (X[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int)
    return from_arrays(X, y)


def _thread_safe_mlp():
    # Drawn from its own generator: safe to build in several threads at once.
    model = MLP((4,), 2, (8,))
    model.reset_parameters(generator=make_generator(0))
    return model


def _curve(val_mean, sizes=(100, 200, 400, 800), metric="accuracy"):
    k = len(sizes)
    zeros = (0.0,) * k
    return LearningCurve(tuple(sizes), (1.0,) * k, zeros, tuple(val_mean), zeros, metric, 3)


# ---------------------------------------------------------------- stratified order


def test_stratified_order_prefixes_keep_class_proportions():
    y = np.repeat([0, 1, 2], [60, 30, 10])
    order = stratified_order(len(y), y, seed=0)
    assert sorted(order.tolist()) == list(range(len(y)))
    counts = np.bincount(y) / len(y)
    for m in range(2, len(y) + 1):
        got = np.bincount(y[order[:m]], minlength=3)
        assert np.all(np.abs(got - m * counts) <= 1.5), m  # ±1, plus the swap of row 2


def test_stratified_order_first_two_rows_hold_two_classes():
    y = np.array([0] * 99 + [1])
    for seed in range(5):
        order = stratified_order(len(y), y, seed=seed)
        assert len(set(y[order[:2]].tolist())) == 2


def test_stratified_order_without_labels_is_the_seeded_permutation():
    expected = np.random.default_rng(7).permutation(10)
    np.testing.assert_array_equal(stratified_order(10, None, seed=7), expected)


# ---------------------------------------------------------------- learning curve


def test_learning_curve_shapes_and_sizes():
    data = _noisy_classes()
    curve = learning_curve(
        lambda: build_model("mlp:8", (4,), 2), data, config=TrainConfig(epochs=3), seed=0
    )
    smallest_fold_train = 120 - math.ceil(120 / 3)
    assert curve.sizes == tuple(round(f * smallest_fold_train) for f in (0.1, 0.25, 0.5, 1.0))
    assert curve.metric == "accuracy" and curve.n_folds == 3
    for values in (curve.train_mean, curve.train_std, curve.val_mean, curve.val_std):
        assert len(values) == 4 and all(0.0 <= v <= 1.0 for v in values)


def test_learning_curve_scores_match_a_manual_refit():
    data = _noisy_classes()
    config = TrainConfig(epochs=2, lr=0.05)
    curve = learning_curve(_thread_safe_mlp, data, fractions=(1.0,), config=config, seed=0)
    folds = generalization._folds(data, 3, 0)
    scores = [
        generalization._fit_and_score(_thread_safe_mlp, data, t, v, config, None, "accuracy")
        for t, v in folds
    ]
    assert curve.val_mean[0] == pytest.approx(np.mean([v for _, v in scores]), abs=1e-12)
    assert curve.train_std[0] == pytest.approx(np.std([t for t, _ in scores]), abs=1e-12)


def test_learning_curve_identical_for_one_and_two_jobs():
    data = _noisy_classes()
    config = TrainConfig(epochs=2)
    one = learning_curve(_thread_safe_mlp, data, config=config, n_jobs=1)
    with parallel_config(backend="threading"):
        two = learning_curve(_thread_safe_mlp, data, config=config, n_jobs=2)
    assert one == two


@pytest.mark.slow
def test_learning_curve_identical_for_one_and_two_processes():
    data = _noisy_classes()
    config = TrainConfig(epochs=2)
    one = learning_curve(_thread_safe_mlp, data, config=config, n_jobs=1)
    assert one == learning_curve(_thread_safe_mlp, data, config=config, n_jobs=2)


def test_learning_curve_regression_and_unsupervised_metrics():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    regression = from_arrays(X, X @ [1.0, -1.0, 0.5], task="regression")
    config = TrainConfig(epochs=2)
    r2 = learning_curve(lambda: torch.nn.Linear(3, 1), regression, config=config, fractions=(1,))
    loss = learning_curve(lambda: torch.nn.Linear(3, 3), from_arrays(X), config=config)
    assert r2.metric == "r2" and loss.metric == "loss"
    assert all(v > 0 for v in loss.val_mean)


def test_learning_curve_cuts_epochs_alike_to_fit_the_budget(monkeypatch):
    epochs_seen = []
    real_fit = generalization.fit

    def recording_fit(model, train, val=None, *, config, **kwargs):
        epochs_seen.append(config.epochs)
        return real_fit(model, train, val, config=config, **kwargs)

    monkeypatch.setattr(generalization, "fit", recording_fit)
    monkeypatch.setattr(generalization, "seconds_per_row", lambda *args, **kwargs: 1e-5)
    frozen_clock = Budget(0.05, clock=lambda: 0.0)  # 0.05 s left throughout
    curve = learning_curve(
        _thread_safe_mlp, _noisy_classes(), config=TrainConfig(epochs=10**6), budget=frozen_clock
    )
    expected = math.floor(0.05 / (1e-5 * 3 * sum(curve.sizes)))  # k folds of every size
    assert epochs_seen == [expected] * 12


def test_learning_curve_skips_when_the_budget_is_spent():
    with pytest.raises(CheckSkipped, match="budget"):
        learning_curve(_thread_safe_mlp, _noisy_classes(), config=TrainConfig(), budget=0.0)


def test_learning_curve_skips_without_two_classes_per_fold():
    data = from_arrays(np.arange(20.0)[:, None], [0] * 18 + [1] * 2)
    with pytest.raises(CheckSkipped, match="two classes"):
        learning_curve(_thread_safe_mlp, data, config=TrainConfig(epochs=1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"fractions": (0.0, 1.0)}, "fractions"), ({"n_folds": 1}, "n_folds")],
)
def test_learning_curve_rejects_bad_arguments(kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        learning_curve(_thread_safe_mlp, _noisy_classes(), config=TrainConfig(), **kwargs)


# ---------------------------------------------------------------- power law


@pytest.mark.parametrize(("b", "c"), [(0.5, 0.05), (0.3, 0.0), (1.0, 0.1)])
def test_fit_power_law_recovers_known_parameters(b, c):
    n = np.array([50, 100, 200, 400, 800, 1600])
    law = fit_power_law(n, 3.0 * n**-b + c)
    assert law["exponent"] == pytest.approx(b, rel=1e-3)
    assert law["c"] == pytest.approx(c, abs=1e-4)
    assert law["a"] == pytest.approx(3.0, rel=1e-2)
    assert law["r2"] == pytest.approx(1.0, abs=1e-9)


def test_fit_power_law_with_three_points_is_a_log_log_line():
    n = np.array([100.0, 200.0, 400.0])
    law = fit_power_law(n, 0.8 * n**-0.25)
    assert law["c"] == 0.0 and law["exponent"] == pytest.approx(0.25, rel=1e-9)


def test_fit_power_law_noisy_curve_has_r2_below_one():
    n = np.array([100, 200, 400, 800, 1600])
    noise = np.array([1.0, 0.9, 1.1, 0.95, 1.05])
    law = fit_power_law(n, (2.0 * n**-0.5) * noise)
    assert 0.5 < law["r2"] < 1.0


@pytest.mark.parametrize(
    ("sizes", "errors", "message"),
    [
        ([100, 200], [0.1], "equal length"),
        ([100, 200], [0.1, float("nan")], "finite"),
        ([100, 100], [0.1, 0.2], "two distinct"),
        ([0, 100], [0.1, 0.2], "positive"),
    ],
)
def test_fit_power_law_rejects_bad_points(sizes, errors, message):
    with pytest.raises(InvalidParameterError, match=message):
        fit_power_law(sizes, errors)


def test_more_data_prediction_matches_the_known_law():
    sizes = np.array([100, 200, 400, 800, 1600])
    a, b, c = 2.0, 0.5, 0.02
    law = a * sizes**-b + c
    out = more_data_prediction(_curve(1.0 - law, sizes))
    now, later = a * 1600**-b + c, a * 3200**-b + c
    assert out["current_error"] == pytest.approx(now, rel=1e-4)
    assert out["predicted_error"] == pytest.approx(later, rel=1e-4)
    assert out["relative_gain"] == pytest.approx((now - later) / now, rel=1e-3)
    assert out["slope"] == pytest.approx(-b * (now - c) / now, rel=1e-3)
    assert out["n_points"] == 5


def test_more_data_prediction_flat_curve_predicts_no_gain():
    out = more_data_prediction(_curve([0.8, 0.8, 0.8, 0.8]))
    assert abs(out["predicted_gain"]) < 1e-9


def test_more_data_prediction_reads_losses_and_drops_nan_points():
    sizes = (100, 200, 400, 800)
    losses = [0.5 * n**-0.5 for n in sizes]
    losses[1] = float("nan")
    out = more_data_prediction(_curve(losses, sizes, metric="loss"))
    assert out["n_points"] == 3 and out["exponent"] == pytest.approx(0.5, rel=1e-6)


# ---------------------------------------------------------------- bias / variance


def test_bias_variance_follows_ng_examples():
    # Machine Learning Yearning ch. 21: train error 15%, dev 16%, optimal ~0%.
    high_bias = bias_variance(0.85, 0.84)
    assert high_bias.avoidable_bias == pytest.approx(0.15)
    assert high_bias.variance == pytest.approx(0.01)
    assert high_bias.dominant == "bias"
    # ch. 22: optimal error 14%, train 15%, dev 30%: the gap is variance.
    high_variance = bias_variance(0.85, 0.70, reference_score=0.86)
    assert high_variance.avoidable_bias == pytest.approx(0.01)
    assert high_variance.dominant == "variance"


def test_bias_variance_with_train_dev_separates_mismatch():
    bv = bias_variance(0.99, 0.80, train_dev_score=0.98)
    assert bv.variance == pytest.approx(0.01) and bv.mismatch == pytest.approx(0.18)
    assert bv.dominant == "mismatch"


def test_bias_variance_on_losses_and_when_nothing_is_positive():
    bv = bias_variance(0.3, 0.5, metric="loss", reference_score=0.1)
    assert (bv.avoidable_bias, bv.variance) == pytest.approx((0.2, 0.2))
    assert bias_variance(0.95, 0.96, reference_score=0.9).dominant == "none"
    with pytest.raises(InvalidParameterError, match="metric"):
        bias_variance(0.9, 0.9, metric="f1")


def _linear_problem(d=5, n=200, n_test=1000, sigma=0.5, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)
    X = rng.normal(size=(n + n_test, d))
    y = X @ w + 0.3 + sigma * rng.normal(size=n + n_test)
    data = from_arrays(X, y, task="regression")
    return data.subset(np.arange(n)), data.subset(np.arange(n, n + n_test))


def _zero_linear(d):
    def make():
        model = torch.nn.Linear(d, 1)
        torch.nn.init.zeros_(model.weight)
        torch.nn.init.zeros_(model.bias)
        return model

    return make


_LSTSQ = TrainConfig(epochs=5, optimizer="torch-lbfgs")  # converges to least squares


def test_bootstrap_bias_variance_matches_numpy_least_squares_refits():
    train, test = _linear_problem()
    n_boot, sigma2 = 16, 0.25
    out = bootstrap_bias_variance(
        _zero_linear(5), train, test, n_boot=n_boot, config=_LSTSQ, noise_variance=sigma2
    )
    design = np.column_stack([np.ones(len(train)), train.X.astype(np.float64)])
    queries = np.column_stack([np.ones(len(test)), test.X.astype(np.float64)])
    y, y_test = train.y.astype(np.float64), test.y.astype(np.float64)
    P = np.stack(
        [
            queries @ np.linalg.lstsq(design[i], y[i], rcond=None)[0]
            for i in bootstrap_indices(len(train), n_boot, seed=0)
        ]
    )
    variance = P.var(axis=0, ddof=1).mean()
    assert out["variance"] == pytest.approx(variance, rel=1e-3)
    bias2 = ((P.mean(axis=0) - y_test) ** 2).mean() - variance / n_boot - sigma2
    assert out["bias2"] == pytest.approx(bias2, abs=1e-5)
    assert out["expected_error"] == pytest.approx(((P - y_test) ** 2).mean(), rel=1e-4)
    assert out["noise_estimate"] == sigma2


def test_bootstrap_bias_variance_linear_model_analytic_case():
    d, n, n_test, sigma, n_boot = 5, 200, 1000, 0.5, 32
    train, test = _linear_problem(d, n, n_test, sigma)
    out = bootstrap_bias_variance(
        _zero_linear(d), train, test, n_boot=n_boot, config=_LSTSQ, noise_variance=sigma**2
    )
    # OLS prediction variance σ² x̃ᵀ(X̃ᵀX̃)⁻¹x̃, averaged over the test points (≈ σ²(d+1)/n).
    design = np.column_stack([np.ones(n), train.X.astype(np.float64)])
    queries = np.column_stack([np.ones(n_test), test.X.astype(np.float64)])
    analytic = sigma**2 * np.einsum(
        "ij,jk,ik->i", queries, np.linalg.inv(design.T @ design), queries
    )
    # The estimate pools (d+1)(B-1) degrees of freedom: relative sd sqrt(2 / that); 4 sd.
    tolerance = 4 * math.sqrt(2 / ((d + 1) * (n_boot - 1)))
    assert out["variance"] == pytest.approx(analytic.mean(), rel=tolerance)
    # bias² ≈ 0 for a well-specified model, up to the test-noise average (sd σ² sqrt(2/n_test))
    # and the full-sample fit's own error, which the bootstrap sees as bias (≈ the variance).
    noise_sd = sigma**2 * math.sqrt(2 / n_test)
    assert -4 * noise_sd < out["bias2"] < analytic.mean() + 4 * noise_sd


def test_bootstrap_bias_variance_without_noise_keeps_it_in_bias2():
    train, test = _linear_problem()
    out = bootstrap_bias_variance(_zero_linear(5), train, test, n_boot=4, config=_LSTSQ)
    assert out["noise_estimate"] is None
    assert out["bias2"] == pytest.approx(0.25, abs=0.06)  # σ² plus a little


def test_bootstrap_bias_variance_rejects_classification_and_few_resamples():
    data = _noisy_classes()
    with pytest.raises(DataError, match="regression"):
        bootstrap_bias_variance(_thread_safe_mlp, data, data, config=TrainConfig())
    train, test = _linear_problem()
    with pytest.raises(InvalidParameterError, match="n_boot"):
        bootstrap_bias_variance(_zero_linear(5), train, test, n_boot=1, config=_LSTSQ)
