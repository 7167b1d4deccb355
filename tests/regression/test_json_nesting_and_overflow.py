"""Regressions of read_json and merge_tensors on hostile JSON."""

import json

import pytest

from deepdx.exceptions import DataError
from deepdx.io import merge_tensors, read_json


def test_read_json_deep_nesting_raises_data_error(tmp_path):
    # was: RecursionError
    path = tmp_path / "a.json"
    path.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(DataError, match="nested too deeply"):
        read_json(path)


def test_read_json_number_overflowing_to_infinity_is_refused(tmp_path):
    # was: 1e999 read as inf by a reader that promises no Infinity
    path = tmp_path / "a.json"
    path.write_text('{"lr": 1e999}')
    with pytest.raises(DataError, match="number 1e999 overflows a float64"):
        read_json(path)


def test_merge_tensors_float_tag_with_non_hex_digits_raises_data_error():
    # was: ValueError from bytes.fromhex
    with pytest.raises(DataError, match="malformed __float__ tag"):
        merge_tensors({"x": {"__float__": "zzzzzzzzzzzzzzzz"}}, {})


def test_merge_tensors_deeply_nested_tuples_raise_data_error():
    # was: RecursionError (a forged state.json parses, then cannot be rebuilt)
    text = '{"__tuple__": [' * 450 + "1" + "]}" * 450
    with pytest.raises(DataError, match="nested too deeply to rebuild"):
        merge_tensors(json.loads(text), {})
