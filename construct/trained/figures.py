"""The experiments' pictures, drawn from their results (``plots.figure``: no pyplot state).

    python -m construct.trained.figures RESULTS_DIR [RESULTS_DIR ...]

redraws a results directory's figures from its ``results.json`` (the
experiment writes them when it runs; nothing is evaluated again).

One colour per predictor family in every figure (``colour``): the
transformer, OLS, ridge, SGD, GD, 3-NN and the compiled networks keep
theirs from one picture to the next. Bands are the results' 95% bootstrap
intervals over tasks; a dotted vertical line marks k = d. Every title
names the models' checkpoints and their training steps. Curves that
coincide within plotting resolution (``coincident``), which would hide
one under the other, share one legend entry that names them all
(``ridge(0.1) = compiled ridge``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .. import plots

COLOURS = {
    "transformer": "black", "OLS": "tab:blue", "ridge": "tab:orange", "SGD": "tab:green", "GD": "tab:olive",
    "3-NN": "tab:purple", "3-NN (1/r^2)": "tab:pink", "compiled sgd": "tab:red", "compiled ridge": "tab:brown",
}
OTHER = "tab:gray"


def family(name: str) -> str:
    """A predictor's family: ``ridge(0.1)`` -> ``ridge``; names without a parameter are their own family."""
    return name if name in COLOURS else name.split("(")[0]


def colour(name: str) -> str:
    """The colour of a predictor (by its family) in every figure."""
    return COLOURS.get(family(name), OTHER)


def _style(name: str) -> dict:
    dashed = name.startswith("compiled")
    return {"color": colour(name), "linestyle": "--" if dashed else "-", "marker": "x" if dashed else "o",
            "markersize": 4 if dashed else 3}


RESOLUTION = 1 / 500  # of an axis' span: under a pixel of these figures' axes (about 400 pixels high)


def checkpoint(info: dict) -> str:
    """A model as the figures name it: its checkpoint file and training steps, from ``models_used``."""
    path = Path(info["path"])
    name = path.name if path.parent.name == "checkpoints" else info["path"]
    return f"{name} ({info['steps']:,} steps)" if info.get("steps") is not None else name


def coincident(table: dict, log: bool, resolution: float = RESOLUTION) -> list[list[str]]:
    """Groups of the table's curves that coincide within ``resolution`` of the axis span at every k.

    Mean and interval alike, on the axis' own scale (log10 on a log axis);
    the span is that of all the table's values. Curves closer than that
    would be drawn over one another. Groups are in the table's order,
    singletons included: ``[["OLS"], ["ridge(0.1)", "compiled ridge"], ...]``.
    """
    names = list(table)

    def scale(values):
        values = np.asarray(values, dtype=float)
        return np.log10(np.where(values > 0, values, np.nan)) if log else values

    curves = {n: np.stack([scale(table[n][key]) for key in ("mean", "low", "high")]) for n in names}
    every = np.concatenate([c.ravel() for c in curves.values()])
    every = every[np.isfinite(every)]
    span = float(every.max() - every.min()) if every.size else 0.0
    parent = {n: n for n in names}

    def root(n):
        while parent[n] != n:
            n = parent[n]
        return n

    for i, a in enumerate(names):
        for b in names[i + 1:]:
            x, y = curves[a], curves[b]
            same_gaps = np.array_equal(np.isfinite(x), np.isfinite(y))
            if same_gaps and np.all(np.abs(x - y)[np.isfinite(x)] <= resolution * span):
                parent[root(b)] = root(a)
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(root(n), []).append(n)
    return list(groups.values())


def _legend(ax, groups: list[list[str]], **kwargs) -> None:
    """One legend entry per group of coincident curves, named ``a = b``, on the handle drawn last (on top)."""
    handles = {line.get_label(): line for line in ax.get_lines()}
    ax.legend([handles[group[-1]] for group in groups], [" = ".join(group) for group in groups], **kwargs)


