"""The experiments' pictures, drawn from their results (``plots.figure``: no pyplot state).

One colour per predictor family in every figure (``colour``): the
transformer, OLS, ridge, SGD, GD, 3-NN and the compiled networks keep
theirs from one picture to the next. Bands are the results' 95% bootstrap
intervals over tasks; a dotted vertical line marks k = d.
"""

from __future__ import annotations

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


def _curves(ax, table: dict, d: int, ylabel: str, log: bool = True) -> None:
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


def figure_1(path: Path, result: dict) -> Path:
    """The paper's Figure 1: squared error against the truth, and SPD to the transformer, by k."""
    fig = plots.figure(12, 4.8)
    left, right = fig.subplots(1, 2)
    d = result["d"]
    _curves(left, result["error_over_d"], d, "squared error / d against the truth", log=False)
    left.set_ylim(bottom=0)
    left.set_title("prediction error (linear axis)")
    left.legend(fontsize=8, ncol=2)
    _curves(right, result["spd_over_d"], d, "SPD / d to the transformer")
    right.set_title("SPD to the transformer (log axis)")
    fig.suptitle(f"{result['model']['layers']}-layer transformer, d = {d}, noiseless, {result['tasks']} tasks")
    return plots.save_figure(fig, path)


def ilwd(path: Path, result: dict) -> Path:
    """ILWD of the transformer's implicit weights to each linear predictor's, by k."""
    fig = plots.figure(7.5, 4.8)
    ax = fig.subplots()
    _curves(ax, result["ilwd"], result["d"], "ILWD (|w - w'|^2 summed over coordinates)")
    ax.legend(fontsize=8, ncol=2)
    ax.set_title(f"ILWD to the transformer's implicit weights, d = {result['d']}")
    return plots.save_figure(fig, path)


def depth(path: Path, result: dict) -> Path:
    """The paper's Figure 3 in small: mean SPD over k < d to each family's best member, against depth."""
    fig = plots.figure(7.5, 4.8)
    ax = fig.subplots()
    layers = [row["layers"] for row in result["rows"]]
    for fam in result["rows"][0]["by_family"]:
        rows = [row["by_family"][fam] for row in result["rows"]]
        ax.plot(layers, [r["mspd_over_d"] for r in rows], label=fam, **_style(fam))
        ax.fill_between(layers, [r["low"] for r in rows], [r["high"] for r in rows], color=colour(fam),
                        alpha=0.15, linewidth=0)
        for x, r in zip(layers, rows):
            if r["predictor"] != fam:
                ax.annotate(r["predictor"], (x, r["mspd_over_d"]), fontsize=6, color=colour(fam),
                            xytext=(3, 2), textcoords="offset points")
    ax.set_xscale("log", base=2)
    ax.set_xticks(layers, [str(x) for x in layers])
    ax.set_yscale("log")
    ax.set_xlabel("layers")
    ax.set_ylabel("mean SPD / d over 1 <= k < d (best member of each family)")
    ax.set_title(f"Which algorithm does each depth match? d = {result['d']}")
    ax.legend(fontsize=8)
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
                label=f"sigma = {row['sigma']:g}, tau = {row['tau']:g}")
        ax.fill_between(lams, row["low"], row["high"], color=c, alpha=0.15, linewidth=0)
        ax.axvline(row["bayes_lam"], color=c, linestyle="--", alpha=0.6)
        ax.axvspan(*row["best_lam_interval"], color=c, alpha=0.12)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("ridge lam (dashed: sigma^2 / tau^2; shaded: 95% interval of the best lam)")
    ax.set_ylabel("mean SPD / d over 1 <= k < d")
    ax.set_title("Which ridge does the noise-trained transformer match?")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return plots.save_figure(fig, path)


def probes(path: Path, result: dict) -> Path:
    """Probe error ratio by layer, averaged over k, one panel per target; the control dotted."""
    from matplotlib.ticker import MaxNLocator

    targets = list(result["model"])
    fig = plots.figure(5 * len(targets), 4.5)
    axes = np.atleast_1d(fig.subplots(1, len(targets), sharey=True))
    for ax, target in zip(axes, targets):
        for who, style in (("model", "-"), ("control", ":")):
            for kind, c in (("linear", "tab:blue"), ("MLP", "tab:red")):
                curve = result[who][target][kind]
                layers = np.arange(len(curve["mean"]))
                ax.plot(layers, curve["mean"], style, color=c, marker="o", markersize=3, label=f"{who}, {kind}")
                ax.fill_between(layers, curve["low"], curve["high"], color=c, alpha=0.12, linewidth=0)
        ax.set_title(f"probing {target}")
        ax.set_xlabel("layer (0 = embedding)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("held-out error / variance, mean over k")
    return plots.save_figure(fig, path)
