"""Untrusted files never run code: a pickle payload in every file type deepdx reads.

Each payload would create the ``sentinel`` folder when unpickled (``payloads.Plant``); the
first tests prove that the payloads are live, the rest that every reader refuses them with
a specific error and the sentinel never appears. Code-execution routes that are not
pickles are here too: Pillow's EPS decoder (it starts Ghostscript) and a run directory
whose ``run.json`` names a Python file.
"""

import gzip
import io
import json
import pickle
import zipfile

import numpy as np
import PIL.EpsImagePlugin
import pytest
import torch

from deepdx.data import load, read_csv, read_idx, read_image_folder, read_npz
from deepdx.exceptions import DataError, InvalidParameterError, UnsafeFileError
from deepdx.io import load_tensors, read_json, read_tensor_metadata, save_tensors
from deepdx.runs import RunConfig, load_run
from deepdx.train.checkpoint import load_checkpoint, save_checkpoint

from . import payloads
from .payloads import PICKLE_PROTOCOLS

# ---------------------------------------------------------------------------------------
# The payloads are live
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PICKLE_PROTOCOLS)
def test_payload_pickle_runs_when_unpickled(tmp_path, protocol):
    target = tmp_path / "ran"
    pickle.loads(payloads.pickle_bytes(target, protocol))
    assert target.is_dir()


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_payload_torch_save_runs_when_loaded_unsafely(tmp_path, zip_format):
    target = tmp_path / "ran"
    data = payloads.torch_save_bytes(target, zip_format=zip_format)
    torch.load(io.BytesIO(data), weights_only=False)
    assert target.is_dir()


def test_payload_object_array_runs_when_loaded_with_allow_pickle(tmp_path):
    target = tmp_path / "ran"
    data = payloads.npz_bytes({"X.npy": payloads.npy_bytes(payloads.object_array(target))})
    np.load(io.BytesIO(data), allow_pickle=True)["X"]
    assert target.is_dir()


# ---------------------------------------------------------------------------------------
# Every single-file reader refuses every payload
# ---------------------------------------------------------------------------------------


def _npz_object(sentinel, key):
    arrays = {"X": np.eye(3), key: payloads.object_array(sentinel)}
    return payloads.npz_bytes({f"{k}.npy": payloads.npy_bytes(a) for k, a in arrays.items()})


def _pickle(protocol):
    return lambda s: payloads.pickle_bytes(s, protocol)


def _torch(zip_format=True):
    return lambda s: payloads.torch_save_bytes(s, zip_format=zip_format)


def _csv(path):
    return read_csv(path, target="k")


OLD_PICKLES = [p for p in PICKLE_PROTOCOLS if p < 2]  # text opcodes, no 0x80 prefix
NEW_PICKLES = [p for p in PICKLE_PROTOCOLS if p >= 2]
NEVER = "never unpickles"

