"""A compiled network: the weights, the domain they were built for, and how to run and inspect them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..raw.program import Program
from ..raw.prompt import X_IN, Y_IN, check_task, finite_float, shown, tokens, x_columns
from ..raw.registers import Layout
from ..transformer.gpt2 import GPT2Weights
from ..transformer.weights import Weights
from . import certificate, targets
from .bounds import Bounds, DomainError

DEFAULT_TOLERANCE = 1e-6


def _jax():
    """The JAX pass, imported on first use: JAX takes about 130 MB and a second to import, which a user of the
    numpy pass (the certified answers) does not need."""
    from ..transformer import forward_jax

    return forward_jax


def check_tolerance(tolerance) -> None:
    """A number >= 0, or None. 0 refuses every answer whose certified bound is not exactly 0."""
    if tolerance is None:
        return
    number = finite_float(tolerance) if isinstance(tolerance, (int, float)) else None
    if number is None or number < 0:
        raise ValueError(f"tolerance must be a number >= 0 or None, got {shown(tolerance)}")


@dataclass(frozen=True)
class LayerReport:
    """One layer: its instructions, each with its a-priori error bound (absolute, on every entry it writes)
    and its register's bound, and the constants the layer uses."""

    index: int
    parts: tuple[tuple[str, float, float], ...]  # (instruction, predicted error, register bound)
    constants: dict

    @property
    def instruction(self) -> str:
        return "; ".join(text for text, _, _ in self.parts)

    @property
    def predicted_error(self) -> float:
        return max(error for _, error, _ in self.parts)

    @property
    def out_bound(self) -> float:
        return max(bound for _, _, bound in self.parts)

    @property
    def relative_error(self) -> float:
        return max(error / bound for _, error, bound in self.parts)



@dataclass(frozen=True)
class LayerCheck:
    """One register one layer wrote, against the exact machine run on that layer's own input state:
    the largest absolute error over its entries and tokens, the same relative to ``1 + |exact|``, and the
    a-priori bound the compiler declared for the instruction that wrote it last."""

    layer: int
    instruction: object
    register: str
    error: float
    relative: float
    predicted: float


@dataclass(frozen=True, eq=False)
class Trace:
    """Hidden states after the embedding and after each layer, rows labelled by register."""

    states: np.ndarray  # (L + 1, D, T): the machine's orientation
    layout: Layout

    @property
    def labels(self) -> tuple[str, ...]:
        return self.layout.labels

    def register(self, name: str) -> np.ndarray:
        """``(L + 1, size, T)``: the register's value after each layer (0 = embedding)."""
        return self.states[:, self.layout.rows(name), :]


