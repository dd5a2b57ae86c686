"""The construction document is the project's own: it names the proofs behind its lemmas and errata, the paper's
definition, lemmas and theorems, and the paper's rows beside ours; every document gives each claim the status
proofs/status.py gives it; nothing cites a document or a path under tests/ the repository does not hold; and no test
module imports another."""

import ast
import json
import re
import subprocess
from pathlib import Path

import proofs

from support import ROOT

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


# -- the paper's numbering, its rows, and every claim's status -------------------------------------------------

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "proofs" / "WALKTHROUGH.md"]


def section(text: str, heading: str) -> str:
    """The Markdown section that starts with ``heading`` (up to the next heading of its level)."""
    start = text.index(heading)
    level = heading.split(" ", 1)[0]
    following = re.search(rf"^{level} ", text[start + len(heading):], flags=re.M)
    return text[start:start + len(heading) + following.start()] if following else text[start:]


def test_the_construction_document_states_the_papers_definition_lemmas_and_theorems():
    table = section(CONSTRUCTION.read_text(), "## 0. The paper's definition, lemmas and theorems")
    named = re.findall(r"^\| \*\*(Definition \d|Lemma \d|Theorem \d)\*\*[^|]*\| ([^|]{40,}) \|", table, flags=re.M)
    assert [name for name, _ in named] == ["Definition 1", *(f"Lemma {k}" for k in range(1, 9)), "Theorem 1",
                                          "Theorem 2"]
    raw = section(CONSTRUCTION.read_text(), "## 4. The RAW instructions")
    assert re.search(r"^\| RAW step \| `mov` \| `aff` \| `avg` \| `mul` \| `div` \|$", raw, flags=re.M), "no RAW table"
    for step in ("read (attention)", "elementwise operation", "write (linear)"):
        assert f"| {step} |" in raw


def test_the_construction_document_has_the_papers_rows_beside_ours():
    """Sections 6 and 7 hold the tables ``proofs/paper_layout.py`` derives (and the sentence on the two counts)."""
    from proofs import paper_layout

    text = CONSTRUCTION.read_text()
    for name, heading in zip(paper_layout.CHAINS, ("## 6. Theorem 1", "## 7. Theorem 2")):
        part = section(text, heading)
        assert "\n".join(paper_layout.markdown(name)) in part, f"{heading}: the table is not paper_layout's"
        assert paper_layout.counts(name) in " ".join(part.split()), f"{heading}: the counts are not paper_layout's"


def test_the_construction_document_lists_every_proof_under_its_status():
    from proofs.status import ALL, LIMIT, SIZES, STATUS

    part = section(CONSTRUCTION.read_text(), "## 10. What is proved, and how far")
    for status in (ALL, SIZES, LIMIT):
        bullet = re.search(rf"^\* \*\*{status}\*\*(.*?)(?=^\* |\Z)", part, flags=re.M | re.S).group(1)
        listed = set(re.findall(r"`([a-z0-9_]+)`", bullet)) & set(STATUS)
        assert listed == {name for name, s in STATUS.items() if s == status}, status


def test_the_documents_quote_the_measured_kappa():
    from proofs import kappa

    quoted = " ".join(kappa.quoted().split())
    for path in (CONSTRUCTION, ROOT / "proofs" / "WALKTHROUGH.md"):
        assert quoted in " ".join(path.read_text().split()), f"{path.name} does not quote proofs/kappa.json"



def labelled_claims(text: str) -> list[tuple[str, str, str]]:
    """(proof, the status a sentence gives it, the sentence): every status phrase, read as the label of the proof
    named nearest before it in the same sentence or table cell."""
    from proofs.status import ALL, LIMIT, MEASURED, SIZES, STATUS

    phrase = re.compile("|".join(re.escape(s) for s in (ALL, SIZES, LIMIT, MEASURED)))
    name = re.compile(r"\b(" + "|".join(sorted(STATUS, key=len, reverse=True)) + r")\b")
    found = []
    for sentence in re.split(r"(?<=\.)\s|\n|\|", text):
        for label in phrase.finditer(sentence):
            before = name.findall(sentence[:label.start()])
            if before:
                found.append((before[-1], label.group(0), sentence.strip()))
    return found


def test_no_document_gives_a_claim_another_status():
    """README.md, docs/*.md and the walkthrough: a proof named and then labelled in one sentence carries its label
    from proofs/status.py ("proved for all values" only for what is)."""
    from proofs.status import STATUS

    wrong = [(path.name, proof, label, sentence[:160]) for path in DOCUMENTS
             for proof, label, sentence in labelled_claims(path.read_text()) if STATUS[proof] != label]
    assert not wrong, "labels that are not proofs/status.py's:\n" + "\n".join(map(str, wrong))
    labelled = {proof for path in DOCUMENTS for proof, _, _ in labelled_claims(path.read_text())}
    assert {"theorem1_sgd_step", "sherman_morrison_identity", "layer_programs", "gelu_product_erf"} <= labelled


