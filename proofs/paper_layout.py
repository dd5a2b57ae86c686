"""The paper's rows for its two chains, derived from the chains, beside ours.

The paper numbers the rows of its hidden state from 0 with the input rows
included, y at row 0 and x at rows 1..d, and gives each chain's count of
rows: 3 + 4d for Theorem 1, 3 + 5d + 3d^2 for Theorem 2 (the registry's
``paper_size``). Its Theorem 1 keeps w at rows [7, 9) at d = 2. Its rows
are not ours, although its counts equal our ``data_rows`` (which leave out
y, x and pos): the two count different rows.

Derivation: the chain's registers are stacked from row d + 1 in the order
the chain first writes them, with what the numbers force:

* ``x``: the first step copies x_1 from column 0 into the same rows of
  column 1, whose x slot is empty (the paper's mov writes one column). So
  the paper's x is the input rows [1, 1 + d). Rows of its own would put
  Theorem 1's w at [9, 11) at d = 2, not [7, 9). Our mov writes every
  column and would overwrite x_q at column 2, so ``x`` has its own rows;
* ``pred``: the registers before it fill the paper's count exactly, in
  both theorems, so the count leaves the prediction out, and where the
  paper writes it is not determined by the count;
* ``pos`` has no row in the paper's count (the chains never read it).

One rule fits both counts and Theorem 1's w. Theorem 2's count alone would
also fit another reading, ``den1`` written over ``den`` with ``pred``
counted, in which ``den1``, ``corr`` and ``w`` start one row earlier; the
table gives that reading beside the first.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from construct import programs
from construct.raw.prompt import POS, X_IN, Y_IN

d = sp.Symbol("d", positive=True, integer=True)
SHARED = {"x": X_IN}  # register -> the input register whose rows the paper's chain writes it over
UNCOUNTED = "pred"
OTHER_READING = {"sherman_morrison_step": ("den1", "den")}  # (register, the register whose rows it takes)
SAMPLES = (2, 3, 4, 5)  # sizes are polynomials in d of degree <= 2: fitted on three, checked on the fourth
CHAINS = ("sgd_step", "sherman_morrison_step")


def chain(name: str, size: int):
    """The chain ``name`` at d = ``size`` (default parameters)."""
    return programs.get(name).program(size, 1)


def _size(name: str, register: str) -> sp.Expr:
    """The register's number of rows as a polynomial in d."""
    points = [(k, chain(name, k).layout[register].size) for k in SAMPLES]
    poly = sp.expand(sp.interpolate(points[:3], d))
    if any(poly.subs(d, k) != rows for k, rows in points):
        raise ValueError(f"{name}: the size of {register!r} is not a polynomial of degree <= 2 in d")
    return poly


def _stacked(name: str, shared: dict, counted: bool) -> tuple[dict, sp.Expr]:
    """Each register's paper rows (start, stop) as polynomials in d, and the count of rows."""
    layout = chain(name, SAMPLES[0]).layout
    rows = {Y_IN: (sp.Integer(0), sp.Integer(1)), X_IN: (sp.Integer(1), 1 + d)}
    top = 1 + d
    for reg in layout.names:
        if reg in (Y_IN, X_IN, POS):
            continue
        if reg in shared:
            rows[reg] = rows[shared[reg]]
            continue
        size = _size(name, reg)
        rows[reg] = (top, sp.expand(top + size))
        if reg != UNCOUNTED or counted:
            top = sp.expand(top + size)
    return rows, top


@dataclass(frozen=True)
class PaperRows:
    """One register's rows: the paper's (polynomials in d; None where it has none or they are not determined),
    the other reading's where it differs, and a note."""

    register: str
    paper: tuple | None
    other: tuple | None
    note: str


