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

from support import ROOT

RESULTS = ROOT / "construct" / "trained" / "results"
CHECKPOINTS = ROOT / "construct" / "trained" / "checkpoints"
CONFIGS = ROOT / "construct" / "trained" / "configs"
EXPERIMENTS = ["noiseless_ols", "noiseless_4layers", "noiseless_ols_continued", "noiseless_ols_4x128", "depth", "noisy",
               "probes"]
CURVES = ["curve_ols_4x128"]  # python -m construct.trained.curve: a run's eval records and the law fitted to them


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
    r = load("noiseless_ols")
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
    d, spd = r["d"], r["spd_over_d"]
    out += [f"training {minutes(r['model']['training_seconds'])}", f"On the same {r['tasks']} tasks"]
    out += ols_claims(r)
    ols_before, ols_after = before["spd_over_d"]["OLS"], spd["OLS"]
    assert all(a < b for a, b in zip(ols_after["mean"][1: d + 1], ols_before["mean"][1: d + 1])), \
        "the page says the mean SPD/d to OLS fell at every k"
    assert ols_after["high"][d] > ols_before["low"][d], "the page says the intervals at k = d overlap"
    out += [f"at k = d only from {g(ols_before['mean'][d])} to {g(ols_after['mean'][d])}"]
    target = 0.05
    assert all(h <= target for h in ols_after["high"][1:6]) and ols_after["low"][6] <= target <= ols_after["high"][6] \
        and min(ols_after["low"][7: d + 1]) > target, "the page says k <= 5 hold, k = 6 straddles, 7 and 8 miss"
    out += ["holds for k <= 5, k = 6 straddles it"]
    out += long_run(d, target)
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


def ols_claims(r: dict) -> list[str]:
    """What the README says of a model trained toward OLS (results ``r``): SPD/d to OLS at every k <= d, its
    squared error/d and SPD/d to ridge(0.1) at k = d, the closest ridge's lam, ILWD to OLS, and the refusals."""
    d, spd, err = r["d"], r["spd_over_d"], r["error_over_d"]
    out = [f"{interval(spd['OLS'], k)} at k = {k}" for k in range(1, d)]
    out += [f"{interval(spd['OLS'], d)} at k = d", f"squared error/d {interval(err['transformer'], d)} against",
            f"to ridge(0.1) {interval(spd['ridge(0.1)'], d)}"]
    lams = r["closest_ridge"]["lam"][1: d + 1]
    out += [f"closest ridge has lam {g(min(lams))} to {g(max(lams))} at every k from 1 to d",
            f"ILWD to OLS {interval(r['ilwd']['OLS'], d)} at k = d"]
    return out + [f"{name} refused {count} of {r['tasks']}" for name, count in r["refused"].items()]


