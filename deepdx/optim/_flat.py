"""View an optimizer's parameter groups as one flat vector and move it along a line.

The full-batch methods of this package (steepest descent, nonlinear CG, L-BFGS) all
iterate ``x_{k+1} = x_k + t_k d_k`` on the vector ``x`` of every parameter. This module
holds what they share: the flat view of the parameters, hyperparameter validation, the
guarded evaluation of the closure, the call to a line search, and the descent loop that
a subclass fills in with its direction ``d_k``.

Symbols
-------
=========  ==============================================================================
``x``      (n,) every parameter of every group, flattened and concatenated in group order
``g``      (n,) the gradient ``∇f(x)``, same layout (zeros for a parameter without grad)
``d``      (n,) search direction, ``g'd < 0``
``t``      step length along ``d``
``D``      (n,) the learning-rate metric ``lr_group / lr_max`` of each entry (below)
=========  ==============================================================================

Several parameter groups
------------------------
One step moves every group together, so every setting except ``lr`` must be the same in
all groups (a mismatch raises :class:`~deepdx.exceptions.InvalidParameterError`). The
learning rates act as a fixed diagonal metric: with ``lr_max = max lr_group`` and
``D = diag(lr_group / lr_max)``, each method uses ``D g`` wherever the textbook uses
``g`` as a direction (steepest descent ``d = -D g``; nonlinear CG preconditioned by ``D``;
L-BFGS with ``H0 = gamma D``), and ``lr_max`` plays the part of the one-group ``lr``.
With one group, or equal rates, ``D = I`` exactly. Without a line search each group then
takes its own plain step ``x_group <- x_group - lr_group g_group``.

Non-finite values
-----------------
A NaN or infinite loss or gradient where an iteration starts raises
:class:`~deepdx.exceptions.NumericalError` naming the iteration and the quantity; the
parameters stay where that value was computed. Inside a line search a non-finite trial
point is a step too long: the search backs off, and the parameters end on a finite point.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.optim import Optimizer

from deepdx._validation import Constraint, Interval, param_problems
from deepdx.exceptions import InvalidParameterError, NumericalError
from deepdx.optim.line_search import LineSearch, ObjFn, armijo_backtracking, strong_wolfe

__all__ = ["FlatOptimizer", "scaled", "unscaled"]

LINE_SEARCHES = ("armijo", "strong_wolfe")


# ----------------------------------------------------------------------------------------
# Shared hyperparameter constraints
# ----------------------------------------------------------------------------------------

POSITIVE = Interval(float, low=0.0, low_open=True)
NONNEGATIVE = Interval(float, low=0.0)
UNIT = Interval(float, low=0.0, high=1.0, low_open=True, high_open=True)
AT_LEAST_ONE = Interval(int, low=1)
LINE_SEARCH_CALLABLE = "a line-search callable"
"""How a ``line_search`` constraint names the callables it accepts besides the names."""


def scaled(v: Tensor, scale: Tensor | None) -> Tensor:
    """Return ``D v`` for the learning-rate metric ``D`` (``v`` itself when ``D = I``)."""
    return v if scale is None else v * scale  # (n,)


def unscaled(v: Tensor, scale: Tensor | None) -> Tensor:
    """Return ``D⁻¹ v`` for the learning-rate metric ``D`` (``v`` itself when ``D = I``)."""
    return v if scale is None else v / scale  # (n,)


# ----------------------------------------------------------------------------------------
# The base optimizer
# ----------------------------------------------------------------------------------------


class FlatOptimizer(Optimizer):
    """Base of the optimizers that move all parameters as one vector along a line.

    Subclasses declare ``_constraints`` (hyperparameter name -> :class:`Constraint`) and
    implement :meth:`_direction`; they may refine :meth:`_initial_step`,
    :meth:`_remember` and :meth:`_line_search_budget`. :meth:`step` runs, per iteration,

    1. ``d = _direction(state, g, D)``; stop if ``g'd > -tolerance_change``.
    2. ``t = _initial_step(state, g'd, lr_max)``.
    3. With a line search, accept a step ``t`` along ``d`` (which also returns ``f`` and
       ``g`` there); without one, ``x <- x + t d`` and evaluate the closure again
       (except on the last iteration, as ``torch.optim.LBFGS`` does).
    4. ``_remember(state, d, t, g_old, g'd)``, then stop when ``max_iter`` or
       ``max_eval`` is reached, ``max|g| <= tolerance_grad``, ``max|t d| <=
       tolerance_change`` or ``|f_new - f_old| < tolerance_change``.

    The algorithm state lives in ``self.state`` under the first parameter, so
    ``state_dict()`` / ``load_state_dict()`` save and restore it; stored tensors are
    replaced, never changed in place, so an earlier ``state_dict()`` stays valid. It holds
    ``n_iter`` (iterations so far) and ``func_evals`` (closure calls so far). Adding a
    parameter group after construction changes ``n`` and clears that state.
    """

    _constraints: ClassVar[dict[str, Constraint]] = {}
    _line_search_key: ClassVar[str] = "line_search"

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Validate a parameter group and add it; see the module notes on several groups."""
        settings = {**self.defaults, **param_group}
        _raise_if_any(self._setting_problems(settings))
        super().add_param_group(param_group)
        problems = self._tensor_problems()
        if problems:
            self.param_groups.pop()
            _raise_if_any(problems)
        self.state.clear()

    def _setting_problems(self, settings: dict[str, Any]) -> list[str]:
        """Every broken constraint of a group, and every setting that differs from group 0."""
        owner = type(self).__name__
        problems = param_problems(owner, settings, self._constraints)
        wolfe = {k: settings[k] for k in ("c1", "c2") if k in settings}
        if len(wolfe) == 2 and not problems and not settings["c1"] < settings["c2"]:
            problems.append(
                f"{owner} needs c1 < c2; got c1={settings['c1']}, c2={settings['c2']}. The usual "
                "values are c1=1e-4 with c2=0.9 (quasi-Newton) or c2=0.1 (nonlinear CG)."
            )
        first = self.param_groups[0] if self.param_groups else settings
        for name in self.defaults:
            if name != "lr" and settings[name] != first[name]:
                problems.append(
                    f"`{name}` of {owner} is {first[name]!r} in parameter group 0 but "
                    f"{settings[name]!r} in group {len(self.param_groups)}; only `lr` may "
                    f"differ between groups because one step moves them together. Pass "
                    f"`{name}` to the {owner} constructor instead."
                )
        return problems

    def _tensor_problems(self) -> list[str]:
        """Why the parameters cannot form one flat real vector, if they cannot."""
        params, owner = self._params, type(self).__name__
        if not params:
            return []
        first = params[0]
        if any(not p.is_floating_point() for p in params):
            return [f"{owner} needs real floating-point parameters; got an integer or complex one."]
        odd = [p for p in params if (p.dtype, p.device) != (first.dtype, first.device)]
        if odd:
            return [
                f"{owner} moves all parameters as one flat vector, so they must share one dtype "
                f"and device; got {first.dtype} on {first.device} and {odd[0].dtype} on "
                f"{odd[0].device}. Move the model with .to(dtype, device) first."
            ]
        return []

    # ------------------------------------------------------------------------------------
    # Flat views
    # ------------------------------------------------------------------------------------

    @property
    def _params(self) -> list[Tensor]:
        """Every parameter of every group, in order."""
        return [p for group in self.param_groups for p in group["params"]]

    def _flat_x(self) -> Tensor:
        """Return a copy of x, shape (n,)."""
        return torch.cat([p.detach().reshape(-1) for p in self._params])  # (n,)

    def _flat_grad(self) -> Tensor:
        """Return a copy of g, shape (n,); a parameter without ``.grad`` contributes zeros."""
        views = [
            p.new_zeros(p.numel())
            if p.grad is None
            else (p.grad.to_dense() if p.grad.is_sparse else p.grad).reshape(-1)
            for p in self._params
        ]
        return torch.cat(views)  # (n,)

    def _set_x(self, x: Tensor) -> None:
        """Copy the flat vector ``x`` (n,) into the parameters."""
        params = self._params
        for p, chunk in zip(params, x.split([p.numel() for p in params]), strict=True):
            p.copy_(chunk.view_as(p))

    def _metric(self) -> tuple[float, Tensor | None]:
        """Return ``lr_max`` and the diagonal ``D`` (n,) of ``lr_group / lr_max`` (None if I)."""
        rates = [group["lr"] for group in self.param_groups]
        lr_max = max(rates)
        if all(rate == lr_max for rate in rates):
            return lr_max, None
        first = self._params[0]
        return lr_max, torch.cat(
            [
                torch.full(
                    (p.numel(),), group["lr"] / lr_max, dtype=first.dtype, device=first.device
                )
                for group in self.param_groups
                for p in group["params"]
            ]
        )  # (n,)

    def _algorithm_state(self) -> dict[str, Any]:
        """Return the optimizer-wide state, stored under the first parameter."""
        return self.state[self._params[0]]

    # ------------------------------------------------------------------------------------
    # The descent loop
    # ------------------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor]) -> Tensor:
        """Run up to ``max_iter`` iterations and return the loss at the starting point.

        Parameters
        ----------
        closure : callable
            ``closure() -> loss``: zeroes the gradients, computes the scalar loss, calls
            ``loss.backward()`` and returns the loss.

        Returns
        -------
        Tensor
            The loss ``closure()`` returned before the step.

        Raises
        ------
        NumericalError
            If the loss or gradient where an iteration starts is NaN or infinite, or a
            line search finds no finite point.
        """
        closure = self._checked(closure)
        group, state = self.param_groups[0], self._algorithm_state()
        loss, f, g = self._evaluate(closure, state)
        if g.abs().max() <= group["tolerance_grad"]:
            return loss
        lr, scale = self._metric()
        n_evals, max_iter = 1, group["max_iter"]
        for k in range(1, max_iter + 1):
            state["n_iter"] += 1
            d = self._direction(state, g, scale)  # (n,)
            gtd = float(g.dot(d))
            if gtd > -group["tolerance_change"]:
                break
            t = self._initial_step(state, g=g, gtd=gtd, lr=lr)
            f_new, g_new, t, evals = self._move(
                closure, d, state, t=t, f=f, g=g, gtd=gtd, n_evals=n_evals, last=k == max_iter
            )
            n_evals += evals
            self._remember(state, d=d, t=t, g=g, gtd=gtd)
            if k == max_iter or self._should_stop(group, n_evals, f_new - f, g_new, t * d):
                break
            f, g = f_new, g_new
        return loss

    def _checked(self, closure: Callable[[], Tensor]) -> Callable[[], Tensor]:
        """Return the closure wrapped to run with grad enabled; raise if it is not callable."""
        if not callable(closure):
            raise InvalidParameterError(
                f"{type(self).__name__}.step needs a closure that zeroes the gradients, "
                f"computes the loss, calls backward and returns the loss; got {closure!r}."
            )
        state = self._algorithm_state()
        state.setdefault("n_iter", 0)
        state.setdefault("func_evals", 0)
        return torch.enable_grad()(closure)

    def _evaluate(
        self, closure: Callable[[], Tensor], state: dict[str, Any]
    ) -> tuple[Tensor, float, Tensor]:
        """Call the closure at x; return (loss, f, g (n,)); raise if f or g is not finite."""
        loss = closure()
        f, g = float(loss), self._flat_grad()  # g: (n,)
        state["func_evals"] += 1
        what = _nonfinite(f, g)
        if what:
            raise NumericalError(
                f"{type(self).__name__} iteration {state['n_iter']}: {what} at the current "
                "parameters; expected finite values. Look for NaN/inf in the data and the "
                "model's outputs, or lower `lr` if the loss was finite before."
            )
        return loss, f, g

    def _move(
        self,
        closure: Callable[[], Tensor],
        d: Tensor,
        state: dict[str, Any],
        *,
        t: float,
        f: float,
        g: Tensor,
        gtd: float,
        n_evals: int,
        last: bool,
    ) -> tuple[float, Tensor, float, int]:
        """Step along ``d`` (by line search or by ``t``); return (f, g, t, closure calls)."""
        group = self.param_groups[0]
        x, search = self._flat_x(), group[self._line_search_key]
        if search is None:
            self._set_x(torch.add(x, d, alpha=t))  # (n,)
            if last:  # as torch.optim.LBFGS: the next step() evaluates the new point
                return f, g, t, 0
            _, f, g = self._evaluate(closure, state)
            return f, g, t, 1
        try:
            budget = self._line_search_budget(group, n_evals)
            f, g, t, calls = self._bound_line_search(search, budget)(
                self._ray(closure), x, t, d, f=f, g=g, gtd=gtd
            )
        except NumericalError as err:
            self._set_x(x)
            raise NumericalError(
                f"{type(self).__name__} iteration {state['n_iter']}: {err}"
            ) from err
        state["func_evals"] += calls
        self._set_x(torch.add(x, d, alpha=t))  # (n,) the accepted point
        return f, g, t, calls

    def _ray(self, closure: Callable[[], Tensor]) -> ObjFn:
        """Return ``obj_fn(x, t, d)`` that evaluates the closure at ``x + t d``."""

        def obj_fn(x: Tensor, t: float, d: Tensor) -> tuple[float, Tensor]:
            self._set_x(torch.add(x, d, alpha=t))  # (n,)
            return float(closure()), self._flat_grad()

        return obj_fn

    def _bound_line_search(self, search: str | LineSearch, budget: int) -> LineSearch:
        """Bind the group's ``c1``, ``c2`` and the evaluation budget to a named line search."""
        if not isinstance(search, str):
            return search
        group = self.param_groups[0]
        if search == "strong_wolfe":
            return functools.partial(
                strong_wolfe,
                c1=group["c1"],
                c2=group["c2"],
                tolerance_change=group["tolerance_change"],
                max_ls=budget,
            )
        return functools.partial(armijo_backtracking, c1=group["c1"], max_ls=budget)

    def _should_stop(
        self, group: dict[str, Any], n_evals: int, df: float, g: Tensor, s: Tensor
    ) -> bool:
        """Whether ``max_eval`` (calls after the first) is spent, or g, s = t d or df is tiny."""
        max_eval = group.get("max_eval")
        return (
            (max_eval is not None and n_evals - 1 >= max_eval)
            or bool(g.abs().max() <= group["tolerance_grad"])
            or bool(s.abs().max() <= group["tolerance_change"])
            or abs(df) < group["tolerance_change"]
        )

    # ------------------------------------------------------------------------------------
    # What a method supplies
    # ------------------------------------------------------------------------------------

    def _direction(self, state: dict[str, Any], g: Tensor, scale: Tensor | None) -> Tensor:
        """Return the search direction d (n,) at gradient g (n,)."""
        raise NotImplementedError

    def _initial_step(self, state: dict[str, Any], *, g: Tensor, gtd: float, lr: float) -> float:
        """Return ``lr`` for a fixed step, else N&W eq. 3.60 ``t_prev g_prev'd_prev / g'd``.

        Eq. 3.60 falls back to ``lr`` on the first iteration and after a zero step.
        """
        if self.param_groups[0][self._line_search_key] is None:
            return lr
        t_prev, gtd_prev = state.get("t", 0.0), state.get("gtd", 0.0)
        t0 = t_prev * gtd_prev / gtd
        return t0 if math.isfinite(t0) and t0 > 0.0 else lr

    def _line_search_budget(self, group: dict[str, Any], n_evals: int) -> int:
        """Most closure calls the next line search may make."""
        return group["max_ls"]

    def _remember(
        self, state: dict[str, Any], *, d: Tensor, t: float, g: Tensor, gtd: float
    ) -> None:
        """Store what the next iteration needs from this one (here ``t`` and ``g'd``)."""
        state["t"], state["gtd"] = t, gtd


def _nonfinite(f: float, g: Tensor) -> str:
    """Name the non-finite quantity among the loss ``f`` and the gradient ``g`` (n,), if any."""
    if not math.isfinite(f):
        return f"the loss is {f}"
    bad = int((~torch.isfinite(g)).sum())
    return f"the gradient has {bad} non-finite entries of {g.numel()}" if bad else ""


def _raise_if_any(problems: Iterable[str]) -> None:
    """Raise one InvalidParameterError that lists every problem."""
    message = " ".join(problems)
    if message:
        raise InvalidParameterError(message)
