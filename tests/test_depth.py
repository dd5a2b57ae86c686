"""python -m construct.cli.depth: one row measured, one sized only, and the Markdown table of rows."""

from construct.cli import depth


def test_a_row_is_measured_with_its_certificate():
    row = depth.measure("gd", 2, d=2)
    assert row["run"] and row["layers"] == 21 and row["stored"] == 4  # T = 20 steps: T + 1 layers
    assert 0 < row["nonzero_parameters"] < row["parameters"]
    assert row["max_error"] < 1e-9 and row["certificate"] == "mechanism, numpy pass" and row["max_bound"] < 1e-6


def test_a_network_too_large_to_run_is_sized_only():
    row = depth.measure("ridge", 1024)
    assert not row["run"] and row["layers"] == 4097 and "GiB" in row["why_not"]


def test_the_markdown_table_has_a_line_per_row_and_says_what_was_not_run():
    rows = [depth.measure("gd", 2, d=2), depth.measure("ridge", 1024)]
    table = depth.markdown(rows, [])
    assert len(table.splitlines()) == 4 and "| gd | 2 | 21 | 4 |" in table
    assert "| ridge | 1024 | 4,097 | 6 |" in table and "above the limit of 4.00 GiB" in table
