from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from deepdx.estimators import MLPClassifier
from deepdx.exceptions import InvalidParameterError
from deepdx.train import Callback, EpochRecord, History, fit
from deepdx.train.tensorboard import TensorBoardLogger, export_tensorboard, write_history
from tests.train.conftest import make_mlp

needs_tensorboard = pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is None,
    reason="the tensorboard package (the 'tensorboard' extra) is not installed",
)


def _events(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "histograms": 0})
    accumulator.Reload()
    return accumulator


def _scalars(accumulator, tag):
    events = accumulator.Scalars(tag)
    return [e.step for e in events], np.array([e.value for e in events])


class _GradNormMonitor(Callback):
    """Logs a per-step series and an epoch extra, as the diagnosis monitors do."""

    def on_step_end(self, state):
        norm = sum(float(p.grad.norm()) ** 2 for p in state.model.parameters()) ** 0.5
        state.history.log_step("grad_norm", norm, step=state.step)

    def on_epoch_end(self, state):
        state.history.log_epoch("weight_norm", float(state.model[0].weight.detach().norm()))


class _ScalarRecorder:
    def __init__(self):
        self.calls = []

    def add_scalar(self, tag, value, step):
        self.calls.append((tag, value, step))


def _history() -> History:
    history = History(metric="accuracy")
    for epoch in (1, 2):
        history.log_steps("loss", np.array([1.0, 0.5]) / epoch, first_step=2 * epoch - 1)
        record = EpochRecord(epoch, train_loss=0.75 / epoch, lr=0.1, time=0.5 * epoch)
        record.val_loss, record.val_metric = 0.8 / epoch, 0.5 + 0.2 * epoch
        record.extra["gap"] = 0.05 * epoch
        history.epochs.append(record)
    return history


# ---------------------------------------------------------------- without tensorboard


def test_write_history_writes_every_record_once():
    history, writer = _history(), _ScalarRecorder()
    cursor = write_history(writer, history)
    expected = {
        ("epoch/train_loss", 0.75, 1),
        ("epoch/val_loss", 0.4, 2),
        ("epoch/val_accuracy", 0.9, 2),
        ("epoch/lr", 0.1, 2),
        ("epoch/time", 1.0, 2),
        ("epoch/gap", 0.1, 2),
        ("step/loss", 0.25, 4),
    }
    assert expected <= {(tag, round(value, 12), step) for tag, value, step in writer.calls}
    assert len(writer.calls) == 2 * 6 + 4  # 6 epoch scalars per epoch, 4 steps
    assert "epoch/train_accuracy" not in {tag for tag, _, _ in writer.calls}  # missing
    history.log_step("loss", 0.1, step=5)
    write_history(writer, history, cursor=cursor)
    assert writer.calls[-1] == ("step/loss", 0.1, 5) and len(writer.calls) == 17


def test_tensorboard_logger_rejects_negative_histogram_every():
    with pytest.raises(InvalidParameterError, match="histogram_every"):
        TensorBoardLogger("runs", histogram_every=-1)


def test_export_tensorboard_without_tensorboard_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import now fails
    with pytest.raises(ImportError, match=r"pip install 'deepdx\[tensorboard\]'"):
        export_tensorboard(_history(), tmp_path)


# ---------------------------------------------------------------- with tensorboard


@needs_tensorboard
def test_tensorboard_logger_writes_history_scalars_and_histograms(blobs, tmp_path):
    train, val = blobs
    model = make_mlp()
    logger = TensorBoardLogger(tmp_path, histogram_every=2)
    history = fit(model, train, val, epochs=4, lr=0.05, callbacks=[_GradNormMonitor(), logger])
    events = _events(tmp_path)
    for tag, name in [("epoch/train_loss", "train_loss"), ("epoch/val_loss", "val_loss"),
                      ("epoch/val_accuracy", "val_metric"), ("epoch/lr", "lr"),
                      ("epoch/weight_norm", "weight_norm")]:  # fmt: skip
        steps, values = _scalars(events, tag)
        assert steps == [1, 2, 3, 4]
        np.testing.assert_allclose(values, history.series(name), rtol=1e-6)
    for name in ("loss", "grad_norm"):
        steps, values = _scalars(events, f"step/{name}")
        index, expected = history.step_series(name)
        assert steps == index.tolist()
        np.testing.assert_allclose(values, expected, rtol=1e-6)
    weights = events.Histograms("weights/0.weight")
    assert [h.step for h in weights] == [2, 4]
    last, final = weights[-1].histogram_value, model[0].weight.detach()
    assert last.num == final.numel()
    assert last.min == pytest.approx(float(final.min())) and last.max == pytest.approx(
        float(final.max())
    )
    assert [h.step for h in events.Histograms("gradients/3.bias")] == [2, 4]


@needs_tensorboard
def test_tensorboard_logger_resumed_run_writes_each_epoch_once(blobs, tmp_path):
    train, val = blobs
    logdir, checkpoints = tmp_path / "tb", tmp_path / "ckpt"
    options = {"lr": 0.05, "checkpoint_dir": checkpoints}
    fit(make_mlp(), train, val, epochs=2, callbacks=[TensorBoardLogger(logdir)], **options)
    fit(make_mlp(), train, val, epochs=4, resume=True,
        callbacks=[TensorBoardLogger(logdir)], **options)  # fmt: skip
    steps, _ = _scalars(_events(logdir), "epoch/train_loss")
    assert sorted(steps) == [1, 2, 3, 4]


@needs_tensorboard
def test_export_tensorboard_writes_finished_history(tmp_path):
    history = _history()
    export_tensorboard(history, tmp_path / "run")
    events = _events(tmp_path / "run")
    steps, values = _scalars(events, "epoch/val_accuracy")
    assert steps == [1, 2]
    np.testing.assert_allclose(values, history.series("val_metric"), rtol=1e-6)
    steps, values = _scalars(events, "step/loss")
    assert steps == [1, 2, 3, 4]
    np.testing.assert_allclose(values, history.steps["loss"], rtol=1e-6)
    assert not events.Tags()["histograms"]


@needs_tensorboard
def test_tensorboard_logger_works_as_estimator_callback(blobs, tmp_path):
    train, _ = blobs
    clf = MLPClassifier((4,), max_iter=2, random_state=0, callbacks=[TensorBoardLogger(tmp_path)])
    clf.fit(train.X, train.y)
    steps, values = _scalars(_events(tmp_path), "epoch/train_loss")
    assert steps == [1, 2]
    np.testing.assert_allclose(values, clf.history_.series("train_loss"), rtol=1e-6)