CASES = [
    *[
        (f"npz-pickle-p{p}", "data.npz", _pickle(p), read_npz, UnsafeFileError, NEVER)
        for p in NEW_PICKLES
    ],
    *[
        (f"npz-pickle-p{p}", "data.npz", _pickle(p), read_npz, DataError, "not a readable NPZ")
        for p in OLD_PICKLES
    ],
    ("npz-object-X", "data.npz", lambda s: _npz_object(s, "X"), read_npz, UnsafeFileError,
     r"array 'X' in 'data.npz' can only be loaded by unpickling"),
    ("npz-object-y", "data.npz", lambda s: _npz_object(s, "y"), read_npz, UnsafeFileError,
     r"array 'y' in 'data.npz' can only be loaded by unpickling"),
    ("npz-bare-npy-object", "data.npz",
     lambda s: payloads.npy_bytes(payloads.object_array(s)), read_npz, DataError,
     "holds a single array"),
    ("npz-entry-is-pickle", "data.npz",
     lambda s: payloads.npz_bytes({"X.npy": payloads.pickle_bytes(s)}), read_npz, DataError,
     r"array 'X' in 'data.npz' cannot be read \(the magic string is not correct"),
    ("npz-torch-zip", "data.npz", _torch(), read_npz, DataError, "has no array named 'X'"),
    ("npz-torch-legacy", "data.npz", _torch(False), read_npz, UnsafeFileError, NEVER),
    ("load-npz-pickle", "data.npz", _pickle(4), load, UnsafeFileError, NEVER),
    *[
        (f"safetensors-pickle-p{p}", "model.safetensors", _pickle(p), load_tensors,
         UnsafeFileError, "is a Python pickle, not safetensors")
        for p in NEW_PICKLES
    ],
    *[
        (f"safetensors-pickle-p{p}", "model.safetensors", _pickle(p), load_tensors,
         UnsafeFileError, r"declares a \d+-byte header")
        for p in OLD_PICKLES
    ],
    ("safetensors-torch-zip", "model.safetensors", _torch(), load_tensors, UnsafeFileError,
     r"zip archive \(the torch.save format"),
    ("safetensors-torch-legacy", "model.safetensors", _torch(False), load_tensors,
     UnsafeFileError, "is a Python pickle"),
    ("safetensors-npz-object", "model.safetensors", lambda s: _npz_object(s, "X"),
     load_tensors, UnsafeFileError, "zip archive"),
    ("safetensors-metadata-pickle", "model.safetensors", _pickle(5), read_tensor_metadata,
     UnsafeFileError, "is a Python pickle"),
    ("pt-renamed-to-safetensors", "model.pt", _torch(), load_tensors, UnsafeFileError,
     "zip archive"),
    ("pt-through-load", "model.pt", _torch(), load, DataError, "cannot tell the format"),
    ("json-pickle-p5", "state.json", _pickle(5), read_json, DataError,
     "not a valid strict JSON file .*can't decode byte 0x80"),
    ("json-pickle-p0", "state.json", _pickle(0), read_json, DataError,
     "not a valid strict JSON file"),
    ("json-torch-zip", "state.json", _torch(), read_json, DataError,
     "not a valid strict JSON file"),
    ("csv-pickle-p5", "data.csv", _pickle(5), _csv, DataError, "not UTF-8 text"),
    ("csv-pickle-p0", "data.csv", _pickle(0), _csv, DataError, "target column 'k' is not in"),
    ("csv-torch-zip", "data.csv", _torch(), _csv, DataError, "holds NUL bytes|not UTF-8"),
    ("idx-pickle", "data-idx3-ubyte", _pickle(5), read_idx, DataError,
     "must start with bytes 00 00; got 80"),
    ("idx-gz-pickle", "data-idx3-ubyte.gz", lambda s: gzip.compress(payloads.pickle_bytes(s)),
     read_idx, DataError, "must start with bytes 00 00"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "build", "read", "error", "match"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_reader_refuses_payload_without_running_it(
    tmp_path, sentinel, name, build, read, error, match
):
    path = tmp_path / name
    path.write_bytes(build(sentinel))
    with pytest.raises(error, match=match):
        read(path)
    assert not sentinel.exists()


@pytest.mark.parametrize(
    "build", [_pickle(5), _torch(), _torch(False)], ids=["pickle", "zip", "legacy"]
)
def test_read_image_folder_refuses_payload_named_png(tmp_path, sentinel, build):
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
    (tmp_path / "a" / "ok.png").write_bytes(payloads.png_bytes())
    (tmp_path / "b" / "weights.png").write_bytes(build(sentinel))
    with pytest.raises(DataError, match=r"weights.png' cannot be read \(cannot identify image"):
        read_image_folder(tmp_path)
    assert not sentinel.exists()


# ---------------------------------------------------------------------------------------
# Checkpoints and run directories
# ---------------------------------------------------------------------------------------


@pytest.fixture
def checkpoint(tmp_path):
    """A run directory with one checkpoint; returns the checkpoint folder."""
    state = {"optimizer": {"step": torch.tensor(3.0)}, "epoch": 1}
    return save_checkpoint(
        tmp_path / "run", model_state={"W": torch.ones(2, 3)}, state=state, tag="epoch-1"
    )


@pytest.mark.parametrize("name", ["model.safetensors", "state.safetensors"])
def test_load_checkpoint_refuses_planted_pickle_by_manifest(checkpoint, sentinel, name):
    (checkpoint / name).write_bytes(payloads.pickle_bytes(sentinel))
    with pytest.raises(UnsafeFileError, match=f"{name} does not match its manifest"):
        load_checkpoint(checkpoint)
    assert not sentinel.exists()


@pytest.mark.parametrize(
    ("name", "build", "error", "match"),
    [
        ("model.safetensors", _pickle(5), UnsafeFileError, "is a Python pickle"),
        ("state.safetensors", _torch(), UnsafeFileError, "zip archive"),
        ("state.json", _pickle(5), DataError, "not a valid strict JSON"),
        ("state.json", _pickle(0), DataError, "not a valid strict JSON"),
    ],
    ids=["model-pickle", "state-torch-zip", "state-json-pickle", "state-json-pickle-p0"],
)
def test_load_checkpoint_refuses_payload_with_forged_manifest(
    checkpoint, sentinel, name, build, error, match
):
    payloads.forge(checkpoint, name, build(sentinel))
    with pytest.raises(error, match=match):
        load_checkpoint(checkpoint.parent)
    assert not sentinel.exists()


def _finished_run(directory, model="mlp:4"):
    """A run directory as train_run leaves it, built without training."""
    directory.mkdir(parents=True, exist_ok=True)
    meta = {
        "config": RunConfig(data="iris", model=model).to_dict(),
        "dataset": "iris",
        "task": "classification",
        "sample_shape": [4],
        "n_outputs": 3,
        "class_names": ["a", "b", "c"],
        "standardizer": None,
        "versions": {},
    }
    (directory / "run.json").write_text(json.dumps(meta))
    save_tensors(directory / "model.safetensors", {})
    return directory


@pytest.mark.parametrize(
    ("build", "match"),
    [(_pickle(5), "is a Python pickle"), (_torch(), "zip archive"), (_torch(False), "pickle")],
    ids=["pickle", "torch-zip", "torch-legacy"],
)
def test_load_run_refuses_model_file_replaced_by_payload(tmp_path, sentinel, build, match):
    run = _finished_run(tmp_path / "run")
    (run / "model.safetensors").write_bytes(build(sentinel))
    with pytest.raises(UnsafeFileError, match=match):
        load_run(run)
    assert not sentinel.exists()


def _model_file(tmp_path, ran):
    """A model file whose import creates the folder ``ran``."""
    evil = tmp_path / "evil_model.py"
    evil.write_text(f"import os\nos.mkdir({str(ran)!r})\n\ndef make(*args, **kwargs):\n    pass\n")
    return evil


def test_load_run_does_not_import_code_named_by_run_json(tmp_path, sentinel):
    run = _finished_run(tmp_path / "run", model=f"{_model_file(tmp_path, sentinel)}:make")
    with pytest.raises(UnsafeFileError, match="names the Python file .* loading it runs that"):
        load_run(run)
    assert not sentinel.exists()


def test_load_run_imports_model_file_only_with_allow_code(tmp_path):
    ran = tmp_path / "ran"
    run = _finished_run(tmp_path / "run", model=f"{_model_file(tmp_path, ran)}:make")
    with pytest.raises(InvalidParameterError, match="must return a torch.nn.Module"):
        load_run(run, allow_code=True)  # make() builds no model, but the import ran
    assert ran.is_dir()  # the payload above is live: only allow_code kept it from running


# ---------------------------------------------------------------------------------------
# Image decoders that start external programs
# ---------------------------------------------------------------------------------------


def test_read_image_folder_never_hands_eps_to_ghostscript(tmp_path, sentinel, monkeypatch):
    def ghostscript(*args, **kwargs):  # what Pillow would run for an EPS file
        sentinel.mkdir()
        raise OSError("Ghostscript was called")

    monkeypatch.setattr(PIL.EpsImagePlugin, "Ghostscript", ghostscript)
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
    (tmp_path / "a" / "ok.png").write_bytes(payloads.png_bytes())
    (tmp_path / "b" / "drawing.png").write_bytes(payloads.EPS_BYTES)
    with pytest.raises(DataError, match=r"drawing.png' cannot be read \(cannot identify image"):
        read_image_folder(tmp_path)
    assert not sentinel.exists()


def test_zip_entry_named_like_npy_with_pickle_header_runs_nothing(tmp_path, sentinel):
    header = f"__import__('os').mkdir({str(sentinel)!r})"  # not a literal: never evaluated
    path = tmp_path / "data.npz"
    path.write_bytes(payloads.npz_bytes({"X.npy": payloads.npy_header_bytes(header)}))
    with pytest.raises(DataError, match="array 'X' in 'data.npz' cannot be read"):
        read_npz(path)
    assert not sentinel.exists()


def test_npz_with_plant_in_every_optional_array_runs_nothing(tmp_path, sentinel):
    plant = payloads.npy_bytes(payloads.object_array(sentinel))
    members = {"X.npy": payloads.npy_bytes(np.eye(3))}
    members |= {f"{key}.npy": plant for key in ("y", "class_names", "is_test")}
    path = tmp_path / "data.npz"
    path.write_bytes(payloads.npz_bytes(members, zipfile.ZIP_DEFLATED))
    with pytest.raises(UnsafeFileError, match="array 'y'"):
        read_npz(path)
    assert not sentinel.exists()
