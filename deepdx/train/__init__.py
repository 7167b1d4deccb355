"""Training: ``fit``, its configuration, history, callbacks and checkpoints."""

from deepdx.train.callbacks import Callback, TrainState
from deepdx.train.checkpointer import Checkpointer
from deepdx.train.config import PRECISIONS, SCHEDULES, TrainConfig
from deepdx.train.early_stopping import EarlyStopping
from deepdx.train.history import EpochRecord, History
from deepdx.train.loop import fit
from deepdx.train.objectives import (
    LossFn,
    Objective,
    cross_entropy_loss,
    default_loss,
    evaluate,
    mixed_precision_loss,
    predict,
    reconstruction_loss,
    squared_error_loss,
)
from deepdx.train.optimizers import (
    OptimizerEntry,
    make_optimizer,
    optimizer_names,
    register_optimizer,
)
from deepdx.train.progress import ProgressBar

__all__ = [
    "PRECISIONS",
    "SCHEDULES",
    "Callback",
    "Checkpointer",
    "EarlyStopping",
    "EpochRecord",
    "History",
    "LossFn",
    "Objective",
    "OptimizerEntry",
    "ProgressBar",
    "TrainConfig",
    "TrainState",
    "cross_entropy_loss",
    "default_loss",
    "evaluate",
    "fit",
    "make_optimizer",
    "mixed_precision_loss",
    "optimizer_names",
    "predict",
    "reconstruction_loss",
    "register_optimizer",
    "squared_error_loss",
]