def test_a_wrong_label_is_found():
    text = ("`theorem1_sgd_step` (proved for all values: any d). `layer_mov` (proved for all values). "
            "Lemma `gelu_product_erf` (proved in the ideal limit).")
    assert [(p, label) for p, label, _ in labelled_claims(text)] == [
        ("theorem1_sgd_step", "proved for all values"), ("layer_mov", "proved for all values"),
        ("gelu_product_erf", "proved in the ideal limit")]


def test_the_proofs_page_counts_the_proofs():
    match = re.search(r"`python -m proofs` runs (\d+) sympy proofs", (ROOT / "docs" / "PROOFS.md").read_text())
    assert match and int(match.group(1)) == len(proofs.PROOFS)


# -- what every page may say, and where it may point ----------------------------------------------------------

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# words about how the project was built, not about what it is (a measurement's context is "a 2-core machine")
BUILDING = re.compile(r"\bround \d|\bround 1's|\bsessions?\b|\bthis (?:[\w-]+ )?machine\b|\bso far\b", flags=re.I)


def prose(text: str) -> str:
    """``text`` without its code blocks and inline code (quoted program output may say what it likes)."""
    return re.sub(r"`[^`\n]*`", "", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S))


def test_no_page_speaks_of_how_the_project_was_built():
    found = [(page.name, text[max(m.start() - 60, 0):m.end() + 20]) for page in PAGES
             for text in [" ".join(prose(page.read_text()).split())] for m in BUILDING.finditer(text)]
    assert not found, "say what the project is, not how it was built:\n" + "\n".join(map(str, found))


def links(text: str) -> list[str]:
    """The relative targets of the Markdown links of ``text`` (no URL), each ``file#anchor``, ``file`` or ``#anchor``."""
    return [t for t in re.findall(r"\]\(([^)\s]+)\)", prose(text)) if not re.match(r"[a-z]+:", t)]


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown page: lower case, punctuation dropped, spaces hyphens."""
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
            for heading in re.findall(r"^#+ (.+?)\s*$", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S), flags=re.M)}


def test_every_relative_link_points_at_a_file_of_the_repository():
    broken = []
    for page in PAGES:
        for target in links(page.read_text()):
            name, _, anchor = target.partition("#")
            path = page.parent / name if name else page
            if not path.exists() or (anchor and path.suffix == ".md" and anchor not in anchors(path.read_text())):
                broken.append((page.name, target))
    assert not broken, f"links to nothing: {broken}"


# -- the test suite's layout (docs/TESTING.md) -------------------------------------------------------------------

def cited_test_paths(text: str) -> set[str]:
    """The paths under tests/ that ``text`` names (``tests/compiler/test_compiler.py``, ``tests/export/data``)."""
    return set(re.findall(r"(?<![\w/.])tests/[\w./]*\w", text))


def test_every_path_under_tests_that_a_file_names_is_in_the_repository():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    missing = sorted((name, path) for name in tracked if name.endswith((".py", ".md", ".toml", ".ipynb"))
                     for path in cited_test_paths((ROOT / name).read_text(errors="replace"))
                     if not (ROOT / path).exists())
    assert not missing, f"named but not in the repository (the tests are grouped in folders): {missing}"


def imported_test_modules(source: str) -> set[str]:
    """The test modules (``test_*``) that a module's ``source`` imports."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return {name for name in names if any(part.startswith("test_") for part in name.split("."))}


def test_no_test_module_imports_another():
    """What more than one test module uses is in tests/support.py."""
    found = {str(path.relative_to(ROOT)): sorted(imported)
             for path in sorted((ROOT / "tests").rglob("*.py"))
             for imported in [imported_test_modules(path.read_text())] if imported}
    assert not found, f"test modules importing test modules (move what they share to tests/support.py): {found}"


