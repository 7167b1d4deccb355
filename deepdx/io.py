"""Safe files: atomic writes, bounded JSON, safetensors, and nested state without pickle.

Every file deepdx writes goes through an atomic write, and every file it reads is parsed
by a format that cannot run code: JSON and safetensors. Nothing here calls ``pickle`` or
``torch.load``; there is no fallback to either.

Symbols
-------
=====================  ==================================================================
``N``                  declared header length, the first 8 bytes of a safetensors file
                       read as a little-endian unsigned integer
``tree``               nested state: dicts, lists, tuples, scalars, tensors, arrays
``json_tree``          ``tree`` with every tensor replaced by a tagged reference
``tensors``            ``{key: Tensor}``, the tensors cut out of ``tree``
=====================  ==================================================================

A safetensors file is ``N`` (8 bytes), then ``N`` bytes of JSON header, then raw tensor
data. :func:`load_tensors` checks ``N`` against a limit and the file size before the
parser sees the bytes, and turns every parse failure into :class:`DataError` or
:class:`UnsafeFileError`.

Nested state (``optimizer.state_dict()``, scheduler state, RNG states) round-trips exactly
through :func:`split_tensors` and :func:`merge_tensors`. JSON has no tuples, no non-string
keys and no NaN, so those are written as one-key tagged objects:

================  ==========================================================
tag               stands for
================  ==========================================================
``__tensor__``    a tensor, by its key in ``tensors``
``__ndarray__``   a NumPy array, by its key in ``tensors``
``__npscalar__``  a NumPy scalar, by its key in ``tensors`` (a 0-d tensor)
``__tuple__``     a tuple, as a list of its items
``__dict__``      a dict with a non-string or tag-like key, as ``[key, value]`` pairs
``__odict__``     a ``collections.OrderedDict``, as ``[key, value]`` pairs
``__float__``     a non-finite float, as the 16 hex digits of its IEEE-754 bits
================  ==========================================================

A plain dict never holds a tag key (one that does is written as ``__dict__``), so a
one-key object whose key is a tag is always a tag.

The module is longer than 600 lines because it is the one place that reads and writes
bytes: its three sections (atomic writes, safetensors, nested state) share one guarantee
(no pickle, no half-written file) and one error vocabulary, and each reads on its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
import struct
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import TypeAlias, TypeGuard

import numpy as np
import safetensors.torch
import torch
from torch import Tensor

from deepdx.exceptions import DataError, InvalidParameterError, UnsafeFileError

__all__ = [
    "JSON",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "fsync_directory",
    "load_tensors",
    "merge_tensors",
    "read_json",
    "read_tensor_metadata",
    "save_tensors",
    "sha256_file",
    "split_tensors",
]

JSON: TypeAlias = None | bool | int | float | str | list["JSON"] | dict[str, "JSON"]
"""A value that ``json`` reads or writes."""

TEMP_PREFIX = ".tmp-"
"""Name prefix of every temporary file or folder deepdx writes; stale ones may be deleted."""

DEFAULT_MAX_JSON_BYTES = 64 * 2**20
DEFAULT_MAX_HEADER_BYTES = 16 * 2**20
_CHUNK_BYTES = 2**20
_PICKLE_PROTOCOLS = range(2, 6)
_ZIP_MAGIC = b"PK\x03\x04"
_SAFETENSORS_DTYPES = frozenset(
    {
        torch.float64, torch.float32, torch.float16, torch.bfloat16,
        torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool,
        torch.uint16, torch.uint32, torch.uint64, torch.complex64,
        torch.float8_e4m3fn, torch.float8_e5m2,
    }
)  # fmt: skip
_TAGS = (
    "__tensor__", "__ndarray__", "__npscalar__", "__tuple__", "__dict__", "__odict__", "__float__",
)  # fmt: skip
_REFUSE_PICKLE = (
    "deepdx never unpickles files, because unpickling can run arbitrary code. "
    "Re-save the tensors with deepdx.io.save_tensors (safetensors) from a trusted session."
)


# ---------------------------------------------------------------------------------------
# Atomic writes
# ---------------------------------------------------------------------------------------


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (creations, renames) to disk.

    Parameters
    ----------
    directory : str or PathLike
        An existing folder.

    Notes
    -----
    ``os.fsync`` on a file makes its bytes durable; a rename is only durable once the
    folder holding it is fsynced too. Windows cannot open folders, so there this is a
    no-op (NTFS journals renames).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     fsync_directory(tmp)
    """
    if os.name == "nt":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    Parameters
    ----------
    path : str or PathLike
        Destination file; its folder must exist.
    data : bytes
        The complete new content.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    OSError
        If the folder is missing or not writable; the temporary file is removed.

    Notes
    -----
    Steps: create ``.tmp-<name>-<random>`` in the same folder (so the rename stays on one
    file system), write, flush, ``os.fsync``, ``os.replace`` onto ``path`` (atomic on POSIX
    and Windows), then fsync the folder so the rename itself survives a power cut. If any
    step fails the temporary file is deleted and the old ``path`` is untouched.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = atomic_write_bytes(Path(tmp) / "x.bin", b"abc")
    ...     path.read_bytes()
    b'abc'
    """
    path = Path(path)
    temp = path.with_name(f"{TEMP_PREFIX}{path.name}-{secrets.token_hex(6)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    fsync_directory(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically (see :func:`atomic_write_bytes`).

    Parameters
    ----------
    path : str or PathLike
        Destination file.
    text : str
        The complete new content.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     atomic_write_text(Path(tmp) / "a.txt", "héllo").read_text(encoding="utf-8")
    'héllo'
    """
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: object, *, indent: int = 2) -> Path:
    """Write ``obj`` as strict JSON (no NaN or Infinity) to ``path`` atomically.

    Parameters
    ----------
    path : str or PathLike
        Destination file.
    obj : JSON-serialisable object
        Dicts with string keys, lists, str, int, finite float, bool, None.
    indent : int, default=2
        Indentation of the written JSON.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InvalidParameterError
        If ``obj`` holds something JSON cannot represent; nothing is written.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     read_json(atomic_write_json(Path(tmp) / "a.json", {"lr": 0.1, "steps": [1, 2]}))
    {'lr': 0.1, 'steps': [1, 2]}
    """
    try:
        text = json.dumps(obj, indent=indent, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"The object to write to {Path(path).name} is not strict JSON ({exc}); expected "
            "dicts with str keys, lists, str, int, finite float, bool or None. Pass nested "
            "state through deepdx.io.split_tensors first."
        ) from exc
    return atomic_write_text(path, text + "\n")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the SHA-256 digest of a file as 64 lowercase hex digits.

    Parameters
    ----------
    path : str or PathLike
        File to hash; it is read in 1 MiB chunks, so memory stays flat.

    Returns
    -------
    str
        The hex digest.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     sha256_file(atomic_write_bytes(Path(tmp) / "e", b""))[:16]
    'e3b0c44298fc1c14'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------
