"""Bad input gives a ValueError that names the argument, before anything runs."""

import numpy as np
import pytest

from construct import programs

GOOD = dict(X=np.ones((2, 3)), y=np.ones(2), x_query=np.ones(3))


@pytest.mark.parametrize("build, name", [
    (lambda: programs.sgd(2.5, 2, 0.1, 0.1), "d"),
    (lambda: programs.sgd(0, 2, 0.1, 0.1), "d"),
    (lambda: programs.sgd(True, 2, 0.1, 0.1), "d"),
    (lambda: programs.ridge(3, 2.0, 1.0), "n"),
    (lambda: programs.ridge(3, 0, 1.0), "n"),
    (lambda: programs.sgd(3, "2", 0.1, 0.1), "n"),
    (lambda: programs.sgd(3, 2, -0.1, 0.1), "alpha"),
    (lambda: programs.sgd(3, 2, float("inf"), 0.1), "alpha"),
    (lambda: programs.sgd_step(3, 0.1, -1.0, np.zeros(3)), "lam"),
    (lambda: programs.ridge(3, 2, 0.0), "lam"),
    (lambda: programs.ridge(3, 2, -1.0), "lam"),
    (lambda: programs.sherman_morrison_step(3, float("nan")), "lam"),
    (lambda: programs.sgd(3, 2, 0.1, 0.1, w0=np.zeros(2)), "w0"),
    (lambda: programs.sgd_step(3, 0.1, 0.1, [0.0, np.nan, 0.0]), "w0"),
    (lambda: programs.sgd_step(3, 0.1, 0.1, None), "w0"),
])
def test_bad_parameters(build, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        build()


@pytest.mark.parametrize("change, name", [
    (dict(X=np.ones((2, 4))), "X"),
    (dict(X=np.ones(3)), "X"),
    (dict(X=np.ones((3, 3))), "n"),
    (dict(y=np.ones(3)), "y"),
    (dict(y=np.ones((2, 1))), "y"),
    (dict(x_query=np.ones(2)), "x_query"),
    (dict(X=np.array([[1.0, np.nan, 0.0], [0.0, 0.0, 0.0]])), "X"),
    (dict(y=np.array([np.inf, 0.0])), "y"),
    (dict(x_query=np.array([0.0, -np.inf, 0.0])), "x_query"),
    (dict(X=[["a", "b", "c"], ["d", "e", "f"]]), "X"),
])
@pytest.mark.parametrize("program", [programs.sgd(3, 2, 0.1, 0.1), programs.ridge(3, 2, 1.0)], ids=["sgd", "ridge"])
def test_bad_tasks(program, change, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        program.predict(**{**GOOD, **change})


def test_overflow_stops_the_run_naming_the_instruction():
    """x = 1e120: block 1 gives w = 0.4e120, block 2 wx = 4e239 and then grad = x err = 4e359, the first
    overflow, in instruction 15 (the second block's grad). An overflow ignored would surface later as an
    invalid operation (inf - inf) in another instruction, which this message does not match."""
    program = programs.sgd(1, 3, 0.2, 0.0)
    X = np.full((3, 1), 1e120)
    with pytest.raises(FloatingPointError, match=r"^instruction 15 \(mul  grad <- x \(1x1\) @ err \(1x1\)\): "
                                                 r"overflow encountered"):
        program.predict(X, np.ones(3), np.ones(1))


def test_programs_refuse_writing_the_prompt():
    from construct import Aff, Program
    from construct.raw.prompt import input_registers
    from construct.raw.registers import Layout, Register

    layout = Layout(input_registers(1) + [Register("pred", (1,))])
    with pytest.raises(ValueError, match="writes the input register 'x_in'"):
        Program("bad", 1, 1, layout, (Aff("x_in", bias=0.0),))
