"""Read a CSV file with a header row into a :class:`~deepdx.data.dataset.Dataset`.

The whole table is parsed in one call to NumPy's C reader (``np.loadtxt``) as strings,
then each column is checked and converted at once; no Python loop runs per row.

Rules
-----
- The first row names the columns; ``target=`` names the column to predict.
- Every other column is a feature and must be numeric.
- Empty cells and the tokens ``NA``, ``N/A``, ``NaN``, ``null``, ``None``, ``?`` (any case)
  are missing values, which are an error: drop or impute them first.
- Labels may be strings. A numeric target with non-integer values means regression;
  ``task=`` overrides the inference.
- The file is UTF-8 text (a byte-order mark is allowed) without NUL bytes. Quotes follow
  RFC 4180: a field holding the delimiter, a quote or a line break is quoted, and a quote
  inside it is doubled (``""``), so a well-formed file holds an even number of quotes.
- Every cell is parsed as a fixed-width string as wide as the widest field, so the table
  takes ``4 * n * n_columns * w`` bytes. A file whose table would take more than
  ``max(256 MiB, 128 * file size)`` (one huge field among many short ones) is refused
  before it is parsed.

Symbols
-------
n   number of data rows
d   number of feature columns
w   bytes of the widest field
X   (n, d) float32 features
y   (n,) int64 class indices or float32 regression targets
"""

from __future__ import annotations

import codecs
import csv as _csv
import difflib
import os
import warnings
from pathlib import Path

import numpy as np

from deepdx.data.dataset import Dataset, Task, from_arrays
from deepdx.exceptions import DataError, InvalidParameterError

__all__ = ["MISSING_TOKENS", "read_csv"]

MISSING_TOKENS: tuple[str, ...] = ("", "na", "n/a", "nan", "null", "none", "?")
_QUOTE = ord('"')
_CHUNK_BYTES = 1 << 20
_MIN_TABLE_BYTES = 256 * 2**20
_MAX_EXPANSION = 128


def read_csv(
    path: str | os.PathLike[str],
    *,
    target: str | None = None,
    task: Task | None = None,
    delimiter: str | None = None,
    name: str | None = None,
) -> Dataset:
    r"""Load a CSV file with a header row as a dataset.

    Parameters
    ----------
    path : str or path-like
        The file (UTF-8). Fields may be quoted with ``"``.
    target : str, optional
        Name of the target column. Required unless ``task="unsupervised"``.
    task : {"classification", "regression", "unsupervised"}, optional
        Overrides the task inferred from the target column.
    delimiter : str, optional
        Field separator, one character; defaults to a tab for ``.tsv`` files and a comma
        otherwise.
    name : str, optional
        Dataset name; defaults to the file name without its suffix.

    Returns
    -------
    Dataset
        X float32 of shape (n, d) from every column except ``target``; y from ``target``.

    Raises
    ------
    InvalidParameterError
        If ``delimiter`` is not one character, or is a quote or a line break.
    DataError
        If the file is empty, ragged, not UTF-8 text, holds NUL bytes or an unterminated
        quote, or would take too much memory to parse (see the module notes); if the
        target column is missing (the message lists the columns and the closest match),
        cells are missing (the message names the columns and counts the rows), or feature
        columns are not numeric.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "pets.csv"
    >>> _ = path.write_text("weight,height,kind\n4.0,30,cat\n30.5,60,dog\n5.1,28,cat\n")
    >>> ds = read_csv(path, target="kind")
    >>> ds.X.shape, ds.task, ds.class_names, ds.y.tolist()
    ((3, 2), 'classification', ('cat', 'dog'), [0, 1, 0])
    """
    path = Path(path)
    delimiter = _check_delimiter(delimiter, path)
    n_lines, widest = _scan_text(path, delimiter)
    columns = _read_header(path, delimiter)
    _check_table_size(path, n_lines * len(columns), widest)
    cells = _read_body(path, delimiter, len(columns))  # (n, n_columns) str
    name = name or path.stem
    if target is None and task != "unsupervised":
        raise DataError(
            f"read_csv needs the name of the target column of {path.name!r}: pass "
            f"target=<column> (columns: {', '.join(columns)}), or task='unsupervised'."
        )
    _check_missing(cells, columns, path)
    target_col = None if target is None else _column_index(columns, target, path)
    features = [j for j in range(len(columns)) if j != target_col]
    X = _numeric_features(cells[:, features], [columns[j] for j in features], path)
    if target_col is None:
        return from_arrays(X, task="unsupervised", name=name)
    return from_arrays(X, _target_values(cells[:, target_col]), task=task, name=name)