def _curves(ax, table: dict, d: int, ylabel: str, log: bool = True) -> list[list[str]]:
    """Draw the table's curves with their bands; returns its groups of coincident curves (``coincident``)."""
    from matplotlib.ticker import MaxNLocator  # matplotlib is there: plots.figure checked

    for name, curve in table.items():
        k = np.arange(len(curve["mean"]))
        ax.plot(k, curve["mean"], label=name, **_style(name))
        ax.fill_between(k, curve["low"], curve["high"], color=colour(name), alpha=0.15, linewidth=0)
    ax.axvline(d, color="gray", linestyle=":", linewidth=1)
    ax.annotate("k = d", (d, 1), xycoords=("data", "axes fraction"), xytext=(3, -12), textcoords="offset points",
                fontsize=8, color="gray")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("number of in-context examples k")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return coincident(table, log)


def _note(ax, groups: list[list[str]]) -> None:
    """Name, inside the axes, the curves that coincide there (for a panel without a legend of its own)."""
    shared = [" = ".join(group) for group in groups if len(group) > 1]
    if shared:
        ax.text(0.98, 0.02, "drawn over one another:\n" + "\n".join(shared), transform=ax.transAxes, ha="right",
                va="bottom", fontsize=7, color="dimgray")


def figure_1(path: Path, result: dict) -> Path:
    """The paper's Figure 1: squared error against the truth, and SPD to the transformer, by k."""
    fig = plots.figure(12, 4.8)
    left, right = fig.subplots(1, 2)
    d = result["d"]
    groups = _curves(left, result["error_over_d"], d, "squared error / d against the truth", log=False)
    left.set_ylim(bottom=0)
    left.set_title("prediction error (linear axis)")
    _legend(left, groups, fontsize=8, ncol=2)
    right_groups = _curves(right, result["spd_over_d"], d, "SPD / d to the transformer")
    right.set_title("SPD to the transformer (log axis)")
    _note(right, right_groups)
    m = result["model"]
    fig.suptitle(f"{checkpoint(m)}: {m['layers']}-layer transformer (width {m['width']}, {m['heads']} heads), "
                 f"d = {d}, noiseless, {result['tasks']} tasks")
    return plots.save_figure(fig, path)


def ilwd(path: Path, result: dict) -> Path:
    """ILWD of the transformer's implicit weights to each linear predictor's, by k."""
    fig = plots.figure(7.5, 4.8)
    ax = fig.subplots()
    groups = _curves(ax, result["ilwd"], result["d"], "ILWD (|w - w'|^2 summed over coordinates)")
    _legend(ax, groups, fontsize=8, ncol=2)
    ax.set_title(f"ILWD to the implicit weights of {checkpoint(result['model'])}, d = {result['d']}", fontsize=10)
    return plots.save_figure(fig, path)


