"""The construction document is the project's own: it names the proofs behind its lemmas and errata, and nothing
cites a document the repository does not hold."""

import re
import subprocess
from pathlib import Path

import proofs

ROOT = Path(__file__).resolve().parent.parent
CONSTRUCTION = ROOT / "docs" / "CONSTRUCTION.md"


def test_the_construction_document_names_every_lemma_and_erratum_proof():
    text = CONSTRUCTION.read_text()
    missing = [p.name for p in proofs.PROOFS if p.group in ("lemmas", "errata") and f"`{p.name}`" not in text]
    assert not missing, f"docs/CONSTRUCTION.md does not name the proofs {missing}"


def test_no_file_cites_a_document_outside_the_repository():
    """Every Markdown file a source, test, notebook or document mentions by name is a file of the repository."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    held = {Path(name).name for name in tracked}
    cited = {(name, doc) for name in tracked if name.endswith((".py", ".md", ".toml", ".ipynb"))
             for doc in re.findall(r"[A-Za-z0-9_]+\.md\b", (ROOT / name).read_text(errors="replace"))}
    outside = sorted((name, doc) for name, doc in cited if doc not in held)
    assert not outside, f"cited but not in the repository (cite docs/CONSTRUCTION.md instead): {outside}"
