"""``predict``'s data files: a CSV or an NPZ file read into ``(X, y, queries)``, or a ``DataError`` naming the fault.

Every number must be finite and at most ``MAX_VALUE`` in magnitude (the
programs square their inputs: beyond it, float64 overflows); a CSV names the
line and column of a bad cell, an NPZ the array and index. What a file
costs to read is checked against the limits (``budget``) before it is read:
a CSV by its size, an NPZ by the shapes in its arrays' headers.

* CSV (UTF-8, with or without a byte-order mark): one row per example or
  query, ``x_1,...,x_d,y``; a query leaves y empty. Blank lines and lines
  starting with ``#`` are skipped; the first row is a header of column
  names if none of its cells is a number (a row with some numbers is data,
  and a cell that is not a number is an error).
* NPZ (``numpy.savez``): arrays ``X`` (n, d), ``y`` (n,), ``x_query`` (d,) or
  (q, d) of integers or floats; nothing is unpickled.
"""

from __future__ import annotations

import csv
import math
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..compiler import SizeError
from ..programs.parts import MAX_PARAMETER
from . import budget
from .shared import UsageError

MAX_VALUE = MAX_PARAMETER  # 1e150: its square is still finite in float64
ARRAYS = {"X": "(n, d)", "y": "(n,)", "x_query": "(d,) or (q, d)"}
_MAGIC = {b"\x1f\x8b": "a gzip file (decompress it first: gunzip)",
          b"PK\x03\x04": "a zip archive (an .npz, or a spreadsheet?)",
          b"\xff\xfe": "a UTF-16 text file (save it as UTF-8)", b"\xfe\xff": "a UTF-16 text file (save it as UTF-8)",
          b"\x93NUMPY": "a single .npy array (save X, y and x_query together with numpy.savez to an .npz)",
          b"BZh": "a bzip2 file", b"\xfd7zXZ": "an xz file", b"%PDF": "a PDF document"}


class DataError(UsageError):
    """A data file that cannot be read as a task: bad input, exit code 2."""


