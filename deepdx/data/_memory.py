"""How much memory this process may still allocate, and a check that a load fits in it.

Readers call :func:`check_fits_in_memory` with the bytes a load will allocate, computed
from the file's headers before anything is read, so data larger than memory fails fast
with a :class:`~deepdx.exceptions.DataError` that names the fix (usually ``mmap=True``)
instead of ending in an out-of-memory kill.

Available memory
----------------
The smallest of what the sources below report (a source that cannot be read is skipped):

- ``MemAvailable`` of ``/proc/meminfo``: free memory plus the page cache the kernel can
  reclaim (memory-mapped file pages count as reclaimable);
- each cgroup the process is in (v2 ``memory.max``, v1 ``memory.limit_in_bytes``) and its
  ancestors: limit - (usage - inactive_file), the working set container runtimes use;
- only when ``/proc/meminfo`` cannot be read (not Linux): ``os.sysconf`` available or
  total physical pages.

When nothing can be read the answer is :data:`UNKNOWN_MEMORY` (no limit is enforced).
A load may use at most :data:`MEMORY_HEADROOM` of the available memory; the rest is kept
for the interpreter, PyTorch and temporaries the estimates leave out.
"""

from __future__ import annotations

import os
from pathlib import Path

from deepdx.exceptions import DataError

__all__ = [
    "MEMORY_HEADROOM",
    "UNKNOWN_MEMORY",
    "available_memory",
    "check_fits_in_memory",
    "dataset_bytes",
    "format_bytes",
]

MEMORY_HEADROOM = 0.9
"""Fraction of the available memory one load may allocate."""
UNKNOWN_MEMORY = 2**62
"""What :func:`available_memory` returns when no source can be read: no limit."""
_NO_LIMIT = 2**60  # cgroup v1 writes "no limit" as a number near 2**63
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def available_memory() -> int:
    """Return the bytes of memory this process can still allocate.

    Returns
    -------
    int
        The smallest of ``MemAvailable``, the cgroup limits minus their working sets, and
        (off Linux) ``os.sysconf``; :data:`UNKNOWN_MEMORY` if none can be read. Never raises.

    Examples
    --------
    >>> available_memory() > 0
    True
    """
    return _available_memory(
        Path("/proc/meminfo"), Path("/proc/self/cgroup"), Path("/sys/fs/cgroup")
    )


def check_fits_in_memory(nbytes: int, *, what: str, fix: str) -> None:
    """Raise a DataError unless ``nbytes`` fit in the memory a load may use.

    Parameters
    ----------
    nbytes : int
        Bytes the operation will allocate.
    what : str
        The operation, as the subject of the message ("loading 'x.npz'").
    fix : str
        What the user can do instead, ending with a full stop.

    Raises
    ------
    DataError
        If ``nbytes`` exceeds :data:`MEMORY_HEADROOM` times :func:`available_memory`.

    Examples
    --------
    >>> check_fits_in_memory(1024, what="loading 'x.npz'", fix="use mmap=True.")
    >>> check_fits_in_memory(2**70, what="loading 'x.npz'", fix="use mmap=True.")
    Traceback (most recent call last):
    ...
    deepdx.exceptions.DataError: loading 'x.npz' needs 1024.0 EiB but only ...
    """
    available = available_memory()
    if nbytes > MEMORY_HEADROOM * available:
        raise DataError(
            f"{what} needs {format_bytes(nbytes)} but only {format_bytes(available)} of "
            f"memory is available (deepdx uses at most {MEMORY_HEADROOM:.0%} of it); {fix}"
        )


def dataset_bytes(n_values: int, *, copy: bool) -> int:
    """Return the bytes a :class:`~deepdx.data.dataset.Dataset` allocates for its features.

    Parameters
    ----------
    n_values : int
        Values in X (``X.size``).
    copy : bool
        Whether X is converted (or copied) to a new float32 array: 4 bytes a value.

    Returns
    -------
    int
        The float32 copy when ``copy`` (4 bytes a value), else 0; the Dataset's finite
        check works in row chunks of a few MiB, which are not counted.

    Examples
    --------
    >>> dataset_bytes(10, copy=True), dataset_bytes(10, copy=False)
    (40, 0)
    """
    return 4 * n_values if copy else 0


