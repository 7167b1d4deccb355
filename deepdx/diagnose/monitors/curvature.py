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
import warnings
from collections.abc import Sequence
from typing import Any

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
    epochs : sequence of int, optional
        Measure at the end of these epochs (1-based). By default: epoch 1, the middle
        epoch ``(n_epochs + 1) // 2`` and the last epoch trained (also after an early stop).
        A measurement at step 0, before training, is always taken.
    probe : sequence of Tensor, optional
        A fixed batch ``(X, y)``; by default the first minibatch of the run is copied.
    probe_size : int, default=256
        Rows of the probe batch kept at most; the cost of a measurement grows with it.
    method : {"power", "lanczos"}, default="power"
        Eigensolver of :func:`deepdx.curvature.top_eigenvalues`.
    max_iter : int, default=20
        Most Hessian-vector products per eigensolve.
    tol : float, default=1e-3
        Relative residual ‖H v − λ v‖ / |λ| at which λ_max is accepted.
    seed : int, default=0
        Seeds the start vector (a fresh ``torch.Generator`` per measurement) and torch's
        global RNG during the measurement (restored after).

    Attributes
    ----------
    skipped_reason : str or None
        Why nothing was logged (the model has no trainable parameter), else None.

    Raises
    ------
    InvalidParameterError
        If a parameter is out of range or ``method`` is unknown.

    Notes
    -----
    The model is put in eval mode for the measurement: with dropout active every
    Hessian-vector product would see a different random loss, so the iteration would not
    converge to anything, and batch norm in training mode would update its running
    statistics, which would change the run. With eval mode L(θ) is one fixed function.

    When the solver misses ``tol`` within ``max_iter`` products its last Rayleigh quotient
    is logged anyway (it lies in [λ_min, λ_max]) and a ``lambda_max_not_converged`` event
    records the step. Cost: about ``max_iter`` (twice that when the dominant eigenvalue is
    negative) Hessian-vector products, each about 2-3 gradient evaluations on the probe.
    No ``.grad`` is touched (products use ``torch.autograd.grad``).

    Examples
    --------
    >>> import numpy as np, torch
    >>> from deepdx.data.dataset import from_arrays
    >>> from deepdx.train import fit
    >>> X = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    >>> data = from_arrays(X, (X[:, 0] > 0).astype(int))
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    >>> monitor = CurvatureMonitor(max_iter=200, tol=1e-6)
    >>> h = fit(model, data, epochs=3, batch_size=16, callbacks=[monitor])
    >>> steps, values = h.step_series("lambda_max")
    >>> steps.tolist(), bool((values > 0).all())
    ([0, 4, 8, 12], True)
    """

    def __init__(
        self,
        epochs: Sequence[int] | None = None,
        *,
        probe: Sequence[Tensor] | None = None,
        probe_size: int = 256,
        method: str = "power",
        max_iter: int = 20,
        tol: float = 1e-3,
        seed: int = 0,
    ) -> None:
        check_params(
            "CurvatureMonitor",
            {"probe_size": probe_size, "method": method, "max_iter": max_iter, "tol": tol},
            _CONSTRAINTS,
        )
        _check_epochs(epochs)
        self.epochs = None if epochs is None else tuple(epochs)
        self.probe, self.probe_size, self.method = probe, probe_size, method
        self.max_iter, self.tol, self.seed = max_iter, tol, seed
        self.skipped_reason: str | None = None
        self._probe: tuple[Tensor, ...] | None = None
        self._restored = False
        self._initial_pending = False
        self._schedule: frozenset[int] = frozenset()
        self._last_step = -1

    # ------------------------------------------------------------------ hooks of fit
    def on_fit_start(self, state: TrainState) -> None:
        """Resolve the epoch schedule and set up the probe batch."""
        n = state.n_epochs
        self._schedule = frozenset(self.epochs or (1, (n + 1) // 2))
        has_params = bool(trainable_parameters(state.model))
        self.skipped_reason = None if has_params else _NO_PARAMETERS
        if not self._restored:
            self._probe = None if self.probe is None else take_probe(self.probe, self.probe_size)
            self._last_step = -1
        if self._probe is not None:
            self._probe = tuple(t.to(state.device) for t in self._probe)
        self._restored = False
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
        if state.epoch in self._schedule:
            self._measure(state)

    def on_fit_end(self, state: TrainState) -> None:
        """With the default schedule, measure the final weights unless just measured."""
        if self.epochs is None and state.step > 0 and self._last_step != state.step:
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
        self._restored = True

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
        """Return (λ_max, converged) of the probe loss at the current weights."""
        model, loss_fn = state.model, state.loss_fn
        with measuring(model, self.seed), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = hessian_top_eigenvalue(
                lambda: loss_fn(model, probe),
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
    """Raise unless ``epochs`` is None or a sequence of ints >= 1."""
    if epochs is None or (
        isinstance(epochs, Sequence)
        and not isinstance(epochs, str)
        and all(isinstance(e, int) and not isinstance(e, bool) and e >= 1 for e in epochs)
    ):
        return
    raise InvalidParameterError(
        f"`epochs` of CurvatureMonitor must be a sequence of epoch numbers >= 1 (1-based) or "
        f"None for the default schedule; got {epochs!r}. Pass e.g. epochs=(1, 5, 10)."
    )
