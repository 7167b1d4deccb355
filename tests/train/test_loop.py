import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepdx.data.dataset import from_arrays
from deepdx.exceptions import DataError, InvalidParameterError, NumericalError
from deepdx.train import (
    Callback,
    EarlyStopping,
    TrainConfig,
    cross_entropy_loss,
    evaluate,
    fit,
    make_optimizer,
    reconstruction_loss,
    squared_error_loss,
)
from deepdx.train.optimizers import optimizer_entry
from tests.train.conftest import make_mlp


def test_fit_learns_separable_blobs(blobs):
    train, val = blobs
    model = make_mlp()
    history = fit(model, train, val, epochs=15, lr=0.01)
    assert history.epochs[-1].val_metric >= 0.9
    assert history.epochs[-1].train_loss < history.epochs[0].train_loss
    assert evaluate(model, val)["accuracy"] == pytest.approx(history.epochs[-1].val_metric)


def test_fit_records_every_step_and_epoch(blobs):
    train, _ = blobs
    history = fit(make_mlp(), train, epochs=3, batch_size=50)
    steps, losses = history.step_series("loss")
    assert len(history.epochs) == 3
    assert steps.tolist() == list(range(1, 3 * 6 + 1))  # ceil(256 / 50) = 6 steps per epoch
    assert history.epochs[0].train_loss == pytest.approx(losses[:6].mean(), rel=1e-6)


def test_fit_matches_hand_written_loop_bitwise(blobs):
    train, _ = blobs
    model = make_mlp()
    fit(model, train, epochs=2, batch_size=32, optimizer="momentum", lr=0.05, seed=3)
    reference = make_mlp()
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9)
    generator = torch.Generator().manual_seed(3)
    X, y = torch.from_numpy(train.X), torch.from_numpy(train.y)
    for _ in range(2):
        perm = torch.randperm(len(X), generator=generator)
        for i in range(0, len(X), 32):
            index = perm[i : i + 32]
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(reference(X[index]), y[index]).backward()
            optimizer.step()
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)


def test_fit_same_seed_same_weights_and_global_rng_untouched(blobs):
    train, _ = blobs
    before = torch.get_rng_state()
    a, b = make_mlp(dropout=0.5), make_mlp(dropout=0.5)
    fit(a, train, epochs=2, seed=7)
    fit(b, train, epochs=2, seed=7)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert torch.equal(before, torch.get_rng_state())


def test_fit_callback_hooks_run_in_order(blobs):
    train, _ = blobs
    calls = []

    class Recorder(Callback):
        def on_fit_start(self, state):
            calls.append("start")

        def on_step_end(self, state):
            assert all(p.grad is not None for p in state.model.parameters())
            calls.append("step")

        def on_epoch_end(self, state):
            calls.append(f"epoch{state.epoch}")

        def on_fit_end(self, state):
            calls.append("end")

    fit(make_mlp(), train, epochs=2, batch_size=128, callbacks=[Recorder()])
    assert calls == ["start", "step", "step", "epoch1", "step", "step", "epoch2", "end"]


def test_fit_early_stopping_stops_and_restores_best(blobs):
    train, val = blobs
    model = make_mlp()
    stopper = EarlyStopping(patience=2)
    history = fit(model, train, val, epochs=200, lr=0.5, optimizer="sgd", callbacks=[stopper])
    best = int(np.nanargmin(history.series("val_loss")))
    assert len(history.epochs) < 200
    assert len(history.epochs) - 1 - best >= 2
    assert history.events[0]["kind"] == "stop"
    assert evaluate(model, val)["loss"] == pytest.approx(history.epochs[best].val_loss, rel=1e-5)


def test_fit_gradient_clipping_bounds_the_norm(blobs):
    train, _ = blobs
    norms = []

    class NormProbe(Callback):
        def on_step_end(self, state):
            norms.append(
                torch.linalg.vector_norm(
                    torch.cat([p.grad.flatten() for p in state.model.parameters()])
                ).item()
            )

    fit(make_mlp(), train, epochs=1, clip_grad_norm=0.01, callbacks=[NormProbe()])
    assert max(norms) <= 0.01 * (1 + 1e-5)