# Bounded, verified reading
# ---------------------------------------------------------------------------------------


def _read_verified(path: Path, *, max_bytes: int | None, sha256: str | None) -> bytes:
    """Read a whole file, refusing it if it exceeds ``max_bytes`` or misses ``sha256``."""
    with open(path, "rb") as handle:
        data = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:
        raise DataError(
            f"{path} is larger than max_bytes={max_bytes}; expected a small file. "
            "Check that the path is right, or raise max_bytes for a file you trust."
        )
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256.lower():
        raise UnsafeFileError(
            f"{path} does not match its recorded SHA-256 digest; the file was modified "
            "or corrupted after it was written. Restore it or use another checkpoint."
        )
    return data


def _reject_constant(name: str) -> float:
    """Refuse the non-standard JSON constants NaN, Infinity and -Infinity."""
    raise ValueError(f"non-standard constant {name}")


def _parse_finite_float(text: str) -> float:
    """Parse a JSON number, refusing one that overflows to infinity (``1e999``)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} overflows a float64")
    return value


def _loads_strict(data: bytes) -> JSON:
    """Parse UTF-8 strict JSON: no NaN or Infinity, spelled out or by overflow.

    Raises ValueError (UnicodeDecodeError included) for anything else, nesting so deep that
    the parser runs out of stack among it.
    """
    try:
        return json.loads(
            data.decode("utf-8"),
            parse_constant=_reject_constant,
            parse_float=_parse_finite_float,
        )
    except RecursionError as exc:
        raise ValueError(f"nested too deeply to parse ({exc})") from exc


def read_json(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_JSON_BYTES,
    sha256: str | None = None,
) -> JSON:
    """Read a strict JSON file of bounded size.

    Parameters
    ----------
    path : str or PathLike
        File to read.
    max_bytes : int, default=64 MiB
        Larger files are refused before parsing.
    sha256 : str or None, default=None
        Expected hex digest of the file's bytes; checked on the same bytes that are parsed.

    Returns
    -------
    JSON
        The parsed value.

    Raises
    ------
    DataError
        If the file is too large, not UTF-8, not JSON, nested too deeply to parse, or
        holds NaN or Infinity (spelled out, or a number such as ``1e999`` that overflows).
    UnsafeFileError
        If ``sha256`` is given and does not match.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     read_json(atomic_write_text(Path(tmp) / "a.json", '{"a": [1, 2.5]}'))
    {'a': [1, 2.5]}
    """
    path = Path(path)
    data = _read_verified(path, max_bytes=max_bytes, sha256=sha256)
    try:
        return _loads_strict(data)
    except ValueError as exc:
        raise DataError(
            f"{path} is not a valid strict JSON file ({exc}). It was written by "
            "another program or damaged; restore it from a good copy."
        ) from exc


# ---------------------------------------------------------------------------------------
# Tensors (safetensors)
# ---------------------------------------------------------------------------------------


def _is_str_map(obj: object) -> TypeGuard[Mapping[str, str]]:
    """Return True for a mapping whose keys and values are all str (safetensors metadata)."""
    return isinstance(obj, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in obj.items()
    )


def _check_tensor(key: object, tensor: object) -> None:
    """Refuse a ``{key: tensor}`` entry that safetensors cannot store."""
    if not isinstance(key, str) or key == "__metadata__":
        raise InvalidParameterError(
            f"Tensor key {key!r} is not allowed; expected a str other than '__metadata__'."
        )
    if not isinstance(tensor, Tensor):
        raise InvalidParameterError(
            f"Value of {key!r} is a {type(tensor).__name__}; expected a torch.Tensor."
        )
    if tensor.layout != torch.strided or tensor.is_meta or tensor.dtype not in _SAFETENSORS_DTYPES:
        raise InvalidParameterError(
            f"Tensor {key!r} ({tensor.dtype}, {tensor.layout}, on {tensor.device}) cannot be "
            "stored in safetensors; expected a dense tensor with data and a dtype such as "
            "float32, int64, uint8 or bool. Convert it (.to_dense(), torch.view_as_real, .to())."
        )


def save_tensors(
    path: str | os.PathLike[str],
    tensors: Mapping[str, Tensor],
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write named tensors to a safetensors file atomically.

    Parameters
    ----------
    path : str or PathLike
        Destination file (conventionally ``*.safetensors``).
    tensors : Mapping[str, Tensor]
        Tensors of any shape (0-d included) on any device; each is written from a
        contiguous CPU copy, so views and tensors that share storage are fine.
    metadata : Mapping[str, str] or None, default=None
        Free-text header fields, read back by :func:`read_tensor_metadata`.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InvalidParameterError
        If a key is not a str, a value is not a dense tensor, or its dtype is not supported.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = save_tensors(Path(tmp) / "w.safetensors", {"W": torch.ones(3, 2)})
    ...     load_tensors(path)["W"].shape
    torch.Size([3, 2])
    """
    for key, tensor in tensors.items():
        _check_tensor(key, tensor)
    if metadata is not None and not _is_str_map(metadata):
        raise InvalidParameterError(f"metadata must map str to str; got {dict(metadata)!r}.")
    cpu = {key: t.detach().to("cpu", copy=True).contiguous() for key, t in tensors.items()}
    data = safetensors.torch.save(cpu, metadata=None if metadata is None else dict(metadata))
    return atomic_write_bytes(path, data)


