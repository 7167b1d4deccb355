from __future__ import annotations

import copy
import json
import os
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
import torch
from torch import nn

import deepdx
import deepdx.train.checkpoint as checkpoint_module
from deepdx._random import make_generator, numpy_rng, seeded_torch
from deepdx.exceptions import DataError, InvalidParameterError, UnsafeFileError
from deepdx.io import atomic_write_json, read_json, sha256_file
from deepdx.train.checkpoint import (
    Checkpoint,
    clean_stale,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from tests.pickle_exploit import pickle_payload

FILES = ("model.safetensors", "state.safetensors", "state.json")

# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


def _model(seed: int) -> nn.Module:
    with seeded_torch(seed):
        return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = make_generator(0)
    X = torch.randn(32, 4, generator=gen)  # (n, 4)
    y = torch.randn(32, 1, generator=gen)  # (n, 1)
    return X, y


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int) -> None:
    X, y = _data()
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(X), y).backward()
        optimizer.step()


def _save(run: Path, tag: str, **state: object) -> Path:
    weights = {"W": torch.full((2, 2), float(len(tag)))}
    return save_checkpoint(run, model_state=weights, state=state, tag=tag)


def _forge_manifest(folder: Path, name: str) -> None:
    """Rewrite the manifest so it matches a replaced file (an attacker who edits both)."""
    manifest = read_json(folder / "manifest.json")
    assert isinstance(manifest, dict)
    path = folder / name
    manifest["files"][name] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    atomic_write_json(folder / "manifest.json", manifest)


def _visible(run: Path) -> list[str]:
    return sorted(p.name for p in run.iterdir())


OPTIMIZERS: dict[str, Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]] = {
    "adam": lambda p: torch.optim.Adam(p, lr=1e-2),
    "adamw-amsgrad": lambda p: torch.optim.AdamW(p, lr=1e-2, amsgrad=True),
    "sgd-momentum": lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9, nesterov=True),
    "rmsprop": lambda p: torch.optim.RMSprop(p, lr=1e-3, momentum=0.5, centered=True),
}

# ---------------------------------------------------------------------------------------
# Exact resume
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_checkpoint_resume_matches_uninterrupted_optimizer_bitwise(tmp_path, name):
    make_optimizer = OPTIMIZERS[name]
    model = _model(0)
    optimizer = make_optimizer(model.parameters())
    _train(model, optimizer, steps=3)
    saved = copy.deepcopy(optimizer.state_dict())
    save_checkpoint(
        tmp_path, model_state=model.state_dict(), state={"optimizer": saved}, tag="step-3"
    )
    _train(model, optimizer, steps=2)  # the uninterrupted run

    resumed = _model(1)  # different initial weights, overwritten by the checkpoint
    resumed_optimizer = make_optimizer(resumed.parameters())
    ckpt = load_checkpoint(tmp_path)
    resumed.load_state_dict(ckpt.model_state)
    resumed_optimizer.load_state_dict(ckpt.state["optimizer"])
    _train(resumed, resumed_optimizer, steps=2)

    for a, b in zip(model.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    assert list(ckpt.state["optimizer"]["state"]) == list(saved["state"])  # int keys, in order
    assert type(ckpt.state["optimizer"]["param_groups"][0].get("betas", ())) is tuple


def test_checkpoint_keeps_adam_step_as_0d_float_tensor(tmp_path):
    model = _model(0)
    optimizer = torch.optim.Adam(model.parameters())
    _train(model, optimizer, steps=2)
    _save(tmp_path, "a", optimizer=optimizer.state_dict())
    step = load_checkpoint(tmp_path).state["optimizer"]["state"][0]["step"]
    assert isinstance(step, torch.Tensor) and step.shape == () and step.dtype == torch.float32
    assert step.item() == 2.0


def test_checkpoint_round_trips_scheduler_states(tmp_path):
    def build(model: nn.Module):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        cycle = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1.0, total_steps=30)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=1)
        return optimizer, cycle, plateau

    def run(optimizer, cycle, plateau, steps: int) -> list[float]:
        lrs = []
        for i in range(steps):
            optimizer.step()
            cycle.step()
            plateau.step(1.0 + (i % 3))  # a noisy metric so the plateau logic fires
            lrs.append(optimizer.param_groups[0]["lr"])
        return lrs

    original = build(_model(0))
    run(*original, steps=5)
    state = {"cycle": original[1].state_dict(), "plateau": original[2].state_dict()}
    _save(tmp_path, "s", **state)
    expected = run(*original, steps=10)

    resumed = build(_model(0))
    ckpt = load_checkpoint(tmp_path)
    resumed[0].load_state_dict(original[0].state_dict())  # same param-group lr/momentum
    resumed[1].load_state_dict(ckpt.state["cycle"])
    resumed[2].load_state_dict(ckpt.state["plateau"])
    assert ckpt.state["plateau"]["mode_worse"] == float("inf")
    assert ckpt.state["plateau"] == state["plateau"]
    assert run(*resumed, steps=10) == expected


