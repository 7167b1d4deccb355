"""Fuzz deepdx's file readers with atheris: any exception but deepdx's own is a finding.

Each target writes the fuzzer's bytes to a file and reads it back with one reader. The
reader may refuse the bytes with :class:`~deepdx.exceptions.DataError`,
:class:`~deepdx.exceptions.UnsafeFileError` or
:class:`~deepdx.exceptions.InvalidParameterError` (or a subclass); anything else it raises
(``ValueError``, ``MemoryError``, ``zlib.error``, ...) is a finding. Findings are printed
once per (exception type, raising line) as they are found and their inputs are saved, and
the run goes on until its time is up.

=========  ==============================================  =================================
target     reader                                          file
=========  ==============================================  =================================
csv        ``read_csv(path, target="k")``                  ``data.csv``
npz        ``read_npz(path)``                              ``data.npz``
idx        ``read_idx(path)``                              ``data-idx3-ubyte``
idx_gz     ``read_idx(path)``                              ``data-idx3-ubyte.gz``
tensors    ``load_tensors(path)``                          ``model.safetensors``
json       ``read_json(path)``                             ``state.json``
image      ``read_image_folder(root)``                     ``root/b/x.png`` beside a good PNG
=========  ==============================================  =================================

Every target starts from a small corpus of valid files (written at start-up), so the
mutations reach past the magic numbers.

Run one target (``atheris`` is in the ``fuzz`` extra)::

    python benchmarks/fuzz_readers.py npz --seconds 60

or every target one after the other, each in its own process, with a summary table::

    python benchmarks/fuzz_readers.py all --seconds 60
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import re
import struct
import subprocess
import sys
import tempfile
import traceback
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch  # imported before instrumentation: its own code is not fuzzed

TARGETS = ("csv", "npz", "idx", "idx_gz", "tensors", "json", "image")
_RSS_LIMIT_MB = 4096
_MAX_LEN = 1 << 16


# ----------------------------------------------------------------------------- seeds


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _npz(compression: int) -> bytes:
    buffer = io.BytesIO()
    arrays = {
        "X": np.arange(12, dtype=np.float32).reshape(4, 3),
        "y": np.array(["a", "b", "a", "b"]),
        "class_names": np.array(["a", "b"]),
        "is_test": np.array([False, False, True, True]),
    }
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for key, array in arrays.items():
            archive.writestr(f"{key}.npy", _npy(array))
    return buffer.getvalue()


def _idx() -> bytes:
    shape = (3, 2, 2)
    return bytes([0, 0, 0x08, len(shape)]) + struct.pack(">3I", *shape) + bytes(range(12))


def _safetensors() -> bytes:
    from safetensors.torch import save

    return save({"W": torch.arange(6, dtype=torch.float32).reshape(2, 3), "n": torch.tensor(3)})


def _png(shade: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (4, 3), shade).save(buffer, "PNG")
    return buffer.getvalue()


def seeds(target: str) -> list[bytes]:
    """Return valid files for ``target``, the starting corpus."""
    table: dict[str, Callable[[], list[bytes]]] = {
        "csv": lambda: [
            b"a,b,k\n1.5,2,x\n3,4e-3,y\n-1,0,x\n",
            b'\xef\xbb\xbf"a","b",k\r\n"1",2,"x,y"\r\n3,4,z\r\n',
        ],
        "npz": lambda: [_npz(zipfile.ZIP_STORED), _npz(zipfile.ZIP_DEFLATED)],
        "idx": lambda: [_idx()],
        "idx_gz": lambda: [gzip.compress(_idx(), mtime=0)],
        "tensors": lambda: [_safetensors()],
        "json": lambda: [
            b'{"tag": "epoch-3", "sequence": 3}',
            b'{"a": [1, 2.5e-3, null, true, {"__tuple__": ["x"]}], "b": "\\u00e9"}',
        ],
        "image": lambda: [_png(0), _png(200)],
    }
    return table[target]()


# ----------------------------------------------------------------------------- targets


class Target:
    """One reader fed through one file; collects unexpected exceptions."""

    def __init__(self, name: str, work: Path, findings: Path) -> None:
        from deepdx.exceptions import DataError, InvalidParameterError, UnsafeFileError

        self.name, self.findings = name, findings
        self.expected = (DataError, UnsafeFileError, InvalidParameterError)
        self.seen: set[tuple[str, str]] = set()
        self.read, self.path = self._reader(name, work)

    def _reader(self, name: str, work: Path) -> tuple[Callable[[Path], object], Path]:
        from deepdx.data import read_csv, read_idx, read_image_folder, read_npz
        from deepdx.io import load_tensors, read_json

        work.mkdir(parents=True, exist_ok=True)
        if name == "image":
            for label in ("a", "b"):
                (work / label).mkdir(parents=True, exist_ok=True)
            (work / "a" / "ok.png").write_bytes(_png(100))
            return (lambda _: read_image_folder(work)), work / "b" / "x.png"
        files = {
            "csv": ("data.csv", lambda p: read_csv(p, target="k")),
            "npz": ("data.npz", read_npz),
            "idx": ("data-idx3-ubyte", read_idx),
            "idx_gz": ("data-idx3-ubyte.gz", read_idx),
            "tensors": ("model.safetensors", load_tensors),
            "json": ("state.json", read_json),
        }
        file_name, read = files[name]
        return read, work / file_name

    def __call__(self, data: bytes) -> None:
        """Write ``data``, read it back, and report any exception that is not deepdx's."""
        self.path.write_bytes(data)
        try:
            self.read(self.path)
        except self.expected:
            pass
        except Exception as exc:  # noqa: BLE001 - every other exception is the finding
            self._report(exc, data)

    def _report(self, exc: Exception, data: bytes) -> None:
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        key = (type(exc).__qualname__, where)
        if key in self.seen:
            return
        self.seen.add(key)
        digest = hashlib.sha1(data).hexdigest()[:12]
        (self.findings / f"{self.name}-{digest}").write_bytes(data)
        print(
            f"FINDING {self.name}: {type(exc).__module__}.{type(exc).__qualname__} at "
            f"{where}: {str(exc)[:200]!r} (input {self.name}-{digest}, {len(data)} bytes)",
            flush=True,
        )


