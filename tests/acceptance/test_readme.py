"""The README and the pages of docs/ as written: their python blocks run as doctests, and the numbers they quote
are the results files'."""

import doctest
import re

import pytest

from support import ISSUE_CASE, ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"
# the pages whose python blocks are doctests (docs/TESTING.md's blocks are scripts: tests/kit/test_testing.py runs them)
DOCTESTED = [README, *(DOCS / f"{name}.md" for name in ("GUIDE", "COMPILER", "CERTIFICATE", "WEIGHTS", "RUNTIMES"))]


@pytest.mark.parametrize("page", DOCTESTED, ids=lambda page: page.name)
def test_the_python_examples_run_as_shown(page):
    text = page.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, f"{page.name} has no python examples"
    # one doctest for all blocks of a page: later blocks use names the earlier ones define
    test = doctest.DocTestParser().get_doctest("\n".join(blocks), {}, page.name, str(page), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0, f"{runner.failures} example(s) of {page.name} print something else"


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


def test_the_compiler_pages_accuracy_tables_are_the_results_file():
    import json

    results = json.loads((ROOT / "construct" / "results" / "accuracy.json").read_text())["summary"]
    text = (DOCS / "COMPILER.md").read_text()
    layers = {row[0]: row[-1] for row in _table(text, "| instruction | attention | MLP |")}
    assert set(layers) == set(results["layers"])
    for kind, cell in layers.items():
        assert float(cell) == _one_digit(results["layers"][kind]["relative"]), kind
        assert results["layers"][kind]["of_bound"] <= 1, f"{kind}: a layer above its predicted bound"
    end = {row[0]: row[1:] for row in _table(text, "| | SGD | ridge |")}
    for dtype in ("float64", "float32"):
        for algo, cell in zip(("sgd", "ridge"), end[dtype]):
            assert float(cell.split()[0]) == _one_digit(results["end_to_end"][algo][dtype]), (dtype, algo)


def test_the_compiler_pages_constants_are_the_compilers():
    import numpy as np

    from construct.mechanisms import scales

    text = (DOCS / "COMPILER.md").read_text()
    f64 = np.float64
    assert f"N_att = {scales.attention_sharpness(f64):.1f} (leak {scales.attention_leak(scales.attention_sharpness(f64)):.0e})" in text
    assert f"P = {scales.product_scale(f64):.1f}" in text
    assert f"offset B = {scales.bypass_offset(f64):.2f}" in text


def largest_ratio(value: float) -> str:
    """An error / bound ratio as docs/CERTIFICATE.md prints it: two digits, or six where two would round it up to 1."""
    return f"{value:.2g}" if value < 0.99 else f"{value:.6f}"


def certificate_cells(summary: dict) -> dict[str, str]:
    """docs/CERTIFICATE.md's table, as the results file of ``python -m construct.cli.certify`` gives it."""
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
    """docs/CERTIFICATE.md's table per certificate and backend, as the results file gives it."""
    out = {}
    for name, row in summary["certificates"].items():
        spread = (f"{row['p50']:.3g} ({row['p10']:.3g}, {row['p90']:.3g}, {row['p99']:.3g})" if "p50" in row
                  else "-")
        out[CERTIFICATE_ROWS[name]] = [f"{row['answers']:,}", f"{row['covered']:,}", f"{row['violations']:,}",
                                       largest_ratio(row["worst_error_over_bound"]), spread]
    return out


def benchmark_rows(results: list[dict]) -> dict[str, list[str]]:
    """docs/BENCHMARK.md's table, as the results file of ``python -m construct.cli.benchmark --out`` gives it."""
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
    """docs/BENCHMARK.md's sentence on what fusion and tying save, from the same file."""
    parts = []
    for config in results:
        x = config["paper_over_fused"]
        parts.append(f"{config['algo']}: {x['layers']:.1f}x the layers, {x['parameters']:.1f}x the parameters, "
                     f"{x['peak_mb']:.1f}x the peak memory and {x['numpy_s_per_task']:.1f}x the numpy time "
                     f"({x['round_1_pass']:.1f}x with the dense pass)")
    return "The paper layout over the fused: " + "; ".join(parts) + "."


def benchmark_certificates(results: list[dict]) -> str:
    """docs/BENCHMARK.md's sentence on the fused networks' certificates and refusals, from the same file."""
    parts = []
    for config in results:
        f = config["fused"]
        scales = []
        for s, r in f["refusal"].items():
            if "compile_refused" in r:
                scales.append(f"s = {s}: compile refuses the box")
            elif "outside_box" in r:  # compiled for the box
                scales.append(f"s = {s}: {r['refused']:.0%} refused ({r['outside_box']} outside the box, "
                              f"{r['bound_above_tolerance']} for their bound)")
            else:  # the box admits an expanding SGD step: each task on its own run
                scales.append(f"s = {s}: {r['refused']:.0%} refused on each task's own run ({r['run_grows']} runs "
                              f"that grow, {r['bound_above_tolerance']} for their bound)")
        parts.append(f"{config['algo']}: bound median {f['median_bound_float64']:.1e}, worst "
                     f"{f['max_bound_float64']:.1e}, error at most {f['max_exact_error_float64']:.1e}, bound / error "
                     f"median {f['median_bound_over_error']:.3g}; " + ", ".join(scales))
    return "Fused networks: " + "; ".join(parts) + "."


def benchmark_reading(results: list[dict]) -> list[str]:
    """docs/BENCHMARK.md's reading of the ridge networks' sizes, peaks and costs, and docs/CERTIFICATE.md's of SGD's
    bound, from the same file."""
    ridge = next(config for config in results if config["algo"] == "ridge")
    sgd = next(config for config in results if config["algo"] == "sgd")
    f, paper = ridge["fused"], ridge["paper"]
    return [f"the fused network's own weights are {f['parameters'] * 8 / 1e6:.0f} MB at ridge d = 8 "
            f"({f['parameters'] / 1e6:.1f}M float64)",
            f"certified answers included, peaks at {f['numpy_peak_mb']:.0f} MB; the whole process peaks at "
            f"{f['peak_mb']:.0f} MB",
            f"The paper layout's {paper['parameters'] / 1e6:.0f}M parameters take {paper['parameters'] * 8 / 1e9:.1f} GB",
            f"the fused network answers {ridge['paper_over_fused']['round_1_pass']:.1f}x faster",
            f"A certified answer costs about {f['certified_s_per_task'] / f['dense_s_per_task']:.0f} dense passes",
            f"within a median factor of {f['median_bound_over_error']:.3g} of the error"], \
        f"SGD's mechanism bound does not grow this way ({sgd['fused']['max_bound_float64']:.1e} at d = 8, n = 32"


def test_the_certificate_and_benchmark_pages_numbers_are_the_results_files():
    import json

    results = ROOT / "construct" / "results"
    text = (DOCS / "CERTIFICATE.md").read_text()
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
    assert complete == ("a run stopped after" not in text), "docs/CERTIFICATE.md says whether the certify run was complete"
    bench = json.loads((results / "benchmark.json").read_text())
    text = (DOCS / "BENCHMARK.md").read_text()
    table = {row[0]: row[1:] for row in _table(text, "| d = 8, n = 32 | layers (stored) |")}
    assert table == benchmark_rows(bench)
    assert benchmark_ratios(bench) in " ".join(text.split())
    assert benchmark_certificates(bench) in " ".join(text.split())
    reading, sgd_bound = benchmark_reading(bench)
    assert [claim for claim in reading if claim not in " ".join(text.split())] == []
    assert sgd_bound in " ".join((DOCS / "CERTIFICATE.md").read_text().split())


def test_readme_box_too_wide_for_its_lam_is_the_networks():
    """COMPILER.md's case of a task inside a box too wide for its lam: R^2/lam, and the divisor the network
    computes below its floor 0.99 (its value depends on the order of the sums, so the page names none;
    tests/raw/test_domain.py holds the refusal itself)."""
    import numpy as np
    import pytest

    import construct
    from construct import programs

    X, y, q = ISSUE_CASE
    net = construct.compile(programs.ridge(1, 6, 1e-3), x_max=7000.0, y_max=float(np.abs(y).max()))
    with pytest.raises(construct.DomainError, match=r"divisor 'den1' fell to (\S+) ") as refused:
        net.predict(X, y, q, tolerance=None)
    computed = float(re.search(r"fell to (\S+) ", str(refused.value)).group(1))
    ratio = f"{7000.0**2 / 1e-3:.1e}".replace("e+", "e")
    assert computed < 0.99
    sentence = f"`|x| <= 7000`: `R^2/lam = {ratio}`, the divisor computed below its floor 0.99"
    assert sentence in " ".join((DOCS / "COMPILER.md").read_text().split())
