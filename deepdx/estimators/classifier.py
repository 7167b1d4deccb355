"""scikit-learn classifiers: :class:`MLPClassifier` and :class:`ConvNetClassifier`.

Symbols
-------
n        samples
d        features per row, ``n_features_in_``
K        classes, ``len(classes_)``
z        logits of the network, (n, K)
p        class probabilities softmax(z), (n, K)

Labels may be any sortable values (ints, strings); they are encoded as indices into the
sorted ``classes_`` (``LabelEncoder`` semantics) and decoded back by ``predict``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from numpy.typing import ArrayLike
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from torch import nn

from deepdx.data.dataset import Dataset
from deepdx.estimators._base import NeuralNetEstimator, _Plan, _sk_validate_data
from deepdx.estimators._layout import rows_to_images, square_image_shape
from deepdx.estimators._params import Predicate, Sizes
from deepdx.exceptions import DataError
from deepdx.nets.convnet import ConvNet
from deepdx.nets.mlp import MLP
from deepdx.train.callbacks import Callback

__all__ = ["ConvNetClassifier", "MLPClassifier"]

_DEFAULT_KERNEL_SIZE = inspect.signature(ConvNet).parameters["kernel_size"].default


class _NeuralNetClassifier(ClassifierMixin, NeuralNetEstimator):
    """Label handling, ``predict`` and ``predict_proba`` shared by the classifiers."""

    _task = "classification"
    classes_: np.ndarray

    def _validate_xy(
        self, X: ArrayLike, y: ArrayLike | None, *, reset: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Validate rows and labels; set or check ``classes_``; return label indices."""
        rows, labels = _sk_validate_data(
            self, X, y, reset=reset, dtype=np.float32, order="C", copy=True
        )
        check_classification_targets(labels)
        classes = np.unique(labels)
        if reset:
            if len(classes) < 2:
                raise DataError(
                    f"{type(self).__name__} needs at least two classes in y; got one class "
                    f"({classes[0]!r}). Check the labels, or the split that produced them."
                )
            self.classes_ = classes
        elif not np.isin(classes, self.classes_).all():
            raise DataError(
                f"warm_start needs y to hold classes seen in the first fit "
                f"({self.classes_.tolist()}); got {classes.tolist()}. Set warm_start=False "
                "to start afresh."
            )
        return rows, np.searchsorted(self.classes_, labels).astype(np.int64)

    def _dataset(self, samples: np.ndarray, targets: np.ndarray | None) -> Dataset:
        """Wrap samples and label indices, naming the classes."""
        names = tuple(str(c) for c in self.classes_)
        return Dataset(samples, targets, "classification", type(self).__name__, names)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Return the most probable class of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, *sample_shape)
            Samples with the features seen in ``fit``.

        Returns
        -------
        ndarray of shape (n_samples,)
            Labels from ``classes_``: ``classes_[argmax_k z_k]``.
        """
        index = self._forward(X)[0].argmax(dim=1).numpy()  # (n,)
        return self.classes_[index]

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Return class probabilities p = softmax(z), columns in the order of ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, *sample_shape)
            Samples with the features seen in ``fit``.

        Returns
        -------
        ndarray of shape (n_samples, n_classes), float64
            Rows sum to 1.
        """
        return torch.softmax(self._forward(X)[0], dim=1).numpy()  # (n, K)

    def predict_log_proba(self, X: ArrayLike) -> np.ndarray:
        """Return log p = log_softmax(z), computed stably in float64.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, *sample_shape)
            Samples with the features seen in ``fit``.

        Returns
        -------
        ndarray of shape (n_samples, n_classes), float64
        """
        return torch.log_softmax(self._forward(X)[0], dim=1).numpy()  # (n, K)


