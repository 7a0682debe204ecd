"""The study files shipped in ``stflow/experiments/studies/`` (issue 22): each loads and
validates as ``stflow study`` loads it, E12's tuning study tunes the settings E12 runs, and
the experiments E9, E10 (its event-triggered table), E11 and E12 read their settings from
them (an edited copy changes what the experiment runs); a copy run with ``stflow study``
gives the experiment's numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from stflow.study import load_study

STUDIES = Path(__file__).resolve().parents[1] / "src" / "stflow" / "experiments" / "studies"
SHIPPED = sorted(p.name for p in STUDIES.glob("*.toml"))
#: Bits a round per agent of ``quantize:bits=4`` at d = 10 (a 64-bit scale + 4 bits each).
Q4_BITS = 64 + 4 * 10


def test_the_shipped_study_files_are_the_expected_ones():
    assert SHIPPED == ["e10_error_feedback.toml", "e10_trigger.toml", "e11_by_label.toml",
                       "e11_by_label_tuning.toml", "e11_iid.toml", "e11_iid_tuning.toml",
                       "e12_by_label.toml", "e12_iid.toml", "e12_tuning.toml", "e9_e2.toml",
                       "e9_e6.toml"]


@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_study_file_loads_and_validates(name):
    study = load_study(STUDIES / name)  # every cell's config resolved, every spec built
    expected = {"e9_e2.toml": 21 * 5, "e9_e6.toml": 6, "e10_trigger.toml": 18,
                "e10_error_feedback.toml": 8,
                "e11_iid.toml": 13, "e11_by_label.toml": 13,
                "e11_iid_tuning.toml": 13, "e11_by_label_tuning.toml": 13,
                "e12_iid.toml": 9, "e12_by_label.toml": 9, "e12_tuning.toml": 26}[name]
    assert len(study.cells) == expected
    assert len({c.id for c in study.cells}) == expected
    if name[:3] in ("e11", "e12") and "tuning" not in name:  # stored winners, with a note
        assert all(c.tune is None and c.note for c in study.cells)


def test_e11_tuning_studies_tune_from_the_centre_the_settings_e11_runs():
    """e11_SPLIT_tuning.toml: every setting of e11_SPLIT.toml at the tuner's centre (exactly
    e11_learning.base_config), tuned with budget 12 to the split's target."""
    from stflow.experiments import e11_learning as e11

    for split in e11.STUDIES:
        tuning = load_study(STUDIES / f"e11_{split}_tuning.toml")
        runs = e11.load_split(split).cells
        assert [c.method for c in tuning.cells] == [c.method for c in runs]
        for cell in tuning.cells:
            assert cell.tune["budget"] == 12
            assert cell.tune["target_accuracy"] == e11.TARGETS[split]
            variant, k = cell.method.rsplit(" K=", 1)
            assert cell.config == e11.base_config(variant, split, int(k)), cell.id


def test_e12_tuning_study_tunes_the_settings_e12_runs():
    """e12_tuning.toml tunes (budget 6, from the search centres) exactly the settings whose
    winners e12_by_label.toml and e12_iid.toml hold: same problem, graph, solver, network
    and compressor; only the method's values and the step differ."""
    from stflow.experiments import e12_mlp as e12

    tuning = load_study(STUDIES / "e12_tuning.toml")
    assert len(tuning.cells) == 26  # 2 splits x (DGD + 4 compressors x CHOCO + 8 flows)
    assert all(c.tune["budget"] == e12.BUDGET and c.tune["target_accuracy"] == e12.TARGET
               for c in tuning.cells)
    by_key = {(c.problem, c.config["method"]["kind"], c.scheme, c.compressor): c
              for c in tuning.cells}
    n = 0
    for split in e12.STUDIES:
        for cell in e12.load_split(split).cells:
            kind = cell.config["method"]["kind"]
            twin = by_key[(split, kind, cell.scheme, cell.compressor)]
            for section in ("problem", "graph", "network", "compute", "compressor"):
                if section != "compressor" or cell.compressor != "none":
                    assert cell.config[section] == twin.config[section], (cell.id, section)
            rounds = cell.config["solver"]["horizon"] / cell.config["solver"]["step"]
            assert rounds == pytest.approx(e12.ROUNDS)
            same = {k: v for k, v in cell.config["solver"].items() if k not in ("step", "horizon")}
            assert same == {k: v for k, v in twin.config["solver"].items()
                            if k not in ("step", "horizon")}
            assert set(cell.config["method"]) == set(twin.config["method"])
            n += 1
    assert n == 18


