"""Every threshold the diagnosis rules use, as a named constant with its source.

Each constant is a :class:`Threshold`: a value and the source it comes from (a tool's
default, a paper, a guide), or ``"proposal"`` where the literature gives none and the value
is a starting point to calibrate on planted faults. Rules read these constants at call time
(``thresholds.DEAD_LAYER_FRACTION.value``), so a user may override one by assigning a new
``Threshold`` to the module attribute. Findings quote the value and the source in their
evidence through :meth:`Threshold.cite`.

Symbols
-------
L0          loss of the untrained model
L_chance    loss of an input-independent prediction (ln C for C-class cross-entropy)
r           update-to-weight norm ratio ‖Δθ‖/‖θ‖ of a layer, per step
η, λ_max    learning rate and largest Hessian eigenvalue of the training loss
g_first     gradient norm of the first (input-side) layer; g_last of the last
gain        (s − s_ref) / (s_perfect − s_ref), Deepchecks' normalised gain of a score s
"""

from __future__ import annotations

from dataclasses import dataclass

import deepdx.diagnose.gradient_check as _gradcheck

__all__ = [
    "AVOIDABLE_BIAS",
    "AVOIDABLE_BIAS_FLOOR",
    "BELOW_BASELINE_GAIN",
    "CAPACITY_LOSS_MARGIN",
    "CAPACITY_SCORE_MARGIN",
    "CLIP_PERCENTILE",
    "CRAWL_RATE",
    "DEAD_LAYER_FRACTION",
    "DEAD_SEVERE_FRACTION",
    "DISTANCE_STILL",
    "DIVERGENCE_FACTOR",
    "DIVERGENCE_GIVEN_BACK",
    "DIVERGENCE_LOSS",
    "DUPLICATE_RATIO",
    "EARLY_SHARE",
    "EXPLODING_LAYER_RATIO",
    "FIT_FAILED_GAIN",
    "GRADCHECK_OK",
    "GRADCHECK_WRONG",
    "IGNORES_INPUTS_GAIN",
    "INPUT_SENSITIVITY_ZERO",
    "IMBALANCE_RATIO",
    "INIT_LOSS_BAND",
    "INIT_LOSS_OVERCONFIDENT",
    "LEARNABLE_GAIN",
    "LEARNING_CURVE_SIZES",
    "LINEAR_SHORTFALL",
    "LITTLE_PROGRESS",
    "LOSS_SMOOTHING",
    "MORE_DATA_GAIN",
    "MORE_DATA_GAP",
    "NO_BETTER_GAIN",
    "ONE_BATCH_LOSS_FRACTION",
    "ONE_BATCH_SCORE",
    "OSCILLATION_DROP",
    "OSCILLATION_LOSS_RISE",
    "OSCILLATION_MIN_EPOCHS",
    "OSCILLATION_SHARE",
    "OVERFIT_DELTA",
    "OVERFIT_GAP",
    "OVERFIT_GAP_HIGH_TRAIN",
    "OVERFIT_LOSS_RATIO",
    "OVERFIT_PATIENCE",
    "OVERFIT_TRAIN_SPLIT",
    "PLATEAU_IMPROVEMENT",
    "PLATEAU_WINDOW",
    "SATURATED_LAYER_FRACTION",
    "SATURATED_SEVERE_FRACTION",
    "SCALE_MEAN_STDS",
    "SCALE_STD_HIGH",
    "SCALE_STD_LOW",
    "SHARPNESS_EDGE",
    "SHARPNESS_HIGH",
    "SHARPNESS_LOW",
    "SPIKE_EVENTS",
    "SPIKE_FACTOR",
    "SPIKE_WINDOW",
    "STABILITY_GD",
    "STABILITY_MOMENTUM",
    "UPDATE_RATIO_HIGH",
    "UPDATE_RATIO_LOW",
    "UPDATE_RATIO_TARGET",
    "VANISHING_FIRST_NORM",
    "VANISHING_LAYER_RATIO",
    "Threshold",
]


