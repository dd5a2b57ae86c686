"""Identities of matrices of every size, checked in the free algebra of noncommutative symbols.

A matrix identity that only multiplies, adds and inverts (with ``A A^-1 =
A^-1 A = I``) and treats 1 x 1 products (``v^T A^-1 u``) as commuting
scalars holds for matrices of every size if it holds in the free algebra
over those rules: each symbol stands for a matrix (or a vector, or a
transposed vector) of any compatible shape, and nothing in the argument
looks at an entry. ``noncommutative_zero`` expands an expression, rewrites
with the rules until nothing changes, groups the terms by their
noncommutative part, and requires every group's scalar coefficient to
simplify to 0. ``transpose`` transposes an expression, given each symbol's
transpose (a symbol of its own: ``x`` and ``xT``).
"""

from __future__ import annotations

from collections import defaultdict

import sympy as sp

from .registry import require


def matrices(names: str):
    """Noncommutative symbols: matrices, vectors and transposed vectors of any size."""
    return sp.symbols(names, commutative=False)


def rewrite(expr, rules: dict):
    """``expr`` expanded and rewritten with ``rules`` (``{A*Ai: 1, xT*x: s}``) until nothing changes."""
    for _ in range(20):
        new = sp.expand(expr)
        for pattern, replacement in rules.items():
            new = sp.expand(new.subs(pattern, replacement))
        if new == expr:
            return new
        expr = new
    raise RuntimeError("the rewriting rules do not settle")


def transpose(expr, transposes: dict):
    """The transpose of ``expr``: ``(c A B)^T = c B^T A^T``, scalars unchanged; ``transposes`` maps each
    noncommutative symbol to its transpose (both ways: ``{x: xT, xT: x}``)."""
    out = sp.Integer(0)
    for term in sp.Add.make_args(sp.expand(expr)):
        scalars, word = term.args_cnc()
        factors = []
        for factor in reversed(word):
            base, power = factor.as_base_exp()
            if base not in transposes:
                raise KeyError(f"no transpose is given for {base}")
            factors.append(transposes[base] ** power)
        out += sp.Mul(*scalars) * sp.Mul(*factors)
    return out


def noncommutative_zero(expr, rules: dict, what: str) -> None:
    """``expr`` is 0 in the free algebra with ``rules`` (``{A*Ai: 1, vT*Ai*u: s}``, s a commuting symbol)."""
    groups = defaultdict(lambda: sp.Integer(0))
    for term in sp.Add.make_args(rewrite(expr, rules)):
        scalars, word = term.args_cnc()
        groups[sp.Mul(*word)] += sp.Mul(*scalars)
    left = {word: sp.simplify(coefficient) for word, coefficient in groups.items()}
    require(all(c == 0 for c in left.values()),
            lambda: f"{what}: " + " + ".join(f"({c}) {w}" for w, c in left.items() if c != 0) + " is not 0")
