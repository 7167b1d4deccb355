"""``NeuralNetEstimator``: the scikit-learn estimator contract over :func:`deepdx.train.fit`.

Every deepdx estimator (the MLP and conv-net classifiers and regressor here; autoencoders,
RBMs and the rest later) derives from this one base. It stores its keyword arguments and
nothing else in ``__init__``; ``fit`` validates them against a declarative table, validates
the data with scikit-learn's own functions (so their messages are scikit-learn's, word for
word), builds the module, and hands the run to :func:`deepdx.train.fit`.

==================  ====================================================================
estimator           what :func:`deepdx.train.fit` receives
==================  ====================================================================
max_iter            ``epochs``
batch_size          ``batch_size`` (None: 64, or the whole set for full-batch optimizers)
learning_rate       ``lr`` (None: the optimizer's default)
optimizer           ``optimizer``, a name from :func:`deepdx.train.optimizer_names`
weight_decay        ``weight_decay``
early_stopping      ``early_stopping = n_iter_no_change`` on a held-out
                    ``validation_fraction`` of the training data (best weights restored)
random_state        ``seed``, which also seeds the module's initial weights
device              ``device``
verbose             a :class:`~deepdx.train.ProgressBar` callback
callbacks           ``callbacks``, deep-copied at every ``fit``
``<route>__<name>`` see :mod:`deepdx.estimators`
==================  ====================================================================

Data flow
---------
X (n, d) rows, or (n, *sample_shape) arrays, which are flattened to rows first
-> ``validate_data`` (float32, a private copy) -> the subclass lays each row out as one
sample of shape ``input_shape_`` -> :class:`~deepdx.data.Dataset` -> ``fit``.
"""

from __future__ import annotations

import copy
from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Self

import numpy as np
import torch
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_array, check_is_fitted, validate_data
from torch import Tensor, nn

from deepdx._random import seeded_torch
from deepdx._validation import Interval, OneOf, check_params
from deepdx.data.dataset import Dataset, Task
from deepdx.estimators._params import (
    Predicate,
    is_device,
    is_random_state,
    is_routed,
    module_args,
    plain,
    split_routed,
)
from deepdx.exceptions import InvalidParameterError, NotFittedError
from deepdx.nets.mlp import HiddenLayer
from deepdx.train.callbacks import Callback
from deepdx.train.config import TrainConfig
from deepdx.train.history import History
from deepdx.train.loop import fit as train
from deepdx.train.objectives import predict as forward
from deepdx.train.optimizers import optimizer_names
from deepdx.train.progress import ProgressBar

__all__ = ["NeuralNetEstimator"]

# scikit-learn has no type hints, and pyright would infer its parameters' types from their
# defaults (X="no_validation"); these aliases type its validators as taking anything.
_sk_validate_data: Callable[..., Any] = validate_data
_sk_check_array: Callable[..., Any] = check_array


def _is_verbose(value: object) -> bool:
    """Return True for a bool, an int >= 0, or a callable sink."""
    return callable(value) or (isinstance(value, int) and value >= 0)


def _is_callbacks(value: object) -> bool:
    """Return True for None or a sequence of :class:`Callback` instances."""
    if value is None:
        return True
    if not isinstance(value, Sequence) or isinstance(value, str):
        return False
    return all(isinstance(c, Callback) for c in value)


_COMMON_CONSTRAINTS: dict[str, Any] = {
    "max_iter": Interval(int, low=1),
    "batch_size": Interval(int, low=1, allow_none=True),
    "learning_rate": Interval(float, low=0, low_open=True, allow_none=True),
    "weight_decay": Interval(float, low=0),
    "early_stopping": OneOf((True, False)),
    "validation_fraction": Interval(float, low=0, high=1, low_open=True, high_open=True),
    "n_iter_no_change": Interval(int, low=1),
    "random_state": Predicate(is_random_state, "None, an int in [0, 2**32) or a RandomState"),
    "verbose": Predicate(_is_verbose, "a bool, an int >= 0 or a callable taking a line"),
    "warm_start": OneOf((True, False)),
    "device": Predicate(is_device, 'a torch device such as "cpu" or "cuda:0"'),
    "callbacks": Predicate(_is_callbacks, "None or a sequence of deepdx.train.Callback"),
}


@dataclass(frozen=True)
class _Plan:
    """The validated settings of one ``fit`` call."""

    config: TrainConfig
    module_kwargs: dict[str, Any]
    seed: int


