"""Hostile input to the library's own functions: a ValueError that names the argument, never a silent change.

float64 conversion would silently drop an imaginary part or a mask, parse
strings, and turn a value beyond float64 into inf; products of parameters
beyond 1e150 overflow. Each case must raise ``ValueError`` with its pattern,
and no warning on the way (a ComplexWarning would mean the value was cast
first). The older checks of shapes, NaN and parameter ranges are in
test_bad_input.py.

``EXTREME``: numbers of a legal type that float64 cannot hold, or whose
domain it cannot (an integer beyond 1.8e308 raised OverflowError or a ufunc
TypeError; a box whose theory bounds overflow or underflow, bounds whose
constants overflow): a ``ValueError`` (``FloatRangeError`` for a domain,
``WeightsFileError`` for a file) naming the argument. ``SIZES``: calls whose
size or time is refused (``SizeError``) before anything is allocated or
planned, within a second.
"""

import functools
import json
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from construct import (Aff, Bounds, FloatRangeError, Program, SizeError, WeightsFileError, compile, load, programs,
                       reference, save)
from construct.compiler import estimate
from construct.raw.prompt import input_registers
from construct.raw.registers import Layout, Register
from construct.tasks import TaskDistribution, gaussian_tasks

from support import bad_input_counts

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


# -- numbers float64 cannot hold, and domains whose constants it cannot ------------------------------

HUGE = 10**400  # a Python integer: float() raises OverflowError on it, numpy.isfinite a TypeError
BEYOND = r"an integer of magnitude about 1e\+400, beyond float64's range"
SGD = programs.sgd(3, 2, 0.1, 0.1)


@functools.cache
def small_network():
    return compile(RIDGE, x_max=2.0, y_max=2.0)


def predict(**options):
    return lambda: small_network().predict(GOOD["X"] * 0.5, GOOD["y"], GOOD["x_query"] * 0.5, **options)


def box(program, dtype=np.float64, **given):
    return lambda: compile(program, **{"x_max": 1.0, "y_max": 1.0, **given}, dtype=dtype)


def ones(program, floor=1.0, value=1.0):
    return Bounds(dict.fromkeys(program.layout.names, value), {"den1": floor})


@functools.cache
def saved_ridge() -> tuple[Path, dict, dict]:
    """A weights file (ridge, d = 2, n = 3), its manifest and its arrays, to edit."""
    program = programs.ridge(2, 3, 0.5)
    path = save(compile(program, Bounds.calibrate(program, gaussian_tasks(2, 3, 16, seed=1))),
                Path(tempfile.mkdtemp(prefix="hostile_api_")) / "ridge.npz")
    with zipfile.ZipFile(path) as z:
        manifest = json.loads(z.read("manifest.json"))
        arrays = {name[:-4]: np.lib.format.read_array(z.open(name)) for name in z.namelist() if name.endswith(".npy")}
    return path, manifest, arrays


def edited_file(edit):
    """Load the ridge file with its manifest's bounds edited (and the arrays as they were)."""
    def call():
        path, manifest, arrays = saved_ridge()
        manifest = json.loads(json.dumps(manifest))
        edit(manifest["bounds"])
        edited = path.with_name("edited.npz")
        with zipfile.ZipFile(edited, "w") as z:
            z.writestr("manifest.json", json.dumps(manifest))
            for name, a in arrays.items():
                with z.open(f"{name}.npy", "w") as f:
                    np.lib.format.write_array(f, a)
        load(edited)
    return call


def scaled(factor):
    return lambda bounds: bounds.update(values={k: v * factor for k, v in bounds["values"].items()})


