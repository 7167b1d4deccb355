"""A classifier whose ``fit`` sleeps: a planted slow baseline for the budget tests.

It lives in its own module so that a worker process can import it to unpickle it.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class SlowClassifier(ClassifierMixin, BaseEstimator):
    """Sleep ``seconds`` in ``fit``, then predict the first class seen."""

    def __init__(self, seconds: float = 60.0) -> None:
        self.seconds = seconds

    def fit(self, X: np.ndarray, y: np.ndarray) -> SlowClassifier:
        time.sleep(self.seconds)
        self.classes_ = np.unique(y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), self.classes_[0])
