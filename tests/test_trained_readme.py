"""docs/TRAINED.md, the trained-learner section, states the committed results files' numbers, and only those.

``claims()`` renders, from ``construct/trained/results/*/results.json``,
every number the section states, as the text that states it; the tests
check that each is in the section, that every interval the section quotes
is one of them, and that each results file was made on 1000 or more tasks
by the command the section names.
"""

import json
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "construct" / "trained" / "results"
CHECKPOINTS = ROOT / "construct" / "trained" / "checkpoints"
CONFIGS = ROOT / "construct" / "trained" / "configs"
EXPERIMENTS = ["noiseless", "noiseless_4layers", "noiseless_ols_continued", "depth", "noisy", "probes"]


def section() -> str:
    """The section's text with every run of white space one space (claims do not depend on line breaks)."""
    text = (ROOT / "docs" / "TRAINED.md").read_text()
    start = text.index("## Trained in-context learners beside the constructions")
    end = text.find("\n## ", start + 1)
    return " ".join(text[start: end if end >= 0 else len(text)].split())


def load(name: str) -> dict:
    return json.loads((RESULTS / name / "results.json").read_text())


def g(x: float) -> str:
    """Two significant digits, as the page writes numbers."""
    return f"{x:.2g}"


def interval(summary: dict, i: int | None = None) -> str:
    """``mean [low, high]`` of a results summary (at prefix ``i``)."""
    values = [summary[key] if i is None else summary[key][i] for key in ("mean", "low", "high")]
    return f"{g(values[0])} [{g(values[1])}, {g(values[2])}]"


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min"


