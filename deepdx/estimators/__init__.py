"""scikit-learn-compatible estimators over deepdx's networks and training loop.

=====================  ================================================================
name                   what it is
=====================  ================================================================
MLPClassifier          multilayer perceptron, softmax cross-entropy
MLPRegressor           multilayer perceptron, squared error, one or many targets
ConvNetClassifier      LeNet-style conv net on images (n, C, H, W) or rows (n, H*W)
NeuralNetEstimator     the shared base: parameters, routing, validation, ``fit``,
                       ``transform`` (for new estimators, not for direct use)
=====================  ================================================================

They pass scikit-learn's estimator checks, so they work in ``Pipeline``, ``GridSearchCV``
and ``cross_val_score``. Network and training options not exposed at the top level are
routed as in skorch: ``module__activation="tanh"``, ``optimizer__momentum=0.8``,
``train__schedule="cosine"``.

Examples
--------
>>> from sklearn.datasets import load_iris
>>> from sklearn.model_selection import GridSearchCV
>>> X, y = load_iris(return_X_y=True)
>>> search = GridSearchCV(MLPClassifier(max_iter=5, random_state=0),
...                       {"module__hidden": [(4,), (8,)]}, cv=2).fit(X, y)
>>> sorted(search.best_params_)
['module__hidden']
"""

from __future__ import annotations

from deepdx.estimators._base import NeuralNetEstimator
from deepdx.estimators.classifier import ConvNetClassifier, MLPClassifier
from deepdx.estimators.regressor import MLPRegressor

__all__ = ["ConvNetClassifier", "MLPClassifier", "MLPRegressor", "NeuralNetEstimator"]
