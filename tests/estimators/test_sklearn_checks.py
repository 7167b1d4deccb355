"""scikit-learn's own estimator checks over every public deepdx estimator."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from deepdx.estimators import ConvNetClassifier, MLPClassifier, MLPRegressor

# Small, seeded instances keep the suite fast; the checks themselves set random_state.
ESTIMATORS = [
    MLPClassifier((8,), max_iter=5, learning_rate=0.03),
    MLPRegressor((8,), max_iter=5, learning_rate=0.03),
    ConvNetClassifier(
        channels=(4,),
        hidden_layer_sizes=(8,),
        max_iter=5,
        learning_rate=0.03,
        module__kernel_size=3,
    ),
]


@parametrize_with_checks(ESTIMATORS)
def test_estimator_passes_sklearn_check(estimator, check):
    check(estimator)
