"""Real data sets: the shipped arrays, user tables (CSV / NPZ), the split, and the config."""

from pathlib import Path

import numpy as np
import pytest

from stflow.config import build_run, load_config, resolve_config
from stflow.datasets import (
    DATASETS,
    Table,
    dataset_problem,
    load_dataset,
    load_table,
    split_table,
)
from stflow.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_data_match_scikit_learn():
    sklearn = pytest.importorskip("sklearn.datasets")
    bc = load_dataset("breast_cancer")
    X, y = sklearn.load_breast_cancer(return_X_y=True)
    assert np.array_equal(bc.X, X) and np.array_equal(bc.y, y)
    db = load_dataset("diabetes")
    X, y = sklearn.load_diabetes(return_X_y=True, scaled=False)
    assert np.array_equal(db.X, X) and np.array_equal(db.y, y)
    dg = load_dataset("digits")
    X, y = sklearn.load_digits(return_X_y=True)
    assert np.array_equal(dg.X, X) and np.array_equal(dg.y, y) and dg.feature_scale == 16.0
    assert set(DATASETS) == {"breast_cancer", "diabetes", "digits"}


def test_split_is_contiguous_padded_and_exact():
    table = load_dataset("breast_cancer")
    s = split_table(table, "logistic", 10, test_fraction=0.2, seed=0)
    assert s.block_sizes == [46] * 5 + [45] * 5
    A = s.arrays["A"]
    # agent i holds the i-th contiguous block of the (shuffled) training rows
    start = sum(s.block_sizes[:3])
    assert np.array_equal(A[3, :46], s.X_train[start : start + 46])
    assert np.all(A[7, 45] == 0.0) and s.arrays["y"][7, 45] == 1.0  # padding row
    # standardized with training statistics, intercept last
    assert np.allclose(s.X_train[:, :-1].mean(axis=0), 0.0, atol=1e-12)
    assert np.allclose(s.X_train[:, :-1].std(axis=0), 1.0)
    assert np.all(s.X_train[:, -1] == 1.0)
    assert set(np.unique(s.y_test)) == {-1.0, 1.0}


def test_padding_changes_no_gradient():
    problem, split = dataset_problem("diabetes", agents=7, seed=3)
    x = np.linspace(-1, 1, problem.dim)
    total = problem.total_grad(x)
    A, b = split.X_train, split.y_train
    assert np.allclose(total, A.T @ (A @ x - b), rtol=1e-12, atol=1e-10)


def test_logistic_optimum_matches_scikit_learn():
    pytest.importorskip("sklearn")
    from stflow.experiments.e6_real_data import centralized_logistic

    problem, split = dataset_problem("breast_cancer", agents=10, regularization=1e-2,
                                     test_fraction=0.2)
    w = centralized_logistic(split.X_train, split.y_train, agents=10, regularization=1e-2)
    assert np.linalg.norm(w - problem.x_star) <= 1e-8 * np.linalg.norm(w)


def test_least_squares_optimum_matches_lstsq():
    problem, split = dataset_problem("diabetes", agents=10, test_fraction=0.2)
    w = np.linalg.lstsq(split.X_train, split.y_train, rcond=None)[0]
    assert np.linalg.norm(w - problem.x_star) <= 1e-10 * np.linalg.norm(w)


def test_csv_and_npz_tables(tmp_path):
    table = load_table(ROOT / "examples" / "data" / "tiny.csv", target="responded")
    assert table.X.shape == (60, 3) and table.feature_names[0] == "age_years"
    np.savez(tmp_path / "t.npz", X=table.X, responded=table.y)
    again = load_table(tmp_path / "t.npz", target="responded")
    assert np.array_equal(again.X, table.X) and np.array_equal(again.y, table.y)
    p, s = dataset_problem(tmp_path / "t.npz", target="responded", agents=4)
    assert p.kind == "logistic" and p.dim == 4 and sum(s.block_sizes) == 60


@pytest.mark.parametrize(
    "text, target, fragment",
    [
        ("a,b\n1,2\n", "c", "target must name a column"),
        ("a,b\n1,x\n", None, "is not a number"),
        ("a,b\n1,2\n3\n", None, "has 1 cells"),
        ("a,b\n1,nan\n", None, "NaN"),
        ("a,b\n", None, "at least one data row"),
    ],
)
def test_bad_csv_is_an_input_error(tmp_path, text, target, fragment):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=fragment):
        load_table(path, target=target)


def test_bad_split_arguments(tmp_path):
    table = load_dataset("diabetes")
    with pytest.raises(InputError, match="exactly 2 values"):
        split_table(table, "logistic", 4)
    with pytest.raises(InputError, match="test_fraction"):
        split_table(table, "least_squares", 4, test_fraction=1.0)
    with pytest.raises(InputError, match="agents must be <="):
        split_table(table, "least_squares", 1000)
    with pytest.raises(InputError, match="dataset must be one of"):
        load_dataset("iris")
    const = tmp_path / "c.csv"
    const.write_text("a,b,y\n1,2,0\n1,3,1\n1,4,0\n")
    with pytest.raises(InputError, match="constant"):
        dataset_problem(const, agents=2)