EXTREME = {
    # integers beyond float64, and a size beyond numpy's index arithmetic
    "alpha an integer beyond float64": (lambda: programs.sgd(3, 2, HUGE, 0.1), ValueError,
                                        rf"alpha must be a finite real number, got {BEYOND}"),
    "w0 holding an integer beyond float64": (lambda: programs.sgd(3, 2, 0.1, 0.1, w0=[HUGE, 0, 0]), ValueError,
                                             r"w0 contains NaN, inf or a number beyond float64's range at index "
                                             r"\(0,\)"),
    "X holding an integer beyond float64": (machine(X=[[1, HUGE, 0], [0, 0, 0]]), ValueError, r"X contains NaN, inf "
                                            r"or a number beyond float64's range at index \(0, 1\)"),
    "n = 2^63": (lambda: programs.sgd(3, 2**63, 0.1, 0.1), ValueError, r"n must be an integer in \[1, 2147483647\], "
                 r"got 9223372036854775808"),
    "a bound an integer beyond float64": (lambda: Bounds({"w": HUGE}, {}), ValueError, rf"bound for register 'w' "
                                          rf"must be a positive number, got {BEYOND}"),
    "margin an integer beyond float64": (calibrate(margin=HUGE), ValueError, rf"margin must be a finite number >= 1, "
                                         rf"got {BEYOND}"),
    "x_max an integer beyond float64": (box(RIDGE, x_max=HUGE), ValueError, rf"x_max must be a finite number > 0, "
                                        rf"got {BEYOND}"),
    "tolerance an integer beyond float64": (predict(tolerance=HUGE), ValueError, rf"tolerance must be a number >= 0 "
                                            rf"or None, got {BEYOND}"),
    "a negative tolerance": (predict(tolerance=-1e-9), ValueError, r"tolerance must be a number >= 0 or None, got "
                             r"-1e-09"),
    "x_scale an integer beyond float64": (lambda: TaskDistribution(2, 2, x_scale=HUGE), ValueError,
                                          rf"x_scale must be a positive number .*got {BEYOND}"),
    # input boxes whose theory bounds leave float64
    "x_max = 1e300": (box(RIDGE, x_max=1e300), FloatRangeError, r"the input box \(x_max = 1e\+300, y_max = 1\) is "
                      r"so large that a bound derived from it by ridge's theory overflows float64"),
    "x_max = 1e-300": (box(RIDGE, x_max=1e-300), FloatRangeError, r"the input box \(x_max = 1e-300, y_max = 1\) is "
                       r"so small that the bound on register 'den' derived from it by ridge's theory underflows to 0"),
    "x_max = y_max = 1e-300, SGD": (box(SGD, x_max=1e-300, y_max=1e-300), FloatRangeError, r"the input box "
                                    r"\(x_max = 1e-300, y_max = 1e-300\) is so small that the bound on register "
                                    r"'grad' derived from it by sgd's theory underflows to 0"),
    "x_norm = 1e-320": (box(RIDGE, x_norm=1e-320), FloatRangeError, r"\(x_max = 1, y_max = 1, x_norm = 9\.99989e-321"
                        r"\) is so small that the bound on register 'den'"),
    # bounds whose compiled constants or weights leave the dtype
    "y_max = 1e300": (box(RIDGE, y_max=1e300), FloatRangeError, r"ridge \(d = 3, n = 2\) cannot be compiled in "
                      r"float64 for this domain \(a constant overflows\): its bounds run from [\d.]+ \(register "
                      r"'gain'\) to 2\.22e\+300 \(register 'e'\)"),
    "every bound 1e308": (lambda: compile(RIDGE, ones(RIDGE, value=1e308)), FloatRangeError,
                          r"\(a constant overflows\): its bounds run from 1e\+308 .* given explicitly"),
    "a divisor floor of 1e-300": (lambda: compile(RIDGE, ones(RIDGE, floor=1e-300)), FloatRangeError,
                                  r"\(a constant overflows\): .*divisor floors down to 1e-300"),
    "estimate with every bound 1e308": (lambda: estimate(RIDGE, ones(RIDGE, value=1e308)), FloatRangeError,
                                        r"cannot be compiled in float64 for this domain \(a constant overflows\)"),
    "x_max = 5e-324, SGD": (box(SGD, x_max=5e-324), FloatRangeError, r"sgd \(d = 3, n = 2\) cannot be compiled in "
                            r"float64 for this domain \(weights: W1 has non-finite entries\): its bounds run from "
                            r"4\.94e-324 \(register 'x_in'\)"),
    "float32, x_max = 1e30": (box(RIDGE, np.float32, x_max=1e30), FloatRangeError, r"cannot be compiled in float32 "
                              r"for this domain \(weights: \w+ has non-finite entries\)"),
    # weights files whose manifest states such a domain (load raised OverflowError)
    "a file with every bound x1e200": (edited_file(scaled(1e200)), WeightsFileError, r"ridge\.npz|edited\.npz: the "
                                       r"manifest's program does not compile: .*\(a constant overflows\)"),
    "a file with x_in 1e200": (edited_file(lambda b: b["values"].update(x_in=1e200)), WeightsFileError,
                               r"does not compile: .*\(a constant overflows\).* to 1e\+200 \(register 'x_in'\)"),
    "a file with a divisor floor 1e-300": (edited_file(lambda b: b["floors"].update(den1=1e-300)), WeightsFileError,
                                           r"does not compile: .*divisor floors down to 1e-300"),
    "a file with a divisor floor 1e-200": (edited_file(lambda b: b["floors"].update(den1=1e-200)), WeightsFileError,
                                           r"does not compile: .*divisor floors down to 1e-200"),
    "a file with every bound x1e-300": (edited_file(scaled(1e-300)), WeightsFileError, r"does not compile: .*"
                                        r"\(weights: W1 has non-finite entries\)"),
}


