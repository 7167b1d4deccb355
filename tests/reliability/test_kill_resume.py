"""SIGKILL a training run at random points, resume it, and get the uninterrupted weights.

Each trial starts ``tests.reliability._train_script`` (8 epochs, a checkpoint after each),
kills it with SIGKILL, resumes it with ``--resume`` and compares the final
``model.safetensors`` bit for bit with a run that was never interrupted. Half the trials
aim at a checkpoint write: the script slows the save of a random epoch down (a flag of the
script, not of the library) and the test kills it while the staging folder
``.tmp-epoch-*`` exists; the other half kill after a random delay. Delays and epochs come
from a seeded generator; where the kill lands still depends on timing, so each trial
records what it found.

Runs are forked from the test process (``multiprocessing`` "fork"), which imports torch
once instead of once per run; the forked child is its own process and dies by SIGKILL like
any other. ``test_kill_resume_through_python_m`` starts the script with ``python -m``.
"""

import multiprocessing
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from deepdx._random import numpy_rng
from deepdx.io import TEMP_PREFIX, load_tensors, save_tensors
from deepdx.train import fit
from deepdx.train.checkpoint import save_checkpoint

from . import _train_script

EPOCHS = 8
SAVE_DELAY = 0.15  # seconds per tensor file of the slowed save: two files, 0.3 s staged
TIMEOUT = 120.0
ROOT = Path(__file__).resolve().parents[2]


class _Forked:
    """A training run forked from this process."""

    def __init__(self, argv: list[str]) -> None:
        self.process = multiprocessing.get_context("fork").Process(
            target=_train_script.main, args=(argv,)
        )
        with warnings.catch_warnings():  # Python >= 3.12 warns when torch's threads exist;
            # the child only runs single-threaded torch code and leaves with os._exit
            warnings.filterwarnings("ignore", ".*multi-threaded.*fork", DeprecationWarning)
            self.process.start()

    def alive(self) -> bool:
        return self.process.is_alive()

    def kill(self) -> None:
        self.process.kill()

    def wait(self) -> int:
        self.process.join(TIMEOUT)
        assert self.process.exitcode is not None, "the training run hung"
        return self.process.exitcode


class _Subprocess:
    """A training run started as ``python -m tests.reliability._train_script``."""

    def __init__(self, argv: list[str]) -> None:
        command = [sys.executable, "-m", "tests.reliability._train_script", *argv]
        self.process = subprocess.Popen(command, cwd=ROOT)

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.process.kill()

    def wait(self) -> int:
        return self.process.wait(TIMEOUT)


@dataclass
class Trial:
    """What one kill-and-resume trial found."""

    killed: bool  # the process died by SIGKILL (it had not finished yet)
    stale_before: list[str]  # .tmp-* entries in checkpoints/ after the kill
    stale_after: list[str]  # ... and after the resume
    weights: dict[str, bytes]


def _argv(out: Path, *extra: str) -> list[str]:
    return ["--out", str(out), "--epochs", str(EPOCHS), *extra]


def _weights(out: Path) -> dict[str, bytes]:
    return {k: t.numpy().tobytes() for k, t in load_tensors(out / "model.safetensors").items()}


def _stale(out: Path) -> list[str]:
    folder = out / "checkpoints"
    return sorted(p.name for p in folder.glob(f"{TEMP_PREFIX}*")) if folder.is_dir() else []