class MLPClassifier(_NeuralNetClassifier):
    """Multilayer-perceptron classifier trained with softmax cross-entropy.

    Parameters
    ----------
    hidden_layer_sizes : sequence of int, default=(100,)
        Widths of the hidden layers (``module__hidden`` overrides it); empty for
        multinomial logistic regression.
    max_iter, batch_size, learning_rate, optimizer, weight_decay, early_stopping
        Training settings; see :class:`~deepdx.estimators.NeuralNetEstimator`.
    validation_fraction, n_iter_no_change, random_state, verbose, warm_start
        See :class:`~deepdx.estimators.NeuralNetEstimator`.
    device, callbacks
        See :class:`~deepdx.estimators.NeuralNetEstimator`.
    **routed_params
        ``module__<name>`` goes to :class:`~deepdx.nets.MLP` (``activation``, ``dropout``,
        ``batch_norm``, ``init``, ``bias``, ``hidden``); ``optimizer__<name>`` and
        ``train__<name>`` as in :mod:`deepdx.estimators`.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Sorted labels seen in ``fit``.
    module_ : MLP
        The trained network.
    history_, n_iter_, input_shape_, n_features_in_, feature_names_in_
        See :class:`~deepdx.estimators.NeuralNetEstimator`.

    Notes
    -----
    Images (n, *sample_shape) are flattened to rows of d = prod(sample_shape) features.
    The loss is the mean cross-entropy -1/B Σ_i log p_{i, y_i}; ``score`` is the accuracy and
    ``transform`` returns the last hidden layer's activations (n, H_L).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier((16,), max_iter=30, random_state=0).fit(X, y)
    >>> clf.predict(X[:2]).shape, clf.predict_proba(X[:2]).shape, clf.transform(X[:2]).shape
    ((2,), (2, 3), (2, 16))
    >>> clf.n_iter_, clf.get_params()["hidden_layer_sizes"]
    (30, (16,))
    """

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

    def _module_defaults(self) -> dict[str, Any]:
        """Return ``hidden`` from ``hidden_layer_sizes``."""
        return {"hidden": tuple(self.hidden_layer_sizes)}

    def _build_module(self, n_outputs: int, module_kwargs: dict[str, Any]) -> nn.Module:
        """Build an :class:`MLP` on rows of ``input_shape_``."""
        return MLP(self.input_shape_, n_outputs, **module_kwargs)


def _is_image_shape(value: object) -> bool:
    """Return True for None or a (C, H, W) sequence of positive ints."""
    if value is None:
        return True
    return isinstance(value, Sequence) and len(value) == 3 and Sizes().accepts(value)


