"""The property-testing kit (construct.testing): every registry entry passes it, and it fails when a level is wrong.

The kit's own guards are checked by breaking each thing it guards: a closed
form off by 1e-6, network answers moved beyond their bounds, bounds shrunk
below the errors, refusals inside the box; and the strategies by what each
family promises.
"""

import re
import subprocess
import sys
import tomllib

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import construct
from construct import exact, programs, reference
from construct.compiler import CompiledNetwork, DomainError
from construct.raw.prompt import Y_IN, input_registers
from construct.testing import (
    PropertyFailure,
    Task,
    cancelling_label_tasks,
    check_program,
    near_collinear_tasks,
    regression_tasks,
    repeated_row_tasks,
    tasks,
    underdetermined_tasks,
    zero_row_tasks,
)

from support import ROOT

FEW = settings(max_examples=6)  # the current profile's other settings ("ci": derandomized)
UNSHRUNK = settings(FEW, phases=[Phase.explicit, Phase.generate])  # a failure as found: shrinking takes seconds


BUILT_FOR = {"x_norm": 30.0}  # a parameter that declares the inputs' box: one that holds every task the kit draws


def registry_program(name: str, d: int = 2, n: int = 3):
    """The entry's program at a small size, vector parameters (w0) away from 0, built for the kit's inputs."""
    algorithm = programs.get(name)
    given = {p.name: np.linspace(-1.0, 1.0, d) for p in algorithm.parameters if p.vector}
    given.update({p.name: BUILT_FOR[p.name] for p in algorithm.parameters if p.name in BUILT_FOR})
    return algorithm.program(d, 1 if algorithm.one_example else n, **given)


@pytest.mark.parametrize("name", sorted(programs.REGISTRY))
def test_every_registry_entry_passes_the_kit(name):
    program = registry_program(name)
    report = check_program(program, settings=FEW)
    per_task = 1 if program.query_only else program.n + 1
    assert report.tasks == 6 and report.answered + report.refused == 6 and report.answered >= 1
    assert report.answers == report.answered * per_task
    assert report.reference.startswith("the exact answer") and report.domain.startswith("calibration on 32 tasks")
    assert report.machine_error <= 1e-9 and report.tightest_ratio >= 1 and report.unbounded == 0
    assert 0 < report.network_error <= report.worst_bound < 1e-6


def test_a_wrong_closed_form_fails_at_the_machine_and_its_task_replays():
    program = programs.ridge(2, 3, 0.5)
    off = lambda X, y, q: reference.ridge(X, y, q, 0.5 + 1e-6)  # noqa: E731
    with pytest.raises(PropertyFailure, match=r"ridge: the exact machine's answer .* > rtol 1e-09\n  on the task "
                                              r"Task\(X=np\.array") as failure:
        check_program(program, closed=off, settings=FEW)
    assert failure.value.level == "machine"
    task = eval(repr(failure.value.task), {"Task": Task, "np": np})
    assert all(np.array_equal(a, b) for a, b in zip(task.data, failure.value.task.data))
    with pytest.raises(PropertyFailure) as again:
        check_program(program, closed=off, examples=[task], settings=settings(max_examples=1))
    assert repr(again.value.task) == repr(task)


def moved(monkeypatch, change):
    """Every network answer and bound passed through ``change(answers, bounds)``."""
    original = CompiledNetwork.predict

    def predict(self, *args, **kwargs):
        answers, bounds = original(self, *args, **kwargs)
        return change(answers, bounds)

    monkeypatch.setattr(CompiledNetwork, "predict", predict)


@pytest.mark.parametrize("change", ["answers beyond their bounds", "bounds below the errors"])
def test_a_network_outside_its_certificate_fails(monkeypatch, change):
    moved(monkeypatch, (lambda a, b: (a + 3 * b, b)) if change == "answers beyond their bounds"
          else (lambda a, b: (a, b / 1e3)))
    with pytest.raises(PropertyFailure, match=r"the network's answer .* from the exact answer, above its certified "
                                              r"bound") as failure:
        check_program(programs.sgd(2, 3, 0.05, 0.1, np.ones(2)), settings=UNSHRUNK)
    assert failure.value.level == "network"


def test_a_library_programs_answers_are_measured_against_the_exact_answer(monkeypatch):
    """construct.exact (50 digits), not the float64 closed form: an exact answer far from the network's fails."""
    monkeypatch.setattr(exact, "errors", lambda program, X, y, x_query, got: np.where(np.isnan(got), np.nan, 1.0))
    with pytest.raises(PropertyFailure, match=r"the network's answer .* is 1 from the exact answer, above its "
                                              r"certified bound"):
        check_program(programs.ridge(2, 3, 0.5), settings=UNSHRUNK)


