"""The prefix-average instruction Avg at every level: the exact machine (numbers and symbols), the schedule, the
compiled network, its certificate and the weight check, the export format, the runtimes, the measurement the
documents quote."""

import dataclasses
from fractions import Fraction

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from construct import Avg, Bounds, Mov, Program, WeightsFileError, compile, run
from construct.compiler import schedule
from construct.instructions import Aff, Mul, from_data, to_data
from construct.mechanisms.plan import UNIFORM, Forms
from construct.raw.prompt import encode, input_registers, x_columns
from construct.raw.registers import Layout, Register
from construct.tasks import gaussian_tasks

from support import ROOT, read_members, write_members

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
    in_place = Avg("src", "src").pullback(H, lam, LAYOUT)  # the cotangent on src is replaced, not added to
    assert np.allclose(in_place[:, 0:2].reshape(3, -1), lam[:, 0:2].reshape(3, -1) @ J, rtol=1e-13, atol=1e-13)
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
    from construct.compiler import constants, targets
    from construct.compiler import layout as layouts

    steps = schedule.unfused(program)
    target = targets.target("paper")
    full = layouts.extend(program, steps, target)
    bounds = Bounds(dict.fromkeys(program.layout.names, 1.0), {})
    return constants.context(program, bounds, np.float64, steps, full, constants.chosen_constants(np.float64), target)


@pytest.fixture(scope="module")
def tasks():
    return gaussian_tasks(2, 3, 16, seed=1)


ARCHITECTURES = ("paper", "gpt2")


@pytest.fixture(scope="module")
def compiled(tasks):
    """The custom program compiled for its calibrated domain: architecture -> dtype -> network."""
    program = custom_program()
    bounds = Bounds.calibrate(program, tasks)
    return {arch: {dtype: compile(program, bounds, architecture=arch, dtype=dtype)
                   for dtype in (np.float64, np.float32)} for arch in ARCHITECTURES}


@pytest.fixture(scope="module", params=ARCHITECTURES)
def nets(request, compiled):
    return compiled[request.param]


@pytest.fixture(scope="module")
def paper_net(compiled):
    return compiled["paper"][np.float64]


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


# -- the certificate --------------------------------------------------------------------------------------------------


def test_every_answer_is_within_its_certified_bound(nets, tasks):
    program = custom_program()
    for dtype, net in nets.items():
        for task in tasks[:6]:
            got, bound = net.predict(*task, tolerance=None, return_bound=True)
            error = np.abs(got - program.predict(*task))
            assert np.all(error <= bound), (dtype, error, bound)
            assert bound.max() < (1e-9 if dtype == np.float64 else 1e-2)  # a bound that says something


def test_the_uniform_gap_covers_the_computed_weights_exactly():
    from construct.transformer.forward import causal_softmax
    from construct.transformer.rounding import uniform_gap

    for dtype in (np.float64, np.float32):
        T = 40
        A = causal_softmax(np.zeros((T, T), dtype))  # the averaging head's weights, as the pass computes them
        gap = uniform_gap(A)
        u = float(np.finfo(dtype).eps) / 2
        for i in range(T):
            exact = [abs(Fraction(float(A[i, j])) - (Fraction(1, i + 1) if j <= i else 0)) for j in range(T)]
            assert all(float(e) <= g for e, g in zip(exact, gap[i]))  # a bound
            assert np.all(gap[i, : i + 1] <= 1.01 * u / (i + 1))  # the lemma's u/(i+1), as measured
            assert np.all(gap[i, i + 1 :] == 0)
        B = A.copy()
        B[5, 2] += 1e-3
        assert uniform_gap(B)[5, 2] >= 1e-3 * (1 - 1e-6)  # a weight off its 1/(i+1) is seen


