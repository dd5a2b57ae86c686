"""Every example runs and prints what it says it shows."""

import os
import re
import subprocess
import sys

import pytest

from support import ROOT

EXAMPLES = ROOT / "examples"

try:
    import matplotlib  # noqa: F401

    HAVE_MATPLOTLIB = True
except ImportError:
    HAVE_MATPLOTLIB = False


def numbers_after(label: str, text: str) -> list[float]:
    match = re.search(re.escape(label) + r"\s*\[([^\]]*)\]", text)
    assert match, f"no {label!r} in the output"
    return [float(v) for v in match.group(1).split()]


def small(label: str, text: str) -> float:
    match = re.search(re.escape(label) + r"\s*([0-9.e+-]+)", text)
    assert match, f"no {label!r} in the output"
    return float(match.group(1))


def check_01(out, _):
    assert numbers_after("w1 from the machine:", out) == numbers_after("w1 from the formula:", out)
    assert "9 layers, 11 data rows (paper: 9 layers, 11 rows from row 0, y and x included)" in out
    assert "fused (independent instructions share a layer): 2 layers" in out
    assert small("|transformer - closed form| =", out) < 1e-9


def check_02(out, _):
    machine, inverse = re.findall(r"\[\[([^\]]*)\]\s*\[([^\]]*)\]\]", out)
    assert [float(v) for part in machine for v in part.split()] == pytest.approx(
        [float(v) for part in inverse for v in part.split()], rel=1e-8)
    assert "14 layers, 25 data rows (paper: 14 layers, 25 rows from row 0, y and x included)" in out
    assert small("|transformer - closed form| =", out) < 1e-9
    assert "layer 9: div  corr <- uvT / |den1|" in out


def check_03(out, pictures):
    assert "sgd: 17 layers" in out and "ridge: 33 layers" in out  # fused: 2n + 1 and 4n + 1 at n = 8
    rows = [line.split() for line in out.splitlines() if re.match(r"\s*\d+\s+-?\d+\.\d{4}\s", line)]
    assert [int(r[0]) for r in rows] == list(range(9))
    for r in rows:
        sgd, sgd_closed, ridge, ridge_closed = (float(v) for v in r[2:6])
        assert abs(sgd - sgd_closed) < 1e-4 and abs(ridge - ridge_closed) < 1e-4
    assert small("largest |network - closed form|: SGD", out) < 1e-8
    if HAVE_MATPLOTLIB:
        assert "wrote" in out and (pictures / "error_vs_examples.png").stat().st_size > 10_000


def check_04(out, pictures):
    assert "ridge, d = 2, n = 2: 29 layers" in out
    assert "   11  div  gain <- u / |den1|" in out
    differences = [float(v) for v in re.findall(r"\|difference\| <= ([0-9.e+-]+)", out)]
    assert len(differences) == 3 and max(differences) < 1e-8
    assert small("does not write it:", out) == 0.0
    if HAVE_MATPLOTLIB:
        for name in ("weights_div_layer.png", "residual_stream.png"):
            assert (pictures / name).stat().st_size > 10_000


def check_05(out, pictures):
    assert "every array bit-exact after the round trip: True" in out
    assert "identical predictions: True" in out
    assert small("largest difference:", out) < 1e-9
    assert small("ours against the closed form of one-pass SGD:", out) < 1e-9
    assert (pictures / "sgd.npz").exists()


def check_06(out, pictures):
    assert re.search(r"(HookedTransformer|TransformerBridge): 13 blocks, d_model 48, 3 heads of 16", out)
    assert small("|TransformerLens - closed form| =", out) < 1e-8
    assert small("largest a-posteriori bound of TransformerLens' answers:", out) < 1e-9
    assert small("max |pattern - one-hot on column i - 2| =", out) < 1e-12
    assert numbers_after("after the last block:", out) == pytest.approx(numbers_after("closed form:", out), abs=1e-8)
    assert (pictures / "transformer_lens_ridge.png").stat().st_size > 10_000


def check_07(out, _):
    assert "gd_from_zero: d=2, n=4, depth=14, width=15 (11 data rows)" in out
    assert small("exact machine against the closed form: worst relative error", out) <= 1e-9
    assert "network (calibration on 32 tasks, margin 4): 20 tasks answered, 0 refused" in out
    assert "100 answers against the closed form (allowed its stated float64 rounding)" in out
    assert small("worst error", out) <= small("worst bound", out) < 1e-6
    assert small("bound / error from", out) >= 1
    assert re.search(r"the bug is caught at the machine level: gd_from_zero: the exact machine's answer .* > rtol "
                     r"1e-09\nthe task: Task\(X=np\.array\(\[\[", out)


CHECKS = {"01_sgd_step.py": check_01, "02_sherman_morrison_step.py": check_02,
          "03_prefix_predictions.py": check_03, "04_inspect_layers.py": check_04,
          "05_export_and_reload.py": check_05, "06_transformer_lens.py": check_06,
          "07_custom_program.py": check_07}


def test_every_example_is_checked():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_example(name, tmp_path):
    script = EXAMPLES / name
    assert len(script.read_text().splitlines()) <= 80, f"{name} is longer than 80 lines"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # a hang guard only: times are the benchmark's business, and this machine may be shared
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    CHECKS[name](done.stdout, tmp_path)
