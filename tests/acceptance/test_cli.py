"""The command line: every subcommand's output against the closed forms (bad input: test_hostile_cli.py)."""

import argparse
import importlib
import json
import pkgutil
import re
import shlex
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import construct
from construct import cli, programs, reference
from construct.cli import budget, commands
from construct.tasks import gaussian_tasks

from support import ROOT

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


def commands_parser_of(name: str):
    (sub,) = [a for a in commands.parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices[name]


def help_text(capsys, argv) -> str:
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    out, err = capsys.readouterr()
    assert stop.value.code == 0 and err == ""
    return out


def docstrings_of_the_command_line() -> list[str]:
    modules = [importlib.import_module(f"construct.cli.{m.name}") for m in pkgutil.iter_modules(cli.__path__)]
    return [line for module in [cli, *modules] for line in (module.__doc__ or "").splitlines() if len(line) > 30]


@pytest.mark.parametrize("argv", [["--help"]] + [[command, "--help"] for command in COMMANDS])
def test_every_help_is_written_for_a_user(capsys, argv):
    """What it does, examples and where results go; no reST, no internal names, no docstring, no history."""
    text = help_text(capsys, argv)
    assert "`" not in text and not re.search(r"(?<![\w.-])_\w", text), text
    assert not re.search(r"\bround\b|construct\.cli\.(?!benchmark\b)|construct/", text), text
    for line in docstrings_of_the_command_line():
        assert line.strip() not in text, line
    assert "Exit codes: 0" in text
    if argv != ["--help"]:
        assert "Example" in text and f"\n  icl-construct {argv[0]}" in text
        assert re.search(r"(goes|go|written) to|stdout", text), "where the results go"
    else:
        assert all(f"\n    {command} " in text for command in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_the_examples_in_each_help_parse(command):
    (spec,) = [c for c in commands.COMMANDS if c.name == command]
    assert spec.examples
    for example in spec.examples:
        program, *argv = shlex.split(example)
        assert program == "icl-construct" and argv[0] == command
        args, rest = commands.parser().parse_known_args(argv)
        assert rest == [] and args.command == command and args.prog == f"icl-construct {command}", example


def test_a_flag_has_the_same_name_in_every_command():
    """-d/--d, -n/--n, --algo, --seed, --json, --max-memory, ...: spelt one way wherever a command takes them."""
    spellings = {}
    for command in COMMANDS:
        for action in commands_parser_of(command)._actions:
            if action.option_strings:
                spellings.setdefault(action.dest, set()).add(tuple(action.option_strings))
    assert {dest: forms for dest, forms in spellings.items() if len(forms) > 1} == {}
    assert spellings["d"] == {("-d", "--d")} and spellings["n"] == {("-n", "--n")}
    for command in ("demo", "export", "trace", "bench"):
        args = commands.parser().parse_args([command, "-d", "2", "-n", "4", *(
            ["--algo", "sgd"] if command in ("export", "trace") else []), *(["-o", "x"] if command == "export" else [])])
        assert (args.d, args.n) in ((2, 4), ([2], [4])), command


def test_the_algorithm_flags_come_from_the_registry(capsys, monkeypatch, tmp_path):
    """A new algorithm in the registry is an --algo choice with its own flags, with no edit of the command line."""
    toy = programs.Algorithm(
        name="toy", summary="SGD under another name, its step called beta",
        build=lambda d, n, beta: programs.sgd(d, n, beta, 0.1),
        parameters=(programs.Parameter("beta", 0.01, "the step size, 100%% of it"),),
        theory=None, closed_form=reference.sgd_one_pass, exact_weights=None)
    monkeypatch.setitem(programs.REGISTRY, "toy", toy)
    text = help_text(capsys, ["export", "--help"])
    assert re.search(r"--beta BETA\s+--algo toy: the step size, 100%% of it, default 0\.01", text), text
    assert "toy: SGD under another name, its step called beta (flags: --beta)" in text
    code, out, err = run(capsys, "export", "--algo", "toy", "--beta", 0.03, "-d", 2, "-n", 3, "--calibrate", 8,
                         "-o", tmp_path / "toy.npz", "--json")
    assert code == 0, err
    assert json.loads(out)["params"]["alpha"] == 0.03
    code, out, err = run(capsys, "export", "--algo", "ridge", "--beta", 0.03, "-o", tmp_path / "ridge.npz")
    assert code == 2 and err == ("icl-construct export: error: --algo ridge takes --lam, not --beta: --beta is for "
                                 "--algo toy\n")


def test_demo_json_matches_the_closed_forms(capsys):
    code, out, _ = run(capsys, "demo", "--json", "--d", 2, "--n", 3, "--seed", 4)
    assert code == 0
    result = json.loads(out)
    task = tuple(np.array(result["task"][k]) for k in ("X", "y", "x_query"))
    sgd, ridge = result["learners"]
    p = sgd["params"]
    assert agree(sgd["transformer"], reference.sgd_one_pass(*task, p["alpha"], p["lam"], p["w0"]))
    assert agree(ridge["transformer"], reference.ridge(*task, ridge["params"]["lam"]))
    assert (sgd["size"]["layers"], sgd["unfused_layers"]) == (2 * 3 + 1, 6 * 3 + 7)
    assert (ridge["size"]["layers"], ridge["unfused_layers"]) == (4 * 3 + 1, 12 * 3 + 5)
    for chain, (layers, rows), fused in zip(result["chains"], ((9, 3 + 4 * 2), (14, 3 + 5 * 2 + 3 * 4)), (2, 6)):
        assert chain["size"]["paper"] == {"layers": layers, "rows": rows}
        assert (chain["size"]["layers"], chain["size"]["data_rows"]) == (layers, rows)
        assert chain["fused_layers"] == fused


def test_python_m_construct_runs_the_demo():
    done = subprocess.run([sys.executable, "-m", "construct"], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "sgd_step: 9 layers" in done.stdout
    assert "paper: 9 layers, 11 rows counted from row 0 (y and x in)" in done.stdout
    assert "sgd_step: 9 layers" in done.stdout and "fused: 2 layers" in done.stdout
    assert "ridge (Sherman-Morrison), lam = 0.1: 25 layers" in done.stdout and "(fused; 77 layers unfused)" in done.stdout
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
    assert "domain: the data's box" in out and "bound" in out
    table = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [row[0] for row in table] == ["1", "2"]
    for _, _, bound, _, error, *_ in table:
        assert float(error) <= float(bound) < 1e-6


@pytest.mark.parametrize("algo", ["sgd", "ridge"])
def test_predict_certifies_every_answer_on_the_datas_box(capsys, tmp_path, data, algo):
    X, y, queries = data
    path = write_csv(tmp_path / "d.csv", X, y, queries)
    code, out, err = run(capsys, "predict", "--algo", algo, "--data", path, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["domain"] == {"source": "box", "x_max": float(np.abs(np.concatenate([X.ravel(), queries.ravel()]))
                                                                .max()), "y_max": float(np.abs(y).max())}
    for row in result["predictions"]:
        assert row["abs_error"] <= row["certified_bound"] <= 1e-6 * (1 + abs(row["transformer"]))


def test_sgd_whose_box_admits_an_expanding_step_is_answered_on_the_datas_own_run(capsys, tmp_path):
    """alpha = 0.5 on rows of norm at most 1 in d = 3: the data's box (|x| <= sqrt(3)) admits steps that multiply |w|
    by |1 - 2 alpha (lam + 3)| = 2.1, which compile refuses; every step of the data multiplies it by at most 0.1."""
    rng = np.random.default_rng(4)
    X = np.eye(3)[rng.integers(0, 3, size=6)] * rng.choice([-1.0, 1.0], size=(6, 1))
    y, queries = X @ np.array([0.5, -1.0, 2.0]), np.array([[0.3, -0.2, 0.9], [1.0, 1.0, 1.0]])
    path = write_csv(tmp_path / "d.csv", X, y, queries)
    code, out, err = run(capsys, "predict", "--algo", "sgd", "--alpha", 0.5, "--data", path, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["domain"] == {"source": "run", "margin": 4.0, "x_max": 1.0, "y_max": 2.0}
    for row, q in zip(result["predictions"], queries):
        want = reference.sgd_one_pass(X, y, q, 0.5, 0.1)[-1]
        assert abs(row["transformer"] - want) <= row["certified_bound"] <= 1e-6 * max(abs(want), 2.0)
    code, out, _ = run(capsys, "predict", "--algo", "sgd", "--alpha", 0.5, "--data", path)
    assert code == 0 and "domain: the data's own run (its box, |x_i| <= 1, |y| <= 2, admits an SGD step" in out


def test_sgd_whose_run_grows_is_refused_naming_the_example(capsys, tmp_path):
    """The same step on the row (2, 0, 0) from the third example on: |w| multiplied by |1 - 2 alpha (lam + 4)| = 3.1
    at each of 30 steps, 5e14 in all, more orders of magnitude than one bound per register resolves."""
    X = np.vstack([np.eye(3)[:2] * 0.5, np.tile([2.0, 0.0, 0.0], (30, 1))])
    path = write_csv(tmp_path / "d.csv", X, X @ np.array([0.5, -1.0, 2.0]), np.array([[0.3, -0.2, 0.9]]))
    code, out, err = run(capsys, "predict", "--algo", "sgd", "--alpha", 0.5, "--data", path)
    assert code == 1 and out == ""
    assert re.search(r"the SGD run grows from example 3 on, whose step multiplies \|w\| by up to 3\.1 ", err), err


def test_an_answer_above_the_tolerance_is_refused_with_its_bound(capsys, tmp_path, data):
    """ridge at lam = 1e-6 answered 2.652 for 2.700 before certificates, with exit code 0."""
    path = write_csv(tmp_path / "d.csv", *data)
    code, out, err = run(capsys, "predict", "--algo", "ridge", "--data", path, "--lam", 1e-6)
    assert code == 1 and out == "" and err.count("\n") == 1
    assert re.search(r"certified error bound \S+ \(\w+ certificate\), above the tolerance 1e-06 .* layer \d+ \(",
                     err), err
    code, out, err = run(capsys, "predict", "--algo", "ridge", "--data", path, "--lam", 1e-6, "--tolerance", 1e9,
                         "--json")
    assert code == 0, err
    for row in json.loads(out)["predictions"]:
        assert row["abs_error"] <= row["certified_bound"]


def test_a_task_outside_a_calibrated_domain_is_refused(capsys, tmp_path, data):
    path = write_csv(tmp_path / "d.csv", *data)
    code, out, err = run(capsys, "predict", "--algo", "ridge", "--data", path, "--domain", "calibrated",
                         "--margin", 1, "--calibrate", 1)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "outside" in err and "--margin" in err


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
    assert agree(net.predict(*task, tolerance=tolerance), reference.sgd_one_pass(*task, 0.03, 0.2), tolerance)


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


def test_bench_forwards_its_options(capsys, tmp_path):
    code, out, _ = run(capsys, "bench", "--algo", "sgd", "--d", 1, "--n", 1, "--json", "--out", tmp_path / "b.json")
    (config,) = json.loads(out)
    assert code == 0 and (config["algo"], config["d"], config["n"]) == ("sgd", 1, 1)
    assert (config["paper"]["layers"], config["fused"]["layers"]) == (6 + 7, 2 + 1)
    assert config["fused"]["max_error_float64"] < 1e-6
    assert json.loads((tmp_path / "b.json").read_text()) == [config]


def fake_proofs(monkeypatch, seen):
    """A package proofs with two proofs, whose main records its arguments and returns 3."""
    monkeypatch.setitem(sys.modules, "proofs", types.SimpleNamespace(
        PROOFS=[types.SimpleNamespace(name="lemma_product"), types.SimpleNamespace(name="theorem1")],
        main=lambda argv: seen.append(argv) or 3))


def test_proofs_are_run_with_their_options(capsys, monkeypatch):
    seen = []
    fake_proofs(monkeypatch, seen)
    assert cli.main(["proofs", "lemma_product", "--json"]) == 3
    assert cli.main(["proofs", "--list"]) == 3
    assert seen == [["lemma_product", "--json"], ["--list"]]


def test_proofs_refuse_an_unknown_name_or_option(capsys, monkeypatch):
    seen = []
    fake_proofs(monkeypatch, seen)
    code, out, err = run(capsys, "proofs", "theorem1", "lemma_sum")
    assert code == 2 and out == "" and seen == []
    assert err == "icl-construct proofs: error: no proof named lemma_sum (icl-construct proofs --list lists them)\n"
    with pytest.raises(SystemExit) as stop:  # argparse's exit
        cli.main(["proofs", "--only", "theorem1"])
    out, err = capsys.readouterr()
    assert stop.value.code == 2 and seen == [] and err.count("\n") == 1
    assert err.startswith("icl-construct proofs: error: unrecognized arguments: --only")


def test_proofs_offer_the_options_of_python_m_proofs():
    """python -m proofs's own parser is built inside its main: read its options from its help."""
    done = subprocess.run([sys.executable, "-m", "proofs", "--help"], capture_output=True, text=True, check=True,
                          cwd=ROOT)
    theirs = set(re.findall(r"^  (-[-\w]+|\w+)", done.stdout, flags=re.M)) - {"-h"}
    ours = commands_parser_of("proofs")
    mine = {s for a in ours._actions for s in (a.option_strings or [a.dest]) if s not in ("-h", "--help", "--debug")}
    assert mine == theirs, done.stdout


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


# -- the budget: sizes before anything is built, and the limits' units --------------------------


@pytest.mark.parametrize("name, build", [
    ("sgd", lambda d, n: programs.sgd(d, n, 0.05, 0.1)), ("ridge", lambda d, n: programs.ridge(d, n, 0.1)),
    ("sgd_step", lambda d, n: programs.sgd_step(d, 0.05, 0.1, np.zeros(d))),
    ("sherman_morrison_step", lambda d, n: programs.sherman_morrison_step(d, 0.1)),
])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_network_is_sized_from_its_programs_for_one_to_three_examples(name, build, dtype):
    for d in (1, 2, 5):
        for n in ((1,) if name.endswith("_step") else (1, 2, 3, 7, 12)):
            program = build(d, n)
            bounds = construct.Bounds.calibrate(program, gaussian_tasks(d, n, 8))
            net = budget.network(build, d, n, dtype)
            assert net.size == construct.compiler.estimate(program, bounds, dtype=dtype), (d, n)
            assert net.rows == program.layout.width


@pytest.mark.parametrize("text, seconds", [("600", 600), ("90s", 90), ("10min", 600), ("2h", 7200), (" 1.5 h ", 5400)])
def test_max_seconds_units(text, seconds):
    assert budget.parse_seconds(text) == seconds


@pytest.mark.parametrize("text, nbytes", [("8GiB", 8 * 2**30), ("8", 8 * 2**30), ("512 MiB", 2**29),
                                          ("16GB", 16e9), ("2g", 2 * 2**30), ("1TiB", 2**40), ("100kb", 1e5)])
def test_max_memory_units(text, nbytes):
    assert budget.parse_bytes(text) == nbytes


def test_a_raised_limit_lets_a_refused_run_go(capsys, tmp_path):
    argv = ["export", "--algo", "sgd", "-d", 2, "-n", 2, "-o", tmp_path / "x.npz", "--calibrate", 8]
    code, _, err = run(capsys, *argv, "--max-seconds", 0.001)
    assert code == 2 and "would take about" in err
    code, _, err = run(capsys, *argv, "--max-seconds", 60, "--max-memory", "1GiB")
    assert code == 0 and (tmp_path / "x.npz").exists(), err
