"""Malformed and hostile inputs: every reader answers with a specific deepdx error.

One table per reader (CSV, NPZ, IDX, image folders, safetensors, JSON, checkpoints, run
directories). Each case builds a file in ``tmp_path`` and names the error class and the
message it must carry; anything else (a ``ValueError`` from NumPy, ``zlib.error``,
``MemoryError``, a hang) fails the case. Bombs also check that the reader stays within a
small memory budget. The last section feeds HTML into column, class and dataset names and
checks that the report shows it as text.
"""

import gzip
import html.parser
import json
import pickle
import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepdx.data import read_csv, read_idx, read_image_folder, read_npz
from deepdx.exceptions import DataError, InvalidParameterError, UnsafeFileError
from deepdx.io import load_tensors, read_json, save_tensors
from deepdx.nets import build_model
from deepdx.runs import RunConfig, load_run
from deepdx.train.checkpoint import load_checkpoint, save_checkpoint

from . import payloads

# ---------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------

LONG = 10**6
CSV_CASES = [
    ("ragged-rows", b"a,b,k\n1,2,x\n3,y\n", DataError, "is ragged"),
    ("unterminated-quote-inside", b'a,b,k\n1,2,"x\n3,4,y\n5,6,x\n', DataError,
     r"unterminated quoted field: it holds an odd number \(1\)"),
    ("unterminated-quote-last-row", b'a,b,k\n1,2,x\n3,4,"y\n', DataError,
     "unterminated quoted field"),
    ("unterminated-quote-header", b'"a,b,k\n1,2,x\n3,4,y\n', DataError,
     "unterminated quoted field"),
    ("binary-garbage", bytes(range(256)) * 8, DataError, r"not UTF-8 text \(byte 128"),
    ("utf16", "a,k\n1,x\n2,y\n".encode("utf-16"), DataError, r"not UTF-8 text \(byte 0"),
    ("nul-bytes", b"a,k\n1\x00,x\n2,y\n", DataError, r"holds NUL bytes \(the first at byte 5\)"),
    ("empty-file", b"", DataError, "is empty"),
    ("blank-lines-only", b"\n\n\r\n", DataError, "is empty"),
    ("header-only", b"a,b,k\n", DataError, "has a header but no data rows"),
    ("duplicate-columns", b"a,a,k\n1,2,x\n3,4,y\n", DataError,
     r"repeats the column names \['a'\]"),
    ("huge-column-name", b"a," + b"k" * LONG + b"\n1,x\n2,y\n", DataError,
     r"header row of CSV file 'data.csv' cannot be parsed \(field larger than field limit"),
    ("huge-number", b"a,k\n" + b"9" * LONG + b",x\n2,y\n", DataError,
     r"X of dataset 'data' has 1 NaN or infinite values"),
    ("huge-label-among-many-rows", b"a,k\n1," + b"x" * LONG + b"\n" + b"2,y\n" * 70,
     DataError, r"has a field of 1000000 bytes .* GiB, over 128 times the file's size"),
    ("nan-strings", b"a,k\nnan,x\n2,y\nNaN,x\n", DataError,
     r"missing values .* in 2 of 3 rows, in columns 'a' \(2 rows\)"),
    ("na-label", b"a,k\n1,x\n2,NA\n", DataError, r"missing values .* columns 'k' \(1 rows\)"),
    ("inf-strings", b"a,k\ninf,x\n-Infinity,y\n3,x\n", DataError,
     "2 NaN or infinite values in 2 rows"),
    ("overflow-to-inf", b"a,k\n1e999,x\n2,y\n", DataError, "1 NaN or infinite values"),
    ("inf-regression-target", b"a,k\n1,0.5\n2,inf\n3,1.5\n", DataError,
     "regression targets of 'data' must be finite"),
    ("non-numeric-feature", b"a,b,k\n1,cat,x\n2,dog,y\n", DataError,
     r"non-numeric feature columns \['b'\]"),
    ("hex-feature", b"a,k\n0x1F,x\n2,y\n", DataError, r"non-numeric feature columns \['a'\]"),
    ("missing-target", b"a,b\n1,2\n3,4\n", DataError,
     "target column 'k' is not in CSV file 'data.csv'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "error", "match"), [c[1:] for c in CSV_CASES], ids=[c[0] for c in CSV_CASES]
)
def test_read_csv_refuses_hostile_file(tmp_path, content, error, match):
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    with pytest.raises(error, match=match):
        read_csv(path, target="k")


@pytest.mark.parametrize("delimiter", ["ab", '"', "\n", "\r"])
def test_read_csv_refuses_delimiter_that_cannot_separate_fields(tmp_path, delimiter):
    path = tmp_path / "data.csv"
    path.write_text("a,k\n1,x\n2,y\n")
    with pytest.raises(InvalidParameterError, match="delimiter must be one character"):
        read_csv(path, target="k", delimiter=delimiter)


def test_read_csv_strips_byte_order_mark_from_first_column(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes("\ufeffa,k\n1,x\n2,y\n".encode())
    with pytest.raises(DataError, match=r"its columns are 'a', 'k'\."):  # not '\ufeffa'
        read_csv(path, target="nope")
    assert read_csv(path, target="k").X[:, 0].tolist() == [1.0, 2.0]


def test_read_csv_keeps_formula_injection_as_a_plain_label(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("a,k\n1,\"=cmd|' /C calc'!A0\"\n2,\"@SUM(1+1)*cmd|' /C calc'!A0\"\n")
    dataset = read_csv(path, target="k")
    assert dataset.class_names == ("=cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0")


# ---------------------------------------------------------------------------------------
# NPZ
# ---------------------------------------------------------------------------------------


def _savez(**arrays):
    members = {f"{key}.npy": payloads.npy_bytes(np.asarray(a)) for key, a in arrays.items()}
    return payloads.npz_bytes(members)


def _corrupt(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data
    return data.replace(old, new, 1)


def _bzip2_bomb():
    zeros = payloads.npy_bytes(np.zeros((2_000_000, 1)))  # 16 MB that bzip2 packs into ~100 bytes
    return payloads.npz_bytes({"X.npy": zeros}, zipfile.ZIP_BZIP2)


HUGE = "{'descr': '<f8', 'fortran_order': False, 'shape': (10000000000000,), }"
NPZ_CASES = [
    ("pickle-disguised", lambda: pickle.dumps({"X": [1.0]}), UnsafeFileError,
     "is a Python pickle"),
    ("bare-npy", lambda: payloads.npy_bytes(np.eye(2)), DataError, "holds a single array"),
    ("bare-npy-huge-shape", lambda: payloads.npy_header_bytes(HUGE), DataError,
     "holds a single array"),
    ("empty-file", lambda: b"", DataError, "not a readable NPZ archive"),
    ("text-file", lambda: b"X,y\n1,2\n", DataError, "starts with bytes 58 2c 79 0a 31 2c"),
    ("huge-declared-shape", lambda: payloads.npz_bytes({"X.npy": payloads.npy_header_bytes(HUGE)}),
     DataError, r"declares shape \(10000000000000,\) of float64 \(80000000000000 bytes\) but its "
     "entry holds 0"),
    ("header-longer-than-data", lambda: payloads.npz_bytes({"X.npy": payloads.npy_bytes(
        np.eye(4))[:-8]}), DataError, r"declares shape \(4, 4\) .* but its entry holds 120"),
    ("trailing-bytes", lambda: payloads.npz_bytes({"X.npy": payloads.npy_bytes(np.eye(2))
                                                   + b"\x00" * 8}), DataError, "entry holds 40"),
    ("bzip2-bomb", _bzip2_bomb, UnsafeFileError, "decompression bomb"),
    ("bad-crc", lambda: _corrupt(_savez(X=np.full(4, 7.0)), np.full(4, 7.0).tobytes(),
                                 np.full(4, 8.0).tobytes()), DataError, "Bad CRC-32"),
    ("encrypted-entry", lambda: payloads.set_zip_header_byte(_savez(X=np.eye(2)), 6, 1),
     DataError, "encrypted"),
    ("unknown-compression", lambda: payloads.set_zip_header_byte(_savez(X=np.eye(2)), 8, 99),
     DataError, "compression method is not supported"),
    ("no-X", lambda: _savez(features=np.eye(2)), DataError, r"its arrays are \['features'\]"),
    ("entry-without-npy-suffix", lambda: payloads.npz_bytes({"X.npy": payloads.npy_bytes(
        np.eye(2)), "is_test": b"\x01\x00"}), DataError, "entry 'is_test' .* is not a .npy array"),
    ("complex-X", lambda: _savez(X=np.ones((3, 2), complex)), DataError,
     "must be numeric; got dtype complex128"),
    ("datetime-X", lambda: _savez(X=np.zeros((3, 1), "datetime64[D]")), DataError,
     r"must be numeric; got dtype datetime64\[D\]"),
    ("structured-X", lambda: _savez(X=np.zeros(3, [("a", "f4"), ("b", "i4")])), DataError,
     "must be numeric"),
    ("bytes-X", lambda: _savez(X=np.array([[b"a"], [b"b"]])), DataError, "must be numeric"),
    ("nan-X", lambda: _savez(X=np.array([[np.nan], [1.0]])), DataError,
     "1 NaN or infinite values"),
    ("length-mismatch", lambda: _savez(X=np.zeros((5, 2)), y=np.arange(4) % 2), DataError,
     "5 samples in X but 4 labels in y"),
    ("0d-X", lambda: _savez(X=np.array(1.0)), DataError, r"must have shape \(n_samples, ...\)"),
    ("0d-y", lambda: _savez(X=np.eye(3), y=np.array(1)), DataError,
     r"class labels of 'data' must be 1-D; got shape \(\)"),
    ("0d-class-names", lambda: _savez(X=np.eye(3), y=np.array([0, 1, 0]),
                                      class_names=np.array("a")), DataError,
     r"'class_names' in 'data.npz' must be 1-D .* got shape \(\)"),
    ("0d-is-test", lambda: _savez(X=np.eye(3), y=np.array([0, 1, 0]), is_test=np.array(True)),
     DataError, r"is_test of dataset 'data' must have shape \(3,\); got \(\)"),
    ("int-is-test", lambda: _savez(X=np.eye(2), is_test=np.array([0, 1])), DataError,
     "must be boolean"),
    ("empty-X", lambda: _savez(X=np.zeros((0, 3))), DataError, "is empty"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("build", "error", "match"), [c[1:] for c in NPZ_CASES], ids=[c[0] for c in NPZ_CASES]
)
def test_read_npz_refuses_hostile_file(tmp_path, build, error, match):
    path = tmp_path / "data.npz"
    path.write_bytes(build())
    tracemalloc.start()
    try:
        with pytest.raises(error, match=match):
            read_npz(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20  # no case may allocate what its header claims


# ---------------------------------------------------------------------------------------
# IDX
# ---------------------------------------------------------------------------------------

GOOD_IDX = payloads.idx_bytes(np.arange(6, dtype=np.uint8).reshape(2, 3))


def _gz_corrupt():
    data = bytearray(gzip.compress(GOOD_IDX + bytes(100), mtime=0))
    data[12] ^= 0xFF
    return bytes(data)


IDX_CASES = [
    ("bad-magic", "x-idx", b"\x01\x00\x08\x01\x00\x00\x00\x01\x00", "must start with bytes 00 00"),
    ("empty", "x-idx", b"", "got an empty file"),
    ("truncated-header", "x-idx", b"\x00\x00\x08\x03\x00\x00", "truncated inside its header"),
    ("truncated-body", "x-idx", GOOD_IDX[:-2], "only 4 follow"),
    ("trailing-bytes", "x-idx", GOOD_IDX + b"\x00", "has bytes after the 6 data bytes"),
    ("absurd-dims", "x-idx", bytes([0, 0, 8, 3]) + b"\xff" * 12 + b"\x00" * 16,
     r"promises 79228162458924105385300197375 data bytes"),
    ("zero-dims", "x-idx", bytes([0, 0, 8, 0]), "declares 0 dimensions"),
    ("too-many-dims", "x-idx", bytes([0, 0, 8, 255]), "declares 255 dimensions"),
    ("empty-dimension", "x-idx", bytes([0, 0, 8, 2]) + bytes(8), "has an empty dimension"),
    ("wrong-dtype-code", "x-idx", bytes([0, 0, 7, 1, 0, 0, 0, 1, 0]), "unknown dtype code 0x07"),
    ("gz-not-gzip", "x-idx.gz", GOOD_IDX, r"could not be read \(Not a gzipped file"),
    ("gz-truncated", "x-idx.gz", gzip.compress(GOOD_IDX)[:-12], "could not be read"),
    ("gz-corrupt-deflate", "x-idx.gz", _gz_corrupt(), "could not be read"),
    ("gz-trailing-garbage", "x-idx.gz", gzip.compress(GOOD_IDX) + b"junk",
     "could not be read"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "content", "match"), [c[1:] for c in IDX_CASES], ids=[c[0] for c in IDX_CASES]
)
def test_read_idx_refuses_hostile_file(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=match):
        read_idx(path)


def test_read_idx_stops_decompressing_gzip_bomb_after_the_promised_bytes(tmp_path):
    path = tmp_path / "bomb-idx3-ubyte.gz"
    path.write_bytes(payloads.gzip_bomb(GOOD_IDX, n_mib=256))  # 256 MiB of zeros in ~256 KiB
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="has bytes after the 6 data bytes"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert path.stat().st_size < 2**20
    assert peak < 4 * 2**20  # read 6 + 1 bytes of body, not 256 MiB


# ---------------------------------------------------------------------------------------
# Image folders
# ---------------------------------------------------------------------------------------


def _image_folder(root: Path, extra: dict[str, bytes]) -> Path:
    """Classes a/ and b/ with one good 4x3 PNG each, plus ``extra`` files."""
    for label in ("a", "b"):
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / "ok.png").write_bytes(payloads.png_bytes())
    for name, data in extra.items():
        (root / name).write_bytes(data)
    return root


def _broken_chunk_png():
    """A PNG whose pixels span two chunks; the second's type is not letters."""
    header = struct.pack(">IIBBBBB", 16, 16, 8, 0, 0, 0, 0)  # 16 x 16, 8-bit gray
    pixels = zlib.compress(b"".join(b"\x00" + bytes(16) for _ in range(16)))  # (16, 1 + 16)
    half = len(pixels) // 2
    chunks = [(b"IHDR", header), (b"IDAT", pixels[:half]), (b"\x82DAT", pixels[half:])]
    return b"\x89PNG\r\n\x1a\n" + b"".join(payloads.png_chunk(k, d) for k, d in chunks)


IMAGE_CASES = [
    ("text-as-png", {"b/x.png": b"hello"}, r"x.png' cannot be read \(cannot identify"),
    ("truncated-png", {"b/x.png": payloads.png_bytes(64, 64)[:-40]},
     r"cannot be read \(image file is truncated"),
    ("broken-chunk", {"b/x.png": _broken_chunk_png()}, r"cannot be read \(broken PNG file"),
    ("truncated-ihdr", {"b/x.png": payloads.png_bytes()[:20]}, "x.png' cannot be read"),
    ("pdf-as-png", {"b/x.png": b"%PDF-1.4\n%\xe2\xe3\n1 0 obj\n"}, "cannot identify"),
    ("bomb-400M-pixels", {"b/x.png": payloads.png_header_only(20000, 20000)},
     r"has more pixels than Pillow's limit .* possible decompression bomb"),
    ("mixed-sizes", {"b/y.png": payloads.png_bytes(5, 3)},
     r"images differ in shape: .* Pass size=\(H, W\)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "match"), [c[1:] for c in IMAGE_CASES], ids=[c[0] for c in IMAGE_CASES]
)
def test_read_image_folder_refuses_hostile_file(tmp_path, extra, match):
    with pytest.raises(DataError, match=match):
        read_image_folder(_image_folder(tmp_path, extra))


def test_read_image_folder_refuses_image_over_pixel_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1000 < 40 * 40 < 2 * 1000: a warning
    root = _image_folder(tmp_path, {"b/big.png": payloads.png_bytes(40, 40)})
    with pytest.raises(DataError, match=r"big.png' has more pixels than Pillow's limit of 1000"):
        read_image_folder(root)


def test_read_image_folder_refuses_empty_class_folder(tmp_path):
    root = _image_folder(tmp_path, {})
    (root / "c").mkdir()
    (root / "c" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="class folder 'c' .* has no image files"):
        read_image_folder(root)


def test_read_image_folder_refuses_symlink_loop(tmp_path):
    root = _image_folder(tmp_path, {})
    (root / "b" / "loop.png").symlink_to(root / "b" / "loop.png")
    with pytest.raises(DataError, match=r"loop.png' cannot be read"):
        read_image_folder(root)


def test_read_image_folder_does_not_recurse_into_class_linked_to_root(tmp_path):
    root = _image_folder(tmp_path, {})
    (root / "c").symlink_to(root, target_is_directory=True)  # root/c/c/c/... is infinite
    with pytest.raises(DataError, match="class folder 'c' .* has no image files"):
        read_image_folder(root)


def test_read_image_folder_refuses_folder_named_like_an_image(tmp_path):
    root = _image_folder(tmp_path, {})
    (root / "b" / "dir.png").mkdir()
    with pytest.raises(DataError, match=r"dir.png' cannot be read"):
        read_image_folder(root)


# ---------------------------------------------------------------------------------------
# safetensors and JSON
# ---------------------------------------------------------------------------------------

F32x2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
TENSOR_CASES = [
    ("huge-header-length", b"\xff" * 8 + b"{}", UnsafeFileError,
     r"declares a 18446744073709551615-byte header"),
    ("header-past-end", (1000).to_bytes(8, "little") + b"{}", DataError,
     "declares a 1000-byte header but has only 2 bytes"),
    ("4-bytes", b"\x00" * 4, DataError, "is 4 bytes long"),
    ("truncated-data", payloads.safetensors_bytes({"a": F32x2}, bytes(8))[:-3], DataError,
     "not a valid safetensors file"),
    ("unknown-dtype", payloads.safetensors_bytes({"a": {**F32x2, "dtype": "Q99"}}, bytes(8)),
     DataError, "unknown variant `Q99`"),
    ("offsets-past-data", payloads.safetensors_bytes({"a": {**F32x2, "data_offsets": [0, 800]}},
                                                     bytes(8)), DataError, "offset"),
    ("offsets-reversed", payloads.safetensors_bytes({"a": {**F32x2, "data_offsets": [8, 0]}},
                                                    bytes(8)), DataError, "offset"),
    ("offsets-overlap", payloads.safetensors_bytes({"a": F32x2, "b": F32x2}, bytes(8)),
     DataError, "offset"),
    ("shape-overflow", payloads.safetensors_bytes({"a": {**F32x2, "shape": [2**62, 2**62]}},
                                                  bytes(8)), DataError, "overflow"),
    ("header-is-a-list", payloads.safetensors_bytes([1, 2]), DataError,
     "not a valid safetensors file"),
    ("header-not-utf8", (4).to_bytes(8, "little") + b"\xff\xfe\xfd\xfc", DataError,
     "invalid UTF-8"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "error", "match"), [c[1:] for c in TENSOR_CASES], ids=[c[0] for c in TENSOR_CASES]
)
def test_load_tensors_refuses_hostile_file(tmp_path, content, error, match):
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    with pytest.raises(error, match=match):
        load_tensors(path)


JSON_CASES = [
    ("deep-array", b"[" * 100_000 + b"]" * 100_000, "nested too deeply to parse"),
    ("deep-object", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply"),
    ("nan", b'{"loss": NaN}', "non-standard constant NaN"),
    ("infinity", b"[-Infinity]", "non-standard constant -Infinity"),
    ("overflow-to-inf", b'{"lr": 1e999}', "number 1e999 overflows a float64"),
    ("huge-int", b"9" * 5000, "Exceeds the limit"),
    ("not-utf8", b'{"a": "\xff"}', "can't decode byte 0xff"),
    ("bom", b'\xef\xbb\xbf{"a": 1}', "Unexpected UTF-8 BOM"),
    ("trailing-data", b'{"a": 1} {"b": 2}', "Extra data"),
    ("empty", b"", "Expecting value"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "match"), [c[1:] for c in JSON_CASES], ids=[c[0] for c in JSON_CASES]
)
def test_read_json_refuses_hostile_file(tmp_path, content, match):
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(DataError, match=match):
        read_json(path)


def test_read_json_refuses_file_over_max_bytes_before_parsing(tmp_path):
    path = tmp_path / "state.json"
    path.write_bytes(b"[" + b"0," * 600_000 + b"0]")
    with pytest.raises(DataError, match="is larger than max_bytes=1000000"):
        read_json(path, max_bytes=1_000_000)


# ---------------------------------------------------------------------------------------
# Checkpoints and run directories
# ---------------------------------------------------------------------------------------


@pytest.fixture
def checkpoint(tmp_path):
    state = {"epoch": 2, "betas": (0.9, 0.999), "best": float("inf")}
    return save_checkpoint(
        tmp_path / "run",
        model_state={"W": torch.arange(6.0).reshape(2, 3)},
        state=state,
        tag="epoch-2",
    )


def _deep_tuple(depth: int) -> dict:
    node: dict = {"__tuple__": []}
    root = node
    for _ in range(depth):
        child: dict = {"__tuple__": []}
        node["__tuple__"].append(child)
        node = child
    return root


CHECKPOINT_CASES = [
    ("manifest-wrong-types", "manifest.json",
     lambda m: json.dumps({**m, "sequence": "2", "files": []}).encode(), DataError,
     "is not a deepdx checkpoint manifest"),
    ("manifest-not-json", "manifest.json", lambda m: b"\x80\x04K\x01.", DataError,
     "not a valid strict JSON file"),
    ("manifest-huge", "manifest.json", lambda m: b" " * (2**20 + 1), DataError,
     "larger than max_bytes=1048576"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "build", "error", "match"),
    [c[1:] for c in CHECKPOINT_CASES],
    ids=[c[0] for c in CHECKPOINT_CASES],
)
def test_load_checkpoint_refuses_hostile_manifest(checkpoint, name, build, error, match):
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    (checkpoint / name).write_bytes(build(manifest))
    with pytest.raises(error, match=match):
        load_checkpoint(checkpoint)


@pytest.mark.parametrize(
    ("state_json", "match"),
    [
        ({"epoch": {"__float__": "zzzzzzzzzzzzzzzz"}}, r"malformed __float__ tag: 'zzzz"),
        ({"epoch": {"__float__": 1.5}}, "malformed __float__ tag"),
        ({"epoch": {"__tensor__": "../../etc/passwd"}}, "refers to tensor '../../etc/passwd'"),
        ({"epoch": {"__dict__": [[{"a": 1}, 2]]}}, "unhashable key"),
        ({"epoch": _deep_tuple(450)}, "nested too deeply to rebuild"),
        ([1, 2, 3], "does not hold a dict"),
    ],
    ids=["float-not-hex", "float-not-str", "tensor-missing", "unhashable-key", "deep", "list"],
)
def test_load_checkpoint_refuses_forged_state_json(checkpoint, state_json, match):
    payloads.forge(checkpoint, "state.json", json.dumps(state_json).encode())
    payloads.forge(checkpoint, "state.safetensors", (2).to_bytes(8, "little") + b"{}")
    with pytest.raises(DataError, match=match):
        load_checkpoint(checkpoint)


@pytest.mark.parametrize(
    ("latest", "match"),
    [
        (
            b'{"tag": "../../outside"}',
            r"does not name a checkpoint folder \(got tag '../../outside'\)",
        ),
        (b'{"tag": ["epoch-2"]}', "does not name a checkpoint folder"),
        (b"[]", "does not name a checkpoint folder"),
        (b'{"tag": "epoch-2"', "not a valid strict JSON file"),
    ],
    ids=["path-traversal", "tag-list", "not-object", "truncated"],
)
def test_load_checkpoint_refuses_hostile_latest_json(checkpoint, latest, match):
    (checkpoint.parent / "latest.json").write_bytes(latest)
    with pytest.raises(DataError, match=match):
        load_checkpoint(checkpoint.parent)


def test_load_checkpoint_refuses_truncated_weights(checkpoint):
    data = (checkpoint / "model.safetensors").read_bytes()
    (checkpoint / "model.safetensors").write_bytes(data[:-5])
    with pytest.raises(UnsafeFileError, match="model.safetensors does not match its manifest"):
        load_checkpoint(checkpoint)


def _run_dir(tmp_path: Path, meta: object, weights: dict | None = None) -> Path:
    """A finished run directory (``mlp:4`` on 4 features, 3 classes), built without training."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps(meta))
    model = build_model("mlp:4", (4,), 3, seed=0)
    save_tensors(
        run / "model.safetensors", dict(model.state_dict()) if weights is None else weights
    )
    return run


GOOD_META = {
    "config": RunConfig(data="iris", model="mlp:4").to_dict(),
    "dataset": "iris",
    "task": "classification",
    "sample_shape": [4],
    "n_outputs": 3,
    "class_names": ["a", "b", "c"],
    "standardizer": None,
    "versions": {},
}


NOT_RUN_JSON = "is not a valid run.json"


@pytest.mark.parametrize(
    ("meta", "match"),
    [
        ([1, 2], f"{NOT_RUN_JSON}: it is not a JSON object"),
        ({k: v for k, v in GOOD_META.items() if k != "config"}, "'config' must be dict"),
        ({**GOOD_META, "config": "mlp"}, "'config' must be dict"),
        ({**GOOD_META, "config": {**GOOD_META["config"], "evil": 1}}, "its config is invalid"),
        ({**GOOD_META, "config": {**GOOD_META["config"], "train": {
            **GOOD_META["config"]["train"], "epochs": "many"}}},
         "`epochs` of TrainConfig must be an int"),
        ({**GOOD_META, "sample_shape": "abc"}, "'sample_shape' must be list"),
        ({**GOOD_META, "n_outputs": "3"}, "'n_outputs' must be int"),
        ({**GOOD_META, "standardizer": [1]}, "'standardizer' must be an object or null"),
    ],
    ids=["list", "no-config", "config-str", "config-unknown-key", "epochs-str",
         "sample-shape-str", "n-outputs-str", "standardizer-list"],
)  # fmt: skip
def test_load_run_refuses_malformed_run_json(tmp_path, meta, match):
    with pytest.raises(DataError, match=match):
        load_run(_run_dir(tmp_path, meta))


def test_load_run_refuses_standardizer_state_with_missing_keys(tmp_path):
    meta = {**GOOD_META, "standardizer": {"mean_": "x"}}
    with pytest.raises(InvalidParameterError, match="Standardizer state is missing the keys"):
        load_run(_run_dir(tmp_path, meta))


def test_load_run_refuses_weights_of_another_model(tmp_path):
    run = _run_dir(tmp_path, GOOD_META, weights={"W": torch.zeros(2, 2)})
    with pytest.raises(DataError, match="model.safetensors in .* does not fit the model 'mlp:4'"):
        load_run(run)


# ---------------------------------------------------------------------------------------
# HTML in names never reaches the report as markup
# ---------------------------------------------------------------------------------------

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"
ATTR = '" onmouseover="alert(3)'
SVG = "<svg onload=alert(4)>"


class _Tags(html.parser.HTMLParser):
    """Collect start tags with their attributes, and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_data(self, data):
        self.text.append(data)


def _hostile_dataset(tmp_path):
    path = tmp_path / f"{SVG}.csv"  # the dataset name comes from the file name
    header = f'"{IMG}","{ATTR.replace(chr(34), chr(34) * 2)}",k\n'
    rows = f'1,2,"{SCRIPT}"\n3,4,"{ATTR.replace(chr(34), chr(34) * 2)}"\n5,6,"{SCRIPT}"\n'
    path.write_text(header + rows)
    return read_csv(path, target="k"), [IMG, ATTR]


def test_render_html_escapes_column_class_and_dataset_names(tmp_path):
    render_html = pytest.importorskip("deepdx.report").render_html
    from deepdx.diagnose.diagnosis import Diagnosis
    from deepdx.diagnose.evidence import Evidence
    from deepdx.diagnose.findings import Finding

    dataset, columns = _hostile_dataset(tmp_path)
    assert dataset.name == SVG and set(dataset.class_names) == {SCRIPT, ATTR}
    evidence = Evidence("classification", "accuracy", 2, dataset.n_samples, "adam", 1e-3)
    evidence.skipped = {"learning_curve": f"class {dataset.class_names[0]} has 1 sample"}
    finding = Finding(
        "data_sanity",
        "warning",
        f"Column {columns[0]} of {dataset.name} is constant for class {dataset.class_names[1]}.",
        {"columns": columns, "classes": list(dataset.class_names), columns[1]: 1.0},
        (f"Drop column {columns[0]}.",),
    )
    settings = {"data": dataset.name, "columns": columns, "class_names": list(dataset.class_names)}
    page = render_html(Diagnosis([finding], evidence, settings))
    parser = _Tags()
    parser.feed(page)
    assert not {tag for tag, _ in parser.tags} & {"script", "img", "svg"}
    assert not [name for _, attrs in parser.tags for name, _ in attrs if name.startswith("on")]
    text = "".join(parser.text)
    assert all(text.count(name) >= 2 for name in (SCRIPT, IMG, SVG, ATTR))  # shown as text
