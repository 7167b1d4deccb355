import math

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification
from torch import nn

from deepdx.data.dataset import from_arrays
from deepdx.data.splits import split
from deepdx.diagnose import preflight
from deepdx.diagnose._budget import Budget, CheckSkipped, affordable_epochs, as_budget
from deepdx.diagnose.preflight import (
    ONE_BATCH_TRIES,
    chance_loss,
    overfit_one_batch,
    run_preflight,
    zeroed_inputs_runs,
)
from deepdx.exceptions import InvalidParameterError
from deepdx.nets import MLP
from deepdx.train.config import TrainConfig
from deepdx.train.objectives import cross_entropy_loss


def _ten_classes(n=200, d=20, seed=0):
    X, y = make_classification(
        n, d, n_informative=10, n_classes=10, n_clusters_per_class=1, random_state=seed
    )
    return from_arrays(X, y)


def _blobs(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, 4)) + 3.0 * y[:, None]
    return split(from_arrays(X, y), val_size=0.2, test_size=0.2, seed=seed)


def _mlp(input_shape, n_outputs, hidden=(64,), seed=0):
    def make():
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return MLP(input_shape, n_outputs, hidden)

    return make


class _LearnedConstant(nn.Module):
    """Ignores its input: returns a learned vector for every row."""

    def __init__(self, k):
        super().__init__()
        self.value = nn.Parameter(torch.zeros(k))

    def forward(self, x):
        return self.value.expand(len(x), -1)


class _Fixed(nn.Module):
    """Returns the same (non-trainable) output for every row."""

    def __init__(self, value):
        super().__init__()
        self.register_buffer("value", torch.as_tensor(value, dtype=torch.float32))

    def forward(self, x):
        return self.value.expand(len(x), -1)


# ---------------------------------------------------------------- Budget


def test_budget_counts_time_with_the_given_clock():
    now = [100.0]
    budget = Budget(10.0, clock=lambda: now[0])
    now[0] = 103.0
    assert (budget.spent(), budget.remaining(), budget.share(0.5)) == (3.0, 7.0, 3.5)
    now[0] = 120.0
    assert budget.remaining() == 0.0 and budget.exhausted()


def test_budget_sub_budget_gets_a_share_of_what_is_left():
    now = [0.0]
    budget = Budget(10.0, clock=lambda: now[0])
    now[0] = 2.0
    child = budget.sub(0.25)
    assert child.seconds == 2.0 and child.remaining() == 2.0
    now[0] = 3.0
    assert child.remaining() == 1.0


def test_budget_unlimited_and_from_seconds():
    assert as_budget(None).remaining() == math.inf
    assert as_budget(4.0).seconds == 4.0
    kept = Budget(1.0)
    assert as_budget(kept) is kept


@pytest.mark.parametrize("seconds", [-1.0, float("nan"), "10"])
def test_budget_rejects_bad_seconds(seconds):
    with pytest.raises(InvalidParameterError, match="Budget seconds"):
        Budget(seconds)


def test_budget_share_rejects_fraction_outside_unit_interval():
    with pytest.raises(InvalidParameterError, match=r"\[0, 1\]"):
        Budget(1.0).share(1.5)


def test_affordable_epochs_floors_and_caps():
    assert affordable_epochs(10, 0.5, 2.2) == 4
    assert affordable_epochs(3, 0.5, 100.0) == 3
    assert affordable_epochs(3, 0.5, 0.4) == 0
    assert affordable_epochs(3, 0.5, math.inf) == 3


# ---------------------------------------------------------------- A1 chance loss


def test_run_preflight_init_loss_equals_ln_c_for_a_zero_output_model():
    data = _ten_classes(120)
    splits = split(data, val_size=0.2, test_size=0.2, seed=0)
    report = run_preflight(
        lambda: _Fixed(torch.zeros(10)), splits, config=TrainConfig(epochs=1), seed=0
    )
    assert report.chance_loss == math.log(10)
    assert report.init_loss == pytest.approx(math.log(10), rel=1e-6)


def test_chance_loss_regression_is_target_variance():
    rng = np.random.default_rng(0)
    y = rng.normal(3.0, 2.0, size=(50, 2))
    data = from_arrays(rng.normal(size=(50, 3)), y, task="regression")
    expected = np.var(y.astype(np.float32).astype(np.float64), axis=0).mean()
    assert chance_loss(data) == pytest.approx(expected, rel=1e-12)