@pytest.mark.parametrize("schedule", ["step", "cosine", "exponential", "plateau"])
def test_fit_schedule_lowers_the_learning_rate(blobs, schedule):
    train, val = blobs
    history = fit(make_mlp(), train, val, epochs=8, lr=0.1, optimizer="sgd", schedule=schedule)
    lrs = history.series("lr")
    assert lrs[0] == pytest.approx(0.1) or schedule != "step"
    if schedule != "plateau":
        assert lrs[-1] < lrs[0]


def test_fit_torch_lbfgs_works_through_closure(blobs):
    train, val = blobs
    history = fit(make_mlp(), train, val, epochs=3, optimizer="torch-lbfgs")
    assert history.n_steps == 3  # full batch by default
    assert history.epochs[-1].val_metric >= 0.9


def test_fit_regression_reports_r2():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3)).astype(np.float32)
    data = from_arrays(X, X @ np.array([1.0, -2.0, 0.5]) + 0.1)
    model = torch.nn.Linear(3, 1)
    history = fit(model, data, data, epochs=40, lr=0.05)
    assert history.metric == "r2"
    assert history.epochs[-1].val_metric > 0.99


def test_fit_nan_loss_raises_numerical_error(blobs):
    train, _ = blobs
    with pytest.raises(NumericalError, match="loss became nan at epoch 1, step 1"):
        fit(make_mlp(), train, epochs=1, loss_fn=lambda m, b: m(b[0]).sum() * float("nan"))


def test_fit_rejects_unknown_and_invalid_options(blobs):
    train, _ = blobs
    with pytest.raises(InvalidParameterError, match="Did you mean 'epochs'"):
        fit(make_mlp(), train, epoch=3)
    with pytest.raises(InvalidParameterError, match="`lr` of TrainConfig must be a float > 0"):
        fit(make_mlp(), train, lr=-1.0)
    with pytest.raises(InvalidParameterError, match="Did you mean 'adam'"):
        fit(make_mlp(), train, optimizer="adma")


def test_fit_rejects_mismatched_validation_data(blobs):
    train, _ = blobs
    other = from_arrays(np.zeros((4, 3), np.float32), [0, 1, 0, 1])
    with pytest.raises(DataError, match="does not match the training data"):
        fit(make_mlp(), train, other)


def test_train_config_round_trips_through_dict():
    config = TrainConfig(epochs=3, lr=0.5, optimizer="sgd")
    assert TrainConfig.from_dict(config.to_dict()) == config


class PoisonStep:
    """A loss that is NaN on chosen global steps (counted by calls), normal otherwise."""

    def __init__(self, bad_calls):
        self.bad_calls, self.calls = set(bad_calls), 0

    def __call__(self, model, batch):
        self.calls += 1
        loss = torch.nn.functional.cross_entropy(model(batch[0]), batch[1])
        return loss * float("nan") if self.calls in self.bad_calls else loss


def test_fit_nan_policy_raise_names_the_step(blobs):
    train, _ = blobs
    with pytest.raises(NumericalError, match="step 3"):
        fit(make_mlp(), train, epochs=2, batch_size=64, loss_fn=PoisonStep({3}))


def test_fit_nan_policy_skip_step_leaves_weights_unchanged_on_bad_step(blobs):
    train, _ = blobs
    model = make_mlp()
    history = fit(
        model, train, epochs=2, batch_size=64, loss_fn=PoisonStep({3}), nan_policy="skip_step"
    )
    assert [e["step"] for e in history.events if e["kind"] == "skip_step"] == [3]
    assert np.isnan(history.steps["loss"][2]) and np.isfinite(history.epochs[0].train_loss)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    # skipping one step = a run whose third step applies no update: compare with that run
    reference = make_mlp()
    optimizer = torch.optim.Adam(reference.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    X, y = torch.from_numpy(train.X), torch.from_numpy(train.y)
    step = 0
    for _ in range(2):
        perm = torch.randperm(len(X), generator=generator)
        for i in range(0, len(X), 64):
            step += 1
            if step == 3:
                continue
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(
                reference(X[perm[i : i + 64]]), y[perm[i : i + 64]]
            ).backward()
            optimizer.step()
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), reference.parameters(), strict=True)
    )