@dataclass(frozen=True)
class Threshold:
    """A numeric threshold and where it comes from.

    Attributes
    ----------
    value : float
        The threshold.
    source : str
        The publication, tool default or guide it comes from, or ``"proposal"``.

    Examples
    --------
    >>> t = Threshold(0.1, "SageMaker Overfit ratio")
    >>> t.cite("gap_threshold")
    {'gap_threshold': 0.1, 'gap_threshold_source': 'SageMaker Overfit ratio'}
    """

    value: float
    source: str

    def cite(self, name: str = "threshold") -> dict[str, float | str]:
        """Return ``{name: value, name + "_source": source}`` for a finding's evidence."""
        return {name: self.value, f"{name}_source": self.source}


# ------------------------------------------------------------------ A. pre-flight
#: A1: |L0 − L_chance| above this fraction of L_chance flags the initial loss.
#: Source: expected value from CS231n and Karpathy's Recipe; the 0.2 band is a proposal.
INIT_LOSS_BAND = Threshold(0.2, "CS231n / Karpathy expected value; 0.2 band = proposal")
#: A1: L0 above this multiple of L_chance means confidently wrong initial predictions.
#: Source: proposal.
INIT_LOSS_OVERCONFIDENT = Threshold(3.0, "proposal")
#: A2: one small batch counts as overfitted at this accuracy / R². Source: Karpathy's Recipe
#: (procedure); the number is a proposal.
ONE_BATCH_SCORE = Threshold(0.99, "Karpathy overfit-one-batch; 0.99 = proposal")
#: A2: ... or when its loss falls below this fraction of its initial loss. Source: as above.
ONE_BATCH_LOSS_FRACTION = Threshold(0.01, "Karpathy overfit-one-batch; 1% of L0 = proposal")
#: A3: real inputs must close at least this share of the zeroed-input run's headroom.
#: Source: Deepchecks gain 0.1 with the zeroed-input run as the baseline (adaptation).
IGNORES_INPUTS_GAIN = Threshold(0.1, "Karpathy input-independent baseline; Deepchecks gain 0.1")
#: A3 / D1: a gain below this over an input-independent reference (zeroed inputs, dummy
#: model) means "no better than it". Source: proposal (half of Deepchecks' 0.1).
NO_BETTER_GAIN = Threshold(0.05, "proposal (half of Deepchecks gain 0.1)")
#: A3: relative input sensitivity ‖∂L/∂X‖·‖X‖ / |L| at or below which the trained net's
#: loss does not depend on its inputs (exactly 0 when they never reach the output).
#: Source: proposal (Karpathy's input-independent baseline, measured by backprop).
INPUT_SENSITIVITY_ZERO = Threshold(1e-6, "proposal: input gradient ~ 0 (Karpathy A3)")
#: A3 / D1: the best baseline's gain over the dummy model above which the labels are
#: learnable from the inputs. Source: Deepchecks SimpleModelComparison min_allowed_gain.
LEARNABLE_GAIN = Threshold(0.1, "Deepchecks SimpleModelComparison gain 0.1")
#: A7: a feature with |mean| above this many standard deviations is off-centre.
#: Source: proposal (DIAGNOSTICS A7).
SCALE_MEAN_STDS = Threshold(3.0, "proposal (A7 scale band)")
#: A7: per-feature standard deviations below this are unusually small. Source: proposal.
SCALE_STD_LOW = Threshold(0.1, "proposal (A7 scale band)")
#: A7: per-feature standard deviations above this are unusually large. Source: proposal.
SCALE_STD_HIGH = Threshold(10.0, "proposal (A7 scale band)")
#: A7: largest over smallest class count above this is a class imbalance.
#: Source: SageMaker Clarify ClassImbalance default.
IMBALANCE_RATIO = Threshold(10.0, "SageMaker ClassImbalance default 10:1")
#: A7: share of evaluation rows duplicated from the training split above which scores are
#: inflated. Source: Deepchecks TrainTestSamplesMix max_ratio=0.05.
DUPLICATE_RATIO = Threshold(0.05, "Deepchecks TrainTestSamplesMix max_ratio=0.05")