def _header_length(prefix: bytes, file_size: int, name: str, max_header_bytes: int) -> int:
    """Validate the start of a would-be safetensors file and return its header length N."""
    if prefix[:4] == _ZIP_MAGIC:
        raise UnsafeFileError(
            f"{name} is a zip archive (the torch.save format, which holds a pickle), "
            f"not safetensors. {_REFUSE_PICKLE}"
        )
    if len(prefix) >= 2 and prefix[0] == 0x80 and prefix[1] in _PICKLE_PROTOCOLS:
        raise UnsafeFileError(f"{name} is a Python pickle, not safetensors. {_REFUSE_PICKLE}")
    if file_size < 8:
        raise DataError(
            f"{name} is {file_size} bytes long; a safetensors file starts with an 8-byte "
            "header length. The file is truncated or is not safetensors."
        )
    n_header = int.from_bytes(prefix[:8], "little")
    if n_header > max_header_bytes:
        raise UnsafeFileError(
            f"{name} declares a {n_header}-byte header; expected at most "
            f"max_header_bytes={max_header_bytes}. The file is corrupt or hostile and was not "
            "parsed; raise max_header_bytes only for a file you trust."
        )
    if 8 + n_header > file_size:
        raise DataError(
            f"{name} declares a {n_header}-byte header but has only {file_size - 8} bytes "
            "after the length field. The file is truncated or is not safetensors."
        )
    return n_header


