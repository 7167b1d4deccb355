"""Nets on a data set: logistic regression, an MLP, and a deep autoencoder.

Each writes its objective through outputs the loss is convex in
(:mod:`deepdx.study.problem`): z stacks the net's outputs on the rows (flattened) over
√λ θ, and L = data loss + ½ ‖√λ θ‖², so the Gauss-Newton matrix of the split is that of
the data loss plus λI: exact for the regulariser. The L2 term covers every parameter,
biases included, so the logistic regression objective is strictly convex (the softmax is
otherwise invariant to adding one vector to every class's bias) and has exactly one
minimiser.

Data sets are the training split of :func:`deepdx.data.prepare` (``seed=0``),
standardized for classification; the autoencoder reads raw pixels in [0, 1]. All
problems work in float64.

Symbols
-------
==========  ===========================================================================
``X``       (n, *sample_shape) float64 inputs; ``targets`` (n,) labels or (n, d) pixels
``K``       outputs per row (classes, or pixels d for the autoencoder)
``θ``       (P,) all parameters; ``λ`` the L2 weight ``l2``
``z``       (b K + P,) the outputs on b rows, flattened, over √λ θ (just the outputs if λ = 0)
==========  ===========================================================================
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepdx._random import make_generator, numpy_rng, seeded_torch
from deepdx._validation import Interval, check_params
from deepdx.data import load, prepare
from deepdx.exceptions import DataError
from deepdx.nets import MLP
from deepdx.study.problem import Problem

__all__ = ["AutoencoderProblem", "LogisticRegressionProblem", "MLPProblem"]

_NONNEGATIVE = Interval(float, low=0.0)


class _DataProblem(Problem):
    """A net on n rows: z stacks its outputs (flattened) over √λ θ; L = data loss + ½‖√λ θ‖²."""

    X: Tensor  # (n, *sample_shape)
    targets: Tensor  # (n,) labels or (n, d) pixels
    l2: float
    width: int  # K, outputs per row

    def outputs(self, model: nn.Module, rows: Tensor | None = None) -> Tensor:
        """Return z = [model(X[rows]) flattened; √λ θ] (b K + P,), or the outputs if λ = 0."""
        x = self.X if rows is None else self.X[rows]  # (b, *sample_shape)
        z = model(x).reshape(-1)  # (b K,)
        if self.l2 == 0.0:
            return z
        theta = torch.cat([p.reshape(-1) for p in model.parameters()])  # (P,)
        return torch.cat([z, math.sqrt(self.l2) * theta])  # (b K + P,)

    def loss_on_outputs(self, z: Tensor, rows: Tensor | None = None) -> Tensor:
        """Return the data loss of the first b K entries plus ½ ‖rest‖²."""
        b = self.n_samples if rows is None else len(rows)
        targets = self.targets if rows is None else self.targets[rows]
        outputs = z[: b * self.width].view(b, self.width)  # (b, K)
        return self._data_loss(outputs, targets) + 0.5 * z[b * self.width :].square().sum()

    @abstractmethod
    def _data_loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Return the mean loss over the rows of ``outputs`` (b, K)."""


class _ClassifierProblem(_DataProblem):
    """Softmax cross-entropy of an MLP (``hidden=()`` is logistic regression) + (λ/2)‖θ‖²."""

    def __init__(
        self,
        data: str,
        *,
        hidden: Sequence[int],
        activation: str,
        l2: float,
        n_samples: int | None,
        seed: int,
    ) -> None:
        _check_data_options(type(self).__name__, l2=l2, n_samples=n_samples, seed=seed)
        X, y, self.class_names = _classification_data(data, n_samples, seed)
        self.X, self.targets = X, y
        self.n_samples, self.width = len(X), len(self.class_names)
        self.data, self.hidden, self.activation = data, tuple(hidden), activation
        self.l2, self.seed = float(l2), seed

    def init_model(self, seed: int = 0) -> nn.Module:
        """Return the MLP with weights drawn by the generator of ``seed``, zero biases."""
        with seeded_torch(seed):  # construction draws from the global RNG; keep it untouched
            model = MLP(
                tuple(self.X.shape[1:]), self.width, self.hidden, activation=self.activation
            )
        model.reset_parameters(generator=make_generator(seed))
        return model.double()

    def _data_loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Return the mean softmax cross-entropy."""
        return F.cross_entropy(outputs, targets)

    def settings(self) -> dict[str, Any]:
        """Return the constructor's arguments."""
        return {"data": self.data, "l2": self.l2, "n_samples": self.n_samples, "seed": self.seed}


