"""Hostile and careless input at the command line: for each, its exit code and one line on stderr that names it.

Every case runs in-process through ``construct.cli.main`` and must give the
expected exit code, nothing on stdout, exactly one line on stderr that
starts ``icl-construct COMMAND: error:`` (exit 2) or ``refused:`` (exit 1),
matches the case's pattern (which names the offending value, file or
option), and no traceback. A few run in a real subprocess (what a user
sees). The cases are grouped by category; the table of docs/BAD_INPUT.md
("What bad input gets") counts them, and
``test_the_bad_input_page_counts_every_category`` keeps its command-line rows
true (test_hostile_api.py its library rows).
"""

import errno
import gzip
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from construct import cli
from construct.cli import demo, export, shared, trace

from support import bad_input_counts

GOOD = "1,2,3,4\n1,0,3,4\n0.5,1,2,3\n5,6,7,\n"  # three examples (d = 3) and a query


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    """Every data file the cases read, written once."""
    tmp = tmp_path_factory.mktemp("hostile")
    texts = {
        "good.csv": GOOD, "data.txt": GOOD, "empty.csv": "", "header.csv": "x1,x2,x3,y\n",
        "nul.csv": "1,2,3,4\n1,0\x00,3,4\n5,6,7,\n",
        "typo_first.csv": "1,2,3x,4\n1,0,3,4\n2,2,1,1\n5,6,7,\n", "typo_later.csv": "1,2,3,4\n1,O,3,4\n5,6,7,\n",
        "typo_label.csv": "1,2,3,4\n1,0,3,4x\n5,6,7,\n", "empty_cell.csv": "1,,3,4\n5,6,7,\n",
        "nan.csv": "nan,2,3,4\n1,0,3,4\n5,6,7,\n", "inf.csv": "1,inf,3,4\n1,0,3,4\n5,6,7,\n",
        "overflow.csv": "1,2,1e999,4\n1,0,3,4\n5,6,7,\n", "e155.csv": "1,2,3,4\n1e155,0,3,4\n5,6,7,\n",
        "ragged.csv": "1,2,3,4\n1,2,3\n5,6,7,\n", "semicolons.csv": "1;2;3;4\n1;0;3;4\n5;6;7;\n",
        "tabs.csv": "1\t2\t3\t4\n5\t6\t7\t\n", "one_column.csv": "1\n2\n", "no_query.csv": "1,2,3,4\n1,2,3,4\n",
        "no_example.csv": "# only a query\n1,2,3,\n",
    }
    for name, text in texts.items():
        (tmp / name).write_text(text)
    (tmp / "folder.csv").mkdir()
    (tmp / "locked").mkdir()
    (tmp / "locked.npz").write_bytes(b"")
    (tmp / "gzip.csv").write_bytes(gzip.compress(GOOD.encode()))
    (tmp / "utf16.csv").write_text(GOOD, encoding="utf-16")
    os.mkfifo(tmp / "pipe.csv")
    (tmp / "wide.csv").write_text(",".join(["1"] * 5001) + "\n" + ",".join(["2"] * 5000) + ",\n")
    (tmp / "picture.png").mkdir()
    (tmp / "binary.csv").write_bytes(bytes([0x31, 0x2C, 0xFF, 0xFE, 0x00, 0x80]) * 50)
    np.savez(tmp / "zip.csv", X=np.ones((2, 3)), y=np.ones(2), x_query=np.ones(3))
    (tmp / "zip.csv.npz").rename(tmp / "zip.csv")
    rng = np.random.default_rng(0)
    X, x_query = rng.normal(size=(5, 3)), rng.normal(size=(1, 3))
    y = X @ rng.normal(size=3)
    arrays = {
        "object": dict(X=np.array([[1, "a", 2.0]], dtype=object), y=np.ones(1), x_query=np.ones(3)),
        "strings": dict(X=np.array([["1", "2", "3"]]), y=np.ones(1), x_query=np.ones(3)),
        "complex": dict(X=np.ones((2, 3)) + 1j, y=np.ones(2), x_query=np.ones(3)),
        "dates": dict(X=np.ones((1, 3)), y=np.ones(1), x_query=np.array(["2020-01-01"] * 3, dtype="datetime64[D]")),
        "partial": dict(X=np.ones((2, 3)), x_query=np.ones(3)),
        "shapes": dict(X=np.ones((2, 3)), y=np.ones(3), x_query=np.ones(3)),
        "nan": dict(X=np.array([[1.0, np.nan, 0.0], [0.0, 1.0, 2.0]]), y=np.ones(2), x_query=np.ones(3)),
        "huge_label": dict(X=np.ones((2, 3)), y=np.array([1.0, 1e200]), x_query=np.ones(3)),
        "no_columns": dict(X=np.ones((2, 0)), y=np.ones(2), x_query=np.ones(0)),
        "scale_1e100": dict(X=X * 1e100, y=y * 1e100, x_query=x_query * 1e100),
        "scale_1e60": dict(X=X * 1e60, y=y * 1e60, x_query=x_query * 1e60),
        "scale_1e-160": dict(X=X * 1e-160, y=y * 1e-160, x_query=x_query * 1e-160),
    }
    for name, content in arrays.items():
        np.savez(tmp / f"{name}.npz", **content)
    np.save(tmp / "single.npy", np.ones(3))
    (tmp / "single.npy").rename(tmp / "single.npz")
    (tmp / "damaged.npz").write_bytes(b"PK\x03\x04 truncated")
    (tmp / "text.npz").write_text(GOOD)
    with open(tmp / "huge_header.npy", "wb") as f:  # claims 10^10 entries, holds none
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (100000, 100000)})
    with zipfile.ZipFile(tmp / "huge_header.npz", "w") as z:
        z.write(tmp / "huge_header.npy", "X.npy")
        for k, a in (("y", np.ones(100000)), ("x_query", np.ones(100000))):
            with z.open(f"{k}.npy", "w") as member:
                np.lib.format.write_array(member, a)
    rows = [",".join(f"{v:.6f}" for v in [*x, x @ [1.0, -2.0, 0.5]]) for x in rng.normal(size=(200, 3))]
    (tmp / "rows_200.csv").write_text("\n".join(rows + ["0.1,0.2,0.3,"]) + "\n")
    (tmp / "large.csv").write_text("\n".join(rows * 300 + ["0.1,0.2,0.3,"]) + "\n")  # 2.6 MB of text
    return tmp


