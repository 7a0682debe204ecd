"""Data splits (``[problem] split``): the label histograms of iid, by_label, dirichlet,
shards and quantity, their seeds, the ``split`` block of summary.json on both engines, and
bad keys."""

import json

import numpy as np
import pytest

from stflow.cli import main
from stflow.datasets import Table, dataset_problem, load_dataset, split_table
from stflow.errors import InputError
from stflow.output import read_metrics_csv
from stflow.splits import SPLITS, label_skew

SPLIT_KW = {"iid": {}, "by_label": {}, "dirichlet": {"concentration": 0.5},
            "shards": {"labels_per_agent": 2}, "quantity": {"concentration": 0.5}}


def _table(per_class=30, classes=4, seed=0) -> Table:
    """``classes`` classes of ``per_class`` rows, two features."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes, dtype=np.float64), per_class)
    X = rng.standard_normal((y.size, 2)) + y[:, None]
    return Table("small", X, y, ("a", "b"), "c")


def _held(split) -> list[np.ndarray]:
    """The labels each agent really holds, read from the problem arrays."""
    return [split.arrays["y"][i, :m] for i, m in enumerate(split.block_sizes)]


@pytest.mark.parametrize("name", SPLITS)
def test_histograms_count_the_training_rows_each_agent_holds(name):
    s = split_table(_table(), "softmax", 6, test_fraction=0.2, seed=1, split=name,
                    **SPLIT_KW[name])
    h = s.label_histogram
    assert h.shape == (6, 4) and h.min() >= 0
    assert h.sum(axis=0).tolist() == np.bincount(s.y_train.astype(int), minlength=4).tolist()
    assert h.sum(axis=1).tolist() == s.block_sizes and min(s.block_sizes) >= 1
    for i, labels in enumerate(_held(s)):
        assert np.bincount(labels.astype(int), minlength=4).tolist() == h[i].tolist()
    # the agents' rows, in dealt order, are exactly the training rows
    stacked = np.concatenate([s.arrays["A"][i, :m] for i, m in enumerate(s.block_sizes)])
    assert np.array_equal(stacked, s.X_train)
    block = s.summary()
    assert block["kind"] == name and block["label_histogram"] == h.tolist()
    assert block["rows_per_agent"] == s.block_sizes
    assert set(SPLIT_KW[name]) <= set(block)


@pytest.mark.parametrize("seed", range(5))
def test_shards_give_each_agent_exactly_labels_per_agent_classes(seed):
    # 4 classes of 30 rows, 6 agents x 2 = 12 shards of 10 rows: every shard is one class
    s = split_table(_table(), "softmax", 6, seed=seed, split="shards", labels_per_agent=2)
    assert [np.unique(y).size for y in _held(s)] == [2] * 6
    assert s.block_sizes == [20] * 6
    # 3 agents x 4 = 12 shards: every agent holds all 4 classes
    s = split_table(_table(), "softmax", 3, seed=seed, split="shards", labels_per_agent=4)
    assert [np.unique(y).size for y in _held(s)] == [4] * 3
    s = split_table(_table(), "softmax", 4, seed=seed, split="shards", labels_per_agent=1)
    assert sorted(int(y[0]) for y in _held(s)) == [0, 1, 2, 3]
    assert [np.unique(y).size for y in _held(s)] == [1] * 4


def test_shards_spread_the_label_pairs_over_seeds():
    """Not a fixed pairing: over seeds the pairs of classes differ."""
    pairs = set()
    for seed in range(6):
        s = split_table(_table(), "softmax", 6, seed=seed, split="shards")
        pairs |= {tuple(np.unique(y).astype(int)) for y in _held(s)}
    assert len(pairs) >= 5  # of the 6 possible pairs of 4 classes


def test_dirichlet_concentration_moves_from_one_class_to_iid():
    digits = load_dataset("digits")
    iid = split_table(digits, "softmax", 10, test_fraction=0.25, seed=0)
    flat = split_table(digits, "softmax", 10, test_fraction=0.25, seed=0, split="dirichlet",
                       concentration=1e3)
    peaked = split_table(digits, "softmax", 10, test_fraction=0.25, seed=0,
                         split="dirichlet", concentration=1e-3)
    # near iid: each class divided (almost) evenly, so closer to the pooled mix than iid
    assert label_skew(flat.label_histogram) < 0.03 < label_skew(iid.label_histogram) < 0.12
    assert max(flat.block_sizes) < 1.1 * 1348 / 10 < 1.2 * min(flat.block_sizes)
    # concentration 1e-3: every class on one agent (up to the rows moved to empty agents)
    h = peaked.label_histogram
    moved = peaked.info["rows_moved"]
    assert np.all(h.max(axis=0) >= h.sum(axis=0) - moved)
    assert moved == int(np.sum(np.array(peaked.block_sizes) == 1)) >= 1
    assert np.median((h > 0).sum(axis=1)) == 1 and min(peaked.block_sizes) == 1
    assert label_skew(h) > 0.8


def test_quantity_keeps_labels_iid_but_sizes_vary():
    digits = load_dataset("digits")
    s = split_table(digits, "softmax", 10, test_fraction=0.25, seed=0, split="quantity",
                    concentration=0.5)
    sizes = np.array(s.block_sizes)
    assert sizes.sum() == 1348 and sizes.min() >= 1 and sizes.max() / sizes.min() > 10
    # the big agents see the pooled class mix (as iid agents do)
    h = s.label_histogram
    pooled = h.sum(axis=0) / h.sum()
    big = sizes >= 100
    tv = 0.5 * np.abs(h[big] / sizes[big, None] - pooled).sum(axis=1)
    assert big.sum() >= 3 and tv.max() < 0.15 and (h[big] > 0).sum(axis=1).min() == 10
    # without labels too: a regression table (least squares) is split by size
    p, r = dataset_problem("diabetes", agents=5, seed=2, split="quantity", concentration=1.0)
    assert p.rows_per_agent.tolist() == r.block_sizes and len(set(r.block_sizes)) > 1
    assert "label_histogram" not in p.data_split and p.data_split["rows_per_agent"] == \
        r.block_sizes
    x = np.linspace(-1, 1, p.dim)  # unequal blocks, zero padding: the same total gradient
    A, b = r.X_train, r.y_train
    assert np.allclose(p.total_grad(x), A.T @ (A @ x - b), rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("name", ["dirichlet", "shards", "quantity"])
def test_same_seed_same_split_other_seed_other_split(name):
    kw = {"test_fraction": 0.2, "split": name, **SPLIT_KW[name]}
    a = split_table(_table(), "softmax", 5, seed=3, **kw)
    b = split_table(_table(), "softmax", 5, seed=3, **kw)
    c = split_table(_table(), "softmax", 5, seed=4, **kw)
    assert np.array_equal(a.arrays["A"], b.arrays["A"]) and a.summary() == b.summary()
    assert not np.array_equal(a.label_histogram, c.label_histogram)
    # the split keeps the held-out rows of iid (the shuffle is the seed's first draw;
    # standardized with the same rows' statistics, summed in another order)
    iid = split_table(_table(), "softmax", 5, seed=3, test_fraction=0.2)
    assert np.array_equal(a.y_test, iid.y_test)
    assert np.allclose(a.X_test, iid.X_test, rtol=1e-12, atol=1e-12)


def test_bad_split_arguments_are_one_line_errors():
    t = _table()
    with pytest.raises(InputError, match="labels_per_agent must be <= the 4 classes"):
        split_table(t, "softmax", 2, split="shards", labels_per_agent=5)
    with pytest.raises(InputError, match="more shards than rows"):
        split_table(t, "softmax", 60, split="shards", labels_per_agent=3)
    with pytest.raises(InputError, match="concentration must be a number > 0"):
        split_table(t, "softmax", 2, split="dirichlet", concentration=0.0)
    with pytest.raises(InputError, match='split = "dirichlet" needs class labels'):
        split_table(load_dataset("diabetes"), "least_squares", 3, split="dirichlet")
    with pytest.raises(InputError, match="split must be one of iid, by_label, dirichlet"):
        split_table(t, "softmax", 2, split="nope")


BASE = """
[problem]
kind = "logistic"
dataset = "breast_cancer"
agents = 5
regularization = 0.1
test_fraction = 0.2
{extra}
[method]
kind = "dgd"
lr = 0.01
[solver]
step = 0.01
horizon = 0.05
record_every = 5
"""


@pytest.mark.parametrize(("extra", "fragment"), [
    ('split = "dirichlet"\nconcentration = 0', "concentration"),
    ('split = "quantity"\nconcentration = -1.0', "concentration"),
    ('split = "shards"\nlabels_per_agent = 3', "labels_per_agent must be <= the 2 classes"),
    ('split = "nope"', "split must be"),
    ("concentration = 0.1", 'concentration applies to split = "dirichlet" or "quantity"'),
    ('split = "dirichlet"\nlabels_per_agent = 3', 'labels_per_agent applies to split = "shards"'),
])
def test_bad_keys_exit_2_with_one_line(tmp_path, capsys, extra, fragment):
    cfg = tmp_path / "c.toml"
    cfg.write_text(BASE.format(extra=extra))
    code = main(["run", str(cfg), "--out", str(tmp_path / "o"), "--quiet", "--no-figure"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and fragment in err and "\n" not in err and "Traceback" not in err


def test_summary_json_carries_the_split(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(BASE.format(extra='split = "shards"\nlabels_per_agent = 1\nseed = 2'))
    main(["run", str(cfg), "--out", str(tmp_path / "o"), "--quiet", "--no-figure"])
    block = json.loads((tmp_path / "o" / "summary.json").read_text())["split"]
    s = split_table(load_dataset("breast_cancer"), "logistic", 5, test_fraction=0.2, seed=2,
                    split="shards", labels_per_agent=1)
    assert block == json.loads(json.dumps(s.summary()))
    assert block["kind"] == "shards" and block["labels_per_agent"] == 1
    assert block["label_values"] == [0.0, 1.0] and len(block["label_histogram"]) == 5
    assert [sum(h) for h in block["label_histogram"]] == block["rows_per_agent"]
    assert sum(map(sum, block["label_histogram"])) == 455


DIGITS = """
[problem]
kind = "softmax"
dataset = "digits"
agents = 6
regularization = 0.1
test_fraction = 0.25
split = "dirichlet"
concentration = 0.5
batch = 8
seed = 1
[compressor]
spec = "topk:k=40"
[solver]
step = 0.001
horizon = 0.04
record_every = 10
"""


def test_dirichlet_digits_runs_the_same_on_both_engines(tmp_path, capsys):
    """Unequal row counts (45 to 390 rows) and minibatches: simulator and mpiexec -n 2
    give the same metrics and the same split block."""
    from test_mpi import RTOL, _max_rel, _mpirun

    cfg = tmp_path / "d.toml"
    cfg.write_text(DIGITS)
    assert main(["run", str(cfg), "--out", str(tmp_path / "sim"), "--quiet",
                 "--no-figure"]) in (0, 1)
    proc, _ = _mpirun(2, ["run", cfg, "--backend", "mpi", "--out", tmp_path / "mpi", "--quiet",
                          "--no-figure"], timeout=120, env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    a = read_metrics_csv(tmp_path / "sim" / "metrics.csv")
    b = read_metrics_csv(tmp_path / "mpi" / "metrics.csv")
    assert len(a["step"]) == 5 and _max_rel(a, b) <= RTOL
    sa, sb = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("sim", "mpi"))
    assert sa["split"] == sb["split"] and sa["split"]["kind"] == "dirichlet"
    sizes = sa["split"]["rows_per_agent"]
    assert sum(sizes) == 1348 and max(sizes) > 2 * min(sizes) >= 16