def test_checkpoint_round_trips_rng_states(tmp_path):
    generator = make_generator(7)
    torch.rand(3, generator=generator)
    numpy_generator = numpy_rng(5)
    numpy_generator.random(3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(11)
        torch.rand(3)
        _save(
            tmp_path,
            "rng",
            torch=torch.get_rng_state(),
            generator=generator.get_state(),
            numpy=numpy_generator.bit_generator.state,
        )
        expected = (torch.rand(4), torch.rand(4, generator=generator), numpy_generator.random(4))
        ckpt = load_checkpoint(tmp_path)
        torch.set_rng_state(ckpt.state["torch"])
        restored = torch.Generator()
        restored.set_state(ckpt.state["generator"])
        restored_numpy = numpy_rng(None)
        restored_numpy.bit_generator.state = ckpt.state["numpy"]
        assert torch.equal(torch.rand(4), expected[0])
    assert ckpt.state["torch"].dtype == torch.uint8
    assert torch.equal(torch.rand(4, generator=restored), expected[1])
    assert (restored_numpy.random(4) == expected[2]).all()


def test_checkpoint_preserves_tuples_int_keys_and_nan(tmp_path):
    state = {"pairs": {(1, "a"): (0.5, None)}, 3: [float("nan"), float("-inf")], "ok": True}
    _save(tmp_path, "t", **{"inner": state})
    back = load_checkpoint(tmp_path).state["inner"]
    assert list(back) == ["pairs", 3, "ok"]
    assert back["pairs"] == {(1, "a"): (0.5, None)} and type(back["pairs"][(1, "a")]) is tuple
    assert back[3][0] != back[3][0] and back[3][1] == float("-inf")  # NaN, -inf
    assert back["ok"] is True


def test_save_checkpoint_error_names_path_of_unsupported_object(tmp_path):
    state = {"optimizer": {"param_groups": [{"lr": 0.1, "foo": object()}]}}
    where = re.escape("state['optimizer']['param_groups'][0]['foo']")
    with pytest.raises(InvalidParameterError, match=f"{where} is a builtins.object"):
        save_checkpoint(tmp_path, model_state={}, state=state, tag="bad")
    assert _visible(tmp_path) == []  # nothing written


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tag": "../escape"}, "tag must be"),
        ({"tag": ".hidden"}, "tag must be"),
        ({"tag": ""}, "tag must be"),
        ({"tag": "latest.json"}, "tag must be"),
        ({"keep": 0}, "keep must be an int >= 1; got 0"),
        ({"keep": True}, "keep must be an int >= 1; got True"),
        ({"state": [1, 2]}, "state must be a dict; got a list"),
    ],
)
def test_save_checkpoint_refuses_invalid_arguments(tmp_path, kwargs, message):
    arguments = {"model_state": {}, "state": {}, "tag": "ok", "keep": 2, **kwargs}
    with pytest.raises(InvalidParameterError, match=re.escape(message)):
        save_checkpoint(tmp_path / "run", **arguments)
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------
# Layout, manifest, keep, replace
# ---------------------------------------------------------------------------------------


