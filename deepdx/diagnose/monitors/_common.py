"""Helpers shared by the training monitors: layers by type, schedules, probes, measuring mode.

Symbols
-------
θ_1 .. θ_m    the trainable parameter tensors of a model
‖·‖           the Euclidean norm of all entries, over one tensor or a list of tensors
k             a schedule period in optimizer steps (a monitor measures when step % k == 0)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from deepdx._random import seeded_torch

__all__ = [
    "WEIGHT_LAYER_TYPES",
    "copy_",
    "differences",
    "global_norm",
    "host_floats",
    "measuring",
    "norm_list",
    "norms",
    "on_schedule",
    "subtract_",
    "take_probe",
    "trainable_parameters",
    "weight_layers",
]

#: Module types whose ``weight`` the monitors treat as a layer's weight matrix or kernel.
WEIGHT_LAYER_TYPES: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)


def weight_layers(model: nn.Module) -> list[tuple[str, Tensor]]:
    """Return ``(qualified name, weight)`` of every trainable Linear / Conv layer of ``model``."""
    return [
        (name, module.weight)
        for name, module in model.named_modules()
        if isinstance(module, WEIGHT_LAYER_TYPES)
        and isinstance(module.weight, nn.Parameter)  # not a parametrized (computed) weight
        and module.weight.requires_grad
    ]


def trainable_parameters(model: nn.Module) -> list[Tensor]:
    """Return the parameters of ``model`` that require grad, in ``parameters()`` order."""
    return [p for p in model.parameters() if p.requires_grad]


def on_schedule(step: int, every: int) -> bool:
    """Return whether a monitor with period ``every`` measures at optimizer step ``step``.

    Step 1 (the gradient at the initial weights) is always measured, then every multiple
    of ``every``.
    """
    return step == 1 or step % every == 0


# torch's multi-tensor ("foreach") kernels are private names but the ones torch.nn.utils
# and torch.optim use: one kernel launch for a whole list of tensors instead of one each.
_foreach_norm = torch._foreach_norm  # pyright: ignore[reportPrivateImportUsage]
_foreach_sub = torch._foreach_sub  # pyright: ignore[reportPrivateImportUsage]
_foreach_sub_ = torch._foreach_sub_  # pyright: ignore[reportPrivateImportUsage]
_foreach_copy_ = torch._foreach_copy_  # pyright: ignore[reportPrivateImportUsage]


def norm_list(tensors: Sequence[Tensor]) -> list[Tensor]:
    """Return the Euclidean norm of each tensor as a list of 0-d tensors, with one kernel."""
    return list(_foreach_norm(tensors if isinstance(tensors, list) else list(tensors)))


def norms(tensors: Sequence[Tensor]) -> Tensor:
    """Return the Euclidean norm of each tensor, shape (m,), with one multi-tensor kernel."""
    return torch.stack(norm_list(tensors))  # (m,)


def host_floats(tensors: Sequence[Tensor]) -> list[float]:
    """Return the values of 0-d tensors as Python floats, with at most one device sync.

    On the CPU each value is read directly (``item``: no kernel); elsewhere the tensors are
    stacked and copied to the host in one transfer.
    """
    if not tensors or tensors[0].is_cpu:
        return [t.item() for t in tensors]
    return torch.stack(list(tensors)).tolist()


def differences(tensors: Sequence[Tensor], others: Sequence[Tensor]) -> list[Tensor]:
    """Return ``[t - o for t, o in zip(tensors, others)]`` with one multi-tensor kernel."""
    return list(_foreach_sub(list(tensors), list(others)))


def copy_(targets: Sequence[Tensor], sources: Sequence[Tensor]) -> None:
    """Copy ``sources[i]`` into ``targets[i]`` for every i, with one multi-tensor kernel."""
    _foreach_copy_(list(targets), list(sources))


def subtract_(tensors: Sequence[Tensor], others: Sequence[Tensor]) -> None:
    """Subtract ``others[i]`` from ``tensors[i]`` in place for every i, with one kernel."""
    _foreach_sub_(list(tensors), list(others))


def global_norm(tensors: Sequence[Tensor]) -> Tensor:
    """Return ‖(t_1, .., t_m)‖ as a 0-d tensor on the tensors' device, without a sync.

    The m per-tensor norms, then one norm of those: the same two kernels
    ``clip_grad_norm_`` uses. Non-finite entries give NaN or inf, as is.
    """
    return torch.linalg.vector_norm(norms(tensors))  # ()


def take_probe(batch: Sequence[Tensor], size: int) -> tuple[Tensor, ...]:
    """Return a detached copy of the first ``size`` rows of every tensor in ``batch``."""
    return tuple(t[:size].detach().clone() for t in batch)


@contextlib.contextmanager
def measuring(model: nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode and fork torch's global RNG; restore both afterwards.

    Each module's own ``training`` flag is restored (not a blanket ``model.train()``), so a
    submodule the user froze in eval mode stays so. A module that draws random numbers even
    in eval mode draws from the run's (seeded) RNG state, which is then restored, so a
    measurement is reproducible and never shifts dropout masks or batch order.
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with seeded_torch(None):  # fork without reseeding: ~10 µs instead of ~250
            yield
    finally:
        for module, mode in modes:
            module.training = mode