def fuzz_one(name: str, seconds: int, findings: Path) -> None:
    """Fuzz one target in this process until ``seconds`` have passed (never returns)."""
    import atheris

    with atheris.instrument_imports(include=["deepdx", "zipfile", "gzip", "csv", "json"]):
        import deepdx.data  # noqa: F401
        import deepdx.io  # noqa: F401
    work = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
    corpus = work / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(seeds(name)):
        (corpus / f"seed-{i}").write_bytes(seed)
    findings.mkdir(parents=True, exist_ok=True)
    target = Target(name, work / "files", findings)
    args = [
        sys.argv[0],
        f"-max_total_time={seconds}",
        f"-rss_limit_mb={_RSS_LIMIT_MB}",
        f"-max_len={_MAX_LEN}",
        "-timeout=20",
        "-print_final_stats=1",
        f"-artifact_prefix={findings}/",
        str(corpus),
    ]
    atheris.Setup(args, target)
    atheris.Fuzz()


# ----------------------------------------------------------------------------- driver


def fuzz_all(seconds: int, findings: Path) -> int:
    """Fuzz every target in its own process; print one summary row per target."""
    rows = []
    for name in TARGETS:
        command = [sys.executable, __file__, name, "--seconds", str(seconds)]
        command += ["--findings", str(findings)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        output = done.stdout + done.stderr
        runs = re.search(r"Done (\d+) runs in (\d+) second", output)
        found = [line for line in output.splitlines() if line.startswith("FINDING")]
        print("\n".join(found), flush=True)
        crashed = "" if runs else f" (libFuzzer stopped early, exit {done.returncode})"
        rows.append((name, runs.group(1) if runs else "?", runs.group(2) if runs else "?",
                     f"{len(found)}{crashed}"))  # fmt: skip
    print(f"\n{'target':<10}{'runs':>12}{'seconds':>10}  findings")
    for name, runs, secs, found in rows:
        print(f"{name:<10}{runs:>12}{secs:>10}  {found}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=(*TARGETS, "all"))
    parser.add_argument("--seconds", type=int, default=60, help="fuzzing time per target")
    parser.add_argument(
        "--findings", type=Path, default=Path("fuzz-findings"), help="where inputs are saved"
    )
    args = parser.parse_args()
    if args.target == "all":
        return fuzz_all(args.seconds, args.findings)
    fuzz_one(args.target, args.seconds, args.findings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