def test_selection_holds_an_averaging_head_to_uniform_weights():
    from construct.transformer import forward, rounding

    rng = np.random.default_rng(1)
    T, dh, D = 9, 2, 3
    V = rng.normal(size=(1, T, dh))
    A = forward.causal_softmax(rng.normal(size=(1, T, T)) * 1e-4)  # near-uniform weights
    parts = forward.LayerParts(A, V, *[None] * 11)
    Wo = rng.normal(size=(dh, D))
    bound = rounding.selection(Wo, parts, np.abs(V), np.zeros((1, T), int), np.array([True]))
    exact_mean = np.cumsum(V[0], axis=0) / np.arange(1, T + 1)[:, None]
    gap = np.abs((A[0] @ V[0] - exact_mean) @ Wo)
    assert np.all(gap <= bound) and np.all(bound <= 20 * gap.max() + 1e-12)


def _tampered(net, **arrays):
    return dataclasses.replace(net, weights=dataclasses.replace(net.weights, **arrays))


def test_an_averaging_head_with_nonzero_scores_is_refused(paper_net, tasks):
    """On the paper-form weights (a GPT-2 network's are checked as their conversion)."""
    net = paper_net
    l = next(k for k, mech in enumerate(net.mechanisms) if UNIFORM in mech.offsets)
    h, u = net.mechanisms[l].offsets.index(UNIFORM), int(net.weights.order[l])
    Wq, Wk = net.weights.Wq.copy(), net.weights.Wk.copy()
    pos = net.layout.span("pos")[0]
    Wq[u, h, pos, 0], Wk[u, h, pos, 0] = 1e-3, 1.0  # the scores favour later columns a little
    with pytest.raises(ValueError, match=r"averaging head has nonzero query weights \(on rows \[\d+\]\)"):
        _tampered(net, Wq=Wq, Wk=Wk).certify(*tasks[0])
    _tampered(net, Wk=Wk).certify(*tasks[0])  # a key alone leaves every score 0


def test_averaging_head_values_that_differ_from_the_instruction_enter_the_bound(paper_net, tasks):
    """On the paper-form weights (a GPT-2 network's are checked as their conversion)."""
    net = paper_net
    program = custom_program()
    l = next(k for k, mech in enumerate(net.mechanisms) if UNIFORM in mech.offsets)
    h, u = net.mechanisms[l].offsets.index(UNIFORM), int(net.weights.order[l])
    Wv = net.weights.Wv.copy()
    Wv[u, h] *= 1 + 1e-6
    broken = _tampered(net, Wv=Wv)
    worst = 0.0
    for task in tasks[:4]:
        got, bound = broken.predict(*task, tolerance=None, return_bound=True)
        error = np.abs(got - program.predict(*task))
        assert np.all(error <= bound)
        worst = max(worst, error.max())
    assert worst > 1e-8  # the tampering made the answers wrong


# -- the export format ------------------------------------------------------------------------------------------------


def test_export_round_trip_in_version_3(paper_net, tasks, tmp_path):
    from construct import load, save

    net = paper_net  # the npz format holds the paper's layer
    path = save(net, tmp_path / "avg.npz")
    manifest, arrays = read_members(path)
    assert manifest["version"] == 3 and {"kind": "avg", "src": "t", "dst": "mx"} in manifest["program"]["instructions"]
    got = load(path)
    for name, a in net.weights.arrays().items():
        assert np.array_equal(getattr(got.weights, name), a), name
    assert np.array_equal(got.predict(*tasks[0], tolerance=None), net.predict(*tasks[0], tolerance=None))
    manifest["version"] = 2  # version 2 has no averaging head
    write_members(path, manifest, arrays)
    with pytest.raises(WeightsFileError, match="has avg instructions, which format version 2 does not hold"):
        load(path)


def test_a_program_without_avg_is_still_written_and_read_as_version_2(tmp_path):
    from construct import load, programs, save

    program = programs.sgd(2, 2, 0.1, 0.5)
    net = compile(program, x_max=1.0, y_max=1.0)
    path = save(net, tmp_path / "sgd.npz")
    manifest, arrays = read_members(path)
    assert manifest["version"] == 2
    load(path)
    manifest["version"] = 3  # the writer's choice is the lowest version that holds the program
    write_members(path, manifest, arrays)
    with pytest.raises(WeightsFileError, match="version is 3; the network its program and domain describe has 2"):
        load(path)


