"""A program run on registers of any size: each register one element of the free algebra (``algebra.py``).

The exact machine (``construct.raw.machine``) runs a program on rows, so a
proof that runs it holds at the d it ran at. Here a register holds a matrix
of the free algebra with a shape in ``1`` and ``d``: a d-vector is a
noncommutative symbol (its transpose a symbol of its own), a d x d register
a matrix, a one-row register a scalar. Each instruction does to the matrix
what its ``apply`` does to the rows, for every d:

* mov: ``dst`` of column i is ``src`` of column ``max(i - offset, 0)``;
* aff: ``out = sum_j W_j r_j + b``; ``lift`` reads a weight ``W = c I`` as
  the scalar c and ``W = p^T`` (a vector parameter p of the program, as a
  row) as the symbol ``pT``, and a bias equal to a vector parameter as that
  symbol, the rows of ``c I`` (row-major) as c, and a one-row bias as itself;
* mul with shape (p, q, r): ``a`` read as p x q times ``b`` read as q x r.
  A register read at the shape it holds is itself; a vector read the other
  way round is its transpose, because row-major the rows of a d x 1 and of
  a 1 x d matrix are the same d numbers. Any other reading is refused;
* div: ``num / |den|``, den a scalar.

So a formula the lifted program computes in the free algebra holds at every
d at which the program is the lifted one. ``lift`` reads a program built at
one d (at least 2, so that 1 and d differ) and refuses what it cannot read
exactly: every lifted weight is compared with the instruction's own array.
A proof lifts its program at several d and requires the same lifted program
each time (the constructors build every d by the same code).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from construct.instructions import Aff, Div, Mov, Mul
from construct.instructions.base import exact
from construct.raw.prompt import POS, X_IN, Y_IN

from .algebra import rewrite, transpose

D = "d"  # the symbolic size in shapes: a shape is a pair of 1 and D


@dataclass(frozen=True)
class Value:
    """A register's content: a free-algebra expression and its shape, e.g. ``(x1, (D, 1))``."""

    expr: object
    shape: tuple


@dataclass(frozen=True)
class Step:
    """One lifted instruction: ``kind``, the registers, and the lifted shapes and constants."""

    kind: str
    out: str
    reads: tuple  # mov: (src,); aff: ((register, weight), ...); mul: (a, b); div: (num, den)
    shape: tuple = ()  # mul: the lifted (p, q, r); mov: (offset,)
    bias: object = None  # aff


