"""A short, seeded fuzz run of every reader: mutated valid files and random bytes.

``benchmarks/fuzz_readers.py`` runs the coverage-guided version (atheris) for minutes; this
one runs in the default test suite, derandomized, a few seconds in all. A reader may refuse
an input only with DataError, UnsafeFileError or InvalidParameterError; any other exception
fails the test with the input that raised it.
"""

import gzip
import io
import zipfile

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save as safetensors_save

from deepdx.data import read_csv, read_idx, read_image_folder, read_npz
from deepdx.exceptions import DataError, InvalidParameterError, UnsafeFileError
from deepdx.io import load_tensors, read_json

from . import payloads

EXPECTED = (DataError, UnsafeFileError, InvalidParameterError)
FUZZ = settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _npz(compression: int) -> bytes:
    arrays = {
        "X": np.arange(12, dtype=np.float32).reshape(4, 3),
        "y": np.array(["a", "b", "a", "b"]),
        "class_names": np.array(["a", "b"]),
        "is_test": np.array([False, False, True, True]),
    }
    members = {f"{k}.npy": payloads.npy_bytes(a) for k, a in arrays.items()}
    return payloads.npz_bytes(members, compression)


IDX = payloads.idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 2, 2))
SEEDS = {
    "csv": [
        b"a,b,k\n1.5,2,x\n3,4e-3,y\n-1,0,x\n",
        b'\xef\xbb\xbf"a",b,k\r\n"1",2,"x,y"\r\n3,4,z\r\n',
    ],
    "npz": [_npz(zipfile.ZIP_STORED), _npz(zipfile.ZIP_DEFLATED)],
    "idx": [IDX],
    "idx.gz": [gzip.compress(IDX, mtime=0)],
    "tensors": [safetensors_save({"W": torch.ones(2, 3), "n": torch.tensor(3)})],
    "json": [b'{"tag": "epoch-3", "sequence": 3, "x": [1.5, null, {"__tuple__": [true]}]}'],
    "png": [payloads.png_bytes(), payloads.png_bytes(3, 5, 0)],
}  # fmt: skip


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    """A seed with a few random byte flips, insertions, deletions and a possible cut."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        edit = draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        if edit == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif edit == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            del data[at:]
    return bytes(data)


def _inputs(kind: str):
    return st.one_of(mutated(SEEDS[kind]), st.binary(max_size=256))


def _check(read, path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        read(path)
    except EXPECTED:
        pass


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.parametrize(
    ("kind", "name", "read"),
    [
        ("csv", "data.csv", lambda p: read_csv(p, target="k")),
        ("npz", "data.npz", read_npz),
        ("idx", "data-idx3-ubyte", read_idx),
        ("idx.gz", "data-idx3-ubyte.gz", read_idx),
        ("tensors", "model.safetensors", load_tensors),
        ("json", "state.json", read_json),
    ],
    ids=["csv", "npz", "idx", "idx-gz", "safetensors", "json"],
)
def test_reader_raises_only_deepdx_errors_on_fuzzed_bytes(work, kind, name, read):
    @FUZZ
    @given(data=_inputs(kind))
    def check(data):
        _check(read, work / name, data)

    check()


def test_read_image_folder_raises_only_deepdx_errors_on_fuzzed_png(work):
    root = work / "images"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True, exist_ok=True)
    (root / "a" / "ok.png").write_bytes(payloads.png_bytes())

    @FUZZ
    @given(data=_inputs("png"))
    def check(data):
        _check(lambda _: read_image_folder(root), root / "b" / "x.png", data)

    check()


def test_mutated_strategy_changes_seeds():
    seen = set()

    @settings(max_examples=30, derandomize=True, database=None)
    @given(data=mutated([b"0123456789"]))
    def collect(data):
        seen.add(data)

    collect()
    assert len(seen) > 10 and any(len(d) != 10 for d in seen)


def test_fuzz_check_lets_unexpected_errors_through(tmp_path):
    def read(path):
        raise ValueError("a reader bug")

    with pytest.raises(ValueError, match="a reader bug"):
        _check(read, tmp_path / "f", b"x")
    _check(lambda p: io.BytesIO(p.read_bytes()), tmp_path / "f", b"x")
