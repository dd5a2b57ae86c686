"""The four RAW instructions (docs/CONSTRUCTION.md section 4) and exactly what each does.

A hidden state ``H`` has one row per layout row and one column per token
(``T`` columns); trailing axes, if any, hold independent tasks run side by
side. Every instruction maps ``H`` to a new ``H'``:

* every output is computed from ``H`` (the state *before* the instruction),
  so an instruction may read the register it writes (``w <- w * y``);
* only the rows of the written register change; every other row of every
  column keeps its value;
* the written register changes in **every** column, by the same rule. The
  compiled layers (one per instruction, or several instructions fused in one) do the same, so
  the exact machine and the network agree on every column, not just the
  one a theorem is about.

``Mov`` is the one instruction that looks at other columns. Column ``i``
reads column ``max(i - offset, 0)``: ``offset=1`` is "the previous column",
``offset=0`` a copy inside the column. The paper writes ``mov(s, t, ...)``
for one source column ``s`` and one destination ``t``; its chains use
``t = s + 1`` (column 0 -> 1, then 1 -> 2), which is ``Mov(offset=1)``
restricted to the column the theorem reads. Causal attention selecting
"``offset`` tokens back" does exactly this, including the clamp: a column
with fewer than ``offset`` predecessors can only see column 0 best.

Instruction objects are immutable and carry register names, never row
numbers; ``paper(layout)`` prints the paper's row-range form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import sympy

from .registers import Layout

# -- constants (coefficients and biases): numbers or sympy expressions ------------


def _const(value, what: str) -> np.ndarray:
    """A read-only array of a constant: float64, or object when any entry is sympy.

    Symbolic entries let the proofs run the very programs the tests run, with
    alpha, lam and w0 as symbols.
    """
    obj = np.array(value, dtype=object)
    if obj.ndim > 2 or obj.size == 0:
        raise ValueError(f"{what}: expected a scalar, vector or matrix, got shape {obj.shape}")
    if any(isinstance(v, sympy.Basic) for v in obj.flat):
        arr = obj
    else:
        try:
            arr = obj.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{what}: entries must be real numbers or sympy expressions") from None
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{what}: entries must be finite, got {arr.tolist()}")
    arr.flags.writeable = False
    return arr


def _exact(c: np.ndarray) -> np.ndarray:
    """A float64 constant as exact sympy rationals (the float's own binary value), for symbolic runs."""
    if c.dtype == object:
        return c
    return np.array([sympy.Rational(v) for v in c.flat], dtype=object).reshape(c.shape)


def _fmt(c) -> str:
    if isinstance(c, sympy.Basic):
        return f"({c})" if c.args else str(c)
    return f"{float(c):.6g}"


def _columns_before(T: int, offset: int) -> np.ndarray:
    return np.maximum(np.arange(T) - offset, 0)


def _size(layout: Layout, who, name: str) -> int:
    if name not in layout:
        raise ValueError(f"{who}: register {name!r} is not in the layout ({', '.join(layout.names)})")
    return layout[name].size


def _require(layout: Layout, who, name: str, size: int, why: str) -> None:
    have = _size(layout, who, name)
    if have != size:
        raise ValueError(f"{who}: register {name!r} has {have} rows, needs {size} ({why})")


# -- the instructions ----------------------------------------------------------


@dataclass(frozen=True)
class Mov:
    """mov: column ``i`` copies register ``src`` of column ``max(i - offset, 0)`` into ``dst``.

    Only ``dst`` changes, and it changes in every column. Columns with fewer
    than ``offset`` predecessors copy from column 0 (for ``offset=1`` that is
    column 0 copying its own ``src``).
    """

    src: str
    dst: str
    offset: int = 1

    kind = "mov"

    def __post_init__(self) -> None:
        if not isinstance(self.offset, int) or isinstance(self.offset, bool) or self.offset < 0:
            raise ValueError(f"mov {self.dst} <- {self.src}: offset must be an int >= 0, got {self.offset!r}")

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.src,)

    @property
    def writes(self) -> str:
        return self.dst

    def check(self, layout: Layout) -> None:
        _require(layout, self, self.dst, _size(layout, self, self.src), f"it receives {self.src!r}")

    def apply(self, H: np.ndarray, layout: Layout) -> np.ndarray:
        out = H.copy()
        out[layout.rows(self.dst)] = H[layout.rows(self.src)][:, _columns_before(H.shape[1], self.offset)]
        return out

    def _source_column(self) -> str:
        return "i" if self.offset == 0 else f"i-{self.offset}"

    def __str__(self) -> str:
        return f"mov  {self.dst} <- {self.src} of column {self._source_column()}"

    def paper(self, layout: Layout) -> str:
        return f"mov({self._source_column()}, i, {layout.paper(self.src)}, {layout.paper(self.dst)})"