def test_example_configs_build():
    run = build_run(load_config(ROOT / "examples" / "breast_cancer.toml"))
    assert (run.problem.n_agents, run.problem.dim) == (10, 31)
    run = build_run(load_config(ROOT / "examples" / "my_csv.toml"))
    assert (run.problem.n_agents, run.problem.dim) == (4, 4)


def test_config_table_keys_are_checked():
    with pytest.raises(InputError, match="standardize must be true or false"):
        resolve_config({"problem": {"kind": "least_squares", "dataset": "diabetes",
                                    "standardize": "yes"}})
    cfg = resolve_config({"problem": {"kind": "logistic", "dataset": "breast_cancer",
                                      "data": "x.csv"}})
    with pytest.raises(InputError, match="either dataset"):
        build_run(cfg)


def test_digits_split_shapes_iid_and_by_label():
    table = load_dataset("digits")
    iid = split_table(table, "softmax", 8, test_fraction=0.25, seed=0)
    lab = split_table(table, "softmax", 8, test_fraction=0.25, seed=0, split="by_label")
    for s in (iid, lab):
        assert s.arrays["A"].shape == (8, 169, 65) and s.arrays["y"].shape == (8, 169)
        assert s.block_sizes == [169] * 4 + [168] * 4 and s.classes == 10
        assert s.X_test.shape == (449, 65) and s.info["n_train"] == 1348
        assert s.X_train[:, :64].min() == 0.0 and s.X_train[:, :64].max() == 1.0  # pixels / 16
    # the same held-out rows and the same training rows, dealt differently
    assert np.array_equal(iid.X_test, lab.X_test) and np.array_equal(iid.y_test, lab.y_test)
    assert np.array_equal(np.bincount(iid.y_train.astype(int)),
                          np.bincount(lab.y_train.astype(int)))
    # iid: every agent sees (nearly) every class; by_label: labels sorted, 2 or 3 per agent
    assert min(np.unique(iid.arrays["y"][i, :168]).size for i in range(8)) >= 9
    counts = np.bincount(lab.y_train.astype(int), minlength=10)
    bounds = np.concatenate([[0], np.cumsum(lab.block_sizes)])
    for i in range(8):
        got = lab.arrays["y"][i, : lab.block_sizes[i]]
        assert np.all(np.diff(got) >= 0)
        # agent i holds sorted positions bounds[i]..bounds[i+1]: classes from the cumulative counts
        first = np.searchsorted(np.cumsum(counts), bounds[i], side="right")
        last = np.searchsorted(np.cumsum(counts), bounds[i + 1] - 1, side="right")
        assert np.unique(got).tolist() == list(range(first, last + 1))
        assert 2 <= np.unique(got).size <= 3
    assert np.all(lab.arrays["A"][4:, 168] == 0.0) and np.all(lab.arrays["y"][4:, 168] == 0.0)


def test_digits_problem_and_config():
    p, s = dataset_problem("digits", agents=8, regularization=1e-2, test_fraction=0.25,
                           split="by_label", batch=16, seed=0)
    assert (p.kind, p.dim, p.classes, p.batch) == ("softmax", 650, 10, 16)
    assert p.rows_per_agent.tolist() == s.block_sizes and p.has_test
    assert p.test_accuracy(np.zeros((1, 650)))[0] == pytest.approx(np.mean(s.y_test == 0))
    cfg = resolve_config({"problem": {"kind": "softmax", "dataset": "digits", "agents": 8,
                                      "regularization": 1e-2, "test_fraction": 0.25,
                                      "split": "by_label", "batch": 16}})
    q = build_run(cfg).problem
    assert np.array_equal(q.A, p.A) and np.array_equal(q.y, p.y) and q.batch == 16
    with pytest.raises(InputError, match='split must be "iid" or "by_label"'):
        build_run(resolve_config({"problem": {"kind": "softmax", "dataset": "digits",
                                                "split": "label"}}))
    with pytest.raises(InputError, match="classes applies"):
        build_run(resolve_config({"problem": {"kind": "softmax", "dataset": "digits",
                                                "classes": 10}}))


def test_logistic_by_label_and_a_class_without_test_rows():
    s = split_table(load_dataset("breast_cancer"), "logistic", 4, test_fraction=0.2,
                    split="by_label")
    assert np.all(s.arrays["y"][0] == -1.0) and np.all(s.arrays["y"][3] == 1.0)
    X = np.arange(40.0).reshape(20, 2)
    y = np.array([0.0] * 10 + [1.0] * 9 + [2.0])  # class 2 has one row
    table = Table("rare", X, y, ("a", "b"), "c")
    with pytest.raises(InputError, match="class 2 of 'rare' without held-out rows"):
        split_table(table, "softmax", 2, test_fraction=0.2, seed=0, split="by_label")
    ok = split_table(table, "softmax", 2, test_fraction=0.2, seed=0)  # iid: allowed
    assert ok.classes == 3
    with pytest.raises(InputError, match="needs class labels"):
        split_table(load_dataset("diabetes"), "least_squares", 4, split="by_label")
    with pytest.raises(InputError, match="agents must be <="):
        split_table(table, "softmax", 17, test_fraction=0.2, split="by_label")
