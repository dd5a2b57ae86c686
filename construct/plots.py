"""Pictures of the compiled networks, written as PNG (matplotlib: ``pip install 'icl-construct[plots]'``).

* ``weights_heatmap(net, layer, path)``: one layer's weights on the residual
  rows, labelled by register. Each head is drawn as the map it applies to a
  column of the D x T state, ``(Wv_h Wo_h)^T`` (entry [written row, read
  row]; the forward pass stores the state as T x D and multiplies by
  ``Wv_h Wo_h`` on the right); the MLP as ``W1`` and ``W2^T`` (residual row x
  unit); the biases ``bo`` and ``b2`` as a strip. Residual rows run down the
  vertical axis of every panel, as in the notebook and docs/CONSTRUCTION.md.
* ``residual_stream(trace, path)``: the hidden state after the embedding and
  after every layer, one panel per token, rows labelled by register.
* ``error_vs_examples(path, d, n)``: the squared error of the prediction of
  ``y_{k+1}`` from k examples for the closed forms (one-pass SGD, ridge,
  OLS) and the compiled SGD and ridge networks, averaged over random tasks,
  and the compiled networks' distance to their closed forms (log axis).

Values span many orders of magnitude (attention coefficients near 1, MLP
output weights near 1e6, layer-norm pads near 1e11), so colours use a
symmetric log scale: white is 0, red positive, blue negative. matplotlib is
imported inside the functions, drawn on an Agg canvas without pyplot, so
nothing global changes and the library works without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import reference
from . import programs
from .compiler import Bounds, DomainError
from .mechanisms.plan import DIV_NEG, DIV_POS, LN_NEG, LN_POS, MEAN_PAD, ONE, POS_SQ, SCRATCH, UNIFORM, ZERO
from .compiler import CompiledNetwork, Trace, compile
from .raw.registers import Layout
from .tasks import gaussian_tasks

EXTRA = "pip install 'icl-construct[plots]'"
ROW_LABELS_UP_TO = 80  # more residual rows than this: label each register once instead of each row
WEIGHT_DECADES, STREAM_DECADES = 12, 6  # decades on the log part of a colour scale (below: fading to white)


COMPILER_REGISTERS = (ONE, POS_SQ, LN_POS, LN_NEG, ZERO, MEAN_PAD, DIV_POS, DIV_NEG, SCRATCH)


class PlotsUnavailable(ImportError):
    """matplotlib is not installed (it is the optional extra ``plots``)."""


def _matplotlib():
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotsUnavailable(f"pictures need matplotlib, the optional extra 'plots': {EXTRA}") from None
    return matplotlib, Figure, FigureCanvasAgg


def figure(width: float, height: float):
    """A matplotlib Figure drawn off screen (no pyplot state); PlotsUnavailable without matplotlib."""
    _, Figure, FigureCanvasAgg = _matplotlib()
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _colours(arrays: list[np.ndarray], decades: int):
    """A symmetric log colour scale over the arrays, and a colour map that makes small values visible.

    Logarithmic from the largest magnitude down to the smallest nonzero one
    (at most ``decades`` below it), linear beneath that. The map runs dark
    blue - light blue - white - light red - dark red, with the light colours
    at the edge of the linear band: every value above the band is clearly
    coloured, values far below it (rounding noise) fade to white, and exact
    zeros are masked and drawn white.
    """
    matplotlib, _, _ = _matplotlib()
    magnitudes = np.concatenate([np.abs(a).ravel() for a in arrays])
    nonzero = magnitudes[magnitudes > 0]
    top = float(nonzero.max()) if nonzero.size else 1.0
    linthresh = max(float(nonzero.min()) if nonzero.size else 1.0, top * 10.0**-decades)
    if linthresh >= top:  # one magnitude only: one decade of log scale below it
        linthresh = top / 10
    norm = matplotlib.colors.SymLogNorm(linthresh=linthresh, linscale=0.5, vmin=-top, vmax=top, base=10)
    edge = float(norm(linthresh))
    cmap = matplotlib.colors.LinearSegmentedColormap.from_list("signed", [
        (0.0, "#08306b"), (1 - edge, "#6baed6"), (0.5, "#ffffff"), (edge, "#fb6a4a"), (1.0, "#67000d")])
    # ticks on decades, the lowest one a decade clear of the linear band so its label does not touch 0's
    high, low = np.floor(np.log10(top)), np.ceil(np.log10(linthresh)) + 1
    decades = np.arange(high, low - 1, -1) if high >= low else np.array([high])  # from the top down
    decades = decades[::max(1, int(np.ceil(len(decades) / 5)))]
    ticks = sorted([0.0, *(10.0**decades), *(-(10.0**decades))])
    return norm, cmap.with_extremes(bad="white"), ticks


def _heatmap(ax, data: np.ndarray, colours):
    norm, cmap, _ = colours
    return ax.imshow(np.ma.masked_equal(data, 0.0), cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")


def _colourbar(fig, image, axes, colours, label: str) -> None:
    bar = fig.colorbar(image, ax=axes, location="right", fraction=0.03, pad=0.01, shrink=0.8, label=label)
    bar.set_ticks(colours[2])


def _label_rows(ax, layout: Layout, axis: str) -> None:
    """Register labels along ``axis``: every row of a narrow stream; else each register once (skipping
    labels that would overlap), with a thin line between registers."""
    set_ticks = ax.set_yticks if axis == "y" else ax.set_xticks
    line = ax.axhline if axis == "y" else ax.axvline
    rotation = 0 if axis == "y" else 90
    if layout.width <= ROW_LABELS_UP_TO:
        set_ticks(range(layout.width), layout.labels, fontsize=6, rotation=rotation)
    else:
        ticks, labels = [], []
        for name in layout.names:
            start, stop = layout.span(name)
            middle = (start + stop - 1) / 2
            if not ticks or middle - ticks[-1] >= layout.width / ROW_LABELS_UP_TO:
                ticks.append(middle)
                labels.append(name)
        set_ticks(ticks, labels, fontsize=6, rotation=rotation)
    for name in layout.names[1:]:
        line(layout.span(name)[0] - 0.5, color="0.85", linewidth=0.4)


def _cell_size(rows: int) -> float:
    """Inches per residual row: room for a 6-point label per row when each row is labelled."""
    return 0.12 if rows <= ROW_LABELS_UP_TO else 10.0 / rows


def head_map(net: CompiledNetwork, layer: int, head: int) -> np.ndarray:
    """Head ``head``'s value map in layer ``layer`` (1-based, as in ``net.layers``) on a column of the D x T state:
    ``(Wv Wo)^T``, entry [written row, read row] (the forward pass right-multiplies its T x D state by ``Wv Wo``)."""
    w = net.weights
    s, dh = int(w.order[layer - 1]), w.head_size  # the stored layer: repeated layers are stored once
    return (w.Wv[s, head] @ w.Wo[s, head * dh:(head + 1) * dh]).T


def weights_heatmap(net: CompiledNetwork, layer: int, path) -> Path:
    """Layer ``layer`` (1-based, as in ``net.layers``) of ``net`` as heatmaps, written to ``path`` (PNG).

    Two colour scales: one for attention (the heads' maps and ``bo``), one
    for the MLP (``W1``, ``W2^T``, ``b2``), whose weights are far larger.
    The MLP's ``b1`` (one number per unit) is not drawn.
    """
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 1 <= layer <= net.weights.depth:
        raise ValueError(f"layer must be an integer in 1..{net.weights.depth}, got {layer!r}")
    w, l, layout = net.weights, int(layer) - 1, net.layout
    s = int(w.order[l])  # the stored layer it runs
    D, U = layout.width, w.mlp_width
    offset = net.mechanisms[l].offsets[0]  # the source head's (``compiler.plans.offsets``)
    source = "averages columns 0..i" if offset == UNIFORM else f"reads column i-{offset}" if offset else "idle here"
    panels = [  # (data [residual row, x], title, group, x axis)
        (head_map(net, layer, 0), f"head 0 (source, {source}):\n(Wv Wo)^T [written row, read row]", 0, "rows"),
        (head_map(net, layer, 1), "head 1 (self, reads column i):\n(Wv Wo)^T [written row, read row]", 0, "rows"),
        (w.bo[s][:, None], "bo", 0, None),
        (w.W1[s], "MLP in: W1\n[residual row, unit]", 1, "units"),
        (w.W2[s].T, "MLP out: W2^T\n[residual row, unit]", 1, "units"),
        (w.b2[s][:, None], "b2", 1, None),
    ]
    cell = _cell_size(D)
    fig = figure(min(max(9.0, cell * (2 * D + 2 * U) + 5.0), 24.0), cell * D + 3.2)
    grid = fig.add_gridspec(1, 6, width_ratios=[D, D, 0.04 * D + 1, U, U, 0.04 * D + 1])
    colours = [_colours([data for data, _, g, _ in panels if g == group], WEIGHT_DECADES) for group in (0, 1)]
    axes, images = [], {}
    for k, (data, title, group, xaxis) in enumerate(panels):
        ax = fig.add_subplot(grid[0, k], sharey=axes[0] if axes else None)
        images[group] = _heatmap(ax, data, colours[group])
        ax.set_title(title, fontsize=8)
        if xaxis == "rows":
            _label_rows(ax, layout, "x")
        elif xaxis == "units":
            ax.set_xlabel("GeLU unit", fontsize=7)
            ax.tick_params(axis="x", labelsize=6)
        else:
            ax.set_xticks([])
        if k == 0:
            _label_rows(ax, layout, "y")
        else:
            ax.tick_params(axis="y", labelleft=False)
        axes.append(ax)
    for group, label in ((1, "MLP"), (0, "attention")):  # the first bar sits outermost
        _colourbar(fig, images[group], axes, colours[group], f"{label} weights (symmetric log)")
    fig.suptitle(f"{net.program.name}, layer {layer} of {w.depth}: {net.layers[l].instruction}", fontsize=10)
    return save_figure(fig, path)


def _token_names(T: int) -> list[str]:
    n = (T - 1) // 2
    return [f"x~{t // 2 + 1}" if t % 2 == 0 else f"y~{t // 2 + 1}" for t in range(2 * n)] + ["x~q (query)"]


def residual_stream(trace: Trace, path, tokens=None, registers=None) -> Path:
    """The hidden state after the embedding (layer 0) and each layer, one panel per token, to ``path`` (PNG).

    ``tokens``: token columns (0-based); default all of a prompt of at most 5
    tokens, else the first example's two and the query. ``registers``: the
    registers drawn; default every register but the compiler's own rows
    (pads up to ~1e14, ``pos_sq``, ``mean_pad``), which would swamp the scale.
    """
    L1, _, T = trace.states.shape
    tokens = (list(range(T)) if T <= 5 else [0, 1, T - 1]) if tokens is None else list(tokens)
    if not tokens or any(not isinstance(t, (int, np.integer)) or not 0 <= t < T for t in tokens):
        raise ValueError(f"tokens must be column indices in 0..{T - 1}, got {tokens!r}")
    registers = [r for r in trace.layout.names if r not in COMPILER_REGISTERS] if registers is None else registers
    unknown = [r for r in registers if r not in trace.layout]
    if not registers or unknown:
        raise ValueError(f"registers must name registers of the trace's layout; unknown: {unknown}")
    shown = Layout([trace.layout[r] for r in registers])  # the chosen registers, stacked, for the row labels
    rows = np.concatenate([np.arange(*trace.layout.span(r)) for r in registers])
    states = trace.states[:, rows, :]
    names, cell = _token_names(T), _cell_size(len(rows))
    panel = min(max(0.09 * L1, 1.6), 6.0)
    fig = figure(min(max(8.0, len(tokens) * (panel + 0.25) + 2.6), 24.0), cell * len(rows) + 2.0)
    grid = fig.add_gridspec(1, len(tokens))
    colours = _colours([states[..., tokens]], STREAM_DECADES)
    axes = []
    for k, t in enumerate(tokens):
        ax = fig.add_subplot(grid[0, k], sharey=axes[0] if axes else None)
        image = _heatmap(ax, states[:, :, t].T, colours)
        ax.set_title(f"token {names[t]}", fontsize=9)
        ax.set_xlabel("after layer (0 = embedding)", fontsize=7)
        ax.tick_params(axis="x", labelsize=6)
        if k == 0:
            _label_rows(ax, shown, "y")
        else:
            ax.tick_params(axis="y", labelleft=False)
        axes.append(ax)
    _colourbar(fig, image, axes, colours, "value (symmetric log)")
    fig.suptitle("the residual stream, one column per layer" +
                 ("" if len(rows) == trace.layout.width else " (the compiler's pad rows not shown)"), fontsize=10)
    return save_figure(fig, path)


def error_vs_examples(path, d: int = 3, n: int = 8, alpha: float = 0.05, lam: float = 0.1, count: int = 128,
                      seed: int = 0) -> dict:
    """Prediction error against the number of examples k = 0..n, for the closed forms and the compiled networks.

    Tasks: x ~ N(0, I), w ~ N(0, I), y = w^T x, ``count`` of them with
    ``n + 1`` examples each; the last example's x is the query, so entry k's
    truth is always y_{k+1}. The networks (``programs.sgd`` and
    ``programs.ridge``, calibrated on 256 other tasks, margin 4) run on the
    tasks that are inside both domains; the rest are counted as refused.
    Returns the curves that are drawn.
    """
    nets = {}
    for label, program in (("SGD", programs.sgd(d, n, alpha, lam)), ("ridge", programs.ridge(d, n, lam))):
        nets[label] = compile(program, Bounds.calibrate(program, gaussian_tasks(d, n, 256, seed)))
    closed = {"SGD": lambda t: reference.sgd_one_pass(*t, alpha, lam), "ridge": lambda t: reference.ridge(*t, lam),
              "OLS": lambda t: reference.ols(*t)}
    sq = {key: [] for key in ("SGD closed form", "SGD transformer", "ridge closed form", "ridge transformer",
                              "OLS closed form")}
    gap = {label: [] for label in nets}
    refused = 0
    for X, y, _ in gaussian_tasks(d, n + 1, count, seed + 1):
        task = (X[:n], y[:n], X[n])
        try:
            got = {label: net.predict(*task, tolerance=None) for label, net in nets.items()}
        except DomainError:
            refused += 1
            continue
        for label, form in closed.items():
            want = form(task)
            sq[f"{label} closed form"].append((want - y) ** 2)
            if label in got:
                sq[f"{label} transformer"].append((got[label] - y) ** 2)
                gap[label].append(np.abs(got[label] - want) / (1 + np.abs(want)))
    if not gap["SGD"]:
        raise DomainError(f"all {count} tasks fell outside the networks' domains")
    k = np.arange(n + 1)
    curves = {"k": k.tolist(), "tasks": count - refused, "refused": refused,
              "mean_squared_error": {key: np.mean(v, axis=0).tolist() for key, v in sq.items()},
              "max_relative_gap": {key: np.max(v, axis=0).tolist() for key, v in gap.items()}}

    fig = figure(11.0, 4.2)
    left, right = fig.subplots(1, 2)
    styles = {"SGD": "tab:blue", "ridge": "tab:orange", "OLS": "tab:green"}
    for key, values in curves["mean_squared_error"].items():
        label, kind = key.split(" ", 1)
        if kind == "closed form":
            left.plot(k, values, color=styles[label], label=key, linewidth=1.5)
        else:
            left.plot(k, values, color=styles[label], label=key, linestyle="none", marker="o", markersize=5,
                      markerfacecolor="none")
    left.set(xlabel="k, examples in the prompt", ylabel="mean squared error predicting $y_{k+1}$",
             title=f"learning curves, d = {d}, {curves['tasks']} tasks")
    left.legend(fontsize=8)
    for key, values in curves["max_relative_gap"].items():
        right.semilogy(k, values, color=styles[key], marker="o", label=f"{key}: transformer vs closed form")
    right.set(xlabel="k, examples in the prompt", ylabel="max over tasks of |net - closed| / (1 + |closed|)",
              title="how far each network is from its closed form")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.set_xticks(k)
        ax.grid(alpha=0.3)
    save_figure(fig, path)
    return curves


def save_figure(fig, path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path