@dataclass(frozen=True)
class Mul:
    """mul: in every column, ``out = A @ B`` with ``A`` (a x b) and ``B`` (b x c), row-major.

    ``shape = (a, b, c)``; ``out`` receives the a x c product row-major.
    ``dot`` is the case ``a = c = 1``.
    """

    a: str
    b: str
    out: str
    shape: tuple[int, int, int]

    kind = "mul"

    def __post_init__(self) -> None:
        shape = tuple(self.shape)
        if len(shape) != 3 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape):
            raise ValueError(f"mul {self.out}: shape must be three positive ints (a, b, c), got {self.shape!r}")
        object.__setattr__(self, "shape", shape)

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.a, self.b)

    @property
    def writes(self) -> str:
        return self.out

    def check(self, layout: Layout) -> None:
        p, q, r = self.shape
        _require(layout, self, self.a, p * q, f"left factor {p}x{q}")
        _require(layout, self, self.b, q * r, f"right factor {q}x{r}")
        _require(layout, self, self.out, p * r, f"product {p}x{r}")

    def apply(self, H: np.ndarray, layout: Layout) -> np.ndarray:
        p, q, r = self.shape
        cols = H.shape[1:]  # (T,) or (T, batch...)
        A = H[layout.rows(self.a)].reshape(p, q, -1).transpose(2, 0, 1)
        B = H[layout.rows(self.b)].reshape(q, r, -1).transpose(2, 0, 1)
        out = H.copy()
        out[layout.rows(self.out)] = np.matmul(A, B).transpose(1, 2, 0).reshape(p * r, *cols)
        return out

    def __str__(self) -> str:
        p, q, r = self.shape
        return f"mul  {self.out} <- {self.a} ({p}x{q}) @ {self.b} ({q}x{r})"

    def paper(self, layout: Layout) -> str:
        p, q, r = self.shape
        return f"mul({p}, {q}, {r}, {layout.paper(self.a)}, {layout.paper(self.b)}, {layout.paper(self.out)})"


@dataclass(frozen=True)
class Div:
    """div: in every column, ``out = num / |den|``, ``den`` a one-row register.

    The absolute value is the layer-norm construction's (layer norm divides
    by a standard deviation). A zero divisor in a numeric run is an error.
    """

    num: str
    den: str
    out: str

    kind = "div"

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.num, self.den)

    @property
    def writes(self) -> str:
        return self.out

    def check(self, layout: Layout) -> None:
        _require(layout, self, self.den, 1, "the divisor is one number")
        _require(layout, self, self.out, _size(layout, self, self.num), f"it receives {self.num!r}")

    def apply(self, H: np.ndarray, layout: Layout) -> np.ndarray:
        den = np.abs(H[layout.rows(self.den)])
        if H.dtype != object and np.any(den == 0):
            cols = sorted({int(c) for c in np.argwhere(den[0] == 0)[:, 0]})
            raise ZeroDivisionError(f"{self}: |{self.den}| is 0 in columns {cols}")
        out = H.copy()
        out[layout.rows(self.out)] = H[layout.rows(self.num)] / den
        return out

    def __str__(self) -> str:
        return f"div  {self.out} <- {self.num} / |{self.den}|"

    def paper(self, layout: Layout) -> str:
        return f"div({layout.paper(self.num)}, {layout.span(self.den)[0]}, {layout.paper(self.out)})"


