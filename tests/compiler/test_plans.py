"""Each stage of the compiler on its own: a layer's plan applied to a state with named rows, no dense weights.

For every instruction kind, one layer is scheduled, laid out and planned by the compiler's own stages
(``layout.extend``, ``constants.context``, ``plans.plan_layer``) and the plan run by itself
(``LayerPlan.apply``: ideal attention selection, the real layer norm and GeLU units). It must change
exactly the register the instruction writes (and the compiler's own rows), and write there what the
instruction computes, within the error the compiler declares for it.
"""

import numpy as np
import pytest

from construct import Aff, Avg, Bounds, Div, Mov, Mul, Program
from construct.compiler import constants, layout, plans, schedule, targets
from construct.mechanisms.plan import ZERO
from construct.raw.prompt import input_registers
from construct.raw.registers import Layout, Register

D = 2


def _program(registers, ins) -> Program:
    regs = input_registers(D) + [Register(name, shape) for name, shape in registers]
    return Program("unit", D, 2, Layout(regs), (ins,), readout="pos")


CASES = {
    "mov": ([("w", (D,))], Mov("x_in", "w", 1)),
    "aff": ([("w", (D,))], Aff("w", (("x_in", np.array([[1.5, -2.0], [0.25, 1.0]])),), bias=np.array([0.5, -1.0]))),
    "avg": ([("w", (D,))], Avg("x_in", "w")),
    "avg in place": ([("w", (D,))], Avg("w", "w")),
    "mul": ([("A", (D, D)), ("u", (D,))], Mul("A", "x_in", "u", (D, D, 1))),
    "mul in place": ([("u", (D,))], Mul("u", "y_in", "u", (D, 1, 1))),
    "div": ([("num", (D,)), ("den", (1,)), ("q", (D,))], Div("num", "den", "q")),
}


@pytest.mark.parametrize("case", CASES)
def test_a_layer_plan_applied_on_its_own_is_its_instruction(case):
    registers, ins = CASES[case]
    program = _program(registers, ins)
    rng = np.random.default_rng(0)
    bounds = Bounds({name: 4.0 for name in program.layout.names}, {"den": 0.5} if ins.divisor else {})
    steps = schedule.unfused(program)
    target = targets.target("paper")
    full = layout.extend(program, steps, target)
    ctx = constants.context(program, bounds, np.float64, steps, full, constants.chosen_constants(np.float64), target)
    plan = plans.plan_layer([ins] if ins.phase == 0 else [], [ins] if ins.phase == 1 else [], ctx, frozenset())

    T = 2 * program.n + 1
    H = np.zeros((full.width, T))
    for name in program.layout.names:  # every program register inside its bound; the divisor above its floor
        H[full.rows(name)] = rng.uniform(-3, 3, size=(full[name].size, T))
    if ins.divisor:
        H[full.rows("den")] = rng.choice([-1, 1], size=T) * rng.uniform(0.6, 3, size=T)
        H[full.rows("num")] *= np.abs(H[full.rows("den")]) / 3  # so |num / den| stays within the bound of q
    H[full.rows("pos")] = np.arange(T)
    # the position table's rows, as the embedding writes them
    H[full.rows("one")], H[full.rows("pos_sq")] = 1.0, np.arange(T) ** 2.0
    H[full.rows("ln_pad_pos")], H[full.rows("ln_pad_neg")] = ctx.ln_pad, -ctx.ln_pad

    out = plan.apply(H, full.span(ZERO)[0], ctx.ln_eps)
    want = ins.apply(H[: program.width], program.layout)
    written = np.zeros(program.width, bool)
    written[program.layout.rows(ins.writes)] = True
    assert np.array_equal(out[: program.width][~written], H[: program.width][~written])
    (_, declared, _), = plan.reports
    error = np.abs(out[program.layout.rows(ins.writes)] - want[program.layout.rows(ins.writes)]).max()
    assert error <= declared, (case, error, declared)
    assert error < 1e-8  # and the instruction's result, not something near it by chance
