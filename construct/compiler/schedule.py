"""Which instructions share a layer: the scheduling pass behind fused networks.

A layer runs two phases: attention (mov, aff, avg), whose instructions read the
layer's input and compose with each other in program order (an aff or mov
reading what an earlier one of the same phase wrote reads its linear form,
``blocks.Forms``), then the MLP (mul, or div by one divisor), whose
instructions read the state after attention and write disjoint registers.
Lemma 7 of the paper (parallel operators) is the case of independent
instructions; composition goes further, merging chains of affine
instructions, and movs of affine results, into one attention phase.

The pass takes the instructions in program order and puts each into the
earliest phase that keeps the program's meaning:

* a read sees the last write before it: the writer must be in an earlier
  phase, or in the same attention phase (composition);
* a write must not be seen by an earlier reader: it goes in the reader's
  phase or later (in one phase, reads come before writes);
* two writes of a register keep their order: the later one in a later phase,
  or both in one attention phase (the later form wins);
* an MLP holds one group of instructions (``mlp_group``: muls only, or divs
  by one divisor only: the division's layer norm divides the whole column);
* a layer reads at most ``MAX_HEADS - 1`` other columns (composing movs adds
  their offsets: a chain of n offset-2 movs composed into one layer would
  read n columns, and need n heads); the averaging head (``avg``) counts as
  one of them;
* a form the heads cannot compute waits for the next layer
  (``composed_offsets``): the mean of another column's value or of a mean,
  a mean moved to another column.

So every schedule computes what the program computes, instruction by
instruction (``tests/compiler/test_schedule.py`` checks the fused networks layer by
layer against the machine run on each layer's instructions in order).
Unfused, each instruction is a layer of its own, as the paper draws it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..instructions import ATTENTION, MLP
from ..raw.program import Program

MAX_HEADS = 3  # the self head and two other columns


@dataclass(frozen=True)
class Step:
    """One layer's instructions, as indices into the program: its attention phase, then its MLP."""

    attention: tuple[int, ...]
    mlp: tuple[int, ...]

    @property
    def instructions(self) -> tuple[int, ...]:
        return self.attention + self.mlp


def unfused(program: Program) -> tuple[Step, ...]:
    """One instruction per layer (the paper's construction)."""
    return tuple(Step((k,), ()) if ins.phase == ATTENTION else Step((), (k,))
                 for k, ins in enumerate(program.instructions))


def fused(program: Program) -> tuple[Step, ...]:
    """Each instruction in the earliest phase the dependency rules of the module docstring allow."""
    instructions = program.instructions
    slot: list[tuple[int, int]] = []  # (layer, phase) of each instruction so far
    mlp_group: dict[int, tuple] = {}  # layer -> the group its MLP runs (``Instruction.mlp_group``)
    reads_from: dict[int, dict[str, frozenset]] = {}  # layer -> register -> the column offsets its form reads
    # per register, over the instructions so far: the slot of its last writer, the latest slot of any writer
    # and of any reader (a writer's successor rule is monotone in the slot, so the latest one binds)
    last_written: dict[str, tuple[int, int]] = {}
    latest_write: dict[str, tuple[int, int]] = {}
    latest_read: dict[str, tuple[int, int]] = {}
    for ins in instructions:
        phase = ins.phase

        def not_before(at: tuple[int, int]) -> tuple[int, int]:
            return at if (at[1] == ATTENTION and phase == ATTENTION) else _after(at)

        bounds = [(0, phase)]
        bounds += [not_before(last_written[r]) for r in set(ins.reads) if r in last_written]  # reads what was written
        if ins.writes in latest_read:  # an earlier instruction read it first: not before that one's phase
            bounds.append(latest_read[ins.writes])
        if ins.writes in latest_write:
            bounds.append(not_before(latest_write[ins.writes]))
        layer, p = max(bounds)
        if p != phase:  # the earliest phase of the right kind
            layer, p = (layer + 1, phase) if p > phase else (layer, phase)
        while phase == MLP and mlp_group.get(layer, ins.mlp_group()) != ins.mlp_group():
            layer += 1
        while phase == ATTENTION and not _fits(reads_from.get(layer, {}), ins):
            layer += 1
        if phase == MLP:
            mlp_group[layer] = ins.mlp_group()
        else:
            forms = reads_from.setdefault(layer, {})
            forms[ins.writes] = _reads(forms, ins)
        slot.append((layer, phase))
        last_written[ins.writes] = (layer, phase)
        latest_write[ins.writes] = max(latest_write.get(ins.writes, (layer, phase)), (layer, phase))
        for r in set(ins.reads):
            latest_read[r] = max(latest_read.get(r, (layer, phase)), (layer, phase))
    # one pass over the slots: scanning them once per layer was quadratic (hours for sgd with n = 10^5)
    phases: list[tuple[list[int], list[int]]] = [([], []) for _ in range(max(layer for layer, _ in slot) + 1)]
    for k, (layer, p) in enumerate(slot):
        phases[layer][p].append(k)
    return tuple(Step(tuple(attention), tuple(mlp)) for attention, mlp in phases)


def _reads(forms: dict[str, frozenset], ins) -> frozenset | None:
    """The column offsets (0 = its own, ``UNIFORM`` the mean) the composed form of ``ins``'s register reads, given
    the layer's forms (its reads' offsets as the instruction composes them, ``composed_offsets``), or None if no
    head of the layer can compute it."""
    read = frozenset(o for reg in ins.reads for o in forms.get(reg, frozenset({0}))) or frozenset({0})
    return ins.composed_offsets(read)


def _fits(forms: dict[str, frozenset], ins) -> bool:
    """Whether the layer's attention can take ``ins``: its form is one the heads compute, and every offset the
    layer then reads, the self head's 0 included, has a head."""
    reads = _reads(forms, ins)
    return reads is not None and len(frozenset({0}).union(*forms.values(), reads)) <= MAX_HEADS


def _after(at: tuple[int, int]) -> tuple[int, int]:
    layer, phase = at
    return (layer, MLP) if phase == ATTENTION else (layer + 1, ATTENTION)
