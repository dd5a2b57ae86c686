"""The prefix-average instruction Avg at every level: the exact machine (numbers and symbols), the schedule, the
compiled network."""

from fractions import Fraction

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from construct import Avg, Bounds, Mov, Program, compile, run
from construct.compiler import schedule
from construct.instructions import Aff, Mul, from_data, to_data
from construct.mechanisms.plan import UNIFORM, Forms
from construct.raw.prompt import encode, input_registers, x_columns
from construct.raw.registers import Layout, Register
from construct.tasks import gaussian_tasks

LAYOUT = Layout([Register("src", (2,)), Register("dst", (2,)), Register("other", (3,))])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), T=st.integers(1, 40), tasks=st.integers(1, 3))
def test_machine_matches_a_prefix_mean_in_every_column(seed, T, tasks):
    H = np.random.default_rng(seed).normal(size=(LAYOUT.width, T, tasks)) * 10.0 ** np.arange(-3, 4)[seed % 7]
    out = Avg("src", "dst").apply(H, LAYOUT)
    for i in range(T):
        want = H[0:2, : i + 1].mean(axis=1)  # numpy's pairwise mean, another order of the sums
        scale = np.abs(H[0:2, : i + 1]).mean(axis=1)
        assert np.all(np.abs(out[2:4, i] - want) <= 4 * (i + 2) * 2.0**-53 * scale)
    keep = np.ones(LAYOUT.width, bool)
    keep[2:4] = False
    assert np.array_equal(out[keep], H[keep])


def test_machine_in_place_reads_the_old_state():
    lay = Layout([Register("w", (1,))])
    assert Avg("w", "w").apply(np.array([[1.0, 2.0, 6.0]]), lay).tolist() == [[1.0, 1.5, 3.0]]


def test_symbolic_mean_is_exact():
    a, b, c = sympy.symbols("a b c")
    lay = Layout([Register("s", (1,)), Register("m", (1,))])
    H = np.array([[a, b, c], [0, 0, 0]], dtype=object)
    out = Avg("s", "m").apply(H, lay)
    want = [a, (a + b) / 2, (a + b + c) / 3]
    assert [sympy.simplify(x - y) for x, y in zip(out[1], want)] == [0, 0, 0]
    ones = np.array([[sympy.Integer(1)] * 3, [0, 0, 0]], dtype=object)
    assert list(Avg("s", "m").apply(ones, lay)[1]) == [1, 1, 1]  # 3 * (1/3) is 1 exactly, not 0.999...


def test_machine_runs_a_program_with_avg_and_predicts_running_means():
    """x~ columns see the mean of the x slots so far (y columns hold x = 0): at column 2k, sum of x_1..x_k+1
    over 2k + 1 columns."""
    layout = Layout(input_registers(1) + [Register("pred", (1,))])
    program = Program("running_mean", 1, 3, layout, (Avg("x_in", "pred"),))
    X, y, q = np.array([[1.0], [2.0], [4.0]]), np.array([0.5, 0.5, 0.5]), np.array([8.0])
    assert program.predict(X, y, q).tolist() == [1.0, 1.0, 7 / 5, 15 / 7]
    a, b = sympy.symbols("a b")
    symbolic = Program("running_mean", 1, 1, layout, (Avg("x_in", "pred"),))
    preds = symbolic.predict(np.array([[a]], dtype=object), np.array([sympy.Integer(0)], dtype=object),
                             np.array([b], dtype=object))
    assert sympy.simplify(preds[1] - (a + b) / 3) == 0


def test_check_names_the_register_and_data_round_trips():
    with pytest.raises(ValueError, match="'other' has 3 rows, needs 2"):
        Avg("src", "other").check(LAYOUT)
    with pytest.raises(ValueError, match="'nope' is not in the layout"):
        Avg("nope", "dst").check(LAYOUT)
    with pytest.raises(ValueError, match="src must be a register name"):
        Avg(3, "dst")
    ins = Avg("src", "dst")
    assert to_data(ins) == {"kind": "avg", "src": "src", "dst": "dst"} and from_data(to_data(ins)) == ins
    assert str(ins) == "avg  dst <- mean of src over columns 0..i"
    assert ins.paper(LAYOUT) == "avg(0..i, i, [0, 2), [2, 4))"
    with pytest.raises(ValueError, match="dst must be a register name"):
        from_data({"kind": "avg", "src": "src", "dst": None})