def claims() -> list[str]:
    """Every number of the section, as the text that states it."""
    out = []
    # Figure 1, the 4-layer d = 8 model
    r = load("noiseless_4layers")
    d, spd, err = r["d"], r["spd_over_d"], r["error_over_d"]
    out += [f"{r['tasks']} tasks", f"training {minutes(r['model']['training_seconds'])}",
            f"calibrated on {r['calibration_tasks']} tasks"]
    out += [f"{interval(spd['OLS'], k)} at k = {k}" for k in (1, 4, 6, 7)]
    out += [f"{interval(spd['OLS'], d)} at the interpolation point", f"{interval(err['transformer'], d)}",
            f"({interval(spd['ridge(0.1)'], d)} at k = d)"]
    lams = r["closest_ridge"]["lam"][1: d + 1]
    grid = r["closest_ridge"]["grid"]
    out += [f"grid from {g(min(grid))} to {g(max(grid))} has lam {g(min(lams))} to {g(max(lams))}"]
    out += [f"{interval(r['ilwd']['OLS'], 2)} at k = 2", f"{interval(r['ilwd']['OLS'], d)} at k = d"]
    out += [f"(SPD/d {interval(spd['SGD(0.02)'], 1)} and {interval(spd['GD(0.01)'], 1)})",
            f"(up to {g(max(spd['SGD(0.02)']['mean']))} and {g(max(spd['GD(0.01)']['mean']))})",
            f"3-NN stays at {g(min(spd['3-NN']['mean'][1:]))} to {g(max(spd['3-NN']['mean'][1:]))}"]
    out += [f"{name} refused {count} of {r['tasks']}" for name, count in r["refused"].items()]
    check = r["compiled_vs_closed_form_max_squared_difference"]
    out += [f"(largest squared difference {g(check['compiled sgd'])} and {g(check['compiled ridge'])})"]
    # Figure 1, the 8-layer d = 8 model: the OLS phase?
    r = load("noiseless")
    d, spd, err = r["d"], r["spd_over_d"], r["error_over_d"]
    out += [f"training {minutes(r['model']['training_seconds'])}"]
    out += [f"{interval(spd['OLS'], k)} at k = {k}" for k in range(1, d)]
    out += [f"{interval(spd['OLS'], d)} at k = d", f"error/d {interval(err['transformer'], d)}",
            f"ridge(0.1): {interval(spd['ridge(0.1)'], d)}"]
    lams = r["closest_ridge"]["lam"][1: d + 1]
    out += [f"closest ridge has lam {g(min(lams))} to {g(max(lams))}" if min(lams) < max(lams)
            else f"closest ridge has lam {g(lams[0])}"]
    out += [f"ILWD to OLS {interval(r['ilwd']['OLS'], d)} at k = d"]
    out += [f"{name} refused {count} of {r['tasks']}" for name, count in r["refused"].items()]
    # the same model trained on (ols_continued.toml), on the same tasks
    before, r = r, load("noiseless_ols_continued")
    d, spd, err = r["d"], r["spd_over_d"], r["error_over_d"]
    out += [f"training {minutes(r['model']['training_seconds'])}", f"On the same {r['tasks']} tasks"]
    out += [f"{interval(spd['OLS'], k)} at k = {k}" for k in range(1, d)]
    out += [f"{interval(spd['OLS'], d)} at k = d", f"squared error/d {interval(err['transformer'], d)} against",
            f"to ridge(0.1) {interval(spd['ridge(0.1)'], d)}"]
    lams = r["closest_ridge"]["lam"][1: d + 1]
    out += [f"closest ridge has lam {g(min(lams))} to {g(max(lams))} at every k from 1 to d",
            f"ILWD to OLS {interval(r['ilwd']['OLS'], d)} at k = d"]
    out += [f"{name} refused {count} of {r['tasks']}" for name, count in r["refused"].items()]
    ols_before, ols_after = before["spd_over_d"]["OLS"], spd["OLS"]
    assert all(a < b for a, b in zip(ols_after["mean"][1: d + 1], ols_before["mean"][1: d + 1])), \
        "the page says the mean SPD/d to OLS fell at every k"
    assert ols_after["high"][d] > ols_before["low"][d], "the page says the intervals at k = d overlap"
    out += [f"at k = d only from {g(ols_before['mean'][d])} to {g(ols_after['mean'][d])}"]
    target = 0.05
    assert all(h <= target for h in ols_after["high"][1:6]) and ols_after["low"][6] <= target <= ols_after["high"][6] \
        and min(ols_after["low"][7: d + 1]) > target, "the page says k <= 5 hold, k = 6 straddles, 7 and 8 miss"
    out += ["holds for k <= 5, k = 6 straddles it"]
    # depth: 1, 2, 4 and 8 layers, each family's best member on the config's grids
    r = load("depth")
    out += [f"{r['tasks']} tasks"]
    grids = tomllib.loads((CONFIGS / r["config"]).read_text())["experiment"]
    out += [f"ridge lam on a grid from {min(grids['lams']):g} to {max(grids['lams']):g}",
            f"SGD and GD step sizes from {min(grids['alphas']):g} to {max(grids['alphas']):g}"]
    rows = {row["layers"]: row for row in r["rows"]}
    assert sorted(rows) == [1, 2, 4, 8]
    for layers, row in rows.items():
        closest = next(s for s in row["by_family"].values() if s["predictor"] == row["closest"])
        out.append(f"{layers} layer{'s' if layers > 1 else ' is closest'} to {row['closest']} ({fam_interval(closest)})")
    one = rows[1]["by_family"]
    out += [f"with {one['SGD']['predictor']} and {one['GD']['predictor']} next "
            f"({fam_interval(one['SGD'])}, {fam_interval(one['GD'])})"]
    out += [f"with OLS at {fam_interval(rows[layers]['by_family']['OLS'])}" for layers in (4, 8)]
    out += ["SPD to OLS falls with depth (" + ", ".join(fam_interval(rows[x]["by_family"]["OLS"]) for x in sorted(rows))
            + ")", "the lam of the closest ridge (" + ", ".join(
                f"{rows[x]['by_family']['ridge']['predictor'][6:-1]}" for x in sorted(rows)) + ")"]
    out += [f"trained in {minutes(rows[8]['model_info']['training_seconds'])}"]
    # noisy: three (sigma, tau) settings, the best lam against sigma^2/tau^2
    r = load("noisy")
    out += [f"{r['tasks']} tasks"]
    grids = tomllib.loads((CONFIGS / r["config"]).read_text())["experiment"]
    out += [f"grid from {min(grids['lams']):g} to {max(grids['lams']):g} refined to steps of "
            f"2^(1/{grids['steps_per_octave']}) over a factor of {2 ** grids['octaves']} either side"]
    gaps, ratios = [], []
    for row in r["rows"]:
        bayes = row["lams"].index(row["bayes_lam"])
        best = row["lams"].index(row["best_lam"])
        low, high = row["best_lam_interval"]
        out += [f"(sigma, tau) = ({row['sigma']:g}, {row['tau']:g}), sigma^2/tau^2 = {g(row['bayes_lam'])}: "
                f"the best lam is {g(row['best_lam'])} (95% interval {g(low)} to {g(high)};",
                f"{g(row['mspd_over_d'][bayes])} [{g(row['low'][bayes])}, {g(row['high'][bayes])}] at sigma^2/tau^2",
                f"{g(row['mspd_over_d'][best])} [{g(row['low'][best])}, {g(row['high'][best])}] at the best"]
        assert low > row["bayes_lam"], "the page says each best lam's interval lies above sigma^2/tau^2"
        gaps.append(row["mspd_over_d"][bayes] / row["mspd_over_d"][best] - 1)
        ratios.append(row["best_lam"] / row["bayes_lam"])
    out += ["the best lam moves with sigma^2/tau^2 (" + ", ".join(g(row["best_lam"]) for row in r["rows"]) + " for "
            + ", ".join(g(row["bayes_lam"]) for row in r["rows"]) + ")",
            f"by a factor of {min(ratios):.2g} to {max(ratios):.2g}",
            "above its minimum by " + ", ".join(f"{gap:.0%}" for gap in gaps[:-1]) + f" and {gaps[-1]:.0%}"]
    # probes: the best layer of each probe
    r = load("probes")
    out += [f"{r['tasks']['test']} test tasks", f"{r['tasks']['train']} training tasks"]
    assert r["steps"]["linear"] == r["steps"]["MLP"], "the page says both kinds had the same budget"
    out += [f"{r['steps']['MLP']} full-batch Adam steps (linear and MLP alike)"]
    for who in ("model", "control"):
        for target in ("X^T y", "w_OLS"):
            for kind in ("linear", "MLP"):
                probe = r[who][target][kind]
                layer = int(np.argmin(probe["mean"]))
                out.append(f"{who} {target} {kind}: {interval(probe, layer)} (layer {layer})")
    best = {(who, target, kind): min(zip(r[who][target][kind]["mean"], r[who][target][kind]["low"],
                                          r[who][target][kind]["high"]))
            for who in ("model", "control") for target in ("X^T y", "w_OLS") for kind in ("linear", "MLP")}
    for target in ("X^T y", "w_OLS"):  # the model's best probes beat the control's, intervals apart
        assert max(best["model", target, k][2] for k in ("linear", "MLP")) < \
            min(best["control", target, k][1] for k in ("linear", "MLP"))
    (_, lo_l, hi_l), (_, lo_m, hi_m) = best["model", "X^T y", "linear"], best["model", "X^T y", "MLP"]
    assert lo_l <= hi_m and lo_m <= hi_l, "the page says the X^T y intervals overlap"
    assert best["model", "w_OLS", "linear"][2] < best["model", "w_OLS", "MLP"][1], "the page says linear is better"
    return out


