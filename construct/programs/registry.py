"""The algorithm registry: one entry per algorithm, which every consumer reads (command line, demo, export, exact).

An ``Algorithm`` names its program constructor, its parameters (defaults,
help text, the command line's flags), its domain theory (every register's
bound from the input box; each program carries it as ``Program.domain``),
its closed form (``construct.reference``, float64, the ground truth), its
exact form (``construct.exact``, 50 digits), the paper's sizes where the
paper gives them, and whether it is one of the paper's one-example chains.
Adding an algorithm is one module in this package: its program, its theory
and its entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..raw.program import Program
from . import residual


@dataclass(frozen=True)
class Parameter:
    """A parameter of an algorithm: its name (also the command line's ``--name``), default and help; ``vector``
    parameters hold one number per input dimension (default: zeros). ``units`` are its powers of the inputs' and
    the labels' units: scaling x by ``s`` and y by ``t`` and the parameter by ``s^ux t^uy`` scales the algorithm's
    answers by ``t`` (lam: (2, 0), alpha: (-2, 0), w0: (-1, 1))."""

    name: str
    default: float | None
    help: str
    vector: bool = False
    units: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class Algorithm:
    """One registry entry (see the module docstring)."""

    name: str
    summary: str
    build: Callable[..., Program]  # build(d, n, **parameters)
    parameters: tuple[Parameter, ...]
    theory: Callable[..., object]  # theory(d, [n,] *parameters, box) -> raw.domain.Domain, as Program.domain binds it
    closed_form: Callable[..., np.ndarray]  # closed_form(X, y, x_query, **parameters): predictions at every prefix
    exact_weights: Callable[..., list]  # exact_weights(X, y, **parameters): the weights after each prefix, 50 digits
    residual: object = None  # where the a-posteriori certificate reads the answer (``residual.RidgeAnswer``), if any
    rls: object = None  # where a recursive-least-squares program keeps its state (``rls.RLSState``), if it does
    paper_size: Callable[[int], tuple[int, int]] | None = None  # d -> the paper's (layers, rows from row 0, y and x in)
    paper_order: str | None = None  # the paper's orders of growth, where it gives no exact size
    one_example: bool = False  # the paper's one-example chain: n = 1, and it predicts the query only

    def defaults(self, d: int) -> dict:
        return {p.name: (np.zeros(d) if p.vector else p.default) for p in self.parameters}

    def program(self, d: int, n: int, **given) -> Program:
        """The program for ``d`` inputs and ``n`` examples; parameters not given take their defaults."""
        unknown = sorted(set(given) - {p.name for p in self.parameters})
        if unknown:
            raise ValueError(f"{self.name} has no parameters {unknown} (it takes "
                             f"{', '.join(p.name for p in self.parameters)})")
        if self.one_example and n != 1:
            raise ValueError(f"{self.name} is the paper's one-example chain: it needs n = 1, got {n}")
        params = {**self.defaults(d), **{k: v for k, v in given.items() if v is not None}}
        return self.build(d, n, **params)

    def a_posteriori(self, program: Program, state: np.ndarray, X, y, x_query, predictions) -> np.ndarray:
        """Proven bounds on ``predictions`` from the last state of any pass and the prompt alone
        (``residual.from_state``); inf where this algorithm has no such certificate."""
        if self.residual is None:
            return np.full(len(predictions), np.inf)
        return residual.from_state(program, state, X, y, x_query, predictions)

    def closed(self, program: Program, X, y, x_query) -> np.ndarray:
        """The closed-form predictions of ``program`` (built by this entry) on a task, at every prefix."""
        return self.closed_form(X, y, x_query, **program.params)


REGISTRY: dict[str, Algorithm] = {}


def register(algorithm: Algorithm) -> Algorithm:
    if algorithm.name in REGISTRY:
        raise ValueError(f"two algorithms are named {algorithm.name!r}")
    REGISTRY[algorithm.name] = algorithm
    return algorithm


def get(name: str) -> Algorithm:
    if name not in REGISTRY:
        raise ValueError(f"unknown algorithm {name!r}; the registry has {', '.join(REGISTRY)}")
    return REGISTRY[name]