def test_certificate_rules_are_the_exact_map_and_its_transpose():
    rng = np.random.default_rng(3)
    T = 7
    H, E = rng.normal(size=(LAYOUT.width, T)), np.abs(rng.normal(size=(LAYOUT.width, T)))
    ins = Avg("src", "dst")
    J = np.zeros((2 * T, 2 * T))  # d dst[r, i] / d src[r, j], rows then columns flattened as (r, t)
    for r in range(2):
        for i in range(T):
            J[r * T + i, r * T : r * T + i + 1] = 1 / (i + 1)
    lam = rng.normal(size=(3, LAYOUT.width, T))
    back = ins.pullback(H, lam, LAYOUT)
    assert np.allclose(back[:, 0:2].reshape(3, -1), lam[:, 0:2].reshape(3, -1) + lam[:, 2:4].reshape(3, -1) @ J,
                       rtol=1e-13, atol=1e-13)
    assert np.array_equal(back[:, 2:4], np.zeros((3, 2, T))) and np.array_equal(back[:, 4:], lam[:, 4:])
    prop = ins.propagate(H, E, LAYOUT)
    assert np.all(prop[2:4].reshape(-1) >= (J @ E[0:2].reshape(-1)))
    assert np.allclose(prop[2:4].reshape(-1), J @ E[0:2].reshape(-1), rtol=1e-12)
    rounding = ins.machine_rounding(H, LAYOUT)
    exact = [[float(sum(Fraction(v) for v in H[r, : i + 1]) / (i + 1)) for i in range(T)] for r in range(2)]
    assert np.all(np.abs(ins.apply(H, LAYOUT)[2:4] - exact) <= rounding[2:4])
    assert ins.second_order(H, E, LAYOUT).max() == 0


def test_composition_rules():
    """An avg reads offset-0 forms only; a mov to another column cannot read a mean."""
    assert Avg("a", "b").composed_offsets(frozenset({0})) == {-1}
    assert Avg("a", "b").composed_offsets(frozenset({0, 1})) is None
    assert Avg("a", "b").composed_offsets(frozenset({-1})) is None
    assert Mov("a", "b", 1).composed_offsets(frozenset({-1})) is None
    assert Mov("a", "b", 0).composed_offsets(frozenset({-1, 0})) == {-1, 0}
    assert Aff("b", (("a", 1.0),)).composed_offsets(frozenset({-1, 2})) == {-1, 2}


def custom_program(n=3, d=2):
    """Running means of x and of x*y and their product, with affine maps composed around the averages."""
    layout = Layout(input_registers(d) + [Register(name, (rows,)) for name, rows in
                                          (("xp", d), ("xy", d), ("t", d), ("mx", d), ("mxy", d), ("s", 1),
                                           ("pred", 1))])
    instructions = (
        Mov("x_in", "xp", 1),                                   # the example's x at its y column
        Mul("xp", "y_in", "xy", (d, 1, 1)),                     # x y
        Aff("t", (("x_in", 0.5),), bias=1.0),                   # t = x/2 + 1, composed into the mean below
        Avg("t", "mx"),                                         # mean of x/2 + 1
        Avg("xy", "mxy"),                                       # mean of x y
        Aff("mx", (("mx", 1.0), ("x_in", -0.25))),              # a mean and the column's own x in one form
        Mul("mx", "mxy", "s", (1, d, 1)),                       # their product
        Aff("pred", (("s", 2.0), ("y_in", 1.0)), bias=-0.5),
    )
    return Program("avg_check", d, n, layout, instructions)


def test_custom_program_runs_on_the_machine():
    program = custom_program()
    rng = np.random.default_rng(0)
    X, y, q = rng.normal(size=(3, 2)), rng.normal(size=3), rng.normal(size=2)
    H = run(program.instructions, encode(X, y, q, program.layout), program.layout)
    T = 7
    x = np.zeros((2, T))
    x[:, 0:6:2], x[:, 6] = X.T, q
    yy = np.zeros(T)
    yy[1:6:2] = y
    xp = x[:, np.maximum(np.arange(T) - 1, 0)]
    mean = lambda v: np.cumsum(v, axis=-1) / np.arange(1, T + 1)  # noqa: E731
    mx = mean(x / 2 + 1) - 0.25 * x
    s = np.sum(mx * mean(xp * yy), axis=0)
    assert np.allclose(H[program.layout.rows("pred")][0], 2 * s + yy - 0.5, rtol=1e-13, atol=1e-13)