def test_save_checkpoint_writes_layout_and_manifest(tmp_path):
    folder = _save(tmp_path, "epoch-1", epoch=1)
    assert _visible(tmp_path) == ["epoch-1", "latest.json"]
    assert _visible(folder) == sorted([*FILES, "manifest.json"])
    manifest = json.loads((folder / "manifest.json").read_text())
    for name in FILES:
        assert manifest["files"][name]["sha256"] == sha256_file(folder / name)
        assert manifest["files"][name]["size"] == (folder / name).stat().st_size
    assert manifest["versions"]["torch"] == torch.__version__
    assert manifest["versions"]["deepdx"] == deepdx.__version__
    assert manifest["versions"]["python"] == "{}.{}.{}".format(*sys.version_info[:3])
    assert manifest["tag"] == "epoch-1" and "created" in manifest
    assert json.loads((tmp_path / "latest.json").read_text())["tag"] == "epoch-1"


@pytest.mark.parametrize("keep", [1, 2, 3])
def test_save_checkpoint_keeps_only_newest(tmp_path, keep):
    for i in range(5):
        save_checkpoint(tmp_path, model_state={}, state={"i": i}, tag=f"step-{i}", keep=keep)
    expected = [f"step-{i}" for i in range(5 - keep, 5)]
    assert _visible(tmp_path) == sorted([*expected, "latest.json"])
    assert load_checkpoint(tmp_path).state == {"i": 4}


def test_save_checkpoint_never_deletes_foreign_folders(tmp_path):
    (tmp_path / "notes").mkdir()
    for i in range(3):
        save_checkpoint(tmp_path, model_state={}, state={}, tag=f"s{i}", keep=1)
    assert _visible(tmp_path) == ["latest.json", "notes", "s2"]


def test_save_checkpoint_replaces_same_tag(tmp_path):
    _save(tmp_path, "last", epoch=1)
    _save(tmp_path, "last", epoch=2)
    assert _visible(tmp_path) == ["last", "latest.json"]
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.state == {"epoch": 2} and ckpt.manifest["sequence"] == 2


def test_load_checkpoint_puts_model_on_device_and_state_on_cpu(tmp_path):
    _save(tmp_path, "a", rng=torch.get_rng_state())
    ckpt = load_checkpoint(tmp_path / "a", device="cpu")
    assert isinstance(ckpt, Checkpoint) and ckpt.path == tmp_path / "a" and ckpt.tag == "a"
    assert torch.equal(ckpt.model_state["W"], torch.full((2, 2), 1.0))
    assert ckpt.state["rng"].device.type == "cpu"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_load_checkpoint_moves_model_state_to_cuda(tmp_path):
    model = _model(0).cuda()
    optimizer = torch.optim.Adam(model.parameters())
    torch.stack([p.sum() for p in model.parameters()]).sum().backward()
    optimizer.step()
    save_checkpoint(
        tmp_path,
        model_state=model.state_dict(),
        state={"optimizer": optimizer.state_dict()},
        tag="gpu",
    )
    ckpt = load_checkpoint(tmp_path, device="cuda")
    assert all(t.device.type == "cuda" for t in ckpt.model_state.values())
    assert ckpt.state["optimizer"]["state"][0]["exp_avg"].device.type == "cpu"
    fresh = torch.optim.Adam(model.parameters())
    fresh.load_state_dict(ckpt.state["optimizer"])
    assert fresh.state_dict()["state"][0]["exp_avg"].device.type == "cuda"


# ---------------------------------------------------------------------------------------
# Interrupted saves
# ---------------------------------------------------------------------------------------


def _assert_previous_intact(run: Path) -> None:
    assert _visible(run) == ["latest.json", "step-1"]  # no half checkpoint, no temp folder
    assert load_checkpoint(run).state == {"epoch": 1}


