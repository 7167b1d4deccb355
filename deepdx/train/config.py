"""``TrainConfig``: every setting of a training run in one frozen, JSON-able dataclass.

The resolved config is stored in every checkpoint and report, so a run can be rebuilt
and resumed from its directory alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from deepdx._validation import Interval, OneOf, check_keys, check_params

__all__ = ["NAN_POLICIES", "PRECISIONS", "SCHEDULES", "TrainConfig"]

SCHEDULES: tuple[str, ...] = ("constant", "step", "cosine", "exponential", "plateau")
NAN_POLICIES: tuple[str, ...] = ("raise", "skip_step", "rollback")
PRECISIONS: tuple[str, ...] = ("32-true", "bf16-mixed")
#: Short names of ``precision`` (PyTorch Lightning's, and ``32`` as the CLI reads ``--set``).
_PRECISION_ALIASES: dict[object, str] = {"32": "32-true", 32: "32-true", "bf16": "bf16-mixed"}


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`deepdx.train.fit`.

    Parameters
    ----------
    epochs : int, default=20
        Passes over the training data.
    batch_size : int or None, default=None
        Minibatch size; None means 64 for stochastic optimizers and the whole training set
        for full-batch ones (``lbfgs``, ``gd``, ``cg``, ``newton``).
    optimizer : str, default="adam"
        A name from :func:`deepdx.train.optimizer_names` (``sgd``, ``momentum``,
        ``nesterov``, ``adam``, ``adamw``, ``lbfgs``, ``hf``, ...). ``hf`` (Hessian-free)
        uses Gauss-Newton products when the loss is an
        :class:`~deepdx.train.objectives.Objective` (every default loss is one) and Hessian
        products for a plain ``loss_fn``; ``hf-hessian`` always uses Hessian products.
    lr : float or None, default=None
        Learning rate; None picks the optimizer's default: 3e-3 for adam (three times
        torch's 1e-3, which suits the short default runs; see ``BENCHMARKS.md``), 0.1 for
        sgd, 0.01 for momentum and nesterov, 1.0 for the line-search methods.
    momentum : float, default=0.9
        Momentum of ``momentum`` and ``nesterov``.
    weight_decay : float, default=0.0
        L2 penalty coefficient (decoupled for ``adamw``).
    schedule : str, default="constant"
        Learning-rate schedule, stepped once per epoch: ``constant``, ``step`` (x0.1 at 1/2
        and 3/4 of the epochs), ``cosine`` (to 0 at the last epoch), ``exponential``
        (x0.95 per epoch) or ``plateau`` (x0.1 after 3 epochs without val-loss progress).
    clip_grad_norm : float or None, default=None
        Clip the global gradient norm to this value before each step.
    early_stopping : int or None, default=None
        Patience in epochs on the validation loss; the best weights are restored.
    train_eval_size : int, default=0
        Evaluate this many training samples in eval mode each epoch, so train and
        validation loss and metric are comparable (used by the diagnosis engine).
    device : str, default="cpu"
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
    seed : int, default=0
        Seeds the minibatch order and dropout.
    deterministic : bool, default=False
        Call ``torch.use_deterministic_algorithms(True)`` during the run.
    nan_policy : {"raise", "skip_step", "rollback"}, default="raise"
        What a non-finite minibatch loss or gradient does. ``raise``: a ``NumericalError``
        at the end of the epoch, naming the first bad step (no per-step cost).
        ``skip_step``: that step's update is not applied and a ``skip_step`` event is
        recorded. ``rollback``: the run returns to the start of the epoch with every
        learning rate halved (up to 8 times) and records a ``rollback`` event. The last two
        check every step, at the cost of one device synchronisation per step.
    detect_anomaly : bool, default=False
        Debug mode: run under ``torch.autograd.detect_anomaly`` so the first backward
        operation that produces a NaN is named in the ``NumericalError`` (slow: use it to
        find a bug, not to train).
    distributed : bool, default=False
        Data-parallel training over the processes started by ``torchrun`` (see
        :mod:`deepdx.train.distributed`); ``batch_size`` is the global batch.
    precision : {"32-true", "bf16-mixed"}, default="32-true"
        PyTorch Lightning's names (``"32"`` and ``"bf16"`` are accepted too).
        ``bf16-mixed``: each training forward pass runs under
        ``torch.autocast(device, dtype=torch.bfloat16)`` and the loss is computed in
        float32; parameters, gradients, optimizer state, checkpoints and evaluation stay
        float32. Refused for float64 models and for the line-search and curvature
        optimizers (``gd``, ``cg``, ``lbfgs``, ``torch-lbfgs``, ``newton``, ``hf``,
        ``hf-hessian``), whose loss comparisons and curvature products need full precision.
    curvature_fraction : float, default=1.0
        Hessian-free only: curvature products use the first ``ceil(curvature_fraction *
        B)`` rows of each (randomly ordered) minibatch of B rows, a cheaper curvature
        minibatch (Martens 2010 uses a fraction of the gradient batch).

    Examples
    --------
    >>> TrainConfig().replace(epochs=3, lr=0.1).epochs
    3
    """

    epochs: int = 20
    batch_size: int | None = None
    optimizer: str = "adam"
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"
    clip_grad_norm: float | None = None
    early_stopping: int | None = None
    train_eval_size: int = 0
    device: str = "cpu"
    seed: int = 0
    deterministic: bool = False
    nan_policy: str = "raise"
    detect_anomaly: bool = False
    distributed: bool = False
    precision: str = "32-true"
    curvature_fraction: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.precision, str | int) and self.precision in _PRECISION_ALIASES:
            object.__setattr__(self, "precision", _PRECISION_ALIASES[self.precision])
        check_params("TrainConfig", dataclasses.asdict(self), _CONSTRAINTS)

    def replace(self, **changes: Any) -> TrainConfig:
        """Return a copy with ``changes`` applied; unknown keys raise with a did-you-mean."""
        check_keys("TrainConfig", changes, self.field_names())
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a JSON-able dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build a config from :meth:`to_dict` output; unknown keys raise."""
        check_keys("TrainConfig", data, cls.field_names())
        return cls(**data)

    @classmethod
    def field_names(cls) -> list[str]:
        """Names of all settings."""
        return [f.name for f in dataclasses.fields(cls)]


_CONSTRAINTS = {
    "epochs": Interval(int, low=1),
    "batch_size": Interval(int, low=1, allow_none=True),
    "lr": Interval(float, low=0, low_open=True, allow_none=True),
    "momentum": Interval(float, low=0, high=1, high_open=True),
    "weight_decay": Interval(float, low=0),
    "schedule": OneOf(SCHEDULES),
    "clip_grad_norm": Interval(float, low=0, low_open=True, allow_none=True),
    "early_stopping": Interval(int, low=1, allow_none=True),
    "train_eval_size": Interval(int, low=0),
    "seed": Interval(int, low=0),
    "deterministic": OneOf((True, False)),
    "nan_policy": OneOf(NAN_POLICIES),
    "detect_anomaly": OneOf((True, False)),
    "distributed": OneOf((True, False)),
    "precision": OneOf(PRECISIONS),
    "curvature_fraction": Interval(float, low=0, low_open=True, high=1),
}
