"""The mechanism certificate's cost (``python -m construct.cli.cost``) and the page that reads it."""

import json

from construct.cli import cost

from support import ROOT


def test_a_row_is_measured_against_the_numpy_pass():
    row = cost.measure("ridge", 2, d=2, repeats=2, seconds=0)
    assert (row["algo"], row["d"], row["n"]) == ("ridge", 2, 2) and row["layers"] > 0
    assert row["forward_s"] > 0 and row["certified_s"] > 0
    assert row["ratio"] == row["certified_s"] / row["forward_s"] and row["runs"] == 2
    assert 0 < row["max_bound"] < 1e-6


def test_the_rows_above_the_target_are_named():
    rows = [{"algo": "ridge", "n": 8, "ratio": 9.9}, {"algo": "sgd", "n": 8, "ratio": 10.1},
            {"algo": "sgd", "n": 32, "ratio": 12.0}, {"algo": "gd", "n": 8, "ratio": 11.0},
            {"algo": "gd", "n": 32, "ratio": 10.5}, {"algo": "gd", "n": 128, "ratio": 13.0}]
    assert cost.over(rows) == "sgd at n = 8 and 32; gd at n = 8, 32 and 128"
    assert cost.over(rows[:1]) == "none"


def test_the_certificate_page_shows_the_cost_file():
    """docs/CERTIFICATE.md's cost table is the file python -m construct.cli.cost wrote, for every algorithm and
    length the command measures, and its sentence names the rows above the target factor."""
    rows = json.loads((ROOT / "construct" / "results" / "cost.json").read_text())["rows"]
    assert {(r["algo"], r["n"]) for r in rows} == {(a, n) for a in cost.PARAMETERS for n in cost.LENGTHS}
    page = (ROOT / "docs" / "CERTIFICATE.md").read_text()
    assert cost.markdown(rows) in page
    flat = " ".join(page.split())
    assert f"Above {cost.TARGET}x: {cost.over(rows)}." in flat
    assert "python -m construct.cli.cost" in flat
