"""Synthetic diagnosis records for the report tests: every field filled, seeded."""

from __future__ import annotations

import numpy as np

from deepdx.diagnose.baselines import BaselineResult
from deepdx.diagnose.diagnosis import Diagnosis
from deepdx.diagnose.evidence import (
    CapacityProbe,
    DataSanity,
    Evidence,
    LearningCurve,
    Preflight,
)
from deepdx.diagnose.findings import Finding
from deepdx.diagnose.gradient_check import GradCheckResult, GradCheckRow
from deepdx.train.history import EpochRecord, History

LAYERS = ("net.linear1", "net.linear2", "net.linear3")
ACTIVATIONS = {"dead_fraction/": "net.relu1", "saturated_fraction/": "net.tanh2"}
XSS = "<script>alert(1)</script>"
ATTR = '" onerror="alert(2)'


def make_history(n_steps: int = 2000, n_epochs: int = 10, seed: int = 0) -> History:
    """A run with a decaying noisy loss, per-layer gradient norms and sparse monitor signals."""
    rng = np.random.default_rng(seed)
    t = np.arange(1, n_steps + 1)
    history = History(metric="accuracy")
    history.log_steps(
        "loss", 2.0 * np.exp(-t / (n_steps / 4)) + 0.1 * rng.random(n_steps), first_step=1
    )
    history.log_steps("lr", np.full(n_steps, 0.1), first_step=1)
    history.log_steps("grad_norm", 1.0 + rng.random(n_steps), first_step=1)
    for k, layer in enumerate(LAYERS):
        norms = 10.0 ** (-k) * (1.0 + rng.random(n_steps))
        history.log_steps(f"grad_norm/{layer}", norms, first_step=1)
    sparse = np.linspace(0, n_steps, n_epochs + 1).astype(int)
    for i, step in enumerate(sparse):
        history.log_step("dead_fraction/net.relu1", 0.05 * i, step=int(step))
        history.log_step("saturated_fraction/net.tanh2", 0.5 - 0.03 * i, step=int(step))
    for step, lam in zip(sparse[[0, n_epochs // 2, -1]], (5.0, 15.0, 25.0), strict=True):
        history.log_step("lambda_max", lam, step=int(step))
    for epoch in range(1, n_epochs + 1):
        history.epochs.append(
            EpochRecord(
                epoch=epoch,
                train_loss=2.0 / epoch,
                lr=0.1,
                time=0.5 * epoch,
                val_loss=2.2 / epoch + 0.05 * epoch,
                val_metric=0.5 + 0.04 * epoch,
                train_metric=0.55 + 0.044 * epoch,
            )
        )
    return history


def make_gradcheck() -> GradCheckResult:
    rows = (
        GradCheckRow("fc1.weight", (8, 4), 1.0, 1.0, 1e-9, "ok"),
        GradCheckRow("fc1.bias", (8,), 0.5, 0.5, 0.0, "ok"),
        GradCheckRow("fc2.weight", (2, 8), 0.2, 0.3, 0.2, "wrong"),
    )
    direction = (GradCheckRow("direction 0", (50,), 1.0, 1.01, 5e-3, "suspect"),)
    return GradCheckResult(
        direction, rows, "wrong", "fc2.weight", 0.2, ("relu",), (), "fc2 is wrong", 1e-6, 4,
        "directions", 1e-12,
    )  # fmt: skip


def make_evidence(n_steps: int = 2000, seed: int = 0) -> Evidence:
    """Evidence with every check filled in."""
    return Evidence(
        task="classification",
        metric="accuracy",
        n_classes=3,
        n_train=600,
        optimizer="sgd",
        lr=0.1,
        model_spec="mlp:64-64",
        history=make_history(n_steps=n_steps, seed=seed),
        data_sanity=DataSanity(0.1, 0.5, 2.0, 0, 1.2, 0),
        preflight=Preflight(1.1, 1.0986, 1.1, 0.001, 1.0, 100, 0.6, 1.09, 0.8, 0.34),
        gradcheck=make_gradcheck(),
        learning_curve=LearningCurve(
            (60, 150, 300, 600),
            (1.0, 0.99, 0.98, 0.97),
            (0.0, 0.01, 0.01, 0.005),
            (0.6, 0.7, 0.78, 0.82),
            (0.05, 0.04, 0.03, 0.02),
            "accuracy",
            5,
        ),  # fmt: skip
        baselines=[
            BaselineResult("dummy", "accuracy", 0.34, 0.33, 0.01),
            BaselineResult("logistic_regression", "accuracy", 0.9, 0.85, 0.2),
            BaselineResult("rbf_svm", "accuracy", None, None, 0.0, skipped="budget spent"),
        ],
        net_train_score=0.99,
        net_val_score=0.88,
        net_test_score=0.87,
        capacity=[
            CapacityProbe("base", "mlp:64-64", 5000, 0.2, 0.4, 0.95, 0.86, 5, 1.0),
            CapacityProbe("wider", "mlp:128-128", 18000, 0.1, 0.38, 0.98, 0.87, 5, 1.6),
            CapacityProbe("deeper", "mlp:64-64-64", 9000, 0.15, 0.41, 0.96, 0.85, 5, 1.3),
        ],
    )


def make_findings() -> list[Finding]:
    return [
        Finding(
            "overfitting",
            "warning",
            "Validation loss rises while training loss falls.",
            {"gap": 0.12, "gap_threshold": 0.1, "gap_threshold_source": "SageMaker Overfit"},
            ("Add weight decay.", "Collect more data."),
            plot="loss",
        ),
        Finding(
            "wrong_gradient",
            "problem",
            "The gradient of fc2.weight disagrees with finite differences.",
            {"max_rel_error": 0.2, "threshold": 1e-2, "threshold_source": "CS231n"},
            ("Check the custom backward of fc2.",),
            plot="gradcheck",
        ),
        Finding("healthy", "info", "The initial loss matches chance.", {"init_loss": 1.1}),
    ]


def make_diagnosis(n_steps: int = 2000, seed: int = 0) -> Diagnosis:
    """A diagnosis whose report draws every plot."""
    return Diagnosis(
        findings=make_findings(),
        evidence=make_evidence(n_steps=n_steps, seed=seed),
        settings={"data": {"name": "digits", "n_samples": 1797}, "seed": 0, "budget_s": 60.0},
        timings={"baselines": 0.4, "training": 3.2, "gradcheck": 0.1},
    )


def make_empty_diagnosis() -> Diagnosis:
    """A diagnosis where no check produced data, with a reason for some."""
    evidence = Evidence("classification", "accuracy", 2, 10, "sgd", 0.1)
    evidence.skipped.update(
        {"learning_curve": "too few samples for 5 folds", "gradcheck": "model has no parameters"}
    )
    return Diagnosis([], evidence)