def _wait_until(condition, run) -> bool:
    """Poll every millisecond until ``condition()``; False if the run ended first."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if not run.alive() or time.monotonic() > deadline:
            return condition()
        time.sleep(0.001)
    return True


def _staging(out: Path, epoch: int) -> bool:
    return any((out / "checkpoints").glob(f"{TEMP_PREFIX}epoch-{epoch:06d}-*"))


def _trial(launch, out: Path, rng, *, aim_at_save: bool, run_seconds: float) -> Trial:
    """Start, SIGKILL, inspect, resume, inspect."""
    if aim_at_save:
        epoch = int(rng.integers(1, EPOCHS + 1))
        delay = ["--save-delay", str(SAVE_DELAY), "--delay-epoch", str(epoch)]
        run = launch(_argv(out, *delay))
        _wait_until(lambda: _staging(out, epoch), run)
        time.sleep(rng.uniform(0.0, SAVE_DELAY / 2))
    else:
        run = launch(_argv(out))
        _wait_until(lambda: (out / "started").exists(), run)
        time.sleep(rng.uniform(0.0, run_seconds))
    run.kill()
    killed = run.wait() in (-signal.SIGKILL, 128 + signal.SIGKILL)
    stale_before = _stale(out)
    assert launch(_argv(out, "--resume")).wait() == 0
    return Trial(killed, stale_before, _stale(out), _weights(out))


def _run_trials(tmp_path: Path, launch, n_trials: int, seed: int) -> list[Trial]:
    """Run the reference here (which warms torch up), time one launched run, then the trials."""
    assert _train_script.main(_argv(tmp_path / "reference")) == 0
    reference = _weights(tmp_path / "reference")
    run = launch(_argv(tmp_path / "uninterrupted"))
    assert _wait_until(lambda: (tmp_path / "uninterrupted" / "started").exists(), run)
    start = time.perf_counter()
    assert run.wait() == 0
    run_seconds = 1.2 * (time.perf_counter() - start)  # from set-up done to exit
    assert _weights(tmp_path / "uninterrupted") == reference  # same weights in another process
    rng = numpy_rng(seed)
    trials = [
        _trial(
            launch, tmp_path / f"trial-{i}", rng, aim_at_save=i % 2 == 0, run_seconds=run_seconds
        )
        for i in range(n_trials)
    ]
    for i, trial in enumerate(trials):
        assert trial.weights == reference, f"trial {i} resumed to different weights"
        assert trial.stale_after == [], f"trial {i} left {trial.stale_after} after resuming"
    assert any(t.killed for t in trials)
    assert any(t.stale_before for t in trials), "no kill landed in the middle of a save"
    return trials


def test_kill_resume_3_trials_match_uninterrupted_run_bitwise(tmp_path):
    _run_trials(tmp_path, _Forked, n_trials=3, seed=0)


@pytest.mark.slow
def test_kill_resume_20_trials_match_uninterrupted_run_bitwise(tmp_path):
    trials = _run_trials(tmp_path, _Forked, n_trials=20, seed=1)
    assert sum(t.killed for t in trials) >= 10


@pytest.mark.slow
def test_kill_resume_through_python_m(tmp_path):
    _run_trials(tmp_path, _Subprocess, n_trials=2, seed=2)


def test_resume_with_nothing_left_to_train_cleans_stale_entries(tmp_path):
    # a kill while the last save prunes old checkpoints leaves a retired folder; the
    # resume trains no epoch, so no save would clean it
    data, model = _train_script.make_data(0), _train_script.make_model(0)
    folder = tmp_path / "checkpoints"
    options = {"epochs": 2, "optimizer": "adam", "lr": 0.05, "batch_size": 32, "seed": 0}
    fit(model, data, checkpoint_dir=folder, **options)
    (folder / f"{TEMP_PREFIX}epoch-000000-old-dead").mkdir()  # what a killed prune leaves
    save_tensors(folder / f"{TEMP_PREFIX}epoch-000000-old-dead" / "model.safetensors", {})
    fit(model, data, checkpoint_dir=folder, resume=True, **options)
    assert _stale(tmp_path) == []


def test_stale_check_sees_entries_a_save_would_clean(tmp_path):
    folder = tmp_path / "checkpoints"
    (folder / f"{TEMP_PREFIX}epoch-000003-1a2b").mkdir(parents=True)
    assert _stale(tmp_path) == [f"{TEMP_PREFIX}epoch-000003-1a2b"]
    save_checkpoint(folder, model_state={}, state={}, tag="epoch-000004")
    assert _stale(tmp_path) == []