def load_tensors(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    sha256: str | None = None,
) -> dict[str, Tensor]:
    """Read a safetensors file, refusing pickles, zip archives and malformed headers.

    Parameters
    ----------
    path : str or PathLike
        File written by :func:`save_tensors` or any safetensors writer.
    device : str or torch.device, default="cpu"
        Where the returned tensors live.
    max_header_bytes : int, default=16 MiB
        Largest header length ``N`` accepted before parsing.
    sha256 : str or None, default=None
        Expected hex digest, checked on the same bytes that are parsed.

    Returns
    -------
    dict[str, Tensor]
        Tensors with the saved names, shapes and dtypes (writable, not memory-mapped).

    Raises
    ------
    UnsafeFileError
        If the file is a pickle or a ``torch.save`` zip archive, declares ``N`` above
        ``max_header_bytes``, or fails the ``sha256`` check. Nothing is executed.
    DataError
        If the file is truncated, ``N`` points past its end, or the header or data do
        not parse.

    Notes
    -----
    ``N = int.from_bytes(bytes[0:8], "little")`` must satisfy ``N <= max_header_bytes``
    and ``8 + N <= file size`` before safetensors parses the rest.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = save_tensors(Path(tmp) / "s.safetensors", {"step": torch.tensor(3.0)})
    ...     load_tensors(path)
    {'step': tensor(3.)}
    """
    path = Path(path)
    data = _read_verified(path, max_bytes=None, sha256=sha256)
    _header_length(data[:8], len(data), str(path), max_header_bytes)
    try:
        tensors = safetensors.torch.load(data)
    except Exception as exc:  # any parser failure on untrusted bytes is a data error
        raise DataError(
            f"{path} is not a valid safetensors file ({exc}). It is damaged or was "
            "written by another program; restore it from a good copy."
        ) from exc
    return {key: tensor.to(device) for key, tensor in tensors.items()}


