"""Flat parameter vectors: the one place where lists of tensors become vectors and back.

Curvature operators act on a flat vector θ of all parameters, so that conjugate gradients,
Lanczos and dense matrices see a plain ``(P,)`` tensor.

Symbols
-------
θ (P,)          all parameters, each flattened row-major and concatenated in order
θ_1 .. θ_m      the parameter tensors, with Σ_i numel(θ_i) = P
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from deepdx.curvature._checks import check_flat
from deepdx.exceptions import InvalidParameterError

__all__ = ["flatten", "unflatten"]


def flatten(tensors: Sequence[Tensor]) -> Tensor:
    """Concatenate tensors into one flat vector.

    Parameters
    ----------
    tensors : sequence of Tensor
        θ_1 .. θ_m of any shapes, same dtype and device.

    Returns
    -------
    Tensor
        θ of shape (P,), P = Σ_i numel(θ_i); a new tensor that keeps autograd history.

    Raises
    ------
    InvalidParameterError
        If ``tensors`` is empty.

    Examples
    --------
    >>> import torch
    >>> flatten([torch.ones(2, 3), torch.zeros(4)]).shape
    torch.Size([10])
    """
    tensors = list(tensors)
    if not tensors:
        raise InvalidParameterError(
            "`tensors` must hold at least one tensor; got an empty sequence."
        )
    return torch.cat([t.reshape(-1) for t in tensors])  # (P,)


def unflatten(vector: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """Split a flat vector into tensors shaped like ``like``; the inverse of :func:`flatten`.

    Parameters
    ----------
    vector : Tensor
        θ of shape (P,), P = Σ_i numel(like[i]).
    like : sequence of Tensor
        Tensors whose shapes (in order) give the pieces.

    Returns
    -------
    list of Tensor
        Views of ``vector``, ``out[i].shape == like[i].shape``.

    Raises
    ------
    InvalidParameterError
        If ``vector`` is not of shape (P,).

    Examples
    --------
    >>> import torch
    >>> parts = unflatten(torch.arange(10.0), [torch.ones(2, 3), torch.zeros(4)])
    >>> [tuple(p.shape) for p in parts]
    [(2, 3), (4,)]
    """
    like = list(like)
    sizes = [t.numel() for t in like]
    check_flat(vector, sum(sizes), "vector")
    return [piece.view_as(t) for piece, t in zip(vector.split(sizes), like, strict=True)]


def vector_spec(like: int | Tensor) -> tuple[int, torch.dtype, torch.device]:
    """Return (P, dtype, device) of the flat vectors an operator of size ``like`` acts on."""
    if isinstance(like, Tensor):
        return like.numel(), like.dtype, like.device
    if isinstance(like, bool) or not isinstance(like, int) or like < 1:
        raise InvalidParameterError(
            f"`like` must be an int >= 1 (the operator size) or an example vector; got {like!r}."
        )
    return like, torch.get_default_dtype(), torch.device("cpu")


def random_vector(
    n: int, dtype: torch.dtype, device: torch.device, generator: torch.Generator
) -> Tensor:
    """Return a standard-normal vector (n,) drawn from ``generator``, then moved to ``device``."""
    x = torch.randn(n, generator=generator, dtype=dtype, device=generator.device)  # (n,)
    return x.to(device)