def run(capsys, argv):
    """Exit code, stdout and stderr of the command line, whether main returns or argparse exits."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def check(capsys, argv, code, pattern):
    got, out, err = run(capsys, argv)
    assert got == code, err
    assert out == "" and "Traceback" not in err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert re.match(rf"icl-construct( \w+)?: {'refused' if code == 1 else 'error'}: ", err), err
    assert re.search(pattern, err), err


def expand(argv, tmp):
    return [a.format(tmp=tmp) if isinstance(a, str) else a for a in argv]


# -- data files (predict --data) ------------------------------------------------------------------

PREDICT = ["predict", "--algo", "ridge", "--data"]

DATA_FILES = {
    "missing file": (PREDICT + ["{tmp}/absent.csv"], 2, r"--data: no file .*absent\.csv"),
    "a directory": (PREDICT + ["{tmp}/folder.csv"], 2, r"folder\.csv is a directory, not a data file"),
    "neither .csv nor .npz": (PREDICT + ["{tmp}/data.txt"], 2, r"data\.txt must be a \.csv or \.npz file"),
    "empty path": (PREDICT + [""], 2, r"argument --data: an empty path"),
    "empty file": (PREDICT + ["{tmp}/empty.csv"], 2, r"empty\.csv has no rows"),
    "only a header": (PREDICT + ["{tmp}/header.csv"], 2, r"header\.csv: needs at least one example row .* found 0 and 0"),
    "gzip named .csv": (PREDICT + ["{tmp}/gzip.csv"], 2, r"gzip\.csv is a gzip file \(decompress it first: gunzip\)"),
    "npz named .csv": (PREDICT + ["{tmp}/zip.csv"], 2, r"zip\.csv is a zip archive \(an \.npz, or a spreadsheet\?\), "
                       r"not a CSV text file"),
    "UTF-16 text": (PREDICT + ["{tmp}/utf16.csv"], 2, r"utf16\.csv is a UTF-16 text file \(save it as UTF-8\)"),
    "a named pipe": (PREDICT + ["{tmp}/pipe.csv"], 2, r"--data: .*pipe\.csv is not a regular file"),
    "binary named .csv": (PREDICT + ["{tmp}/binary.csv"], 2, r"binary\.csv is not a UTF-8 text file \(it holds the byte 0xff\)"),
    "NUL byte in a cell": (PREDICT + ["{tmp}/nul.csv"], 2, r"nul\.csv line 2, column 2: '0\\x00' is not a number"),
    "typo in the first row": (PREDICT + ["{tmp}/typo_first.csv"], 2, r"typo_first\.csv line 1, column 3: '3x' is not a number"),
    "typo in a later row": (PREDICT + ["{tmp}/typo_later.csv"], 2, r"typo_later\.csv line 2, column 2: 'O' is not a number"),
    "typo in a label": (PREDICT + ["{tmp}/typo_label.csv"], 2, r"line 2, column 4 \(y\): '4x' is not a number"),
    "empty x cell": (PREDICT + ["{tmp}/empty_cell.csv"], 2, r"empty_cell\.csv line 1, column 2: an empty cell"),
    "nan": (PREDICT + ["{tmp}/nan.csv"], 2, r"nan\.csv line 1, column 1: nan is not a finite number"),
    "inf": (PREDICT + ["{tmp}/inf.csv"], 2, r"inf\.csv line 1, column 2: inf is not a finite number"),
    "1e999": (PREDICT + ["{tmp}/overflow.csv"], 2, r"line 1, column 3: 1e999 is not a finite number"),
    "1e155": (PREDICT + ["{tmp}/e155.csv"], 2, r"e155\.csv line 2, column 1: 1e155 is larger than 1e\+150 in magnitude"),
    "ragged rows": (PREDICT + ["{tmp}/ragged.csv"], 2, r"ragged\.csv line 2: 3 columns, the first data row has 4"),
    "semicolons": (PREDICT + ["{tmp}/semicolons.csv"], 2, r"line 1: a row needs x_1\.\.x_d and a y column \(columns must "
                   r"be separated by commas; this row seems to use semicolons\)"),
    "tabs": (PREDICT + ["{tmp}/tabs.csv"], 2, r"tabs\.csv line 1: a row needs .* seems to use tabs"),
    "one column": (PREDICT + ["{tmp}/one_column.csv"], 2, r"one_column\.csv line 1: a row needs x_1\.\.x_d and a y column"),
    "no query row": (PREDICT + ["{tmp}/no_query.csv"], 2, r"no_query\.csv: needs .* found 2 and 0"),
    "no example row": (PREDICT + ["{tmp}/no_example.csv"], 2, r"no_example\.csv: needs .* found 0 and 1"),
    "single .npy named .npz": (PREDICT + ["{tmp}/single.npz"], 2, r"single\.npz is a single \.npy array \(save X, y and "
                               r"x_query together with numpy\.savez"),
    "text named .npz": (PREDICT + ["{tmp}/text.npz"], 2, r"text\.npz is not an \.npz archive of X, y and x_query"),
    "damaged .npz": (PREDICT + ["{tmp}/damaged.npz"], 2, r"damaged\.npz is a damaged \.npz \(BadZipFile"),
    "object array": (PREDICT + ["{tmp}/object.npz"], 2, r"object\.npz: array X holds Python objects \(pickled; never loaded"),
    "strings": (PREDICT + ["{tmp}/strings.npz"], 2, r"strings\.npz: array X holds text; it must hold integers or floats"),
    "complex": (PREDICT + ["{tmp}/complex.npz"], 2, r"complex\.npz: array X holds complex numbers \(tasks are real\)"),
    "dates": (PREDICT + ["{tmp}/dates.npz"], 2, r"dates\.npz: array x_query holds dates"),
    "missing array": (PREDICT + ["{tmp}/partial.npz"], 2, r"partial\.npz: missing arrays \['y'\] \(found \['X', 'x_query'\]\)"),
    "shapes that do not fit": (PREDICT + ["{tmp}/shapes.npz"], 2, r"shapes\.npz: shapes X \(2, 3\), y \(3,\), x_query \(3,\) do not fit"),
    "NaN in an array": (PREDICT + ["{tmp}/nan.npz"], 2, r"nan\.npz: array X\[0, 1\]: nan is not a finite number"),
    "1e200 in an array": (PREDICT + ["{tmp}/huge_label.npz"], 2, r"huge_label\.npz: array y\[1\]: 1e\+200 is larger than 1e\+150"),
    "no input columns": (PREDICT + ["{tmp}/no_columns.npz"], 2, r"no_columns\.npz: needs at least one input column"),
    "data of size 1e100": (PREDICT + ["{tmp}/scale_1e100.npz"], 1, r"cannot be compiled in float64 for the data's box "
                           r"\|x\| <= [\d.]+e\+100, .*\(a constant overflows\)"),
    "data of size 1e100, calibrated": (PREDICT + ["{tmp}/scale_1e100.npz", "--domain", "calibrated"], 1,
                                       r"cannot be compiled in float64 \(a constant overflows\).* "
                                       r"x ~ N\(0, [\d.]+e\+99\^2 I\)"),
    "data of size 1e60, SGD": (["predict", "--algo", "sgd", "--data", "{tmp}/scale_1e60.npz"], 1,
                               r"the exact machine's run on this prompt overflows float64 .*; the SGD run grows from "
                               r"example 1 on, whose step multiplies \|w\| by up to [\d.]+e\+118 "),
    "data of size 1e60, SGD, calibrated": (["predict", "--algo", "sgd", "--data", "{tmp}/scale_1e60.npz", "--domain",
                                            "calibrated"], 1, r"float64 overflows in the exact machine with "
                                           r"alpha = 0\.05.* x ~ N\(0, [\d.]+e\+59\^2 I\)"),
    "data of size 1e-160, calibrated": (PREDICT + ["{tmp}/scale_1e-160.npz", "--domain", "calibrated"], 1,
                                        r"cannot be compiled in float64 \(weights: W1 has non-finite entries\).* "
                                        r"x ~ N\(0, [\d.]+e-161\^2 I\)"),
}


def test_data_of_size_1e_160_is_answered_on_its_own_box(capsys, tmp):
    """A calibrated domain cannot hold such data (above); the data's own box can, and the answer is certified."""
    code, out, err = run(capsys, PREDICT + [tmp / "scale_1e-160.npz", "--json"])
    assert code == 0, err
    (row,) = json.loads(out)["predictions"]
    assert row["abs_error"] <= row["certified_bound"] <= 1e-300


