"""scikit-learn regressor: :class:`MLPRegressor`.

Symbols
-------
n        samples
d        features per row, ``n_features_in_``
K        targets per sample (1 for a 1-D ``y``)
z        outputs of the network, (n, K)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import RegressorMixin
from sklearn.utils import Tags
from torch import nn

from deepdx.estimators._base import NeuralNetEstimator, _sk_validate_data
from deepdx.estimators._params import Sizes
from deepdx.nets.mlp import MLP
from deepdx.train.callbacks import Callback

__all__ = ["MLPRegressor"]


class MLPRegressor(RegressorMixin, NeuralNetEstimator):
    """Multilayer-perceptron regressor trained with the squared error; one or many targets.

    Parameters
    ----------
    hidden_layer_sizes : sequence of int, default=(100,)
        Widths of the hidden layers (``module__hidden`` overrides it); empty for linear
        least squares.
    max_iter, batch_size, learning_rate, optimizer, weight_decay, early_stopping
        Training settings; see :class:`~deepdx.estimators.NeuralNetEstimator`.
    validation_fraction, n_iter_no_change, random_state, verbose, warm_start
        See :class:`~deepdx.estimators.NeuralNetEstimator`.
    device, callbacks
        See :class:`~deepdx.estimators.NeuralNetEstimator`.
    **routed_params
        ``module__<name>`` goes to :class:`~deepdx.nets.MLP`; ``optimizer__<name>`` and
        ``train__<name>`` as in :mod:`deepdx.estimators`.

    Attributes
    ----------
    module_ : MLP
        The trained network, with K outputs.
    history_, n_iter_, input_shape_, n_features_in_, feature_names_in_
        See :class:`~deepdx.estimators.NeuralNetEstimator`.

    Notes
    -----
    The loss is the mean squared error 1/(B K) Σ_i ||z_i - y_i||²; ``score`` is R²
    (averaged over targets). Targets are used as given: standardize them (for example with
    ``TransformedTargetRegressor``) when their scale is far from 1.

    Examples
    --------
    >>> from sklearn.datasets import make_regression
    >>> X, y = make_regression(n_samples=100, n_features=4, noise=0.1, random_state=0)
    >>> reg = MLPRegressor((16,), max_iter=5, random_state=0).fit(X, y / y.std())
    >>> reg.predict(X[:3]).shape, reg.transform(X[:3]).shape, reg.n_iter_
    ((3,), (3, 16), 5)
    >>> MLPRegressor((8,), max_iter=2).fit(X, np.c_[y, -y]).predict(X[:3]).shape
    (3, 2)
    """

    _task = "regression"
    _module_class: ClassVar[type[nn.Module]] = MLP
    _own_constraints: ClassVar[dict[str, Any]] = {"hidden_layer_sizes": Sizes()}

    def __init__(
        self,
        hidden_layer_sizes: Sequence[int] = (100,),
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
        self.hidden_layer_sizes = hidden_layer_sizes
        super().__init__(
            max_iter=max_iter,
            batch_size=batch_size,
            learning_rate=learning_rate,
            optimizer=optimizer,
            weight_decay=weight_decay,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            random_state=random_state,
            verbose=verbose,
            warm_start=warm_start,
            device=device,
            callbacks=callbacks,
            **routed_params,
        )

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Return the network's outputs z.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, *sample_shape)
            Samples with the features seen in ``fit``.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs), float64
            (n_samples,) when there is one target, as in scikit-learn.
        """
        z = self._forward(X)[0].numpy()  # (n, K)
        return z.ravel() if z.shape[1] == 1 else z

    def __sklearn_tags__(self) -> Tags:
        """Declare multi-output support."""
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _validate_xy(
        self, X: ArrayLike, y: ArrayLike | None, *, reset: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Validate rows and numeric targets; return float32 copies."""
        rows, targets = _sk_validate_data(
            self,
            X,
            y,
            reset=reset,
            dtype=np.float32,
            order="C",
            copy=True,
            multi_output=True,
            y_numeric=True,
        )
        return rows, np.array(targets, dtype=np.float32)  # a copy: y is never shared

    def _module_defaults(self) -> dict[str, Any]:
        """Return ``hidden`` from ``hidden_layer_sizes``."""
        return {"hidden": tuple(self.hidden_layer_sizes)}

    def _build_module(self, n_outputs: int, module_kwargs: dict[str, Any]) -> nn.Module:
        """Build an :class:`MLP` on rows of ``input_shape_`` with ``n_outputs`` outputs."""
        return MLP(self.input_shape_, n_outputs, **module_kwargs)
