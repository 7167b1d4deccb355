import pytest
import torch

from deepdx.exceptions import InvalidParameterError
from deepdx.train import Callback, EarlyStopping, fit
from tests.train.conftest import make_mlp

SETTINGS = dict(batch_size=32, optimizer="adam", schedule="exponential", seed=5)


def test_resume_5_plus_5_equals_10_epochs_bitwise(blobs, tmp_path):
    train, val = blobs
    straight = make_mlp(dropout=0.3)
    full = fit(
        straight,
        train,
        val,
        epochs=10,
        checkpoint_dir=tmp_path / "a",
        **SETTINGS,
        callbacks=[EarlyStopping(patience=50)],
    )
    first = make_mlp(dropout=0.3)
    fit(
        first,
        train,
        val,
        epochs=5,
        checkpoint_dir=tmp_path / "b",
        **SETTINGS,
        callbacks=[EarlyStopping(patience=50)],
    )
    resumed = make_mlp(dropout=0.3, seed=99)  # different init: everything must come from disk
    history = fit(
        resumed,
        train,
        val,
        epochs=10,
        checkpoint_dir=tmp_path / "b",
        resume=True,
        **SETTINGS,
        callbacks=[EarlyStopping(patience=50)],
    )
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert history.steps["loss"] == full.steps["loss"]
    assert [r.val_loss for r in history.epochs] == [r.val_loss for r in full.epochs]
    assert [e["kind"] for e in history.events] == ["resume", "restore_best"]


class Crash(Callback):
    """Simulate a killed process: raise as the step after ``epoch`` begins."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_step_begin(self, state):
        if state.epoch > self.epoch:
            raise KeyboardInterrupt


def test_resume_after_interruption_with_cosine_schedule_is_bitwise(blobs, tmp_path):
    train, val = blobs
    settings = {**SETTINGS, "schedule": "cosine", "epochs": 10}
    straight = make_mlp(dropout=0.3)
    fit(straight, train, val, checkpoint_dir=tmp_path / "a", **settings)
    with pytest.raises(KeyboardInterrupt):
        fit(
            make_mlp(dropout=0.3),
            train,
            val,
            checkpoint_dir=tmp_path / "b",
            **settings,
            callbacks=[Crash(5)],
        )
    resumed = make_mlp(seed=1, dropout=0.3)
    fit(
        resumed,
        train,
        val,
        checkpoint_dir=tmp_path / "b",
        resume=True,
        **settings,
        callbacks=[Crash(99)],
    )
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_resume_refuses_more_epochs_when_the_schedule_depends_on_them(blobs, tmp_path):
    train, _ = blobs
    fit(make_mlp(), train, epochs=2, schedule="cosine", checkpoint_dir=tmp_path)
    with pytest.raises(InvalidParameterError, match="epochs: 2 -> 4"):
        fit(make_mlp(), train, epochs=4, schedule="cosine", checkpoint_dir=tmp_path, resume=True)


def test_resume_without_checkpoint_starts_fresh(blobs, tmp_path):
    train, _ = blobs
    history = fit(make_mlp(), train, epochs=2, checkpoint_dir=tmp_path, resume=True)
    assert len(history.epochs) == 2 and not any(e["kind"] == "resume" for e in history.events)


def test_resume_with_changed_settings_is_refused(blobs, tmp_path):
    train, _ = blobs
    fit(make_mlp(), train, epochs=1, checkpoint_dir=tmp_path, lr=0.01)
    with pytest.raises(InvalidParameterError, match=r"lr: 0.01 -> 0.02"):
        fit(make_mlp(), train, epochs=2, checkpoint_dir=tmp_path, resume=True, lr=0.02)


def test_resume_needs_a_checkpoint_dir(blobs):
    with pytest.raises(InvalidParameterError, match="resume=True needs checkpoint_dir"):
        fit(make_mlp(), blobs[0], resume=True)


def test_resume_leaves_callers_global_rng_alone(blobs, tmp_path):
    train, _ = blobs
    fit(make_mlp(dropout=0.5), train, epochs=1, checkpoint_dir=tmp_path)
    before = torch.get_rng_state()
    fit(make_mlp(dropout=0.5), train, epochs=2, checkpoint_dir=tmp_path, resume=True)
    assert torch.equal(before, torch.get_rng_state())
