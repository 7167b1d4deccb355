"""``CurvatureMonitor``: the top Hessian eigenvalue of the training loss on a probe batch.

Symbols
-------
θ (P,)       all trainable parameters, flattened
L(θ)         training loss on a fixed probe batch, model in eval mode
H (P, P)     Hessian ∇²_θ L, seen only through Hessian-vector products H v
λ_max        largest eigenvalue of H
η            learning rate of the first parameter group

Signals
-------
=========================  ==========================================================
``lambda_max``             λ_max (:data:`deepdx.diagnose.signals.LAMBDA_MAX`)
``lr_times_lambda_max``    η·λ_max (:data:`LR_TIMES_LAMBDA_MAX`), for the stability test
=========================  ==========================================================

Gradient descent with step η is stable along the top eigendirection only while η·λ_max < 2
(Cohen et al. 2021, "edge of stability"; DIAGNOSTICS.md rule B6). For adaptive optimizers
(Adam) the relevant sharpness is that of the preconditioned Hessian, so η·λ_max is context
there, not a verdict.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from deepdx._random import make_generator
from deepdx._validation import Interval, OneOf, check_params
from deepdx.curvature import METHODS, hessian_top_eigenvalue
from deepdx.diagnose.monitors._common import measuring, take_probe, trainable_parameters
from deepdx.diagnose.signals import LAMBDA_MAX
from deepdx.exceptions import ConvergenceWarning, InvalidParameterError
from deepdx.train.callbacks import Callback, TrainState

__all__ = ["LR_TIMES_LAMBDA_MAX", "NOT_CONVERGED_EVENT", "CurvatureMonitor"]

logger = logging.getLogger(__name__)

#: η·λ_max: learning rate of the first parameter group times the top Hessian eigenvalue.
LR_TIMES_LAMBDA_MAX = "lr_times_lambda_max"

#: Kind of the history event recorded when the eigensolver misses ``tol``.
NOT_CONVERGED_EVENT = "lambda_max_not_converged"


class CurvatureMonitor(Callback):
    """Log λ_max, the top Hessian eigenvalue of the loss on a probe batch, on a schedule.

    Parameters
    ----------
    epochs : sequence of int, default=()
        Also measure at the end of these epochs (1-based), e.g. ``(1, 5)``.
    final : bool, default=True
        Measure the final weights when training ends (also after an early stop).
    probe : sequence of Tensor, optional
        A fixed batch ``(X, y)``; by default the first minibatch of the run is copied.
    probe_size : int, default=64
        Rows of the probe batch kept at most: λ_max is that of the loss on a minibatch of
        this size. The cost of a measurement grows linearly with it.
    method : {"lanczos", "power"}, default="lanczos"
        Eigensolver of :func:`deepdx.curvature.top_eigenvalues`.
    max_iter : int, default=20
        Most Hessian-vector products per eigensolve (the Krylov dimension for Lanczos).
    tol : float, default=1e-2
        Relative residual ‖H v − λ v‖ / |λ| at which λ_max is accepted.
    seed : int, default=0
        Seeds the random start vector (a fresh ``torch.Generator`` per measurement, so each
        measurement is reproducible); the global RNG is forked and restored.

    Attributes
    ----------
    skipped_reason : str or None
        Why nothing was logged (the model has no trainable parameter), else None.

    Raises
    ------
    InvalidParameterError
        If a parameter is out of range, ``method`` is unknown or ``epochs`` holds something
        other than epoch numbers >= 1.

    Notes
    -----
    A measurement at step 0, before training, is always taken; it is the one a run that
    diverges (and so never reaches its end) still has. Each measurement costs one forward
    and backward pass that records its graph (the forward also tells whether the probe loss
    is finite) plus 4-15 Hessian-vector products (each about 0.7 of a training step on a
    64-row probe) and Lanczos' vector work, about 10-20 training steps in all on a
    784-256-10 MLP; hence the sparse default schedule. Add epochs for long runs, where the
    cost is relatively small.

    The model is put in eval mode for the measurement: with dropout active every
    Hessian-vector product would see a different random loss, so the iteration would not
    converge to anything, and batch norm in training mode would update its running
    statistics, which would change the run. With eval mode L(θ) is one fixed function.

    Lanczos is the default because it needs far fewer products: on a 784-256-10 MLP it
    met tol=1e-2 in 4-12 products with λ_max within 3e-4 (relative) of a converged value,
    where 20 power-iteration products were still up to 7% off (power iteration converges
    at the rate λ_2 / λ_1; a Ritz value's error is of the order of its squared residual).
    When the solver misses ``tol`` the last estimate (a lower bound on λ_max) is logged
    anyway and a ``lambda_max_not_converged`` event records the step. When the probe loss
    is NaN or infinite, NaN is logged without running the solver. No ``.grad`` is touched
    (the products use ``torch.autograd.grad``).

    Examples
    --------
    >>> import numpy as np, torch
    >>> from deepdx.data.dataset import from_arrays
    >>> from deepdx.train import fit
    >>> X = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    >>> data = from_arrays(X, (X[:, 0] > 0).astype(int))
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    >>> h = fit(model, data, epochs=3, batch_size=16, callbacks=[CurvatureMonitor(epochs=(1,))])
    >>> steps, values = h.step_series("lambda_max")
    >>> steps.tolist(), bool((values > 0).all())
    ([0, 4, 12], True)
    """

    def __init__(
        self,
        epochs: Sequence[int] = (),
        *,
        final: bool = True,
        probe: Sequence[Tensor] | None = None,
        probe_size: int = 64,
        method: str = "lanczos",
        max_iter: int = 20,
        tol: float = 1e-2,
        seed: int = 0,
    ) -> None:
        check_params(
            "CurvatureMonitor",
            {"probe_size": probe_size, "method": method, "max_iter": max_iter, "tol": tol},
            _CONSTRAINTS,
        )
        _check_epochs(epochs)
        self.epochs, self.final = frozenset(epochs), final
        self.probe, self.probe_size, self.method = probe, probe_size, method
        self.max_iter, self.tol, self.seed = max_iter, tol, seed
        self.skipped_reason: str | None = None
        self._probe: tuple[Tensor, ...] | None = None
        self._initial_pending = False
        self._last_step = -1

    # ------------------------------------------------------------------ hooks of fit
    def on_fit_start(self, state: TrainState) -> None:
        """Set up the probe batch (a resumed run keeps the one it saved)."""
        has_params = bool(trainable_parameters(state.model))
        self.skipped_reason = None if has_params else _NO_PARAMETERS
        if state.step == 0:  # a fresh run; a resumed one keeps what it saved
            self._probe = None if self.probe is None else take_probe(self.probe, self.probe_size)
            self._last_step = -1
        if self._probe is not None:
            self._probe = tuple(t.to(state.device) for t in self._probe)
        self._initial_pending = state.step == 0 and has_params

    def on_step_begin(self, state: TrainState) -> None:
        """Copy the first minibatch as the probe; measure once before the first step."""
        if self._probe is None and state.batch is not None:
            self._probe = take_probe(state.batch, self.probe_size)
        if self._initial_pending:
            self._initial_pending = False
            self._measure(state)

    def on_epoch_end(self, state: TrainState) -> None:
        """Measure at the end of a scheduled epoch."""
        if state.epoch in self.epochs:
            self._measure(state)

    def on_fit_end(self, state: TrainState) -> None:
        """Measure the final weights, unless ``final`` is off or they were just measured."""
        if self.final and state.step > 0 and self._last_step != state.step:
            self._measure(state)

    def state_dict(self) -> dict[str, Any]:
        """Return the probe batch and the step of the latest measurement."""
        probe = None if self._probe is None else list(self._probe)
        return {"probe": probe, "last_step": self._last_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        probe = state.get("probe")
        self._probe = None if probe is None else tuple(probe)
        self._last_step = int(state.get("last_step", -1))

    # ------------------------------------------------------------------ measurement
    def _measure(self, state: TrainState) -> None:
        """Compute λ_max at the current weights and log it with η·λ_max."""
        if self._probe is None or self.skipped_reason is not None:
            return
        value, converged = self._lambda_max(state, self._probe)
        state.history.log_step(LAMBDA_MAX, value, step=state.step)
        state.history.log_step(LR_TIMES_LAMBDA_MAX, state.lr * value, step=state.step)
        if not converged:
            state.history.log_event(
                NOT_CONVERGED_EVENT, step=state.step, max_iter=self.max_iter, tol=self.tol
            )
            logger.info("lambda_max at step %d missed tol=%g", state.step, self.tol)
        self._last_step = state.step

    def _lambda_max(self, state: TrainState, probe: tuple[Tensor, ...]) -> tuple[float, bool]:
        """Return (λ_max, converged) of the probe loss at the current weights (NaN if L is)."""
        model, loss_fn = state.model, state.loss_fn
        with measuring(model), warnings.catch_warnings(record=True) as caught:
            with torch.enable_grad():
                loss = loss_fn(model, probe)  # () its graph serves every product
            if not bool(torch.isfinite(loss)):  # NaN or inf weights or data: no curvature
                return math.nan, True
            warnings.simplefilter("always")
            value = hessian_top_eigenvalue(
                lambda: loss,
                trainable_parameters(model),
                method=self.method,
                max_iter=self.max_iter,
                tol=self.tol,
                generator=make_generator(self.seed),
            )
        converged = True
        for record in caught:  # keep only the solver's own verdict, pass the rest on
            if issubclass(record.category, ConvergenceWarning):
                converged = False
            else:
                warnings.warn_explicit(
                    record.message, record.category, record.filename, record.lineno
                )
        return value, converged


_CONSTRAINTS = {
    "probe_size": Interval(int, low=1),
    "method": OneOf(METHODS),
    "max_iter": Interval(int, low=1),
    "tol": Interval(float, low=0, low_open=True),
}

_NO_PARAMETERS = "the model has no trainable parameter, so there is no Hessian to measure."


def _check_epochs(epochs: object) -> None:
    """Raise unless ``epochs`` is a sequence of ints >= 1."""
    if (
        isinstance(epochs, Sequence)
        and not isinstance(epochs, str)
        and all(isinstance(e, int) and not isinstance(e, bool) and e >= 1 for e in epochs)
    ):
        return
    raise InvalidParameterError(
        f"`epochs` of CurvatureMonitor must be a sequence of epoch numbers >= 1 (1-based); "
        f"got {epochs!r}. Pass e.g. epochs=(1, 5), or () for step 0 and the end only."
    )
