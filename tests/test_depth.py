"""python -m construct.cli.depth: one row measured, and docs/DEPTH.md's table is the one its results file gives."""

import json
from pathlib import Path

from construct.cli import depth

ROOT = Path(__file__).resolve().parent.parent


def test_a_row_is_measured_with_its_certificate():
    row = depth.measure("gd", 2, d=2)
    assert row["run"] and row["layers"] == 21 and row["stored"] == 4  # T = 20 steps: T + 1 layers
    assert 0 < row["nonzero_parameters"] < row["parameters"]
    assert row["max_error"] < 1e-9 and row["certificate"] == "mechanism, numpy pass" and row["max_bound"] < 1e-6


def test_a_network_too_large_to_run_is_sized_only():
    row = depth.measure("ridge", 1024)
    assert not row["run"] and row["layers"] == 4097 and "GiB" in row["why_not"]


def test_the_document_shows_the_results_file():
    results = json.loads((ROOT / "construct" / "results" / "depth.json").read_text())
    rows = results["rows"]
    assert depth.markdown(rows, results["box"]) in (ROOT / "docs" / "DEPTH.md").read_text()
    assert {(r["algo"], r["n"]) for r in rows} == {(a, n) for a in depth.PARAMETERS for n in depth.LENGTHS}