def read_tensor_metadata(
    path: str | os.PathLike[str], *, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
) -> dict[str, str]:
    """Return the free-text metadata of a safetensors file without reading its tensors.

    Parameters
    ----------
    path : str or PathLike
        A safetensors file.
    max_header_bytes : int, default=16 MiB
        Largest header length accepted.

    Returns
    -------
    dict[str, str]
        The ``__metadata__`` header field (empty when absent).

    Raises
    ------
    UnsafeFileError, DataError
        As :func:`load_tensors`.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = save_tensors(Path(tmp) / "m.safetensors", {}, {"epoch": "3"})
    ...     read_tensor_metadata(path)
    {'epoch': '3'}
    """
    path = Path(path)
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        n_header = _header_length(
            prefix, os.fstat(handle.fileno()).st_size, str(path), max_header_bytes
        )
        raw = handle.read(n_header)
    try:
        header = _loads_strict(raw)
    except ValueError as exc:
        raise DataError(f"{path} has an unreadable safetensors header ({exc}).") from exc
    metadata = header.get("__metadata__", {}) if isinstance(header, dict) else None
    if not _is_str_map(metadata):
        raise DataError(
            f"{path} has a malformed safetensors header; expected a JSON "
            "object whose __metadata__ maps str to str."
        )
    return {key: str(value) for key, value in metadata.items()}


# ---------------------------------------------------------------------------------------
# Nested state: split into JSON + tensors, and merge back
# ---------------------------------------------------------------------------------------


def _float_bits(value: float) -> str:
    """Return the 16 hex digits of a float's IEEE-754 binary64 pattern."""
    return struct.pack(">d", value).hex()


def _is_hex(text: str) -> bool:
    """Return whether ``text`` holds hexadecimal digits only."""
    return all(c in "0123456789abcdefABCDEF" for c in text)


class _Splitter:
    """Walk a tree, moving tensors and arrays into ``self.tensors``."""

    def __init__(self) -> None:
        self.tensors: dict[str, Tensor] = {}
        self._active: set[int] = set()

    def encode(self, obj: object, path: str) -> JSON:
        """Return the JSON form of ``obj``, found at ``path`` in the tree."""
        if obj is None or (isinstance(obj, (bool, int, str)) and type(obj) in (bool, int, str)):
            return obj
        if type(obj) is float:
            return obj if math.isfinite(obj) else {"__float__": _float_bits(obj)}
        if isinstance(obj, Tensor):
            return {"__tensor__": self._store(obj.detach().resolve_conj().resolve_neg(), path)}
        if isinstance(obj, (np.ndarray, np.generic)):
            return self._encode_numpy(obj, path)
        if isinstance(obj, (list, tuple, dict)) and type(obj) in (list, tuple, dict, OrderedDict):
            return self._encode_container(obj, path)
        raise InvalidParameterError(
            f"{path} is a {type(obj).__module__}.{type(obj).__qualname__}, which cannot be "
            "saved without pickle; expected None, bool, int, float, str, list, tuple, dict, "
            "a Tensor or a NumPy array. Convert it (for example store its state_dict()) first."
        )

    def _store(self, tensor: Tensor, path: str) -> str:
        """Add a tensor under its path (made unique if needed) and return the key."""
        _check_tensor(path, tensor)
        key = path if path not in self.tensors else f"{path}#{len(self.tensors)}"
        self.tensors[key] = tensor
        return key

    def _encode_numpy(self, obj: np.ndarray | np.generic, path: str) -> JSON:
        """Store a NumPy array or scalar as a tensor, tagged so it comes back as NumPy."""
        try:
            tensor = torch.from_numpy(np.array(obj, order="C", copy=True))
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(
                f"{path} is a NumPy value of dtype {obj.dtype}, which has no tensor form "
                f"({exc}); expected a numeric or bool dtype in native byte order."
            ) from exc
        tag = "__ndarray__" if isinstance(obj, np.ndarray) else "__npscalar__"
        return {tag: self._store(tensor, path)}

    def _encode_container(self, obj: list | tuple | dict, path: str) -> JSON:
        """Encode a list, tuple or dict, refusing one that contains itself."""
        if id(obj) in self._active:
            raise InvalidParameterError(f"{path} contains itself; expected a tree without cycles.")
        self._active.add(id(obj))
        try:
            if isinstance(obj, dict):
                return self._encode_dict(obj, path)
            items = [self.encode(item, f"{path}[{i}]") for i, item in enumerate(obj)]
            return items if type(obj) is list else {"__tuple__": items}
        finally:
            self._active.discard(id(obj))

    def _encode_dict(self, obj: dict[object, object], path: str) -> JSON:
        """Encode a dict as a plain object when it can be, else as tagged pairs."""
        plain = type(obj) is dict and all(type(k) is str and k not in _TAGS for k in obj)
        if plain:
            return {str(k): self.encode(v, f"{path}[{k!r}]") for k, v in obj.items()}
        pairs: list[JSON] = [
            [self._encode_key(k, path), self.encode(v, f"{path}[{k!r}]")] for k, v in obj.items()
        ]
        return {"__odict__" if type(obj) is OrderedDict else "__dict__": pairs}

    def _encode_key(self, key: object, path: str) -> JSON:
        """Encode a dict key: a scalar, or a tuple of keys."""
        if type(key) is tuple:
            return {"__tuple__": [self._encode_key(k, path) for k in key]}
        if key is None or type(key) in (bool, int, float, str):
            return self.encode(key, path)
        raise InvalidParameterError(
            f"{path} has a key {key!r} of type {type(key).__name__}; expected keys that are "
            "str, int, float, bool, None or tuples of these."
        )