class Lifted:
    """A program read on registers of any size (``lift``), and its run (``run``)."""

    def __init__(self, program, parameters: dict[str, tuple] | None = None, vectors: tuple = ()):
        """``parameters``: each vector parameter's name -> its symbol and its transpose's, ``{"w0": (w0, w0T)}``;
        ``vectors``: the other vectors' pairs (the prompt's, ``(x1, x1T)``)."""
        self.program, self.d = program, program.d
        if self.d < 2:
            raise ValueError("lift a program built at d >= 2, where the sizes 1 and d differ")
        self.vectors = dict(parameters or {})
        pairs = [*self.vectors.values(), *vectors]
        self.transposes = {s: t for v, vT in pairs for s, t in ((v, vT), (vT, v))}
        self.shapes = {reg.name: self._shape(reg.shape, reg.name) for reg in program.layout}
        self.steps = tuple(self._lift(ins) for ins in program.instructions)

    def _dim(self, k: int, what: str):
        if k == 1:
            return 1
        if k == self.d:
            return D
        raise ValueError(f"{what}: size {k} is neither 1 nor d = {self.d}")

    def _shape(self, shape: tuple, what: str) -> tuple:
        if len(shape) == 1:
            return (self._dim(shape[0], what), 1)
        return tuple(self._dim(k, what) for k in shape)

    def _parameter(self, array, transposed: bool):
        """The symbol of the vector parameter whose entries ``array`` holds (as a row if ``transposed``)."""
        for name, (v, vT) in self.vectors.items():
            p = np.asarray(self.program.params[name], dtype=object)
            if array.shape == ((1, p.size) if transposed else (p.size,)) and all(
                    sp.simplify(a - b) == 0 for a, b in zip(array.ravel(), p.ravel())):
                return vT if transposed else v
        return None

    @staticmethod
    def _scalar_identity(array):
        """c if ``array`` is c I (a square matrix), else None."""
        if array.ndim != 2 or array.shape[0] != array.shape[1]:
            return None
        c = array[0, 0]
        if all(sp.simplify(array[i, j] - (c if i == j else 0)) == 0 for i in range(array.shape[0])
               for j in range(array.shape[1])):
            return sp.sympify(c)
        return None

    def _weight(self, ins, reg: str, w):
        w = exact(w)  # a float weight as the rational it is
        if w.ndim == 0:
            return sp.sympify(w.item())
        lifted = self._scalar_identity(w)
        if lifted is None:
            lifted = self._parameter(w, transposed=True)
        if lifted is None:
            raise ValueError(f"{ins}: the weight of {reg!r} is neither c I nor a parameter's transpose")
        return lifted

    def _bias(self, ins):
        if ins.bias is None:
            return None
        b = exact(ins.bias)
        if b.ndim == 0 or b.size == 1:
            if self.shapes[ins.out] != (1, 1):
                raise ValueError(f"{ins}: a scalar bias on a register of {self.program.layout[ins.out].size} rows")
            return sp.sympify(b.ravel()[0])
        lifted = self._parameter(b, transposed=False)
        if lifted is None and self.shapes[ins.out] == (D, D):
            lifted = self._scalar_identity(b.reshape(self.d, self.d))
        if lifted is None:
            raise ValueError(f"{ins}: the bias is neither a parameter nor c I")
        return lifted

    def _lift(self, ins) -> Step:
        if isinstance(ins, Mov):
            return Step("mov", ins.dst, (ins.src,), (ins.offset,))
        if isinstance(ins, Aff):
            return Step("aff", ins.out, tuple((reg, self._weight(ins, reg, w)) for reg, w, _ in ins.terms),
                        bias=self._bias(ins))
        if isinstance(ins, Mul):
            return Step("mul", ins.out, (ins.a, ins.b), tuple(self._dim(k, str(ins)) for k in ins.shape))
        if isinstance(ins, Div):
            return Step("div", ins.out, (ins.num, ins.den))
        raise ValueError(f"{ins}: no register-level reading of {type(ins).__name__}")

    # -- the run -------------------------------------------------------------------------------------------------

    def read(self, value: Value, shape: tuple, what: str):
        """``value`` read as a ``shape`` matrix: itself, or a vector's transpose."""
        if value.shape == shape:
            return value.expr
        if value.shape == shape[::-1] and 1 in shape:
            return transpose(value.expr, self.transposes)
        raise ValueError(f"{what}: a {value.shape} register read as {shape}")

    def run(self, columns: list[dict], rules: dict) -> list[dict]:
        """Every state (the prompt first) from ``columns``: per column, the inputs' values (``Y_IN``, ``X_IN``,
        ``POS``); every other register starts at 0. ``rules`` rewrite scalars (``{xT*x: s}``) after each step."""
        state = [{name: Value(sp.Integer(0), shape) for name, shape in self.shapes.items()} for _ in columns]
        for column, given in zip(state, columns):
            for name in (Y_IN, X_IN, POS):
                column[name] = Value(sp.sympify(given[name]), self.shapes[name])
        states = [state]
        for step in self.steps:
            state = [dict(column) for column in states[-1]]
            for i, column in enumerate(state):
                value = self._apply(step, states[-1], i)
                column[step.out] = Value(rewrite(value.expr, rules), value.shape)
            states.append(state)
        return states

    def _apply(self, step: Step, before: list[dict], i: int) -> Value:
        here = before[i]
        if step.kind == "mov":
            return before[max(i - step.shape[0], 0)][step.reads[0]]
        if step.kind == "aff":
            shape = self.shapes[step.out]
            total = sp.Integer(0)
            for reg, weight in step.reads:
                value = here[reg]
                if weight in self.transposes:  # p^T r: the register is a d-vector
                    total += weight * self.read(value, (D, 1), f"{step.out} <- {reg}")
                else:
                    total += weight * self.read(value, shape, f"{step.out} <- {reg}")
            if step.bias is not None:
                total += step.bias
            return Value(total, shape)
        if step.kind == "mul":
            p, q, r = step.shape
            a, b = step.reads
            return Value(self.read(here[a], (p, q), f"{step.out} <- {a}") * self.read(here[b], (q, r),
                                                                                        f"{step.out} <- {b}"), (p, r))
        num, den = step.reads
        divisor = self.read(here[den], (1, 1), f"{step.out} <- {den}")
        if not divisor.is_commutative:
            raise ValueError(f"{step.out}: the divisor {divisor} is not a scalar under the rules")
        return Value(here[num].expr / sp.Abs(divisor), here[num].shape)


def same_program(a: Lifted, b: Lifted) -> bool:
    """Whether two lifted programs (built at different d) are the same register-level program."""
    return a.shapes == b.shapes and a.steps == b.steps
