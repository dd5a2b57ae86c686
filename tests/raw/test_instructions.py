"""Each instruction's semantics on every column, against loops written from docs/CONSTRUCTION.md section 4."""

import numpy as np
import pytest
import sympy
from hypothesis import given
from hypothesis import strategies as st

from construct.instructions import Aff, Div, Mov, Mul
from construct.raw.registers import Layout, Register

LAYOUT = Layout([Register("a", (2, 3)), Register("b", (3, 2)), Register("c", (2, 2)), Register("s", (1,)),
                 Register("v", (2,))])


def random_state(seed, T):
    return np.random.default_rng(seed).normal(size=(LAYOUT.width, T))


def unchanged_outside(H, H2, name):
    rows = np.ones(LAYOUT.width, bool)
    rows[LAYOUT.rows(name)] = False
    return np.array_equal(H[rows], H2[rows])


@given(seed=st.integers(0, 10**6), T=st.integers(1, 9), offset=st.integers(0, 5))
def test_mov_reads_offset_columns_back_clamped_at_zero(seed, T, offset):
    lay = Layout([Register("src", (2,)), Register("dst", (2,)), Register("other", (3,))])
    H = np.random.default_rng(seed).normal(size=(lay.width, T))
    H2 = Mov("src", "dst", offset).apply(H, lay)
    for i in range(T):
        source = i - offset if i >= offset else 0
        assert np.array_equal(H2[2:4, i], H[0:2, source])
    assert np.array_equal(H2[[0, 1, 4, 5, 6]], H[[0, 1, 4, 5, 6]])


def test_mov_in_place_reads_the_old_state():
    lay = Layout([Register("w", (1,))])
    H = np.array([[1.0, 2.0, 3.0]])
    assert Mov("w", "w", 1).apply(H, lay).tolist() == [[1.0, 1.0, 2.0]]


@given(seed=st.integers(0, 10**6), T=st.integers(1, 5))
def test_mul_is_the_matrix_product_in_every_column(seed, T):
    H = random_state(seed, T)
    H2 = Mul("a", "b", "c", (2, 3, 2)).apply(H, LAYOUT)
    for t in range(T):
        A, B = H[0:6, t], H[6:12, t]
        for i in range(2):
            for k in range(2):
                expected = sum(A[3 * i + j] * B[2 * j + k] for j in range(3))
                assert H2[12 + 2 * i + k, t] == pytest.approx(expected, rel=1e-14, abs=1e-14)
    assert unchanged_outside(H, H2, "c")


def test_div_divides_by_absolute_value_and_refuses_zero():
    H = random_state(0, 4)
    H[LAYOUT.rows("s")] = [[-2.0, 4.0, 0.5, -1.0]]
    H2 = Div("v", "s", "v").apply(H, LAYOUT)
    assert np.allclose(H2[LAYOUT.rows("v")], H[LAYOUT.rows("v")] / np.array([2.0, 4.0, 0.5, 1.0]), rtol=0, atol=0)
    assert unchanged_outside(H, H2, "v")
    H[LAYOUT.rows("s")] = [[1.0, 0.0, 1.0, 0.0]]
    with pytest.raises(ZeroDivisionError, match=r"\|s\| is 0 in columns \[1, 3\]"):
        Div("v", "s", "v").apply(H, LAYOUT)


def test_aff_matrices_scalars_and_bias():
    H = random_state(1, 3)
    W = np.array([[1.0, 2.0], [3.0, -1.0]])
    ins = Aff("c", (("v", np.kron(W, [[1.0], [1.0]])[:4, :]), ("c", 0.5)), bias=[1.0, 0.0, 2.0, -3.0])
    H2 = ins.apply(H, LAYOUT)
    for t in range(3):
        v, c = H[LAYOUT.rows("v"), t], H[LAYOUT.rows("c"), t]
        M = np.kron(W, [[1.0], [1.0]])[:4, :]
        expected = [sum(M[r, j] * v[j] for j in range(2)) + 0.5 * c[r] + [1.0, 0.0, 2.0, -3.0][r] for r in range(4)]
        assert np.allclose(H2[LAYOUT.rows("c"), t], expected, rtol=1e-15, atol=1e-15)
    assert unchanged_outside(H, H2, "c")


def test_symbolic_state_and_constants():
    lay = Layout([Register("p", (2,)), Register("q", (2,))])
    a, b, c, e = sympy.symbols("a b c e")
    H = np.array([[a, b], [c, e], [0, 0], [0, 0]], dtype=object)
    lam = sympy.Symbol("lam")
    H2 = Aff("q", (("p", lam),), bias=1).apply(H, lay)
    assert H2[2, 0] == lam * a + 1 and H2[3, 1] == lam * e + 1
    H3 = Div("p", "p", "q").apply(H[:, :1], Layout([Register("p", (1,)), Register("x", (1,)), Register("q", (1,)), Register("r", (1,))]))
    assert H3[2, 0] == a / sympy.Abs(a)


def test_register_form_and_paper_form():
    assert str(Mov("x_in", "x", 1)) == "mov  x <- x_in of column i-1"
    assert Mov("v", "c", 2).paper(Layout([Register("v", (2,)), Register("c", (2,))])) == "mov(i-2, i, [0, 2), [2, 4))"
    assert str(Mul("a", "b", "c", (2, 3, 2))) == "mul  c <- a (2x3) @ b (3x2)"
    assert Mul("a", "b", "c", (2, 3, 2)).paper(LAYOUT) == "mul(2, 3, 2, [0, 6), [6, 12), [12, 16))"
    assert Div("v", "s", "v").paper(LAYOUT) == "div([17, 19), 16, [17, 19))"
    assert str(Aff("w", (("w", 1), ("g", -0.2)))) == "aff  w <- w - 0.2 g"
    assert str(Aff("w", (("x", [[1.0, 2.0]], "w0^T"),), bias=1)) == "aff  w <- w0^T x + 1"
    assert Aff("w", (("w", 1), ("g", -0.2))).paper(Layout([Register("w", (1,)), Register("g", (1,))])) == \
        "aff([0, 1), [1, 2), [0, 1), W1, W2)"


@pytest.mark.parametrize("ins, message", [
    (Mul("a", "b", "c", (3, 2, 2)), r"'a' has 6 rows, needs 6|'b' has 6 rows, needs 4"),
    (Mul("a", "b", "zz", (2, 3, 2)), r"'zz' is not in the layout"),
    (Div("v", "c", "v"), r"'c' has 4 rows, needs 1"),
    (Mov("a", "c", 1), r"'c' has 4 rows, needs 6"),
    (Aff("c", (("v", 1.0),)), r"'v' has 2 rows, needs 4"),
    (Aff("c", (("v", np.ones((3, 2))),)), r"W for 'v' has 3 rows"),
    (Aff("c", bias=[1.0, 2.0]), r"bias has 2 entries"),
])
def test_check_names_the_register(ins, message):
    with pytest.raises(ValueError, match=message):
        ins.check(LAYOUT)


@pytest.mark.parametrize("make, message", [
    (lambda: Mov("a", "b", -1), "offset"),
    (lambda: Mul("a", "b", "c", (2, 0, 1)), "shape"),
    (lambda: Aff("c", (("v", float("nan")),)), "finite"),
    (lambda: Aff("c", (("v", [1.0, 2.0]),)), "scalar or a matrix"),
    (lambda: Aff("c", bias="abc"), "real numbers"),
    (lambda: Aff("c", ("v", 1.0)), "a term is"),
])
def test_malformed_instructions(make, message):
    with pytest.raises(ValueError, match=message):
        make()