def test_chance_loss_regression_equals_loss_of_a_mean_predictor():
    rng = np.random.default_rng(0)
    data = from_arrays(rng.normal(size=(50, 3)), rng.normal(size=50), task="regression")
    splits = split(data, val_size=0.2, test_size=0.2, seed=0)
    mean = float(splits.train.y.astype(np.float64).mean())
    report = run_preflight(lambda: _Fixed([mean]), splits, config=TrainConfig(epochs=1))
    assert report.init_loss == pytest.approx(report.chance_loss, rel=1e-5)


def test_chance_loss_unsupervised_is_mean_feature_variance():
    X = np.random.default_rng(0).normal(size=(40, 2, 3)) * 3.0
    data = from_arrays(X)
    flat = X.astype(np.float32).reshape(40, -1).astype(np.float64)
    assert chance_loss(data) == pytest.approx(flat.var(axis=0).mean(), rel=1e-12)


def test_chance_loss_custom_objective_scores_the_constant_prediction():
    data = _ten_classes(60)

    def doubled(model, batch):
        return 2.0 * cross_entropy_loss(model, batch)

    assert chance_loss(data, loss_fn=doubled) == pytest.approx(2 * math.log(10), rel=1e-6)


# ---------------------------------------------------------------- A2 one batch


def test_overfit_one_batch_reaches_full_accuracy_with_an_mlp():
    data = _ten_classes()
    result = overfit_one_batch(_mlp((20,), 10), data, seed=0)
    assert result.reached and result.final_score == 1.0
    assert result.steps <= ONE_BATCH_TRIES[0][1]  # the first try suffices
    assert result.final_loss < result.initial_loss


def test_overfit_one_batch_fails_when_only_a_bias_can_learn():
    data = _ten_classes()

    def frozen():
        model = _mlp((20,), 10)()
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(name == "layers.output.bias")
        return model

    result = overfit_one_batch(frozen, data, seed=0)
    assert not result.reached and result.final_score < 0.99
    assert result.steps == sum(steps for _, steps in ONE_BATCH_TRIES)  # both tries in full


def test_overfit_one_batch_fails_with_one_hidden_unit_on_ten_classes():
    rng = np.random.default_rng(0)
    data = from_arrays(rng.normal(size=(64, 2)), np.arange(64) % 10)  # labels unrelated to X
    result = overfit_one_batch(_mlp((2,), 10, hidden=(1,)), data, seed=0)
    assert not result.reached and result.final_score < 0.99


def test_overfit_one_batch_tries_the_larger_lr_when_the_first_falls_short():
    x = np.linspace(-1, 1, 32)[:, None]
    data = from_arrays(x, 0.4 * x[:, 0], task="regression")  # lr 1e-3 moves w <= 0.2

    def zero_slope():
        model = nn.Linear(1, 1, bias=False)
        nn.init.zeros_(model.weight)
        return model

    result = overfit_one_batch(zero_slope, data, seed=0)
    assert result.reached and result.lr == ONE_BATCH_TRIES[1][0]
    assert result.steps > ONE_BATCH_TRIES[0][1]


def test_overfit_one_batch_turns_dropout_off_while_training():
    seen = set()

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(20, 10)
            self.dropout = nn.Dropout(0.5)

        def forward(self, x):
            seen.add((self.training, self.dropout.training))
            return self.linear(self.dropout(x))

    overfit_one_batch(Probe, _ten_classes(), seed=0)
    assert (True, False) in seen and (True, True) not in seen


def test_overfit_one_batch_without_trainable_parameters_takes_no_step():
    result = overfit_one_batch(lambda: _Fixed(torch.zeros(10)), _ten_classes(), seed=0)
    assert result.steps == 0 and result.final_loss == result.initial_loss


def test_overfit_one_batch_stops_when_the_time_limit_is_spent():
    result = overfit_one_batch(_mlp((20,), 10), _ten_classes(), seed=0, time_limit=0.0)
    assert result.steps == 0 and not result.reached


def test_overfit_one_batch_is_reproducible_and_the_seed_picks_the_batch():
    data = _ten_classes()
    runs = [overfit_one_batch(_mlp((20,), 10), data, seed=seed) for seed in (3, 3, 4)]
    first, again, other = ((r.initial_loss, r.final_loss, r.steps) for r in runs)
    assert first == again
    assert first[0] != other[0]  # another batch, another initial loss


# ---------------------------------------------------------------- A3 zeroed inputs


def test_zeroed_inputs_mlp_scores_much_better_on_real_inputs():
    splits = _blobs()
    result = zeroed_inputs_runs(
        _mlp((4,), 2, hidden=(16,)), splits, config=TrainConfig(epochs=5, lr=0.01)
    )
    assert result.real_score > 0.9
    assert result.zeroed_score < 0.75  # majority-class level
    assert result.real_loss < result.zeroed_loss


