"""The certificate checks the weights it runs against the instructions each depth claims (compiler/verify.py).

Each case builds weights that do not compute their instructions the way a compiler bug would (a Richardson table
that is off, two layers' weights swapped where the printed instructions agree, a stored layer tied for two
instructions that differ in one constant) and requires every answer to be refused or within its bound, against
the exact answer of the instructions the network claims to run.
"""

import dataclasses

import numpy as np
import pytest

import construct
from construct import Aff, Mov, Mul, Program, exact, programs
from construct.compiler import plans
from construct.mechanisms import scales
from construct.raw.prompt import X_IN, input_registers
from construct.raw.registers import Layout, Register
from construct.tasks import gaussian_tasks


def sound(net, task, exact_answer) -> bool:
    """Every answer refused, or within its certified bound of the exact answer."""
    try:
        preds, bounds = net.predict(*task, tolerance=None, return_bound=True)
    except (construct.DomainError, ValueError):
        return True
    errors = np.abs(preds - exact_answer)
    seen = ~np.isnan(errors)
    return bool(np.all(errors[seen] <= bounds[seen]))


def test_a_perturbed_richardson_table_is_covered_by_the_bound(monkeypatch):
    """Weights summing to 1 that no longer cancel the P^-2 term, in the compiler's table: the certificate builds the
    lemma's coefficients itself (instructions.mul.lemma_weights), so the weights' distance from them enters the
    bound."""
    wrong = ((1, 1 / 45), (2, -21 / 45), (4, 65 / 45))  # every form of the compiler's table agrees on it
    monkeypatch.setattr(scales, "RICHARDSON", wrong)
    monkeypatch.setattr(scales, "RICHARDSON_FRACTIONS", {1: (1, 45), 2: (-21, 45), 4: (65, 45)})
    monkeypatch.setattr(scales, "RICHARDSON_CONSTANTS", tuple(w * scales.SQRT_HALF_PI for _, w in wrong))
    program = programs.ridge(3, 4, 0.5)
    net = construct.compile(program, x_max=2.0, y_max=4.0)
    worst = 0.0
    for X, y, q in gaussian_tasks(3, 4, 12, seed=3):
        task = (X / 2, y / 2, q / 2)
        preds, bounds = net.predict(*task, tolerance=None, return_bound=True)
        errors = exact.errors(program, *task, preds)
        assert np.all(errors <= bounds)
        worst = max(worst, float(np.max(errors)))
    assert worst > 1e-8  # the perturbation does make the answers wrong: the bound is not covering nothing


def _two_affs(c1: float, c2: float, name="pair") -> Program:
    """x <- x_1 (two columns back, at the query), w <- c1 x, then w <- c2 x (both printed `aff  w <- k x`), and the
    prediction w^T x_q = c2 x_1^T x_q."""
    layout = Layout(input_registers(2) + [Register("x", (2,)), Register("w", (2,)), Register("pred", (1,))])
    instructions = (Mov(X_IN, "x", 2), Aff("w", (("x", c1, "k"),)), Aff("w", (("x", c2, "k"),)),
                    Mul("w", X_IN, "pred", (1, 2, 1)))
    return Program(name, 2, 1, layout, instructions, query_only=True)


def _exact(program: Program, task) -> np.ndarray:
    return program.predict(*task)


def test_two_layers_swapped_where_the_printed_instructions_agree_are_refused_or_covered():
    program = _two_affs(2.0, 0.5)
    bounds = construct.Bounds({name: 8.0 for name in program.layout.names}, {})
    net = construct.compile(program, bounds, fuse=False)
    assert str(program.instructions[1]) == str(program.instructions[2])
    order = net.weights.order.copy()
    order[[1, 2]] = order[[2, 1]]  # each aff layer runs the other's weights
    swapped = dataclasses.replace(net, weights=dataclasses.replace(net.weights, order=order))
    task = (np.array([[0.7, -0.4]]), np.array([0.3]), np.array([0.5, 0.9]))
    want = _exact(program, task)
    assert not np.allclose(swapped.predict(*task, tolerance=None), want, equal_nan=True)  # it is wrong
    assert sound(swapped, task, want)


def test_a_layer_tied_for_two_instructions_that_differ_in_one_constant_is_refused_or_covered(monkeypatch):
    """The compiler ties layers whose instructions are equal as data; a bug tying by printed text (the issue's
    case: the two affs print alike) stores one layer for both, and the certificate must notice."""
    program = _two_affs(2.0, 2.5)
    monkeypatch.setattr(plans, "to_data", str)  # tie by printed text
    bounds = construct.Bounds({name: 8.0 for name in program.layout.names}, {})
    net = construct.compile(program, bounds, fuse=False)
    assert net.weights.stored < net.weights.depth  # the bug happened: one stored layer for both affs
    task = (np.array([[0.7, -0.4]]), np.array([0.3]), np.array([0.5, 0.9]))
    want = _exact(program, task)
    assert not np.allclose(net.predict(*task, tolerance=None), want, equal_nan=True)
    assert sound(net, task, want)


def test_the_compiler_ties_layers_by_their_instructions_data_not_their_text():
    program = _two_affs(2.0, 2.5)
    bounds = construct.Bounds({name: 8.0 for name in program.layout.names}, {})
    net = construct.compile(program, bounds, fuse=False)
    assert net.weights.stored == net.weights.depth
    task = (np.array([[0.7, -0.4]]), np.array([0.3]), np.array([0.5, 0.9]))
    preds, bounds_ = net.predict(*task, tolerance=None, return_bound=True)
    assert np.all(np.abs(preds - _exact(program, task))[-1:] <= bounds_[-1:]) and bounds_[-1] < 1e-11


def test_an_mlp_writing_a_register_its_instructions_do_not_is_refused():
    program = programs.ridge(2, 2, 0.5)
    net = construct.compile(program, x_max=1.0, y_max=1.0)
    W2 = net.weights.W2.copy()
    layer = next(k for k, mech in enumerate(net.mechanisms) if mech.mlp)
    u = int(net.weights.order[layer])
    row = net.layout.span("w")[0]
    W2[u, 0, row] = 1e-3  # a unit also writes into w
    broken = dataclasses.replace(net, weights=dataclasses.replace(net.weights, W2=W2))
    X, y, q = gaussian_tasks(2, 2, 1, seed=0)[0]
    with pytest.raises(ValueError, match="its MLP writes program rows .* that none of its instructions writes"):
        broken.certify(X / 2, y / 2, q / 2)
