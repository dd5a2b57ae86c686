"""The command line: every subcommand's output against the closed forms, and one-line errors with exit code 2."""

import json
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import construct
from construct import cli, programs, reference
from construct.tasks import gaussian_tasks

COMMANDS = ("demo", "predict", "export", "trace", "bench", "proofs")


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def agree(got, want, rtol=1e-6):
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    return bool(np.all(np.abs(got - want) <= rtol * (1 + np.abs(want))))


@pytest.mark.parametrize("command", COMMANDS)
def test_help(capsys, command):
    with pytest.raises(SystemExit) as stop:
        cli.main([command, "--help"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: icl-construct {command}")


def test_demo_json_matches_the_closed_forms(capsys):
    code, out, _ = run(capsys, "demo", "--json", "--d", 2, "--n", 3, "--seed", 4)
    assert code == 0
    result = json.loads(out)
    task = tuple(np.array(result["task"][k]) for k in ("X", "y", "x_query"))
    sgd, ridge = result["learners"]
    p = sgd["params"]
    assert agree(sgd["transformer"], reference.sgd_one_pass(*task, p["alpha"], p["lam"], p["w0"]))
    assert agree(ridge["transformer"], reference.ridge(*task, ridge["params"]["lam"]))
    assert sgd["size"]["layers"] == 6 * 3 + 7 and ridge["size"]["layers"] == 12 * 3 + 5
    for chain, (layers, rows) in zip(result["chains"], ((9, 3 + 4 * 2), (14, 3 + 5 * 2 + 3 * 4))):
        assert chain["size"]["paper"] == {"layers": layers, "data_rows": rows}
        assert (chain["size"]["layers"], chain["size"]["data_rows"]) == (layers, rows)


def test_python_m_construct_runs_the_demo():
    done = subprocess.run([sys.executable, "-m", "construct"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    assert "sgd_step: 9 layers" in done.stdout and "paper: 9 layers, 11 data rows" in done.stdout
    assert "ridge (Sherman-Morrison), lam = 0.1: 77 layers" in done.stdout
    assert "paper: O(n) layers, O(d^2) width" in done.stdout
    table = [row for row in (line.split() for line in done.stdout.splitlines()) if len(row) == 5 and numbers(row)]
    errors = [float(row[-1]) for row in table]
    assert len(errors) == 2 * 7 and max(errors) < 1e-8


def numbers(fields):
    try:
        return [float(f) for f in fields]
    except ValueError:
        return None


def test_console_script():
    script = Path(sys.executable).with_name("icl-construct")
    if not script.exists():
        pytest.skip("icl-construct is not installed in this environment (pip install . installs it)")
    done = subprocess.run([str(script), "demo", "--json", "--n", "2"], capture_output=True, text=True)
    assert done.returncode == 0 and json.loads(done.stdout)["n"] == 2


# -- predict ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(5, 3))
    return X, X @ rng.normal(size=3) + 0.1 * rng.normal(size=5), rng.normal(size=(2, 3))


def write_csv(path, X, y, queries, header=True):
    lines = ["x1,x2,x3,y"] if header else []
    lines += [",".join(map(repr, [*x.tolist(), float(t)])) for x, t in zip(X, y)] + ["# the queries"]
    lines += [",".join(map(repr, q.tolist())) + "," for q in queries]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("form", ["csv", "npz"])
@pytest.mark.parametrize("algo", ["sgd", "ridge"])
def test_predict_matches_the_closed_form(capsys, tmp_path, data, form, algo):
    X, y, queries = data
    if form == "csv":
        path = write_csv(tmp_path / "data.csv", X, y, queries)
    else:
        path = tmp_path / "data.npz"
        np.savez(path, X=X, y=y, x_query=queries)
    options = ["--alpha", 0.02, "--lam", 0.3, "--w0", 0.5, -0.25, 1.0] if algo == "sgd" else ["--lam", 0.3]
    code, out, err = run(capsys, "predict", "--algo", algo, "--data", path, "--json", *options)
    assert code == 0, err
    rows = json.loads(out)["predictions"]
    assert len(rows) == 2
    for row, q in zip(rows, queries):
        if algo == "sgd":
            want = reference.sgd_one_pass(X, y, q, 0.02, 0.3, [0.5, -0.25, 1.0])[-1]
        else:
            want = reference.ridge(X, y, q, 0.3)[-1]
        assert agree(row["transformer"], want) and row["x"] == q.tolist()


def test_predict_text(capsys, tmp_path, data):
    code, out, _ = run(capsys, "predict", "--algo", "ridge", "--data", write_csv(tmp_path / "d.csv", *data, False))
    assert code == 0
    assert "ridge on" in out and "d = 3, n = 5 examples, 2 queries" in out
    table = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [row[0] for row in table] == ["1", "2"] and all(float(row[3]) < 1e-8 for row in table)


def test_a_task_outside_the_domain_is_refused(capsys, tmp_path, data):
    path = write_csv(tmp_path / "d.csv", *data)
    code, out, err = run(capsys, "predict", "--algo", "ridge", "--data", path, "--margin", 1, "--calibrate", 1)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "outside" in err and "--margin" in err


BAD = {
    "no file": (["--data", "{tmp}/absent.csv"], "no file"),
    "extension": (["--data", "{tmp}/data.txt"], "must be a .csv or .npz"),
    "not a number": (["--data", "{tmp}/word.csv"], "line 2: 'abc' is not a number"),
    "ragged": (["--data", "{tmp}/ragged.csv"], "line 2: 3 columns, the first row has 4"),
    "no query": (["--data", "{tmp}/noquery.csv"], "found 2 and 0"),
    "bad npz": (["--data", "{tmp}/bad.npz"], "not a readable .npz"),
    "npz arrays": (["--data", "{tmp}/partial.npz"], r"missing arrays \['y'\]"),
    "alpha for ridge": (["--data", "{tmp}/good.csv", "--alpha", "0.1"], "--alpha is for SGD only"),
    "w0 length": (["--data", "{tmp}/good.csv", "--algo", "sgd", "--w0", "1", "2"], r"w0 must have shape \(3,\)"),
    "negative lam": (["--data", "{tmp}/good.csv", "--lam", "-1"], "lam must be > 0"),
    "margin": (["--data", "{tmp}/good.csv", "--margin", "0.5"], "argument --margin: must be a number >= 1"),
    "algo": (["--data", "{tmp}/good.csv", "--algo", "lasso"], "invalid choice: 'lasso'"),
    "unknown option": (["--data", "{tmp}/good.csv", "--speed", "3"], "unrecognized arguments: --speed 3"),
    "step chain with n = 2": (["--data", "{tmp}/good.csv", "--algo", "sgd_step"], "needs n = 1, got 2"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_predict_arguments(capsys, tmp_path, case):
    (tmp_path / "data.txt").write_text("1,2\n")
    (tmp_path / "word.csv").write_text("1,2,3,4\nabc,2,3,4\n5,6,7,\n")
    (tmp_path / "ragged.csv").write_text("1,2,3,4\n1,2,3\n5,6,7,\n")
    (tmp_path / "noquery.csv").write_text("1,2,3,4\n1,2,3,4\n")
    (tmp_path / "good.csv").write_text("1,2,3,4\n1,0,3,4\n5,6,7,\n")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    np.savez(tmp_path / "partial.npz", X=np.ones((2, 3)), x_query=np.ones(3))
    argv, match = BAD[case]
    argv = [a.format(tmp=tmp_path) for a in argv]
    if "--algo" not in argv:
        argv += ["--algo", "ridge"]
    code, out, err = expect_exit(capsys, ["predict", *argv])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("icl-construct predict: error:")
    assert re.search(match, err), err


def expect_exit(capsys, argv):
    """Exit code, stdout, stderr, whether main returns or argparse exits."""
    try:
        code = cli.main(argv)
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, match", [
    ([], "the following arguments are required: COMMAND"),
    (["fly"], "invalid choice: 'fly'"),
    (["export", "--algo", "sgd"], "the following arguments are required: -o/--output"),
    (["export", "--algo", "sgd", "-o", "/no/such/dir/x.npz"], "no directory /no/such/dir"),
    (["export", "--algo", "sgd", "-o", "x", "-d", "0"], "argument -d/--d: must be an integer >= 1"),
    (["trace", "--algo", "ridge", "--layer", "3"], "give --weights-png too"),
    (["trace", "--algo", "ridge", "--weights-png", "w.png", "--layer", "99"], "--layer must be in 1..29"),
    (["bench", "--d", "0"], "--d and --n take integers >= 1"),
    (["demo", "--n", "-1"], "must be an integer >= 1"),
])
def test_bad_arguments_give_one_line_and_exit_2(capsys, argv, match):
    code, out, err = expect_exit(capsys, argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and match in err, err


# -- export, trace, bench, proofs ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_export_writes_a_loadable_network(capsys, tmp_path, dtype):
    code, out, err = run(capsys, "export", "--algo", "sgd", "-d", 2, "-n", 3, "--lam", 0.2, "--alpha", 0.03,
                         "-o", tmp_path / "sgd", "--dtype", dtype, "--json")
    assert code == 0, err
    result = json.loads(out)
    path = Path(result["path"])
    assert path == tmp_path / "sgd.npz" and path.stat().st_size == result["bytes"]
    net = construct.load(path)
    assert net.weights.dtype == np.dtype(dtype) and net.program.params["alpha"] == 0.03
    task = gaussian_tasks(2, 3, 1, seed=5)[0]
    tolerance = 1e-6 if dtype == "float64" else 1e-3
    assert agree(net.predict(*task), reference.sgd_one_pass(*task, 0.03, 0.2), tolerance)


def test_trace_table_and_json(capsys):
    code, out, _ = run(capsys, "trace", "--algo", "ridge", "-d", 2, "-n", 2)
    assert code == 0
    assert "x~1        y~1        x~2        y~2        x~q" in out
    assert "layer 6: mul  u <- Ainv_src (2x2) @ x (2x1)" in out and "  Ainv[1,0] " in out
    code, out, _ = run(capsys, "trace", "--algo", "ridge", "-d", 2, "-n", 2, "--json")
    result = json.loads(out)
    assert np.array(result["states"]).shape == (29 + 1, len(result["row_labels"]), 5)
    assert max(row["machine_error"] for row in result["written"]) < 1e-8
    task = tuple(np.array(result["task"][k]) for k in ("X", "y", "x_query"))
    exact = programs.ridge(2, 2, 0.1).run(*task)  # the last layer writes pred, which the table shows
    (last,) = [row for row in result["written"] if row["layer"] == 29]
    assert agree(last["values"], exact[-1], 1e-8)


def test_trace_pictures(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    code, out, err = run(capsys, "trace", "--algo", "sgd", "-d", 2, "-n", 2, "--png", tmp_path / "s.png",
                         "--weights-png", tmp_path / "w.png", "--layer", 7)
    assert code == 0, err
    for name in ("s.png", "w.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "weights layer 7" in out


def test_bench_forwards_its_options(capsys):
    code, out, _ = run(capsys, "bench", "--algo", "sgd", "--d", 1, "--n", 1, "--json")
    (row,) = json.loads(out)
    assert code == 0 and (row["algo"], row["d"], row["n"], row["layers"]) == ("sgd", 1, 1, 6 + 7)
    assert row["max_error_float64"] < 1e-6


def test_proofs_are_run_with_the_remaining_arguments(capsys, monkeypatch):
    seen = []
    monkeypatch.setitem(sys.modules, "proofs", types.SimpleNamespace(main=lambda argv: seen.append(argv) or 3))
    assert cli.main(["proofs", "--only", "lemma_product"]) == 3
    assert seen == [["--only", "lemma_product"]]


def test_proofs_missing(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "proofs", None)
    code, out, err = run(capsys, "proofs")
    assert code == 2 and err.count("\n") == 1 and "proofs are not installed" in err


def test_progress_bar_only_on_a_terminal_and_without_json(capsys, monkeypatch, tmp_path, data):
    path = write_csv(tmp_path / "d.csv", *data)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    _, _, err = run(capsys, "predict", "--algo", "ridge", "--data", path)
    assert "predict (ridge, d=3, n=5)" in err
    _, _, err = run(capsys, "predict", "--algo", "ridge", "--data", path, "--json")
    assert err == ""