def test_save_checkpoint_interrupted_tensor_write_leaves_previous(tmp_path, monkeypatch):
    _save(tmp_path, "step-1", epoch=1)
    real = checkpoint_module.save_tensors

    def dies_mid_write(path, tensors, metadata=None):
        if Path(path).name == "state.safetensors":
            Path(path).write_bytes(b"half a fi")
            raise OSError("disk full")
        return real(path, tensors, metadata)

    monkeypatch.setattr(checkpoint_module, "save_tensors", dies_mid_write)
    with pytest.raises(OSError, match="disk full"):
        _save(tmp_path, "step-2", epoch=2)
    _assert_previous_intact(tmp_path)


def test_save_checkpoint_interrupted_rename_leaves_previous(tmp_path, monkeypatch):
    _save(tmp_path, "step-1", epoch=1)
    real = os.replace

    def dies_on_final_rename(src, dst):
        if Path(dst).name == "step-2":
            raise OSError("killed")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", dies_on_final_rename)
    with pytest.raises(OSError, match="killed"):
        _save(tmp_path, "step-2", epoch=2)
    monkeypatch.undo()
    _assert_previous_intact(tmp_path)


def test_save_checkpoint_interrupted_replace_of_same_tag_restores_old(tmp_path, monkeypatch):
    _save(tmp_path, "step-1", epoch=1)
    real = os.replace

    def dies_on_final_rename(src, dst):
        if Path(dst).name == "step-1" and "-old-" not in Path(src).name:  # not the restore
            raise OSError("killed")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", dies_on_final_rename)
    with pytest.raises(OSError, match="killed"):
        _save(tmp_path, "step-1", epoch=2)
    monkeypatch.undo()
    _assert_previous_intact(tmp_path)


def test_save_checkpoint_cleans_temp_folder_left_by_killed_run(tmp_path):
    _save(tmp_path, "step-1", epoch=1)
    stale = tmp_path / ".tmp-step-2-0badf00d"  # what a SIGKILL mid-save leaves behind
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    (tmp_path / ".tmp-latest.json-0123456789ab").write_bytes(b'{"tag": "st')
    assert latest_checkpoint(tmp_path) == tmp_path / "step-1"
    assert load_checkpoint(tmp_path).state == {"epoch": 1}

    _save(tmp_path, "step-2", epoch=2)
    assert _visible(tmp_path) == ["latest.json", "step-1", "step-2"]
    assert load_checkpoint(tmp_path).state == {"epoch": 2}


def test_clean_stale_removes_only_temp_entries(tmp_path):
    _save(tmp_path, "step-1", epoch=1)
    (tmp_path / ".tmp-step-2-dead").mkdir()
    (tmp_path / ".tmp-x").write_bytes(b"")
    removed = clean_stale(tmp_path)
    assert sorted(p.name for p in removed) == [".tmp-step-2-dead", ".tmp-x"]
    assert _visible(tmp_path) == ["latest.json", "step-1"]
    assert clean_stale(tmp_path / "missing") == []


# ---------------------------------------------------------------------------------------
# Integrity and hostile files
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FILES)
def test_load_checkpoint_refuses_flipped_byte(tmp_path, name):
    folder = _save(tmp_path, "a", epoch=1, w=torch.ones(3))
    path = folder / name
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(UnsafeFileError, match=re.escape(name) + " does not match"):
        load_checkpoint(tmp_path)


def test_load_checkpoint_refuses_changed_size(tmp_path):
    folder = _save(tmp_path, "a", epoch=1)
    with open(folder / "state.json", "ab") as handle:
        handle.write(b" ")
    with pytest.raises(UnsafeFileError, match=r"state\.json does not match its manifest"):
        load_checkpoint(folder)


