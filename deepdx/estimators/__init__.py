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
and ``cross_val_score``.

Routed parameters
-----------------
As in skorch, a keyword ``<route>__<name>`` goes to an object the estimator builds in
``fit``, and overrides the top-level parameter that maps to the same argument. Routed
parameters appear in ``get_params`` and work with ``set_params``, ``clone`` and searches.

===================  ==========================================================================
route                where ``<name>`` goes
===================  ==========================================================================
``module__``         the network's constructor (:class:`~deepdx.nets.MLP`,
                     :class:`~deepdx.nets.ConvNet`): ``activation``, ``dropout``, ``init``,
                     ..., but not ``input_shape`` or ``n_outputs``, which come from the
                     data; ``module__hidden`` overrides ``hidden_layer_sizes``
``optimizer__``      ``lr`` (overrides ``learning_rate``), ``momentum``, ``weight_decay``
                     (overrides ``weight_decay``)
``train__``          :class:`~deepdx.train.TrainConfig` fields without a top-level
                     parameter: ``schedule``, ``clip_grad_norm``, ``train_eval_size``,
                     ``deterministic``
===================  ==========================================================================

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
