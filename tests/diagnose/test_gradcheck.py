from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from deepdx.diagnose.gradient_check import (
    EXCELLENT_REL_ERROR,
    OK_REL_ERROR,
    WRONG_REL_ERROR,
    gradcheck,
)
from deepdx.exceptions import DiagnosticWarning, InvalidParameterError, NumericalError

# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # Tiny models: intra-op threads only add contention; restore the caller's setting.
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


class _TanhLinearFn(torch.autograd.Function):
    """y = tanh(x Wᵀ) with a backward that is correct or broken on purpose (``variant``)."""

    @staticmethod
    def forward(ctx, x, W, variant):
        y = torch.tanh(x @ W.T)
        ctx.save_for_backward(x, W, y)
        ctx.variant = variant
        return y

    @staticmethod
    def backward(ctx, g):
        x, W, y = ctx.saved_tensors
        d = g * (1 - y**2)  # dL/d(pre-activation)
        grad_x = d @ W
        if ctx.variant == "doubled":
            grad_W = 2.0 * d.T @ x
        elif ctx.variant == "dropped":
            grad_W = g.T @ x  # forgets the tanh' term
        elif ctx.variant == "slightly_off":
            grad_W = 1.001 * d.T @ x
        else:
            grad_W = d.T @ x
        return grad_x, grad_W, None


class _TanhLinear(nn.Module):
    def __init__(self, n_in, n_out, variant="correct"):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in) / n_in**0.5)
        self.variant = variant

    def forward(self, x):
        return _TanhLinearFn.apply(x, self.weight, self.variant)


class _Noisy(nn.Module):
    """Adds fresh Gaussian noise in every forward pass, in train and eval mode alike."""

    def forward(self, x):
        return x + 0.1 * torch.randn_like(x)


class _Abs(nn.Module):
    def forward(self, x):
        return x.abs()


def _cross_entropy(model, batch):
    return F.cross_entropy(model(batch[0]), batch[1])


def _data(n=32, d=5, n_classes=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=generator)  # (n, d) float32
    y = torch.randint(0, n_classes, (n,), generator=generator)  # (n,) int64
    return X, y


def _net(variant=None, activation=nn.Tanh, seed=0):
    torch.manual_seed(seed)
    middle = _TanhLinear(8, 6, variant) if variant else nn.Sequential(nn.Linear(8, 6), nn.Tanh())
    return nn.Sequential(nn.Linear(5, 8), activation(), middle, nn.Linear(6, 3))


# ----------------------------------------------------------------------------- verdicts


def test_gradcheck_passes_correct_tanh_mlp():
    result = gradcheck(_net(), _cross_entropy, _data())
    assert result.verdict == "ok"
    assert result.max_rel_error < 1e-6
    assert all(row.verdict == "ok" for row in result.rows)
    assert result.non_smooth == ()
    assert "excellent" in result.note


@pytest.mark.parametrize("mode", ["directions", "coordinates"])
@pytest.mark.parametrize("variant", ["doubled", "dropped"])
def test_gradcheck_flags_the_tensor_with_a_wrong_backward(variant, mode):
    result = gradcheck(_net(variant), _cross_entropy, _data(), mode=mode)
    assert result.verdict == "wrong"
    assert result.worst_tensor == "2.weight"
    assert {row.name for row in result.tensors if row.verdict == "wrong"} == {"2.weight"}
    assert {row.name for row in result.tensors if row.verdict == "ok"} == {
        "0.weight",
        "0.bias",
        "3.weight",
        "3.bias",
    }
    assert result.custom_functions == ("_TanhLinearFn",)
    assert "'2.weight' is wrong" in result.note


def test_gradcheck_reports_suspect_for_small_error_in_smooth_model():
    result = gradcheck(_net("slightly_off"), _cross_entropy, _data())
    row = next(row for row in result.tensors if row.name == "2.weight")
    assert OK_REL_ERROR < row.rel_error <= WRONG_REL_ERROR  # 1.001 factor: r ≈ 5e-4
    assert result.verdict == "suspect"
    assert "subtle gradient bug" in result.note