def duration(seconds: float) -> str:
    """A folder's time as docs/TESTING.md's table states it: seconds below 90 s, minutes above."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def test_the_testing_page_lists_every_folder_with_the_times_files_counts_and_times():
    times = json.loads((ROOT / "tests" / "times.json").read_text())
    assert times["command"] == "python -m pytest -n 1 --folder-times tests/times.json" and times["exit_status"] == 0
    folders = {path.parent.name for path in (ROOT / "tests").glob("*/test_*.py")}
    assert set(times["folders"]) == folders, "a folder of tests/ is not in tests/times.json: rerun its command"
    page = (ROOT / "docs" / "TESTING.md").read_text()
    rows = re.findall(r"^\| `tests/(\w+)/` \| [^|]+ \| ([\d,]+) \| ([^|]+) \|$", page, flags=re.M)
    assert sorted(folder for folder, _, _ in rows) == sorted(folders)
    for folder, tests, time in rows:
        measured = times["folders"][folder]
        assert (tests, time.strip()) == (f"{measured['tests']:,}", duration(measured["seconds"])), folder
    cores = times["machine"].split(", ")[1].split()[0]  # "x86_64, 2 cores, Python ..."
    assert f"of a {cores}-core machine" in " ".join(page.split()), "the page names another machine than the file's"


def test_the_page_checks_find_what_they_guard():
    assert (duration(59.9), duration(89.4), duration(103.9), duration(293.4)) == ("60 s", "89 s", "1.7 min", "4.9 min")
    t = "tests"  # spelled apart, so that this file names no path under tests/ that is not there
    assert cited_test_paths(f"`{t}/test_x.py`, {t}/raw/test_y.py's, construct/{t}/z.py, `{t}/`, {t}/data.") \
        == {f"{t}/test_x.py", f"{t}/raw/test_y.py", f"{t}/data"}
    assert imported_test_modules("import test_a\nfrom test_b import c\nfrom support import d\nimport os\n"
                                 "def f():\n    from test_e import g\n") == {"test_a", "test_b", "test_e"}
    assert BUILDING.search("as round 1 ran it") and BUILDING.search("measured on this 2-core machine")
    assert BUILDING.search("not tried in this session") and BUILDING.search("What is here so far")
    assert not BUILDING.search(prose("on a 2-core machine; `round(x, 2)`; rounding; round-to-nearest"))
    assert links("[a](docs/GUIDE.md#x), [b](https://b.org), [c](#c), `[d](CLI.md)`") == ["docs/GUIDE.md#x", "#c"]
    assert anchors("# A page\n## 10. What `construct.load` checks\n```\n# a comment\n```") == {
        "a-page", "10-what-constructload-checks"}


def status_sentences(text: str) -> list[str]:
    """The sentences and table cells of a page, each on one line, that give a status."""
    from proofs.status import ALL, LIMIT, MEASURED, SIZES

    flat = " ".join(text.split())
    return [s for s in re.split(r"(?<=\.)\s|\|", flat)
            if any(label in s for label in (ALL, SIZES, LIMIT)) or f"**{MEASURED}**" in s]


def unsupported_labels(text: str) -> list[str]:
    """The status sentences of a page that name no proof ``python -m proofs`` runs with that status ("proved ..."),
    or no test file of the repository or ``python -m`` command ("**measured**"); the page's legend is exempt."""
    from proofs.status import ALL, LIMIT, MEASURED, SIZES, STATUS

    registered = {p.name for p in proofs.PROOFS}
    tests = {path.name for path in (ROOT / "tests").rglob("test_*.py")}
    bad = []
    for sentence in status_sentences(text):
        if sentence.startswith("Each claim below carries its status"):
            continue
        named = set(re.findall(r"`([a-z0-9_]+)`", sentence)) & registered
        for label in (ALL, SIZES, LIMIT):
            if label in sentence and not any(STATUS[name] == label for name in named):
                bad.append(sentence)
        if f"**{MEASURED}**" in sentence:
            files = re.findall(r"tests/(?:\w+/)*(test_\w+\.py)", sentence)
            if not (files and set(files) <= tests) and "python -m " not in sentence:
                bad.append(sentence)
    return bad


def test_every_status_on_the_depth_page_names_its_proof_or_test():
    """docs/DEPTH.md: a claim called proved names, in its sentence, a registered proof with that status; a claim
    called measured names the test file or the command that measures it."""
    page = (ROOT / "docs" / "DEPTH.md").read_text()
    assert len(status_sentences(page)) >= 12
    assert not unsupported_labels(page), "\n".join(unsupported_labels(page))


def test_a_label_without_its_proof_or_test_is_found():
    assert unsupported_labels("The limit is exact (proved for all values). It holds (`newton_schulz_product`, "
                              "proved at the sizes named). It is fast (**measured**). It is slow (**measured** by "
                              "`tests/" "test_no_such_file.py`).") == [  # split: the path test reads this file
        "The limit is exact (proved for all values).",
        "It holds (`newton_schulz_product`, proved at the sizes named).", "It is fast (**measured**).",
        "It is slow (**measured** by `tests/" "test_no_such_file.py`)."]
    assert not unsupported_labels("It holds (`newton_schulz_product`, proved for all values). It is fast "
                                  "(**measured** by `tests/programs/test_gd.py`).")