def fam_interval(score: dict) -> str:
    return f"{g(score['mspd_over_d'])} [{g(score['low'])}, {g(score['high'])}]"


def test_every_claim_is_in_the_readme():
    text = section()
    missing = [claim for claim in claims() if claim not in text]
    assert not missing, f"docs/TRAINED.md lacks {missing}"


def test_every_interval_the_readme_quotes_is_a_claim():
    quoted = re.findall(r"[-\d.e]+ \[[-\d.e]+, [-\d.e]+\]", section())
    stated = claims()
    stray = sorted({q for q in quoted if not any(q in claim for claim in stated)})
    assert quoted and not stray, f"intervals in docs/TRAINED.md that no results file gives: {stray}"


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_results_come_from_the_named_command_on_1000_tasks_or_more(name):
    r = load(name)
    assert not r["quick"] and r["command"] in section()
    tasks = r["tasks"] if isinstance(r["tasks"], int) else r["tasks"]["test"]
    assert tasks >= 1000


def test_committed_models_record_their_commands_and_stay_small():
    for path in CHECKPOINTS.glob("*.eqx"):
        meta = json.loads(path.with_suffix(".json").read_text())
        assert meta["command"].startswith("python -m construct.trained.train") and meta["seconds"] > 0
        assert path.stat().st_size < 5 * 2**20