@pytest.mark.parametrize("case", DATA_FILES)
def test_data_files(capsys, tmp, case):
    argv, code, pattern = DATA_FILES[case]
    check(capsys, expand(argv, tmp), code, pattern)


def test_an_unreadable_file(capsys, tmp, monkeypatch):
    """Permission denied by the system (simulated: as root, chmod 000 would not stop the read)."""
    real_open = Path.open

    def refuse(self, *args, **kwargs):
        if self.name == "good.csv":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    check(capsys, PREDICT + [tmp / "good.csv"], 2, r"--data: cannot read .*good\.csv: permission denied")


def test_a_byte_order_mark_keeps_the_first_example(capsys, tmp_path):
    (tmp_path / "plain.csv").write_text(GOOD)
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    results = [run(capsys, PREDICT + [tmp_path / name, "--json"]) for name in ("plain.csv", "bom.csv")]
    assert [code for code, _, _ in results] == [0, 0]
    plain, bom = (json.loads(out) for _, out, _ in results)
    assert bom["n"] == plain["n"] == 3 and bom["predictions"] == plain["predictions"]


def test_a_header_is_skipped_only_when_it_has_no_number(capsys, tmp_path):
    (tmp_path / "named.csv").write_text("x1,x2,x3,y\n" + GOOD)
    code, out, err = run(capsys, PREDICT + [tmp_path / "named.csv", "--json"])
    assert code == 0 and json.loads(out)["n"] == 3, err


