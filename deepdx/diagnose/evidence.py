"""Everything the diagnosis measured, gathered for the rules.

Checks (pre-flight, baselines, the monitored training run, learning curves, capacity
probes) fill an :class:`Evidence`; rules are pure functions ``Evidence -> list[Finding]``
and never touch a model. A check that could not run leaves its field ``None`` and says
why in ``skipped``.

Signal names written into ``history`` by the monitors are the constants of
:mod:`deepdx.diagnose.signals`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deepdx.diagnose.baselines import BaselineResult
from deepdx.diagnose.gradient_check import GradCheckResult
from deepdx.train.history import History

__all__ = ["CapacityProbe", "DataSanity", "Evidence", "LearningCurve", "Preflight"]


@dataclass(frozen=True)
class DataSanity:
    """Input statistics of the training split (DIAGNOSTICS.md A7).

    Attributes
    ----------
    feature_mean_abs_max : float
        Largest |mean| over features.
    feature_std_min, feature_std_max : float
        Smallest and largest per-feature standard deviation (constant features excluded).
    n_constant_features : int
        Features with zero variance.
    imbalance_ratio : float
        Largest class count over the smallest (1.0 for regression).
    n_duplicates_across_splits : int
        Validation or test rows that also occur in the training split.
    """

    feature_mean_abs_max: float
    feature_std_min: float
    feature_std_max: float
    n_constant_features: int
    imbalance_ratio: float
    n_duplicates_across_splits: int


@dataclass(frozen=True)
class Preflight:
    """Results of the seconds-long checks run before training (DIAGNOSTICS.md A1-A3).

    Attributes
    ----------
    init_loss : float
        Loss of the untrained model on the training split.
    chance_loss : float
        Loss of an input-independent prediction: ln C for C-class cross-entropy, the
        target variance for squared error.
    one_batch_initial_loss, one_batch_final_loss : float
        Loss on one small batch before and after trying to overfit it.
    one_batch_final_score : float or None
        Metric on that batch after overfitting (accuracy or r2).
    one_batch_steps : int
        Steps spent overfitting the batch.
    real_inputs_loss, zeroed_inputs_loss : float
        Validation loss of short identical runs on real and on zeroed inputs.
    real_inputs_score, zeroed_inputs_score : float or None
        Their validation metric.
    """

    init_loss: float
    chance_loss: float
    one_batch_initial_loss: float
    one_batch_final_loss: float
    one_batch_final_score: float | None
    one_batch_steps: int
    real_inputs_loss: float
    zeroed_inputs_loss: float
    real_inputs_score: float | None
    zeroed_inputs_score: float | None


@dataclass(frozen=True)
class LearningCurve:
    """Train and validation score against training-set size, k-fold cross-validated.

    Attributes
    ----------
    sizes : tuple of int
        Training-set sizes.
    train_mean, train_std, val_mean, val_std : tuple of float
        Mean and standard deviation over folds of the metric at each size.
    metric : str
        ``accuracy`` or ``r2`` (higher is better) or ``loss`` (lower is better).
    n_folds : int
        Folds per size.
    """

    sizes: tuple[int, ...]
    train_mean: tuple[float, ...]
    train_std: tuple[float, ...]
    val_mean: tuple[float, ...]
    val_std: tuple[float, ...]
    metric: str
    n_folds: int


@dataclass(frozen=True)
class CapacityProbe:
    """One short training run of a variant of the model (``base``, ``wider``, ``deeper``...).

    Attributes
    ----------
    name : str
        ``base``, ``wider``, ``deeper`` or ``narrower``.
    spec : str
        Model spec that was trained (``mlp:512``).
    n_params : int
        Trainable parameters.
    train_loss, val_loss : float
        Final training-probe and validation loss.
    train_score, val_score : float or None
        Final training-probe and validation metric.
    epochs : int
        Epochs trained.
    seconds : float
        Wall-clock time.
    """

    name: str
    spec: str
    n_params: int
    train_loss: float
    val_loss: float
    train_score: float | None
    val_score: float | None
    epochs: int
    seconds: float


@dataclass
class Evidence:
    """All measurements of one diagnosis.

    Attributes
    ----------
    task : str
        ``classification``, ``regression`` or ``unsupervised``.
    metric : str
        ``accuracy``, ``r2`` or ``''``.
    n_classes : int
        Classes (0 unless classification).
    n_train : int
        Training-split size.
    optimizer : str
        Optimizer name of the main run.
    lr : float
        Its (initial) learning rate.
    model_spec : str
        Spec of the diagnosed model, or ``"custom"``.
    history : History or None
        The monitored main run (signals named in :mod:`deepdx.diagnose.signals`).
    divergence : str or None
        Message of the ``NumericalError`` that ended the main run, if it diverged.
    data_sanity, preflight, gradcheck, learning_curve : optional
        Results of those checks.
    baselines : list of BaselineResult
        Shallow baselines on the same splits.
    net_train_score, net_val_score, net_test_score : float or None
        Final metric of the trained net on each split.
    capacity : list of CapacityProbe
        Probe runs (``base`` first when present).
    input_sensitivity : float or None
        ‖∂L/∂X‖·‖X‖ / |L| of the trained net on a probe batch: 0 when the loss does not
        depend on the inputs.
    bias_variance : dict or None
        Regression only: bootstrap estimates ``bias2``, ``variance`` and
        ``expected_error`` of the net's validation predictions.
    skipped : dict of str to str
        Check name -> why it did not run.
    """

    task: str
    metric: str
    n_classes: int
    n_train: int
    optimizer: str
    lr: float
    model_spec: str = "custom"
    history: History | None = None
    divergence: str | None = None
    data_sanity: DataSanity | None = None
    preflight: Preflight | None = None
    gradcheck: GradCheckResult | None = None
    learning_curve: LearningCurve | None = None
    baselines: list[BaselineResult] = field(default_factory=list)
    net_train_score: float | None = None
    net_val_score: float | None = None
    net_test_score: float | None = None
    capacity: list[CapacityProbe] = field(default_factory=list)
    input_sensitivity: float | None = None
    bias_variance: dict[str, float | None] | None = None
    skipped: dict[str, str] = field(default_factory=dict)
