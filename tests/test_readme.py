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