# -- numeric options ------------------------------------------------------------------------------

EXPORT = ["export", "-o", "{tmp}/net.npz", "--algo"]

NUMERIC_OPTIONS = {
    "--alpha nan": (EXPORT + ["sgd", "--alpha", "nan"], 2, r"argument --alpha: 'nan' is not a finite number"),
    "--lam inf": (EXPORT + ["ridge", "--lam", "inf"], 2, r"argument --lam: 'inf' is not a finite number"),
    "--alpha 1e999": (EXPORT + ["sgd", "--alpha", "1e999"], 2, r"argument --alpha: '1e999' is not a finite number"),
    "--alpha abc": (EXPORT + ["sgd", "--alpha", "abc"], 2, r"argument --alpha: 'abc' is not a number"),
    "--lam 1e200": (EXPORT + ["ridge", "--lam", "1e200"], 2, r"argument --lam: 1e200 is larger than 1e\+150 in magnitude"),
    "--w0 1e200": (EXPORT + ["sgd", "-d", "2", "--w0", "1", "1e200"], 2, r"argument --w0: 1e200 is larger than 1e\+150"),
    "--margin 1e200": (EXPORT + ["ridge", "--margin", "1e200"], 2, r"argument --margin: 1e200 is larger than 1e\+150"),
    "--margin 0.5": (EXPORT + ["ridge", "--margin", "0.5"], 2, r"argument --margin: must be a number >= 1, got 0\.5"),
    "--margin 1e150": (EXPORT + ["ridge", "--margin", "1e150"], 1, r"cannot be compiled in float64 .*margin 1e\+150"),
    "--alpha 1e100": (EXPORT + ["sgd", "--alpha", "1e100"], 1, r"float64 overflows in the exact machine with "
                      r"alpha = 1e\+100.*\(instruction \d+ \(aff w <- w_src - 2e\+100 grad"),
    "--lam 1e100, SGD": (EXPORT + ["sgd", "--lam", "1e100"], 1, r"float64 overflows in the exact machine with "
                         r"alpha = 0\.05, lam = 1e\+100"),
    "--w0 1e150": (EXPORT + ["sgd", "-d", "2", "--w0", "1e150", "0"], 1, r"cannot be compiled in float64 .*max \|w0\| = 1e\+150"),
    "--lam 1e-200, ridge": (EXPORT + ["ridge", "--lam", "1e-200"], 2, r"bad parameter: lam = 1e-200 is outside \[1e-150, 1e\+150\]"),
    "--lam 0, ridge": (EXPORT + ["ridge", "--lam", "0"], 2, r"bad parameter: lam must be > 0, got 0\.0"),
    "--lam -1": (EXPORT + ["sgd", "--lam", "-1"], 2, r"bad parameter: lam must be >= 0, got -1\.0"),
    "--alpha -0.1": (EXPORT + ["sgd", "--alpha", "-0.1"], 2, r"bad parameter: alpha must be >= 0, got -0\.1"),
    "--w0, wrong count": (EXPORT + ["sgd", "--w0", "1", "2"], 2, r"bad parameter: w0 must have shape \(3,\), got \(2,\)"),
    "--w0 for ridge": (EXPORT + ["ridge", "--w0", "1", "2", "3"], 2, r"--algo ridge takes --lam, not --w0: --w0 is "
                       r"for --algo sgd or sgd_step$"),
    "--alpha for ridge": (EXPORT + ["ridge", "--alpha", "0.1"], 2, r"--algo ridge takes --lam, not --alpha: --alpha is "
                          r"for --algo gd or sgd or sgd_step$"),
    "one-example chain, n = 6": (EXPORT + ["sgd_step"], 2, r"--algo sgd_step .* needs n = 1, got 6"),
    "one-example chain, 3 examples in the data": (PREDICT[:2] + ["sherman_morrison_step", "--data", "{tmp}/good.csv"],
                                                  2, r"--algo sherman_morrison_step .* needs n = 1, got 3"),
    "-d 0": (EXPORT + ["sgd", "-d", "0"], 2, r"argument -d/--d: must be an integer >= 1, got 0"),
    "-d 2.5": (EXPORT + ["sgd", "-d", "2.5"], 2, r"argument -d/--d: '2\.5' is not a whole number"),
    "-n -1": (EXPORT + ["sgd", "-n", "-1"], 2, r"argument -n/--n: must be an integer >= 1, got -1"),
    "--seed -1": (EXPORT + ["sgd", "--seed", "-1"], 2, r"argument --seed: must be an integer >= 0, got -1"),
    "demo --seed 1.5": (["demo", "--seed", "1.5"], 2, r"argument --seed: '1\.5' is not a whole number"),
    "--calibrate 0": (EXPORT + ["sgd", "--calibrate", "0"], 2, r"argument --calibrate: must be an integer >= 1, got 0"),
    "--layer 0": (["trace", "--algo", "ridge", "--layer", "0"], 2, r"argument --layer: must be an integer >= 1, got 0"),
    "--layer 99": (["trace", "--algo", "ridge", "--weights-png", "{tmp}/w.png", "--layer", "99"], 2,
                   r"--layer must be in 1\.\.29 \(ridge has 29 layers\)"),
    "bench --d 0": (["bench", "--d", "0"], 2, r"argument -d/--d: must be an integer >= 1, got 0"),
    "--max-memory 0": (["demo", "--max-memory", "0"], 2, r"argument --max-memory: '0' is not a positive amount"),
    "--max-memory 8XB": (["demo", "--max-memory", "8XB"], 2, r"argument --max-memory: '8XB' is not a positive amount; "
                         r"write e\.g\. 8GiB"),
    "--max-seconds -5": (["demo", "--max-seconds", "-5"], 2, r"argument --max-seconds: '-5' is not a positive amount"),
    "--max-seconds soon": (["demo", "--max-seconds", "soon"], 2, r"argument --max-seconds: 'soon' is not a positive amount"),
    "--tolerance 0": (PREDICT + ["{tmp}/good.csv", "--tolerance", "0"], 1, r"query 1: the query's prediction "
                      r"[\d.e+-]+ has a certified error bound [\d.e+-]+ \((residual|mechanism) certificate\), "
                      r"above the tolerance 0 x its scale"),
    "--tolerance -1": (PREDICT + ["{tmp}/good.csv", "--tolerance", "-1"], 2, r"argument --tolerance: must be a number "
                       r">= 0, got -1"),
}


