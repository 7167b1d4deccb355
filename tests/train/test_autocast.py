import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepdx.cli import build_parser, resolve_run_config
from deepdx.data.dataset import from_arrays
from deepdx.exceptions import InvalidParameterError
from deepdx.train import Callback, TrainConfig, cross_entropy_loss, fit
from deepdx.train.objectives import mixed_precision_loss
from tests.train.conftest import make_mlp

SECOND_ORDER = ["gd", "cg", "lbfgs", "newton", "hf", "hf-hessian", "torch-lbfgs"]


def three_classes(n=900, seed=0):
    """Three overlapping Gaussian classes in 4-D (Bayes accuracy well below 1): train, val."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.array([[0.0, 0.0, 0, 0], [1.5, 0.5, 0, 0], [0.5, 1.5, 0, 0]])
    X = (rng.normal(size=(n, 4)) + centres[y]).astype(np.float32)
    return from_arrays(X[:600], y[:600]), from_arrays(X[600:], y[600:])


def mlp_3(seed=0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.Tanh(), torch.nn.Linear(32, 3))


class DtypeRecorder(Callback):
    """Record the dtype of the first layer's outputs in training and in evaluation."""

    def __init__(self):
        self.seen = {"train": set(), "eval": set()}
        self.loss_dtypes = set()

    def on_fit_start(self, state):
        def hook(module, inputs, output):
            self.seen["train" if module.training else "eval"].add(output.dtype)

        state.model[0].register_forward_hook(hook)

    def on_step_end(self, state):
        self.loss_dtypes.add(state.loss.dtype)


def test_fit_bf16_accuracy_is_within_two_points_of_float32():
    train, val = three_classes()
    accuracy = {}
    for precision in ("32-true", "bf16-mixed"):
        history = fit(mlp_3(), train, val, epochs=6, batch_size=100, lr=0.01, precision=precision)
        accuracy[precision] = history.epochs[-1].val_metric
    assert accuracy["32-true"] > 0.6  # chance is 1/3: the problem is learned
    assert abs(accuracy["bf16-mixed"] - accuracy["32-true"]) <= 0.02  # 6 of 300 samples


def test_fit_bf16_autocasts_the_training_forward_pass_only():
    train, val = three_classes(n=700)
    model, recorder = mlp_3(), DtypeRecorder()
    history = fit(model, train, val, epochs=2, precision="bf16", callbacks=[recorder])
    assert recorder.seen == {"train": {torch.bfloat16}, "eval": {torch.float32}}
    assert recorder.loss_dtypes == {torch.float32}
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert {e["kind"]: e for e in history.events}["autocast"]["dtype"] == "bfloat16"


def test_fit_bf16_keeps_optimizer_state_float32(blobs):
    train, _ = blobs
    model = make_mlp()
    seen = []

    class Spy(Callback):
        def on_fit_end(self, state):
            seen.extend(v.dtype for s in state.optimizer.state.values() for v in s.values())

    fit(model, train, epochs=1, optimizer="adam", precision="bf16-mixed", callbacks=[Spy()])
    assert seen and set(seen) == {torch.float32}


def test_fit_32_true_matches_the_default_bitwise(blobs):
    train, _ = blobs
    a, b = make_mlp(), make_mlp()
    fit(a, train, epochs=2)
    fit(b, train, epochs=2, precision="32")
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize("name", SECOND_ORDER)
def test_fit_bf16_refused_with_line_search_and_curvature_optimizers(blobs, name):
    with pytest.raises(InvalidParameterError, match=f"optimizer '{name}' compares losses"):
        fit(make_mlp(), blobs[0], epochs=1, optimizer=name, precision="bf16-mixed")


def test_fit_bf16_refused_for_float64_model(blobs):
    with pytest.raises(InvalidParameterError, match="the model is float64.*model.float()"):
        fit(make_mlp().double(), blobs[0], epochs=1, precision="bf16-mixed")


def test_fit_bf16_resume_5_plus_5_equals_10_epochs_bitwise(blobs, tmp_path):
    train, val = blobs
    settings = dict(batch_size=32, precision="bf16-mixed", seed=2, schedule="exponential")
    straight = make_mlp(dropout=0.3)
    full = fit(straight, train, val, epochs=10, checkpoint_dir=tmp_path / "a", **settings)
    fit(make_mlp(dropout=0.3), train, val, epochs=5, checkpoint_dir=tmp_path / "b", **settings)
    resumed = make_mlp(dropout=0.3, seed=99)
    history = fit(
        resumed, train, val, epochs=10, checkpoint_dir=tmp_path / "b", resume=True, **settings
    )
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert history.steps["loss"] == full.steps["loss"]
    assert [e["kind"] for e in history.events] == ["autocast", "resume"]


def test_resume_refuses_a_change_of_precision(blobs, tmp_path):
    fit(make_mlp(), blobs[0], epochs=1, checkpoint_dir=tmp_path)
    with pytest.raises(InvalidParameterError, match="precision: '32-true' -> 'bf16-mixed'"):
        fit(make_mlp(), blobs[0], epochs=2, checkpoint_dir=tmp_path, resume=True, precision="bf16")


def test_train_config_precision_accepts_lightning_names():
    assert TrainConfig(precision="bf16").precision == "bf16-mixed"
    assert TrainConfig(precision=32).precision == "32-true"  # type: ignore[arg-type]  # --set
    assert TrainConfig.from_dict(TrainConfig(precision="bf16").to_dict()).precision == "bf16-mixed"
    with pytest.raises(InvalidParameterError, match="`precision` of TrainConfig must be one of"):
        TrainConfig(precision="16-mixed")


@pytest.mark.parametrize(("value", "expected"), [("bf16", "bf16-mixed"), ("32", "32-true")])
def test_cli_set_precision_reaches_the_train_config(value, expected):
    args = build_parser().parse_args(["train", "--set", f"precision={value}"])
    assert resolve_run_config(args).train.precision == expected


@pytest.mark.parametrize("objective", ["split", "plain"])
def test_mixed_precision_loss_is_float32_and_close_to_float32_loss(objective):
    gen = torch.Generator().manual_seed(0)
    X, y = torch.randn(64, 4, generator=gen), torch.randint(0, 3, (64,), generator=gen)
    model = mlp_3()
    loss_fn = (
        cross_entropy_loss if objective == "split" else lambda m, b: F.cross_entropy(m(b[0]), b[1])
    )
    loss = mixed_precision_loss(loss_fn, model, (X, y), "cpu")
    exact = F.cross_entropy(model(X), y)
    assert loss.dtype == torch.float32
    assert loss.item() != exact.item()  # the forward pass really ran in bfloat16
    torch.testing.assert_close(loss, exact, rtol=2e-2, atol=0)  # bf16 has 8 significant bits


@pytest.mark.gpu
def test_fit_bf16_on_cuda_autocasts_and_trains():
    train, val = three_classes()
    recorder = DtypeRecorder()
    history = fit(
        mlp_3(), train, val, epochs=5, precision="bf16-mixed", device="cuda", callbacks=[recorder]
    )
    assert recorder.seen["train"] == {torch.bfloat16}
    assert history.epochs[-1].val_metric > 0.6