# -- the schedule and the compiled network --------------------------------------------------------------------------


def test_the_schedule_composes_avg_with_aff_and_pushes_what_no_head_computes():
    program = custom_program()
    steps = schedule.fused(program)
    # mov, aff, avg of the aff's form, aff of a mean and the column's own x: one attention; the mean of the mul's
    # output waits for the next layer
    assert [(s.attention, s.mlp) for s in steps] == [((0, 2, 3, 5), (1,)), ((4,), (6,)), ((7,), ())]
    layout = Layout(input_registers(1) + [Register(name, (1,)) for name in ("a", "b", "c", "pred")])
    cases = {  # the layer of each instruction
        "avg of a mov's result": ((Mov("x_in", "a", 1), Avg("a", "b")), [0, 1]),
        "mov of a mean": ((Avg("x_in", "a"), Mov("a", "b", 1)), [0, 1]),
        "avg of a mean": ((Avg("x_in", "a"), Avg("a", "b")), [0, 1]),
        "copy of a mean in the column": ((Avg("x_in", "a"), Mov("a", "b", 0)), [0, 0]),
        "independent mov and avg": ((Mov("x_in", "a", 1), Avg("y_in", "b")), [0, 0]),
        "a mean and two movs: one head too many": ((Avg("x_in", "a"), Mov("y_in", "b", 2), Mov("x_in", "c", 1)),
                                                   [0, 0, 1]),
    }
    for name, (instructions, want) in cases.items():
        steps = schedule.fused(Program("push", 1, 2, layout, instructions + (Aff("pred", (("b", 1.0),)),)))
        layer = {k: l for l, step in enumerate(steps) for k in step.instructions}
        assert [layer[k] for k in range(len(instructions))] == want, name


def test_a_plan_refuses_what_the_schedule_would_push():
    ctx = _context(custom_program())
    forms = Forms()
    Mov("x_in", "xp", 1).compose(ctx, forms)
    with pytest.raises(ValueError, match="reads other columns or a mean"):
        Avg("xp", "mx").compose(ctx, forms)
    forms = Forms()
    Avg("x_in", "mx").compose(ctx, forms)
    with pytest.raises(ValueError, match="a mean over columns, which no head reads at another column"):
        Mov("mx", "xp", 1).compose(ctx, forms)


def _context(program):
    from construct.compiler import constants, layout as layouts, targets

    steps = schedule.unfused(program)
    target = targets.target("paper")
    full = layouts.extend(program, steps, target)
    bounds = Bounds(dict.fromkeys(program.layout.names, 1.0), {})
    return constants.context(program, bounds, np.float64, steps, full, constants.chosen_constants(np.float64), target)


@pytest.fixture(scope="module")
def tasks():
    return gaussian_tasks(2, 3, 16, seed=1)


@pytest.fixture(scope="module", params=["paper", "gpt2"])
def nets(request, tasks):
    program = custom_program()
    bounds = Bounds.calibrate(program, tasks)
    return {dtype: compile(program, bounds, architecture=request.param, dtype=dtype)
            for dtype in (np.float64, np.float32)}


def test_the_averaging_head_has_zero_scores(nets):
    net = nets[np.float64]
    w = net.weights
    for l, mech in enumerate(net.mechanisms):
        for h, offset in enumerate(mech.offsets):
            u = int(w.order[l])
            selecting = bool(np.any(w.Wq[u, h]) and np.any(w.Wk[u, h]))
            assert selecting == (offset != UNIFORM), (l, h, offset)
    assert [UNIFORM in mech.offsets for mech in net.mechanisms] == [True, True, False]


def test_compiled_layers_are_the_machine_within_their_declared_errors(nets, tasks):
    program = custom_program()
    for dtype, net in nets.items():
        for task in tasks[:4]:
            for c in net.check_layers(*task):
                assert c.error <= c.predicted, (dtype, c)
            got = net.trace(*task).register("pred")[-1, 0, x_columns(program.n)]
            want = program.predict(*task)
            assert np.max(np.abs(got - want)) < (1e-10 if dtype == np.float64 else 1e-3), (dtype, got - want)