# -- the runtimes -----------------------------------------------------------------------------------------------------


def test_hugging_face_and_transformer_lens_run_the_averaging_head(compiled, tasks, tmp_path):
    """The GPT-2 network with averaging heads, saved and loaded by Hugging Face (eager and sdpa attention) and
    built in TransformerLens, answers as the exact machine does."""
    net = compiled["gpt2"][np.float64]
    hf, tl = pytest.importorskip("construct.hf"), pytest.importorskip("construct.tl")
    program = custom_program()
    folder = hf.save_pretrained(net, tmp_path / "avg")
    models = {impl: hf.from_pretrained(folder, attn_implementation=impl) for impl in ("eager", "sdpa")}
    lens = tl.to_transformer_lens(net)
    for task in tasks[:3]:
        want = program.predict(*task)
        numpy_pass, bound = net.predict(*task, tolerance=None, return_bound=True)
        assert np.all(np.abs(numpy_pass - want) <= bound)
        answers = {impl: hf.predict(model, *task, tolerance=None) for impl, model in models.items()}
        answers["transformer_lens"] = tl.predict(lens, net, *task, tolerance=None)
        for name, got in answers.items():
            assert np.all(np.abs(got - want) <= 1e-10), (name, np.abs(got - want).max())
            assert np.all(np.abs(got - numpy_pass) <= 1e-10), name


# -- the measurement and the document that quotes it ------------------------------------------------------------------


def test_the_construction_document_quotes_the_averaging_measurement():
    import json

    result = json.loads((ROOT / "construct" / "results" / "averaging.json").read_text())
    text = " ".join((ROOT / "docs" / "CONSTRUCTION.md").read_text().split())
    assert result["command"] == "python -m construct.cli.averaging --out construct/results/averaging.json"
    head, net = result["head"], result["network"]
    quoted = (f"{result['tokens']:,} columns (`python -m construct.cli.averaging`, "
              f"`construct/results/averaging.json`): "
              f"the head's error on `v ~ N(0, 1)` against the exact rational mean is "
              f"{head['float64']['relative_error']:.1e} of `mean|v|` in float64 and "
              f"{head['float32']['relative_error']:.1e} in float32, and on `v ~ U(0, 1)` (one sign: a plain relative "
              f"error) {head['float64']['positive_relative_error']:.1e} and "
              f"{head['float32']['positive_relative_error']:.1e} (the lemma's bound at i = {result['tokens'] - 1:,}: "
              f"{head['float64']['lemma_bound']:.1e} and {head['float32']['lemma_bound']:.1e}); `avg` compiled for "
              f"n = {(result['tokens'] - 1) // 2} answers within {net['float64']['error']:.1e} (float64) and "
              f"{net['float32']['error']:.1e} (float32) of the exact mean of `|x| <= {result['box']:g}` inputs, "
              f"certified to {net['float64']['bound']:.1e} and {net['float32']['bound']:.1e}.")
    assert quoted in text
    for dtype in ("float64", "float32"):  # what the file says holds: measured below the lemma, errors below bounds
        assert 0 < head[dtype]["relative_error"] <= head[dtype]["lemma_bound"]
        assert 0 < head[dtype]["positive_relative_error"] <= head[dtype]["lemma_bound"]
        assert net[dtype]["error"] <= net[dtype]["bound"]


def test_the_averaging_measurement_at_a_small_size(monkeypatch):
    from construct.cli import averaging

    monkeypatch.setattr(averaging, "TOKENS", 65)
    for dtype in (np.float64, np.float32):
        head = averaging.head(dtype)
        assert 0 < head["relative_error"] <= head["lemma_bound"]
        assert 0 < head["positive_relative_error"] <= head["lemma_bound"]
        net = averaging.network(dtype)
        assert net["error"] <= net["bound"] < (1e-12 if dtype == np.float64 else 1e-4)