@pytest.mark.parametrize("case", NUMERIC_OPTIONS)
def test_numeric_options(capsys, tmp, case):
    argv, code, pattern = NUMERIC_OPTIONS[case]
    check(capsys, expand(argv, tmp), code, pattern)


# -- other options: missing, unknown, abbreviated, given twice ----------------------------------

OTHER_OPTIONS = {
    "no command": ([], 2, r"icl-construct: error: the following arguments are required: COMMAND"),
    "unknown command": (["fly"], 2, r"argument COMMAND: invalid choice: 'fly'"),
    "missing -o": (["export", "--algo", "sgd"], 2, r"the following arguments are required: -o/--output"),
    "missing --data": (["predict", "--algo", "sgd"], 2, r"the following arguments are required: --data"),
    "unknown --algo": (PREDICT[:2] + ["lasso", "--data", "{tmp}/good.csv"], 2, r"argument --algo: invalid choice: 'lasso'"),
    "unknown --dtype": (EXPORT + ["sgd", "--dtype", "float16"], 2, r"argument --dtype: invalid choice: 'float16'"),
    "unknown option": (PREDICT + ["{tmp}/good.csv", "--speed", "3"], 2, r"unrecognized arguments: --speed 3"),
    "abbreviated option": (EXPORT + ["sgd", "--alp", "0.1"], 2, r"unrecognized arguments: --alp 0\.1"),
    "--d in predict": (PREDICT + ["{tmp}/good.csv", "--d", "3"], 2, r"unrecognized arguments: --d 3"),
    "--d twice": (["demo", "--d", "1", "--d", "2"], 2, r"demo: error: --d is given twice; give it once"),
    "-d, then --d": (EXPORT + ["sgd", "-d", "2", "--d", "3"], 2, r"--d is given twice; give it once"),
    "--json twice": (["demo", "--json", "--json"], 2, r"--json is given twice; give it once"),
    "--w0 twice": (EXPORT + ["sgd", "-d", "1", "--w0", "1", "--w0", "2"], 2, r"--w0 is given twice"),
    "--layer without --weights-png": (["trace", "--algo", "ridge", "--layer", "3"], 2,
                                      r"--layer chooses the layer --weights-png draws; give --weights-png too"),
}


@pytest.mark.parametrize("case", OTHER_OPTIONS)
def test_other_options(capsys, tmp, case):
    argv, code, pattern = OTHER_OPTIONS[case]
    check(capsys, expand(argv, tmp), code, pattern)


# -- sizes: memory and time estimated before anything runs ----------------------------------------