def test_e12_reads_its_settings_from_the_study_file(tmp_path, monkeypatch):
    from stflow.errors import InputError
    from stflow.experiments import e12_mlp as e12

    text = e12.study_path("iid").read_text()
    assert text.count("lr = 0.003\n") == 1  # DGD's tuned lr
    copy = tmp_path / "e12_iid.toml"
    copy.write_text(text.replace("lr = 0.003\n", "lr = 0.004\n").replace(
        'spec = "topk:k=49"', 'spec = "topk:k=98"'))
    monkeypatch.setattr(e12, "study_path", lambda split: copy)
    cells = {c.method: c for c in e12.load_split("iid", e12.SIZES["quick"]).cells}
    assert sorted(cells) == ["choco topk", "dgd", "flow topk"]  # --quick: top-k and DGD
    assert cells["dgd"].config["method"]["lr"] == 0.004
    assert cells["flow topk"].config["compressor"]["spec"] == "topk:k=98"
    # --quick caps the file's 1500 rounds at 400: horizon = 400 h
    assert cells["flow topk"].config["solver"]["horizon"] == pytest.approx(
        400 * cells["flow topk"].config["solver"]["step"])
    assert e12.planned_runs(quick=True) == 3
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("target_accuracy = 0.93\n", "target = 0.01\n", 1))
    with pytest.raises(InputError, match="E12 needs \\[study\\] target_accuracy"):
        e12.load_split("iid", path=bad)


# ---- E9: e9_e2.toml and e9_e6.toml ------------------------------------------------------------

#: The tuner seeds of e9_e6.toml.
E6_SEEDS = [0]


def test_e9_study_files_give_e9s_cells():
    """E9's two study files expand to the cells E9 tuned before they existed: E2 with four
    compressors x (flow predict, LEAD, CHOCO, BEER, MoTEF) + gradient tracking, budget 150 in
    waves of 10, 3000 rounds, target 1e-6, box 30x, tuner seeds 0-4 on E2's data; E6 with the
    quantizer only, 5000 rounds, target 1e-2, box 300x. Every cell's config is exactly
    comparison.method_config(...), whatever its seed."""
    from stflow.experiments import comparison as e9

    specs = e9.compressor_specs()
    assert specs == {"quantize": "quantize:bits=4", "quantize_pow2": "quantize:bits=4,scale=pow2",
                     "topk": "topk:k=2", "cyclic": "scalarize:basis=cyclic,tau={tau}"}
    assert e9.METHODS == [("observer", "predict"), ("lead", "euler"), ("choco", "euler"),
                          ("beer", "euler"), ("motef", "euler")]
    for setting, rounds, target, span, columns, seeds in (
            ("E2", 3000, 1e-6, 30.0, list(specs), [0, 1, 2, 3, 4]),
            ("E6", 5000, 1e-2, 300.0, ["quantize"], E6_SEEDS)):
        study = e9.load_setting(setting)
        assert study.target == {"column": "relative_error", "value": target, "at_least": False}
        assert study.seeds == seeds
        assert len(study.cells) == (5 * len(columns) + 1) * len(seeds)
        assert study.methods == ["flow predict", "lead", "choco", "beer", "motef",
                                 "gradient tracking"]
        by_key = {(c.config["method"]["kind"], c.compressor): c for c in study.cells
                  if c.seed == seeds[-1]}
        for kind, scheme in e9.METHODS:
            for label in columns:
                cell = by_key[(kind, label)]
                assert cell.scheme == scheme
                assert cell.config == e9.method_config(setting, kind, scheme, specs[label], rounds)
                assert cell.tune == {"budget": 150, "span": span, "wave": 10,
                                     "target": target, "target_accuracy": None}
        gt = by_key[("gradient_tracking", "none")]
        assert gt.config == e9.method_config(setting, "gradient_tracking", "euler", None, rounds)
    # --quick: budget 4, 600 / 300 rounds, seeds 0-1 / 0; the tests' size: E2 only, budget 2,
    # 200 rounds, seed 0
    quick = e9.studies_of(e9.SIZES["quick"])
    assert {c.tune["budget"] for s in quick.values() for c in s.cells} == {4}
    assert quick["E6"].cells[0].config["solver"]["horizon"] == pytest.approx(300 * 0.01)
    assert e9.planned_runs(quick=True) == 2 * 21 + 6
    assert e9.planned_runs(quick=False) == 5 * 21 + 6 * len(E6_SEEDS)


