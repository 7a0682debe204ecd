"""The study files shipped in ``stflow/experiments/studies/`` (issue 22): each loads and
validates as ``stflow study`` loads it, E12's tuning study tunes the settings E12 runs, and
the experiments E11 and E12 read their settings from them (an edited copy changes what the
experiment runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stflow.study import load_study

STUDIES = Path(__file__).resolve().parents[1] / "src" / "stflow" / "experiments" / "studies"
SHIPPED = sorted(p.name for p in STUDIES.glob("*.toml"))


def test_the_shipped_study_files_are_the_expected_ones():
    assert SHIPPED == ["e11_by_label.toml", "e11_by_label_tuning.toml", "e11_iid.toml",
                       "e11_iid_tuning.toml", "e12_by_label.toml", "e12_iid.toml",
                       "e12_tuning.toml", "e9_e2.toml"]


@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_study_file_loads_and_validates(name):
    study = load_study(STUDIES / name)  # every cell's config resolved, every spec built
    expected = {"e9_e2.toml": 21, "e11_iid.toml": 13, "e11_by_label.toml": 13,
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