def _spread(values: list[float], gap: float) -> list[float]:
    """Positions near ``values`` (sorted or not), at least ``gap`` apart, in the same order: labels that do
    not overlap. Each cluster of labels closer than ``gap`` is centred on its members' mean."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    clusters: list[list[int]] = []
    for i in order:
        clusters.append([i])
        while len(clusters) > 1:  # merge while the last two clusters overlap, re-centring the merged one
            a, b = clusters[-2], clusters[-1]
            centre_a = np.mean([values[j] for j in a])
            centre_b = np.mean([values[j] for j in b])
            if centre_b - centre_a - (len(a) + len(b)) * gap / 2 >= 0:
                break
            clusters[-2:] = [a + b]
    out = [0.0] * len(values)
    for cluster in clusters:
        centre = np.mean([values[j] for j in cluster])
        for rank, j in enumerate(cluster):
            out[j] = centre + (rank - (len(cluster) - 1) / 2) * gap
    return out


def depth(path: Path, result: dict) -> Path:
    """The paper's Figure 3 in small: mean SPD over k < d to each family's best member, against depth."""
    fig = plots.figure(8.5, 5.4)
    ax = fig.subplots()
    layers = [row["layers"] for row in result["rows"]]
    families = list(result["rows"][0]["by_family"])
    for fam in families:
        rows = [row["by_family"][fam] for row in result["rows"]]
        ax.plot(layers, [r["mspd_over_d"] for r in rows], label=fam, **_style(fam))
        ax.fill_between(layers, [r["low"] for r in rows], [r["high"] for r in rows], color=colour(fam),
                        alpha=0.15, linewidth=0)
    # Each point's best member, right of the point on a white ground; the labels at one depth spread apart
    # vertically (log10 units), joined to their points by a thin line.
    values = np.log10([[row["by_family"][fam]["mspd_over_d"] for fam in families] for row in result["rows"]])
    low, high = values.min(), values.max()
    bottom, top = low - 0.08 * (high - low), high + 0.08 * (high - low)
    gap = 0.045 * (top - bottom)  # about one 7-point line of text on this axis
    for x, row, ys in zip(layers, result["rows"], values):
        named = [i for i, fam in enumerate(families) if row["by_family"][fam]["predictor"] != fam]
        placed = _spread([ys[i] for i in named], gap)
        for i, at in zip(named, placed):
            fam, y, label = families[i], ys[i], row["by_family"][families[i]]["predictor"]
            ax.annotate(label, (x, 10**y), xytext=(x * 1.12, 10**at), fontsize=7, color=colour(fam), va="center",
                        bbox=dict(boxstyle="square,pad=0.1", facecolor="white", edgecolor="none", alpha=0.85),
                        arrowprops=dict(arrowstyle="-", color=colour(fam), linewidth=0.5, alpha=0.6,
                                        shrinkA=0, shrinkB=2), zorder=5)
    ax.set_xscale("log", base=2)
    ax.set_xticks(layers, [str(x) for x in layers])
    ax.set_xlim(layers[0] / 1.25, layers[-1] * 2.1)  # room for the last depth's labels
    ax.set_ylim(10**bottom, 10**top)
    ax.set_yscale("log")
    ax.set_xlabel("layers")
    ax.set_ylabel("mean SPD / d over 1 <= k < d (best member of each family)")
    names = ", ".join(Path(row["model_info"]["path"]).name for row in result["rows"])
    steps = {row["model_info"].get("steps") for row in result["rows"]}
    trained = f"{steps.pop():,} steps each" if len(steps) == 1 and None not in steps else \
        ", ".join(checkpoint(row["model_info"]) for row in result["rows"])
    ax.set_title(f"Which algorithm does each depth match? d = {result['d']}, {result['tasks']} tasks\n"
                 f"checkpoints {names} ({trained})", fontsize=10)
    table = {fam: {key: [row["by_family"][fam][field] for row in result["rows"]]
                   for key, field in (("mean", "mspd_over_d"), ("low", "low"), ("high", "high"))} for fam in families}
    _legend(ax, coincident(table, log=True), fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    return plots.save_figure(fig, path)


def noisy(path: Path, result: dict) -> Path:
    """Mean SPD over k < d to ridge(lam) against lam, per noise setting, with sigma^2/tau^2 and the best lam."""
    fig = plots.figure(7.5, 4.8)
    ax = fig.subplots()
    for i, row in enumerate(result["rows"]):
        c = f"C{i}"
        lams = np.array(row["lams"])
        ax.plot(lams, row["mspd_over_d"], marker="o", markersize=3, color=c,
                label=f"{Path(row['model_info']['path']).stem}: sigma = {row['sigma']:g}, tau = {row['tau']:g}")
        ax.fill_between(lams, row["low"], row["high"], color=c, alpha=0.15, linewidth=0)
        ax.axvline(row["bayes_lam"], color=c, linestyle="--", alpha=0.6)
        ax.axvspan(*row["best_lam_interval"], color=c, alpha=0.12)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("ridge lam (dashed: sigma^2 / tau^2; shaded: 95% interval of the best lam)")
    ax.set_ylabel("mean SPD / d over 1 <= k < d")
    steps = {row["model_info"].get("steps") for row in result["rows"]}
    trained = f"{steps.pop():,} steps each" if len(steps) == 1 and None not in steps else \
        ", ".join(checkpoint(row["model_info"]) for row in result["rows"])
    ax.set_title(f"Which ridge does the noise-trained transformer match? {result['tasks']} tasks\n"
                 f"checkpoints " + ", ".join(Path(row["model_info"]["path"]).name for row in result["rows"])
                 + f" ({trained})", fontsize=10)
    ax.legend(fontsize=8)  # (each setting on its own grid of lam: no two curves share their points)
    ax.grid(alpha=0.3)
    return plots.save_figure(fig, path)


def probes(path: Path, result: dict) -> Path:
    """Probe error ratio by layer, averaged over k, one panel per target; the control dotted."""
    from matplotlib.ticker import MaxNLocator

    targets = list(result["model"])
    fig = plots.figure(5 * len(targets), 4.8)
    axes = np.atleast_1d(fig.subplots(1, len(targets), sharey=True))
    used = result["models"]
    for ax, target in zip(axes, targets):
        table = {}
        for who, style in (("model", "-"), ("control", ":")):
            for kind, c in (("linear", "tab:blue"), ("MLP", "tab:red")):
                curve = result[who][target][kind]
                layers = np.arange(len(curve["mean"]))
                label = f"{who} {Path(used[who]['path']).stem}, {kind}"
                table[label] = curve
                ax.plot(layers, curve["mean"], style, color=c, marker="o", markersize=3, label=label)
                ax.fill_between(layers, curve["low"], curve["high"], color=c, alpha=0.12, linewidth=0)
        ax.set_title(f"probing {target}")
        ax.set_xlabel("layer (0 = embedding)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        _legend(ax, coincident(table, log=False), fontsize=8)
    axes[0].set_ylabel("held-out error / variance, mean over k")
    fig.suptitle(f"Probes of the model {checkpoint(used['model'])} and of the control (one fixed w) "
                 f"{checkpoint(used['control'])}; {result['tasks']['test']} test tasks", fontsize=10)
    return plots.save_figure(fig, path)


def learning_curve(path: Path, result: dict) -> Path:
    """SPD/d to OLS at every k <= d against the training step, and the law fitted at k = d (``curve``)."""
    from matplotlib import colormaps

    fig = plots.figure(7.5, 4.8)
    ax = fig.subplots()
    d, fit = result["d"], result["fit"]
    steps = np.array([r["step"] for r in result["records"]])
    values = np.array([r["spd_over_d_to_ols"] for r in result["records"]])
    shades = colormaps["viridis"]
    for k in range(1, d):
        ax.plot(steps, values[:, k], color=shades(k / d), marker="o", markersize=2, linewidth=0.8, alpha=0.8,
                label=f"k = {k}")
    ax.plot(steps, values[:, d], color="black", marker="o", markersize=4, label=f"k = d = {d}")
    ax.plot(fit["steps"], fit["values"], "o", markerfacecolor="none", markeredgecolor="tab:red", markersize=8,
            label="fitted records")
    end = result["steps_to_target"] if result["steps_to_target"] is not None else 0
    t = np.geomspace(min(fit["steps"]), max(min(max(end, steps[-1]) * 1.3, 20 * steps[-1]), steps[-1]), 200)
    ax.plot(t, fit["c"] + fit["a"] * (t / 10_000) ** (-fit["b"]), color="tab:red", linewidth=1,
            label=f"fit at k = d: {fit['c']:.2g} + {fit['a']:.2g} (t / 10^4)^-{fit['b']:.2g}")
    ax.axhline(result["target"], color="gray", linestyle=":", linewidth=1)
    ax.annotate(f"target {result['target']:g}", (t[-1], result["target"]), fontsize=8, color="gray",
                xytext=(-3, 3), textcoords="offset points", ha="right")
    if fit["c"] > 0:
        ax.axhline(fit["c"], color="tab:red", linestyle="--", linewidth=0.8, alpha=0.7,
                   label=f"the law's floor c = {fit['c']:.2g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("SPD / d to OLS (eval records)")
    ax.set_title(f"{result['model']} ({int(steps[-1]):,} steps): SPD/d to OLS during training, "
                 f"{result['tasks']} evaluation tasks", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, which="both")
    return plots.save_figure(fig, path)


FIGURES = {"noiseless": [("figure1.png", figure_1), ("ilwd.png", ilwd)], "noisy": [("noisy.png", noisy)],
           "depth": [("depth.png", depth)], "probes": [("probes.png", probes)], "curve": [("curve.png", learning_curve)]}


def redraw(directory: Path) -> list[Path]:
    """Draw a results directory's figures again from its ``results.json``."""
    result = json.loads((Path(directory) / "results.json").read_text())
    return [draw(Path(directory) / name, result) for name, draw in FIGURES[result["experiment"]]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m construct.trained.figures", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directories", nargs="+", type=Path, help="results directories (with results.json)")
    args = parser.parse_args(argv)
    for directory in args.directories:
        try:
            for path in redraw(directory):
                print(f"wrote {path}", file=sys.stderr)
        except (OSError, KeyError, json.JSONDecodeError) as err:
            print(f"error: {directory}: {err!r}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
