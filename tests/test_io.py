from __future__ import annotations

import collections
import hashlib
import json
import os
import re
import struct
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepdx._random import make_generator, numpy_rng
from deepdx.exceptions import DataError, InvalidParameterError, UnsafeFileError
from deepdx.io import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    load_tensors,
    merge_tensors,
    read_json,
    read_tensor_metadata,
    save_tensors,
    sha256_file,
    split_tensors,
)
from tests.pickle_exploit import pickle_payload

# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


def _bits(tensor: torch.Tensor) -> list[int]:
    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).tolist()


def _assert_identical(a: object, b: object, path: str = "tree") -> None:
    """Recursive equality that also checks types, dict order and float bits."""
    assert type(a) is type(b), f"{path}: {type(a)} != {type(b)}"
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor)
        assert (a.dtype, a.shape) == (b.dtype, b.shape), path
        assert _bits(a) == _bits(b), path
    elif isinstance(a, np.ndarray | np.generic):
        assert isinstance(b, np.ndarray | np.generic)
        assert (a.dtype, np.shape(a)) == (b.dtype, np.shape(b)), path
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), path
    elif isinstance(a, float):
        assert struct.pack(">d", a) == struct.pack(">d", b), path  # type: ignore[arg-type]
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_identical(x, y, f"{path}[{i}]")
    elif isinstance(a, dict):
        assert isinstance(b, dict) and len(a) == len(b), path
        for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True):
            _assert_identical(ka, kb, f"{path}<key>")
            _assert_identical(va, vb, f"{path}[{ka!r}]")
    else:
        assert a == b, path


def _round_trip_via_files(tree: object, folder: Path) -> object:
    json_tree, tensors = split_tensors(tree)
    atomic_write_json(folder / "tree.json", json_tree)
    save_tensors(folder / "tree.safetensors", tensors)
    return merge_tensors(read_json(folder / "tree.json"), load_tensors(folder / "tree.safetensors"))


def _tree() -> dict[object, object]:
    gen = make_generator(0)
    nan_with_payload = struct.unpack(">d", bytes.fromhex("fff8000000000123"))[0]
    return {
        "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(2, 3, generator=gen)}},
        "param_groups": [{"betas": (0.9, 0.999), "params": [0], "foreach": None}],
        "floats": [float("nan"), float("inf"), float("-inf"), -0.0, 1e-310, nan_with_payload],
        "rng": torch.get_rng_state(),
        "generator": gen.get_state(),
        "numpy": {"array": numpy_rng(0).random((2, 2)), "scalar": np.float32(1.5)},
        "numpy_state": numpy_rng(3).bit_generator.state,
        "ordered": OrderedDict([("b", 1), ("a", 2)]),
        ("tuple", 1): {None: True, 2.5: "x", False: 2**70},
        "tag_like": {"__tensor__": "not a tensor"},
        "empty": [(), {}, [], torch.zeros(0, 3, dtype=torch.int16)],
    }


# ---------------------------------------------------------------------------------------
# Atomic writes
# ---------------------------------------------------------------------------------------