def long_run(d: int, target: float) -> list[str]:
    """The long run (ols_4x128.toml) on the same tasks, against the best earlier model at k = d, and its curve."""
    r = load("noiseless_ols_4x128")
    spd = r["spd_over_d"]
    assert r["d"] == d
    meta = json.loads((CHECKPOINTS / "ols_4x128.json").read_text())
    out = [f"training {minutes(r['model']['training_seconds'])} wall-clock, {minutes(meta['cpu_seconds'])} of CPU",
           f"{r['model']['parameters'] / 1e6:.1f}M parameters",
           f"{(CHECKPOINTS / 'ols_4x128.eqx').stat().st_size / 1e6:.1f} MB"]
    from construct.trained.train import config_from_dict

    config = config_from_dict(meta["config"])
    assert "--resume" in meta["command"].split(), "the README says the run was stopped and resumed"
    assert r["model"]["steps"] == meta["steps"]
    out += [f"the run's checkpoint at step {meta['steps']:,} of its {config.steps:,}" if meta["steps"] < config.steps
            else f"all {config.steps:,} steps of the run", f"{meta['steps'] * config.batch / 1e6:.1f}M tasks",
            f"a schedule of {config.steps:,} steps", f"a warm-up of {config.warmup:,} steps",
            f"cosine decay to {config.lr_end:.0e}".replace("e-0", "e-"),
            "over examples on it, " + ", ".join(str(p) for p in sorted({config.points(s) for s in
                                                                       range(config.steps)})[:-1])
            + f", then {config.task.n}"]
    out += ols_claims(r)
    continued = load("noiseless_ols_continued")["spd_over_d"]["OLS"]["mean"]
    assert all(a < b for a, b in zip(spd["OLS"]["mean"][1: d + 1], continued[1: d + 1])), \
        "the README says the mean is lower than ols_continued's at every k"
    out += ["its mean SPD/d to OLS is lower than `ols_continued`'s at every k <= d"]

    def tasks(name: str) -> tuple:  # what draws an experiment's tasks: its seed and count, the model's [task]
        experiment = tomllib.loads((CONFIGS / load(name)["config"]).read_text())["experiment"]
        trained = tomllib.loads((CONFIGS / experiment["model"]).read_text())["task"]
        return experiment["seed"], experiment["tasks"], experiment["queries_per_dim"], trained

    assert tasks("noiseless_ols_4x128") == tasks("noiseless_ols"), "the README says: the same tasks as ols.toml's"
    earlier = {name: load(name) for name in ("noiseless_4layers", "noiseless_ols", "noiseless_ols_continued")}
    best = min(earlier.values(), key=lambda e: e["spd_over_d"]["OLS"]["mean"][d])
    ols, before = spd["OLS"], best["spd_over_d"]["OLS"]
    assert ols["high"][d] < before["low"][d], "the README says the intervals at k = d are apart"
    out += [f"the best earlier model, `checkpoints/{best['model']['name']}.eqx`, at {interval(before, d)}"]
    holds = [k for k in range(1, d + 1) if ols["high"][k] <= target]
    straddles = [k for k in range(1, d + 1) if ols["low"][k] <= target < ols["high"][k]]
    misses = [k for k in range(1, d + 1) if ols["low"][k] > target]
    assert holds == list(range(1, len(holds) + 1)) and misses, "the README says: k <= K hold, not every k <= d"
    out += [f"holds for k <= {len(holds)}"] + [f"k = {k} straddles it" for k in straddles]
    out += [f"k = {k} misses it" for k in misses]
    # its learning curve: the eval records and the law fitted at k = d
    c = load("curve_ols_4x128")
    fit = c["fit"]
    assert c["d"] == d and c["target"] == target and c["tasks"] >= 1000
    out += [f"finished at step {c['curriculum_end']:,}",
            f"every {c['records'][1]['step'] - c['records'][0]['step']:,} steps on its own {c['tasks']} "
            "evaluation tasks",
            f"from step {fit['steps'][0]:,} to {fit['steps'][-1]:,}",
            f"c = {g(fit['c'])}, a = {g(fit['a'])}, b = {g(fit['b'])}",
            f"{g(c['last']['spd_over_d_to_ols'][d])} at step {c['last']['step']:,}"]
    if c["floor_reached"]:
        out += [f"the law's floor c = {g(fit['c'])} is above the target"]
    else:
        out += [f"the law reaches the target at step {float(g(c['steps_to_target'])):,.0f}"]
    loo = c["leave_one_out"]
    floors = [f["c"] for f in loo]
    out += [f"floors from {g(min(floors)) if min(floors) > 1e-9 else 0} to {g(max(floors))}"]  # 0: at its bound
    out += [f"without the record at step {f['left_out']:,} the law reaches the target at step "
            f"{float(g(f['steps_to_target'])):,.0f}" for f in loo if f["steps_to_target"] is not None]
    assert c["reached_at"] is None and not c["last"]["every_k_le_d_at_most_target"], \
        "the README says the eval records never reach the target at k = d"
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


@pytest.mark.parametrize("name", EXPERIMENTS + CURVES)
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


@pytest.mark.parametrize("name", EXPERIMENTS + CURVES)
def test_results_directories_are_named_after_their_configs(name):
    r = load(name)
    assert f"--out construct/trained/results/{name} " in r["command"] + " "
    if name in CURVES:  # curve_<training config>
        assert r["config"] == f"construct/trained/configs/{name.removeprefix('curve_')}.toml"
    else:  # <experiment config without experiment_>
        assert r["config"] == f"experiment_{name}.toml"
        assert r["command"].startswith(f"python -m construct.trained.experiments {r['experiment']} ")
        assert "--no-train" in r["command"].split()  # evaluation only: the committed models, nothing retrained


@pytest.mark.parametrize("name", EXPERIMENTS + CURVES)
def test_results_store_no_absolute_paths(name):
    def strings(value):
        if isinstance(value, dict):
            yield from (s for v in value.values() for s in strings(v))
        elif isinstance(value, list):
            yield from (s for v in value for s in strings(v))
        elif isinstance(value, str):
            yield value

    absolute = [s for s in strings(load(name)) if any(Path(word).is_absolute() for word in s.split())]
    assert not absolute, f"{name}/results.json stores paths of the machine that wrote it: {absolute}"


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_the_models_used_are_the_committed_checkpoints(name):
    for used in load(name)["models_used"].values():
        assert used["path"] == f"construct/trained/checkpoints/{used['name']}.eqx"
        meta = json.loads((ROOT / used["path"]).with_suffix(".json").read_text())
        assert used["steps"] == meta["steps"] + meta.get("start", {}).get("steps", 0)
        assert used["bytes"] == (ROOT / used["path"]).stat().st_size


@pytest.mark.parametrize("name", CURVES)
def test_curves_come_from_the_committed_log_up_to_the_committed_model(name):
    from construct.trained.curve import eval_records

    r = load(name)
    model = name.removeprefix("curve_")
    assert r["log"] == f"construct/trained/checkpoints/{model}.log.jsonl"
    assert r["records"] == eval_records(ROOT / r["log"])
    meta = json.loads((CHECKPOINTS / f"{model}.json").read_text())
    last = json.loads((ROOT / r["log"]).read_text().splitlines()[-1])
    assert last["step"] == meta["steps"] and r["run_steps"] == meta["config"]["train"]["steps"]  # to the model's step
