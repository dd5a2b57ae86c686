"""Bad input gives a ValueError that names the argument, before anything runs."""

import warnings

import numpy as np
import pytest

from construct import Bounds, programs, reference
from construct.tasks import gaussian_tasks

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


@pytest.mark.parametrize("build, match", [
    (lambda: programs.sgd(3, 2, 1e151, 0.1), r"alpha = 1e\+151 is outside \[0, 1e\+150\]"),
    (lambda: programs.sgd(3, 2, 0.1, 1e200), r"lam = 1e\+200 is outside \[0, 1e\+150\]"),
    (lambda: programs.ridge(3, 2, 1e200), r"lam = 1e\+200 is outside \[1e-150, 1e\+150\]"),
    (lambda: programs.sherman_morrison_step(3, 1e-200), r"lam = 1e-200 is outside \[1e-150, 1e\+150\]"),
])
def test_parameters_whose_products_overflow_float64(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_the_largest_parameters_are_accepted():
    assert programs.sgd(3, 2, 1e150, 1e150).params["alpha"] == 1e150
    assert programs.ridge(3, 2, 1e-150).params["lam"] == 1e-150


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
    (dict(X=np.ones((2, 3)) + 1j), "X holds complex numbers"),
    (dict(y=[1.0, 2 + 0j]), "y holds complex numbers"),
    (dict(X=np.ma.array(np.ones((2, 3)), mask=np.eye(2, 3))), "X is a masked array"),
    (dict(y=np.array(["1", "2"])), "y must hold real numbers, got dtype <U1"),
    (dict(x_query=[1.0, None, 0.0]), "x_query must hold real numbers, got NoneType None"),
])
@pytest.mark.parametrize("program", [programs.sgd(3, 2, 0.1, 0.1), programs.ridge(3, 2, 1.0)], ids=["sgd", "ridge"])
def test_bad_tasks(program, change, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        program.predict(**{**GOOD, **change})


def test_overflow_stops_the_run_naming_the_instruction():
    program = programs.sgd(1, 3, 0.2, 0.0)
    X = np.full((3, 1), 1e120)
    with pytest.raises(FloatingPointError, match=r"instruction \d+ \(mul"):
        program.predict(X, np.ones(3), np.ones(1))


def test_programs_refuse_writing_the_prompt():
    from construct import Aff, Program
    from construct.raw.prompt import input_registers
    from construct.raw.registers import Layout, Register

    layout = Layout(input_registers(1) + [Register("pred", (1,))])
    with pytest.raises(ValueError, match="writes the input register 'x_in'"):
        Program("bad", 1, 1, layout, (Aff("x_in", bias=0.0),))


def test_reals_that_stay_reals_are_accepted():
    """Booleans and integer dtypes are numbers; refusing complex and masked input did not refuse these."""
    program = programs.ridge(3, 2, 1.0)
    got = program.predict(np.array([[True, False, True], [0, 1, 0]]), np.array([1, 2], dtype=np.int8), [0, 0, 1])
    assert np.allclose(got, reference.ridge([[1, 0, 1], [0, 1, 0]], [1, 2], [0, 0, 1], 1.0))


@pytest.mark.parametrize("change, match", [
    (dict(X=np.ones((2, 3)) + 1j), "X holds complex numbers"),
    (dict(x_query=np.array([1.0, 2 + 0j, 3.0], dtype=object)), "x_query holds complex numbers"),
    (dict(y=np.ma.array([1.0, 2.0], mask=[False, True])), "y is a masked array"),
    (dict(y=np.array(["1", "2"])), "y must hold real numbers, got dtype <U1"),
    (dict(x_query=np.array([1, "2", 3], dtype=object)), "x_query must hold real numbers, got dtype object"),
])
def test_closed_forms_refuse_what_float64_would_silently_change(change, match):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning on the way to the error
        with pytest.raises(ValueError, match=match):
            reference.ridge(**{**GOOD, **change}, lam=1.0)


@pytest.mark.parametrize("options, match", [
    (dict(margin=1e307), r"margin 1e\+307 times the largest \|value\| the tasks reach .* overflows float64"),
    (dict(margin="4"), "margin must be a finite number >= 1, got '4'"),
    (dict(margin=True), "margin must be a finite number >= 1, got True"),
    (dict(margin=float("nan")), "margin must be a finite number >= 1, got nan"),
    (dict(x_max="3"), "x_max must be a finite number > 0"),
    (dict(y_max=-1.0), "y_max must be a finite number > 0"),
])
def test_calibrate_refuses_bad_arguments(options, match):
    with pytest.raises(ValueError, match=match):
        Bounds.calibrate(programs.ridge(2, 2, 0.1), gaussian_tasks(2, 2, 4), **options)