def read(path: Path, limits: budget.Limits) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``X`` (n, d), ``y`` (n,) and the queries (q, d) of the file at ``path`` (a .csv or .npz)."""
    if not path.exists():
        raise DataError(f"--data: no file {path}")
    if path.is_dir():
        raise DataError(f"--data: {path} is a directory, not a data file")
    if not path.is_file():
        raise DataError(f"--data: {path} is not a regular file")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".npz"):
        raise DataError(f"--data: {path} must be a .csv or .npz file")
    try:
        with path.open("rb") as f:
            head = f.read(8)
        if suffix == ".npz":
            X, y, queries = _read_npz(path, head, limits)
        else:
            limits.check(budget.reading(path.stat().st_size), f"reading {path}")
            X, y, queries = _read_csv(path, head)
    except PermissionError:
        raise DataError(f"--data: cannot read {path}: permission denied") from None
    except OSError as err:
        raise DataError(f"--data: cannot read {path}: {err.strerror or err}") from None
    return X, y, queries


def _kind(head: bytes) -> str | None:
    """What a file starting with ``head`` is, if its first bytes say so."""
    return next((what for magic, what in _MAGIC.items() if head.startswith(magic)), None)


# -- CSV ------------------------------------------------------------------------------------------


def _read_csv(path: Path, head: bytes):
    kind = _kind(head)
    if kind:
        raise DataError(f"{path} is {kind}, not a CSV text file")
    rows = []  # (line, cells), data rows only
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            for line, cells in enumerate(csv.reader(f), 1):
                if any(c.strip() for c in cells) and not cells[0].lstrip().startswith("#"):
                    rows.append((line, cells))
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not a UTF-8 text file (it holds the byte {err.object[err.start]:#04x}); "
                        "--data takes a CSV text file or an .npz") from None
    except csv.Error as err:
        raise DataError(f"{path} is not a CSV text file ({err})") from None
    if not rows:
        raise DataError(f"{path} has no rows: it needs example rows (x_1,...,x_d,y) and query rows (y empty)")
    first = rows[0][1]
    if not any(_is_number(c) for c in first) and not _separator_hint(first):
        rows = rows[1:]  # a header of column names
    examples, labels, queries = [], [], []
    width = len(rows[0][1]) if rows else 0
    for line, cells in rows:
        where = f"{path} line {line}"
        if len(cells) != width:
            raise DataError(f"{where}: {len(cells)} columns, the first data row has {width}{_separator_hint(cells)}")
        if width < 2:
            raise DataError(f"{where}: a row needs x_1..x_d and a y column{_separator_hint(cells)}")
        x = [_cell(c, f"{where}, column {k}") for k, c in enumerate(cells[:-1], 1)]
        if cells[-1].strip():
            examples.append(x)
            labels.append(_cell(cells[-1], f"{where}, column {width} (y)"))
        else:
            queries.append(x)
    if not examples or not queries:
        raise DataError(f"{path}: needs at least one example row (with y) and one query row (y empty); "
                        f"found {len(examples)} and {len(queries)}")
    return np.array(examples), np.array(labels), np.array(queries)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _cell(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        what = "an empty cell" if not text.strip() else f"{text.strip()!r} is not a number"
        raise DataError(f"{where}: {what}{_separator_hint([text])}") from None
    return _value(value, text.strip(), where)


def _value(value: float, shown: str, where: str) -> float:
    if not math.isfinite(value):
        raise DataError(f"{where}: {shown} is not a finite number")
    if abs(value) > MAX_VALUE:
        raise DataError(f"{where}: {shown} is larger than {MAX_VALUE:g} in magnitude, where its square overflows "
                        "float64 (the programs square their inputs); rescale the data")
    return value


def _separator_hint(cells: list[str]) -> str:
    for sep, name in ((";", "semicolons"), ("\t", "tabs")):
        if any(sep in c for c in cells):
            return f" (columns must be separated by commas; this row seems to use {name})"
    return ""


# -- NPZ ------------------------------------------------------------------------------------------


def _read_npz(path: Path, head: bytes, limits: budget.Limits):
    if not head.startswith(b"PK"):
        kind = _kind(head)
        raise DataError(f"{path} is {f'{kind}, ' if kind else ''}not an .npz archive of X, y and x_query "
                        "(numpy.savez)")
    try:
        with zipfile.ZipFile(path) as archive:
            members = {name[:-4]: name for name in archive.namelist() if name.endswith(".npy")}
            missing = [k for k in ARRAYS if k not in members]
            if missing:
                raise DataError(f"{path}: missing arrays {missing} (found {sorted(members)}); needs "
                                + ", ".join(f"{k} {shape}" for k, shape in ARRAYS.items()))
            headers = {k: _header(archive, members[k], f"{path}: array {k}") for k in ARRAYS}
            limits.check(budget.loading(sum(math.prod(shape) for shape, _ in headers.values())), f"loading {path}")
            arrays = {}
            for k in ARRAYS:
                with archive.open(members[k]) as f:
                    raw = np.lib.format.read_array(f, allow_pickle=False)
                arrays[k] = _floats(raw, f"{path}: array {k}")
    except SizeError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as err:
        raise DataError(f"{path} is a damaged .npz ({type(err).__name__}: {err})") from None
    X, y, queries = arrays["X"], arrays["y"], arrays["x_query"]
    queries = queries[None, :] if queries.ndim == 1 else queries
    if X.ndim != 2 or y.shape != (X.shape[0],) or queries.ndim != 2 or queries.shape[1] != X.shape[1]:
        raise DataError(f"{path}: shapes X {X.shape}, y {y.shape}, x_query {arrays['x_query'].shape} do not fit "
                        + ", ".join(f"{k} {shape}" for k, shape in ARRAYS.items()))
    if X.shape[1] == 0 or X.shape[0] == 0 or queries.shape[0] == 0:
        raise DataError(f"{path}: needs at least one input column, one example and one query; "
                        f"X has shape {X.shape}, x_query {arrays['x_query'].shape}")
    return X, y, queries


def _header(archive: zipfile.ZipFile, member: str, where: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from an .npy member's header, refusing dtypes that are not plain numbers."""
    with archive.open(member) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise DataError(f"{where}: .npy format version {version} is not supported; save with numpy.savez")
    kinds = {"c": "complex numbers (tasks are real)", "O": "Python objects (pickled; never loaded here)",
             "U": "text", "S": "bytes", "V": "records (a structured array)", "M": "dates", "m": "time spans"}
    if dtype.kind not in "biuf":
        raise DataError(f"{where} holds {kinds.get(dtype.kind, f'dtype {dtype}')}; it must hold integers or floats")
    return shape, dtype


def _floats(raw: np.ndarray, where: str) -> np.ndarray:
    with np.errstate(over="ignore"):  # a longdouble beyond float64 becomes inf, refused below
        a = raw.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(a) | (np.abs(a) > MAX_VALUE))
    if bad.size:
        index = tuple(int(i) for i in np.unravel_index(bad[0], a.shape))
        _value(float(a.flat[bad[0]]), str(raw.flat[bad[0]]), f"{where}{list(index)}")
    return a