def test_gradcheck_relu_model_is_ok_or_suspect_with_kink_note():
    result = gradcheck(_net(activation=nn.ReLU), _cross_entropy, _data())
    assert result.verdict in ("ok", "suspect")
    assert result.non_smooth == ("relu",)
    assert "non-smooth operations (relu)" in result.note


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        (nn.LeakyReLU(), "leakyrelu"),
        (_Abs(), "abs"),
        (
            nn.Sequential(nn.Unflatten(1, (1, 8)), nn.MaxPool1d(2), nn.Flatten(), nn.Linear(4, 8)),
            "maxpool",
        ),
        (nn.Hardtanh(), "hardtanh"),
    ],
)
def test_gradcheck_detects_non_smooth_operations(module, expected):
    net = nn.Sequential(nn.Linear(5, 8), module, nn.Linear(8, 3))
    result = gradcheck(net, _cross_entropy, _data(), n_directions=1)
    assert any(name.startswith(expected) for name in result.non_smooth)


# ----------------------------------------------------------------------------- references


@pytest.mark.parametrize("variant", ["correct", "doubled", "dropped"])
def test_gradcheck_agrees_with_torch_autograd_gradcheck(variant):
    X, y = _data(n=8, d=4)
    target = F.one_hot(y, 3).double()  # (8, 3)
    layer = _TanhLinear(4, 3, variant).double()

    def loss_fn(model, batch):
        return ((model(batch[0]) - batch[1]) ** 2).mean()

    ours = gradcheck(layer, loss_fn, (X.double(), target))
    W = layer.weight.detach().clone().requires_grad_(True)  # (3, 4) float64
    passes = torch.autograd.gradcheck(
        lambda W: ((_TanhLinearFn.apply(X.double(), W, variant) - target) ** 2).mean(),
        (W,),
        raise_exception=False,
    )
    assert passes == (variant == "correct")
    assert (ours.verdict != "wrong") == passes


def test_gradcheck_tensor_row_matches_closed_form_gradient():
    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor([0.7]))

        def forward(self, x):
            return self.w * x

    model = Scale()
    w = model.w.detach().double().item()  # 0.7 as stored in float32
    X = torch.linspace(-1.0, 2.0, 6, dtype=torch.float64)  # (6,)
    y = 3.0 * X + 0.5  # (6,)
    result = gradcheck(model, lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(), (X, y))
    exact = float((2 * X * (w * X - y)).mean())  # dL/dw of the mean squared error
    (row,) = result.tensors
    assert abs(row.analytic) == pytest.approx(abs(exact), rel=1e-12)  # u = ±1 for a scalar
    assert row.numeric == pytest.approx(row.analytic, rel=1e-8)  # quadratic: exact difference


def test_gradcheck_coordinate_rows_match_dense_autograd_gradient():
    net, (X, y) = _net(), _data()
    result = gradcheck(net, _cross_entropy, (X, y), mode="coordinates", max_coordinates=3)
    reference = [p.detach().clone() for p in net.parameters()]
    dense = nn.Sequential(*[m for m in _net()]).double()  # same seed, same weights
    for p, p0 in zip(dense.parameters(), reference, strict=True):
        assert torch.equal(p.float(), p0)
    loss = F.cross_entropy(dense(X[:8].double()), y[:8])
    grads = dict(
        zip(
            [n for n, _ in dense.named_parameters()],
            torch.autograd.grad(loss, list(dense.parameters())),
            strict=True,
        )
    )
    for row in result.tensors:
        assert row.index is not None
        assert row.analytic == pytest.approx(
            float(grads[row.name][row.index]), rel=1e-12, abs=1e-15
        )
        assert row.verdict == "ok"


