"""``DistanceMonitor``: how far the weights have moved from their initial values.

Symbols
-------
θ (P,)      all trainable parameters, flattened
θ_0 (P,)    their values when training started
d           relative distance ‖θ − θ_0‖ / ‖θ_0‖

A distance that stays near 0 after many steps means the weights are not moving: the
learning rate is too low, parameters are frozen, or the graph is detached from them
(DIAGNOSTICS.md rule B15, after Cockpit's Distance quantity).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from deepdx.diagnose.monitors._common import differences, global_norm, trainable_parameters
from deepdx.diagnose.signals import DISTANCE_FROM_INIT
from deepdx.train.callbacks import Callback, TrainState

__all__ = ["DistanceMonitor"]


class DistanceMonitor(Callback):
    """Log the relative distance ‖θ − θ_0‖ / ‖θ_0‖ from the initial weights after every epoch.

    Attributes
    ----------
    skipped_reason : str or None
        Why nothing was logged (the model has no trainable parameter), else None.

    Notes
    -----
    θ_0 is copied at the start of training (memory: one copy of the trainable weights) and
    kept in :meth:`state_dict`, so a resumed run measures from the same θ_0. Frozen
    parameters are left out. If θ_0 = 0 the ratio is inf or NaN and is logged as such.
    Cost per epoch: one ``_foreach_sub`` and one norm over the parameters, one sync (‖θ_0‖
    is computed once).

    Examples
    --------
    >>> import numpy as np, torch
    >>> from deepdx.data.dataset import from_arrays
    >>> from deepdx.train import fit
    >>> X = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    >>> data = from_arrays(X, (X[:, 0] > 0).astype(int))
    >>> h = fit(torch.nn.Linear(3, 2), data, epochs=3, callbacks=[DistanceMonitor()])
    >>> steps, d = h.step_series("distance_from_init")
    >>> steps.tolist(), bool(0 < d[0] < d[-1])
    ([1, 2, 3], True)
    """

    def __init__(self) -> None:
        self.skipped_reason: str | None = None
        self._theta0: list[Tensor] | None = None
        self._theta0_norm: Tensor | None = None  # ‖θ_0‖, computed once per θ_0

    def on_fit_start(self, state: TrainState) -> None:
        """Copy θ_0 at the start of a fresh run (a resumed run keeps the θ_0 it saved)."""
        params = trainable_parameters(state.model)
        self.skipped_reason = None if params else _NO_PARAMETERS
        if state.step == 0:
            self._theta0 = [p.detach().clone() for p in params]
        elif self._theta0 is not None:
            self._theta0 = [t.to(p.device) for t, p in zip(self._theta0, params, strict=True)]
        self._theta0_norm = None

    def on_epoch_end(self, state: TrainState) -> None:
        """Log ‖θ − θ_0‖ / ‖θ_0‖ at the epoch's last step."""
        if not self._theta0:
            return
        with torch.no_grad():
            if self._theta0_norm is None:
                self._theta0_norm = global_norm(self._theta0)  # () ‖θ_0‖
            params = trainable_parameters(state.model)
            moved = global_norm(differences(params, self._theta0))  # ‖θ − θ_0‖
            distance = moved / self._theta0_norm  # ()
        state.history.log_step(DISTANCE_FROM_INIT, distance.item(), step=state.step)

    def state_dict(self) -> dict[str, Any]:
        """Return θ_0 as a list of tensors."""
        return {"theta0": self._theta0}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore θ_0 saved by :meth:`state_dict`."""
        theta0 = state.get("theta0")
        self._theta0 = None if theta0 is None else list(theta0)
        self._theta0_norm = None


_NO_PARAMETERS = "the model has no trainable parameter, so the weights cannot move."
