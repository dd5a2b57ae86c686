"""Identities of matrices of every size, checked in the free algebra of noncommutative symbols.

A matrix identity that only multiplies, adds and inverts (with ``A A^-1 =
A^-1 A = I``) and treats 1 x 1 products (``v^T A^-1 u``) as commuting
scalars holds for matrices of every size if it holds in the free algebra
over those rules: each symbol stands for a matrix (or a vector, or a
transposed vector) of any compatible shape, and nothing in the argument
looks at an entry. ``noncommutative_zero`` expands an expression, rewrites
with the rules until nothing changes, groups the terms by their
noncommutative part, and requires every group's scalar coefficient to
simplify to 0.
"""

from __future__ import annotations

from collections import defaultdict

import sympy as sp

from .registry import require


def matrices(names: str):
    """Noncommutative symbols: matrices, vectors and transposed vectors of any size."""
    return sp.symbols(names, commutative=False)


def _rewrite(expr, rules: dict):
    for _ in range(20):
        new = sp.expand(expr)
        for pattern, replacement in rules.items():
            new = sp.expand(new.subs(pattern, replacement))
        if new == expr:
            return new
        expr = new
    raise RuntimeError("the rewriting rules do not settle")


def noncommutative_zero(expr, rules: dict, what: str) -> None:
    """``expr`` is 0 in the free algebra with ``rules`` (``{A*Ai: 1, vT*Ai*u: s}``, s a commuting symbol)."""
    groups = defaultdict(lambda: sp.Integer(0))
    for term in sp.Add.make_args(_rewrite(expr, rules)):
        scalars, word = term.args_cnc()
        groups[sp.Mul(*word)] += sp.Mul(*scalars)
    left = {word: sp.simplify(coefficient) for word, coefficient in groups.items()}
    require(all(c == 0 for c in left.values()),
            lambda: f"{what}: " + " + ".join(f"({c}) {w}" for w, c in left.items() if c != 0) + " is not 0")
