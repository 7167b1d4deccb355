import math

import numpy as np
import pytest
import torch

from deepdx.data.dataset import from_arrays
from deepdx.data.splits import split
from deepdx.diagnose import capacity
from deepdx.diagnose._budget import Budget, CheckSkipped
from deepdx.diagnose.capacity import capacity_probes, capacity_variants
from deepdx.nets import build_model, count_parameters, parse_spec
from deepdx.train.config import TrainConfig


def _blobs(n=150, d=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.normal(size=(n, d)) + 2.0 * np.eye(3, d)[y]
    return split(from_arrays(X, y), val_size=0.2, test_size=0.2, seed=seed)


def _images(n=90, seed=0):
    rng = np.random.default_rng(seed)
    return split(from_arrays(rng.normal(size=(n, 1, 8, 8)), np.arange(n) % 2), seed=seed)


def _without_seconds(probes):
    return [(p.name, p.spec, p.n_params, p.train_loss, p.val_loss, p.epochs) for p in probes]


# ---------------------------------------------------------------- variants


def test_capacity_variants_of_an_mlp_spec():
    variants, skipped = capacity_variants("mlp:64,32:tanh", (8,), 3)
    assert skipped == {}
    sizes = {name: parse_spec(spec).sizes for name, spec in variants.items()}
    assert sizes == {
        "base": (64, 32),
        "wider": (128, 64),
        "deeper": (64, 32, 32),
        "narrower": (32, 16),
    }
    assert all(parse_spec(spec).activation == "tanh" for spec in variants.values())


def test_capacity_variants_of_the_default_mlp_use_its_width():
    variants, _ = capacity_variants("mlp", (8,), 3)
    assert variants["base"] == "mlp:256" and variants["wider"] == "mlp:512"


def test_capacity_variants_of_a_conv_spec_vary_channels():
    variants, skipped = capacity_variants("conv", (1, 28, 28), 10)
    assert variants["wider"] == "conv:12,32" and variants["deeper"] == "conv:6,16,16"
    assert variants["narrower"] == "conv:3,8" and skipped == {}


def test_capacity_variants_skip_deeper_conv_on_a_small_image():
    variants, skipped = capacity_variants("conv:4,8,8", (1, 8, 8), 10)
    assert "deeper" not in variants and "too small" in skipped["deeper"]
    build_model(variants["wider"], (1, 8, 8), 10)  # the others build


def test_capacity_variants_skip_narrower_when_every_width_is_one():
    variants, skipped = capacity_variants("mlp:1,1", (4,), 2)
    assert "narrower" not in variants and "already 1" in skipped["narrower"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [("custom", "custom module"), ("models.py:make_net", "FILE.py"), ("linear", "has none")],
)
def test_capacity_variants_refuse_specs_that_cannot_vary(spec, message):
    with pytest.raises(CheckSkipped, match=message):
        capacity_variants(spec, (4,), 2)


# ---------------------------------------------------------------- probes


def test_capacity_probes_train_every_variant_for_the_same_epochs():
    splits = _blobs()
    config = TrainConfig(epochs=3, early_stopping=1, train_eval_size=0)
    probes = capacity_probes("mlp:16", splits, config=config, seed=0)
    assert [p.name for p in probes] == ["base", "wider", "deeper", "narrower"]
    assert all(p.epochs == 3 for p in probes)  # early stopping is off
    for probe in probes:
        assert probe.n_params == count_parameters(build_model(probe.spec, (4,), 3))
        assert probe.train_score is not None and probe.val_score is not None
        assert math.isfinite(probe.train_loss) and math.isfinite(probe.val_loss)
        assert probe.seconds > 0
    base, wider, deeper, narrower = probes
    assert parse_spec(wider.spec).sizes == (32,) and wider.n_params > base.n_params
    assert len(parse_spec(deeper.spec).sizes) == 2 and deeper.n_params > base.n_params
    assert narrower.n_params < base.n_params


def test_capacity_probes_score_a_training_probe_comparable_to_validation():
    splits = _blobs()
    probes = capacity_probes("mlp:16", splits, config=TrainConfig(epochs=30, lr=0.01))
    base = probes[0]
    assert base.train_score > 0.8 and base.val_score > 0.6  # separable blobs are learnt
    assert base.train_loss < 1.0


def test_capacity_probes_on_conv_spec():
    probes = capacity_probes("conv:2,4", _images(), config=TrainConfig(epochs=1))
    assert [p.name for p in probes] == ["base", "wider", "deeper", "narrower"]
    assert probes[1].spec == "conv:4,8"


def test_capacity_probes_refuse_a_custom_model():
    with pytest.raises(CheckSkipped, match="custom"):
        capacity_probes("custom", _blobs(), config=TrainConfig(epochs=1))


def test_capacity_probes_cut_epochs_alike_to_fit_the_budget(monkeypatch):
    monkeypatch.setattr(capacity, "seconds_per_row", lambda *args, **kwargs: 1e-5)
    splits = _blobs()
    config = TrainConfig(epochs=10**6, train_eval_size=30)
    frozen_clock = Budget(0.1, clock=lambda: 0.0)  # 0.1 s left throughout
    probes = capacity_probes("mlp:8", splits, config=config, budget=frozen_clock)
    n_params = [p.n_params for p in probes]
    scale = sum(max(1.0, n / n_params[0]) for n in n_params)  # cost relative to the base
    rows = len(splits.train) + (len(splits.val) + 30) / 3
    expected = math.floor(0.1 / (1e-5 * rows * scale))
    assert [p.epochs for p in probes] == [expected] * len(probes)


@pytest.mark.slow
def test_capacity_probes_within_a_real_budget_train_at_least_one_epoch():
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # torch's one-off import, off the clock
    probes = capacity_probes("mlp:8", _blobs(), config=TrainConfig(epochs=10**6), budget=1.0)
    epochs = {p.epochs for p in probes}
    assert len(epochs) == 1 and 1 <= epochs.pop() < 10**6


def test_capacity_probes_skip_when_the_budget_is_spent():
    with pytest.raises(CheckSkipped, match="budget"):
        capacity_probes("mlp:8", _blobs(), config=TrainConfig(), budget=0.0)


def test_capacity_probes_skip_when_one_epoch_does_not_fit(monkeypatch):
    monkeypatch.setattr(capacity, "seconds_per_row", lambda *args, **kwargs: 1.0)
    with pytest.raises(CheckSkipped, match="one epoch"):
        capacity_probes("mlp:8", _blobs(), config=TrainConfig(), budget=5.0)


def test_capacity_probes_record_a_diverging_probe_as_nan():
    config = TrainConfig(epochs=2, optimizer="sgd", lr=1e30, momentum=0.0)
    probes = capacity_probes("mlp:8", _blobs(), config=config)
    assert all(math.isnan(p.train_loss) and p.val_score is None for p in probes)
    assert all(p.epochs < 2 for p in probes)


def test_capacity_probes_are_reproducible():
    splits = _blobs()
    config = TrainConfig(epochs=2)
    first = capacity_probes("mlp:8", splits, config=config, seed=1)
    again = capacity_probes("mlp:8", splits, config=config, seed=1)
    assert _without_seconds(first) == _without_seconds(again)


@pytest.mark.slow
def test_capacity_probes_identical_for_one_and_two_processes():
    splits = _blobs()
    config = TrainConfig(epochs=2)
    one = capacity_probes("mlp:8", splits, config=config, n_jobs=1)
    two = capacity_probes("mlp:8", splits, config=config, n_jobs=2)
    assert _without_seconds(one) == _without_seconds(two)