class ConvNetClassifier(_NeuralNetClassifier):
    """LeNet-style convolutional classifier (:class:`~deepdx.nets.ConvNet`) for images.

    Parameters
    ----------
    input_shape : tuple of (C, H, W) or None, default=None
        Shape of one image when ``X`` holds rows (n, C·H·W). None takes the shape from
        ``X`` when it is (n, C, H, W), and lays rows (n, d) out on a (1, s, s) square
        otherwise (see Notes).
    channels : sequence of int, default=(6, 16)
        Output channels of the conv layers (``module__channels`` overrides it).
    hidden_layer_sizes : sequence of int, default=(120, 84)
        Widths of the fully connected head (``module__hidden`` overrides it).
    max_iter, batch_size, learning_rate, optimizer, weight_decay, early_stopping
        Training settings; see :class:`~deepdx.estimators.NeuralNetEstimator`.
    validation_fraction, n_iter_no_change, random_state, verbose, warm_start
        See :class:`~deepdx.estimators.NeuralNetEstimator`.
    device, callbacks
        See :class:`~deepdx.estimators.NeuralNetEstimator`.
    **routed_params
        ``module__<name>`` goes to :class:`~deepdx.nets.ConvNet` (``kernel_size``,
        ``activation``, ``pool``, ``dropout``, ``batch_norm``, ``init``, ``bias``, ...).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Sorted labels seen in ``fit``.
    module_ : ConvNet
        The trained network.
    input_shape_ : tuple of int
        (C, H, W) of the images the network sees.
    n_features_in_ : int
        Features per sample, d (C·H·W for images).
    history_, n_iter_, feature_names_in_
        See :class:`~deepdx.estimators.NeuralNetEstimator`.

    Notes
    -----
    ``X`` may be images (n, C, H, W) or rows (n, d). A row fills an image in row-major
    order (``reshape``); without ``input_shape`` the image is the smallest square (1, s, s)
    with s >= ceil(√d) that the conv stack can pool, and rows are zero-padded to s²
    (a perfect square d such as 8x8 digits needs no padding). After ``fit`` on either form,
    ``predict`` takes rows of d features or images of shape ``input_shape_``.
    ``transform`` returns the last hidden layer's activations: the head's last hidden layer,
    or the last conv map (flattened, before pooling) when the head has none.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = ConvNetClassifier(channels=(4,), hidden_layer_sizes=(16,), max_iter=2,
    ...                         random_state=0).fit(X[:200] / 16, y[:200])
    >>> clf.input_shape_, clf.predict(X[:3] / 16).shape, clf.transform(X[:3] / 16).shape
    ((1, 8, 8), (3,), (3, 16))
    >>> clf.predict_proba(X[:3].reshape(3, 1, 8, 8) / 16).shape
    (3, 10)
    """

    _module_class: ClassVar[type[nn.Module]] = ConvNet
    _own_constraints: ClassVar[dict[str, Any]] = {
        "input_shape": Predicate(_is_image_shape, "None or (C, H, W), three positive ints"),
        "channels": Sizes(allow_empty=False),
        "hidden_layer_sizes": Sizes(),
    }

    def __init__(
        self,
        input_shape: tuple[int, int, int] | None = None,
        channels: Sequence[int] = (6, 16),
        hidden_layer_sizes: Sequence[int] = (120, 84),
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
        self.input_shape = input_shape
        self.channels = channels
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

    def _module_defaults(self) -> dict[str, Any]:
        """Return ``channels`` and ``hidden`` from the top-level parameters."""
        return {"channels": tuple(self.channels), "hidden": tuple(self.hidden_layer_sizes)}

    def _build_module(self, n_outputs: int, module_kwargs: dict[str, Any]) -> nn.Module:
        """Build a :class:`ConvNet` on images of ``input_shape_``."""
        return ConvNet(self.input_shape_, n_outputs, **module_kwargs)

    def _fit_input_shape(
        self, n_features: int, sample_shape: tuple[int, ...] | None, plan: _Plan
    ) -> tuple[int, ...]:
        """Return (C, H, W): the images', ``input_shape``, or the smallest fitting square."""
        given = None if self.input_shape is None else tuple(int(s) for s in self.input_shape)
        if sample_shape is not None:
            if len(sample_shape) != 3 or given not in (None, sample_shape):
                raise DataError(
                    f"{type(self).__name__} takes images (n, C, H, W) or rows (n, C*H*W); got "
                    f"samples of shape {sample_shape} with input_shape={self.input_shape}. "
                    "Add a channel axis to (n, H, W) images with X[:, None]."
                )
            return sample_shape
        if given is not None:
            if math.prod(given) != n_features:
                raise DataError(
                    f"X has {n_features} features but input_shape={self.input_shape} holds "
                    f"{math.prod(given)}; pass rows of C*H*W features, or fix input_shape."
                )
            return given
        kwargs = plan.module_kwargs
        kernel_size = kwargs.get("kernel_size", _DEFAULT_KERNEL_SIZE)
        return square_image_shape(n_features, kwargs["channels"], kernel_size)

    def _to_samples(self, rows: np.ndarray, sample_shape: tuple[int, ...] | None) -> np.ndarray:
        """Lay rows out as images (n, C, H, W) of ``input_shape_``."""
        if sample_shape not in (None, self.input_shape_):
            raise DataError(
                f"X holds images of shape {sample_shape} but this {type(self).__name__} was "
                f"fitted on {self.input_shape_}; resize them, or pass rows of "
                f"{self.n_features_in_} features."
            )
        return rows_to_images(rows, self.input_shape_)  # (n, C, H, W)