# ------------------------------------------------------------------ B. optimisation
#: B2: smoothed loss above this multiple of its best value has diverged.
#: Source: PyTorch Lightning LR finder early_stop_threshold=4.0.
DIVERGENCE_FACTOR = Threshold(4.0, "Lightning LR finder early_stop_threshold=4.0")
#: B2: absolute loss at or above this has diverged. Source: AUTOTRAINER.
DIVERGENCE_LOSS = Threshold(1e3, "AUTOTRAINER loss >= 1e3")
#: B2: EMA factor of the smoothed loss. Source: Lightning LR finder beta=0.98.
LOSS_SMOOTHING = Threshold(0.98, "Lightning LR finder beta=0.98")
#: B2: share of the progress made that a run must give back before a 4x rise counts as
#: divergence rather than noise around a near-zero loss. Source: proposal.
DIVERGENCE_GIVEN_BACK = Threshold(0.5, "proposal")
#: B3: evaluations in the plateau window. Source: SageMaker LossNotDecreasing num_steps=10.
PLATEAU_WINDOW = Threshold(10, "SageMaker LossNotDecreasing num_steps=10")
#: B3: relative improvement over the window below which the loss has plateaued.
#: Source: SageMaker LossNotDecreasing diff_percent=0.1 (%).
PLATEAU_IMPROVEMENT = Threshold(1e-3, "SageMaker LossNotDecreasing diff_percent=0.1")
#: B5: the update-to-weight ratio a well-tuned step size gives. Source: CS231n (~1e-3).
UPDATE_RATIO_TARGET = Threshold(1e-3, "CS231n update/weight ratio ~1e-3")
#: B5: median update ratio below this means the learning rate is too low.
#: Source: CS231n 1e-3 heuristic; the x10 band is a proposal.
UPDATE_RATIO_LOW = Threshold(1e-4, "CS231n ~1e-3 heuristic; x10 band = proposal")
#: B5: median update ratio above this means the learning rate is too high. Source: as above.
UPDATE_RATIO_HIGH = Threshold(1e-2, "CS231n ~1e-3 heuristic; x10 band = proposal")
#: B6: stability limit of η·λ_max for plain gradient descent. Source: Cohen et al. 2021.
STABILITY_GD = Threshold(2.0, "Cohen et al. 2021 edge of stability 2/eta")
#: B6: stability limit of η·λ_max for heavy-ball / Nesterov momentum β = 0.9, (2 + 2β).
#: Source: Cohen et al. 2021 (momentum variant).
STABILITY_MOMENTUM = Threshold(3.8, "Cohen et al. 2021 (2+2*beta)/eta, beta=0.9")
#: B6: η·λ_max above this multiple of the stability limit is "much larger". Source: proposal.
SHARPNESS_HIGH = Threshold(2.0, "Cohen et al. 2021 limit; 'much larger' factor 2 = proposal")
#: B6 / B4: η·λ_max at or above this multiple of the limit bounces across the valley.
#: Source: Cohen et al. 2021 (the stability limit itself).
SHARPNESS_EDGE = Threshold(1.0, "Cohen et al. 2021 edge of stability")
#: B6: η·λ_max below this multiple of the limit for the whole run leaves room to raise the
#: learning rate. Source: proposal.
SHARPNESS_LOW = Threshold(0.1, "Cohen et al. 2021 limit; 'much smaller' factor 0.1 = proposal")
#: B7: a drop of the accuracy between consecutive epochs at least this large is a swing.
#: Source: AUTOTRAINER zeta=0.03.
OSCILLATION_DROP = Threshold(0.03, "AUTOTRAINER zeta=0.03")
#: B7: swings in at least this share of epochs mean oscillation. Source: AUTOTRAINER eta=0.2.
OSCILLATION_SHARE = Threshold(0.2, "AUTOTRAINER eta=0.2")
#: B7: rise of the epoch-mean training loss, as a share of the first epoch's loss, that
#: counts as a swing. Source: proposal (AUTOTRAINER's 0.03 applied to the loss scale).
OSCILLATION_LOSS_RISE = Threshold(0.03, "proposal (AUTOTRAINER zeta=0.03 on the loss scale)")
#: B7: fewest epochs on which oscillation is judged. Source: proposal.
OSCILLATION_MIN_EPOCHS = Threshold(5, "proposal")
#: B8: a global gradient norm above this multiple of its running median is a spike.
#: Source: trainproof 10x running median.
SPIKE_FACTOR = Threshold(10.0, "trainproof 10x running median")
#: B8: steps in the running median. Source: proposal.
SPIKE_WINDOW = Threshold(50, "proposal")
#: B8: separate spike events needed to call gradients exploding. Source: proposal.
SPIKE_EVENTS = Threshold(3, "proposal")
#: B8: recommended clipping threshold, a percentile of the observed norms.
#: Source: Google Deep Learning Tuning Playbook (90th percentile).
CLIP_PERCENTILE = Threshold(90.0, "Deep Learning Tuning Playbook 90th percentile")
#: B8: spikes only in this first share of the steps call for warmup.
#: Source: Deep Learning Tuning Playbook (warmup <= 10% of steps).
EARLY_SHARE = Threshold(0.1, "Deep Learning Tuning Playbook warmup <= 10% of steps")
#: B8: g_first / g_last above this means exploding gradients. Source: AUTOTRAINER beta3=70.
EXPLODING_LAYER_RATIO = Threshold(70.0, "AUTOTRAINER beta3=70")
#: B9: g_first / g_last below this means vanishing gradients. Source: AUTOTRAINER beta1=1e-3.
VANISHING_LAYER_RATIO = Threshold(1e-3, "AUTOTRAINER beta1=1e-3")
#: B9: ... together with g_first below this. Source: AUTOTRAINER beta2=1e-4.
VANISHING_FIRST_NORM = Threshold(1e-4, "AUTOTRAINER beta2=1e-4")
#: B10: a layer with more than this share of dead units is flagged.
#: Source: SageMaker DeadRelu threshold_layer=50%.
DEAD_LAYER_FRACTION = Threshold(0.5, "SageMaker DeadRelu threshold_layer=50%")
#: B10: a share of dead units above this is severe. Source: proposal.
DEAD_SEVERE_FRACTION = Threshold(0.9, "proposal")
#: B11: a layer with more than this share of saturated units is flagged.
#: Source: SageMaker SaturatedActivation threshold_layer=50%.
SATURATED_LAYER_FRACTION = Threshold(0.5, "SageMaker SaturatedActivation threshold_layer=50%")
#: B11: a share of saturated units above this is severe. Source: proposal.
SATURATED_SEVERE_FRACTION = Threshold(0.9, "proposal")
#: B15: ‖θ − θ0‖/‖θ0‖ below this at the end of a run means the weights barely moved.
#: Source: Cockpit Distance (signal); the number is a proposal.
DISTANCE_STILL = Threshold(1e-2, "Cockpit Distance; 1e-2 = proposal")
#: Training counts as having made little progress when the loss fell by less than this
#: share of its initial value. Source: proposal.
LITTLE_PROGRESS = Threshold(0.1, "proposal")
#: A loss still falling at least this fraction as fast at the end as at the start has not
#: begun to converge (a crawl, typical of a tiny step size). Source: proposal.
CRAWL_RATE = Threshold(0.5, "proposal")
#: A net whose training score gains less than this over chance has failed to fit.
#: Source: Deepchecks gain 0.1 with chance as the baseline (adaptation).
FIT_FAILED_GAIN = Threshold(0.1, "Deepchecks gain 0.1 over chance")

