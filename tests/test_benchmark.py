import json
import subprocess
import sys


def test_benchmark_prints_every_column():
    cmd = [sys.executable, "-m", "construct.cli.benchmark", "--d", "2", "--n", "2", "--algo", "ridge", "--json"]
    rows = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    (row,) = rows
    assert row["algo"] == "ridge" and row["layers"] == 3 + 12 * 2 + 2
    for key in ("D", "mlp_width", "parameters", "compile_s", "numpy_s_per_task", "jax_s_per_task", "peak_mb"):
        assert row[key] > 0
    assert row["max_error_float64"] < 1e-6 and row["max_error_float32"] < 3e-2
