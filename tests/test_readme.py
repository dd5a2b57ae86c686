"""The README's tour runs as written (its python blocks are doctests)."""

import doctest
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_examples_run_as_shown():
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python examples"
    # one doctest for all blocks: later blocks use names the earlier ones define
    test = doctest.DocTestParser().get_doctest("\n".join(blocks), {}, "README", str(README), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0, f"{runner.failures} README example(s) print something else"


def test_readme_has_the_two_commands():
    lines = [line for line in README.read_text().splitlines() if line.endswith(("# demo", "# tests"))]
    assert [line.rsplit("# ", 1)[1] for line in lines] == ["demo", "tests"]


def _table(text: str, header: str) -> list[list[str]]:
    """The rows of the markdown table whose header line starts with ``header``, as lists of cells."""
    lines = text.splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def _one_digit(value: float) -> float:
    return float(f"{value:.0e}")


def test_readme_accuracy_tables_are_the_results_file():
    import json

    results = json.loads((README.parent / "construct" / "results" / "accuracy.json").read_text())["summary"]
    text = README.read_text()
    layers = {row[0]: row[-1] for row in _table(text, "| instruction | attention | MLP |")}
    assert set(layers) == set(results["layers"])
    for kind, cell in layers.items():
        assert float(cell) == _one_digit(results["layers"][kind]["relative"]), kind
        assert results["layers"][kind]["of_bound"] <= 1, f"{kind}: a layer above its predicted bound"
    end = {row[0]: row[1:] for row in _table(text, "| | SGD | ridge |")}
    for dtype in ("float64", "float32"):
        for algo, cell in zip(("sgd", "ridge"), end[dtype]):
            assert float(cell.split()[0]) == _one_digit(results["end_to_end"][algo][dtype]), (dtype, algo)


def test_readme_constants_are_the_compilers():
    import numpy as np

    from construct.mechanisms import scales

    text = README.read_text()
    f64 = np.float64
    assert f"N_att = {scales.attention_sharpness(f64):.1f} (leak {scales.attention_leak(scales.attention_sharpness(f64)):.0e})" in text
    assert f"P = {scales.product_scale(f64):.1f}" in text
    assert f"offset B = {scales.bypass_offset(f64):.2f}" in text


def largest_ratio(value: float) -> str:
    """An error / bound ratio as the README prints it: two digits, or six where two would round it up to 1."""
    return f"{value:.2g}" if value < 0.99 else f"{value:.6f}"


def certificate_cells(summary: dict) -> dict[str, str]:
    """The README's certificate table, as the results file of ``python -m construct.cli.certify`` gives it."""
    p = summary["ratio_percentiles"]
    return {
        "tasks": f"{summary['tasks']:,}", "answers": f"{summary['answers']:,}",
        "errors above their bound": f"{summary['violations']:,}",
        "largest error / bound": largest_ratio(summary["worst_error_over_bound"]),
        "bound / error: median (10th, 90th percentile)": f"{p['p50']:.0f} ({p['p10']:.0f}, {p['p90']:.0f})",
        "answers above the default tolerance": f"{summary['above_default_tolerance']:,}",
        "answers with an infinite bound": f"{summary['unbounded_answers']:,}",
        "tasks refused as outside their domain": f"{summary['refused_outside_domain']:,}",
    }


CERTIFICATE_ROWS = {"answer numpy": "answer (the smaller bound), numpy", "mechanism numpy": "mechanism, numpy",
                    "residual numpy": "residual, numpy", "residual jax": "residual, JAX",
                    "residual hf": "residual, Hugging Face", "residual tl": "residual, TransformerLens"}


def certificate_rows(summary: dict) -> dict[str, list[str]]:
    """The README's table per certificate and backend, as the results file gives it."""
    out = {}
    for name, row in summary["certificates"].items():
        spread = (f"{row['p50']:.3g} ({row['p10']:.3g}, {row['p90']:.3g}, {row['p99']:.3g})" if "p50" in row
                  else "-")
        out[CERTIFICATE_ROWS[name]] = [f"{row['answers']:,}", f"{row['covered']:,}", f"{row['violations']:,}",
                                       largest_ratio(row["worst_error_over_bound"]), spread]
    return out


def benchmark_rows(results: list[dict]) -> dict[str, list[str]]:
    """The README's benchmark table, as the results file of ``python -m construct.cli.benchmark --out`` gives it."""
    rows = {}
    for config in results:
        for layout in ("paper", "fused"):
            r = config[layout]
            rows[f"{r['algo']} {layout}"] = [
                f"{r['layers']} ({r['stored']})", f"{r['parameters'] / 1e6:.2f}M", f"{r['peak_mb']:.0f}",
                f"{r['numpy_peak_mb']:.0f}",
                f"{r['numpy_s_per_task']:.3g}", f"{r['dense_s_per_task']:.3g}", f"{r['certified_s_per_task']:.3g}",
                f"{r['jax_s_per_task']:.2g}", f"{r['max_error_float64']:.1e}", f"{r['max_bound_float64']:.1e}"]
    return rows


def benchmark_ratios(results: list[dict]) -> str:
    """The README's sentence on what fusion and tying save, from the same file."""
    parts = []
    for config in results:
        x = config["paper_over_fused"]
        parts.append(f"{config['algo']}: {x['layers']:.1f}x the layers, {x['parameters']:.1f}x the parameters, "
                     f"{x['peak_mb']:.1f}x the peak memory and {x['numpy_s_per_task']:.1f}x the numpy time "
                     f"({x['round_1_pass']:.1f}x with round 1's dense pass)")
    return "The paper layout over the fused: " + "; ".join(parts) + "."


def benchmark_certificates(results: list[dict]) -> str:
    """The README's sentence on the fused networks' certificates and refusals, from the same file."""
    parts = []
    for config in results:
        f = config["fused"]
        scales = []
        for s, r in f["refusal"].items():
            scales.append(f"s = {s}: compile refuses the box" if "compile_refused" in r else
                          f"s = {s}: {r['refused']:.0%} refused ({r['outside_box']} outside the box, "
                          f"{r['bound_above_tolerance']} for their bound)")
        parts.append(f"{config['algo']}: bound median {f['median_bound_float64']:.1e}, worst "
                     f"{f['max_bound_float64']:.1e}, error at most {f['max_exact_error_float64']:.1e}, bound / error "
                     f"median {f['median_bound_over_error']:.3g}; " + ", ".join(scales))
    return "Fused networks: " + "; ".join(parts) + "."


def test_readme_certificate_and_benchmark_numbers_are_the_results_files():
    import json

    results = README.parent / "construct" / "results"
    text = README.read_text()
    summary = json.loads((results / "certificate.json").read_text())["summary"]
    assert summary["violations"] == 0
    cells = {row[0]: row[1] for row in _table(text, "| certificate run | |")}
    assert cells == certificate_cells(summary)
    rows = {row[0]: row[1:] for row in _table(text, "| certificate, backend |")}
    assert rows == certificate_rows(summary) and len(rows) == 6
    rows = summary["certificates"]
    p50 = rows["mechanism numpy"]["p50"]
    assert f"a median factor of {p50:.0f} means a bound of 1e-10 for an error of about {1e-10 / p50:.0e}" in " ".join(text.split())
    assert f"(median factor {rows['residual numpy']['p50']:.3g} on numpy)" in " ".join(text.split())
    residual = max(row["worst_error_over_bound"] for name, row in rows.items() if name.startswith("residual"))
    assert (f"The largest error is {largest_ratio(rows['mechanism numpy']['worst_error_over_bound'])} of its mechanism "
            f"bound and {largest_ratio(residual)} of its residual bound") in " ".join(text.split())
    complete = json.loads((results / "certificate.json").read_text())["complete"]
    assert complete == ("a run stopped after" not in text), "the README says whether the certify run was complete"
    bench = json.loads((results / "benchmark.json").read_text())
    table = {row[0]: row[1:] for row in _table(text, "| d = 8, n = 32 | layers (stored) |")}
    assert table == benchmark_rows(bench)
    assert benchmark_ratios(bench) in " ".join(text.split())
    assert benchmark_certificates(bench) in " ".join(text.split())