@pytest.mark.parametrize("case", EXTREME)
def test_numbers_beyond_float64_are_refused_naming_the_argument(case):
    call, error, pattern = EXTREME[case]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning on the way
        with pytest.raises(error, match=pattern):
            call()


def test_tolerance_0_refuses_every_answer_with_a_nonzero_bound():
    """tolerance=0: "refuse anything uncertain". An answer with a bound above 0 (rounding) is refused, naming the
    tolerance; one whose certificate proves it exact (ridge's first prediction, 0 from no examples) is not; the
    answers are those of tolerance=None."""
    from construct.compiler.certificate import CertificateError

    net = small_network()
    task = (GOOD["X"] * 0.5, GOOD["y"], GOOD["x_query"] * 0.5)
    preds, bounds = net.predict(*task, tolerance=None, return_bound=True)
    assert bounds[-1] > 0
    with pytest.raises(CertificateError, match=r"the query's prediction .* has a certified error bound [\d.e+-]+ "
                                               r"\((mechanism|residual) certificate\), above the tolerance 0 x its "
                                               r"scale"):
        net.predict(*task, tolerance=0)
    batch = net.predict_batch(*(a[None] for a in task), outside="nan", tolerance=0)
    assert np.isnan(batch).all()
    exact_ones = np.flatnonzero(bounds == 0)
    for k in exact_ones:  # a bound of exactly 0 is a proof that the answer is exact
        assert preds[k] == 0.0 and k == 0


# -- sizes and times refused before anything is allocated or planned ------------------------------------------


@functools.cache
def built(name: str):
    """What a case runs on, built once and before the clock starts (a program of 10^5 examples, 1.2 million
    instructions for ridge, takes seconds to build; compile must not plan it)."""
    if name == "by hand":  # 300,000 instructions with no declared block to size them from
        layout = Layout(input_registers(1) + [Register("pred", (1,))])
        return Program("by_hand", 1, 1, layout, (Aff("pred", (("x_in", 1.0),)),) * 300_000)
    return {"ridge": lambda: programs.ridge(2, 10**5, 0.5), "sgd": lambda: programs.sgd(2, 10**5, 0.05, 0.1),
            "ridge, n = 10^4": lambda: programs.ridge(2, 10**4, 0.5),
            "10^4 tasks": lambda: gaussian_tasks(8, 32, 10**4), "8 tasks": lambda: gaussian_tasks(2, 10**4, 8)}[name]()


