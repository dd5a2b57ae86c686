"""A certificate for every answer: a proven bound on |network - exact answer|, computed as the network runs.

The exact answer is the program run by the exact machine in real arithmetic
on the same inputs (for the programs of ``construct.programs``: the
algorithm's closed form). Write ``H_l`` for the network's state after layer
``l`` (program rows), ``H*_l`` for the machine's after instruction ``l``,
and ``I_l`` for instruction ``l``. Then

    |H_{l+1} - H*_{l+1}| <= |layer_l(H_l) - I_l(H_l)| + |I_l(H_l) - I_l(H*_l)|
                             local error of layer l        propagation of earlier errors

so ``E_{l+1} = propagate_l(E_l) + local_l`` bounds the error of every entry
of every column (``E_0 = 0``: the embedding is exact on program rows).

* **Propagation** uses the instruction's exact semantics on the computed
  state, each kind's own rules (``propagate``, ``second_order``,
  ``pullback``, ``machine_rounding`` in ``construct.instructions``):
  linear instructions (mov, aff, avg) move or combine errors exactly; a product
  ``C = A B`` has ``|dC| <= |A| |dB| + |dA| (|B| + |dB|)``; a division
  ``n / |d|`` has ``|d(n/|d|)| <= (|dn| + |n| |dd| / |d|) / (|d| - |dd|)``
  (infinite when ``|dd| >= |d|``).
* **The local error** of a layer is the pass's own rounding
  (``construct.transformer.rounding``, for the floating-point model stated
  there), plus how far the layer in exact arithmetic, with the pass's
  softmax weights ``A`` and layer norm's ``sigma`` and ``mean``, is from the
  instruction. That second part is the lemmas', evaluated at this run's
  values: the attention weights' distance from one-hot, or from the
  uniform ``1/(i+1)`` for an averaging head (``rounding.selection``, and
  what the target's attention does otherwise: ``targets``); and each MLP mechanism's ``local_error`` (the product's in
  ``instructions.mul``: ``|kappa^2 - 1| |a b|`` with ``kappa = N sqrt(2/D)
  / sigma`` layer norm's actual scale, the Richardson truncation of lemma
  ``gelu_product_bound`` at the scaled operands' actual size, and the
  weights' and layer norm's roundings carried through the units signed:
  one product's units share them, and they cancel there; the division's in
  ``instructions.div``: ``|num| |kappa - 1/|den||``, the bypass truncation
  ``phi(v_min)`` (Mills: ``v Phi(-v) <= phi(v)``) and the weight terms).
  The identities these rely on (the units implement the lemma's formula;
  attention one-hot is the instruction) are proved on the compiled weights
  by ``python -m proofs`` (proofs/layers.py).
* **A program's backward-error rule.** Where the program is ridge's own
  (its registry entry's ``rls``), the intervals of ``A^-1`` and ``w`` are
  capped after every block by ``programs.rls``: the state is the exact RLS
  state of a perturbed ``A``, each block's own error (an interval
  propagated from the block's start, with the state there taken as exact)
  adds to that perturbation, and earlier errors pass through the block
  unchanged, where intervals in absolute values would multiply them.
* Every local-error term, what it bounds and the test that shows it is
  needed (or why it is kept without one): ``docs/CERTIFICATE_TERMS.md``
  (``tests/certificate/test_certificate_terms.py``); a mechanism's terms are its
  ``local_terms``.
* Everything is computed in the network's dtype and inflated by
  ``rounding.SAFETY`` per layer for the rounding of the bound itself.

The certificate is about the numpy pass (``construct.transformer.forward``),
which computes the certified answers; it does not cover ``backend="jax"``
answers (the a-posteriori certificate of ``construct.programs.residual``
does, for the algorithms that have one).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..instructions import MLP
from ..instructions.base import to_data
from ..mechanisms.plan import UNIFORM, ZERO
from ..programs import rls
from ..raw.prompt import x_columns
from ..transformer import forward, rounding
from . import adjoint, verify
from .bounds import DomainError

ADJOINT_BYTES = 512 * 2**20  # the adjoint's cotangents and their slack at once (``Certifier._adjoint``)
WINDOW_BYTES = 32 * 2**20  # the intermediates of the layers run before their analysis (``Certifier._locals``)
STACK_TOKENS = 256  # at most the tokens of the layers analysed at once (``Certifier._locals``), but for one layer


class CertificateError(DomainError):
    """An answer whose certified error bound exceeds the tolerance asked for: refused, not returned."""


@dataclass(frozen=True)
class LayerMechanism:
    """What the certificate needs to know about one layer: each head's offset, and what the MLP computes."""

    offsets: tuple[int, ...]  # per head: the token read is max(i - offset, 0); UNIFORM: the mean over 0..i
    mlp: tuple  # one mechanism per MLP instruction (``instructions.ProductMechanism``, ``DivisionMechanism``)
    ln_scale: float
    attention_scale: float | None = None  # GPT-2 target: the scale its layer norm before attention divides by


