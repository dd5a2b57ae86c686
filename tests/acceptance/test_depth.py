"""python -m construct.cli.depth: one row measured, one sized only, and the Markdown table of rows."""

import numpy as np

from construct.cli import depth

from support import ROOT


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


def test_the_depth_page_shows_the_results_file():
    """docs/DEPTH.md's tables are the file python -m construct.cli.depth wrote, and its reading of them (which
    network when) quotes that file's numbers."""
    import json

    results = json.loads((ROOT / "construct" / "results" / "depth.json").read_text())
    page = (ROOT / "docs" / "DEPTH.md").read_text()
    assert depth.markdown(results["rows"], results["box"]) in page
    row = {(r["algo"], r["n"]): r for r in results["rows"]}
    newton, rls = row["ridge_newton", 1024], row["ridge", 1024]
    flat = " ".join(page.split())
    assert f"ridge_newton answers n = 1024 in {newton['layers']} layers ({newton['stored']} stored)" in flat
    assert f"where RLS needs {rls['layers']:,}" in flat
    assert newton["max_error"] <= 1e-9 and newton["bound_at_least_error"]
    for n in (32, 128, 1024):
        assert row["ridge_newton", n]["bound_at_least_error"] and row["gd", n]["max_error"] < 1e-9
    # the page's reading: ridge_newton the faster pass from n = 128, RLS the smaller and more accurate at n = 32,
    # SGD's bound useless at n = 128
    assert row["ridge_newton", 128]["forward_s"] < row["ridge", 128]["forward_s"]
    short, newton32 = row["ridge", 32], row["ridge_newton", 32]
    assert short["parameters"] < 0.15 * newton32["parameters"]
    assert short["max_error"] < 1e-11 and 1e-11 < newton32["max_error"] < 1e-9
    assert row["sgd", 128]["max_bound"] > 1 and "RLS needs" in flat and "from n = 128 on it is also the faster" in flat


def test_the_readme_says_which_network_when_from_the_results_file():
    """README.md's sentence on which network to use when quotes construct/results/depth.json and reads it as
    docs/DEPTH.md does."""
    import json

    rows = {(r["algo"], r["n"]): r for r in json.loads((ROOT / "construct" / "results" / "depth.json").read_text())["rows"]}
    readme = " ".join((ROOT / "README.md").read_text().split())
    newton, rls = rows["ridge_newton", 1024], rows["ridge", 1024]
    assert f"`ridge_newton` for long ones, {newton['layers']} layers at n = 1024 where `ridge` needs {rls['layers']:,} " \
           "and does not fit in memory" in readme
    assert not rls["run"] and "GiB" in rls["why_not"]
    assert "(in float64: in float32 its error is above 1e-2," in readme
    assert min(rows["ridge_newton", n]["max_error_float32"] for n in (32, 128, 1024)) > 1e-2
    short, newton32 = rows["ridge", 32], rows["ridge_newton", 32]
    assert "the smaller and more accurate network at n = 32" in readme
    assert short["parameters"] < newton32["parameters"] and short["max_error"] < newton32["max_error"]
    assert "its certified bound is useless from n = 128 on" in readme and rows["sgd", 128]["max_bound"] > 1


def test_the_float32_error_is_taken_apart_by_register():
    """float32_alone with every register the network's is the float32 pass itself, bit for bit; with none, every
    register is the exact machine's (rounded to float32), so the answers are the closed form's to float32's
    rounding; the row carries the float32 column and, for ridge_newton, the error of each group alone."""
    from construct import Bounds, compile, programs, reference
    from construct.raw.prompt import tokens
    from construct.tasks import gaussian_tasks
    from construct.transformer import forward

    program = programs.ridge_newton(2, 3, 0.1)
    tasks = gaussian_tasks(2, 3, 2, seed=1)
    net = compile(program, Bounds.calibrate(program, tasks), dtype=np.float32)
    X, y, q = tasks[0]
    prompt = tokens(X, y, q)
    every = program.layout.names
    assert set().union(*depth.FLOAT32_ALONE.values()) == set(every) - {"y_in", "x_in", "pos"}  # each register once
    assert np.array_equal(depth.float32_alone(net, prompt, every), forward.forward(net.weights, prompt)[0::2])
    exact = reference.ridge_newton(X, y, q, **program.params)
    network = np.abs(forward.forward(net.weights, prompt)[0::2] - exact).max()
    assert np.abs(depth.float32_alone(net, prompt, ()) - exact).max() < min(1e-5, network / 10)
    row = depth.measure("ridge_newton", 2, d=2)
    assert set(row["float32_alone"]) == {*depth.FLOAT32_ALONE, depth.ROUNDED}
    assert row["max_error_float32"] > 1e3 * row["max_error"]
    assert f"| {row['max_error_float32']:.1e} |" in depth.markdown([row], [])
    table = depth.float32_markdown([row])
    residual = row["float32_alone"]["A' w1"]
    assert f"| A' w1 | {residual:.1e} |" in table
    assert f"| all of them (the float32 network) | {row['max_error_float32']:.1e} |" in table


