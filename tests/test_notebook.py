"""The notebook runs top to bottom in one namespace, without a Jupyter kernel, and is stored without outputs."""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "theorem1.ipynb"

# Each code cell, in order, in one namespace: what "Run all" does, minus the kernel. Agg draws off screen.
RUN_ALL = textwrap.dedent("""
    import json, sys
    cells = json.load(open(sys.argv[1]))["cells"]
    namespace = {"__name__": "__main__"}
    for k, cell in enumerate(cells):
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), f"{sys.argv[1]}, cell {k}", "exec"), namespace)
""")


def code_cells():
    return [cell for cell in json.loads(NOTEBOOK.read_text())["cells"] if cell["cell_type"] == "code"]


def test_the_notebook_is_stored_without_outputs():
    """Outputs are stripped, so the repository holds what the student runs, not a stale run of it."""
    dirty = [k for k, cell in enumerate(code_cells()) if cell["outputs"] or cell["execution_count"] is not None]
    assert not dirty, (f"code cells {dirty} of {NOTEBOOK.name} keep outputs; clear them (Jupyter: Edit > Clear "
                       "Outputs of All Cells) before committing")


def test_the_notebook_runs_top_to_bottom(tmp_path):
    pytest.importorskip("matplotlib")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUN_ALL, str(NOTEBOOK)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    assert seconds < 120, f"the notebook took {seconds:.0f} s"
    assert "every answer is within its certified bound" in done.stdout  # its last cell's checks passed