class LogisticRegressionProblem(_ClassifierProblem):
    """Multinomial logistic regression with an L2 penalty on every parameter (convex).

    Parameters
    ----------
    data : str, default="digits"
        A classification data set name for :func:`deepdx.data.load`.
    l2 : float, default=1e-3
        λ >= 0 of (λ/2) ‖θ‖² (weights and biases).
    n_samples : int or None, default=None
        Use a seeded random subset of this many training rows; None uses them all.
    seed : int, default=0
        Seed of that subset.

    Examples
    --------
    >>> problem = LogisticRegressionProblem(n_samples=100)
    >>> model = problem.init_model(seed=0)
    >>> problem.n_samples, model(problem.X).shape
    (100, torch.Size([100, 10]))
    """

    name = "logreg"
    convex = True
    adam_lr = 0.01

    def __init__(
        self,
        data: str = "digits",
        *,
        l2: float = 1e-3,
        n_samples: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(
            data, hidden=(), activation="identity", l2=l2, n_samples=n_samples, seed=seed
        )

    def describe(self) -> str:
        """Return the problem in one sentence."""
        d = math.prod(self.X.shape[1:])
        return (
            f"L2-regularised logistic regression on {self.data} ({self.n_samples} rows, "
            f"{d} features, {self.width} classes), λ = {self.l2:g}"
        )


class MLPProblem(_ClassifierProblem):
    """Softmax cross-entropy of an MLP with an L2 penalty on every parameter (non-convex).

    Parameters
    ----------
    data : str, default="digits"
        A classification data set name for :func:`deepdx.data.load`.
    hidden : sequence of int, default=(16,)
        Hidden widths of the :class:`~deepdx.nets.MLP`.
    activation : str, default="tanh"
        Hidden activation.
    l2 : float, default=1e-4
        λ >= 0 of (λ/2) ‖θ‖².
    n_samples : int or None, default=None
        Use a seeded random subset of this many training rows; None uses them all.
    seed : int, default=0
        Seed of that subset (the weights are seeded by :meth:`init_model`).

    Examples
    --------
    >>> problem = MLPProblem(n_samples=50, hidden=(8,))
    >>> sum(p.numel() for p in problem.init_model(seed=3).parameters())
    610
    """

    name = "mlp"
    convex = False
    adam_lr = 0.01
    default_budget = 3.0

    def __init__(
        self,
        data: str = "digits",
        *,
        hidden: Sequence[int] = (16,),
        activation: str = "tanh",
        l2: float = 1e-4,
        n_samples: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(
            data, hidden=hidden, activation=activation, l2=l2, n_samples=n_samples, seed=seed
        )

    def describe(self) -> str:
        """Return the problem in one sentence."""
        return (
            f"MLP {list(self.hidden)} ({self.activation}) with softmax cross-entropy on "
            f"{self.data} ({self.n_samples} rows, {self.width} classes), λ = {self.l2:g}"
        )

    def settings(self) -> dict[str, Any]:
        """Return the constructor's arguments."""
        return {**super().settings(), "hidden": list(self.hidden), "activation": self.activation}


class AutoencoderProblem(_DataProblem):
    """A deep sigmoid autoencoder (Hinton & Salakhutdinov 2006; Martens 2010) on pixels.

    Parameters
    ----------
    data : str, default="curves"
        A data set with pixels in [0, 1] (``curves``, ``mnist5k``, ``digits``).
    encoder_sizes : sequence of int, default=(400, 200, 100, 50, 25, 6)
        Encoder widths; the decoder mirrors them (Martens' CURVES net).
    l2 : float, default=0.0
        λ >= 0 of (λ/2) ‖θ‖².
    n_samples : int or None, default=1000
        A seeded random subset of this many training images; None uses them all.
    init : str, default="auto"
        Weight-init scheme of the net.
    seed : int, default=0
        Seed of that subset.

    Notes
    -----
    f = (1/n) Σ_i Σ_j BCE(x̂_ij, x_ij) + (λ/2) ‖θ‖², with x̂ the reconstruction logits: the
    cross-entropy summed over the d pixels of an image, averaged over images.
    """

    name = "autoencoder"
    convex = False
    adam_lr = 1e-3
    default_budget = 20.0

    def __init__(
        self,
        data: str = "curves",
        *,
        encoder_sizes: Sequence[int] = (400, 200, 100, 50, 25, 6),
        l2: float = 0.0,
        n_samples: int | None = 1000,
        init: str = "auto",
        seed: int = 0,
    ) -> None:
        _check_data_options("AutoencoderProblem", l2=l2, n_samples=n_samples, seed=seed)
        self.X = _pixel_data(data, n_samples, seed)  # (n, *sample_shape)
        self.targets = self.X.reshape(len(self.X), -1)  # (n, d)
        self.n_samples, self.width = len(self.X), self.targets.shape[1]
        self.data, self.encoder_sizes, self.init = data, tuple(encoder_sizes), init
        self.l2, self.seed = float(l2), seed

    def init_model(self, seed: int = 0) -> nn.Module:
        """Return the autoencoder with weights drawn by the generator of ``seed``."""
        from deepdx.nets.autoencoder import DeepAutoencoder

        with seeded_torch(seed):
            model = DeepAutoencoder(tuple(self.X.shape[1:]), self.encoder_sizes, init=self.init)
        model.reset_parameters(generator=make_generator(seed))
        return model.double()

    def _data_loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Return the per-image summed pixel cross-entropy, averaged over images."""
        bce = F.binary_cross_entropy_with_logits(outputs, targets, reduction="sum")
        return bce / len(outputs)

    def describe(self) -> str:
        """Return the problem in one sentence."""
        sizes = [self.width, *self.encoder_sizes, *reversed(self.encoder_sizes[:-1]), self.width]
        return (
            f"deep autoencoder {'-'.join(map(str, sizes))} (sigmoid) on {self.data} "
            f"({self.n_samples} images), pixel cross-entropy, λ = {self.l2:g}"
        )

    def settings(self) -> dict[str, Any]:
        """Return the constructor's arguments."""
        return {
            "data": self.data,
            "encoder_sizes": list(self.encoder_sizes),
            "l2": self.l2,
            "n_samples": self.n_samples,
            "init": self.init,
            "seed": self.seed,
        }


# ----------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------


def _check_data_options(owner: str, *, l2: float, n_samples: int | None, seed: int) -> None:
    """Raise one InvalidParameterError for every invalid shared option."""
    check_params(
        owner,
        {"l2": l2, "n_samples": n_samples, "seed": seed},
        {
            "l2": _NONNEGATIVE,
            "n_samples": Interval(int, low=2, allow_none=True),
            "seed": Interval(int),
        },
    )


def _subset(n: int, n_samples: int | None, seed: int) -> np.ndarray:
    """Return sorted row indices: all n, or a seeded random ``n_samples`` of them."""
    if n_samples is None or n_samples >= n:
        return np.arange(n)
    return np.sort(numpy_rng(seed).choice(n, size=n_samples, replace=False))


def _classification_data(
    data: str, n_samples: int | None, seed: int
) -> tuple[Tensor, Tensor, tuple[str, ...]]:
    """Return standardized training X (n, ...) float64, labels (n,) int64, class names."""
    dataset = load(data)
    if dataset.task != "classification":
        raise DataError(
            f"the classification problems need a classification data set; {data!r} is "
            f"{dataset.task}. Use digits, mnist5k, iris, wine or breast_cancer."
        )
    train = prepare(dataset, seed=0)[0].train
    assert train.y is not None
    rows = _subset(train.n_samples, n_samples, seed)
    X = torch.from_numpy(train.X[rows]).double()  # (n, *sample_shape)
    return X, torch.from_numpy(train.y[rows]), train.class_names


def _pixel_data(data: str, n_samples: int | None, seed: int) -> Tensor:
    """Return raw training pixels (n, ...) float64 in [0, 1] of ``data``."""
    train = prepare(load(data), seed=0, standardize=False)[0].train
    rows = _subset(train.n_samples, n_samples, seed)
    X = train.X[rows]
    if X.min() < 0.0 or X.max() > 1.0:
        raise DataError(
            f"the autoencoder reconstructs pixels in [0, 1] with a cross-entropy; {data!r} "
            f"has values in [{X.min():.3g}, {X.max():.3g}]. Use curves, mnist5k or digits."
        )
    return torch.from_numpy(X).double()
