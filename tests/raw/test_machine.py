import numpy as np
import pytest
import sympy

from construct import Mov, programs, run
from construct.raw.registers import Layout, Register


def test_machine_runs_a_general_program_on_symbols():
    """sgd over two examples, d = 1, with every input a symbol: the recurrence, exactly."""
    a, lam, w0 = sympy.symbols("alpha lam w0")
    x1, x2, xq, y1, y2 = sympy.symbols("x1 x2 xq y1 y2")
    preds = programs.sgd(1, 2, a, lam, [w0]).predict([[x1], [x2]], [y1, y2], [xq])

    def step(w, x, y):
        return w - 2 * a * (x * (x * w - y) + lam * w)

    w1 = step(w0, x1, y1)
    expected = [w0 * x1, w1 * x2, step(w1, x2, y2) * xq]
    assert [sympy.expand(p - e) for p, e in zip(preds, expected)] == [0, 0, 0]


def test_run_does_not_modify_its_input_and_checks_the_state():
    layout = Layout([Register("a", (1,)), Register("b", (1,))])
    H = np.array([[1.0, 2.0], [0.0, 0.0]])
    out = run([Mov("a", "b", 1)], H, layout)
    assert H.tolist() == [[1.0, 2.0], [0.0, 0.0]] and out.tolist() == [[1.0, 2.0], [1.0, 1.0]]
    with pytest.raises(ValueError, match="must have 2 rows"):
        run([], np.zeros((3, 2)), layout)
    with pytest.raises(ValueError, match="float64 or an object array"):
        run([], np.zeros((2, 2), dtype=np.float32), layout)
    with pytest.raises(ValueError, match="instruction 1: .*'c' is not in the layout"):
        run([Mov("a", "c", 1)], H, layout)