SIZES = {
    "export ridge -d 40": (EXPORT + ["ridge", "-d", "40", "-n", "2"], 2, r"export \(ridge, d = 40, n = 2\) would need about "
                           r"\d+(\.\d)? GiB of memory \(most of it for compiling\), above --max-memory 4 GiB; give "
                           r"--max-memory \d+GiB if this machine has that much"),
    "export ridge -d 1000": (EXPORT + ["ridge", "-d", "1000", "-n", "2"], 2, r"would need more than [\d.]+ GiB of memory "
                             r"\(that much already at d = 31; the cost grows with d\)"),
    "export sgd -d 1000000": (EXPORT + ["sgd", "-d", "1000000"], 2, r"export \(sgd, d = 1000000, n = 6\) would need more "
                              r"than .* \(that much already at d = \d+; the cost grows with d\)"),
    "demo --n 10000000": (["demo", "--n", "10000000"], 2, r"demo \(d = 3, n = 10000000\) would need about [\d.e+]+ GiB"),
    "trace -n 5000": (["trace", "--algo", "sgd", "-n", "5000"], 2, r"trace \(sgd, d = 2, n = 5000\) would need about"),
    "bench --n 1000": (["bench", "--algo", "ridge", "--d", "2", "--n", "1000"], 2, r"bench \(ridge, d = 2, n = 1000\) would"),
    "a CSV of 200 examples": (PREDICT + ["{tmp}/rows_200.csv"], 2, r"predict on 1 query \(ridge, d = 3, n = 200\) would "
                              r"take about [\d.]+ min \(.*10 forward passes [\d.]+ (s|min)\), above --max-seconds 120; "
                              r"give --max-seconds \d+ to run it anyway"),
    "--calibrate 100000000": (EXPORT + ["ridge", "--calibrate", "100000000"], 2, r"would need about [\d.e+]+ GiB of memory "
                              r"\(most of it for calibration on 100000000 tasks\)"),
    "--max-memory raised, time still counted": (EXPORT + ["ridge", "-d", "40", "-n", "2", "--max-memory", "100GiB",
                                                          "--max-seconds", "10"], 2,
                                                r"would take about .* above --max-seconds 10; give --max-seconds"),
    "--max-seconds lowered": (EXPORT + ["ridge", "--max-seconds", "0.01"], 2, r"export \(ridge, d = 3, n = 6\) would take "
                              r"about [\d.]+ s .* above --max-seconds 0\.01"),
    "a large CSV, --max-memory 400MiB": (PREDICT + ["{tmp}/large.csv", "--max-memory", "400MiB"], 2,
                                         r"reading .*large\.csv would need about 4\d\d MiB of memory .* above "
                                         r"--max-memory 400 MiB"),
    "a CSV of 5000 columns": (PREDICT + ["{tmp}/wide.csv"], 2, r"predict on 1 query \(ridge, d = 5000, n = 1\) would "
                              r"need more than .* \(that much already at d = \d+; the cost grows with d\)"),
    "an .npz header claiming 10^10 numbers": (PREDICT + ["{tmp}/huge_header.npz"], 2, r"loading .*huge_header\.npz would "
                                              r"need about 149 GiB of memory"),
}


@pytest.mark.parametrize("case", SIZES)
def test_sizes(capsys, tmp, case):
    argv, code, pattern = SIZES[case]
    check(capsys, expand(argv, tmp), code, pattern)


# -- output paths and pictures --------------------------------------------------------------------

TRACE = ["trace", "--algo", "sgd"]


def _no_access(path_name):
    def setup(monkeypatch):
        real = os.access
        monkeypatch.setattr(shared.os, "access", lambda p, mode: False if Path(p).name == path_name else real(p, mode))
    return setup