def test_zeroed_inputs_input_ignoring_model_scores_equal():
    splits = _blobs()
    result = zeroed_inputs_runs(
        lambda: _LearnedConstant(2), splits, config=TrainConfig(epochs=3, lr=0.05)
    )
    assert result.real_loss == result.zeroed_loss
    assert result.real_score == result.zeroed_score


@pytest.mark.parametrize(
    ("max_rows", "batch_size", "epochs", "expected"),
    [
        (50, None, 3, 3),  # never more epochs than the user's run
        (50, None, 400, 100),  # one step an epoch: 100 epochs reach 100 steps
        (180, 10, 400, 6),  # 18 steps an epoch: 6 epochs reach 100 steps
        (180, 2, 400, 5),  # 90 steps an epoch: 5 epochs at least
    ],
)
def test_zeroed_inputs_runs_train_five_epochs_or_a_hundred_steps(
    monkeypatch, max_rows, batch_size, epochs, expected
):
    monkeypatch.setattr(preflight, "ZEROED_MAX_ROWS", max_rows)
    monkeypatch.setattr(preflight, "_short_run", lambda *args: (0.0, 0.0))  # count only
    config = TrainConfig(epochs=epochs, batch_size=batch_size)
    result = zeroed_inputs_runs(_mlp((4,), 2), _blobs(), config=config)
    assert (result.epochs, result.rows) == (expected, max_rows)


def test_zeroed_inputs_runs_full_batch_optimizer_counts_one_step_an_epoch(monkeypatch):
    monkeypatch.setattr(preflight, "_short_run", lambda *args: (0.0, 0.0))
    config = TrainConfig(epochs=400, optimizer="lbfgs")
    assert zeroed_inputs_runs(_mlp((4,), 2), _blobs(), config=config).epochs == 100


def test_zeroed_inputs_runs_shrink_to_fit_the_time_limit():
    splits = _blobs()
    config = TrainConfig(epochs=5, batch_size=10)
    fewer_epochs = zeroed_inputs_runs(
        _mlp((4,), 2), splits, config=config, time_limit=1.0, seconds_per_row=1e-3
    )
    fewer_rows = zeroed_inputs_runs(
        _mlp((4,), 2), splits, config=config, time_limit=0.2, seconds_per_row=1e-3
    )
    n_train = len(splits.train)  # one epoch of both runs costs 2 * n_train * 1e-3 s
    assert (fewer_epochs.epochs, fewer_epochs.rows) == (int(1.0 / (2 * n_train * 1e-3)), n_train)
    assert (fewer_rows.epochs, fewer_rows.rows) == (1, 100)


def test_zeroed_inputs_diverging_run_reports_nan():
    splits = _blobs()
    config = TrainConfig(epochs=2, optimizer="sgd", lr=1e30, momentum=0.0)
    result = zeroed_inputs_runs(_mlp((4,), 2), splits, config=config)
    assert math.isnan(result.real_loss) and result.real_score is None


# ---------------------------------------------------------------- run_preflight


def test_run_preflight_on_blobs_passes_every_check():
    report = run_preflight(
        _mlp((4,), 2, hidden=(16,)), _blobs(), config=TrainConfig(epochs=5, lr=0.01)
    )
    assert abs(report.init_loss - report.chance_loss) < 0.5 * report.chance_loss
    assert report.one_batch_final_score == 1.0
    assert report.real_inputs_score > report.zeroed_inputs_score + 0.2


def test_run_preflight_autoencoder_uses_reconstruction_losses():
    X = np.random.default_rng(0).normal(size=(120, 3)) @ np.array([[1, 2, 0], [0, 1, 1], [0, 0, 1]])
    splits = split(from_arrays(X), val_size=0.2, test_size=0.2, seed=0)
    report = run_preflight(
        lambda: nn.Linear(3, 3), splits, config=TrainConfig(epochs=5, lr=0.05), seed=0
    )
    assert report.one_batch_final_score is None and report.real_inputs_score is None
    assert report.chance_loss == pytest.approx(
        splits.train.X.astype(np.float64).var(axis=0).mean(), rel=1e-12
    )
    assert report.real_inputs_loss < report.zeroed_inputs_loss


def test_run_preflight_skips_when_the_budget_is_spent():
    with pytest.raises(CheckSkipped, match="budget"):
        run_preflight(_mlp((4,), 2), _blobs(), config=TrainConfig(), budget=0.0)


def test_run_preflight_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    run_preflight(_mlp((4,), 2), _blobs(), config=TrainConfig(epochs=1))
    assert torch.equal(state, torch.get_rng_state())
