"""The layout stage: the program's layout extended with the rows the mechanisms need.

Rows the compiler adds (names in ``mechanisms.plan``):

* ``one`` (1), ``pos_sq`` (j^2): with the program's ``pos`` (j) they make
  attention one-hot (keys ``[j, j^2]``, queries ``N_att [2 (i - offset), -1]``);
* ``ln_pad_pos``, ``ln_pad_neg`` (``+N``, ``-N``): permanent pads that make
  layer norm a known scaling (Lemma 6);
* ``zero``: always 0; MLP weights put a compensating weight on it so they
  sum to zero over the rows and layer norm's mean subtraction drops out;
* ``mean_pad``: minus the sum of the other rows, written before each layer
  norm that matters, so the mean it subtracts is tiny (``plans._centre``);
* ``div_pad_pos``, ``div_pad_neg``: the division pads (Lemma 8), if the
  program divides;
* ``scratch``: copies of an operand an MLP instruction overwrites, if any;
* the target's own (``targets``): for GPT-2 blocks ``ln1_pad_pos``,
  ``ln1_pad_neg`` (if the program divides) and ``width_pad``.

All of them are written by the position table or by layers, and every
layer's effect on the program's registers is exactly its instruction's.
"""

from __future__ import annotations

from ..mechanisms.plan import DIV_NEG, DIV_POS, LN_NEG, LN_POS, MEAN_PAD, ONE, POS_SQ, SCRATCH, ZERO
from ..raw.program import Program
from ..raw.registers import Layout, Register
from .schedule import Step


def overwritten(program: Program, step: Step) -> list[str]:
    """Operands a layer's MLP overwrites while reading them (copied to scratch first, ``mechanisms.plan.read_rows``),
    with repeats: an instruction's own output, or another's of the same MLP."""
    mlp = [program.instructions[k] for k in step.mlp]
    written = {ins.writes for ins in mlp}
    return [name for ins in mlp for name in ins.operands if name in written]


def extend(program: Program, steps, target) -> Layout:
    """The program's layout with the compiler's rows after it; refuses a program register named like one."""
    divides = any(ins.divisor for ins in program.instructions)
    regs = [Register(name, (1,)) for name in (ONE, POS_SQ, LN_POS, LN_NEG, ZERO, MEAN_PAD)]
    if divides:
        regs += [Register(DIV_POS, (1,)), Register(DIV_NEG, (1,))]
    regs += target.registers(divides)
    room = max([sum(program.layout[name].size for name in overwritten(program, step)) for step in steps] + [0])
    if room:  # both operands of a square like w <- w @ w, and every in-place product of a fused layer
        regs.append(Register(SCRATCH, (room,)))
    clash = [r.name for r in regs if r.name in program.layout]
    if clash:
        raise ValueError(f"program registers {clash} clash with the compiler's own registers; rename them")
    return program.layout.extended(regs)
