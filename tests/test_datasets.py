"""Real data sets: the shipped arrays, user tables (CSV / NPZ), the split, and the config."""

from pathlib import Path

import numpy as np
import pytest

from stflow.config import build_run, load_config, resolve_config
from stflow.datasets import (
    DATASETS,
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
    assert set(DATASETS) == {"breast_cancer", "diabetes"}


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
    cfg = resolve_config({"problem": {"kind": "least_squares", "dataset": "diabetes",
                                      "standardize": "yes"}})
    with pytest.raises(InputError, match="standardize must be true or false"):
        build_run(cfg)
    cfg = resolve_config({"problem": {"kind": "logistic", "dataset": "breast_cancer",
                                      "data": "x.csv"}})
    with pytest.raises(InputError, match="either dataset"):
        build_run(cfg)
