"""Data-parallel training across processes with ``torch.distributed`` (DDP).

Start one process per device with ``torchrun`` (it sets ``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT``); ``fit(..., distributed=True)`` then joins the
process group (gloo on CPU, NCCL on CUDA), wraps the model in
``DistributedDataParallel`` and gives each rank an equal share of every minibatch::

    global batch  idx = perm[i*B : (i+1)*B]      # the same seeded permutation on every rank
    rank r takes  idx[r::world_size]             # (B / world_size,) rows

DDP averages the ranks' gradients, so with ``B`` divisible by the world size each step is
the single-process step on the same global batch. Only rank 0 writes checkpoints, logs and
reports. Every collective runs under a timeout.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from deepdx.exceptions import InvalidParameterError

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DistributedContext",
    "all_agree",
    "init_distributed",
    "is_main_process",
    "mean_across_ranks",
]

#: Seconds any collective may wait before the run fails (a dead peer never hangs a job).
DEFAULT_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in the process group."""

    rank: int
    world_size: int
    device: torch.device

    def shard(self, index: Tensor) -> Tensor:
        """Return this rank's rows of a global minibatch's indices, ``index[rank::world]``."""
        return index[self.rank :: self.world_size]

    def barrier(self) -> None:
        """Wait until every rank reaches this point."""
        dist.barrier()

    def wrap(self, model: nn.Module) -> nn.Module:
        """Wrap ``model`` in ``DistributedDataParallel`` for this rank's device."""
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def init_distributed(
    device: str | torch.device = "cpu", *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> DistributedContext:
    """Join (or reuse) the default process group and return this process's context.

    Parameters
    ----------
    device : str or torch.device, default="cpu"
        ``cpu`` uses the gloo backend; ``cuda`` uses NCCL and this rank's local GPU
        (``LOCAL_RANK``).
    timeout_s : float, default=300.0
        Timeout of every collective.

    Raises
    ------
    InvalidParameterError
        If no process group exists and the ``torchrun`` environment variables are missing.
    """
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        missing = [
            v for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ
        ]
        if missing:
            raise InvalidParameterError(
                f"distributed training needs a process group, but {', '.join(missing)} "
                "is not set; start the script with `torchrun --nproc-per-node=N ...` or call "
                "torch.distributed.init_process_group first."
            )
        dist.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo",
            timeout=datetime.timedelta(seconds=timeout_s),
        )
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return DistributedContext(dist.get_rank(), dist.get_world_size(), device)


def is_main_process() -> bool:
    """Return whether this process is rank 0 (or the only process)."""
    return not dist.is_initialized() or dist.get_rank() == 0


def mean_across_ranks(values: Tensor) -> Tensor:
    """Return the element-wise mean of ``values`` over all ranks (identity when alone)."""
    if not dist.is_initialized():
        return values
    total = values.clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / dist.get_world_size()


def all_agree(flag: bool, device: torch.device) -> bool:
    """Return True only if ``flag`` is True on every rank (identity when alone)."""
    if not dist.is_initialized():
        return flag
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())