@dataclass(frozen=True, eq=False)
class CompiledNetwork:
    """A program's transformer: weights, the domain it was built for, and its predicted errors."""

    program: Program
    weights: Weights
    layout: Layout
    bounds: Bounds
    constants: dict
    layers: tuple[LayerReport, ...]
    mechanisms: tuple[certificate.LayerMechanism, ...]
    steps: tuple  # schedule.Step per layer: which instructions it runs
    gpt2: GPT2Weights | None = None  # compile(..., architecture="gpt2"): the GPT-2 blocks that run (``targets``)
    target: object = None  # the architecture's ``targets`` object (None: the paper's layer)

    def __post_init__(self) -> None:
        if self.target is None:
            object.__setattr__(self, "target", targets.target("paper" if self.gpt2 is None else "gpt2"))

    @property
    def architecture(self) -> str:
        """``"paper"`` (the paper's layer, ``weights`` run) or ``"gpt2"`` (GPT-2 blocks, ``gpt2`` run)."""
        return self.target.name

    def layer_instructions(self, l: int) -> tuple:
        """The instructions layer ``l`` (1-based) runs, attention's then the MLP's, in program order."""
        return tuple(self.program.instructions[k] for k in self.steps[l - 1].instructions)

    # -- running ---------------------------------------------------------------

    def _tokens(self, X, y, x_query) -> np.ndarray:
        # causal attention: the first 2k + 1 columns of a full prompt are the same computation
        X, y, x_query = check_task(X, y, x_query, self.program.d, self.program.n, prefix=not self.program.query_only)
        if X.dtype == object or y.dtype == object or x_query.dtype == object:
            raise ValueError("a compiled network runs on numbers; use the program for symbolic inputs")
        self.bounds.check_task(X, y, x_query)
        return tokens(X, y, x_query)

    def _guard(self, peak: np.ndarray, low: np.ndarray) -> None:
        """Every program register within its bound and every divisor above its floor, in every layer.

        ``peak`` and ``low`` are the largest and smallest ``|value|`` of each
        row over the tokens, after the embedding and after each layer.
        """
        if not np.all(np.isfinite(peak)):
            raise DomainError("the forward pass produced NaN or inf; the task is outside the network's domain")
        for name in self.program.layout.names:
            reg_peak = peak[:, self.layout.rows(name)].max(axis=1)
            bound = self.bounds.values[name]
            over = np.flatnonzero(reg_peak > bound * (1 + 1e-6))
            if over.size:
                l = int(over[0])
                where = "the embedding" if l == 0 else f"layer {l} ({self.layers[l - 1].instruction})"
                raise DomainError(
                    f"register {name!r} reached {reg_peak[l]:.6g} after {where}, beyond its declared bound "
                    f"{bound:.6g}; " + self._outside(name))
        for l in range(1, len(self.steps) + 1):  # the divisor as the layer divides by it: after its attention,
            for ins in self.layer_instructions(l):  # so in the state after the layer (its MLP does not write it)
                if ins.divisor:
                    value = float(low[l, self.layout.span(ins.divisor)[0]])
                    floor = self.bounds.floors[ins.divisor]
                    if value < floor * (1 - 1e-6):
                        raise DomainError(
                            f"divisor {ins.divisor!r} fell to {value:.6g} in layer {l} ({ins}), below its declared "
                            f"floor {floor:.6g}; " + self._outside(ins.divisor))

    def _outside(self, name: str) -> str:
        """Why a register left its bound: the task's run left the domain, or (a task inside the box the theory
        bounds, whose exact values never leave them) the network's own error passed the slack."""
        box = self.bounds.box
        if box is None or name in (X_IN, Y_IN):
            return "the task is outside the domain this network was compiled for"
        return (f"the task is inside the box {box}, whose exact values stay within the bounds {self.program.name}'s "
                f"theory derives (Bounds.for_inputs), so the network's own error on {name!r} passed their slack: "
                "the box is too wide for this network's precision (a narrower box, x_norm, or a larger ridge "
                "penalty narrows the range of values one bound per register must resolve)")

    def _no_jax(self) -> None:
        if not self.target.jax:
            raise ValueError(f"the JAX pass runs the paper's architecture; a network compiled for {self.architecture} "
                             "runs on numpy (backend='numpy'), Hugging Face (construct.hf) or TransformerLens "
                             "(construct.tl)")

    def _read(self, out: np.ndarray) -> np.ndarray:
        preds = out[x_columns((len(out) - 1) // 2)].astype(np.float64)
        if self.program.query_only:
            preds[:-1] = np.nan
        return preds

    def certify(self, X, y, x_query, backend: str = "numpy") -> certificate.Certificate:
        """Predictions, each with a proven bound on its distance from the exact answer and the certificate that
        gave it (``Certificate.sources``).

        ``backend="numpy"`` runs the reference pass with the mechanism
        certificate (``certificate.Certifier``: every layer's local errors,
        propagated); ``backend="jax"`` the JAX pass, which has none. Either
        way, an algorithm with an a-posteriori certificate (ridge:
        ``construct.programs.residual``) is also certified from the last
        state and the prompt, and each answer gets the smaller sound bound;
        an answer no certificate covers has the bound inf. Raises
        ``DomainError`` if the task leaves the network's domain.
        """
        tokens = self._tokens(X, y, x_query)
        if backend == "numpy":
            run = self._certifier.run(tokens)
            magnitude = np.abs(run.states)
            self._guard(magnitude.max(axis=1), magnitude.min(axis=1))
            predictions, last = self._read(run.output), run.states[-1]
            prior = run.bounds.astype(np.float64)
            intervals = run.intervals
        elif backend == "jax":
            self._no_jax()
            out, peak, low, last = _jax().forward_monitored(self.weights, tokens)
            self._guard(peak, low)
            predictions, prior, intervals = self._read(out), np.full(len(x_columns(len(X))), np.inf), None
        else:
            raise ValueError(f"backend must be 'numpy' or 'jax', got {backend!r}")
        return self._combined(predictions, prior, intervals, last, X, y, x_query)

    def _combined(self, predictions, prior, intervals, last, X, y, x_query) -> certificate.Certificate:
        """The mechanism certificate's bounds (``prior``, inf for a pass without it) and the a-posteriori
        certificate's, if the algorithm has one, whichever is smaller for each answer."""
        by_source = {"mechanism": prior}
        algorithm = self.program.algorithm
        if algorithm is not None and algorithm.residual is not None:
            state = np.asarray(last, np.float64)[:, : self.program.layout.width]
            by_source["residual"] = algorithm.a_posteriori(self.program, state, X, y, x_query, predictions)
        names = list(by_source)
        stacked = np.stack([by_source[name] for name in names])
        best = np.argmin(stacked, axis=0)
        bounds = stacked[best, np.arange(stacked.shape[1])]
        sources = np.array([names[k] if np.isfinite(b) else "none" for k, b in zip(best, bounds)], dtype=object)
        missing = np.isnan(predictions)
        bounds[missing], sources[missing] = np.nan, None
        for values in by_source.values():
            values[missing] = np.nan
        return certificate.Certificate(predictions, bounds, intervals, sources, by_source)

    @cached_property
    def _certifier(self) -> certificate.Certifier:
        return certificate.Certifier(self)

    def predict(self, X, y, x_query, backend: str = "numpy", tolerance: float | None = DEFAULT_TOLERANCE,
                return_bound: bool = False):
        """``k + 1`` predictions, one per x~ column, for a prompt of ``k <= n`` examples.

        A network built for ``n`` examples answers any shorter prompt: by
        causality its first ``2k + 1`` columns are the same computation as
        in a full prompt (the one-example chains, which predict only the
        query, need ``k = n``).

        Every answer is certified (``certify``: the mechanism certificate on
        the numpy pass, the a-posteriori one on either pass where the
        algorithm has it) and an answer whose bound exceeds ``tolerance``
        times the prompt's scale (``scale``: the largest of the answer's and
        the labels' magnitudes, so the rule does not depend on the units)
        is refused with a ``CertificateError`` that gives the bound, the
        certificate and, from the mechanism certificate, the layer it comes
        from most. ``tolerance=0`` refuses every answer whose bound is not
        exactly 0; None accepts every answer (uncertified answers too);
        ``return_bound=True`` returns ``(predictions, bounds)``.
        """
        if backend not in ("numpy", "jax"):
            raise ValueError(f"backend must be 'numpy' or 'jax', got {backend!r}")
        check_tolerance(tolerance)
        cert = self.certify(X, y, x_query, backend=backend)
        if tolerance is not None:
            self.accept(cert, tolerance, X, y, x_query, backend=backend)
        return (cert.predictions, cert.bounds) if return_bound else cert.predictions

    def scale(self, y, predictions: np.ndarray) -> np.ndarray:
        """What a tolerance is relative to, per answer: the largest of its magnitude and the labels' (the box's
        label bound for a prompt whose labels are all 0). Scaling x and y scales it with the answers."""
        y = np.asarray(y, dtype=np.float64)
        labels = float(np.max(np.abs(y))) if y.size and np.any(y) else self.bounds.values[Y_IN]
        return np.maximum(np.abs(np.nan_to_num(predictions)), labels)

    def accept(self, cert: certificate.Certificate, tolerance: float, X, y, x_query, backend: str = "numpy") -> None:
        """Refuse (``CertificateError``) the answers of ``cert`` (on this task) whose bound exceeds ``tolerance``
        times the prompt's scale."""
        with np.errstate(over="ignore", invalid="ignore"):  # a tolerance near float64's largest accepts everything
            over = np.flatnonzero(cert.bounds > tolerance * self.scale(y, cert.predictions))
        if over.size:
            raise certificate.CertificateError(self._refusal(cert, int(over[-1]), tolerance, X, y, x_query, backend))

    def _refusal(self, cert, k: int, tolerance: float, X, y, x_query, backend: str) -> str:
        """Why answer ``k`` is refused: its bound and the certificate that gave it, and (the numpy pass) the layer
        whose local errors make most of the mechanism certificate's bound."""
        which = "the query's prediction" if k == len(cert.predictions) - 1 else f"prediction {k} (from {k} examples)"
        head = (f"{which} {cert.predictions[k]:.10g} has a certified error bound {cert.bounds[k]:.3g}"
                + (f" ({cert.sources[k]} certificate)" if cert.sources[k] not in (None, "none") else "")
                + f", above the tolerance {tolerance:g} x its scale {self.scale(y, cert.predictions)[k]:.3g} "
                "(the largest of |prediction| and the labels' magnitudes)")
        if backend != "numpy":
            return (head + "; the JAX pass has only the a-posteriori certificate, which this algorithm "
                    + ("cannot give a small bound here" if cert.sources[k] == "residual" else "does not have")
                    + ": use backend='numpy' for the mechanism certificate, or pass a larger tolerance (None accepts "
                    "every answer)")
        share = self._certifier.run(self._tokens(X, y, x_query), components=True).shares[:, k]
        if np.isfinite(share).all():
            worst = int(np.argmax(share))
            part = f"{share[worst] / share.sum():.0%} of the mechanism certificate's bound comes from"
        else:  # an error reached a divisor, or overflowed: name the last layer where the bound became unbounded
            worst = int(np.flatnonzero(~np.isfinite(share))[-1])
            part = "the mechanism certificate's bound is unbounded from"
        runs = self.layer_instructions(worst + 1)
        writes = ", ".join(repr(ins.writes) for ins in runs)
        return (f"{head}; {part} layer {worst + 1} ({'; '.join(map(str, runs))}), writing "
                f"register{'s' if len(runs) > 1 else ''} {writes}; the task is outside what this network can answer "
                "to that tolerance (pass a larger tolerance to accept it)")

    def predict_batch(self, X, y, x_query, outside: str = "raise", tolerance: float | None = DEFAULT_TOLERANCE,
                      return_bound: bool = False, backend: str = "numpy"):
        """Predictions for a batch of tasks: X (B, n, d), y (B, n), x_query (B, d), each certified and accepted
        like ``predict``. A task outside the network's domain, or above the tolerance, raises; with
        ``outside="nan"`` its row is NaN instead (the others are returned)."""
        if outside not in ("raise", "nan"):
            raise ValueError(f"outside must be 'raise' or 'nan', got {outside!r}")
        X, y, x_query = np.asarray(X), np.asarray(y), np.asarray(x_query)
        if X.ndim != 3 or y.ndim != 2 or x_query.ndim != 2 or not (len(X) == len(y) == len(x_query)):
            raise ValueError(f"a batch needs X (B, n, d), y (B, n), x_query (B, d); got {X.shape}, {y.shape}, "
                             f"{x_query.shape}")
        preds = np.full((len(X), self.program.n + 1), np.nan)
        bounds = preds.copy()
        for k, task in enumerate(zip(X, y, x_query)):
            try:
                preds[k], bounds[k] = self.predict(*task, backend=backend, tolerance=tolerance, return_bound=True)
            except DomainError:
                if outside == "raise":
                    raise
        return (preds, bounds) if return_bound else preds

    def trace(self, X, y, x_query, backend: str = "numpy") -> Trace:
        """The residual stream after every layer, rows labelled by register (for GPT-2 blocks, the residual
        stream TransformerLens calls ``hook_resid_post``, before the final layer norm)."""
        if backend == "numpy":
            states = self.target.hidden_states(self, self._tokens(X, y, x_query))
        elif backend == "jax":
            self._no_jax()
            states = _jax().hidden_states(self.weights, self._tokens(X, y, x_query))
        else:
            raise ValueError(f"backend must be 'numpy' or 'jax', got {backend!r}")
        magnitude = np.abs(states)
        self._guard(magnitude.max(axis=1), magnitude.min(axis=1))
        return Trace(states.transpose(0, 2, 1).astype(np.float64), self.layout)

    def check_layers(self, X, y, x_query) -> list[LayerCheck]:
        """Every layer against its instructions: the exact machine runs them, in order, on the layer's own input.

        Raises ``AssertionError`` if a layer changed a program register none
        of its instructions writes (every such row must be bit for bit the same).
        """
        trace = self.trace(X, y, x_query)
        layout, width = self.program.layout, self.program.layout.width
        checks = []
        for l, step in enumerate(self.steps, 1):
            before, after = trace.states[l - 1][:width], trace.states[l][:width]
            exact, last = before, {}
            for ins, part in zip(self.layer_instructions(l), self.layers[l - 1].parts):
                exact = ins.apply(exact, layout)
                last[ins.writes] = (ins, part[1])
            written = np.zeros(width, bool)
            for name in last:
                written[layout.rows(name)] = True
            if not np.array_equal(after[~written], before[~written]):
                raise AssertionError(f"layer {l} ({self.layers[l - 1].instruction}) changed a register it does not "
                                     "write")
            for name, (ins, predicted) in last.items():
                rows = layout.rows(name)
                err = np.abs(after[rows] - exact[rows])
                checks.append(LayerCheck(l, ins, name, float(err.max()),
                                         float((err / (1 + np.abs(exact[rows]))).max()), predicted))
        return checks

    # -- size ------------------------------------------------------------------

    def size(self) -> dict:
        """Depth, widths and parameter count, with the paper's numbers where it gives them.

        ``paper`` (the paper's one-example chains): its layers and its ``rows``, counted from row 0 with the input
        rows y and x included. Not comparable row for row with ``data_rows`` (ours, without y, x and pos): the
        paper's chains write registers over rows ours keep apart (docs/CONSTRUCTION.md sections 6 and 7).
        """
        w = self.weights
        info = {
            "layers": w.depth, "stored_layers": w.stored, "residual_width": w.width, "mlp_width": w.mlp_width,
            "heads": w.heads, "head_size": w.head_size, "parameters": w.parameter_count,
            "data_rows": self.program.data_rows,
        }
        info.update(self.target.size_info(self))
        algorithm = self.program.algorithm
        if algorithm is not None and algorithm.paper_size is not None:
            layers, rows = algorithm.paper_size(self.program.d)
            info["paper"] = {"layers": layers, "rows": rows}
        return info