# ------------------------------------------------------------------ C. generalisation
#: C1: avoidable bias (train error − reference error) at or above this is high.
#: Source: Ng, Machine Learning Yearning ch. 20-41.
AVOIDABLE_BIAS = Threshold(0.1, "Ng, Machine Learning Yearning (bias/variance)")
#: C1: smallest avoidable bias reported as the dominant term. Source: proposal.
AVOIDABLE_BIAS_FLOOR = Threshold(0.02, "proposal")
#: C2: (val_loss − train_loss) / train_loss above this is a generalisation gap.
#: Source: SageMaker Overfit ratio 0.1; Deepchecks relative degradation 0.1.
OVERFIT_LOSS_RATIO = Threshold(0.1, "SageMaker Overfit ratio 0.1; Deepchecks 0.1")
#: C2: train − val score at or above this (train <= 0.9) is overfitting.
#: Source: AUTOTRAINER 0.10.
OVERFIT_GAP = Threshold(0.10, "AUTOTRAINER 0.10 (train <= 0.9)")
#: C2: train − val score at or above this (train > 0.9) is overfitting.
#: Source: AUTOTRAINER 0.07.
OVERFIT_GAP_HIGH_TRAIN = Threshold(0.07, "AUTOTRAINER 0.07 (train > 0.9)")
#: C2: training score above which the tighter gap applies. Source: AUTOTRAINER 0.9.
OVERFIT_TRAIN_SPLIT = Threshold(0.9, "AUTOTRAINER 0.9")
#: C3: evaluations without a validation improvement while the training loss falls.
#: Source: PyTorch Lightning EarlyStopping patience=3.
OVERFIT_PATIENCE = Threshold(3, "Lightning EarlyStopping patience=3")
#: C3: relative change that counts as an improvement or a rise.
#: Source: SageMaker Overtraining delta=0.01.
OVERFIT_DELTA = Threshold(0.01, "SageMaker Overtraining delta=0.01")
#: C6: fewest learning-curve sizes for a power-law fit. Source: proposal.
LEARNING_CURVE_SIZES = Threshold(3, "proposal")
#: C6: predicted relative error reduction from 2x data that counts as "still improving".
#: Source: sklearn learning-curve prose rules; power-law fit and 5% = proposal.
MORE_DATA_GAIN = Threshold(0.05, "sklearn learning-curve rules; power law, 5% = proposal")
#: C6: val − train error gap above which the gap is "large".
#: Source: AUTOTRAINER 0.10 (score); SageMaker Overfit ratio 0.1 (loss, relative).
MORE_DATA_GAP = Threshold(0.1, "AUTOTRAINER 0.10; SageMaker Overfit ratio 0.1")