@dataclass(frozen=True, eq=False)
class Run:
    """One certified run: ``states`` (L + 1, T, D) of the numpy pass; ``intervals`` (L + 1, program rows, T),
    a bound on the error of every program entry after each layer (propagated forward in absolute values,
    used for second-order terms); ``bounds``, one per x~ column the prompt has, on the read-out's error;
    ``shares`` (L, columns), with ``components``, each layer's part of ``bounds``; ``output`` the read-out."""

    states: np.ndarray
    intervals: np.ndarray
    bounds: np.ndarray
    shares: np.ndarray | None
    output: np.ndarray  # (T,): the read-out at every token


@dataclass(frozen=True, eq=False)
class Certificate:
    """The network's predictions and, for each, a proven bound on its distance from the exact answer.

    ``predictions`` and ``bounds`` have one entry per x~ column (NaN where the
    program predicts nothing); ``sources`` names the certificate each bound
    comes from (``"mechanism"``, ``"residual"``, or ``"none"`` where no
    certificate covers the answer and the bound is inf), and ``by_source``
    holds every certificate's own bounds; ``errors`` (L + 1, program rows,
    T), from the mechanism certificate, bounds every program register entry
    after each layer (None for the JAX pass).
    """

    predictions: np.ndarray
    bounds: np.ndarray
    errors: np.ndarray | None
    sources: np.ndarray | None = None
    by_source: dict | None = None


def _require_zero_sums(W1: np.ndarray, l: int) -> None:
    """Each unit's input weights sum to zero up to the rounding of its compensation weight (exact sums, fsum)."""
    u = np.finfo(W1.dtype).eps / 2
    for k in range(W1.shape[1]):
        column = W1[:, k].astype(np.float64).tolist()
        if abs(math.fsum(column)) > 4 * u * math.fsum(abs(x) for x in column):
            raise ValueError(f"layer {l + 1}, unit {k}: the input weights do not sum to zero (no compensation on the "
                             "zero row?), so layer norm's mean does not drop out; the certificate does not apply")