def paper_rows(name: str) -> list[PaperRows]:
    """The table for chain ``name``, in our layout's order; checks the reading against the paper's numbers."""
    _, count = programs.get(name).paper_size(d)
    rows, top = _stacked(name, SHARED, counted=False)
    if sp.expand(top - count) != 0:
        raise ValueError(f"{name}: the stacked rows number {top}, the paper counts {count}")
    if name == "sgd_step" and tuple(r.subs(d, 2) for r in rows["w"]) != (7, 9):
        raise ValueError(f"sgd_step: w at rows {rows['w']}, the paper has [7, 9) at d = 2")
    other = {}
    if name in OTHER_READING:
        reg, over = OTHER_READING[name]
        other, other_top = _stacked(name, {**SHARED, reg: over}, counted=True)
        if sp.expand(other_top - count) != 0:
            raise ValueError(f"{name}: the other reading has {other_top} rows, the paper counts {count}")
    table = []
    for reg in chain(name, SAMPLES[0]).layout.names:
        if reg == POS:
            table.append(PaperRows(reg, None, None, "no row in the paper's count"))
        elif reg == UNCOUNTED:
            note = f"not determined: outside the paper's count (stacked, it would be {span(*rows[reg])})"
            if other:
                note += f"; in the other reading, the count's last row, {span(*other[reg])}"
            table.append(PaperRows(reg, None, None, note))
        else:
            alternative = other.get(reg) if other.get(reg) != rows[reg] else None
            note = {"x": "x_in's rows: the paper's mov writes the y~ column's empty x slot"}.get(reg, "")
            if alternative is not None:
                reading, over = OTHER_READING[name]
                note = f"or, if the paper writes {reading} over {over}, the second range"
            table.append(PaperRows(reg, rows[reg], alternative, note))
    return table


def _poly(expr) -> str:
    """``3 + 2d`` rather than sympy's ``2*d + 3``."""
    terms = sp.Poly(sp.expand(expr), d).terms()
    parts = []
    for (power,), coefficient in sorted(terms):
        factor = {0: "", 1: "d"}.get(power, f"d^{power}")
        parts.append(str(coefficient) if not factor else factor if coefficient == 1 else f"{coefficient}{factor}")
    return " + ".join(parts) or "0"


def span(start, stop, at: int | None = None) -> str:
    if at is not None:
        return f"[{int(start.subs(d, at))}, {int(stop.subs(d, at))})"
    return f"[{_poly(start)}, {_poly(stop)})"


def markdown(name: str, at: int = 2) -> list[str]:
    """The table register -> the paper's rows (any d, and at d = ``at``) -> ours at d = ``at``."""
    ours = chain(name, at).layout
    lines = [f"| register | the paper's rows | the paper's at d = {at} | ours at d = {at} | how |",
             "| --- | --- | --- | --- | --- |"]
    for row in paper_rows(name):
        if row.paper is None:
            paper = paper_at = "(none)" if row.register == POS else "?"
        else:
            paper, paper_at = span(*row.paper), span(*row.paper, at=at)
            if row.other is not None:
                paper += f" or {span(*row.other)}"
                paper_at += f" or {span(*row.other, at=at)}"
        lines.append(f"| `{row.register}` | {paper} | {paper_at} | {ours.paper(row.register)} | {row.note} |")
    return lines


def counts(name: str) -> str:
    """One sentence: the paper's count beside ours, for the text under a table."""
    _, count = programs.get(name).paper_size(d)
    if any(chain(name, k).data_rows != count.subs(d, k) for k in SAMPLES):
        raise ValueError(f"{name}: our data rows are not the paper's count {count}")
    program = chain(name, 2)
    return (f"The paper counts {_poly(count)} rows from row 0 ({int(count.subs(d, 2))} at d = 2); our program has "
            f"{program.width} rows at d = 2, of which {program.data_rows} are data rows (all but y_in, x_in and "
            "pos). The two counts are the same polynomial in d, but they count different rows: ours leaves out y "
            "and x and counts our own copy of x and pred; the paper's counts y and x, writes its x over x's input "
            "rows and, in the reading above, leaves pred out.")


if __name__ == "__main__":  # print the tables
    for name in CHAINS:
        print(name, *markdown(name), counts(name), sep="\n")
        print()
