"""Regressions of read_csv on hostile bytes (found by the security suite and the fuzzer)."""

import tracemalloc

import pytest

from deepdx.data import read_csv
from deepdx.exceptions import DataError, InvalidParameterError


def _write(tmp_path, content: bytes):
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    return path


def test_read_csv_one_huge_field_is_refused_before_the_table_is_allocated(tmp_path):
    # was: every cell became <U100000, 700 x 2 x 400 kB = 560 MB from a 100 kB file
    path = _write(tmp_path, b"a,k\n1," + b"x" * 100_000 + b"\n" + b"2,y\n" * 700)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="has a field of 100000 bytes"):
            read_csv(path, target="k")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20


def test_read_csv_invalid_utf8_raises_data_error(tmp_path):
    # was: UnicodeDecodeError from the header, or "is ragged" from the body
    with pytest.raises(DataError, match=r"not UTF-8 text \(byte 6"):
        read_csv(_write(tmp_path, b"a,k\n1,\xff\n2,y\n"), target="k")


def test_read_csv_unterminated_quote_is_refused(tmp_path):
    # was: the quote ran to the end of the file and the rest became one label
    with pytest.raises(DataError, match="unterminated quoted field"):
        read_csv(_write(tmp_path, b'a,k\n1,x\n2,"y\n3,x\n4,y\n'), target="k")


def test_read_csv_nul_bytes_are_refused(tmp_path):
    # was: a column named 'k\x00' (a UTF-16 or binary file read as text)
    with pytest.raises(DataError, match="holds NUL bytes"):
        read_csv(_write(tmp_path, b"a,k\x00\n1,x\n2,y\n"), target="k")


def test_read_csv_header_field_over_the_csv_module_limit_raises_data_error(tmp_path):
    # was: _csv.Error: field larger than field limit (131072)
    with pytest.raises(DataError, match="header row .* cannot be parsed"):
        read_csv(_write(tmp_path, b"a," + b"k" * 200_000 + b"\n1,x\n"), target="k")


@pytest.mark.parametrize("delimiter", [";;", '"', "\n"])
def test_read_csv_bad_delimiter_raises_invalid_parameter_error(tmp_path, delimiter):
    # was: TypeError from numpy's parser
    with pytest.raises(InvalidParameterError, match="delimiter must be one character"):
        read_csv(_write(tmp_path, b"a;k\n1;x\n2;y\n"), target="k", delimiter=delimiter)
