"""Capacity probes (diagnosis rules D2 and D3): short runs of wider, deeper and narrower nets.

Each probe trains one variant of the diagnosed model's spec from the same seed, for the
same number of epochs, and records its final training-probe and validation loss and score,
so the rules can tell whether more units or more layers help.

Variants
--------
==========  =====================================  ==========================================
name        ``mlp:H_1,...,H_L``                    ``conv:C_1,...,C_L`` (head 120,84 fixed)
==========  =====================================  ==========================================
base        as given                               as given
wider       2·H_l for every l                      2·C_l for every l
deeper      H_1, ..., H_L, H_L                     C_1, ..., C_L, C_L, if the image is large
                                                   enough for one more conv and pooling
narrower    max(1, H_l // 2)                       max(1, C_l // 2)
==========  =====================================  ==========================================

The activation of the spec is kept. A variant that cannot be built (a deeper conv net on a
small image, a narrower net whose widths are all 1) is left out, and
:func:`capacity_variants` says why. ``linear`` (no hidden layer) and custom models
(``FILE.py:FUNCTION`` or a user's module, spec ``"custom"``) cannot be varied:
:func:`capacity_probes` raises :class:`~deepdx.diagnose._budget.CheckSkipped` with the reason.

Symbols
-------
H_l     width of hidden layer l (mlp)
C_l     output channels of conv layer l (conv)
s_row   measured seconds per training row per epoch of a variant
"""

from __future__ import annotations

import functools
import logging
import math
import time
from typing import cast

from joblib import Parallel, delayed, effective_n_jobs
from torch import nn

from deepdx.data.dataset import Dataset
from deepdx.data.splits import Splits
from deepdx.diagnose._budget import (
    Budget,
    CheckSkipped,
    DeadlineStop,
    as_budget,
    budgeted_epochs,
    seconds_per_row,
)
from deepdx.diagnose.evidence import CapacityProbe
from deepdx.exceptions import NumericalError
from deepdx.nets import MLP, ConvNet, build_model, conv_plan, count_parameters, parse_spec
from deepdx.train.callbacks import Callback, TrainState
from deepdx.train.config import TrainConfig
from deepdx.train.history import History
from deepdx.train.loop import fit
from deepdx.train.objectives import LossFn

__all__ = ["PROBE_TRAIN_EVAL_SIZE", "capacity_probes", "capacity_variants"]

logger = logging.getLogger(__name__)

#: Training rows evaluated each epoch (eval mode) when the config sets no training probe.
PROBE_TRAIN_EVAL_SIZE = 2000
# Evaluating a row costs about a third of training on it (forward only).
_EVAL_COST = 1 / 3