class NeuralNetEstimator(TransformerMixin, BaseEstimator, metaclass=ABCMeta):
    """Base of the deepdx estimators: parameters, validation, training, ``transform``.

    Subclasses set ``_task``, ``_module_class`` and ``_own_constraints``, and implement
    :meth:`_build_module` and :meth:`_module_defaults`; classifiers and regressors add
    ``predict``. Their ``__init__`` lists every parameter (scikit-learn reads the signature)
    and only stores it.

    Parameters
    ----------
    max_iter : int, default=200
        Epochs: passes over the training data.
    batch_size : int or None, default=None
        Minibatch size; None means 64, or the whole set for full-batch optimizers (``lbfgs``).
    learning_rate : float or None, default=None
        Step size; None takes the optimizer's default (3e-3 for ``adam``).
    optimizer : str, default="adam"
        A name from :func:`deepdx.train.optimizer_names`.
    weight_decay : float, default=0.0
        L2 penalty coefficient.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (stratified for classifiers), stop after
        ``n_iter_no_change`` epochs without a lower validation loss, keep the best weights.
    validation_fraction : float, default=0.1
        Share of the training data held out when ``early_stopping``.
    n_iter_no_change : int, default=10
        Patience of early stopping, in epochs.
    random_state : int, RandomState or None, default=None
        Seeds the initial weights, the minibatch order, dropout and the validation split.
        An int makes ``fit`` deterministic on CPU; None draws fresh entropy.
    verbose : bool, int or callable, default=0
        Nonzero prints one line per epoch to stderr; a callable receives each line instead.
    warm_start : bool, default=False
        Let ``fit`` continue from the current weights (``n_iter_`` and ``history_`` grow).
        The optimizer's state (momentum, Adam moments) starts afresh at each call.
    device : str, default="cpu"
        Torch device to train on; predictions come back as NumPy arrays.
    callbacks : sequence of Callback or None, default=None
        Extra :class:`~deepdx.train.Callback` objects (monitors, TensorBoard); each ``fit``
        works on deep copies, so ``fit`` stays idempotent.
    **routed_params
        ``module__<name>``, ``optimizer__<name>`` and ``train__<name>`` settings; see
        :mod:`deepdx.estimators`. They appear in ``get_params`` and work with
        ``set_params``, ``clone`` and ``GridSearchCV``.

    Attributes
    ----------
    module_ : nn.Module
        The trained network.
    history_ : History
        Per-epoch records and per-step series of every epoch trained.
    n_iter_ : int
        Epochs trained, over all warm-started calls.
    input_shape_ : tuple of int
        Shape of one sample as the module sees it.
    n_features_in_ : int
        Features per row seen in ``fit``.
    feature_names_in_ : ndarray of str
        Column names, when ``X`` was a DataFrame with string column names.

    Notes
    -----
    Training runs in float32. ``predict``, ``predict_proba`` and ``transform`` run a float64
    copy of the trained network on float64 inputs, so a sample's result is the same whether
    it comes alone or in a batch (float32 kernels choose their algorithm, and so their
    rounding, by batch size) and outputs are float64, as in scikit-learn.
    """

    _task: ClassVar[Task] = "unsupervised"
    module_: nn.Module
    history_: History
    n_iter_: int
    input_shape_: tuple[int, ...]
    n_features_in_: int
    _module_class: ClassVar[type[nn.Module]]
    _own_constraints: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        *,
        max_iter: int = 200,
        batch_size: int | None = None,
        learning_rate: float | None = None,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        random_state: int | np.random.RandomState | None = None,
        verbose: bool | int | Callable[[str], None] = 0,
        warm_start: bool = False,
        device: str = "cpu",
        callbacks: Sequence[Callback] | None = None,
        **routed_params: object,
    ) -> None:
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.device = device
        self.callbacks = callbacks
        self._routed_params = routed_params

    # ------------------------------------------------------------------ parameters
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Return the parameters, routed ones (``module__hidden``, ...) included.

        Parameters
        ----------
        deep : bool, default=True
            Also return the parameters of nested estimators (there are none).

        Returns
        -------
        dict
            Parameter names mapped to their values, as given.
        """
        return {**super().get_params(deep=deep), **self._routed_params}

    def set_params(self, **params: Any) -> Self:
        """Set parameters, routed ones included; they are checked at ``fit``.

        Parameters
        ----------
        **params
            Top-level names (unknown ones raise at once, as in scikit-learn) or routed
            ``<route>__<name>`` keys.

        Returns
        -------
        self
        """
        routed = {k: v for k, v in params.items() if is_routed(k) or k in self._routed_params}
        super().set_params(**{k: v for k, v in params.items() if k not in routed})
        self._routed_params = {**self._routed_params, **routed}
        return self

    # ------------------------------------------------------------------ training
    def fit(self, X: ArrayLike, y: ArrayLike | None = None) -> Self:
        """Train the network on ``X`` (and ``y``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, *sample_shape)
            Training data; never modified, and no reference to it is kept.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs), optional
            Targets (required by classifiers and regressors).

        Returns
        -------
        self

        Raises
        ------
        InvalidParameterError
            Listing every invalid parameter.
        ValueError
            For invalid data, with scikit-learn's messages.
        NumericalError
            If the training loss becomes NaN or infinite.
        """
        plan = self._plan()
        warm = bool(self.warm_start) and hasattr(self, "module_")
        rows, sample_shape = _flatten_samples(X)
        rows, targets = self._validate_xy(rows, y, reset=not warm)
        if not warm:
            self.input_shape_ = self._fit_input_shape(rows.shape[1], sample_shape, plan)
        data = self._dataset(self._to_samples(rows, sample_shape), targets)
        train_data, val_data = self._split(data, plan.seed)
        if not warm:
            with seeded_torch(plan.seed):
                self.module_ = self._build_module(data.n_outputs, plan.module_kwargs)
        offset = self.n_iter_ if warm else 0
        config = plan.config.replace(seed=plan.seed + offset)
        history = train(self.module_, train_data, val_data, config=config, callbacks=self._runs())
        self.history_ = _continue_history(self.history_, history) if warm else history
        self.n_iter_ = len(self.history_.epochs)
        return self

    def transform(self, X: ArrayLike) -> np.ndarray:
        """Return the activations h_L of the last hidden layer.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, *sample_shape)
            Data with the features seen in ``fit``.

        Returns
        -------
        ndarray of shape (n_samples, n_units), float64
            h_L = f(a_L) of the last hidden layer, in eval mode (no dropout), flattened per
            sample: ``n_units`` is its width for an MLP, C·H·W of its map for a conv layer.

        Raises
        ------
        NotFittedError
            Before ``fit``.
        InvalidParameterError
            If the network has no hidden layer.
        """
        self._check_fitted()
        _, hidden = self._forward(X, capture=self._last_hidden_layer().name)
        return torch.cat(hidden).numpy()  # (n, n_units)

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _module_defaults(self) -> dict[str, Any]:
        """Return the module constructor arguments that come from top-level parameters."""

    @abstractmethod
    def _build_module(self, n_outputs: int, module_kwargs: dict[str, Any]) -> nn.Module:
        """Build the untrained module for samples of shape ``input_shape_``."""

    def _validate_xy(
        self, X: ArrayLike, y: ArrayLike | None, *, reset: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Validate the training data; return float32 rows and encoded targets."""
        rows = _sk_validate_data(self, X, reset=reset, dtype=np.float32, order="C", copy=True)
        return rows, None

    def _fit_input_shape(
        self, n_features: int, sample_shape: tuple[int, ...] | None, plan: _Plan
    ) -> tuple[int, ...]:
        """Return the shape of one sample as the module will see it."""
        return (n_features,)

    def _to_samples(self, rows: np.ndarray, sample_shape: tuple[int, ...] | None) -> np.ndarray:
        """Lay validated rows (n, n_features) out as module inputs (n, *input_shape_)."""
        return rows

    def _dataset(self, samples: np.ndarray, targets: np.ndarray | None) -> Dataset:
        """Wrap validated samples and targets in a :class:`Dataset`."""
        return Dataset(samples, targets, self._task, type(self).__name__)

    # ------------------------------------------------------------------ helpers
    def _constraints(self) -> dict[str, Any]:
        """Return the constraint table: common entries, optimizer names, the subclass's."""
        return {
            **_COMMON_CONSTRAINTS,
            "optimizer": OneOf(tuple(optimizer_names())),
            **self._own_constraints,
        }

    def _plan(self) -> _Plan:
        """Check every parameter and resolve the run's config, module arguments and seed."""
        name = type(self).__name__
        params: dict[str, Any] = {k: plain(v) for k, v in self.get_params(deep=False).items()}
        check_params(name, params, self._constraints())
        names = module_args(self._module_class)
        routed = split_routed(name, self._routed_params, module_names=names)
        seed = _resolve_seed(params["random_state"])
        options = {"lr": params["learning_rate"], "weight_decay": params["weight_decay"]}
        config = TrainConfig(
            epochs=params["max_iter"],
            batch_size=params["batch_size"],
            optimizer=params["optimizer"],
            early_stopping=params["n_iter_no_change"] if params["early_stopping"] else None,
            device=params["device"],
            seed=seed,
            **{**options, **routed["optimizer"], **routed["train"]},
        )
        return _Plan(config, {**self._module_defaults(), **routed["module"]}, seed)

    def _split(self, data: Dataset, seed: int) -> tuple[Dataset, Dataset | None]:
        """Hold out ``validation_fraction`` of ``data`` when early stopping."""
        if not self.early_stopping:
            return data, None
        stratify = data.y if data.task == "classification" else None
        train_index, val_index = train_test_split(
            np.arange(len(data)),
            test_size=self.validation_fraction,
            random_state=seed % 2**32,
            stratify=stratify,
        )
        return data.subset(np.sort(train_index)), data.subset(np.sort(val_index))

    def _runs(self) -> list[Callback]:
        """Fresh copies of the callbacks, plus a progress printer when ``verbose``."""
        callbacks = copy.deepcopy(list(self.callbacks or ()))
        label = type(self).__name__
        if callable(self.verbose):
            callbacks.append(ProgressBar(enabled=False, sink=self.verbose, label=label))
        elif self.verbose:
            callbacks.append(ProgressBar(enabled=False, label=label))
        return callbacks

    def _check_fitted(self) -> None:
        """Raise deepdx's :class:`NotFittedError` (with scikit-learn's message) before fit."""
        try:
            check_is_fitted(self)
        except SklearnNotFittedError as error:
            raise NotFittedError(str(error)) from None

    def __sklearn_is_fitted__(self) -> bool:
        """Return whether ``fit`` has built ``module_``."""
        return hasattr(self, "module_")

    def _forward(self, X: ArrayLike, *, capture: str | None = None) -> tuple[Tensor, list[Tensor]]:
        """Validate ``X``; return the outputs z (n, K) and, per batch, those of ``capture``.

        The forward pass runs in float64 on a copy of the module, so each sample's result
        does not depend on the batch it comes in (float32 kernels pick their algorithm,
        and so their rounding, by batch size).
        """
        self._check_fitted()
        rows, sample_shape = _flatten_samples(X, dtype=np.float64)
        rows = _sk_validate_data(self, rows, reset=False, dtype=np.float64, order="C")
        samples = self._to_samples(rows, sample_shape)  # (n, *input_shape_)
        model = copy.deepcopy(self.module_).double()
        captured: list[Tensor] = []
        if capture is not None:
            model.get_submodule(capture).register_forward_hook(
                lambda _module, _inputs, h: captured.append(h.flatten(1).cpu())  # (B, units)
            )
        inputs = torch.tensor(samples, dtype=torch.float64)  # a copy: X stays untouched
        z = forward(model, inputs, device=_device_of(self.module_))  # (n, K)
        return z, captured

    def _last_hidden_layer(self) -> HiddenLayer:
        """Return the module's last hidden layer, or raise if it has none."""
        hidden_layers = getattr(self.module_, "hidden_layers", lambda: [])()
        if not hidden_layers:
            raise InvalidParameterError(
                f"transform of {type(self).__name__} returns the last hidden layer's "
                "activations, but this network has no hidden layer; fit it with at least "
                "one hidden layer (for example hidden_layer_sizes=(100,))."
            )
        return hidden_layers[-1]


