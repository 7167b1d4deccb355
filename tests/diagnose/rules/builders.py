"""Small builders of synthetic evidence for the rule tests.

Every builder returns a *healthy* default that callers override field by field, so a test
states only the fault it plants.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from deepdx._random import numpy_rng
from deepdx.diagnose.baselines import BaselineResult
from deepdx.diagnose.evidence import (
    CapacityProbe,
    DataSanity,
    Evidence,
    LearningCurve,
    Preflight,
)
from deepdx.diagnose.gradient_check import GradCheckResult, GradCheckRow
from deepdx.train.history import EpochRecord, History

LAYERS = ("net.linear1", "net.linear2", "net.linear3")
ACTS = ("net.act1", "net.act2")


def evidence(**fields) -> Evidence:
    """A 10-class classification run with nothing measured, fields overridden."""
    base = {
        "task": "classification",
        "metric": "accuracy",
        "n_classes": 10,
        "n_train": 1000,
        "optimizer": "adam",
        "lr": 1e-3,
    }
    return Evidence(**(base | fields))


def preflight(**fields) -> Preflight:
    """Pre-flight results of a healthy 10-class net."""
    base = Preflight(
        init_loss=2.31,
        chance_loss=float(np.log(10)),
        one_batch_initial_loss=2.3,
        one_batch_final_loss=0.002,
        one_batch_final_score=1.0,
        one_batch_steps=300,
        real_inputs_loss=0.4,
        zeroed_inputs_loss=2.3,
        real_inputs_score=0.88,
        zeroed_inputs_score=0.11,
    )
    return replace(base, **fields)


def data_sanity(**fields) -> DataSanity:
    """Statistics of standardised, balanced data without duplicates."""
    base = DataSanity(
        feature_mean_abs_max=0.01,
        feature_std_min=0.9,
        feature_std_max=1.1,
        n_constant_features=0,
        imbalance_ratio=1.2,
        n_duplicates_across_splits=0,
    )
    return replace(base, **fields)


def baselines(
    dummy: float = 0.11, logistic: float = 0.85, rbf: float | None = 0.92, metric: str = "accuracy"
) -> list[BaselineResult]:
    """Dummy, logistic-regression and (optionally) RBF-SVM baselines with these test scores."""
    linear = "logistic_regression" if metric == "accuracy" else "ridge"
    out = [
        BaselineResult("dummy", metric, dummy, dummy),
        BaselineResult(linear, metric, logistic + 0.02, logistic),
    ]
    if rbf is not None:
        out.append(BaselineResult("rbf_svm", metric, rbf + 0.05, rbf))
    return out


def gradcheck_result(
    verdict: str, *, error: float = 1e-9, non_smooth=(), custom=(), worst: str = "net.0.weight"
) -> GradCheckResult:
    """A gradient-check result with one row per verdict."""
    row = GradCheckRow(worst, (4, 3), 1.0, 1.0 + error, error, verdict)
    return GradCheckResult(
        directions=(row,),
        tensors=(row,),
        verdict=verdict,
        worst_tensor=worst,
        max_rel_error=error,
        non_smooth=tuple(non_smooth),
        custom_functions=tuple(custom),
        note="",
        eps=1e-6,
        n_samples=8,
        mode="directions",
        noise_floor=1e-12,
    )


def epochs(train_loss, **series) -> list[EpochRecord]:
    """Epoch records from per-epoch sequences (``val_loss``, ``train_metric``, ...)."""
    records = []
    for i, loss in enumerate(train_loss):
        fields = {name: float(values[i]) for name, values in series.items() if name != "extra"}
        extra = {k: float(v[i]) for k, v in series.get("extra", {}).items()}
        records.append(EpochRecord(i + 1, float(loss), 1e-3, float(i), **fields, extra=extra))
    return records


def history(
    loss=None, *, records=None, signals: dict | None = None, events=(), every: int = 1
) -> History:
    """A history with per-step losses, epoch records and monitor series.

    ``signals`` maps a series name to its values, logged every ``every`` steps from step
    ``every`` (per-layer names like ``"grad_norm/net.linear1"``).
    """
    h = History(metric="accuracy", epochs=list(records or []), events=list(events))
    if loss is not None:
        h.log_steps("loss", np.asarray(loss, dtype=float), first_step=1)
    for name, values in (signals or {}).items():
        for k, value in enumerate(np.atleast_1d(np.asarray(values, dtype=float))):
            h.log_step(name, value, step=(k + 1) * every)
    return h


def decaying_loss(n: int = 1000, start: float = 2.3, end: float = 0.1, seed: int = 0) -> np.ndarray:
    """A loss that falls exponentially from ``start`` to ``end`` with 5% minibatch noise."""
    t = np.linspace(0.0, 1.0, n)
    curve = end + (start - end) * np.exp(-5.0 * t)
    return curve * (1.0 + 0.05 * numpy_rng(seed).standard_normal(n))


def healthy_signals(n: int = 100, seed: int = 0) -> dict:
    """Monitor series of a healthy 3-layer ReLU net, logged n times."""
    rng = numpy_rng(seed)
    noise = 1.0 + 0.1 * rng.standard_normal(n)
    out = {"grad_norm": 1.0 * noise, "distance_from_init": np.linspace(0.0, 0.6, n)}
    for layer, norm in zip(LAYERS, (0.5, 0.8, 1.0), strict=True):
        out[f"grad_norm/{layer}"] = norm * noise
        out[f"update_ratio/{layer}"] = 1e-3 * noise
    for act in ACTS:
        out[f"dead_fraction/{act}"] = np.full(n, 0.1)
    return out


def healthy_history(seed: int = 0) -> History:
    """A healthy 10-epoch, 1000-step run: falling losses, steady signals."""
    k = np.arange(10)
    records = epochs(
        1.9 * np.exp(-0.4 * k) + 0.1,
        val_loss=1.9 * np.exp(-0.4 * k) + 0.2,
        train_metric=0.97 - 0.6 * np.exp(-0.5 * k),
        val_metric=0.95 - 0.6 * np.exp(-0.5 * k),
    )
    return history(
        decaying_loss(seed=seed), records=records, signals=healthy_signals(seed=seed), every=10
    )


def learning_curve(val=(0.80, 0.86, 0.90, 0.92), train=(0.99, 0.98, 0.97, 0.97)) -> LearningCurve:
    """A learning curve at 4 sizes with small fold-to-fold spread."""
    sizes = tuple(int(250 * 2**i) for i in range(len(val)))[: len(val)]
    k = len(val)
    return LearningCurve(sizes, tuple(train), (0.01,) * k, tuple(val), (0.01,) * k, "accuracy", 5)


def probe(name: str, val_score: float | None, *, val_loss: float = 0.5, train_loss: float = 0.3):
    """One capacity probe."""
    spec = {"base": "mlp:64", "wider": "mlp:128", "deeper": "mlp:64-64"}.get(name, name)
    train_score = None if val_score is None else min(1.0, val_score + 0.03)
    return CapacityProbe(name, spec, 1000, train_loss, val_loss, train_score, val_score, 5, 1.0)


def healthy_evidence(**fields) -> Evidence:
    """Every check ran and everything is healthy."""
    base = {
        "history": healthy_history(),
        "data_sanity": data_sanity(),
        "preflight": preflight(),
        "gradcheck": gradcheck_result("ok"),
        "learning_curve": learning_curve(),
        "baselines": baselines(),
        "net_train_score": 0.97,
        "net_val_score": 0.95,
        "net_test_score": 0.95,
        "capacity": [probe("base", 0.95), probe("wider", 0.955), probe("deeper", 0.95)],
    }
    return evidence(**(base | fields))
