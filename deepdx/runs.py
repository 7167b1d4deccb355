"""A *run*: data, model spec and training settings, trained into a self-describing directory.

``deepdx train`` and ``deepdx evaluate`` are thin shells over :func:`train_run` and
:func:`evaluate_run`. A run directory holds::

    run.json            RunConfig, dataset description, standardizer state, versions
    checkpoints/        resumable checkpoints (safetensors + JSON), the last two kept
    model.safetensors   the final weights (the best epoch's when early stopping restored them)
    history.json/.csv   the training records
    metrics.json        loss and metric on the train / validation / test splits

Nothing in it is ever unpickled; a user's own model file (``FILE.py:FUNCTION``) is
imported again when the run is loaded, as the user asked.
"""

from __future__ import annotations

import dataclasses
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import deepdx
from deepdx.data import Dataset, Splits, Standardizer, load, prepare
from deepdx.exceptions import DataError, NotFittedError, UnsafeFileError
from deepdx.io import atomic_write_json, atomic_write_text, load_tensors, read_json, save_tensors
from deepdx.nets import build_model
from deepdx.train import Callback, History, TrainConfig, evaluate, fit
from deepdx.train.distributed import is_main_process

__all__ = ["LoadedRun", "RunConfig", "RunResult", "evaluate_run", "load_run", "train_run"]


@dataclass(frozen=True)
class RunConfig:
    """What a run trains: data, model and training settings.

    Parameters
    ----------
    data : str, default="digits"
        A registered dataset name or a file path (see ``deepdx datasets``).
    target : str or None
        Target column for CSV files.
    task : str or None
        Override the inferred task.
    model : str, default="mlp"
        Model spec (``mlp:256,128``, ``conv``, ``FILE.py:FUNCTION``).
    val_size, test_size : float
        Fractions held out for validation and test (a dataset's own test set wins).
    train : TrainConfig
        Settings of :func:`deepdx.train.fit`; ``train.seed`` also seeds the split and init.
    """

    data: str = "digits"
    target: str | None = None
    task: str | None = None
    model: str = "mlp"
    val_size: float = 0.1
    test_size: float = 0.2
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a JSON-able dict."""
        return {**dataclasses.asdict(self), "train": self.train.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Rebuild a config from :meth:`to_dict` output."""
        return cls(**{**data, "train": TrainConfig.from_dict(data["train"])})


@dataclass
class RunResult:
    """What :func:`train_run` produced: the directory, the history and the split metrics."""

    directory: Path
    history: History
    metrics: dict[str, dict[str, float]]
    model: nn.Module


@dataclass
class LoadedRun:
    """A trained run read back from its directory."""

    config: RunConfig
    model: nn.Module
    standardizer: Standardizer | None
    meta: dict[str, Any]


def load_dataset(config: RunConfig) -> Dataset:
    """Load the run's dataset by name or path."""
    options = {k: v for k, v in (("target", config.target), ("task", config.task)) if v}
    return load(config.data, **options)


def split_dataset(config: RunConfig, dataset: Dataset) -> tuple[Splits, Standardizer | None]:
    """Split and standardize exactly as the run did (seeded by ``train.seed``)."""
    return prepare(
        dataset, val_size=config.val_size, test_size=config.test_size, seed=config.train.seed
    )