def _e9_copy(tmp_path) -> Path:
    """e9_e2.toml cut to the flow and LEAD with the 4-bit quantizer, budget 2, 600 rounds."""
    from stflow.experiments import comparison as e9

    text = e9.study_path("E2").read_text()
    head, *entries = text.split("\n[[")
    keep = [e for e in entries if e.startswith("method]]\nlabel = \"flow predict\"")
            or e.startswith("method]]\nlabel = \"lead\"")
            or e.startswith("compressor]]\nlabel = \"quantize\"\n")]
    assert len(keep) == 3
    copy = tmp_path / "my_e9.toml"
    copy.write_text((head + "".join("\n[[" + e for e in keep)).replace(
        "{ budget = 150, wave = 10 }", "{ budget = 2 }").replace("rounds = 3000", "rounds = 600")
        .replace("seeds = [0, 1, 2, 3, 4]", "seeds = [0]"))
    return copy


def test_e9_runs_an_edited_copy_and_stflow_study_gives_the_same_numbers(tmp_path):
    """E9 on an edited copy of e9_e2.toml (two methods, the quantizer, budget 2): the rows
    are the tuner's own numbers (stflow.tune.tune on method_config, seed 0), the bits are
    the rounds times 104 bits a round (a 64-bit scale and 4 bits per coordinate, d = 10),
    and `stflow study` on the same copy writes the same bits and rounds to results.csv."""
    import csv

    from stflow.cli import main
    from stflow.experiments import comparison as e9
    from stflow.tune import tune

    copy = _e9_copy(tmp_path)
    study = e9.load_setting("E2", path=copy)
    assert [c.id for c in study.cells] == ["flow-predict__quantize__default__default__s0",
                                           "lead__quantize__default__default__s0"]
    rows = e9.compare({"E2": study}, tmp_path / "e9")
    assert [r["method"] for r in rows] == ["flow predict", "lead"]
    for r in rows:
        ref = tune(e9.method_config("E2", r["kind"], r["scheme"], "quantize:bits=4", 600),
                   budget=2, target=1e-6, seed=0)
        assert (r["bits_to_target"], r["rounds_to_target"], r["robust_bits_to_target"],
                r["params"]) == (ref.bits_to_target, ref.rounds_to_target,
                                 ref.robust_bits_to_target, ref.params)
        assert r["auto_bits_to_target"] == ref.trials[0]["bits_to_target"]
        assert r["found"] and r["bits_to_target"] == r["rounds_to_target"] * Q4_BITS
        assert r["robust_bits_to_target"] % Q4_BITS == 0
        assert (tmp_path / "e9" / r["run_dir"] / "metrics.csv").exists()
    flow = rows[0]
    assert (flow["rounds_to_target"], flow["bits_to_target"]) == (150, 15_600.0)  # --quick's
    out = tmp_path / "study"
    assert main(["study", str(copy), "--out", str(out), "--quiet"]) == 0
    with open(out / "results.csv", newline="") as f:
        got = {r["method"]: r for r in csv.DictReader(f)}
    for r in rows:
        assert float(got[r["method"]]["bits_to_target"]) == r["bits_to_target"]
        assert int(got[r["method"]]["rounds_to_target"]) == r["rounds_to_target"]
        assert got[r["method"]]["tune_found"] == "True"