def capacity_variants(
    spec: str, input_shape: tuple[int, ...], n_outputs: int
) -> tuple[dict[str, str], dict[str, str]]:
    """Return the variant specs of ``spec`` that can be built, and why the others cannot.

    Parameters
    ----------
    spec : str
        A built-in ``mlp`` or ``conv`` spec (see :data:`deepdx.nets.SPEC_GRAMMAR`).
    input_shape : tuple of int
        Shape of one sample.
    n_outputs : int
        Width of the output layer.

    Returns
    -------
    variants : dict of str to str
        ``base``, ``wider``, ``deeper``, ``narrower`` (those that exist) -> spec, in this
        order.
    skipped : dict of str to str
        Variant name -> why it was left out.

    Raises
    ------
    CheckSkipped
        For ``linear``, ``FILE.py:FUNCTION`` and ``custom`` specs, which cannot be varied.
    InvalidParameterError
        If ``spec`` does not follow the grammar.

    Examples
    --------
    >>> variants, skipped = capacity_variants("mlp:64,32:tanh", (8,), 3)
    >>> for name, variant in variants.items():
    ...     print(name, variant)
    base mlp:64,32:tanh
    wider mlp:128,64:tanh
    deeper mlp:64,32,32:tanh
    narrower mlp:32,16:tanh
    >>> variants, skipped = capacity_variants("conv:4,8,8", (1, 8, 8), 10)
    >>> list(variants), "too small" in skipped["deeper"]
    (['base', 'wider', 'narrower'], True)
    """
    kind = "custom" if spec.strip() == "custom" else parse_spec(spec).kind
    if kind in ("custom", "file", "linear"):
        raise CheckSkipped(_CANNOT_VARY[kind].format(spec=spec))
    parsed = parse_spec(spec)
    base = build_model(spec, input_shape, n_outputs, seed=0)
    sizes = base.channels if isinstance(base, ConvNet) else cast(MLP, base).hidden
    candidates = {
        "base": sizes,
        "wider": tuple(2 * s for s in sizes),
        "deeper": (*sizes, sizes[-1]),
        "narrower": tuple(max(1, s // 2) for s in sizes),
    }
    skipped = {}
    if candidates["narrower"] == sizes:
        skipped["narrower"] = f"every width of {spec!r} is already 1; it cannot be halved."
    if isinstance(base, ConvNet) and not _fits(base, len(sizes) + 1):
        _, height, width = base.input_shape
        skipped["deeper"] = (
            f"an image of {height}x{width} pixels is too small for {len(sizes) + 1} conv "
            "layers (each halves the map); only the other variants were probed."
        )
    suffix = f":{parsed.activation}" if parsed.activation else ""
    variants = {
        name: f"{parsed.kind}:{','.join(map(str, widths))}{suffix}"
        for name, widths in candidates.items()
        if name not in skipped
    }
    return variants, skipped


_CANNOT_VARY = {
    "custom": (
        "capacity probes vary the width and depth of a built-in spec, but the model is a "
        "custom module; pass a spec such as mlp:256 or conv to compare capacities."
    ),
    "file": (
        "capacity probes vary the width and depth of a built-in spec, but {spec!r} is a "
        "custom FILE.py:FUNCTION model; build wider and deeper versions yourself and "
        "diagnose each."
    ),
    "linear": (
        "capacity probes vary hidden layers, and {spec!r} has none; diagnose an mlp spec "
        "(such as mlp:64) to compare capacities."
    ),
}


def _fits(net: ConvNet, n_layers: int) -> bool:
    """Whether ``n_layers`` conv layers leave a non-empty map on ``net``'s input."""
    return all(
        size >= 1
        for side in net.input_shape[1:]
        for _, size in conv_plan(side, n_layers, net.kernel_size)
    )


def capacity_probes(
    spec: str,
    splits: Splits,
    *,
    config: TrainConfig,
    budget: Budget | float | None = None,
    seed: int = 0,
    n_jobs: int = 1,
    loss_fn: LossFn | None = None,
) -> list[CapacityProbe]:
    """Train the base, wider, deeper and narrower variants of ``spec`` briefly (D2, D3).

    Parameters
    ----------
    spec : str
        The diagnosed model's spec (``mlp:256``, ``conv:6,16``...).
    splits : Splits
        Train and validation data (test is not used).
    config : TrainConfig
        Settings of every probe. Early stopping is switched off, so every probe trains the
        same epochs; ``train_eval_size`` (``PROBE_TRAIN_EVAL_SIZE`` when unset) training
        rows are scored in eval mode each epoch, comparable with validation.
    budget : Budget or float, optional
        Time allowance in seconds (None: unlimited). A pilot run of the base measures its
        cost, each variant's is taken as proportional to its parameters (at least the
        base's), and the epochs of all probes are then cut, all alike, until they fit.
    seed : int, default=0
        Seed of every variant's initial weights.
    n_jobs : int, default=1
        Parallel probes through ``joblib.Parallel``; pick the backend (loky, Dask, Ray) with
        ``joblib.parallel_config``. Thread-based backends are not supported: models are
        built from torch's global random state, which threads share.
    loss_fn : callable, optional
        Objective; the task's default when None.

    Returns
    -------
    list of CapacityProbe
        ``base`` first, then ``wider``, ``deeper``, ``narrower`` (those that exist, see
        :func:`capacity_variants`). A probe that diverges has NaN losses and no scores.

    Raises
    ------
    CheckSkipped
        If the spec cannot be varied, or the budget cannot pay for one epoch of every probe.

    Notes
    -----
    Cost: Σ_variants epochs · (n_train + (n_val + n_probe) / 3) · s_row, shared by the
    workers, with s_row of a variant ≈ s_row(base) · max(1, n_params / n_params(base)).

    Examples
    --------
    >>> import numpy as np
    >>> from deepdx.data import from_arrays, split
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 4))  # (100, 4)
    >>> parts = split(from_arrays(X, (X[:, 0] > 0).astype(int)), seed=0)
    >>> probes = capacity_probes("mlp:8", parts, config=TrainConfig(epochs=2))
    >>> [(p.name, p.spec, p.epochs) for p in probes][:2]
    [('base', 'mlp:8', 2), ('wider', 'mlp:16', 2)]
    """
    train = splits.train
    variants, skipped = capacity_variants(spec, train.sample_shape, train.n_outputs)
    for name, reason in skipped.items():
        logger.info("capacity probe %s skipped: %s", name, reason)
    probe_rows = min(train.n_samples, config.train_eval_size or PROBE_TRAIN_EVAL_SIZE)
    config = config.replace(early_stopping=None, train_eval_size=probe_rows)
    deadline = as_budget(budget)
    epochs = _probe_epochs(variants, splits, config, deadline, n_jobs, seed, loss_fn)
    config = config.replace(epochs=epochs)
    probes = Parallel(n_jobs=n_jobs)(
        delayed(_probe)(name, variant, splits, config, seed, loss_fn, deadline)
        for name, variant in variants.items()
    )
    return cast(list[CapacityProbe], probes)


def _probe_epochs(
    variants: dict[str, str],
    splits: Splits,
    config: TrainConfig,
    budget: Budget | float | None,
    n_jobs: int,
    seed: int,
    loss_fn: LossFn | None,
) -> int:
    """Epochs every probe may train so that all of them fit the budget."""

    def seconds_per_epoch() -> float:
        train = splits.train
        rows = train.n_samples + _EVAL_COST * (splits.val.n_samples + config.train_eval_size)
        base = _factory(variants["base"], train, seed)
        s_row = seconds_per_row(base, train, config=config, loss_fn=loss_fn, seed=seed)
        n_base = count_parameters(base())
        scale = sum(
            max(1.0, count_parameters(_factory(variant, train, seed)()) / n_base)
            for variant in variants.values()
        )
        workers = max(1, min(effective_n_jobs(n_jobs), len(variants)))
        return rows * s_row * scale / workers

    return budgeted_epochs(
        budget,
        config.epochs,
        seconds_per_epoch,
        check="capacity probes",
        pronoun="they",
        work=f"the {len(variants)} probes",
    )


def _factory(spec: str, train: Dataset, seed: int) -> functools.partial[nn.Module]:
    """Return a model factory for ``spec`` on ``train``'s shapes."""
    return functools.partial(build_model, spec, train.sample_shape, train.n_outputs, seed=seed)


def _probe(
    name: str,
    spec: str,
    splits: Splits,
    config: TrainConfig,
    seed: int,
    loss_fn: LossFn | None,
    deadline: Budget,
) -> CapacityProbe:
    """Train one variant and return its final training-probe and validation scores.

    A probe still training when ``deadline`` runs out (its epochs were sized by an
    estimate) stops after that epoch and reports no final scores.
    """
    model = _factory(spec, splits.train, seed)()
    keeper = _KeepHistory()
    stop = DeadlineStop(deadline, "the capacity probes' time budget was spent")
    start = time.perf_counter()
    try:
        fit(
            model,
            splits.train,
            splits.val,
            config=config,
            loss_fn=loss_fn,
            callbacks=[keeper, stop],
        )
    except NumericalError as exc:
        logger.info("capacity probe %s diverged: %s", name, exc)
    seconds = time.perf_counter() - start
    assert keeper.history is not None
    epochs = keeper.history.epochs
    finished = len(epochs) == config.epochs
    last = epochs[-1] if finished else None
    return CapacityProbe(
        name=name,
        spec=spec,
        n_params=count_parameters(model, trainable_only=True),
        train_loss=last.extra["train_eval_loss"] if last else math.nan,
        val_loss=last.val_loss if last and last.val_loss is not None else math.nan,
        train_score=last.train_metric if last else None,
        val_score=last.val_metric if last else None,
        epochs=len(epochs),
        seconds=seconds,
    )


class _KeepHistory(Callback):
    """Keeps a reference to the run's history, which survives a diverging run."""

    def __init__(self) -> None:
        self.history: History | None = None

    def on_fit_start(self, state: TrainState) -> None:
        """Remember the history."""
        self.history = state.history
