"""Checkpoints: weights and resumable state, written so that a crash never leaves half of one.

A run directory holds one folder per checkpoint and a pointer to the newest::

    run/
      latest.json              {"tag": "epoch-3", "sequence": 3}   (the commit point)
      epoch-2/                 an older checkpoint, kept while keep >= 2
      epoch-3/
        model.safetensors      model_state, the weights
        state.safetensors      the tensors of state (optimizer moments, RNG states, ...)
        state.json             the rest of state, with references to those tensors
        manifest.json          SHA-256 and size of the three files, versions, time
      .tmp-epoch-4-1a2b3c4d/   a save in progress, or left by a killed run

Symbols
-------
=============  ========================================================================
``tag``        checkpoint folder name, e.g. ``"epoch-3"`` (letters, digits, ``._-``)
``sequence``   save counter in the manifest: 1 + the largest in the directory
``keep``       how many checkpoints, newest first by ``sequence``, survive a save
=============  ========================================================================

A save writes everything into ``.tmp-<tag>-<random>`` (every file fsynced), renames the
folder into place, fsyncs the directory, and only then rewrites ``latest.json``
atomically. A reader therefore sees the previous checkpoint or the new one, never a mix.
Loading verifies every file against the manifest; the hashes catch corruption and edits,
and the formats (JSON, safetensors) guarantee that loading cannot run code. The manifest
is not signed, so the hashes do not stop a writer who also rewrites it.

One process writes to a run directory at a time (rank 0 under data parallelism).
"""

from __future__ import annotations

import logging
import os
import platform
import re
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import safetensors
import torch
from torch import Tensor

from deepdx import __version__
from deepdx.exceptions import DataError, InvalidParameterError, UnsafeFileError
from deepdx.io import (
    TEMP_PREFIX,
    atomic_write_json,
    fsync_directory,
    load_tensors,
    merge_tensors,
    read_json,
    save_tensors,
    sha256_file,
    split_tensors,
)

__all__ = [
    "Checkpoint",
    "clean_stale",
    "latest_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
]

logger = logging.getLogger(__name__)

MODEL_FILE = "model.safetensors"
STATE_TENSORS_FILE = "state.safetensors"
STATE_JSON_FILE = "state.json"
MANIFEST_FILE = "manifest.json"
LATEST_FILE = "latest.json"
_FILES = (MODEL_FILE, STATE_TENSORS_FILE, STATE_JSON_FILE)
_FORMAT = "deepdx-checkpoint"
_FORMAT_VERSION = 1
_MAX_MANIFEST_BYTES = 2**20
_TAG_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Checkpoint:
    """A loaded, verified checkpoint.

    Attributes
    ----------
    model_state : dict[str, Tensor]
        The weights, for ``model.load_state_dict``, on the device asked for.
    state : dict[str, Any]
        The resumable state exactly as saved (tuples, int keys and NaN kept); its tensors
        are on the CPU, where ``torch.set_rng_state`` needs them and from where
        ``optimizer.load_state_dict`` moves them to each parameter's device.
    tag : str
        The checkpoint's name.
    path : Path
        Its folder.
    manifest : dict[str, Any]
        The parsed ``manifest.json``: hashes, sizes, versions, creation time, sequence.
    """

    model_state: dict[str, Tensor]
    state: dict[str, Any]
    tag: str
    path: Path
    manifest: dict[str, Any]


# ---------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------


def _check_save_arguments(tag: object, keep: object, state: object) -> None:
    """Refuse a bad tag, keep or state before anything touches the disk."""
    problems = []
    if not (isinstance(tag, str) and _TAG_PATTERN.fullmatch(tag) and tag != LATEST_FILE):
        problems.append(
            f"tag must be 1-128 letters, digits, '.', '_' or '-' starting with a letter or "
            f"digit (and not {LATEST_FILE!r}); got {tag!r}. Use e.g. 'epoch-3'."
        )
    if not (isinstance(keep, int) and not isinstance(keep, bool) and keep >= 1):
        problems.append(f"keep must be an int >= 1; got {keep!r}.")
    if not isinstance(state, dict):
        problems.append(f"state must be a dict; got a {type(state).__name__}.")
    if problems:
        raise InvalidParameterError(" ".join(problems))


