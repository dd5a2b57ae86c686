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

    from construct.compiler import scales

    text = README.read_text()
    f64 = np.float64
    assert f"N_att = {scales.attention_sharpness(f64):.1f} (leak {scales.attention_leak(scales.attention_sharpness(f64)):.0e})" in text
    assert f"P = {scales.product_scale(f64):.1f}" in text
    assert f"offset B = {scales.bypass_offset(f64):.2f}" in text