def test_e9_rejects_a_study_file_it_cannot_report(tmp_path):
    from stflow.errors import InputError
    from stflow.experiments import comparison as e9

    text = _e9_copy(tmp_path).read_text()
    bad = tmp_path / "untuned.toml"
    bad.write_text(text.replace("tune = { budget = 2 }\n", "", 1))
    with pytest.raises(InputError, match="every method is tuned in E9"):
        e9.load_setting("E2", path=bad)


# ---- E10: e10_trigger.toml ---------------------------------------------------------------------


def test_e10_trigger_study_gives_e10s_cells():
    """e10_trigger.toml: the observer flow (predict) with and without event-triggered
    sending, three compressors, tuner seeds 0-2 on E2's one data set (data_seed = 0),
    budget 30, 3000 rounds: 18 cells, each exactly E9's flow config (plus the trigger's
    start for the triggered one)."""
    from stflow.experiments import comparison as e9
    from stflow.experiments import e10_schemes as e10

    study = e10.study("trigger", e10.SIZES["full"]["trigger"])
    specs = e9.compressor_specs()
    assert len(study.cells) == 2 * 3 * 3
    assert study.target["value"] == 1e-6 and study.methods == ["flow", "flow + trigger"]
    for cell in study.cells:
        ref = e9.method_config("E2", "observer", "predict", specs[cell.compressor], 3000)
        if cell.method == "flow + trigger":
            ref["method"].update(trigger=0.1, trigger_decay=5.0)
        assert cell.config == ref, cell.id  # problem seed 0 whatever the trial
        assert cell.tune["budget"] == 30
    assert sorted({(c.compressor, c.seed) for c in study.cells}) == [
        (k, s) for k in ("cyclic", "quantize", "topk") for s in (0, 1, 2)]
    quick = e10.study("trigger", e10.SIZES["quick"]["trigger"])
    assert [(c.method, c.compressor, c.seed, c.tune["budget"]) for c in quick.cells] == [
        ("flow", "quantize", 0, 3), ("flow + trigger", "quantize", 0, 3)]
    # schemes x compressors x steps + error-feedback cases + trigger cells
    assert e10.planned_runs(quick=True) == 3 * 2 * 3 + 8 + 2
    assert e10.planned_runs(quick=False) == 3 * 2 * 11 + 8 + 18


def test_e10_trigger_rows_are_the_tuners_numbers(tmp_path):
    """trigger_rows on a small cut (the quantizer, budget 2, seed 0, 300 rounds) with the
    study runner: each row is stflow.tune.tune's result on the same config and seed; without
    the trigger every round sends 104 bits, so bits = rounds x 104."""
    from stflow.experiments import comparison as e9
    from stflow.experiments import e10_schemes as e10
    from stflow.tune import tune

    cut = {"budget": 2, "seeds": 1, "compressors": ("quantize",), "rounds": 300}
    rows = e10.trigger_rows(cut, tmp_path)
    assert e10.trigger_rows(cut, tmp_path / "again") == rows  # deterministic
    assert [(r["variant"], r["seed"], r["budget"]) for r in rows] == [
        ("flow", 0, 2), ("flow + trigger", 0, 2)]
    for r in rows:
        cfg = e9.method_config("E2", "observer", "predict", "quantize:bits=4", 300)
        if r["variant"] != "flow":
            cfg["method"].update(trigger=0.1, trigger_decay=5.0)
        ref = tune(cfg, budget=2, target=1e-6, seed=0)
        assert (r["bits_to_target"], r["robust_bits_to_target"], r["params"]) == (
            ref.bits_to_target, ref.robust_bits_to_target, ref.params)
    flow = rows[0]
    assert flow["bits_to_target"] == flow["rounds_to_target"] * Q4_BITS
    assert (tmp_path / "trigger" / "results.csv").read_text().count("\n") == 3