def _manifest(tag: str, sequence: int, folder: Path) -> dict[str, Any]:
    """Describe the files in ``folder``: hashes, sizes, versions and time."""
    files = {
        name: {"sha256": sha256_file(folder / name), "size": (folder / name).stat().st_size}
        for name in _FILES
    }
    versions = {
        "deepdx": __version__,
        "torch": torch.__version__,
        "safetensors": safetensors.__version__,
        "python": platform.python_version(),
    }
    return {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "tag": tag,
        "sequence": sequence,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": versions,
        "files": files,
    }


def _retire(folder: Path) -> None:
    """Delete a folder by first renaming it to a stale name, so no half of it is visible."""
    retired = folder.with_name(f"{TEMP_PREFIX}{folder.name}-old-{secrets.token_hex(4)}")
    os.replace(folder, retired)
    shutil.rmtree(retired, ignore_errors=True)


def _prune(directory: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints; a failure only logs a warning."""
    for _, old in sorted(_list_checkpoints(directory), reverse=True)[keep:]:
        try:
            _retire(old)
        except OSError as exc:  # the new checkpoint is saved; a leftover is harmless
            logger.warning("could not delete old checkpoint %s: %s", old, exc)


def _move_into_place(staging: Path, final: Path) -> None:
    """Rename ``staging`` to ``final``, replacing an existing checkpoint of the same tag."""
    retired = None
    if final.exists():
        retired = final.with_name(f"{TEMP_PREFIX}{final.name}-old-{secrets.token_hex(4)}")
        os.replace(final, retired)
    try:
        os.replace(staging, final)
    except BaseException:
        if retired is not None:
            os.replace(retired, final)
        raise
    fsync_directory(final.parent)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def save_checkpoint(
    directory: str | os.PathLike[str],
    *,
    model_state: Mapping[str, Tensor],
    state: Mapping[str, Any],
    tag: str,
    keep: int = 2,
) -> Path:
    """Write a checkpoint to ``directory/<tag>/`` atomically and point ``latest.json`` at it.

    Parameters
    ----------
    directory : str or PathLike
        The run directory; created if missing.
    model_state : Mapping[str, Tensor]
        The weights, e.g. ``model.state_dict()``; tensors on any device.
    state : dict
        Resumable state, e.g. ``{"optimizer": opt.state_dict(), "scheduler": ...,
        "rng": torch.get_rng_state(), "epoch": 3}``; anything :func:`deepdx.io.split_tensors`
        accepts.
    tag : str
        Folder name; saving an existing tag replaces that checkpoint.
    keep : int, default=2
        Checkpoints to keep, newest first; older ones are deleted after the save.

    Returns
    -------
    Path
        The checkpoint folder.

    Raises
    ------
    InvalidParameterError
        If ``tag``, ``keep`` or ``state`` is invalid, or ``state`` holds an object that cannot
        be saved without pickle (the message names its path, e.g.
        ``state['param_groups'][0]['foo']``). Nothing is written.
    OSError
        If the disk fails; the previous checkpoint and ``latest.json`` are untouched.

    Notes
    -----
    Order: clean stale ``.tmp-*`` entries; write the four files into
    ``.tmp-<tag>-<random>`` (each fsynced); rename it to ``<tag>``; fsync ``directory``;
    write ``latest.json`` atomically; delete checkpoints beyond ``keep``.

    Examples
    --------
    >>> import tempfile
    >>> weights = {"weight": torch.zeros(2, 3), "bias": torch.zeros(2)}
    >>> with tempfile.TemporaryDirectory() as run:
    ...     path = save_checkpoint(run, model_state=weights, state={"epoch": 1}, tag="epoch-1")
    ...     ckpt = load_checkpoint(run)
    ...     ckpt.tag, ckpt.state, ckpt.model_state["weight"].shape
    ('epoch-1', {'epoch': 1}, torch.Size([2, 3]))
    """
    _check_save_arguments(tag, keep, state)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    clean_stale(directory)
    json_tree, tensors = split_tensors(dict(state), root="state")
    sequence = 1 + max((seq for seq, _ in _list_checkpoints(directory)), default=0)
    staging = directory / f"{TEMP_PREFIX}{tag}-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        save_tensors(staging / MODEL_FILE, model_state)
        save_tensors(staging / STATE_TENSORS_FILE, tensors)
        atomic_write_json(staging / STATE_JSON_FILE, json_tree)
        atomic_write_json(staging / MANIFEST_FILE, _manifest(tag, sequence, staging))
        _move_into_place(staging, directory / tag)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    atomic_write_json(directory / LATEST_FILE, {"tag": tag, "sequence": sequence})
    _prune(directory, keep)
    logger.info("saved checkpoint %s (sequence %d)", directory / tag, sequence)
    return directory / tag


def clean_stale(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete the ``.tmp-*`` files and folders that interrupted saves left in ``directory``.

    Parameters
    ----------
    directory : str or PathLike
        A run directory; a missing one holds nothing to clean.

    Returns
    -------
    list of Path
        What was removed.

    Notes
    -----
    Only the one process that writes to ``directory`` may call this: a save in progress
    also lives under a ``.tmp-`` name. :func:`save_checkpoint` calls it first.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as run:
    ...     (Path(run) / ".tmp-epoch-4-dead").mkdir()
    ...     [p.name for p in clean_stale(run)]
    ['.tmp-epoch-4-dead']
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for child in sorted(directory.iterdir()):
        if not child.name.startswith(TEMP_PREFIX):
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
        removed.append(child)
        logger.info("removed stale %s", child)
    return removed


# ---------------------------------------------------------------------------------------
# Finding and verifying
# ---------------------------------------------------------------------------------------


def _valid_entry(entry: object) -> bool:
    """Return whether a manifest file entry has a hex SHA-256 and an int size."""
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("sha256"), str)
        and _SHA256_PATTERN.fullmatch(entry["sha256"]) is not None
        and type(entry.get("size")) is int
    )


def _valid_manifest(manifest: dict[str, Any]) -> bool:
    """Return whether a parsed manifest has the format, tag, sequence and file entries."""
    return (
        manifest.get("format") == _FORMAT
        and manifest.get("format_version") == _FORMAT_VERSION
        and isinstance(manifest.get("tag"), str)
        and type(manifest.get("sequence")) is int
        and isinstance(manifest.get("files"), dict)
        and sorted(manifest["files"]) == sorted(_FILES)
        and all(_valid_entry(entry) for entry in manifest["files"].values())
    )


def _read_manifest(folder: Path) -> dict[str, Any]:
    """Read and validate ``folder/manifest.json``."""
    manifest = read_json(folder / MANIFEST_FILE, max_bytes=_MAX_MANIFEST_BYTES)
    if not (isinstance(manifest, dict) and _valid_manifest(manifest)):
        raise DataError(
            f"{folder / MANIFEST_FILE} is not a deepdx checkpoint manifest (format "
            f"{_FORMAT!r} version {_FORMAT_VERSION}, listing {', '.join(_FILES)}). "
            "The checkpoint is damaged or was not written by deepdx."
        )
    return manifest


def _check_file(folder: Path, name: str, entry: dict[str, Any], *, hash_too: bool) -> None:
    """Refuse a file that is missing or whose size (and optionally hash) misses the manifest."""
    path = folder / name
    if not path.is_file():
        raise DataError(
            f"{path} is missing; the checkpoint is incomplete. Load another checkpoint."
        )
    if path.stat().st_size != entry["size"] or (hash_too and sha256_file(path) != entry["sha256"]):
        raise UnsafeFileError(
            f"{path} does not match its manifest (size or SHA-256); the file was modified "
            "or corrupted after it was written. Restore it or load another checkpoint."
        )


def _is_complete(folder: Path) -> bool:
    """Return whether ``folder`` has a manifest that all its files match."""
    try:
        files = _read_manifest(folder)["files"]
        for name in _FILES:
            _check_file(folder, name, files[name], hash_too=True)
    except (DataError, UnsafeFileError, OSError) as exc:
        logger.warning("skipping incomplete checkpoint %s: %s", folder, exc)
        return False
    return True


def _list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """Return ``(sequence, folder)`` for every folder with a valid manifest."""
    found = []
    for child in directory.iterdir():
        if not (_TAG_PATTERN.fullmatch(child.name) and (child / MANIFEST_FILE).is_file()):
            continue
        try:
            found.append((_read_manifest(child)["sequence"], child))
        except DataError as exc:
            logger.warning("ignoring %s: %s", child, exc)
    return found


def _follow_latest(directory: Path) -> Path | None:
    """Return the folder ``latest.json`` names, or None if it or the folder is missing."""
    pointer = directory / LATEST_FILE
    if not pointer.is_file():
        return None
    latest = read_json(pointer, max_bytes=_MAX_MANIFEST_BYTES)
    tag = latest.get("tag") if isinstance(latest, dict) else None
    if not (isinstance(tag, str) and _TAG_PATTERN.fullmatch(tag)):
        raise DataError(
            f"{pointer} does not name a checkpoint folder (got tag {tag!r}); expected "
            '{"tag": "<folder name>"}. Delete it to fall back to the newest complete checkpoint.'
        )
    if not (directory / tag / MANIFEST_FILE).is_file():
        logger.warning("%s points to missing checkpoint %r; falling back", pointer, tag)
        return None
    return directory / tag


def latest_checkpoint(directory: str | os.PathLike[str]) -> Path | None:
    """Return the checkpoint folder a resume should load, or None if there is none.

    Parameters
    ----------
    directory : str or PathLike
        A run directory written by :func:`save_checkpoint`.

    Returns
    -------
    Path or None
        The folder ``latest.json`` names; if that file or folder is missing, the newest
        (by ``sequence``) folder whose files all match its manifest.

    Raises
    ------
    DataError
        If ``latest.json`` exists but does not name a folder.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as run:
    ...     print(latest_checkpoint(run))
    ...     _ = save_checkpoint(run, model_state={}, state={}, tag="a")
    ...     latest_checkpoint(run).name
    None
    'a'
    """
    directory = Path(directory)
    if not directory.is_dir():
        return None
    pointed = _follow_latest(directory)
    if pointed is not None:
        return pointed
    for _, folder in sorted(_list_checkpoints(directory), reverse=True):
        if _is_complete(folder):
            return folder
    return None


# ---------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------


def _load_folder(folder: Path, device: str | torch.device) -> Checkpoint:
    """Load one checkpoint folder, verifying every file against its manifest."""
    manifest = _read_manifest(folder)
    files = manifest["files"]
    for name in _FILES:
        _check_file(folder, name, files[name], hash_too=False)
    model_state = load_tensors(
        folder / MODEL_FILE, device=device, sha256=files[MODEL_FILE]["sha256"]
    )
    tensors = load_tensors(
        folder / STATE_TENSORS_FILE, device="cpu", sha256=files[STATE_TENSORS_FILE]["sha256"]
    )
    json_tree = read_json(folder / STATE_JSON_FILE, sha256=files[STATE_JSON_FILE]["sha256"])
    state = merge_tensors(json_tree, tensors, root="state")
    if not isinstance(state, dict):
        raise DataError(f"{folder / STATE_JSON_FILE} does not hold a dict; expected one.")
    return Checkpoint(model_state, state, manifest["tag"], folder, manifest)


def load_checkpoint(
    path_or_directory: str | os.PathLike[str], *, device: str | torch.device = "cpu"
) -> Checkpoint:
    """Load and verify a checkpoint folder, or the latest checkpoint of a run directory.

    Parameters
    ----------
    path_or_directory : str or PathLike
        A checkpoint folder (it holds ``manifest.json``) or a run directory, resolved with
        :func:`latest_checkpoint`.
    device : str or torch.device, default="cpu"
        Where ``model_state`` goes; ``state`` tensors stay on the CPU.

    Returns
    -------
    Checkpoint
        Weights, state, tag, folder and manifest.

    Raises
    ------
    FileNotFoundError
        If the path does not exist.
    DataError
        If the run directory holds no complete checkpoint, or a file is missing or
        malformed.
    UnsafeFileError
        If a file's size or SHA-256 does not match the manifest (the message names the
        file), or a tensor file is a pickle or has a hostile header. Nothing is executed.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as run:
    ...     _ = save_checkpoint(run, model_state={"W": torch.zeros(4, 3)},
    ...                         state={"betas": (0.9, 0.999)}, tag="step-10")
    ...     ckpt = load_checkpoint(Path(run) / "step-10")
    ...     ckpt.model_state["W"].shape, ckpt.state["betas"]
    (torch.Size([4, 3]), (0.9, 0.999))
    """
    path = Path(path_or_directory)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist; expected a checkpoint folder or a run directory "
            "written by save_checkpoint."
        )
    folder = path if (path / MANIFEST_FILE).is_file() else latest_checkpoint(path)
    if folder is None:
        raise DataError(
            f"{path} holds no complete checkpoint; expected a folder with {MANIFEST_FILE} "
            "or a run directory written by save_checkpoint. Check the path."
        )
    return _load_folder(folder, device)
