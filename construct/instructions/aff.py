"""aff: in every column, ``out = sum_j W_j h[r_j] + bias``; the self head and the attention bias compute it.

Compiled (``compose``): the self head adds ``sum_j W_j h[r_j] - out`` (its
value map reads the terms' rows and minus the old ``out``), the residual
adds ``out`` back, and the attention's output bias adds ``bias``. A term
reading a register an earlier instruction of the same layer wrote reads that
instruction's linear form, so a chain of affine instructions is one layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy

from ..raw.registers import Layout
from ..transformer import rounding
from .base import ATTENTION, Instruction, constant, exact, fmt, names, require, size


@dataclass(frozen=True, eq=False)
class Aff(Instruction):
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
    phase = ATTENTION

    def __post_init__(self) -> None:
        terms = []
        for term in self.terms:
            if not isinstance(term, tuple) or len(term) not in (2, 3) or not isinstance(term[0], str):
                raise ValueError(f"aff {self.out}: a term is (register, W) or (register, W, label), got {term!r}")
            reg, w, *label = term
            w = constant(w, f"aff {self.out}: coefficient of {reg!r}")
            if w.ndim == 1:
                raise ValueError(f"aff {self.out}: coefficient of {reg!r} must be a scalar or a matrix, got a vector")
            terms.append((reg, w, label[0] if label else None))
        object.__setattr__(self, "terms", tuple(terms))
        if self.bias is not None:
            bias = constant(self.bias, f"aff {self.out}: bias")
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
        rows = size(layout, self, self.out)
        for reg, w, _ in self.terms:
            if w.ndim == 0:
                require(layout, self, reg, rows, f"scalar coefficient times {self.out!r}")
            elif w.shape[0] != rows:
                raise ValueError(f"{self}: W for {reg!r} has {w.shape[0]} rows, {self.out!r} has {rows}")
            else:
                require(layout, self, reg, w.shape[1], f"W for it has {w.shape[1]} columns")
        if self.bias is not None and self.bias.ndim == 1 and self.bias.shape[0] != rows:
            raise ValueError(f"{self}: bias has {self.bias.shape[0]} entries, {self.out!r} has {rows}")

    def apply(self, H: np.ndarray, layout: Layout) -> np.ndarray:
        symbolic = H.dtype == object
        acc = np.zeros((layout[self.out].size, *H.shape[1:]), dtype=H.dtype)
        for reg, w, _ in self.terms:
            w = exact(w) if symbolic else w
            h = H[layout.rows(reg)]
            acc = acc + (w * h if w.ndim == 0 else np.tensordot(w, h, axes=1))
        if self.bias is not None:
            b = exact(self.bias) if symbolic else self.bias
            acc = acc + (b if b.ndim == 0 else b.reshape(-1, *[1] * (H.ndim - 1)))
        out = H.astype(acc.dtype)  # symbolic constants make a numeric state symbolic
        out[layout.rows(self.out)] = acc
        return out

    @property
    def symbolic(self) -> bool:
        """Whether a coefficient or the bias is a sympy expression (for proofs; compile needs numbers)."""
        return any(c is not None and c.dtype == object for c in [*(w for _, w, _ in self.terms), self.bias])

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
                parts.append(f"-{fmt(-w.item())} {reg}")
            else:
                parts.append(f"{fmt(w.item())} {reg}")
        if self.bias is not None:
            b = self.bias
            parts.append(self.bias_label or (fmt(b.item()) if b.ndim == 0 else f"b[{b.shape[0]}]"))
        body = " + ".join(parts).replace("+ -", "- ") if parts else "0"
        return f"aff  {self.out} <- {body}"

    def paper(self, layout: Layout) -> str:
        reads = [layout.paper(reg) for reg, _, _ in self.terms]
        consts = [f"W{j + 1}" for j in range(len(self.terms))]
        if self.bias is not None:
            consts.append("b")
        return f"aff({', '.join([*reads, layout.paper(self.out), *consts])})"

    # -- export ---------------------------------------------------------------------------------------------------

    def to_data(self) -> dict:
        return {
            "out": self.out,
            "terms": [{"register": reg, "coefficient": _numbers(w, f"a coefficient of {self}"), "label": label}
                      for reg, w, label in self.terms],
            "bias": None if self.bias is None else _numbers(self.bias, f"the bias of {self}"),
            "bias_label": self.bias_label,
        }

    @classmethod
    def from_data(cls, spec: dict) -> "Aff":
        (out,) = names(spec, "out")
        terms = []
        if not isinstance(spec["terms"], list):
            raise ValueError(f"aff {out}: terms must be a list, got {spec['terms']!r}")
        for t in spec["terms"]:
            if not isinstance(t, dict):
                raise ValueError(f"aff {out}: a term is an object, got {t!r}")
            (register,) = names(t, "register")
            label = t["label"]
            if label is not None and not isinstance(label, str):
                raise ValueError(f"aff {out}: a term's label must be a string or null, got {label!r}")
            terms.append((register, _numeric(t["coefficient"]), label))
        bias = None if spec["bias"] is None else _numeric(spec["bias"])
        label = spec["bias_label"]
        if label is not None and not isinstance(label, str):
            raise ValueError(f"aff {out}: bias_label must be a string or null, got {label!r}")
        return cls(out, tuple(terms), bias, label)

    # -- compile rule ---------------------------------------------------------------------------------------------

    @property
    def fan_in(self) -> int:
        return sum(1 if W.ndim == 0 else W.shape[1] for _, W, _ in self.terms) + 1

    def magnitude(self) -> "Aff":
        return Aff(self.out, tuple((reg, np.abs(W), label) for reg, W, label in self.terms),
                   None if self.bias is None else np.abs(self.bias))

    def compose(self, ctx, forms) -> None:
        """Each output row's form: the terms' forms (as the layer's earlier instructions left them) combined with
        the coefficients, plus the bias (all rows read before any is set: ``out`` may be a term)."""
        out_rows = list(ctx.rows(self.out))
        bias = [0.0] * len(out_rows) if self.bias is None else (
            [float(self.bias)] * len(out_rows) if self.bias.ndim == 0 else [float(b) for b in self.bias])
        new = []
        for a, o in enumerate(out_rows):
            parts = []
            for reg, w, _ in self.terms:
                read_rows = ctx.rows(reg)
                if w.ndim == 0:
                    parts.append((read_rows[a], float(w)))
                else:
                    parts += [(r, float(w[a, b])) for b, r in enumerate(read_rows) if w[a, b] != 0]
            form, b = forms.combine(parts)
            new.append((o, form, b + bias[a]))
        for o, form, b in new:
            forms.set(o, form, b)

    # -- certificate rules --------------------------------------------------------------------------------------------

    def propagate(self, H: np.ndarray, E: np.ndarray, layout: Layout, slack=None) -> np.ndarray:
        """``|sum W_j dh_j| <= sum |W_j| |dh_j|``."""
        out = E.copy()
        rows = layout.rows(self.out)
        acc = np.zeros((rows.stop - rows.start, H.shape[1]))
        for reg, W, _ in self.terms:
            acc += abs(float(W)) * E[layout.rows(reg)] if W.ndim == 0 else np.abs(W) @ E[layout.rows(reg)]
        out[rows] = acc
        return out

    def machine_rounding(self, H: np.ndarray, layout: Layout) -> np.ndarray:
        """A dot product of k terms and the bias: within ``gamma_{k+1}`` of its value (``rounding``'s model)."""
        out = np.zeros_like(H)
        rows = layout.rows(self.out)
        acc, terms = np.zeros((rows.stop - rows.start, H.shape[1])), 1
        for reg, W, _ in self.terms:
            h = np.abs(H[layout.rows(reg)])
            acc += abs(float(W)) * h if W.ndim == 0 else np.abs(W) @ h
            terms += 1 if W.ndim == 0 else W.shape[1]
        if self.bias is not None:
            acc += np.abs(self.bias).reshape(-1, 1) if self.bias.ndim else abs(float(self.bias))
        out[rows] = rounding.gamma(terms + 1, rounding.unit_roundoff(H.dtype)) * acc
        return out

    def pullback_terms(self, tokens: int) -> int:
        return sum(1 if W.ndim == 0 else W.shape[0] for _, W, _ in self.terms) + 1

    def pullback(self, H: np.ndarray, lam: np.ndarray, layout: Layout, absolute: bool = False) -> np.ndarray:
        """``J^T lam = sum_j W_j^T lam_out`` on each term's register (``|W_j|^T`` with ``absolute``)."""
        out = lam.copy()
        rows = layout.rows(self.out)
        seed = lam[:, rows].copy()
        out[:, rows] = 0.0
        for reg, W, _ in self.terms:
            r = layout.rows(reg)
            if W.ndim == 0:
                out[:, r] += (abs(float(W)) if absolute else float(W)) * seed
            else:
                out[:, r] += np.einsum("ao,kat->kot", np.abs(W) if absolute else W, seed)
        return out


def _numbers(value, what: str):
    """A float64 constant as JSON (a float or nested lists); symbolic constants are refused."""
    arr = np.asarray(value)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"save: {what} is not numeric ({value!r}); only numeric programs can be exported "
                         "(symbolic constants are for proofs)")
    return arr.astype(np.float64).tolist()


def _numeric(value) -> np.ndarray:
    flat = np.array(value, dtype=object).ravel()
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in flat):
        raise ValueError(f"a constant must hold numbers only, got {value!r}")
    return np.array(value, dtype=np.float64)