def test_fit_nan_policy_rollback_redoes_the_epoch_with_half_the_lr(blobs):
    train, _ = blobs
    model = make_mlp()
    history = fit(
        model,
        train,
        epochs=3,
        batch_size=64,
        lr=0.02,
        optimizer="sgd",
        loss_fn=PoisonStep({6}),
        nan_policy="rollback",
    )  # call 6 = epoch 2, step 2
    rollbacks = [e for e in history.events if e["kind"] == "rollback"]
    assert rollbacks == [{"kind": "rollback", "epoch": 2, "step": 6, "new_lr": 0.01}]
    assert [r.lr for r in history.epochs] == [0.02, 0.01, 0.01]
    assert history.step_series("loss")[0].tolist() == list(range(1, 13))
    assert np.isfinite(history.step_series("loss")[1]).all()


def test_fit_nan_policy_rollback_gives_up_after_repeated_failures(blobs):
    train, _ = blobs
    always_nan = lambda m, b: m(b[0]).sum() * float("nan")  # noqa: E731
    with pytest.raises(NumericalError, match="after 8 rollbacks"):
        fit(make_mlp(), train, epochs=1, loss_fn=always_nan, nan_policy="rollback")


@pytest.mark.parametrize("name", ["gd", "cg", "lbfgs", "newton", "hf", "hf-hessian", "torch-lbfgs"])
def test_fit_runs_every_closure_optimizer_by_name(blobs, name):
    train, val = blobs
    model = torch.nn.Linear(4, 2)
    history = fit(model, train, val, epochs=3, optimizer=name)
    assert history.n_steps == 3  # full batch: one step per epoch
    assert history.epochs[-1].train_loss < history.epochs[0].train_loss
    assert history.epochs[-1].val_metric >= 0.8  # chance is 0.5


def test_fit_detect_anomaly_names_the_operation_that_made_nan(blobs):
    train, _ = blobs

    def sqrt_of_negative(model, batch):
        return torch.sqrt(model(batch[0]).sum() - 1e6)  # NaN forward, NaN backward

    with warnings.catch_warnings():  # torch warns that anomaly mode is on, with a traceback
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(NumericalError, match="SqrtBackward0"):
            fit(make_mlp(), train, epochs=1, loss_fn=sqrt_of_negative, detect_anomaly=True)


@pytest.mark.parametrize(
    ("objective", "reference", "target"),
    [
        (cross_entropy_loss, F.cross_entropy, "classes"),
        (squared_error_loss, F.mse_loss, "values"),
        (reconstruction_loss, F.mse_loss, "inputs"),
    ],
)
def test_objective_split_equals_the_torch_loss_of_the_model_outputs(objective, reference, target):
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(8, 3, generator=gen)
    y = {
        "classes": torch.randint(0, 3, (8,), generator=gen),
        "values": torch.randn(8, 3, generator=gen),
        "inputs": X,
    }[target]
    model = torch.nn.Linear(3, 3)
    z = objective.outputs(model, (X, y))  # (8, 3)
    assert torch.equal(z, model(X))
    assert torch.equal(objective(model, (X, y)), reference(z, y))
    assert torch.equal(objective.on_outputs(z, (X, y)), reference(z, y))


def test_train_config_round_trips_the_precision_and_curvature_settings():
    config = TrainConfig(precision="bf16", curvature_fraction=0.25, optimizer="adam")
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert TrainConfig.from_dict({"epochs": 2}).precision == "32-true"  # older checkpoints


@pytest.mark.parametrize(("name", "curvature"), [("hf", "ggn"), ("hf-hessian", "hessian")])
def test_make_optimizer_hessian_free_names_pick_the_curvature(name, curvature):
    optimizer = make_optimizer(name, torch.nn.Linear(3, 2).parameters())
    assert optimizer.defaults["curvature"] == curvature
    assert not optimizer_entry(name).autocast_safe