def split_tensors(tree: object, *, root: str = "tree") -> tuple[JSON, dict[str, Tensor]]:
    """Split nested state into a JSON-ready tree and a flat dict of tensors.

    Parameters
    ----------
    tree : object
        Nested dicts (any hashable scalar or tuple keys), lists, tuples, None, bool, int,
        float (NaN and inf included), str, tensors (any supported dtype, 0-d included),
        NumPy arrays and scalars; e.g. ``optimizer.state_dict()`` or ``torch.get_rng_state()``.
    root : str, default="tree"
        Name of the tree in error messages and tensor keys.

    Returns
    -------
    json_tree : JSON
        ``tree`` with tensors replaced by references and types JSON lacks tagged.
    tensors : dict[str, Tensor]
        Detached tensors (not copied), keyed by their path in ``tree``.

    Raises
    ------
    InvalidParameterError
        If the tree holds anything else (an arbitrary object, a function, a tensor
        safetensors cannot store) or a cycle; the message names its path, e.g.
        ``state['param_groups'][0]['foo']``.

    Notes
    -----
    ``merge_tensors(*split_tensors(tree)) == tree`` exactly: types, dict order and float
    bits are kept. Two references to one tensor come back as two tensors, and tensors come
    back without ``requires_grad``.

    Examples
    --------
    >>> state = {"step": torch.tensor(2.0), "betas": (0.9, 0.999), "state": {0: float("nan")}}
    >>> json_tree, tensors = split_tensors(state, root="state")
    >>> json_tree["betas"], list(tensors)
    ({'__tuple__': [0.9, 0.999]}, ["state['step']"])
    >>> merge_tensors(json_tree, tensors)["betas"]
    (0.9, 0.999)
    """
    splitter = _Splitter()
    json_tree = splitter.encode(tree, root)
    return json_tree, splitter.tensors