def test_the_depth_page_reads_float32_and_the_dense_widths_from_the_results_file():
    """docs/DEPTH.md's float32 section (its table, the target not met where the other networks meet it, the
    groups of registers that carry more than 1e-3 alone) and its count of ridge_newton's dense parameters are
    the results file's."""
    import json

    results = json.loads((ROOT / "construct" / "results" / "depth.json").read_text())
    flat = " ".join((ROOT / "docs" / "DEPTH.md").read_text().split())
    row = {(r["algo"], r["n"]): r for r in results["rows"]}
    assert " ".join(depth.float32_markdown(results["rows"]).split()) in flat
    for n in (32, 128, 1024):  # the target, 1e-3 at every prefix, not met; float64 still within 1e-9
        assert 1e-2 < row["ridge_newton", n]["max_error_float32"] < 1e-1 and row["ridge_newton", n]["max_error"] < 1e-9
    assert all(r["max_error_float32"] < 1e-3 for r in results["rows"] if r["run"] and r["algo"] != "ridge_newton")
    alone = row["ridge_newton", 128]["float32_alone"]
    above = {"the averages A', b' and g = c b'", "the loop's P", "w1 = P g", "A' w1", "P A' w1"}
    assert {group for group, error in alone.items() if error > 1e-3} == above
    for n in (32, 128):  # the floor the averages set: alone, they already miss the target; float32 storage does not
        assert row["ridge_newton", n]["float32_alone"]["the averages A', b' and g = c b'"] > 1e-3
        assert row["ridge_newton", n]["float32_alone"][depth.ROUNDED] < 1e-5
    newton = row["ridge_newton", 32]
    d, S, D, m, dh, U = 8, newton["stored"], newton["residual_width"], newton["heads"], newton["head_size"], \
        newton["mlp_width"]
    dense = S * (4 * m * D * dh + 2 * D * U)
    assert U == 3 * (2 * d**3 + 4 * d**2) and dense <= newton["parameters"] < 1.01 * dense
    others = sorted(newton["live_units"])[:-2]
    assert sorted(newton["live_units"])[-2:] == [U, U] and len(others) == S - 2
    assert (f"{S} stored layers of D = {D} residual rows, {m} heads of {dh} and U = {U:,} GeLU units" in flat
            and f"= {dense:,} of the {newton['parameters']:,} at n = 32" in flat
            and f"the other {S - 2} at most {max(others)}" in flat)


def test_rounded_averages_is_ridge_from_float32_storage():
    """``rounded_averages`` (the float32 table's storage row) predicts ridge at every prefix from the averages
    rounded to float32: within float32's rounding of ridge, and not exactly it where a value is not a float32."""
    from construct import reference

    X, y, q = np.array([[1.0, 0.0], [0.5, 2.0], [0.1, 0.3]]), np.array([1.0, -1.0, 0.7]), np.array([0.2, 0.9])
    ridge = reference.ridge(X, y, q, 0.1)
    rounded = depth.rounded_averages(X, y, q, 0.1)
    assert rounded.shape == ridge.shape == (4,) and rounded[0] == ridge[0] == 0.0
    np.testing.assert_allclose(rounded, ridge, rtol=1e-5, atol=0)
    assert np.any(rounded != ridge)
    exact = depth.rounded_averages(np.array([[1.0]]), np.array([2.0]), np.array([4.0]), 1.0)  # all float32 values
    np.testing.assert_allclose(exact, [0.0, 4.0], rtol=1e-15, atol=0)