def train_run(
    config: RunConfig,
    directory: str | Path,
    *,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
) -> RunResult:
    """Train the run ``config`` into ``directory`` and evaluate it on every split.

    Parameters
    ----------
    config : RunConfig
        What to train.
    directory : str or Path
        Output directory (created).
    resume : bool, default=False
        Continue from the directory's latest checkpoint.
    callbacks : sequence of Callback, default=()
        Passed to :func:`deepdx.train.fit`.

    Returns
    -------
    RunResult
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(config)
    splits, standardizer = split_dataset(config, dataset)
    model = build_model(
        config.model, dataset.sample_shape, dataset.n_outputs, seed=config.train.seed
    )
    main = is_main_process()
    if main:
        atomic_write_json(directory / "run.json", _describe(config, dataset, standardizer))
    history = fit(
        model,
        splits.train,
        splits.val,
        config=config.train,
        callbacks=callbacks,
        checkpoint_dir=directory / "checkpoints",
        resume=resume,
    )
    device = next(model.parameters()).device
    metrics = {
        name: evaluate(model, part, device=device)
        for name, part in (("train", splits.train), ("val", splits.val), ("test", splits.test))
    }
    if main:  # in distributed training, only rank 0 writes
        save_tensors(directory / "model.safetensors", dict(model.state_dict()))
        atomic_write_json(directory / "metrics.json", metrics)
        atomic_write_text(directory / "history.json", history.to_json())
        atomic_write_text(directory / "history.csv", history.to_csv())
    return RunResult(directory, history, metrics, model)


def load_run(directory: str | Path, *, allow_code: bool = False) -> LoadedRun:
    """Rebuild a trained run's model (with its final weights) and standardizer.

    Parameters
    ----------
    directory : str or Path
        A directory written by :func:`train_run`.
    allow_code : bool, default=False
        Allow a ``FILE.py:FUNCTION`` model spec: loading it imports (runs) that file, so
        it is refused unless the caller trusts the run directory.

    Raises
    ------
    NotFittedError
        If the directory holds no finished run.
    DataError
        If ``run.json`` or ``model.safetensors`` is malformed or does not fit the model.
    UnsafeFileError
        If the model is a user file and ``allow_code`` is False.
    """
    directory = Path(directory)
    if not (directory / "run.json").is_file() or not (directory / "model.safetensors").is_file():
        raise NotFittedError(
            f"{directory} is not a finished run directory (run.json and model.safetensors are "
            "missing); train one with `deepdx train --out DIR`."
        )
    meta, config = _read_meta(directory / "run.json")
    if ".py:" in config.model and not allow_code:
        raise UnsafeFileError(
            f"run.json in {directory} names the Python file {config.model!r} as its model; "
            "loading it runs that file. Pass allow_code=True (deepdx evaluate --allow-code) "
            "if you trust this run directory."
        )
    model = build_model(config.model, tuple(meta["sample_shape"]), meta["n_outputs"], seed=0)
    try:
        model.load_state_dict(load_tensors(directory / "model.safetensors"))
    except RuntimeError as exc:
        raise DataError(
            f"model.safetensors in {directory} does not fit the model {config.model!r} "
            f"described by run.json ({str(exc).splitlines()[0]}); the files belong to "
            "different runs."
        ) from exc
    standardizer = None
    if meta["standardizer"] is not None:
        standardizer = Standardizer()
        standardizer.load_state_dict(meta["standardizer"])
    return LoadedRun(config, model, standardizer, meta)


_META_TYPES = {
    "config": dict,
    "task": str,
    "sample_shape": list,
    "n_outputs": int,
    "class_names": list,
    "standardizer": (dict, type(None)),
}


def _read_meta(path: Path) -> tuple[dict[str, Any], RunConfig]:
    """Read and check ``run.json``; return it and its :class:`RunConfig`."""
    meta = read_json(path)
    problems = (
        ["it is not a JSON object"]
        if not isinstance(meta, dict)
        else [
            f"{key!r} must be {getattr(kind, '__name__', 'an object or null')}"
            for key, kind in _META_TYPES.items()
            if not isinstance(meta.get(key), kind)
        ]
    )
    if not problems:
        assert isinstance(meta, dict) and isinstance(meta["config"], dict)
        try:
            return meta, RunConfig.from_dict(meta["config"])
        except (TypeError, ValueError) as exc:
            problems = [f"its config is invalid ({exc})"]
    raise DataError(
        f"{path} is not a valid run.json: {'; '.join(problems)}. It was edited or belongs to "
        "another program; train the run again."
    )


def evaluate_run(
    directory: str | Path,
    data: str | None = None,
    *,
    target: str | None = None,
    allow_code: bool = False,
) -> dict[str, float]:
    """Score a trained run on its own test split, or on other data.

    Parameters
    ----------
    directory : str or Path
        A directory written by :func:`train_run`.
    data : str, optional
        A dataset name or file to score instead of the run's test split; it is standardized
        with the run's training statistics and must have the same sample shape and classes.
    target : str, optional
        Target column when ``data`` is a CSV file.
    allow_code : bool, default=False
        Allow a run whose model is a user's Python file (see :func:`load_run`).

    Returns
    -------
    dict
        ``loss`` and the task's metric (``accuracy`` or ``r2``), plus ``n_samples``.
    """
    run = load_run(directory, allow_code=allow_code)
    if data is None:
        dataset = load_dataset(run.config)
        part = split_dataset(run.config, dataset)[0].test
    else:
        part = load(data, **({"target": target} if target else {}))
        _check_matches(part, run.meta)
        part = run.standardizer.transform(part) if run.standardizer is not None else part
    scores = evaluate(run.model, part)
    return {**scores, "n_samples": float(len(part))}


def _describe(
    config: RunConfig, dataset: Dataset, standardizer: Standardizer | None
) -> dict[str, Any]:
    """Everything needed to rebuild the run's model and preprocessing."""
    return {
        "config": config.to_dict(),
        "dataset": dataset.name,
        "task": dataset.task,
        "sample_shape": list(dataset.sample_shape),
        "n_outputs": dataset.n_outputs,
        "class_names": list(dataset.class_names),
        "standardizer": None if standardizer is None else standardizer.state_dict(),
        "versions": {
            "deepdx": deepdx.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }


def _check_matches(dataset: Dataset, meta: dict[str, Any]) -> None:
    """Raise unless ``dataset`` has the run's task, sample shape and classes."""
    expected = (meta["task"], tuple(meta["sample_shape"]), tuple(meta["class_names"]))
    got = (dataset.task, dataset.sample_shape, dataset.class_names)
    if expected != got:
        raise DataError(
            f"data {dataset.name!r} (task, sample shape, classes) = {got} does not match the "
            f"run's {expected}; evaluate on data with the same features and labels."
        )