@dataclass(frozen=True, eq=False)
class Aff:
    """aff: in every column, ``out = sum_j W_j h[r_j] + bias``.

    ``terms`` is a sequence of ``(register, W)`` or ``(register, W, label)``.
    ``W`` is a ``|out| x |register|`` matrix, or a scalar ``c`` meaning
    ``c * I`` (then ``|register| = |out|``). ``bias`` is a vector of length
    ``|out|``, a scalar (the same in every row), or ``None``. The paper's aff
    has at most two reads; any number is still one linear map, so one layer.
    Labels ("w0^T") only name constants in printouts.
    """

    out: str
    terms: tuple = ()
    bias: Any = None
    bias_label: str | None = None

    kind = "aff"

    def __post_init__(self) -> None:
        terms = []
        for term in self.terms:
            if not isinstance(term, tuple) or len(term) not in (2, 3) or not isinstance(term[0], str):
                raise ValueError(f"aff {self.out}: a term is (register, W) or (register, W, label), got {term!r}")
            reg, w, *label = term
            w = _const(w, f"aff {self.out}: coefficient of {reg!r}")
            if w.ndim == 1:
                raise ValueError(f"aff {self.out}: coefficient of {reg!r} must be a scalar or a matrix, got a vector")
            terms.append((reg, w, label[0] if label else None))
        object.__setattr__(self, "terms", tuple(terms))
        if self.bias is not None:
            bias = _const(self.bias, f"aff {self.out}: bias")
            if bias.ndim == 2:
                raise ValueError(f"aff {self.out}: bias must be a scalar or a vector, got shape {bias.shape}")
            object.__setattr__(self, "bias", bias)

    @property
    def reads(self) -> tuple[str, ...]:
        return tuple(reg for reg, _, _ in self.terms)

    @property
    def writes(self) -> str:
        return self.out

    def check(self, layout: Layout) -> None:
        size = _size(layout, self, self.out)
        for reg, w, _ in self.terms:
            if w.ndim == 0:
                _require(layout, self, reg, size, f"scalar coefficient times {self.out!r}")
            elif w.shape[0] != size:
                raise ValueError(f"{self}: W for {reg!r} has {w.shape[0]} rows, {self.out!r} has {size}")
            else:
                _require(layout, self, reg, w.shape[1], f"W for it has {w.shape[1]} columns")
        if self.bias is not None and self.bias.ndim == 1 and self.bias.shape[0] != size:
            raise ValueError(f"{self}: bias has {self.bias.shape[0]} entries, {self.out!r} has {size}")

    def apply(self, H: np.ndarray, layout: Layout) -> np.ndarray:
        symbolic = H.dtype == object
        acc = np.zeros((layout[self.out].size, *H.shape[1:]), dtype=H.dtype)
        for reg, w, _ in self.terms:
            w = _exact(w) if symbolic else w
            h = H[layout.rows(reg)]
            acc = acc + (w * h if w.ndim == 0 else np.tensordot(w, h, axes=1))
        if self.bias is not None:
            b = _exact(self.bias) if symbolic else self.bias
            acc = acc + (b if b.ndim == 0 else b.reshape(-1, *[1] * (H.ndim - 1)))
        out = H.astype(acc.dtype)  # symbolic constants make a numeric state symbolic
        out[layout.rows(self.out)] = acc
        return out

    def __str__(self) -> str:
        parts = []
        for reg, w, label in self.terms:
            if label:
                parts.append(f"{label} {reg}")
            elif w.ndim == 2:
                parts.append(f"W[{w.shape[0]}x{w.shape[1]}] {reg}")
            elif w == 1:
                parts.append(reg)
            elif w == -1:
                parts.append(f"-{reg}")
            elif isinstance(w.item(), sympy.Basic) and w.item().could_extract_minus_sign():
                parts.append(f"-{_fmt(-w.item())} {reg}")
            else:
                parts.append(f"{_fmt(w.item())} {reg}")
        if self.bias is not None:
            b = self.bias
            parts.append(self.bias_label or (_fmt(b.item()) if b.ndim == 0 else f"b[{b.shape[0]}]"))
        body = " + ".join(parts).replace("+ -", "- ") if parts else "0"
        return f"aff  {self.out} <- {body}"

    def paper(self, layout: Layout) -> str:
        reads = [layout.paper(reg) for reg, _, _ in self.terms]
        consts = [f"W{j + 1}" for j in range(len(self.terms))]
        if self.bias is not None:
            consts.append("b")
        return f"aff({', '.join([*reads, layout.paper(self.out), *consts])})"


Instruction = Union[Mov, Mul, Div, Aff]