# ----------------------------------------------------------------------------- helpers


def _check_delimiter(delimiter: str | None, path: Path) -> str:
    """Return the delimiter to use, refusing one that cannot separate fields."""
    delimiter = delimiter or ("\t" if path.suffix.lower() == ".tsv" else ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '"\r\n':
        raise InvalidParameterError(
            f"delimiter must be one character other than a quote or a line break; got "
            f"{delimiter!r}. Pass the character between fields, e.g. delimiter=';'."
        )
    return delimiter


class _Scanner:
    """Walk a CSV file's bytes chunk by chunk: UTF-8, NUL bytes, quotes, field widths.

    A byte is inside a quoted field when an odd number of quotes precede it (RFC 4180
    doubles inner quotes), so field ends are the delimiters and line breaks outside quotes.
    """

    def __init__(self, delimiter: str) -> None:
        self.breaks = np.frombuffer(f"\n\r{delimiter}".encode(), np.uint8)  # (k,)
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.offset = self.n_quotes = self.n_lines = self.widest = 0
        self.last_break = -1

    def feed(self, chunk: bytes, path: Path) -> None:
        """Check one chunk and update the counts."""
        try:
            self.decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            raise DataError(
                f"CSV file {path.name!r} is not UTF-8 text (byte {self.offset + exc.start} "
                f"cannot be decoded: {exc.reason}); save it as UTF-8 (in Excel: CSV UTF-8)."
            ) from exc
        a = np.frombuffer(chunk, np.uint8)  # (m,)
        if not a.all():
            raise DataError(
                f"CSV file {path.name!r} holds NUL bytes (the first at byte "
                f"{self.offset + int(np.argmin(a))}), so it is binary or UTF-16, not UTF-8 "
                "text; export the table again as UTF-8 CSV."
            )
        is_quote = a == _QUOTE  # (m,)
        quoted = np.logical_xor.accumulate(is_quote) if is_quote.any() else is_quote  # (m,)
        quoted = ~quoted if self.n_quotes % 2 else quoted
        is_break = np.logical_or.reduce([a == byte for byte in self.breaks])  # (m,)
        ends = np.flatnonzero(is_break & ~quoted) + self.offset  # field ends
        if ends.size:
            widths = np.diff(ends, prepend=self.last_break) - 1  # bytes of each field
            self.widest = max(self.widest, int(widths.max()))
            self.last_break = int(ends[-1])
        self.n_lines += int(np.count_nonzero(a[ends - self.offset] == ord("\n")))
        self.n_quotes += int(np.count_nonzero(is_quote))
        self.offset += len(a)


def _scan_text(path: Path, delimiter: str) -> tuple[int, int]:
    """Check that the file is UTF-8 text with balanced quotes; return (lines, widest field)."""
    if not path.is_file():
        raise DataError(f"CSV file {str(path)!r} does not exist; check the path.")
    scanner = _Scanner(delimiter)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            scanner.feed(chunk, path)
    scanner.feed(b"", path)  # a multi-byte character cut off at the end
    if scanner.n_quotes % 2:
        raise DataError(
            f"CSV file {path.name!r} has an unterminated quoted field: it holds an odd number "
            f"({scanner.n_quotes}) of '\"' characters, so everything after the last one would "
            "be read as one value. Close the quote, and write a quote inside a quoted field "
            "as two ('\"\"')."
        )
    widest = max(scanner.widest, scanner.offset - scanner.last_break - 1)
    return scanner.n_lines + 1, widest


def _check_table_size(path: Path, n_cells: int, widest: int) -> None:
    """Refuse a file whose fixed-width string table would dwarf the file (a huge field)."""
    table_bytes = 4 * n_cells * widest  # numpy's <U{widest}: 4 bytes per character
    limit = max(_MIN_TABLE_BYTES, _MAX_EXPANSION * path.stat().st_size)
    if table_bytes > limit:
        raise DataError(
            f"CSV file {path.name!r} has a field of {widest} bytes among about {n_cells} "
            f"cells; parsing it would take {table_bytes / 2**30:.1f} GiB, over "
            f"{_MAX_EXPANSION} times the file's size. The field is likely corrupt: shorten "
            "or remove it."
        )


def _read_header(path: Path, delimiter: str) -> list[str]:
    """Return the stripped column names of the first row."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        try:
            header = next(_csv.reader(handle, delimiter=delimiter), None)
        except _csv.Error as exc:  # e.g. a field over the csv module's 128 KiB limit
            raise DataError(
                f"the header row of CSV file {path.name!r} cannot be parsed ({exc}); the first "
                "row must hold the column names."
            ) from exc
    if not header or not any(field.strip() for field in header):
        raise DataError(
            f"CSV file {path.name!r} is empty; expected a header row of column names "
            "followed by one row per sample."
        )
    columns = [field.strip() for field in header]
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise DataError(
            f"CSV file {path.name!r} repeats the column names {duplicates}; give every "
            "column a unique name in the header row."
        )
    return columns


def _read_body(path: Path, delimiter: str, n_columns: int) -> np.ndarray:
    """Parse every data row as strings in one call; reject ragged or empty tables."""
    try:
        with warnings.catch_warnings():  # a header-only file is reported below instead
            warnings.filterwarnings("ignore", "loadtxt: input contained no data")
            cells = np.loadtxt(
                path,
                dtype=str,
                delimiter=delimiter,
                quotechar='"',
                skiprows=1,
                ndmin=2,
                comments=None,
                encoding="utf-8",
            )
    except ValueError as exc:  # numpy reports the first row with a different field count
        raise DataError(
            f"CSV file {path.name!r} is ragged: {exc}. Every row needs the same "
            f"{n_columns} fields as the header."
        ) from exc
    if cells.shape[0] == 0:
        raise DataError(
            f"CSV file {path.name!r} has a header but no data rows; add one row per sample."
        )
    if cells.shape[1] != n_columns:
        raise DataError(
            f"CSV file {path.name!r} has {n_columns} column names but rows of "
            f"{cells.shape[1]} fields; make the header and the rows agree."
        )
    return np.char.strip(cells)


def _check_missing(cells: np.ndarray, columns: list[str], path: Path) -> None:
    """Raise a DataError naming the columns with missing cells and counting the rows."""
    missing = np.isin(np.char.lower(cells), MISSING_TOKENS)  # (n, n_columns)
    if not missing.any():
        return
    per_column = missing.sum(axis=0)
    named = ", ".join(f"{columns[j]!r} ({per_column[j]} rows)" for j in np.flatnonzero(per_column))
    n_rows = int(missing.any(axis=1).sum())
    raise DataError(
        f"CSV file {path.name!r} has missing values (empty, NA or NaN cells) in {n_rows} "
        f"of {len(cells)} rows, in columns {named}. Drop those rows or impute the values "
        "before loading."
    )


def _column_index(columns: list[str], target: str, path: Path) -> int:
    """Return the index of ``target``, or raise with the closest column names."""
    if target in columns:
        return columns.index(target)
    close = difflib.get_close_matches(target, columns, n=3)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise DataError(
        f"target column {target!r} is not in CSV file {path.name!r}; its columns are "
        f"{', '.join(repr(c) for c in columns)}.{hint}"
    )


def _numeric_features(cells: np.ndarray, columns: list[str], path: Path) -> np.ndarray:
    """Convert feature columns to float64 (column by column) or name the non-numeric ones."""
    if cells.shape[1] == 0:
        raise DataError(
            f"CSV file {path.name!r} has no feature columns besides the target; add at "
            "least one numeric column."
        )
    values = np.empty(cells.shape, dtype=np.float64)
    bad: list[str] = []
    for j, column in enumerate(columns):
        try:
            values[:, j] = cells[:, j].astype(np.float64)
        except ValueError:
            bad.append(column)
    if bad:
        raise DataError(
            f"CSV file {path.name!r} has non-numeric feature columns {bad}; encode them as "
            "numbers (one-hot or ordinal codes) or drop them."
        )
    return values


def _target_values(column: np.ndarray) -> np.ndarray:
    """Return the target as float64 when every cell is a number, else as strings."""
    try:
        return column.astype(np.float64)
    except ValueError:
        return column