def format_bytes(nbytes: float) -> str:
    """Return a size in binary units with one decimal ("37.4 GiB", "512 B").

    Examples
    --------
    >>> format_bytes(512), format_bytes(1536), format_bytes(37.4 * 2**30)
    ('512 B', '1.5 KiB', '37.4 GiB')
    """
    size, unit = float(nbytes), 0
    while abs(size) >= 1024 and unit < len(_UNITS) - 1:
        size, unit = size / 1024, unit + 1
    return f"{int(size)} B" if unit == 0 else f"{size:.1f} {_UNITS[unit]}"


# ----------------------------------------------------------------------------- helpers


def _available_memory(meminfo: Path, self_cgroup: Path, cgroup_root: Path) -> int:
    """Return the least memory available by meminfo (else sysconf) and by the cgroups."""
    system = _meminfo_available(meminfo)
    if system is None:
        system = _sysconf_available()
    sources = [system, *_cgroup_available(self_cgroup, cgroup_root)]
    known = [value for value in sources if value is not None]
    return max(min(known), 0) if known else UNKNOWN_MEMORY


def _meminfo_available(path: Path) -> int | None:
    """Return ``MemAvailable`` of a /proc/meminfo file in bytes, or None."""
    value = _read_pairs(path, ":").get("MemAvailable", "").split(" ")[0]
    return int(value) * 1024 if value.isdigit() else None  # the file counts in kB (KiB)


def _sysconf_available() -> int | None:
    """Return the available (else total) physical memory by os.sysconf, or None."""
    for pages in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):
        try:
            return os.sysconf(pages) * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            continue
    return None


def _cgroup_available(self_cgroup: Path, root: Path) -> list[int]:
    """Return limit - working set of each limited cgroup (v2 or v1) holding the process."""
    values = []
    for line in _read_text(self_cgroup).splitlines():
        fields = line.split(":", 2)  # hierarchy id, controllers, path
        if len(fields) != 3:
            continue
        _, controllers, relative = fields
        if not controllers:  # v2: "0::/path"
            values += _limits(root, relative, "memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):  # v1: "4:memory:/path"
            values += _limits(
                root / "memory",
                relative,
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
                "total_inactive_file",
            )
    return values


def _limits(base: Path, relative: str, limit_file: str, usage_file: str, cache: str) -> list[int]:
    """Return limit - (usage - inactive cache) of a cgroup folder and of its ancestors."""
    folder = base / relative.strip("/")
    folders = [folder, *folder.parents]
    values = []
    for directory in folders[: len(folders) - len(base.parents)]:  # stop at ``base``
        limit = _read_int(directory / limit_file)
        usage = _read_int(directory / usage_file)
        if limit is None or limit >= _NO_LIMIT or usage is None:
            continue
        inactive = _read_pairs(directory / "memory.stat", " ").get(cache, "0")
        working_set = usage - (int(inactive) if inactive.isdigit() else 0)
        values.append(limit - max(working_set, 0))
    return values


def _read_text(path: Path) -> str:
    """Return the file's text, or "" if it cannot be read."""
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return ""


def _read_int(path: Path) -> int | None:
    """Return the integer a one-value file holds (None for "max" or an unreadable file)."""
    text = _read_text(path).strip()
    return int(text) if text.isdigit() else None


def _read_pairs(path: Path, sep: str) -> dict[str, str]:
    """Return the ``key<sep>value`` lines of a file as a dict of stripped strings."""
    pairs = {}
    for line in _read_text(path).splitlines():
        key, found, value = line.partition(sep)
        if found:
            pairs[key.strip()] = value.strip()
    return pairs