@pytest.mark.parametrize("name", ["model.safetensors", "state.safetensors"])
def test_load_checkpoint_refuses_planted_pickle_by_hash(tmp_path, name):
    folder = _save(tmp_path, "a", w=torch.ones(2))
    sentinel = tmp_path / "pwned"
    (folder / name).write_bytes(pickle_payload(sentinel))
    with pytest.raises(UnsafeFileError, match=re.escape(name) + " does not match"):
        load_checkpoint(tmp_path)
    assert not sentinel.exists()


@pytest.mark.parametrize("name", ["model.safetensors", "state.safetensors"])
def test_load_checkpoint_refuses_planted_pickle_with_forged_manifest(tmp_path, name):
    folder = _save(tmp_path, "a", w=torch.ones(2))
    sentinel = tmp_path / "pwned"
    (folder / name).write_bytes(pickle_payload(sentinel))
    _forge_manifest(folder, name)
    with pytest.raises(UnsafeFileError, match=re.escape(name) + " is a Python pickle"):
        load_checkpoint(tmp_path)
    assert not sentinel.exists()


def test_load_checkpoint_refuses_huge_declared_header(tmp_path):
    folder = _save(tmp_path, "a")
    (folder / "model.safetensors").write_bytes((2**50).to_bytes(8, "little") + b"{}")
    _forge_manifest(folder, "model.safetensors")
    with pytest.raises(UnsafeFileError, match="max_header_bytes"):
        load_checkpoint(folder)


def test_load_checkpoint_refuses_missing_file(tmp_path):
    folder = _save(tmp_path, "a")
    (folder / "state.safetensors").unlink()
    with pytest.raises(DataError, match=r"state\.safetensors is missing"):
        load_checkpoint(folder)


def test_load_checkpoint_refuses_foreign_manifest(tmp_path):
    folder = _save(tmp_path, "a")
    atomic_write_json(folder / "manifest.json", {"format": "other"})
    with pytest.raises(DataError, match="not a deepdx checkpoint manifest"):
        load_checkpoint(folder)


# ---------------------------------------------------------------------------------------
# latest.json and fallback
# ---------------------------------------------------------------------------------------


def test_latest_checkpoint_follows_latest_json(tmp_path):
    _save(tmp_path, "b", n=1)
    _save(tmp_path, "a", n=2)  # newer, although it sorts first by name
    assert latest_checkpoint(tmp_path) == tmp_path / "a"
    atomic_write_json(tmp_path / "latest.json", {"tag": "b"})
    assert load_checkpoint(tmp_path).state == {"n": 1}


def test_load_checkpoint_falls_back_when_latest_json_missing(tmp_path):
    _save(tmp_path, "b", n=1)
    _save(tmp_path, "a", n=2)
    (tmp_path / "latest.json").unlink()
    assert load_checkpoint(tmp_path).state == {"n": 2}


def test_load_checkpoint_falls_back_when_latest_points_to_missing_folder(tmp_path):
    _save(tmp_path, "b", n=1)
    _save(tmp_path, "a", n=2)
    atomic_write_json(tmp_path / "latest.json", {"tag": "gone"})
    assert load_checkpoint(tmp_path).state == {"n": 2}


def test_load_checkpoint_fallback_skips_incomplete_newest(tmp_path):
    _save(tmp_path, "b", n=1)
    newest = _save(tmp_path, "a", n=2)
    (tmp_path / "latest.json").unlink()
    with open(newest / "model.safetensors", "ab") as handle:
        handle.write(b"\0")
    assert latest_checkpoint(tmp_path) == tmp_path / "b"
    assert load_checkpoint(tmp_path).state == {"n": 1}


def test_load_checkpoint_refuses_malformed_latest_json(tmp_path):
    _save(tmp_path, "a")
    atomic_write_json(tmp_path / "latest.json", {"tag": "../../elsewhere"})
    with pytest.raises(DataError, match="does not name a checkpoint folder"):
        load_checkpoint(tmp_path)


def test_load_checkpoint_refuses_empty_or_missing_directory(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    assert latest_checkpoint(tmp_path / "missing") is None
    with pytest.raises(DataError, match="holds no complete checkpoint"):
        load_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing")
