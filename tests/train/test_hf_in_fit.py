import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepdx.data.dataset import from_arrays
from deepdx.exceptions import InvalidParameterError
from deepdx.optim import HessianFree
from deepdx.train import fit
from tests.train.conftest import make_mlp


@pytest.fixture
def step_calls(monkeypatch):
    """Record the keyword arguments of every HessianFree.step call (the step still runs)."""
    calls = []
    original = HessianFree.step

    def spy(self, closure, **kwargs):
        calls.append({"curvature": self.param_groups[0]["curvature"], **kwargs})
        return original(self, closure, **kwargs)

    monkeypatch.setattr(HessianFree, "step", spy)
    return calls


def test_fit_hf_uses_gauss_newton_products_and_lowers_the_loss(blobs, step_calls):
    train, val = blobs
    history = fit(make_mlp(), train, val, epochs=4, optimizer="hf")
    assert len(step_calls) == 4  # full batch: one step per epoch
    assert all(c["curvature"] == "ggn" for c in step_calls)
    assert all(set(c) == {"curvature", "outputs_fn", "loss_on_outputs"} for c in step_calls)
    losses = history.series("train_loss")
    assert (np.diff(losses) < 0).all()
    assert history.epochs[-1].val_metric >= 0.9


def test_fit_hf_gauss_newton_on_regression_lowers_the_loss(step_calls):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(128, 4)).astype(np.float32)
    data = from_arrays(X, np.sin(X[:, 0]) + X[:, 1] ** 2)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    history = fit(model, data, epochs=5, optimizer="hf")
    assert {c["curvature"] for c in step_calls} == {"ggn"}
    assert history.epochs[-1].train_loss < 0.5 * history.epochs[0].train_loss


def hand_step(optimizer, model, X, y, k):
    """One HessianFree step on the batch (X, y), Gauss-Newton products on its first k rows."""

    def closure():
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(X), y)
        loss.backward()
        return loss

    optimizer.step(
        closure,
        outputs_fn=lambda: model(X[:k]),
        loss_on_outputs=lambda z: F.cross_entropy(z, y[:k]),
    )


@pytest.mark.parametrize("fraction", [1.0, 0.3])
def test_fit_hf_equals_hessian_free_called_by_hand_bitwise(blobs, fraction):
    train, _ = blobs
    model = make_mlp()
    fit(model, train, epochs=2, optimizer="hf", seed=4, curvature_fraction=fraction)
    reference = make_mlp()
    optimizer = HessianFree(reference.parameters(), lr=1.0, curvature="ggn")
    generator = torch.Generator().manual_seed(4)
    X, y = torch.from_numpy(train.X), torch.from_numpy(train.y)
    for _ in range(2):
        perm = torch.randperm(len(X), generator=generator)  # the whole set is one batch
        hand_step(optimizer, reference, X[perm], y[perm], math.ceil(fraction * len(X)))
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)


def test_fit_hf_with_a_plain_loss_fn_uses_hessian_products(blobs, step_calls):
    train, _ = blobs
    plain = lambda m, b: F.cross_entropy(m(b[0]), b[1])  # noqa: E731  no outputs split
    history = fit(make_mlp(), train, epochs=3, optimizer="hf", loss_fn=plain)
    assert [set(c) for c in step_calls] == [{"curvature"}] * 3
    assert {c["curvature"] for c in step_calls} == {"hessian"}
    assert history.epochs[-1].train_loss < history.epochs[0].train_loss


def test_fit_hf_hessian_gets_a_curvature_closure_on_a_fraction(blobs, step_calls):
    train, _ = blobs
    sizes = []

    def loss_fn(model, batch):
        sizes.append(len(batch[0]))
        return F.cross_entropy(model(batch[0]), batch[1])

    history = fit(
        make_mlp(),
        train,
        epochs=2,
        optimizer="hf-hessian",
        curvature_fraction=0.25,
        loss_fn=loss_fn,
    )
    assert [set(c) for c in step_calls] == [{"curvature", "curvature_closure"}] * 2
    assert {c["curvature"] for c in step_calls} == {"hessian"}
    assert set(sizes) == {256, 64}  # gradient batch, and the curvature batch ceil(0.25 * 256)
    assert history.epochs[-1].train_loss < history.epochs[0].train_loss


def test_fit_curvature_fraction_is_refused_without_hessian_free(blobs):
    with pytest.raises(InvalidParameterError, match="curvature_fraction=0.5 is used only by"):
        fit(make_mlp(), blobs[0], epochs=1, optimizer="adam", curvature_fraction=0.5)