def last_label(d: int, n: int) -> construct.Program:
    """A program built by hand: the answer after k examples is the k-th label (0 before any)."""
    layout = construct.Layout(input_registers(d) + [construct.Register("pred", (1,))])
    return construct.Program("last_label", d, n, layout, (construct.Mov(Y_IN, "pred", 1),))


def last_label_closed(X, y, x_query):
    return np.concatenate([[0.0], y])


def test_a_custom_program_is_checked_against_its_closed_form_allowed_the_stated_rounding(monkeypatch):
    program = last_label(2, 3)
    report = check_program(program, closed=last_label_closed, closed_rounding=0.0, settings=FEW)
    assert report.reference == "the closed form (allowed its stated float64 rounding)" and report.answers == 24
    moved(monkeypatch, lambda a, b: (a + 3 * b + 1e-12, b))
    with pytest.raises(PropertyFailure, match=r"from the closed form, above its certified bound .* plus the closed "
                                              r"form's stated rounding 0"):
        check_program(program, closed=last_label_closed, closed_rounding=0.0, settings=UNSHRUNK)
    stated = lambda X, y, x_query: np.full(len(y) + 1, 1.0)  # noqa: E731
    as_tuples = regression_tasks(2, 3).map(lambda task: task.data)  # a strategy of (X, y, x_query) will do too
    assert check_program(program, as_tuples, closed=last_label_closed, closed_rounding=stated,
                         settings=FEW).answers == 24


def test_a_custom_program_needs_a_closed_form_and_its_rounding():
    program = last_label(2, 3)
    with pytest.raises(ValueError, match="last_label is not a program of construct.programs, so the kit knows no "
                                         "closed form for it: pass closed=f"):
        check_program(program)
    with pytest.raises(ValueError, match="last_label is built by hand: .* pass closed_rounding"):
        check_program(program, closed=last_label_closed)
    with pytest.raises(ValueError, match="closed_rounding must be a finite number >= 0 or a function, got -1.0"):
        check_program(program, closed=last_label_closed, closed_rounding=-1.0)
    with pytest.raises(ValueError, match=r"closed_rounding\(X, y, x_query\) must give n \+ 1 = 4 numbers, each "
                                         r"finite and >= 0; it gave \[-1. -1. -1. -1.\]"):
        check_program(program, closed=last_label_closed, closed_rounding=lambda *task: -np.ones(4), settings=UNSHRUNK)


def test_the_input_box_gives_the_theorys_network_and_a_refusal_inside_it_fails(monkeypatch):
    program = programs.ridge(2, 3, 0.5)
    small = regression_tasks(2, 3, scale=0.2)
    report = check_program(program, small, box=(1.0, 4.0), settings=FEW)
    assert report.domain.startswith("theory of ridge for the box") and report.answered >= 1
    assert report.answered + report.outside_box == report.tasks
    tight = check_program(program, small, box=(0.3, 4.0), settings=settings(max_examples=20))
    assert tight.outside_box > 0 and tight.refused == 0  # tasks outside the box are counted, not run

    def refuse(self, *args, **kwargs):
        raise DomainError("refused")

    monkeypatch.setattr(CompiledNetwork, "predict", refuse)
    with pytest.raises(PropertyFailure, match="the network refused a task inside the box it was compiled for"):
        check_program(program, small, box=(1.0, 4.0), settings=UNSHRUNK)
    with pytest.raises(PropertyFailure, match=r"the network answered none of the 6 tasks \(6 refused, 0 outside its "
                                              r"box\), so nothing was compared"):
        check_program(program, small, settings=FEW)


def test_the_kit_refuses_tasks_of_another_size_and_conflicting_domains():
    program = programs.ridge(2, 3, 0.5)
    with pytest.raises(ValueError, match=r"the strategy drew a task with d = 3, n = 3; ridge is built for d = 2, "
                                         r"n = 3"):
        check_program(program, regression_tasks(3, 3), settings=FEW,
                      bounds=construct.Bounds.calibrate(program, [(np.ones((3, 2)), np.ones(3), np.ones(2))]))
    with pytest.raises(ValueError, match="give the network's domain as bounds or as a box, not both"):
        check_program(program, bounds=construct.Bounds({}, {}), box=(1.0, 1.0))
    with pytest.raises(ValueError, match=r"calibration must be an integer in \[1, "):
        check_program(program, calibration=0)