@dataclass(eq=False)
class LocalContext:
    """The certificate's view of the layers applying one stored layer, which an MLP mechanism's ``local_error``
    reads: the weights, the stored layer, the pass's intermediates and their rounding bounds (the layers' tokens
    stacked, ``tokens`` per layer: ``Certifier._locals``), layer norm's intended scale, the attention's error on
    every row, and what the mechanism's ``prepare`` found in the stored weights."""

    w: object
    stored: int
    parts: forward.LayerParts
    mlp: rounding.MLPBound
    ln_scale: float
    attention_error: np.ndarray
    tokens: int
    prepared: object = None
    cache: dict | None = None  # what a mechanism derives from the stored weights alone, kept across layers and runs

    def per_layer(self, flags: np.ndarray) -> np.ndarray:
        """``flags`` (one per stacked token) made true on every token of a layer where one of its tokens is."""
        return np.repeat(flags.reshape(-1, self.tokens).any(axis=1), self.tokens)

    @cached_property
    def normed_unbounded(self) -> np.ndarray:
        """The rows (D,) where layer norm's rounding bound (``rounding.normed_error``'s slack) is infinite at some
        token: none where ``rounding.normed_error_finite`` shows it, else found from the whole bound, once per layer."""
        if rounding.normed_error_finite(self.parts):
            return np.zeros(self.parts.normed.shape[1], dtype=bool)
        return ~np.all(np.isfinite(rounding.normed_error(self.parts)[1]), axis=0)

    def normed(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Layer norm's rounding, signed (``rounding.normed_error``), on the rows ``rows``."""
        return rounding.normed_error(self.parts, rows)


class Certifier:
    """Runs a compiled network's numpy pass with the running error analysis; one per network."""

    def __init__(self, net) -> None:
        w, layout = net.weights, net.layout
        self._cache = {}
        self.net, self.w = net, w
        self.width = P = net.program.layout.width
        self._require_structure(w, layout, net.program, P)
        for u in range(w.stored):
            _require_zero_sums(w.W1[u], u)
        self._prepared = {}  # (stored layer, mechanism class) -> what its ``prepare`` found in the weights
        self._weights_cache = {}  # for ``LocalContext.cache``
        self._selections = {}  # (T, offsets) -> ``_selected``
        self._pulls = {}  # the adjoint's plans (``adjoint.Cotangents``), kept across runs
        zero = layout.span(ZERO)[0]
        for l, mech in enumerate(net.mechanisms):
            u = int(w.order[l])
            for kind in dict.fromkeys(type(m) for m in mech.mlp):
                if (u, kind) not in self._prepared:  # float64 also for float32 weights
                    self._prepared[u, kind] = kind.prepare(w.W1[u], w.W2[u], [m for m in mech.mlp if type(m) is kind],
                                                           mech.ln_scale, zero, u)
        self._checks = [self._check_layer(l, mech) for l, mech in enumerate(net.mechanisms)]
        self.passes = net.target.certified_pass(net)
        self._rls = _rls_rule(net.program)
        self._checkpoints = {}  # instruction index -> the block it ends (0: the setup)
        if self._rls is not None:
            start, size = net.program.block
            self._checkpoints = {start + b * size - 1: b for b in range(net.program.n + 1)}

    def _check_layer(self, l: int, mech: LayerMechanism) -> tuple:
        """The weights at depth ``l`` against the instructions the network says it runs there (``verify``): the
        attention's map, and the rows each MLP mechanism reads and writes. Returns the ``AttentionCheck`` and,
        per mechanism, the rows it reads -> the program rows meant. Refuses (ValueError) an MLP that writes
        other program rows than its instructions'."""
        net, w = self.net, self.w
        u = int(w.order[l])
        instructions = net.layer_instructions(l + 1)
        key = (u, tuple(map(id, instructions)))
        if key not in self._cache:
            layout, P = net.layout, self.width
            check = verify.attention_check(w, u, mech.offsets, instructions, net.program.layout, P)
            mlp = [ins for ins in instructions if ins.phase == MLP]
            if len(mlp) != len(mech.mlp):
                raise ValueError(f"layer {l + 1}: {len(mlp)} MLP instructions but {len(mech.mlp)} mechanisms; the "
                                 "certificate does not apply")
            writes = set()
            reads = []
            for ins, m in zip(mlp, mech.mlp):
                if tuple(m.out) != tuple(range(*layout.span(ins.writes))):
                    raise ValueError(f"layer {l + 1}: the MLP of {ins} writes rows {list(m.out)}, not those of "
                                     f"{ins.writes!r}; the certificate does not apply")
                writes.update(m.out)
                reads.append(ins.reads_of(m, net.program.layout))
            written = {int(r) for r in np.flatnonzero(np.any(w.W2[u][:, :P] != 0, axis=0) | (w.b2[u][:P] != 0))}
            if written - writes:
                raise ValueError(f"layer {l + 1}: its MLP writes program rows {sorted(written - writes)} that none of "
                                 "its instructions writes; the certificate does not apply")
            self._cache[key] = (check, reads)
        return self._cache[key]

    @staticmethod
    def _require_structure(w, layout, program, P: int) -> None:
        """What the certificate assumes of the weights, checked: layer norm without gain or bias (the product and
        division analysis), an embedding that places the prompt on program rows exactly (E_0 = 0), and a
        one-hot read-out (the answer is the state's entry)."""
        from ..raw.prompt import POS, X_IN, Y_IN

        for name, want in (("ln_gain", 1.0), ("ln_bias", 0.0)):
            if not np.all(getattr(w, name) == want):
                raise ValueError(f"the certificate's product and division analysis assumes {name} = {want}")
        slots = [layout.span(Y_IN)[0], *range(*layout.span(X_IN))]
        embed = np.zeros_like(w.embed[:, :P])
        embed[np.arange(len(slots)), slots] = 1
        positions = np.zeros_like(w.positions[:, :P])
        positions[:, layout.span(POS)[0]] = np.arange(len(positions))
        readout = np.zeros_like(w.readout)
        readout[layout.span(program.readout)[0]] = 1
        if not (np.array_equal(w.embed[:, :P], embed) and np.array_equal(w.positions[:, :P], positions)
                and np.array_equal(w.readout, readout)):
            raise ValueError("the certificate assumes the compiler's embedding, positions and one-hot read-out")

    # -- one layer ------------------------------------------------------------------------------

    def _local(self, l: int, H: np.ndarray, parts: forward.LayerParts) -> np.ndarray:
        """Bound on |layer(H) - I(H)|, (T, D), for the layer at depth ``l`` and its instructions I in order
        (``_locals`` of this one layer)."""
        return self._locals([(l, H, parts)])[0]

    def _locals(self, layers: list) -> list[np.ndarray]:
        """Bound on |layer(H) - I(H)|, (T, D), for each ``(l, H, parts)`` of ``layers``: the layer at depth ``l``,
        its input ``H`` and the pass's intermediates, and the layer's instructions I in order.

        Rows its attention writes are off by the attention's rounding and
        selection errors (its forms, composed, are exactly the attention
        instructions' result; the target adds what its attention does
        otherwise); rows its MLP writes by each mechanism's local error
        (``local_error`` of the kind's mechanism), whose operands are the
        state after attention, each within that attention error of its exact
        value.

        The layers that apply the same stored layer with the same mechanisms
        are analysed at once, one above the next (``forward.stack``): the
        attention's analysis takes a leading axis of layers, and every term of
        the MLP's is per token, so it takes their tokens one layer after
        another (``forward.tokens_of``). The bounds are the same but for the
        order in which a matrix library sums a row's terms, which the rounding
        terms cover in any order; it spares most of the calls at short
        prompts. A layer whose state is not finite, or whose layer norm
        rounding bound may be unbounded (``rounding.normed_error_finite``),
        is analysed alone: which columns and rows those leave unbounded is
        found per layer.
        """
        groups, T = {}, layers[0][1].shape[0]
        for i, (l, H, parts) in enumerate(layers):
            alone = not (np.all(np.isfinite(H)) and rounding.normed_error_finite(parts))
            key = (int(self.w.order[l]), self.net.mechanisms[l], id(self._checks[l][0]), i if alone else None)
            stacks = groups.setdefault(key, [[]])
            if stacks[-1] and (len(stacks[-1]) + 1) * T > STACK_TOKENS:
                stacks.append([])
            stacks[-1].append(i)
        locals_ = [None] * len(layers)
        for (u, mech, _, _), members in ((key, stack) for key, stacks in groups.items() for stack in stacks):
            first = layers[members[0]][0]
            if len(members) == 1:
                _, H, parts = layers[members[0]]
                attention_error = self._attention_local(first, H, parts)
            else:
                H, parts = np.stack([layers[i][1] for i in members]), forward.stack([layers[i][2] for i in members])
                attention_error = self._attention_local(first, H, parts) if self.passes.stacked_attention else \
                    np.stack([self._attention_local(*layers[i]) for i in members])
                parts, attention_error = forward.tokens_of(parts), attention_error.reshape(-1, H.shape[-1])
            local = attention_error
            if mech.mlp:
                mlp = rounding.mlp(self.w, u, parts)
                local = attention_error + mlp.rounding
                context = LocalContext(self.w, u, parts, mlp, mech.ln_scale, attention_error, tokens=T,
                                       cache=self._weights_cache)
                for m in mech.mlp:
                    context.prepared = self._prepared[u, type(m)]
                    local[:, list(m.out)] = m.local_error(context)
            for k, i in enumerate(members):
                locals_[i] = local[k * T:(k + 1) * T]
        return locals_

    def _attention_local(self, l: int, H: np.ndarray, parts: forward.LayerParts) -> np.ndarray:
        """The attention's part of ``_locals`` for the layer at depth ``l`` (T, D): its rounding and selection
        errors, the weights against the instructions, and what the MLP reads against the operands meant; (layers,
        T, D) for the states and ``parts`` of layers stacked (``forward.stack``) that apply what ``l`` does."""
        mech = self.net.mechanisms[l]
        chosen, uniform = self._selected(H.shape[-2], mech.offsets)
        attention_error = self.passes.attention_error(l, H, parts, mech, chosen, uniform)
        check, reads = self._checks[l]
        attention_error[..., : self.width] += check.error(H)  # weights that differ from the instructions
        for mapping in reads:  # what the MLP reads, against the operand entries its instructions mean
            for row, extra in check.read_errors(H, mapping).items():
                attention_error[..., row] += extra
        return attention_error

    def _selected(self, T: int, offsets: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Per head reading at ``offsets``, the token it is meant to read at each of ``T`` positions (m, T), and
        which heads average (m,): no one column. Found once per prompt length and offsets (read-only)."""
        key = (T, offsets)
        if key not in self._selections:
            uniform = np.array([offset == UNIFORM for offset in offsets])
            chosen = np.stack([np.maximum(np.arange(T) - max(offset, 0), 0) for offset in offsets])
            uniform.flags.writeable = chosen.flags.writeable = False
            self._selections[key] = chosen, uniform
        return self._selections[key]

    # -- the run --------------------------------------------------------------------------------

    def run(self, tokens: np.ndarray, components: bool = False) -> Run:
        """The numpy pass on one checked prompt, with the error analysis of every answer (see ``Run``)."""
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):  # an unbounded error is inf, not a warning
            return self._run(tokens, components)

    def _run(self, tokens: np.ndarray, components: bool) -> Run:
        net, P = self.net, self.width
        program, layout = net.program, net.layout
        H = self.passes.embed(tokens)
        T = H.shape[0]
        E = np.zeros((P, T))
        states, intervals, path = [H], [E], []
        # the program's backward-error rule (ridge: ``programs.rls``): ``E_block`` bounds the distance from the
        # block's exact map applied to the state at the block's start, which ``checkpoints`` turn into caps on E
        tracker = self._backward_error(H[:, :P].T)
        E_block = E.copy() if tracker is not None else None
        window, size = [], 0  # layers run and not yet analysed, analysed together (``_locals``)
        for depth in range(len(net.steps)):
            parts = self.passes.layer_parts(depth, H)
            window.append((depth, H, parts))
            size += sum(getattr(parts, field.name).nbytes for field in dataclasses.fields(parts))
            H = parts.out
            states.append(H)
            if size < WINDOW_BYTES and depth + 1 < len(net.steps):
                continue
            for (l, H_in, _), local in zip(window, self._locals(window)):
                local = local[:, :P].T  # program rows x tokens
                # the layer's instructions in order, on the exact machine's intermediate states (computed in floating
                # point: ``slack`` bounds how far those are from exact, and widens the operands of second-order terms)
                mid, slack = H_in[:, :P].T, np.zeros((P, T))
                # where a NaN can be: an instruction's rules change only the rows it writes, so there, except after a
                # checkpoint, whose caps may put one anywhere on the state's rows
                anywhere = False
                for k in net.steps[l].instructions:
                    ins = program.instructions[k]
                    remainder = _no_nan(ins.second_order(mid, E + slack, layout, slack)) if ins.nonlinear else None
                    path.append((l, ins, mid, remainder))  # None: a linear instruction's remainder, 0
                    rows = slice(None) if anywhere else layout.rows(ins.writes)
                    E = _no_nan_on(ins.propagate(mid, E, layout, slack), rows)
                    if tracker is not None:
                        E_block = _no_nan_on(ins.propagate(mid, E_block, layout, slack), rows)
                    slack = _no_nan_on(ins.propagate(mid, slack, layout, slack) + ins.machine_rounding(mid, layout),
                                       rows)
                    anywhere = False
                    try:
                        mid = ins.apply(mid, program.layout)
                    except ZeroDivisionError as err:  # a divisor the domain bounds away from 0 is 0 here
                        raise DomainError(f"layer {l + 1}: {err}, below the floor the network was built for; the "
                                          "answer is refused") from None
                    if tracker is not None and k in self._checkpoints:
                        self._checkpoint(tracker, self._checkpoints[k], mid, slack, E, E_block)
                        anywhere = True
                E = _no_nan(E + local) * rounding.SAFETY[H.dtype]
                if tracker is not None:
                    E_block = _no_nan(E_block + local) * rounding.SAFETY[H.dtype]
                path.append((l, None, None, local))
                intervals.append(E)
            window, size = [], 0
        columns = x_columns(program.n)[x_columns(program.n) < T]
        bounds, shares = self._adjoint(path, len(net.steps), T, H.dtype, columns, components)
        bounds = np.minimum(bounds, E[layout.span(program.readout)[0], columns])
        output, bounds = self.passes.readout(H, columns, bounds)
        return Run(np.stack(states), np.stack(intervals), bounds, shares, output)

    def _backward_error(self, state: np.ndarray):
        """A ``programs.rls.BackwardError`` for this run (``state``: the embedded prompt, program rows x T), or None
        where the program is not its algorithm's own (``_rls_rule``)."""
        if self._rls is None:
            return None
        return rls.BackwardError(self._rls, self.net.program.layout, state, self.net.program.params["lam"])

    def _checkpoint(self, tracker, block: int, mid, slack, E, E_block) -> None:
        """After block ``block`` (0: the setup): cap E on the state's rows by the backward-error bounds, and start
        the next block's ``E_block`` from the state as it is."""
        cap_M, cap_W = tracker.checkpoint(block, mid, slack, E_block)
        for name, cap in ((self._rls.inverse, cap_M), (self._rls.weights, cap_W)):
            rows = self.net.program.layout.rows(name)
            E[rows] = np.minimum(E[rows], cap[None, :])
            E_block[rows] = 0.0

    def _adjoint(self, path, depth: int, T: int, dtype, columns, components):
        """First-order bounds of each answer through the instructions' exact Jacobians, with rigorous remainders.

        Along the instructions in order, ``d_{j+1} = J_j d_j + r_j`` (J_j the
        instruction's Jacobian at its input, r_j the second-order remainder
        of a product or division), and each layer adds its local error e_l
        after its last instruction; so an answer's error is the sum of
        ``<lambda, e_l>`` and ``<lambda, r_j>`` with ``lambda`` pulled back
        from the answer (``lambda <- J^T lambda``). The pullbacks are computed
        in floating point; ``slack`` bounds their rounding, propagated with
        ``|J|^T``. Unlike propagating ``|E|`` forward, this keeps the signs
        that make a stable recurrence damp its errors. Each step runs on the
        (answer, column) pairs where a cotangent is nonzero (``adjoint``).

        Answers are independent of one another here, so they are taken in
        groups whose cotangents fit in ``ADJOINT_BYTES`` (two arrays of
        answers x program rows x tokens: 3.3 GB each for gd at d = 8, n =
        1024, all answers at once); an answer's bound does not depend on
        its group, but for the order in which a matrix library sums the
        terms of a pullback over the group's columns (``slack`` bounds that
        rounding in any order).
        """
        program, layout = self.net.program, self.net.layout
        readout = layout.span(program.readout)[0]
        bounds = np.zeros(len(columns))
        shares = np.zeros((depth, len(columns))) if components else None
        group = max(1, ADJOINT_BYTES // (2 * self.width * T * np.dtype(np.float64).itemsize))
        for start in range(0, len(columns), group):
            answers = slice(start, start + group)
            cotangents = adjoint.Cotangents(layout, self.width, T, readout, columns[answers], dtype, self._pulls)
            for l, ins, mid, error in reversed(path):
                if error is not None:  # None: a remainder of 0, which weighs 0
                    contribution = cotangents.weigh(error)
                    bounds[answers] += contribution
                    if components:
                        shares[l, answers] += contribution
                if ins is not None:
                    cotangents.pull(ins, mid)
        return bounds * rounding.SAFETY[np.dtype(dtype)], shares


def _rls_rule(program):
    """The algorithm's recursive-least-squares rule (``programs.rls.RLSState``) if ``program`` is exactly the
    program its algorithm builds for its d, n and parameters (the rule's argument is about that block), else None."""
    algorithm = program.algorithm
    rule = getattr(algorithm, "rls", None)
    if rule is None or program.block is None:
        return None
    built = algorithm.build(program.d, program.n, **program.params)
    same = built.block == program.block and len(built.instructions) == len(program.instructions) and all(
        to_data(a) == to_data(b) for a, b in zip(built.instructions, program.instructions))
    return rule if same else None


def _no_nan(x: np.ndarray) -> np.ndarray:
    """Bounds are nonnegative; a NaN can only come from an infinite bound times 0, and stands for 'unbounded'."""
    return np.where(np.isnan(x), np.inf, x)


def _no_nan_on(x: np.ndarray, rows) -> np.ndarray:
    """``_no_nan`` on the rows ``rows`` of a new array ``x``, in place, where its other rows hold no NaN."""
    x[rows] = _no_nan(x[rows])
    return x
