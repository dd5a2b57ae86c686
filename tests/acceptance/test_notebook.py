"""The notebook runs top to bottom in one namespace, without a Jupyter kernel, is stored without outputs, and its
rendered page (docs/THEOREM1.md, ``python -m proofs.notebook``) is what it gives now."""

import json
import os
import re
import subprocess
import sys
import time

import pytest

from proofs import notebook

from support import ROOT

NOTEBOOK = ROOT / "examples" / "theorem1.ipynb"


def code_cells():
    return [cell for cell in json.loads(NOTEBOOK.read_text())["cells"] if cell["cell_type"] == "code"]


def test_the_notebook_is_stored_without_outputs():
    """Outputs are stripped, so the repository holds what the student runs, not a stale run of it."""
    dirty = [k for k, cell in enumerate(code_cells()) if cell["outputs"] or cell["execution_count"] is not None]
    assert not dirty, (f"code cells {dirty} of {NOTEBOOK.name} keep outputs; clear them (Jupyter: Edit > Clear "
                       "Outputs of All Cells) before committing")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """``python -m proofs.notebook --out DIR``: each code cell, in order, in one namespace ("Run all" minus the
    kernel), Agg drawing off screen; the page and its figures written to DIR."""
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("rendered")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "proofs.notebook", "--out", str(out)], capture_output=True,
                          text=True, env=env, cwd=out, timeout=300)
    return done, time.perf_counter() - start, out


def test_the_notebook_runs_top_to_bottom(rendered):
    done, seconds, out = rendered
    assert done.returncode == 0, done.stderr
    assert seconds < 120, f"the notebook took {seconds:.0f} s"
    page = (out / notebook.PAGE.name).read_text()
    assert "every answer is within its certified bound" in page  # its last cell's checks passed


def test_the_rendered_page_is_current(rendered):
    """docs/THEOREM1.md is the notebook as it runs now: every cell, every printed word and number (those a float64
    run decides compared as ``notebook.differences`` says), and one figure per figure drawn."""
    done, _, out = rendered
    assert done.returncode == 0, done.stderr
    fresh, committed = (out / notebook.PAGE.name).read_text(), notebook.PAGE.read_text()
    found = notebook.differences(committed, fresh)
    assert not found, "docs/THEOREM1.md is out of date (run python -m proofs.notebook):\n" + "\n".join(found[:5])
    linked = re.findall(rf"\]\({notebook.FIGURES}/([^)]+\.png)\)", committed)
    assert linked and linked == re.findall(rf"\]\({notebook.FIGURES}/([^)]+\.png)\)", fresh)
    figures = notebook.PAGE.parent / notebook.FIGURES
    assert sorted(p.name for p in figures.glob("*.png")) == sorted(linked), "the figures are not the page's"
    assert all((figures / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in linked)


def test_a_changed_output_is_a_difference():
    """What ``differences`` lets pass and what it does not: a float64 run's rounding-level numbers, and nothing else."""
    page = "```text\nerror 1.0e-14, answer -0.193899999999971, scale 44.6446\nlayer 4 writes grad\n```\n"
    assert notebook.differences(page, page.replace("1.0e-14", "4.0e-14").replace("971", "925")) == []
    assert notebook.differences(page, page.replace("44.6446", "44.6447"))
    assert notebook.differences(page, page.replace("writes", "wrote"))
    assert notebook.differences(page, page + "one more line\n")