class _Merger:
    """Rebuild a tree from its JSON form and its tensors."""

    def __init__(self, tensors: Mapping[str, Tensor]) -> None:
        self.tensors = tensors
        self.used: set[str] = set()

    def decode(self, node: object, path: str) -> object:
        """Return the value that ``node`` encodes."""
        if node is None or type(node) in (bool, int, float, str):
            return node
        if type(node) is list:
            return [self.decode(item, f"{path}[{i}]") for i, item in enumerate(node)]
        if type(node) is dict and len(node) == 1 and next(iter(node)) in _TAGS:
            ((tag, payload),) = node.items()
            return self._decode_tagged(tag, payload, path)
        if type(node) is dict:
            return {k: self.decode(v, f"{path}[{k!r}]") for k, v in node.items()}
        raise DataError(f"{path} holds a {type(node).__name__}; expected a JSON value.")

    def _decode_tagged(self, tag: str, payload: object, path: str) -> object:
        """Decode a one-key tagged object."""
        if tag == "__float__":
            if not (isinstance(payload, str) and len(payload) == 16 and _is_hex(payload)):
                raise DataError(f"{path} has a malformed __float__ tag: {payload!r}.")
            return struct.unpack(">d", bytes.fromhex(payload))[0]
        if tag in ("__tensor__", "__ndarray__", "__npscalar__"):
            tensor = self._tensor(payload, path)
            if tag == "__tensor__":
                return tensor
            array = tensor.cpu().numpy()
            return array if tag == "__ndarray__" else array[()]
        if type(payload) is not list:
            raise DataError(f"{path} has a malformed {tag} tag; expected a list.")
        if tag == "__tuple__":
            return tuple(self.decode(item, f"{path}[{i}]") for i, item in enumerate(payload))
        return self._decode_pairs(payload, path, ordered=tag == "__odict__")

    def _decode_pairs(self, pairs: list[object], path: str, *, ordered: bool) -> object:
        """Decode ``[key, value]`` pairs into a dict or OrderedDict."""
        result: dict[object, object] = OrderedDict() if ordered else {}
        for pair in pairs:
            if not (type(pair) is list and len(pair) == 2):
                raise DataError(f"{path} has a malformed dict entry {pair!r}; expected [k, v].")
            key = self.decode(pair[0], f"{path}<key>")
            try:
                result[key] = self.decode(pair[1], f"{path}[{key!r}]")
            except TypeError as exc:  # an unhashable key such as a list
                raise DataError(f"{path} has an unhashable key {key!r}.") from exc
        return result

    def _tensor(self, key: object, path: str) -> Tensor:
        """Look up a referenced tensor."""
        if not isinstance(key, str) or key not in self.tensors:
            raise DataError(
                f"{path} refers to tensor {key!r}, which is missing; the JSON and tensor "
                "files do not belong together."
            )
        self.used.add(key)
        return self.tensors[key]


def merge_tensors(
    json_tree: object, tensors: Mapping[str, Tensor], *, root: str = "tree"
) -> object:
    """Rebuild the nested state that :func:`split_tensors` split.

    Parameters
    ----------
    json_tree : object
        The JSON form returned by :func:`split_tensors` (or read back with :func:`read_json`).
    tensors : Mapping[str, Tensor]
        The tensors returned by :func:`split_tensors` (or read back with
        :func:`load_tensors`); used as they are, not copied.
    root : str, default="tree"
        Name of the tree in error messages.

    Returns
    -------
    object
        The original tree, with the same types (tuples, int keys, OrderedDicts, NumPy
        values), dict order and float bits.

    Raises
    ------
    DataError
        If a tag is malformed, a referenced tensor is missing, a tensor is not referenced,
        or the tree is nested too deeply to rebuild.

    Examples
    --------
    >>> tree = {"state": {0: {"step": torch.tensor(5.0)}}, "param_groups": [{"lr": 0.1}]}
    >>> back = merge_tensors(*split_tensors(tree))
    >>> list(back["state"]), back["state"][0]["step"].shape
    ([0], torch.Size([]))
    """
    merger = _Merger(tensors)
    try:
        tree = merger.decode(json_tree, root)
    except RecursionError as exc:  # only a hostile or corrupt file nests this deep
        raise DataError(
            f"the JSON tree of {root} is nested too deeply to rebuild ({exc}); the file "
            "was not written by deepdx or is damaged."
        ) from exc
    unused = sorted(set(tensors) - merger.used)
    if unused:
        raise DataError(
            f"{len(unused)} tensors are not referenced by the JSON tree of {root} "
            f"(first: {unused[0]!r}); the JSON and tensor files do not belong together."
        )
    return tree
