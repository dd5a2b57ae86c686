"""Fused layers: the schedule keeps the program's meaning, meets the depth targets, and ties repeated blocks.

The schedule is checked three ways: the exact machine running the
instructions in the scheduled order gives the program's result bit for bit
(on the library's programs and on random programs drawn by hypothesis);
every fused layer equals its instructions run in order by the machine on
the layer's own input; and the fused networks meet the closed forms.
"""


import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from construct import Aff, Avg, Bounds, Div, FloatRangeError, Mov, Mul, Program, compile, programs, reference
from construct.compiler import estimate, schedule
from construct.raw.prompt import input_registers
from construct.raw.registers import Layout, Register
from construct.tasks import gaussian_tasks
from construct.testing import assert_agree
from support import ROOT, check_layers


def scheduled_order(program):
    return [k for step in schedule.fused(program) for k in step.instructions]


def run_in(program, order, task):
    H = program.encode(*task)
    for k in order:
        H = program.instructions[k].apply(H, program.layout)
    return H


PROGRAMS = {
    "sgd": lambda: programs.sgd(3, 4, 0.05, 0.2, w0=[0.3, -0.2, 0.1]),
    "ridge": lambda: programs.ridge(3, 4, 0.5),
    "sgd_step": lambda: programs.sgd_step(3, 0.1, 0.05, np.ones(3)),
    "sherman_morrison_step": lambda: programs.sherman_morrison_step(3, 0.5),
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_the_scheduled_order_computes_what_the_program_computes(name):
    program = PROGRAMS[name]()
    order = scheduled_order(program)
    assert sorted(order) == list(range(program.depth))
    for task in gaussian_tasks(program.d, program.n, 3, seed=1):
        assert np.array_equal(run_in(program, order, task), program.run(*task))


def _random_program(draw):
    """Instructions over scalars s0..s2 and 2-vectors v0..v2 (and the prompt, d = 2), in a random order."""
    scalars, vectors = ["s0", "s1", "s2"], ["v0", "v1", "v2"]
    layout = Layout(input_registers(2) + [Register(n, (1,)) for n in scalars] + [Register(n, (2,)) for n in vectors]
                    + [Register("pred", (1,))])
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    kinds = draw(st.lists(st.sampled_from(["mov", "aff", "avg", "mul", "div"]), min_size=2, max_size=14))
    instructions = [Aff(v, (("x_in", rng.normal(size=(2, 2))),), bias=rng.normal(size=2)) for v in vectors]
    instructions += [Aff(s, (("y_in", float(rng.normal())),), bias=3.0 + rng.random()) for s in scalars]
    for kind in kinds:
        v, w, s, t = rng.choice(vectors), rng.choice(vectors), rng.choice(scalars), rng.choice(scalars)
        if kind == "mov":
            instructions.append(Mov(*((v, w) if rng.random() < 0.6 else (s, t)), int(rng.integers(0, 3))))
        elif kind == "avg":
            instructions.append(Avg(*((v, w) if rng.random() < 0.6 else (s, t))))
        elif kind == "aff":
            instructions.append(Aff(v, ((w, rng.normal(size=(2, 2))), (v, float(rng.normal()))), bias=rng.normal(2)))
        elif kind == "mul":
            instructions.append([Mul(v, s, w, (2, 1, 1)), Mul(v, w, t, (1, 2, 1)), Mul(s, t, s, (1, 1, 1))][
                int(rng.integers(0, 3))])
        else:
            instructions.append(Div(v, s, w))
    instructions.append(Mul("v0", "v1", "pred", (1, 2, 1)))
    return Program("random", 2, 2, layout, tuple(instructions))


@settings(max_examples=40)
@given(st.data())
def test_random_programs_keep_their_meaning(data):
    program = _random_program(data.draw)
    order = scheduled_order(program)
    with np.errstate(all="ignore"):
        for task in gaussian_tasks(2, 2, 2, seed=2):
            assert np.array_equal(run_in(program, order, task), program.run(*task), equal_nan=True)


def assert_mlps_are_uniform(program, steps):
    """Every MLP holds muls only, or divs by one divisor only (the division's layer norm divides the whole column)."""
    for layer, step in enumerate(steps, 1):
        kinds = {("mul",) if isinstance(ins, Mul) else ("div", ins.den)
                 for ins in (program.instructions[k] for k in step.mlp)}
        assert len(kinds) <= 1, f"layer {layer}'s MLP mixes {sorted(kinds)}"


def assert_layers_are_the_machine(program, tasks):
    """Compiled for the tasks' calibrated domain: every layer's error within its declared bound, and every
    answer within its certified bound of the program's."""
    net = compile(program, Bounds.calibrate(program, tasks))
    for task in tasks:
        for c in net.check_layers(*task):
            assert c.error <= c.predicted, f"layer {c.layer} ({c.instruction}): {c.error:.3g} > {c.predicted:.3g}"
        got, bound = net.predict(*task, tolerance=None, return_bound=True)
        want = program.predict(*task)
        assert np.all(np.abs(got - want)[1:] <= bound[1:]), (got, want, bound)
    return net


def test_a_mul_and_a_div_ready_together_get_separate_mlps():
    """An independent mul and div, adjacent and both ready after the first attention: the mul takes the first
    layer's MLP, the div the next layer's (one MLP computing both would need the div's layer-norm scaling and the
    mul's at once; the compiler's layer has no such MLP)."""
    layout = Layout(input_registers(2) + [Register(n, (1,)) for n in ("a", "b", "p")]
                    + [Register(n, (2,)) for n in ("v", "q")] + [Register("pred", (1,))])
    program = Program("mul_beside_div", 2, 2, layout, (
        Aff("a", (("y_in", 0.5),), bias=1.0),
        Aff("b", (("y_in", 0.1),), bias=2.0),                  # a divisor in [1.5, 2.5] on these tasks
        Aff("v", (("x_in", np.array([[1.0, -0.5], [0.25, 2.0]])),)),
        Mul("a", "a", "p", (1, 1, 1)),
        Div("v", "b", "q"),
        Mul("q", "x_in", "pred", (1, 2, 1)),
    ))
    steps = schedule.fused(program)
    assert steps[0].attention == (0, 1, 2) and steps[0].mlp == (3,) and steps[1].mlp == (4,)
    assert_mlps_are_uniform(program, steps)
    tasks = [(0.5 * X, np.clip(y, -4, 4), 0.5 * q) for X, y, q in gaussian_tasks(2, 2, 8, seed=3)]
    net = assert_layers_are_the_machine(program, tasks)
    assert len(net.steps) == len(steps)


@pytest.mark.parametrize("kind", ["mul", "div"])
def test_an_operand_a_later_instruction_of_the_mlp_overwrites_is_read_first(kind):
    """One MLP: the first instruction reads s, the second writes s (reads come before writes in a phase). The
    attention that zeroes s for the second must not zero the first's operand: it is read from a scratch copy
    (found by the random programs below: the first mul read 0)."""
    s_size = 1 if kind == "mul" else 2
    layout = Layout(input_registers(2) + [Register("s", (s_size,)), Register("t", (1,))]
                    + [Register(n, (2,)) for n in ("v", "w", "q")] + [Register("pred", (1,))])
    first, second = ((Mul("v", "s", "q", (2, 1, 1)), Mul("v", "w", "s", (1, 2, 1))) if kind == "mul" else
                     (Div("s", "t", "q"), Div("v", "t", "s")))
    program = Program("overwritten_operand", 2, 2, layout, (
        Aff("s", (("y_in", np.full((s_size, 1), 0.5)),), bias=np.linspace(1.0, 2.0, s_size)),
        Aff("t", (("y_in", 0.1),), bias=2.0),  # a divisor in [1.5, 2.5] on these tasks
        Aff("v", (("x_in", np.array([[1.0, -0.5], [0.25, 2.0]])),)),
        Aff("w", (("x_in", np.array([[0.5, 1.0], [-1.0, 0.5]])),), bias=np.array([0.5, -0.25])),
        first, second,
        Mul("q", "x_in", "pred", (1, 2, 1)),
    ))
    steps = schedule.fused(program)
    assert any(set(step.mlp) == {4, 5} for step in steps), steps  # the two share an MLP
    tasks = [(0.5 * X, np.clip(y, -4, 4), 0.5 * q) for X, y, q in gaussian_tasks(2, 2, 8, seed=4)]
    assert_layers_are_the_machine(program, tasks)


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_random_programs_fuse_into_uniform_mlps_that_compute_the_machine(data):
    """Random programs of Mov, Aff, Avg, Mul and Div (``_random_program``): every MLP of the fused schedule holds muls
    only or divs by one divisor only, and the compiled network is the exact machine, layer by layer, within the
    compiler's declared errors. A program whose values leave float64 or whose divisor reaches 0 on the tasks has
    no domain to compile for: skipped."""
    program = _random_program(data.draw)
    assert_mlps_are_uniform(program, schedule.fused(program))
    tasks = gaussian_tasks(2, 2, 4, seed=5)
    try:
        with np.errstate(all="raise"):
            values = [program.run(*task) for task in tasks]
        Bounds.calibrate(program, tasks)
    except (FloatingPointError, FloatRangeError):
        assume(False)
    assume(all(np.abs(H).max() < 1e6 for H in values))  # compiled errors scale with the bounds
    try:
        assert_layers_are_the_machine(program, tasks)
    except FloatRangeError:
        assume(False)


def test_the_depth_targets():
    """Theorem 1 in at most 4 layers (paper 9), Theorem 2 in at most 7 (paper 14), sgd(n) in at most 3n + c,
    ridge(n) in at most 5n + c."""
    assert len(schedule.fused(programs.sgd_step(3, 0.1, 0.1, np.ones(3)))) <= 4
    assert len(schedule.fused(programs.sherman_morrison_step(3, 0.5))) <= 7
    for n in (1, 2, 4, 8, 16):
        assert len(schedule.fused(programs.sgd(3, n, 0.05, 0.1))) <= 3 * n + 1
        assert len(schedule.fused(programs.ridge(3, n, 0.5))) <= 5 * n + 2


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_every_fused_layer_is_its_instructions(name):
    program = PROGRAMS[name]()
    net = compile(program, Bounds.calibrate(program, gaussian_tasks(program.d, program.n, 32)))
    assert len(net.steps) < program.depth
    for task in gaussian_tasks(program.d, program.n, 2, seed=4):
        check_layers(net, task)


def test_fused_networks_meet_the_closed_forms():
    for d, n in ((2, 5), (4, 8)):
        tasks = gaussian_tasks(d, n, 32)
        for program, closed in ((programs.sgd(d, n, 0.05, 0.1), lambda t: reference.sgd_one_pass(*t, 0.05, 0.1)),
                                (programs.ridge(d, n, 0.5), lambda t: reference.ridge(*t, 0.5))):
            net = compile(program, Bounds.calibrate(program, tasks))
            for task in gaussian_tasks(d, n, 3, seed=6):
                assert_agree(net.predict(*task, tolerance=None), closed(task), 1e-6, program.name)


def test_repeated_blocks_are_stored_once():
    """The parameter count does not depend on n: the steady-state block is stored once and applied n times."""
    sizes = []
    for n in (4, 8, 16):
        program = programs.ridge(3, n, 0.5)
        net = compile(program, Bounds.calibrate(program, gaussian_tasks(3, n, 16)))
        sizes.append((net.weights.stored, net.weights.depth, net.weights.parameter_count - net.weights.positions.size))
    assert sizes[0][0] == sizes[1][0] == sizes[2][0]
    assert sizes[0][2] == sizes[1][2] == sizes[2][2]
    assert sizes[0][1] < sizes[1][1] < sizes[2][1]


COMPILER_PAGE = ROOT / "docs" / "COMPILER.md"


def depth_table() -> dict[str, list[str]]:
    text = COMPILER_PAGE.read_text()
    table = text.split("| program | paper | one layer per instruction | fused | stored (fused) |")[1]
    rows = [line.split("|")[1:-1] for line in table.strip().splitlines()[1:] if line.startswith("|")]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows}