def _measure_script():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "measure_error_feedback.py"
    spec = importlib.util.spec_from_file_location("measure_error_feedback", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_e10_error_feedback_study_gives_the_measured_cases():
    """e10_error_feedback.toml: the eight cases of scripts/measure_error_feedback.py (which
    measured E10's stored table before it was a study file), each config exactly the
    script's, tuned with budget 30; the euler's-auto-start entry holds the gains "auto" gives
    under euler on E2 with either compressor."""
    import warnings

    from stflow.config import build_run, resolve_config
    from stflow.experiments import e10_schemes as e10

    script = _measure_script()
    study = e10.study("error_feedback", e10.SIZES["full"]["error_feedback"])
    assert len(study.cells) == 8 and all(c.tune["budget"] == 30 for c in study.cells)
    cases = {e10._case(c): c for c in study.cells}
    assert sorted(cases) == sorted(script.CASES)
    for name, (flow, scheme, spec, *start) in script.CASES.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert cases[name].config == resolve_config(script.case_config(
                flow, scheme, spec, *start)), name
            if start:  # the stored start is euler's auto gains, now
                euler = dict(cases[name].config, solver=dict(cases[name].config["solver"],
                                                             scheme="euler"))
                euler["method"] = dict(euler["method"], alpha="auto", beta="auto", eta="auto")
                got = build_run(resolve_config(euler)).config["method"]
                assert {k: got[k] for k in ("alpha", "beta", "eta")} == {
                    k: cases[name].config["method"][k] for k in ("alpha", "beta", "eta")}


def test_e10_error_feedback_rows_are_the_tuners_numbers(tmp_path):
    """error_feedback_rows at --quick's cut (budget 3, 600 rounds): each case is
    stflow.tune.tune's result on the script's config; the observer flow's bits are its
    rounds x 104 (quantize) or x 136 (top-2: two 64-bit values and two 4-bit indices, d =
    10); a case with nothing counted gets the closest candidate, each rerun for 600 rounds."""
    import warnings

    from stflow.config import resolve_config
    from stflow.experiments import e10_schemes as e10
    from stflow.tune import tune

    script = _measure_script()
    rows = e10.error_feedback_rows(e10.SIZES["quick"]["error_feedback"], tmp_path)
    assert e10.SIZES["quick"]["error_feedback"] == {"budget": 3, "rounds": 600}
    assert [r["case"] for r in rows] == [  # the order of E10's table before the study file
        "direct + EF, predict, topk:k=2", "direct + EF, predict, topk:k=2, euler's auto start",
        "direct + EF, euler, topk:k=2", "direct, predict, topk:k=2", "observer, predict, topk:k=2",
        "direct + EF, predict, quantize:bits=4",
        "direct + EF, predict, quantize:bits=4, euler's auto start",
        "observer, predict, quantize:bits=4"]
    assert [r["compressor"] for r in rows] == ["topk:k=2"] * 5 + ["quantize:bits=4"] * 3
    for r in rows:
        flow, scheme, spec, *start = script.CASES[r["case"]]
        raw = script.case_config(flow, scheme, spec, *start)
        raw["solver"]["horizon"] = 600 * raw["solver"]["step"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = tune(resolve_config(raw), budget=3, target=1e-6, seed=0)
        assert (r["found"], r["bits_to_target"], r["robust_bits_to_target"], r["params"]) == (
            ref.found, ref.bits_to_target, ref.robust_bits_to_target, ref.params), r["case"]
        if r["found"]:
            per_round = {"topk:k=2": 2 * (64 + 4), "quantize:bits=4": Q4_BITS}[spec]
            assert r["bits_to_target"] == r["rounds_to_target"] * per_round
            assert r["run_bits_to_target"] == r["bits_to_target"]  # the winner, rerun
        elif r["closest"] is not None:
            assert r["closest"]["params"] in [t["params"] for t in ref.trials
                                              if not t["diverged"]]
    observer = {r["compressor"]: r for r in rows if r["kind"] == "observer"}
    assert all(r["found"] for r in observer.values())
    assert observer["quantize:bits=4"]["bits_to_target"] == 15_600  # 150 rounds x 104
    table = e10._ef_table(rows)
    assert table.count("| 1.00 |") == 2  # each observer row against itself


def test_a_shipped_e10_file_runs_as_it_is_with_stflow_study(tmp_path, capsys):
    """The command docs/reproduce.md gives, on an unedited shipped file: `stflow study
    e10_error_feedback.toml --quick` (budget 3, 400 rounds) runs its 8 cells; the observer
    rows' bits are their rounds x the compressor's bits a round."""
    import csv

    from stflow.cli import main

    out = tmp_path / "ef"
    assert main(["study", str(STUDIES / "e10_error_feedback.toml"), "--out", str(out),
                 "--quick", "--quiet"]) == 0
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and all(r["status"] != "failed" for r in rows)
    observer = [r for r in rows if r["method"] == "observer, predict"]
    assert [r["compressor"] for r in observer] == ["topk:k=2", "quantize:bits=4"]
    for r in observer:
        if r["reached"] == "True":
            per_round = {"topk:k=2": 136, "quantize:bits=4": Q4_BITS}[r["compressor"]]
            assert float(r["bits_to_target"]) == int(r["rounds_to_target"]) * per_round
    assert any(r["reached"] == "True" for r in observer)
    assert (out / "report.html").exists()


def test_data_seed_fixes_the_data_set_across_trials():
    """[study] data_seed: every trial on one data set ([problem] seed), the trials vary the
    tuner's seed and {seed} only; without it each trial draws its own data."""
    from stflow.study import parse_study

    raw = {"study": {"target": 1e-6, "seeds": [0, 1, 2], "rounds": 10},
           "base": {"problem": {"kind": "least_squares", "agents": 4, "dim": 3}},
           "method": [{"kind": "lead"}],
           "compressor": [{"spec": "randk:k=1,seed={seed}"}]}
    drawn = parse_study(raw).cells
    assert [c.config["problem"]["seed"] for c in drawn] == [0, 1, 2]
    raw["study"]["data_seed"] = 7
    fixed = parse_study(raw).cells
    assert [c.config["problem"]["seed"] for c in fixed] == [7, 7, 7]
    assert [c.seed for c in fixed] == [0, 1, 2]
    assert [c.config["compressor"]["spec"] for c in fixed] == [
        c.config["compressor"]["spec"] for c in drawn]


def test_the_benchmark_study_files_load():
    """The study files under benchmarks/ (measurements quoted in the docs) stay valid: E11
    over tuner seeds with every compressed peer is E11's K = 1 tuning file plus LEAD, BEER
    and MoTEF with each compressor, seeds 0-4 on one split."""
    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    for split, n_methods in (("iid", 13), ("by_label", 13)):
        study = load_study(bench / f"e11_{split}_peers_seeds.toml")
        assert study.seeds == [0, 1, 2, 3, 4]
        assert len(study.methods) == n_methods and len(study.cells) == 5 * n_methods
        kinds = {c.config["method"]["kind"] for c in study.cells}
        assert {"lead", "beer", "motef", "choco", "observer"} <= kinds
        assert {c.config["problem"]["seed"] for c in study.cells} == {0}
        assert all(c.tune["budget"] == 12 for c in study.cells)
    assert load_study(bench / "study_e2_budget50.toml").cells


def test_e9_figure_draws_a_repeated_curve_once(tmp_path, monkeypatch):
    """Every seed's winner is drawn, but a curve equal to one already drawn (gradient
    tracking's, the same for every seed) is drawn once."""
    import numpy as np

    from stflow.experiments import _common, comparison

    def rec(scale):
        return {"relative_error": np.array([1.0, 0.1 * scale, 1e-7]),
                "bits_per_agent": np.array([0.0, 100.0, 200.0 * scale])}

    rows = []
    for seed in range(3):
        rows.append({"problem": "E2", "compressor": "q4", "method": "flow", "kind": "observer",
                     "seed": seed, "records": rec(1 + seed), "target": 1e-6})
        rows.append({"problem": "E2", "compressor": "none", "method": "gradient tracking",
                     "kind": "gradient_tracking", "seed": seed, "records": rec(7),
                     "target": 1e-6})
    figs = []
    real = _common.save_figure
    monkeypatch.setattr(_common, "save_figure",
                        lambda fig, out, name: (figs.append(fig), real(fig, out, name))[1])
    comparison._plot(tmp_path, "E2", rows)
    (ax,) = [a for a in figs[0].axes if a.get_lines()]
    labels = [ln.get_label() for ln in ax.get_lines() if not ln.get_label().startswith("_")]
    assert labels.count("flow") == 3
    assert labels.count("gradient tracking (uncompressed)") == 1
