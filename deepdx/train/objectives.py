"""Default objectives and metrics per task, and batched evaluation.

An objective is a function ``loss_fn(model, batch) -> scalar tensor`` with
``batch = (X, y)``; a user may pass any such function to :func:`deepdx.train.fit`.
An :class:`Objective` is such a function split in two, ``ℓ(f(X), batch)``: the model's
outputs ``z = f(X)`` and the loss ``ℓ`` of those outputs. ``fit`` uses the split to run
the forward pass under bf16 autocast and the loss in float32, and to give Hessian-free
Gauss-Newton products ``G = Jᵀ H_ℓ J``. The three built-in objectives are Objectives.

Symbols
-------
B    batch size
K    model outputs (classes, regression targets, or reconstructed features)
z    model outputs, (B, K)
ℓ    loss of the outputs, ``on_outputs(z, batch)``, a mean over the B rows
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepdx.data.dataset import Dataset

__all__ = [
    "LossFn",
    "Objective",
    "cross_entropy",
    "cross_entropy_loss",
    "default_loss",
    "evaluate",
    "metric_name",
    "mixed_precision_loss",
    "predict",
    "reconstruction_loss",
    "squared_error",
    "squared_error_loss",
    "tensor_view",
]

Batch = tuple[Tensor, ...]
LossFn = Callable[[nn.Module, Batch], Tensor]


@dataclass(frozen=True)
class Objective:
    """A loss split into the model's outputs and a loss on those outputs.

    Calling it, ``objective(model, batch)``, returns ``on_outputs(model(X), batch)``, so
    an ``Objective`` is a ``loss_fn`` like any other.

    Parameters
    ----------
    on_outputs : callable
        ``on_outputs(z, batch) -> scalar``, the loss ℓ of the outputs ``z (B, K)`` of the
        rows ``batch = (X, y)``: a mean over the B rows, convex in ``z`` for Gauss-Newton
        curvature to be positive semi-definite.
    name : str, default="custom"
        Shown by ``repr``.

    Examples
    --------
    A hinge loss whose Gauss-Newton products Hessian-free can use:

    >>> hinge = Objective(lambda z, batch: (1 - z.squeeze(1) * batch[1]).clamp_min(0).mean(),
    ...                   name="hinge")
    >>> X, y = torch.ones(4, 3), torch.tensor([1.0, -1.0, 1.0, -1.0])
    >>> model = torch.nn.Linear(3, 1)
    >>> hinge.outputs(model, (X, y)).shape, hinge(model, (X, y)).shape, hinge
    (torch.Size([4, 1]), torch.Size([]), Objective(name='hinge'))
    """

    on_outputs: Callable[[Tensor, Batch], Tensor] = field(repr=False)
    name: str = "custom"

    def outputs(self, model: nn.Module, batch: Batch) -> Tensor:
        """Return the model outputs ``z = model(X)``, (B, K)."""
        return model(batch[0])

    def __call__(self, model: nn.Module, batch: Batch) -> Tensor:
        """Return the scalar loss ``on_outputs(model(X), batch)``."""
        return self.on_outputs(self.outputs(model, batch), batch)


def cross_entropy(z: Tensor, y: Tensor) -> Tensor:
    """Mean softmax cross-entropy of logits ``z (B, K)`` against class indices ``y (B,)``."""
    return F.cross_entropy(z, y)


def squared_error(z: Tensor, y: Tensor) -> Tensor:
    """Mean squared error of ``z (B, K)`` against ``y (B,)`` or ``(B, K)``."""
    return F.mse_loss(z.reshape(y.shape), y)


def _cross_entropy_of_outputs(z: Tensor, batch: Batch) -> Tensor:
    """ℓ of classification: :func:`cross_entropy` of ``z (B, K)`` against ``y``."""
    return cross_entropy(z, batch[1])


def _squared_error_of_outputs(z: Tensor, batch: Batch) -> Tensor:
    """ℓ of regression: :func:`squared_error` of ``z (B, K)`` against ``y``."""
    return squared_error(z, batch[1])


def _reconstruction_error_of_outputs(z: Tensor, batch: Batch) -> Tensor:
    """ℓ of autoencoders: mean squared error between ``z`` and the input, both flattened."""
    X = batch[0]
    return F.mse_loss(z.reshape(len(X), -1), X.reshape(len(X), -1))


#: Objective of classification: cross-entropy of ``model(X)`` against ``y``.
cross_entropy_loss = Objective(_cross_entropy_of_outputs, name="cross_entropy")
#: Objective of regression: squared error of ``model(X)`` against ``y``.
squared_error_loss = Objective(_squared_error_of_outputs, name="squared_error")
#: Objective of autoencoders: mean squared error between ``model(X)`` and the input.
reconstruction_loss = Objective(_reconstruction_error_of_outputs, name="reconstruction")

_OBJECTIVES: dict[str, Objective] = {
    "classification": cross_entropy_loss,
    "regression": squared_error_loss,
    "unsupervised": reconstruction_loss,
}


def mixed_precision_loss(
    loss_fn: LossFn, model: nn.Module, batch: Batch, device_type: str
) -> Tensor:
    """Return ``loss_fn(model, batch)`` in float32, the forward pass under bf16 autocast.

    Parameters
    ----------
    loss_fn : callable
        An :class:`Objective`, or any ``loss_fn(model, batch) -> scalar``.
    model : nn.Module
        A float32 model; its parameters stay float32 (autocast casts copies).
    batch : tuple of Tensor
        ``(X, y)`` or ``(X,)``.
    device_type : str
        ``"cpu"`` or ``"cuda"``, where ``model`` runs.

    Returns
    -------
    Tensor
        The scalar loss, float32.

    Notes
    -----
    An Objective's outputs ``z`` are computed under
    ``torch.autocast(device_type, dtype=torch.bfloat16)`` and its loss ℓ on ``z`` cast to
    float32, outside autocast. A plain ``loss_fn`` runs wholly under autocast, where
    torch's autocast policy computes losses such as cross-entropy and MSE in float32.

    Examples
    --------
    >>> model = torch.nn.Linear(3, 2)
    >>> batch = (torch.ones(4, 3), torch.tensor([0, 1, 0, 1]))
    >>> mixed_precision_loss(cross_entropy_loss, model, batch, "cpu").dtype
    torch.float32
    """
    with torch.autocast(device_type, dtype=torch.bfloat16):
        if not isinstance(loss_fn, Objective):
            return loss_fn(model, batch).float()
        z = loss_fn.outputs(model, batch)  # (B, K) bfloat16
    return loss_fn.on_outputs(z.float(), batch)


def default_loss(task: str) -> Objective:
    """Return the standard objective for ``task`` (cross-entropy, squared error, reconstruction)."""
    return _OBJECTIVES[task]


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


def tensor_view(array: np.ndarray) -> Tensor:
    """Return a CPU tensor sharing memory with ``array``, read-only memory maps included.

    deepdx never writes to a dataset's arrays, so the warning PyTorch gives for a
    read-only array (``read_npz(..., mmap=True)``) does not apply and is silenced: data
    mapped from a file is trained on without a copy.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


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
    X = tensor_view(dataset.X)
    y = X if dataset.y is None else tensor_view(dataset.y)
    z = predict(model, X, batch_size=batch_size, device=device)  # (n, K)
    if loss_fn is None:
        loss = float(_OBJECTIVES[dataset.task].on_outputs(z, (X, y)))
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
