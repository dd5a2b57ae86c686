"""The mechanism certificate's adjoint: every answer's cotangent, pulled back only where it is not zero.

``Certifier._adjoint`` (``certificate.py``) bounds answer k's error by
``sum <|lambda_k| + slack_k, e>`` over the local errors and second-order
remainders ``e`` of the run, with ``lambda_k`` pulled back from the answer
through the instructions (``lambda <- J^T lambda``) and ``slack_k`` bounding
that pullback's rounding. Stored densely, ``lambda`` is (answers, program
rows, tokens), and pulling every instruction back over all of it costs
answers x rows x tokens per instruction: O(n^3) for a program of O(n)
instructions.

Most of it is exactly zero. An entry of column t depends only on columns
<= t (causal attention; an instruction reads its own column, a column
before it, or a prefix mean), so answer k's cotangent is zero on every
later column; and an instruction that writes a register at a column where
its cotangent (and slack) is zero pulls back ``J^T 0 = 0``, adding exact
zeros to the rows it reads (M1: adding zero is exact, and so is a product
with 0 of a finite number). In recursive least squares, answer k's
cotangent on the state sits on one column at a time (each block moves the
state two columns on), so an instruction touches about one column per
answer where the dense pullback touches all of them.

``Cotangents`` therefore keeps, per row segment (the registers' rows), a
mask of the (answer, column) pairs where ``lambda`` or ``slack`` may be
nonzero, a superset of where they are, and computes every step on those
pairs only, with the same floating-point operations entry by entry as the
dense step (only the order of a sum over pairs in ``weigh`` differs):

* a column-local instruction, or a mov (each column's result reads one
  column, ``Instruction.source_columns``), is pulled back on the pairs where
  its written register is live, gathered side by side, by the instruction
  reading those source columns in place (``Instruction.in_place``); an
  instruction reading several columns (avg's prefix mean) is pulled back
  at every column of the answers whose written register is live;
* either way, on the rows of the registers the instruction writes and
  reads alone, gathered under a layout of those registers: a kind's
  pullback touches no other row;
* where a column's state is not finite on the rows an instruction reads,
  ``J^T 0`` is NaN, not 0: those columns are pulled back for every answer,
  as the dense step does;
* the pullback's rounding ``gamma |lambda|`` is added on the written and
  read registers wherever they are live, as the dense step adds it.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from ..raw.registers import Layout
from ..transformer import rounding


DENSE_WEIGH = 2**15  # cotangent entries up to which ``weigh`` takes every entry at once


class Cotangents:
    """Every answer's cotangent ``lam`` and its rounding bound ``slack``, (answers, P, T), with the masks of where
    they may be nonzero; seeded with 1 at each answer's read-out entry (``row``, ``columns[k]``)."""

    def __init__(self, layout, P: int, T: int, row: int, columns: np.ndarray, dtype, plans: dict | None = None) -> None:
        K = len(columns)
        self.layout, self.P, self.T = layout, P, T
        self._plans = {} if plans is None else plans  # ``_plan``s, kept by a caller for every run of its program
        self.u = rounding.unit_roundoff(dtype)
        self.lam = np.zeros((K, P, T))
        self.lam[np.arange(K), row, columns] = 1.0
        self.slack = np.zeros_like(self.lam)
        cuts = sorted({0, P, *(edge for name in layout.names for edge in layout.span(name) if edge <= P)})
        self.segments = [(a, b) for a, b in zip(cuts, cuts[1:])]
        self._cuts = np.array(cuts)
        self._of = {name: [s for s, (a, b) in enumerate(self.segments) if layout.span(name)[0] <= a
                           and b <= layout.span(name)[1]] for name in layout.names}
        self.live = np.zeros((len(self.segments), K, T), dtype=bool)
        self.live[self._of_row(row), np.arange(K), columns] = True
        self._pairs = {}  # segment -> its live pairs (answers, columns), until its mask changes

    def _of_row(self, row: int) -> int:
        return next(s for s, (a, b) in enumerate(self.segments) if a <= row < b)

    def live_in(self, name: str) -> np.ndarray:
        """(answers, T): where ``name``'s cotangent or slack may be nonzero."""
        return np.any(self.live[self._of[name]], axis=0)

    def _segment_pairs(self, s: int) -> tuple[np.ndarray, np.ndarray]:
        """Segment ``s``'s live pairs (answers, columns), found once until its mask changes."""
        if s not in self._pairs:
            self._pairs[s] = np.nonzero(self.live[s])
        return self._pairs[s]

    def pairs_of(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The live pairs (answers, columns) of register ``name``."""
        segments = self._of[name]
        return self._segment_pairs(segments[0]) if len(segments) == 1 else np.nonzero(self.live_in(name))

    def weigh(self, error: np.ndarray) -> np.ndarray:
        """``sum_{p,t} (|lam| + slack)[k, p, t] error[p, t]`` for each answer k, over the live pairs; a weight of
        exactly 0 makes its term 0 even where the error is unbounded (an entry no answer depends on cannot move
        it), as it is 0 off the live pairs."""
        K = self.lam.shape[0]
        if self.lam.size <= DENSE_WEIGH:  # few entries: all at once, in fewer calls than pair by pair
            weights, error = np.abs(self.lam) + self.slack, error[: self.P]
            finite = np.isfinite(error)
            if finite.all():
                total = (weights * error).sum(axis=(1, 2))
            else:
                total = (weights * np.where(finite, error, 0.0)).sum(axis=(1, 2))
                total[np.any((weights != 0) & ~finite, axis=(1, 2))] = np.inf
            return np.where(np.isnan(total), np.inf, total)
        total = np.zeros(K)
        reached = np.zeros(K, dtype=bool)
        erring = np.flatnonzero(np.any(error[: self.P] != 0, axis=1))
        edges = np.searchsorted(erring, self._cuts)  # segment s's erring rows: erring[edges[s]:edges[s + 1]]
        for s in np.flatnonzero(np.diff(edges)).tolist():
            rows = erring[edges[s]:edges[s + 1]]
            ks, ts = self._segment_pairs(s)
            if ks.size == 0:
                continue
            # the segment's rows as a slice where they are a range (most often): the same entries, gathered faster
            index = (ks, slice(rows[0], rows[-1] + 1), ts) if rows[-1] - rows[0] + 1 == rows.size else \
                (ks[:, None], rows[None, :], ts[:, None])
            weights = np.abs(self.lam[index]) + self.slack[index]  # (pairs, rows)
            e = error[rows][:, ts].T
            finite = np.isfinite(e)
            total += np.bincount(ks, weights=(weights * np.where(finite, e, 0.0)).sum(axis=1), minlength=K)
            if not finite.all():
                reached[ks[np.any((weights != 0) & ~finite, axis=1)]] = True
        total = np.where(reached, np.inf, total)
        return np.where(np.isnan(total), np.inf, total)

    def pull(self, ins, mid: np.ndarray) -> None:
        """``lam <- J^T lam`` and ``slack <- |J|^T (slack + gamma |lam|)`` through instruction ``ins`` at the
        state ``mid`` (program rows x T) it read."""
        plan = self._plan(ins)
        # the pullback's rounding: gamma |J|^T |lam| is |J|^T of gamma |lam| on the rows the instruction touches
        # (it sums the written rows' cotangents into the read rows', adding to what they hold)
        for (a, b), name in plan.touched:
            ks, ts = self.pairs_of(name)
            if ks.size:
                self.slack[ks, a:b, ts] += plan.gamma * np.abs(self.lam[ks, a:b, ts])
        if plan.sources is None:
            self._pull_dense(ins, mid)
        else:
            self._pull_pairs(ins, plan, mid)

    def _plan(self, ins) -> "_Pull":
        """What pulling ``ins`` back needs of the instruction and the layout alone, found once (``_Pull``)."""
        key = (id(ins), self.T)
        if key not in self._plans:
            layout, T = self.layout, self.T
            touched = {}
            for name in (ins.writes, *ins.reads):
                touched.setdefault(layout.span(name), name)
            registers, places, rows = self._registers(ins)
            sources = ins.source_columns(T)
            self._plans[key] = _Pull(
                ins=ins, gamma=rounding.gamma(max(ins.pullback_terms(T), 1) + 2, self.u),
                touched=tuple(touched.items()), sources=sources, registers=registers, rows=rows,
                reads=tuple((here, there) for name, (here, there) in zip(dict.fromkeys((ins.writes, *ins.reads)),
                                                                         places) if name in ins.reads),
                read_rows=np.array([r for name in dict.fromkeys(ins.reads) for r in range(*layout.span(name))], int),
                written=layout.rows(ins.writes), stacked=registers.rows(ins.writes), local=ins.in_place(),
                distinct=sources is not None and np.unique(sources).size == sources.size)
        return self._plans[key]

    def _registers(self, ins) -> tuple[Layout, list[tuple[slice, slice]], np.ndarray]:
        """The registers ``ins`` writes and reads, stacked in a layout of their own (a kind's pullback reads and
        writes their rows only, so it runs on them alone with the same operations entry by entry), each one's
        rows (here, there), and the rows of the state in that order."""
        names = tuple(dict.fromkeys((ins.writes, *ins.reads)))
        stacks = _STACKS.setdefault(self.layout, {})  # found once per layout, for every run
        if names not in stacks:
            registers = Layout([self.layout[name] for name in names])
            places = [(self.layout.rows(name), registers.rows(name)) for name in names]
            rows = np.concatenate([np.arange(*self.layout.span(name)) for name in names])
            stacks[names] = registers, places, rows
        return stacks[names]

    def _pull_dense(self, ins, mid: np.ndarray) -> None:
        """An instruction whose entries read several columns (avg): every column of the answers from the first to
        the last where its written register is live (at the others ``J^T 0`` adds 0: a prefix mean's coefficients
        do not depend on the state), on its registers' rows (``_registers``); the read registers become live at
        every column up to the last one where the written register was live."""
        live = self.live_in(ins.writes)
        answers = np.flatnonzero(np.any(live, axis=1))
        if answers.size:
            registers, places, rows = self._registers(ins)
            take = slice(answers[0], answers[-1] + 1)
            for arr, absolute in ((self.slack, True), (self.lam, False)):
                sub = np.concatenate([arr[take, here] for here, _ in places], axis=1)
                sub = ins.pullback(mid[rows], sub, registers, absolute=absolute)
                for here, there in places:
                    arr[take, here] = sub[:, there]
        reach = np.flip(np.logical_or.accumulate(np.flip(live, axis=1), axis=1), axis=1)
        self._moved(ins, live, reach)

    def _pull_pairs(self, ins, plan: "_Pull", mid: np.ndarray) -> None:
        """An instruction whose entries read one column each (``plan.sources``): the pairs where its written register
        is live, and every answer at the columns whose read entries are not finite, gathered side by side on its
        registers' rows (``_registers``)."""
        sources, written = plan.sources, plan.written
        live = self.live_in(ins.writes)
        # columns whose read entries are not finite (none, most often: one look at the whole state tells)
        bad = None if np.isfinite(mid).all() else ~np.all(np.isfinite(mid[plan.read_rows][:, sources]), axis=0)
        if bad is not None and bad.any():
            live = live | bad[None, :]
            ks, ts = np.nonzero(live)
        else:
            ks, ts = self.pairs_of(ins.writes)
        if ks.size == 0:
            return
        src = sources[ts]
        H = mid[plan.rows][:, src]  # every kind's pullback reads the state on its rows, at the columns they come from
        # distinct pairs read distinct entries where no two columns read one (every kind but mov's first columns)
        unique = plan.distinct or np.unique(ks * self.T + src).size == ks.size
        for arr, absolute in ((self.slack, True), (self.lam, False)):
            sub = np.zeros((1, plan.registers.width, ks.size))
            sub[0, plan.stacked] = arr[ks, written, ts].T
            sub = plan.local.pullback(H, sub, plan.registers, absolute=absolute)
            arr[ks, written, ts] = 0.0
            for here, there in plan.reads:
                if unique:
                    arr[ks, here, src] += sub[0, there].T
                else:  # several columns read one (mov's first columns): their sums add up
                    np.add.at(arr, (ks, here, src), sub[0, there].T)
        moved = np.zeros_like(live)
        moved[ks, src] = True
        self._moved(ins, live, moved)

    def _moved(self, ins, written: np.ndarray, read: np.ndarray) -> None:
        """The masks after a pullback: the written register is zero where it was pulled back (unless read too), the
        read registers live where the pullback reached."""
        for s in self._of[ins.writes]:
            self.live[s] &= ~written
            self._pairs.pop(s, None)
        for name in ins.reads:
            for s in self._of[name]:
                self.live[s] |= read
                self._pairs.pop(s, None)


@dataclass(frozen=True, eq=False)
class _Pull:
    """What ``Cotangents.pull`` needs of one instruction ``ins`` at one prompt length: the rounding factor
    ``gamma`` of its pullback, the registers it touches (rows, name), its ``source_columns`` and whether they are
    ``distinct``, its registers' own layout and rows (``Cotangents._registers``), the read registers' places
    there (``reads``) and rows in the state (``read_rows``), the written register's rows in both
    (``written``, ``stacked``), and the instruction reading in place (``local``). It keeps ``ins`` alive, so
    the caller's key ``id(ins)`` stays its own."""

    ins: object
    gamma: float
    touched: tuple
    sources: np.ndarray | None
    registers: Layout
    rows: np.ndarray
    reads: tuple
    read_rows: np.ndarray
    written: object
    stacked: object
    local: object
    distinct: bool


_STACKS: "weakref.WeakKeyDictionary[Layout, dict]" = weakref.WeakKeyDictionary()  # ``Cotangents._registers``
