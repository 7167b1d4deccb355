"""Default objectives and metrics per task, and batched evaluation.

An objective is a function ``loss_fn(model, batch) -> scalar tensor`` with
``batch = (X, y)``; a user may pass any such function to :func:`deepdx.train.fit`.

Symbols
-------
B    batch size
K    model outputs (classes, regression targets, or reconstructed features)
z    model outputs, (B, K)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepdx.data.dataset import Dataset

__all__ = [
    "LossFn",
    "cross_entropy",
    "cross_entropy_loss",
    "default_loss",
    "evaluate",
    "metric_name",
    "predict",
    "reconstruction_loss",
    "squared_error",
    "squared_error_loss",
]

LossFn = Callable[[nn.Module, tuple[Tensor, ...]], Tensor]


def cross_entropy(z: Tensor, y: Tensor) -> Tensor:
    """Mean softmax cross-entropy of logits ``z (B, K)`` against class indices ``y (B,)``."""
    return F.cross_entropy(z, y)


def squared_error(z: Tensor, y: Tensor) -> Tensor:
    """Mean squared error of ``z (B, K)`` against ``y (B,)`` or ``(B, K)``."""
    return F.mse_loss(z.reshape(y.shape), y)


def cross_entropy_loss(model: nn.Module, batch: tuple[Tensor, ...]) -> Tensor:
    """Objective: :func:`cross_entropy` of ``model(X)`` against ``y``."""
    return cross_entropy(model(batch[0]), batch[1])


def squared_error_loss(model: nn.Module, batch: tuple[Tensor, ...]) -> Tensor:
    """Objective: :func:`squared_error` of ``model(X)`` against ``y``."""
    return squared_error(model(batch[0]), batch[1])


def reconstruction_loss(model: nn.Module, batch: tuple[Tensor, ...]) -> Tensor:
    """Objective: mean squared error between ``model(X)`` and the flattened input (autoencoders)."""
    X = batch[0]
    return F.mse_loss(model(X).reshape(len(X), -1), X.reshape(len(X), -1))


_OBJECTIVES: dict[str, tuple[LossFn, Callable[[Tensor, Tensor], Tensor]]] = {
    "classification": (cross_entropy_loss, cross_entropy),
    "regression": (squared_error_loss, squared_error),
    "unsupervised": (reconstruction_loss, lambda z, X: F.mse_loss(z, X.reshape(len(X), -1))),
}


def default_loss(task: str) -> LossFn:
    """Return the standard objective for ``task`` (cross-entropy, squared error, reconstruction)."""
    return _OBJECTIVES[task][0]


def metric_name(task: str) -> str:
    """Name of the metric :func:`evaluate` reports for ``task``: accuracy, r2, or ''."""
    return {"classification": "accuracy", "regression": "r2"}.get(task, "")


@torch.no_grad()
def predict(
    model: nn.Module, X: Tensor, *, batch_size: int = 4096, device: str | torch.device = "cpu"
) -> Tensor:
    """Return ``model(X)`` in eval mode, computed in batches, on the CPU.

    Parameters
    ----------
    model : nn.Module
        Any module mapping ``(B, *sample_shape)`` to ``(B, K)``.
    X : Tensor of shape (n, *sample_shape)
        Inputs.
    batch_size : int, default=4096
        Rows per forward pass.
    device : str or torch.device, default="cpu"
        Where to run the model.

    Returns
    -------
    Tensor of shape (n, K)
    """
    was_training = model.training
    model.eval()
    try:
        outputs = [
            model(X[i : i + batch_size].to(device)).cpu() for i in range(0, len(X), batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(outputs)


def evaluate(
    model: nn.Module,
    dataset: Dataset,
    *,
    loss_fn: LossFn | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 4096,
) -> dict[str, float]:
    """Return the loss and metric of ``model`` on ``dataset`` in eval mode.

    Parameters
    ----------
    model : nn.Module
        The trained model.
    dataset : Dataset
        Data to score.
    loss_fn : callable, optional
        Objective; defaults to :func:`default_loss` of the task. It is applied to the whole
        dataset's predictions at once, so it must be a mean over samples.
    device : str or torch.device, default="cpu"
        Where to run the model.
    batch_size : int, default=4096
        Rows per forward pass.

    Returns
    -------
    dict
        ``{"loss": float, <metric>: float}`` where the metric is ``accuracy`` (classification)
        or ``r2`` (regression); unsupervised data gives the loss only.

    Examples
    --------
    >>> import numpy as np
    >>> from deepdx.data.dataset import from_arrays
    >>> ds = from_arrays(np.eye(2, dtype=np.float32), [0, 1])
    >>> model = torch.nn.Linear(2, 2)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.eye(2) * 5); _ = model.bias.zero_()
    >>> evaluate(model, ds)["accuracy"]
    1.0
    """
    X = torch.from_numpy(dataset.X)
    y = X if dataset.y is None else torch.from_numpy(dataset.y)
    z = predict(model, X, batch_size=batch_size, device=device)  # (n, K)
    if loss_fn is None:
        loss = float(_OBJECTIVES[dataset.task][1](z, y))
    else:
        loss = _batched_loss(model, loss_fn, (X, y), batch_size=batch_size, device=device)
    result = {"loss": loss}
    if dataset.task == "classification":
        result["accuracy"] = float((z.argmax(1) == y).double().mean())
    elif dataset.task == "regression":
        result["r2"] = _r2(z.reshape(y.shape).double(), y.double())
    return result


@torch.no_grad()
def _batched_loss(
    model: nn.Module,
    loss_fn: LossFn,
    batch: tuple[Tensor, Tensor],
    *,
    batch_size: int,
    device: str | torch.device,
) -> float:
    """Sample-weighted mean of ``loss_fn`` over batches, in eval mode."""
    X, y = batch
    was_training = model.training
    model.eval()
    try:
        total = sum(
            float(
                loss_fn(model, (X[i : i + batch_size].to(device), y[i : i + batch_size].to(device)))
            )
            * len(X[i : i + batch_size])
            for i in range(0, len(X), batch_size)
        )
    finally:
        model.train(was_training)
    return total / len(X)


def _r2(prediction: Tensor, target: Tensor) -> float:
    """Coefficient of determination, averaged over output columns (as scikit-learn does)."""
    residual = ((target - prediction) ** 2).sum(0)
    total = ((target - target.mean(0)) ** 2).sum(0).clamp_min(1e-12)
    return float((1 - residual / total).mean())