def _disk_full(monkeypatch):
    def save(net, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    monkeypatch.setattr(export, "save", save)


def _no_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def _hf_disk_full(monkeypatch):
    """--format hf writes with safetensors, whose full disk is its own SafetensorError, not an OSError."""
    import construct.runtimes
    from safetensors import SafetensorError

    def save_pretrained(net, directory):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    runtime = types.ModuleType("construct.runtimes.hf")
    runtime.save_pretrained = save_pretrained
    monkeypatch.setitem(sys.modules, "construct.runtimes.hf", runtime)
    monkeypatch.setattr(construct.runtimes, "hf", runtime, raising=False)


def _picture_disk_full(monkeypatch):
    """matplotlib's write fails; an OSError from a write names no file."""
    def residual_stream(trace, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(trace.plots, "residual_stream", residual_stream)


OUTPUTS = {
    "-o ''": (["export", "--algo", "sgd", "-o", ""], 2, r"argument -o/--output: an empty path; give a file name"),
    "-o a directory": (["export", "--algo", "sgd", "-o", "{tmp}/folder.csv"], 2, r"-o: .*folder\.csv is a directory; "
                       r"name a file in it"),
    "-o into no directory": (["export", "--algo", "sgd", "-o", "/no/such/dir/x.npz"], 2, r"-o: no directory /no/such/dir"),
    "-o into a read-only directory": (["export", "--algo", "sgd", "-o", "{tmp}/locked/x.npz"], 2,
                                      r"-o: cannot write into .*locked: permission denied", _no_access("locked")),
    "-o onto a read-only file": (["export", "--algo", "sgd", "-o", "{tmp}/locked.npz"], 2,
                                 r"-o: .*locked\.npz exists and is read-only", _no_access("locked.npz")),
    "-o on a full disk": (["export", "--algo", "sgd", "-d", "1", "-n", "1", "-o", "{tmp}/full.npz"], 2,
                          r"-o: cannot write .*full\.npz: No space left on device", _disk_full),
    "-o on a full disk, --format hf": (["export", "--format", "hf", "--algo", "sgd", "-d", "1", "-n", "1", "-o",
                                        "{tmp}/full-hf"], 2, r"-o: cannot write .*full-hf: No space left on device",
                                       _hf_disk_full),
    "--png on a full disk": (TRACE + ["-d", "1", "-n", "1", "--png", "{tmp}/full.png"], 2, r"--png: cannot write "
                             r".*full\.png: No space left on device", _picture_disk_full),
    "--png x.foo": (["demo", "--png", "{tmp}/x.foo"], 2, r"--png: .*x\.foo has the suffix \.foo, which is not a picture "
                    r"format offered here; use one of .*\.pdf, .*\.png, .*\.svg"),
    "--png without a suffix": (["demo", "--png", "{tmp}/picture"], 2, r"--png: .*picture has no suffix"),
    "--png .pgf": (TRACE + ["--png", "{tmp}/x.pgf"], 2, r"the suffix \.pgf, which is not a picture format offered here: "
                   r"it needs a LaTeX installation"),
    "--weights-png .txt": (TRACE + ["--weights-png", "{tmp}/w.txt"], 2, r"--weights-png: .*w\.txt has the suffix \.txt"),
    "--png ''": (TRACE + ["--png", ""], 2, r"argument --png: an empty path"),
    "--png into no directory": (TRACE + ["--png", "/no/such/dir/x.png"], 2, r"--png: no directory /no/such/dir"),
    "--png a directory": (["demo", "--png", "{tmp}/picture.png"], 2, r"--png: .*picture\.png is a directory; name a "
                          r"file in it"),
    "--png and --weights-png the same file": (TRACE + ["--png", "{tmp}/s.png", "--weights-png", "{tmp}/s.png"], 2,
                                              r"--png and --weights-png name the same file .*s\.png; give two files"),
    "pictures without matplotlib": (TRACE + ["--png", "{tmp}/s.png"], 2, r"pictures need matplotlib, the optional extra "
                                    r"'plots'", _no_matplotlib),
}


@pytest.mark.parametrize("case", OUTPUTS)
def test_outputs_and_pictures(capsys, tmp, monkeypatch, case):
    argv, code, pattern, *setup = OUTPUTS[case]
    for prepare in setup:
        prepare(monkeypatch)
    check(capsys, expand(argv, tmp), code, pattern)
    assert not any((tmp / name).exists() for name in ("net.npz", "full.npz", "full-hf", "full.png"))


# -- exit codes: internal errors, --debug, interruptions ------------------------------------------


def test_an_internal_error_is_one_line_exit_3(capsys, monkeypatch):
    monkeypatch.setattr(demo, "run", lambda *a, **k: 1 / 0)
    check(capsys, ["demo", "--n", "1"], 3, r"icl-construct demo: error: internal error \(ZeroDivisionError: division by "
          r"zero\); this is a bug in icl-construct: rerun with --debug and open an issue")


@pytest.mark.parametrize("where", ["after the command", "before the command"])
def test_debug_shows_the_traceback(capsys, monkeypatch, where):
    monkeypatch.setattr(demo, "run", lambda *a, **k: 1 / 0)
    argv = ["demo", "--n", "1", "--debug"] if where == "after the command" else ["--debug", "demo", "--n", "1"]
    code, out, err = run(capsys, argv)
    assert code == 3 and err.startswith("Traceback (most recent call last):") and "ZeroDivisionError" in err
    assert err.splitlines()[-1].startswith("icl-construct demo: error: internal error")


def test_debug_keeps_the_exit_code_of_bad_input(capsys, tmp):
    code, _, err = run(capsys, PREDICT + [tmp / "typo_later.csv", "--debug"])
    assert code == 2 and "Traceback" in err and "DataError" in err


def test_an_interrupt_is_exit_130(capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(demo, "run", interrupted)
    code, out, err = run(capsys, ["demo", "--n", "1"])
    assert (code, out, err) == (130, "", "icl-construct demo: interrupted\n")


def test_an_interrupt_a_library_turns_into_another_error_is_exit_130(capsys, monkeypatch):
    """A real SIGINT, which numpy's import (in C) turns into an ImportError: still an interrupt, not a bug."""
    def interrupted(*args, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(10)
        except KeyboardInterrupt:
            raise ImportError("PyCapsule_Import could not import module \"datetime\"") from None
    monkeypatch.setattr(demo, "run", interrupted)
    code, out, err = run(capsys, ["demo", "--n", "1"])
    assert (code, out, err) == (130, "", "icl-construct demo: interrupted\n")


def test_running_out_of_memory_is_exit_2(capsys, monkeypatch):
    """The estimate passed a raised --max-memory, but the machine has less: what to do, not a bug."""
    def allocate(*args, **kwargs):
        raise MemoryError("Unable to allocate 8.00 GiB for an array with shape (1073741824,) and data type float64")
    monkeypatch.setattr(demo, "run", allocate)
    check(capsys, ["demo", "--n", "1", "--max-memory", "64GiB"], 2, r"icl-construct demo: error: ran out of memory "
          r"\(Unable to allocate 8\.00 GiB .*\): this machine has less free memory than the run needs, which was "
          r"estimated within --max-memory 64 GiB; give --max-memory the memory that is free, or ask for a smaller n "
          r"or d$")


# -- what a user sees: a real process ----------------------------------------------------------

COMMAND = [sys.executable, "-c", "import sys; from construct.cli import main; sys.exit(main())"]

IN_A_PROCESS = {
    "gzip data": (PREDICT + ["{tmp}/gzip.csv"], 2, r"gzip\.csv is a gzip file"),
    "-o ''": (["export", "--algo", "sgd", "-o", ""], 2, r"argument -o/--output: an empty path"),
    "export ridge -d 40": (EXPORT + ["ridge", "-d", "40", "-n", "2"], 2, r"would need about \d+(\.\d)? GiB of memory"),
    "--alpha 1e100": (EXPORT + ["sgd", "--alpha", "1e100"], 1, r"float64 overflows in the exact machine"),
    "outside the domain": (PREDICT + ["{tmp}/good.csv", "--domain", "calibrated", "--margin", "1", "--calibrate", "1"], 1,
                           r"query 1: .* outside .*a larger --margin widens the domain"),
}


@pytest.mark.parametrize("case", IN_A_PROCESS)
def test_in_a_process(tmp, case):
    argv, code, pattern = IN_A_PROCESS[case]
    done = subprocess.run(COMMAND + expand(argv, tmp), capture_output=True, text=True, timeout=300)
    assert done.returncode == code and done.stdout == "", done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert re.search(pattern, done.stderr), done.stderr


# Ctrl-C in a real process: exit 130 and one line at any moment, from the imports at start (numpy, scipy, sympy
# take seconds, and numpy's import turns a KeyboardInterrupt into an ImportError) to the work itself.
WHEN_NUMPY_IMPORTS = """
import builtins, sys, time
real = builtins.__import__
def hook(name, *args, **kwargs):
    if name == "numpy" and not hasattr(hook, "done"):
        hook.done = True
        sys.stderr.write("importing numpy\\n")
        sys.stderr.flush()
        time.sleep(60)
    return real(name, *args, **kwargs)
builtins.__import__ = hook
from construct.cli import main
sys.exit(main(sys.argv[1:]))
"""
WHILE_RUNNING = """
import sys, time
from construct.cli import demo, main
def run(*args, **kwargs):
    sys.stderr.write("running\\n")
    sys.stderr.flush()
    time.sleep(60)
demo.run = run
sys.exit(main(sys.argv[1:]))
"""
INTERRUPTS = {  # how the child runs, when the signal comes (a line it writes, or seconds), the one line it gives
    "as numpy starts importing, first of all": (WHEN_NUMPY_IMPORTS, "importing numpy", "icl-construct: interrupted"),
    "0.3 s after start": (None, 0.3, "icl-construct( demo)?: interrupted"),
    "1 s after start": (None, 1.0, "icl-construct( demo)?: interrupted"),
    "while the command runs": (WHILE_RUNNING, "running", "icl-construct demo: interrupted"),
}


@pytest.mark.parametrize("case", INTERRUPTS)
def test_ctrl_c_at_any_moment_is_exit_130_and_one_line(case):
    code, when, line = INTERRUPTS[case]
    argv = ([sys.executable, "-c", code] if code else COMMAND) + ["demo", "--n", "30"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if isinstance(when, str):
        assert process.stderr.readline() == when + "\n"
    else:
        time.sleep(when)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130 and out == "", err
    assert re.fullmatch(line + "\n", err), err


def test_running_out_of_memory_in_a_real_process(tmp_path):
    """export d = 16 (about 3.4 GiB) with --max-memory 100GiB, in a process allowed 800 MiB of address space: the
    MemoryError of numpy's allocation is exit 2 and one line."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (800 * 2**20, 800 * 2**20))

    done = subprocess.run(COMMAND + ["export", "--algo", "ridge", "-d", "16", "-n", "4", "--max-memory", "100GiB",
                                     "--max-seconds", "600", "-o", str(tmp_path / "x.npz")],
                          capture_output=True, text=True, timeout=300, preexec_fn=limit,
                          env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert re.fullmatch(r"icl-construct export: error: ran out of memory \(Unable to allocate .*\): this machine has "
                        r"less free memory than the run needs, .*or ask for a smaller n or d\n", done.stderr), done.stderr
    assert not (tmp_path / "x.npz").exists()


def test_a_closed_pipe_stops_quietly():
    """``icl-construct trace ... --json | head -c 100``: no BrokenPipeError, exit 141 (as if killed by SIGPIPE)."""
    process = subprocess.Popen(COMMAND + ["trace", "--algo", "ridge", "-d", "2", "-n", "4", "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.read(100)
    process.stdout.close()
    _, err = process.communicate(timeout=300)
    assert process.returncode == 128 + signal.SIGPIPE and err == b"", err


# -- docs/BAD_INPUT.md's table --------------------------------------------------------------------

CATEGORIES = {
    "data files": len(DATA_FILES) + 1,  # and the unreadable file
    "numeric options": len(NUMERIC_OPTIONS),
    "other options": len(OTHER_OPTIONS),
    "sizes (memory, time)": len(SIZES),
    "output paths and pictures": len(OUTPUTS),
    "exit codes": 7,  # an internal error, --debug in two places and on bad input, two interrupts, out of memory
    "in a real process": len(IN_A_PROCESS) + 1 + len(INTERRUPTS) + 1,  # the closed pipe, Ctrl-C, out of memory
}


def test_the_bad_input_page_counts_every_category():
    """The command line's rows (test_hostile_api.py counts the library's, the rows named "library...")."""
    counts = bad_input_counts()
    assert {row: n for row, n in counts.items() if not row.startswith("library")} == CATEGORIES