def test_the_compiler_pages_depth_table_is_the_compilers():
    def sizes(program):
        bounds = Bounds.calibrate(program, gaussian_tasks(program.d, program.n, 8))
        fused, unfused = estimate(program, bounds), estimate(program, bounds, fuse=False)
        return unfused.applied, fused.applied, fused.layers

    table = depth_table()
    assert table["Theorem 1 chain (`sgd_step`)"] == ["9", *map(str, sizes(programs.sgd_step(2, 0.1, 0.01, np.zeros(2))))]
    assert table["Theorem 2 chain (`sherman_morrison_step`)"] == ["14", *map(str, sizes(programs.sherman_morrison_step(2, 0.1)))]
    assert table["one-pass SGD, n examples"] == ["O(n)", "6n + 7", "2n + 1", "4 (n >= 2)"]
    assert table["ridge (RLS), n examples"] == ["O(n)", "12n + 5", "4n + 1", "6 (n >= 2)"]
    text = " ".join(COMPILER_PAGE.read_text().split())
    ridge8 = {n: estimate(programs.ridge(8, n, 0.1), Bounds.for_inputs(programs.ridge(8, n, 0.1), 1.0, 1.0)).parameters
              for n in (1, 2, 32)}
    assert (f"Ridge at d = 8 is {ridge8[1] / 1e6:.2f}M parameters at n = 1 and {ridge8[2] / 1e6:.1f}M for any n >= 2 "
            f"({ridge8[32] / 1e6:.2f}M at n = 32") in text
    for d in (1, 3, 8):
        for n in (2, 3, 5, 16):
            assert sizes(programs.sgd(d, n, 0.05, 0.1)) == (6 * n + 7, 2 * n + 1, 4), (d, n)
            assert sizes(programs.ridge(d, n, 0.1)) == (12 * n + 5, 4 * n + 1, 6), (d, n)