# ------------------------------------------------------------------ D. capacity, baselines
#: D2/D3: validation-score margin by which a probe must beat another. Source: proposal.
CAPACITY_SCORE_MARGIN = Threshold(0.02, "proposal")
#: D2/D3: relative loss reduction by which a probe must beat another. Source: proposal.
CAPACITY_LOSS_MARGIN = Threshold(0.1, "proposal")
#: D1: a net whose gain over the best baseline is below this does not clearly beat it.
#: Source: Deepchecks SimpleModelComparison min_allowed_gain=0.1.
BELOW_BASELINE_GAIN = Threshold(0.1, "Deepchecks SimpleModelComparison gain 0.1")
#: D1: a linear baseline ahead of the net by at least this score is a clear defeat.
#: Source: proposal (about twice the sampling noise of an accuracy on ~400 rows).
LINEAR_SHORTFALL = Threshold(0.05, "proposal")

# ------------------------------------------------------------------ quoted from checks
#: A5: relative error above which :func:`deepdx.diagnose.gradient_check.gradcheck` calls a
#: gradient wrong. Quoted in findings; the check applies its own constant.
GRADCHECK_WRONG = Threshold(_gradcheck.WRONG_REL_ERROR, "CS231n gradient checks: > 1e-2 wrong")
#: A5: relative error above which the check calls a gradient suspect. Quoted as above.
GRADCHECK_OK = Threshold(_gradcheck.OK_REL_ERROR, "CS231n gradient checks: < 1e-4 okay")