def test_gradcheck_costs_two_forward_passes_per_direction_and_tensor():
    calls = []

    def counting_loss(model, batch):
        calls.append(len(batch[0]))
        return _cross_entropy(model, batch)

    net = _net()
    n_tensors = len(list(net.parameters()))
    gradcheck(net, counting_loss, _data(), n_directions=3, n_samples=5)
    assert len(calls) == 1 + 2 * 3 + 2 * n_tensors
    assert set(calls) == {5}
    calls.clear()
    gradcheck(net, counting_loss, _data(), n_directions=2, mode="coordinates", max_coordinates=4)
    n_coordinates = sum(min(4, p.numel()) for p in net.parameters())
    assert len(calls) == 1 + 2 * 2 + 2 * n_coordinates


# ----------------------------------------------------------------------------- no side effects


def test_gradcheck_leaves_caller_model_batch_and_global_rng_unchanged():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Dropout(0.5), nn.Linear(8, 3)
    )
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    X, y = _data()
    X0, y0 = X.clone(), y.clone()
    rng = torch.get_rng_state()
    result = gradcheck(net, _cross_entropy, (X, y))
    assert result.verdict == "ok"  # eval mode: dropout off, running statistics
    assert torch.equal(torch.get_rng_state(), rng)
    assert net.training and all(m.training for m in net.modules())
    assert all(p.dtype == torch.float32 and p.grad is None for p in net.parameters())
    after = net.state_dict()
    assert all(
        torch.equal(before[k], after[k]) and before[k].dtype == after[k].dtype for k in before
    )
    assert torch.equal(X, X0) and X.dtype == torch.float32 and torch.equal(y, y0)


def test_gradcheck_stochastic_forward_sees_the_same_noise_in_every_pass():
    net = nn.Sequential(nn.Linear(5, 8), _Noisy(), nn.Tanh(), nn.Linear(8, 3))
    rng = torch.get_rng_state()
    result = gradcheck(net, _cross_entropy, _data(), seed=3)
    assert result.verdict == "ok"
    assert result.max_rel_error <= EXCELLENT_REL_ERROR
    assert torch.equal(torch.get_rng_state(), rng)


def test_gradcheck_uses_the_first_n_samples():
    X, y = _data(n=20)
    full = gradcheck(_net(), _cross_entropy, (X[:6], y[:6]), n_samples=6)
    head = gradcheck(_net(), _cross_entropy, (X, y), n_samples=6)
    assert head.n_samples == 6
    assert [r.analytic for r in head.rows] == [r.analytic for r in full.rows]
    assert gradcheck(_net(), _cross_entropy, (X, y), n_samples=50).n_samples == 20


def test_gradcheck_summary_names_verdict_and_worst_tensor():
    result = gradcheck(_net("doubled"), _cross_entropy, _data())
    assert result.summary().startswith("gradcheck wrong: max relative error")
    assert "'2.weight'" in result.summary()


# ----------------------------------------------------------------------------- errors


def test_gradcheck_rejects_invalid_arguments_in_one_message():
    with pytest.raises(InvalidParameterError, match=r"eps must be .* mode must be"):
        gradcheck(_net(), _cross_entropy, _data(), eps=0.0, mode="dense")


def test_gradcheck_rejects_model_without_trainable_parameters():
    net = _net().requires_grad_(False)
    with pytest.raises(InvalidParameterError, match="no trainable parameters"):
        gradcheck(net, _cross_entropy, _data())


def test_gradcheck_rejects_non_scalar_loss():
    with pytest.raises(InvalidParameterError, match="scalar tensor"):
        gradcheck(_net(), lambda m, b: m(b[0]), _data())


def test_gradcheck_raises_numerical_error_on_non_finite_loss():
    with pytest.raises(NumericalError, match="not finite"):
        gradcheck(_net(), lambda m, b: _cross_entropy(m, b) / 0.0, _data())


def test_gradcheck_warns_when_loss_fn_casts_to_float32():
    with pytest.warns(DiagnosticWarning, match="lower precision"):
        gradcheck(_net(), lambda m, b: F.cross_entropy(m(b[0]).float(), b[1]), _data())