SIZES = {
    "ridge, n = 10^5": (lambda: compile(built("ridge"), x_max=1, y_max=1), r"ridge \(d = 2, n = 100000, float64\) "
                        r"would need 400001 layers \(6 stored\), .* about \d+\.\d\d GiB to build and run, above "
                        r"the limit of 4\.00 GiB; raise the limit \(compile\(\.\.\., max_bytes=\.\.\.\)"),
    "sgd, n = 10^5": (lambda: compile(built("sgd"), x_max=1, y_max=1), r"sgd \(d = 2, n = 100000, float64\) would "
                      r"need 200001 layers \(4 stored\), .*above the limit of 4\.00 GiB"),
    "ridge, n = 10^5, no memory limit": (lambda: compile(built("ridge"), x_max=1, y_max=1, max_bytes=None),
                                         r"would take about 10 min to compile \(400,001 layers at 1\.5 ms each, "
                                         r".* above the limit of 120 s; raise the limit \(compile\(\.\.\., "
                                         r"max_seconds=\.\.\.\)"),
    "ridge, n = 1000, max_seconds = 1": (lambda: compile(programs.ridge(2, 1000, 0.5), x_max=1, y_max=1,
                                                         max_seconds=1), r"ridge \(d = 2, n = 1000, float64\) would "
                                         r"take about 6 s to compile \(4,001 layers"),
    "sgd, n = 10^5, gpt2 blocks": (lambda: compile(built("sgd"), x_max=1, y_max=1, architecture="gpt2"),
                                   r"sgd \(d = 2, n = 100000, float64\) would need 200001 layers"),
    "a program by hand of 300,000 instructions": (lambda: compile(built("by hand"), ones(built("by hand")),
                                                                  max_seconds=1),
                                                  r"by_hand \(d = 1, n = 1\) has 300,000 instructions: scheduling "
                                                  r"them would take more than 6 s .* above the limit of 1 s"),
    "calibrating ridge, n = 10^4": (lambda: Bounds.calibrate(built("ridge, n = 10^4"), built("8 tasks")),
                                    r"calibrating ridge \(d = 2, n = 10000\) on 8 tasks would take about [\d.]+ h "
                                    r"\(the exact machine runs 120,005 instructions .*above the limit of 120 s"),
    "calibrating on 10^4 tasks": (lambda: Bounds.calibrate(programs.ridge(8, 32, 0.5), built("10^4 tasks")),
                                  r"calibrating ridge \(d = 8, n = 32\) on 10000 tasks would need about [\d.]+ GiB "
                                  r"of memory .*above the limit of 4\.00 GiB; raise the limit \(Bounds\.calibrate"),
    "max_seconds = -1": (lambda: compile(RIDGE, x_max=1, y_max=1, max_seconds=-1), r"max_seconds must be a positive "
                         r"number or None, got -1"),
}


@pytest.mark.parametrize("case", SIZES)
def test_sizes_are_refused_before_anything_is_planned(case):
    """Each refused within a second of the call (building a program of 10^5 examples, before it, takes seconds):
    compile planned every layer of such a program before its size check, and sgd with n = 10^5 ran for hours."""
    call, pattern = SIZES[case]
    for name in ("ridge", "sgd", "by hand", "ridge, n = 10^4", "10^4 tasks", "8 tasks"):
        built(name)
    start = time.perf_counter()
    with pytest.raises((SizeError, ValueError), match=pattern):
        call()
    assert time.perf_counter() - start < 1.0


def test_reals_that_stay_reals_are_accepted():
    """Booleans and integer dtypes are numbers: refusing complex, masked and text input did not refuse these."""
    got = RIDGE.predict(np.array([[True, False, True], [0, 1, 0]]), np.array([1, 2], dtype=np.int8), [0, 0, 1])
    assert np.allclose(got, reference.ridge([[1, 0, 1], [0, 1, 0]], [1, 2], [0, 0, 1], 1.0))


def test_the_largest_parameters_are_accepted():
    assert programs.sgd(3, 2, 1e150, 1e150).params["alpha"] == 1e150
    assert programs.ridge(3, 2, 1e-150).params["lam"] == 1e-150
    assert programs.ridge(3, 2, 2**64).params["lam"] == 2.0**64  # beyond int64: numpy.isfinite raised TypeError


def test_the_bad_input_page_counts_every_library_category():
    """docs/BAD_INPUT.md's rows for the library (test_hostile_cli.py counts the command line's)."""
    counts = bad_input_counts()
    assert {row: n for row, n in counts.items() if row.startswith("library")} == {
        "library API inputs": len(CASES),
        "library: numbers beyond float64": len(EXTREME) + 1,  # and tolerance=0
        "library: sizes and time": len(SIZES),
    }
