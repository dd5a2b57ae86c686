"""Smoke test: the chains run on sympy symbols (d = 2) and simplify to the theorems' formulas.

The full proofs live in proofs/; this checks that the machine and programs
carry symbols through unchanged.
"""

import numpy as np
import sympy

from construct import programs


def symbols(name, d):
    return np.array(sympy.symbols(f"{name}1:{d + 1}", real=True), dtype=object)


def test_theorem1_chain_is_one_sgd_step():
    d = 2
    alpha, lam = sympy.symbols("alpha lam", positive=True)
    x1, xq, w0 = symbols("x", d), symbols("q", d), symbols("v", d)
    y1 = sympy.Symbol("y", real=True)
    pred = programs.sgd_step(d, alpha, lam, w0).predict(x1[None, :], [y1], xq)[-1]
    x, w = sympy.Matrix(x1), sympy.Matrix(w0)
    w1 = w - 2 * alpha * (x * ((x.T * w)[0] - y1) + lam * w)
    assert sympy.expand(pred - (w1.T * sympy.Matrix(xq))[0]) == 0


def test_theorem2_chain_is_one_example_ridge():
    d = 2
    lam = sympy.Symbol("lam", positive=True)
    x1, xq = symbols("x", d), symbols("q", d)
    y1 = sympy.Symbol("y", real=True)
    pred = programs.sherman_morrison_step(d, lam).predict(x1[None, :], [y1], xq)[-1]
    x = sympy.Matrix(x1)
    w = (lam * sympy.eye(d) + x * x.T).inv() * x * y1
    assert sympy.simplify(pred - (w.T * sympy.Matrix(xq))[0]) == 0