# -- the strategies ----------------------------------------------------------------------------------------------

SOME = settings(max_examples=25)


@SOME
@given(near_collinear_tasks(scale=1.0))
def test_near_collinear_rows_are_nearly_rank_one(task):
    if min(task.n, task.d) > 1:  # the second singular value is gap |E| <= 1e-3 (sqrt n + sqrt d + 10)
        assert np.linalg.svd(task.X, compute_uv=False)[1] <= 1e-3 * (np.sqrt(task.n) + np.sqrt(task.d) + 10)


@SOME
@given(repeated_row_tasks())
def test_repeated_rows_are_at_most_three(task):
    assert len(np.unique(task.X, axis=0)) <= min(3, task.n)


@SOME
@given(zero_row_tasks())
def test_zero_rows_carry_a_label(task):
    zero = ~task.X.any(axis=1)
    assert zero.any() and np.all(task.y[zero] != 0)


@SOME
@given(underdetermined_tasks())
def test_underdetermined_tasks_have_fewer_examples_than_dimensions(task):
    assert task.n < task.d


@SOME
@given(cancelling_label_tasks(scale=1.0, n=st.integers(2, 16)))
def test_cancelling_labels_come_in_pairs(task):
    pairs = task.n // 2
    first, second = slice(0, 2 * pairs, 2), slice(1, 2 * pairs, 2)
    assert np.all(np.abs(task.y[first] + task.y[second]) <= 1e-2)
    assert np.all(np.abs(task.X[first] - task.X[second]) <= 1e-2)
    # a pair adds x y + (x + g e)(-y + g e') = g (x e' - e y + g e e'): of size gap (<= 1e-3) beside |x| + |y| + 1
    paired = task.X[:2 * pairs].T @ task.y[:2 * pairs]
    sizes = np.abs(task.X[:2 * pairs]) + np.abs(task.y[:2 * pairs, None]) + 1
    assert np.all(np.abs(paired) <= 1e-2 * sizes.sum(axis=0))


@SOME
@given(st.data())
def test_every_strategy_keeps_the_sizes_it_is_given(data):
    d, n = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 6))
    for strategy in (tasks(d, n), near_collinear_tasks(d, n), repeated_row_tasks(d, n), zero_row_tasks(d, n),
                     cancelling_label_tasks(d, n), regression_tasks(d, n)):
        task = data.draw(strategy)
        assert task.X.shape == (n, d) and task.y.shape == (n,) and task.x_query.shape == (d,)
        assert all(np.isfinite(part).all() for part in task.data)


@SOME
@given(regression_tasks())
def test_a_tasks_repr_rebuilds_it_bit_for_bit(task):
    again = eval(repr(task), {"Task": Task, "np": np})
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(again.data, task.data))
    assert (again.alpha, again.lam) == (task.alpha, task.lam)


@pytest.mark.parametrize("call, message", [
    (lambda: tasks(d=0), r"d must be an integer in \[1, "),
    (lambda: near_collinear_tasks(n=2.5), r"n must be an integer in \[1, "),
    (lambda: zero_row_tasks(scale=-1.0), "scale must be a positive number or a hypothesis strategy, got -1.0"),
    (lambda: underdetermined_tasks(d=3, n=3), "underdetermined_tasks needs n < d, got n = 3, d = 3"),
])
def test_strategies_refuse_bad_arguments_when_called(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# -- packaging ----------------------------------------------------------------------------------------------------

def test_without_hypothesis_the_kit_says_how_to_install_it():
    code = "import sys; sys.modules['hypothesis'] = None; import construct.testing"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 1
    assert ("ImportError: construct.testing needs hypothesis, which is not installed: "
            "pip install 'icl-construct[testing]'") in done.stderr


def test_the_kit_and_every_package_it_imports_are_installed():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = set(project["tool"]["setuptools"]["packages"])
    on_disk = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "construct").rglob("*.py")}
    assert on_disk <= packages, f"not installed: {sorted(on_disk - packages)}"
    extras = project["project"]["optional-dependencies"]
    assert extras["testing"] == ["hypothesis>=6.100,<7"] and "icl-construct[testing]" in extras["test"]


def test_the_documents_examples_run():
    """docs/TESTING.md's python blocks, as written."""
    text = (ROOT / "docs" / "TESTING.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, "docs/TESTING.md", "exec"), {})
