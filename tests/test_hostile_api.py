"""Hostile input to the library's own functions: a ValueError that names the argument, never a silent change.

float64 conversion would silently drop an imaginary part or a mask, parse
strings, and turn a value beyond float64 into inf; products of parameters
beyond 1e150 overflow. Each case must raise ``ValueError`` with its pattern,
and no warning on the way (a ComplexWarning would mean the value was cast
first). The older checks of shapes, NaN and parameter ranges are in
test_bad_input.py.
"""

import warnings

import numpy as np
import pytest

from construct import Bounds, programs, reference
from construct.tasks import gaussian_tasks

GOOD = dict(X=np.ones((2, 3)), y=np.ones(2), x_query=np.ones(3))
RIDGE = programs.ridge(3, 2, 1.0)


def machine(**change):
    return lambda: RIDGE.predict(**{**GOOD, **change})


def closed_form(**change):
    return lambda: reference.ridge(**{**GOOD, **change}, lam=1.0)


def calibrate(**options):
    return lambda: Bounds.calibrate(programs.ridge(2, 2, 0.1), gaussian_tasks(2, 2, 4), **options)


CASES = {
    # tasks, through the programs (prompt.as_array and check_task)
    "complex X": (machine(X=np.ones((2, 3)) + 1j), r"X holds complex numbers; tasks are real"),
    "complex number in a list": (machine(y=[1.0, 2 + 0j]), r"y holds complex numbers"),
    "complex numpy scalar in an object array": (machine(x_query=np.array([1.0, np.complex64(1), 0.0], dtype=object)),
                                                r"x_query holds complex numbers"),
    "masked X": (machine(X=np.ma.array(np.ones((2, 3)), mask=np.eye(2, 3))), r"X is a masked array, whose mask would "
                 r"be lost"),
    "strings": (machine(y=np.array(["1", "2"])), r"y must hold real numbers, got dtype <U1"),
    "bytes": (machine(y=[b"1", b"2"]), r"y must hold real numbers, got dtype \|S1"),
    "None": (machine(x_query=[1.0, None, 0.0]), r"x_query must hold real numbers, got NoneType None"),
    "dates": (machine(y=np.array(["2020-01-01"] * 2, dtype="datetime64[D]")), r"y must hold real numbers, got dtype "
              r"datetime64\[D\]"),
    "longdouble beyond float64": (machine(y=np.array([1, 1e400], dtype=np.longdouble)), r"y contains NaN, inf or a "
                                  r"number beyond float64's range at index \(1,\)"),
    # tasks, through the closed forms (reference._task)
    "closed form: complex X": (closed_form(X=np.ones((2, 3)) + 1j), r"X holds complex numbers; tasks are real"),
    "closed form: complex in an object array": (closed_form(x_query=np.array([1.0, 2 + 0j, 3.0], dtype=object)),
                                                r"x_query holds complex numbers"),
    "closed form: masked y": (closed_form(y=np.ma.array([1.0, 2.0], mask=[False, True])), r"y is a masked array"),
    "closed form: strings": (closed_form(y=np.array(["1", "2"])), r"y must hold real numbers, got dtype <U1"),
    "closed form: a string in an object array": (closed_form(x_query=np.array([1, "2", 3], dtype=object)),
                                                 r"x_query must hold real numbers, got dtype object"),
    # parameters (programs._scalar)
    "alpha 1e151": (lambda: programs.sgd(3, 2, 1e151, 0.1), r"alpha = 1e\+151 is outside \[0, 1e\+150\], where the "
                    r"program's products of parameters and data stay finite in float64"),
    "SGD lam 1e200": (lambda: programs.sgd(3, 2, 0.1, 1e200), r"lam = 1e\+200 is outside \[0, 1e\+150\]"),
    "ridge lam 1e200": (lambda: programs.ridge(3, 2, 1e200), r"lam = 1e\+200 is outside \[1e-150, 1e\+150\]"),
    "ridge lam 1e-200": (lambda: programs.sherman_morrison_step(3, 1e-200), r"lam = 1e-200 is outside \[1e-150, "
                         r"1e\+150\]"),
    "alpha as a string": (lambda: programs.sgd(3, 2, "0.1", 0.1), r"alpha must be a finite real number, got '0\.1'"),
    # calibration (Bounds.calibrate)
    "margin whose bounds overflow": (calibrate(margin=1e307), r"margin 1e\+307 times the largest \|value\| the tasks "
                                     r"reach \([\d.]+, register '\w+'\) overflows float64; use a smaller margin"),
    "margin as a string": (calibrate(margin="4"), r"margin must be a finite number >= 1, got '4'"),
    "margin True": (calibrate(margin=True), r"margin must be a finite number >= 1, got True"),
    "margin NaN": (calibrate(margin=float("nan")), r"margin must be a finite number >= 1, got nan"),
    "x_max as a string": (calibrate(x_max="3"), r"x_max must be a finite number > 0 \(or None\), got '3'"),
    "negative y_max": (calibrate(y_max=-1.0), r"y_max must be a finite number > 0 \(or None\), got -1\.0"),
}


@pytest.mark.parametrize("case", CASES)
def test_library_refuses(case):
    call, pattern = CASES[case]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning or overflow warning on the way to the error
        with pytest.raises(ValueError, match=pattern):
            call()


def test_reals_that_stay_reals_are_accepted():
    """Booleans and integer dtypes are numbers: refusing complex, masked and text input did not refuse these."""
    got = RIDGE.predict(np.array([[True, False, True], [0, 1, 0]]), np.array([1, 2], dtype=np.int8), [0, 0, 1])
    assert np.allclose(got, reference.ridge([[1, 0, 1], [0, 1, 0]], [1, 2], [0, 0, 1], 1.0))


def test_the_largest_parameters_are_accepted():
    assert programs.sgd(3, 2, 1e150, 1e150).params["alpha"] == 1e150
    assert programs.ridge(3, 2, 1e-150).params["lam"] == 1e-150
