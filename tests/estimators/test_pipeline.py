from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from deepdx.estimators import MLPClassifier


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


def test_grid_search_over_routed_hidden_in_pipeline_picks_a_candidate(iris):
    X, y = iris
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=5, random_state=0))
    grid = {"mlpclassifier__module__hidden": [(2,), (16,)]}
    search = GridSearchCV(pipe, grid, cv=KFold(3, shuffle=True, random_state=0))
    search.set_params(error_score="raise").fit(X, y)
    best = search.best_params_["mlpclassifier__module__hidden"]
    assert best in grid["mlpclassifier__module__hidden"]
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores)) and search.best_score_ == scores.max()
    assert search.best_estimator_[-1].module_.hidden == best


def test_estimator_as_pipeline_transformer_feeds_its_hidden_layer(iris):
    X, y = iris
    net = MLPClassifier((6,), max_iter=5, random_state=0)
    pipe = make_pipeline(StandardScaler(), net, LogisticRegression()).fit(X, y)
    features = pipe[1].transform(pipe[0].transform(X))
    assert features.shape == (150, 6)
    np.testing.assert_array_equal(pipe.predict(X), pipe[2].predict(features))


# About 11 CPU seconds, nearly all of it two worker processes importing torch; kept in the
# default run because n_jobs=2 == n_jobs=1 is an acceptance criterion.
def test_cross_val_score_parallel_matches_serial(iris):
    X, y = iris
    pipe = make_pipeline(StandardScaler(), MLPClassifier((8,), max_iter=10, random_state=0))
    cv = KFold(3, shuffle=True, random_state=0)
    serial = cross_val_score(pipe, X, y, cv=cv, n_jobs=1)
    parallel = cross_val_score(pipe, X, y, cv=cv, n_jobs=2)
    np.testing.assert_array_equal(parallel, serial)