def test_atomic_write_bytes_replaces_content(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_atomic_write_bytes_keeps_old_file_when_a_step_fails(tmp_path, monkeypatch, failing):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")

    def fail(*args, **kwargs):
        raise OSError(f"{failing} failed")

    monkeypatch.setattr(os, failing, fail)
    with pytest.raises(OSError, match=f"{failing} failed"):
        atomic_write_bytes(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # temp file removed


def test_atomic_write_text_writes_utf8(tmp_path):
    path = atomic_write_text(tmp_path / "t.txt", "naïve ∑")
    assert path.read_bytes() == "naïve ∑".encode()


def test_atomic_write_json_round_trips_through_read_json(tmp_path):
    obj = {"lr": 0.1, "steps": [1, 2, 3], "name": "réseau", "nested": {"ok": True, "x": None}}
    assert read_json(atomic_write_json(tmp_path / "a.json", obj)) == obj


def test_atomic_write_json_refuses_nan_and_writes_nothing(tmp_path):
    with pytest.raises(InvalidParameterError, match="not strict JSON"):
        atomic_write_json(tmp_path / "a.json", {"loss": float("nan")})
    assert list(tmp_path.iterdir()) == []


def test_sha256_file_matches_hashlib_over_several_chunks(tmp_path):
    data = numpy_rng(0).bytes(2_500_000)  # spans three 1 MiB chunks
    path = atomic_write_bytes(tmp_path / "blob", data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------
# read_json
# ---------------------------------------------------------------------------------------


def test_read_json_refuses_file_over_max_bytes(tmp_path):
    path = atomic_write_json(tmp_path / "big.json", list(range(1000)))
    with pytest.raises(DataError, match="larger than max_bytes=100"):
        read_json(path, max_bytes=100)


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": Infinity}', '{"a": 1', "\udcff"])
def test_read_json_refuses_invalid_or_non_strict_json(tmp_path, text):
    path = tmp_path / "bad.json"
    path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    with pytest.raises(DataError, match="not a valid strict JSON file"):
        read_json(path)


def test_read_json_refuses_wrong_sha256(tmp_path):
    path = atomic_write_json(tmp_path / "a.json", {"a": 1})
    good = sha256_file(path)
    assert read_json(path, sha256=good) == {"a": 1}
    with pytest.raises(UnsafeFileError, match=r"a\.json does not match its recorded SHA-256"):
        read_json(path, sha256="0" * 64)


# ---------------------------------------------------------------------------------------
# save_tensors / load_tensors
# ---------------------------------------------------------------------------------------

DTYPES = [
    torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32,
    torch.int16, torch.int8, torch.uint8, torch.bool, torch.complex64, torch.uint16,
    torch.uint32, torch.uint64, torch.float8_e4m3fn, torch.float8_e5m2,
]  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_save_tensors_round_trips_dtype_and_shape_bitwise(tmp_path, dtype):
    raw = torch.randint(0, 256, (4, 6, 8), dtype=torch.uint8, generator=make_generator(0))
    full = (raw % 2).bool() if dtype == torch.bool else raw.view(dtype)  # every bit pattern
    tensors = {
        "matrix": full[0],
        "transposed": full[1].t(),  # non-contiguous view
        "scalar": full[2].reshape(-1)[0].clone(),  # 0-d
        "empty": full[3][:0],
    }
    loaded = load_tensors(save_tensors(tmp_path / "t.safetensors", tensors))
    assert sorted(loaded) == sorted(tensors)
    for key, tensor in tensors.items():
        _assert_identical(tensor, loaded[key], key)


def test_save_tensors_copies_shared_storage_and_keeps_metadata(tmp_path):
    base = torch.arange(6.0)
    path = save_tensors(tmp_path / "t.safetensors", {"a": base, "b": base[2:4]}, {"epoch": "3"})
    loaded = load_tensors(path)
    assert torch.equal(loaded["b"], torch.tensor([2.0, 3.0]))
    assert read_tensor_metadata(path) == {"epoch": "3"}
    loaded["a"].add_(1)  # loaded tensors are writable and independent
    assert torch.equal(loaded["b"], torch.tensor([2.0, 3.0]))


@pytest.mark.parametrize(
    ("tensors", "message"),
    [
        ({"x": torch.zeros(2, dtype=torch.complex128)}, "cannot be stored in safetensors"),
        ({"x": torch.zeros(3).to_sparse()}, "cannot be stored in safetensors"),
        ({"x": torch.zeros(3, device="meta")}, "cannot be stored in safetensors"),
        ({"x": [1.0, 2.0]}, "expected a torch.Tensor"),
        ({1: torch.zeros(1)}, "Tensor key 1 is not allowed"),
        ({"__metadata__": torch.zeros(1)}, "Tensor key '__metadata__' is not allowed"),
    ],
)
def test_save_tensors_refuses_what_safetensors_cannot_store(tmp_path, tensors, message):
    with pytest.raises(InvalidParameterError, match=message):
        save_tensors(tmp_path / "t.safetensors", tensors)
    assert list(tmp_path.iterdir()) == []


def test_load_tensors_refuses_pickle_without_running_it(tmp_path):
    sentinel = tmp_path / "pwned"
    path = atomic_write_bytes(tmp_path / "model.safetensors", pickle_payload(sentinel))
    with pytest.raises(UnsafeFileError, match="is a Python pickle.*never unpickles"):
        load_tensors(path)
    with pytest.raises(UnsafeFileError, match="is a Python pickle"):
        read_tensor_metadata(path)
    assert not sentinel.exists()


def test_load_tensors_refuses_torch_save_archive(tmp_path):
    path = tmp_path / "weights.safetensors"
    torch.save({"W": torch.zeros(2)}, path)
    with pytest.raises(UnsafeFileError, match="zip archive.*torch.save"):
        load_tensors(path)


def test_load_tensors_refuses_huge_declared_header(tmp_path):
    path = atomic_write_bytes(tmp_path / "h.safetensors", (2**40).to_bytes(8, "little") + b"{}")
    with pytest.raises(UnsafeFileError, match=r"declares a 1099511627776-byte header"):
        load_tensors(path)
    small = save_tensors(tmp_path / "ok.safetensors", {"x": torch.zeros(100)})
    with pytest.raises(UnsafeFileError, match="max_header_bytes=8"):
        load_tensors(small, max_header_bytes=8)


def test_load_tensors_refuses_header_longer_than_file(tmp_path):
    path = atomic_write_bytes(tmp_path / "h.safetensors", (500).to_bytes(8, "little") + b"{}")
    with pytest.raises(DataError, match="declares a 500-byte header but has only 2 bytes"):
        load_tensors(path)


@pytest.mark.parametrize("cut", [3, 20, 1])
def test_load_tensors_refuses_truncated_file(tmp_path, cut):
    full = save_tensors(tmp_path / "full.safetensors", {"x": torch.ones(4, 4)}).read_bytes()
    truncated = full[:cut] if cut < 8 else full[:-cut]
    path = atomic_write_bytes(tmp_path / "cut.safetensors", truncated)
    with pytest.raises(DataError, match="truncated|not a valid safetensors"):
        load_tensors(path)


def test_load_tensors_refuses_garbage_header(tmp_path):
    header = b'{"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 999]}}'
    data = len(header).to_bytes(8, "little") + header + b"\0" * 8
    path = atomic_write_bytes(tmp_path / "g.safetensors", data)
    with pytest.raises(DataError, match="not a valid safetensors file"):
        load_tensors(path)


def test_load_tensors_checks_sha256_on_the_bytes_it_parses(tmp_path):
    path = save_tensors(tmp_path / "t.safetensors", {"x": torch.ones(3)})
    assert torch.equal(load_tensors(path, sha256=sha256_file(path))["x"], torch.ones(3))
    with pytest.raises(UnsafeFileError, match="does not match its recorded SHA-256"):
        load_tensors(path, sha256=hashlib.sha256(b"other").hexdigest())


# ---------------------------------------------------------------------------------------
# split_tensors / merge_tensors
# ---------------------------------------------------------------------------------------


def test_split_tensors_round_trips_tree_exactly_in_memory():
    tree = _tree()
    json_tree, tensors = split_tensors(tree)
    json.dumps(json_tree, allow_nan=False)  # strict JSON: no NaN, no non-str keys
    _assert_identical(tree, merge_tensors(json_tree, tensors))


def test_split_tensors_round_trips_tree_exactly_through_files(tmp_path):
    tree = _tree()
    _assert_identical(tree, _round_trip_via_files(tree, tmp_path))


def test_split_tensors_tags_tuples_int_keys_and_nan():
    json_tree, tensors = split_tensors({"betas": (0.9, 0.99), 3: float("nan")}, root="s")
    assert json_tree == {
        "__dict__": [["betas", {"__tuple__": [0.9, 0.99]}], [3, {"__float__": "7ff8000000000000"}]]
    }
    assert tensors == {}


def test_split_tensors_keys_tensors_by_their_path():
    step = torch.tensor(1.0)
    _, tensors = split_tensors({"state": {0: {"step": step}}}, root="state")
    assert list(tensors) == ["state['state'][0]['step']"]
    assert tensors["state['state'][0]['step']"].data_ptr() == step.data_ptr()  # not copied


@pytest.mark.parametrize(
    ("bad", "kind"),
    [
        (object(), "builtins.object"),
        (lambda x: x, "function"),
        (collections.defaultdict(list), "collections.defaultdict"),
        (collections.namedtuple("P", "x")(1), "P"),
        ({1, 2}, "builtins.set"),
        (b"bytes", "builtins.bytes"),
    ],
    ids=["object", "lambda", "defaultdict", "namedtuple", "set", "bytes"],
)
def test_split_tensors_refuses_unsupported_object_naming_its_path(bad, kind):
    state = {"param_groups": [{"lr": 0.1, "foo": bad}]}
    path = re.escape("state['param_groups'][0]['foo']")
    with pytest.raises(InvalidParameterError, match=f"{path} is a .*{kind}.*without pickle"):
        split_tensors(state, root="state")


def test_split_tensors_refuses_cycle():
    tree: dict[str, object] = {"a": []}
    tree["a"].append(tree)  # type: ignore[union-attr]
    with pytest.raises(InvalidParameterError, match=re.escape("tree['a'][0] contains itself")):
        split_tensors(tree)


def test_split_tensors_allows_shared_non_cyclic_references():
    shared = [1, 2]
    back = merge_tensors(*split_tensors({"a": shared, "b": shared}))
    assert back == {"a": [1, 2], "b": [1, 2]}


def test_split_tensors_refuses_unsupported_key():
    with pytest.raises(InvalidParameterError, match=r"key frozenset\(\{1\}\)"):
        split_tensors({frozenset({1}): 0})


def test_split_tensors_refuses_non_native_numpy_dtype():
    with pytest.raises(InvalidParameterError, match=r"tree\['s'\] is a NumPy value of dtype"):
        split_tensors({"s": np.array(["a", "b"])})


def test_merge_tensors_refuses_missing_and_unreferenced_tensors():
    json_tree, tensors = split_tensors({"w": torch.ones(2)})
    with pytest.raises(DataError, match="refers to tensor .* which is missing"):
        merge_tensors(json_tree, {})
    with pytest.raises(DataError, match="1 tensors are not referenced"):
        merge_tensors(json_tree, {**tensors, "extra": torch.zeros(1)})


@pytest.mark.parametrize(
    "node",
    [{"__float__": "nan"}, {"__tuple__": "ab"}, {"__dict__": [[1]]}, {"__dict__": [[[1], 2]]}],
    ids=["float", "tuple", "pair", "unhashable-key"],
)
def test_merge_tensors_refuses_malformed_tags(node):
    with pytest.raises(DataError, match="malformed|unhashable"):
        merge_tensors({"x": node}, {})


_KEYS = st.none() | st.booleans() | st.integers() | st.text(max_size=4)
_KEYS |= st.tuples(st.integers(), st.text(max_size=2))
_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=4)
    | st.lists(st.floats(width=32), max_size=3).map(lambda xs: torch.tensor(xs))
    | st.integers(0, 255).map(lambda v: torch.tensor(v, dtype=torch.uint8))
)
_TREES = st.recursive(
    _LEAVES,
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children, children)
        | st.dictionaries(_KEYS, children, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=40, derandomize=True, deadline=None, database=None)
@given(_TREES)
def test_split_tensors_round_trips_random_trees(tree):
    _assert_identical(tree, merge_tensors(*split_tensors(tree)))