# ---------------------------------------------------------------------- helpers


def _flatten_samples(
    X: ArrayLike, *, dtype: type = np.float32
) -> tuple[ArrayLike, tuple[int, ...] | None]:
    """Flatten (n, *sample_shape) arrays of 3+ dims to rows; return them and sample_shape.

    Anything with fewer dims (tables, DataFrames, sparse matrices, bad input) passes through
    unchanged for ``validate_data`` to check and explain.
    """
    shape = getattr(X, "shape", None)
    try:
        ndim = len(shape) if shape is not None else np.asarray(X).ndim
    except (TypeError, ValueError):  # ragged lists, odd objects: validate_data explains
        return X, None
    if ndim < 3:
        return X, None
    samples = _sk_check_array(X, allow_nd=True, dtype=dtype, input_name="X")
    return samples.reshape(len(samples), -1), tuple(samples.shape[1:])


def _resolve_seed(random_state: int | np.random.RandomState | None) -> int:
    """Turn ``random_state`` into one int seed, as scikit-learn's estimators do."""
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0])  # fresh entropy
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    return int(random_state)


def _device_of(module: nn.Module) -> torch.device:
    """Return the device of the module's first parameter (CPU for a parameterless one)."""
    parameter = next(module.parameters(), None)
    return torch.device("cpu") if parameter is None else parameter.device


def _continue_history(previous: History, new: History) -> History:
    """Append a warm-started run's history to the previous one, renumbering its records."""
    merged = History.from_dict(previous.to_dict())
    epochs, steps = len(previous.epochs), previous.n_steps
    elapsed = previous.epochs[-1].time if previous.epochs else 0.0
    merged.log_event("warm_start", epoch=epochs, step=steps)
    for record in new.epochs:
        merged.epochs.append(
            replace(record, epoch=record.epoch + epochs, time=record.time + elapsed)
        )
    for name, values in new.steps.items():
        merged.steps.setdefault(name, []).extend(values)
        merged.step_index.setdefault(name, []).extend(i + steps for i in new.step_index[name])
    shift = {"epoch": epochs, "step": steps}
    for event in new.events:
        merged.events.append({k: v + shift[k] if k in shift else v for k, v in event.items()})
    return merged