@pytest.mark.parametrize("name", ["sgd", "ridge"])
def test_prompts_of_any_length_up_to_n(name):
    """k <= n examples: the prefix's predictions are the full prompt's first k + 1 (the same exact answers: within
    both certificates' bounds of each other), and the closed form's."""
    program = PROGRAMS[name]()
    net = compile(program, x_max=3.0, y_max=20.0, x_norm=4.0)
    closed = {"sgd": lambda t: reference.sgd_one_pass(*t, 0.05, 0.2, [0.3, -0.2, 0.1]),
              "ridge": lambda t: reference.ridge(*t, 0.5)}[name]
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, (program.n, program.d))
    y, q = X @ rng.normal(size=program.d), rng.uniform(-1, 1, program.d)
    full, full_bound = net.predict(X, y, q, return_bound=True)
    for k in range(program.n + 1):
        got, bound = net.predict(X[:k], y[:k], q, return_bound=True)
        assert got.shape == (k + 1,)
        # the same exact answers, each certified: a matrix product's rows round otherwise for another number of rows
        assert np.all(np.abs(got[:k] - full[:k]) <= bound[:k] + full_bound[:k])
        if k:
            want = closed((X[:k], y[:k], q))
            assert np.all(np.abs(got - want) <= bound), k
    with pytest.raises(ValueError, match="at most n = 4"):
        net.predict(np.ones((5, 3)), np.ones(5), q)


def test_a_one_example_chain_needs_its_example():
    program = PROGRAMS["sgd_step"]()
    net = compile(program, x_max=2.0, y_max=2.0)
    with pytest.raises(ValueError, match="built for n = 1"):
        net.predict(np.ones((0, 3)), np.ones(0), np.ones(3))
