import json
import subprocess
import sys


def test_benchmark_prints_both_layouts_and_every_column():
    cmd = [sys.executable, "-m", "construct.cli.benchmark", "--d", "2", "--n", "2", "--algo", "ridge", "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "RuntimeWarning" not in done.stderr, done.stderr
    (config,) = json.loads(done.stdout)
    paper, fused = config["paper"], config["fused"]
    assert (paper["layers"], paper["stored"]) == (12 * 2 + 5, 12 * 2 + 5)  # one layer per instruction, untied
    assert (fused["layers"], fused["stored"]) == (4 * 2 + 1, 6)
    assert config["paper_over_fused"]["layers"] == paper["layers"] / fused["layers"]
    for row in (paper, fused):
        assert row["algo"] == "ridge" and row["outside"] == 0
        for key in ("D", "mlp_width", "parameters", "compile_s", "numpy_s_per_task", "dense_s_per_task",
                    "certified_s_per_task", "jax_s_per_task", "peak_mb", "max_bound_float64"):
            assert row[key] > 0, key
        assert row["max_error_float64"] < 1e-6 and row["max_error_float32"] < 1e-3
        assert row["max_bound_float64"] < 1e-6
        assert row["max_exact_error_float64"] <= row["max_bound_float64"]
        assert row["median_bound_float64"] <= row["max_bound_float64"] and row["median_bound_over_error"] >= 1
    assert paper["refusal"] is None
    for s in ("1", "2", "4"):  # ridge at lam = 0.1 on the box for x ~ N(0, s^2 I): compiled, every task counted
        r = fused["refusal"][s]
        assert r["tasks"] == 5 and r["refused"] == (r["outside_box"] + r["bound_above_tolerance"]) / 5


def test_the_refusal_study_answers_sgd_on_each_tasks_own_run_where_the_box_admits_an_expanding_step():
    """alpha = 0.05 at d = 2: the box |x| <= 2s sqrt(2) keeps every step contracting at s = 1 (alpha (R^2 + lam) =
    0.41), not at s = 2 (1.6) or 4 (6.4), where each task is answered as construct.predict answers it."""
    from construct import programs
    from construct.cli import benchmark

    study = benchmark.refusals(programs.sgd(2, 4, benchmark.ALPHA, benchmark.LAM), 2, 4)
    assert study["1"]["domain"] == "box"
    for s in ("2", "4"):
        r = study[s]
        assert r["domain"] == "run" and "diverges on the box" in r["box_refused"]
        assert r["refused"] == (r["run_grows"] + r["bound_above_tolerance"]) / r["tasks"] == 0
