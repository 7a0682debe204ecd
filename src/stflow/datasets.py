r"""Real data sets: the two shipped with stflow, a user's CSV / NPZ table, and the split.

A *table* is n samples of p features plus one target column. :func:`load_dataset` reads the
built-in ones (``breast_cancer``: 569 x 30, binary; ``diabetes``: 442 x 10, regression;
``digits``: 1797 x 64 (8x8 images), 10 classes; all extracted once from scikit-learn by
``scripts/make_datasets.py`` and shipped in ``stflow/data/``, so nothing is downloaded);
:func:`load_table` reads a user's CSV (header row, numeric columns, one of them the target)
or NPZ (array ``X`` (n, p) and a 1-D target array, default ``y``). :func:`split_table`
shuffles with a seeded generator, holds out a test fraction, standardizes with the
*training* statistics, appends an intercept column, and deals the training rows over N
agents (:mod:`stflow.splits`: ``iid``, ``by_label``, ``dirichlet``, ``shards``,
``quantity``), giving the arrays of a :class:`stflow.problems.LeastSquaresProblem`
(``A, b``), :class:`stflow.problems.LogisticProblem` (``A, y``) or
:class:`stflow.problems.SoftmaxProblem` (``A, y`` with labels 0..K-1).

Blocks shorter than the largest (n is rarely a multiple of N; ``dirichlet`` and
``quantity`` give very unequal blocks) are padded at their end with all-zero rows (target 0
for least squares, label +1 for logistic, class 0 for softmax). A zero row has zero gradient everywhere, so the minimizer, the gradients and
the flows are exactly those of the unpadded data; the value of each padded row is a
constant (:math:`\log 2` logistic, :math:`\log K` softmax), which cancels in the optimality
gap. Minibatches never sample padding rows (``rows_per_agent`` of the problem counts the
rows up to each agent's last non-zero row).
"""

from __future__ import annotations

import csv
import os
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import InputError
from .splits import (
    LABEL_SPLITS,
    SPLIT_KEYS,
    SPLITS,
    check_split,
    deal_rows,
    label_histogram,
    label_skew,
)

__all__ = [
    "DATASETS",
    "SPLITS",
    "Table",
    "Split",
    "load_dataset",
    "load_table",
    "split_table",
    "dataset_problem",
    "problem_from_config",
    "check_npz_file",
    "accuracy",
    "r2_score",
]

#: Built-in data sets: name -> (task, suggested problem kind).
DATASETS: dict[str, tuple[str, str]] = {
    "breast_cancer": ("classification", "logistic"),
    "diabetes": ("regression", "least_squares"),
    "digits": ("classification", "softmax"),
}

@dataclass(frozen=True)
class Table:
    """Samples ``X: (n, p)``, target ``y: (n,)``, and the column names.

    ``feature_scale``: features sharing one known range (digits: pixel intensities 0..16)
    are divided by it instead of z-scored when standardizing.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    target_name: str
    feature_scale: float | None = None

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])


@dataclass
class Split:
    """A table prepared for one problem kind and N agents.

    Attributes
    ----------
    arrays : dict
        ``{"A": (N, m, d), "b": (N, m)}`` (least_squares) or ``{"A", "y"}`` (logistic,
        softmax), ready for ``make_problem(kind, data=arrays)``; ``d = p + 1`` with an
        intercept (for softmax this is the feature count; the problem's dimension is d K).
    X_train, y_train, X_test, y_test : ndarray
        Standardized features (intercept column included) and targets (labels in {-1, +1}
        for logistic, 0..K-1 for softmax; standardized target for least squares when
        ``standardize``). ``X_train`` rows are in the order they are dealt to the agents.
    block_sizes : list of int
        Real (unpadded) training rows of each agent.
    classes : int
        K for softmax (2 for logistic, 0 for least squares); ``info["label_values"]`` maps
        the labels back to the table's target values.
    """

    kind: str
    arrays: dict
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    block_sizes: list
    feature_names: tuple
    info: dict = field(default_factory=dict)
    classes: int = 0
    label_histogram: np.ndarray | None = None

    def summary(self) -> dict:
        """The ``split`` block of ``summary.json``: the split's kind and keys, the seed, each
        agent's row count and (classification) label histogram, and :func:`label_skew`.

        Examples
        --------
        >>> s = split_table(load_dataset("breast_cancer"), "logistic", 3, split="dirichlet",
        ...                 concentration=0.5, seed=1)
        >>> b = s.summary()
        >>> b["kind"], b["concentration"], sum(b["rows_per_agent"]), len(b["label_histogram"])
        ('dirichlet', 0.5, 569, 3)
        >>> [sum(h) for h in b["label_histogram"]] == b["rows_per_agent"]
        True
        """
        info = self.info
        out = {"kind": info["split"]}
        out.update({k: info[k] for k in SPLIT_KEYS[info["split"]]})
        out["seed"] = info["seed"]
        out["rows_per_agent"] = [int(m) for m in self.block_sizes]
        if "rows_moved" in info:
            out["rows_moved"] = info["rows_moved"]
        if self.label_histogram is not None:
            out["label_values"] = list(info["label_values"])
            out["label_histogram"] = self.label_histogram.tolist()
            out["label_skew"] = label_skew(self.label_histogram)
        return out


def _data_path(name: str):
    return resources.files("stflow").joinpath("data", f"{name}.npz")


def load_dataset(name: str, *, target: str | None = None) -> Table:
    """One of the built-in data sets of :data:`DATASETS` (no download).

    Examples
    --------
    >>> t = load_dataset("breast_cancer")
    >>> t.X.shape, sorted(set(t.y.tolist()))
    ((569, 30), [0.0, 1.0])
    >>> load_dataset("diabetes").X.shape
    (442, 10)
    >>> d = load_dataset("digits")
    >>> d.X.shape, np.bincount(d.y.astype(int)).tolist()[:3], d.feature_scale
    ((1797, 64), [178, 182, 177], 16.0)
    """
    if name not in DATASETS:
        raise InputError(
            f"[problem] dataset must be one of {', '.join(DATASETS)} (got {name!r}): "
            'pick one, or give your own table with data = "file.csv" and target = "column"'
        )
    with resources.as_file(_data_path(name)) as path, np.load(path, allow_pickle=False) as z:
        table = Table(
            name=name,
            X=np.array(z["X"], dtype=np.float64),
            y=np.array(z["y"], dtype=np.float64),
            feature_names=tuple(str(s) for s in z["feature_names"]),
            target_name=str(z["target_name"]),
            feature_scale=float(z["feature_scale"]) if "feature_scale" in z.files else None,
        )
    if target is not None and target != table.target_name:
        raise InputError(
            f"[problem] target = {target!r} does not name the target of the built-in data set "
            f"{name!r} (its target is {table.target_name!r}): remove target, or give your own "
            'table with data = "file.csv" and target = "column"'
        )
    return table


def load_table(path, *, target: str | None = None) -> Table:
    """A user's table: CSV with a header row, or NPZ with ``X`` and a target array.

    CSV: every column numeric; ``target`` names the target column (default: the last
    column). NPZ: array ``X`` (n, p) and a 1-D array named ``target`` (default ``"y"``),
    optionally ``feature_names``. Rows with an empty cell, NaN or inf are errors.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("a,b,label\\n1,2,0\\n3,4,1\\n5,7,1\\n")
    >>> t = load_table(p, target="label")
    >>> t.X.tolist(), t.y.tolist(), t.feature_names
    ([[1.0, 2.0], [3.0, 4.0], [5.0, 7.0]], [0.0, 1.0, 1.0], ('a', 'b'))
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"[problem] data: file {str(path)!r} not found: check the path")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _load_csv(path, target)
    if suffix == ".npz":
        return _load_npz_table(path, target)
    raise InputError(
        f"[problem] data: a table must be a .csv or .npz file (got {path.name!r}): "
        "convert it to CSV with a header row"
    )


def _load_csv(path: Path, target: str | None) -> Table:
    with open(path, newline="") as fh:
        rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    if len(rows) < 2:
        raise InputError(
            f"[problem] data: {path.name!r} needs a header row and at least one data row "
            f"(got {len(rows)} rows): add them"
        )
    header = [h.strip() for h in rows[0]]
    tname = header[-1] if target is None else target
    if tname not in header:
        raise InputError(
            f"[problem] target must name a column of {path.name!r} (got {tname!r}; columns: "
            f"{', '.join(header)}): set target to one of them"
        )
    values = np.empty((len(rows) - 1, len(header)))
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise InputError(
                f"[problem] data: line {i} of {path.name!r} has {len(row)} cells, the header "
                f"has {len(header)}: fix the row"
            )
        for j, cell in enumerate(row):
            try:
                values[i - 2, j] = float(cell)
            except ValueError:
                raise InputError(
                    f"[problem] data: line {i}, column {header[j]!r} of {path.name!r} is not a "
                    f"number (got {cell!r}): encode it numerically or drop the column"
                ) from None
    j = header.index(tname)
    feats = [h for k, h in enumerate(header) if k != j]
    X = np.delete(values, j, axis=1)
    return _checked(Table(path.stem, X, values[:, j], tuple(feats), tname), path.name)


def _load_npz_table(path: Path, target: str | None) -> Table:
    tname = "y" if target is None else target
    check_npz_file(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            if "X" not in keys or tname not in keys:
                raise InputError(
                    f"[problem] data: {path.name!r} must hold arrays X (n, p) and {tname!r} "
                    f"(n,) (got {', '.join(sorted(keys)) or 'none'}): save them with numpy.savez"
                )
            X = np.array(z["X"], dtype=np.float64)
            y = np.array(z[tname], dtype=np.float64)
            names = (
                tuple(str(s) for s in z["feature_names"]) if "feature_names" in keys else None
            )
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(
            f"[problem] data: cannot read {path.name!r} as .npz ({exc}): write it with "
            "numpy.savez"
        ) from None
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise InputError(
            f"[problem] data: X must be (n, p) and {tname!r} (n,) (got {X.shape} and "
            f"{y.shape}): one row per sample"
        )
    if names is None or len(names) != X.shape[1]:
        names = tuple(f"x{j}" for j in range(X.shape[1]))
    return _checked(Table(path.stem, X, y, names, tname), path.name)


def _checked(table: Table, where: str) -> Table:
    for arr, what in ((table.X, "features"), (table.y, "target")):
        bad = ~np.isfinite(arr)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise InputError(
                f"[problem] data: {where} has NaN, inf or an empty cell in the {what} (first "
                f"at data row {row + 1}): remove or impute those rows"
            )
    if table.n_features < 1:
        raise InputError(f"[problem] data: {where} has no feature columns: add at least one")
    return table


#: A softmax target with fewer rows a class on average is refused as not a class column.
MIN_ROWS_PER_CLASS = 5


def _check_class_column(values: np.ndarray, rows: int, name: str) -> None:
    """A softmax target must be a class column: non-integer values are refused (a continuous
    target read as classes gave one class per value), and so are fewer than
    :data:`MIN_ROWS_PER_CLASS` rows a class on average: an integer-valued measurement (the
    diabetes progression score: 214 values in 442 rows) is not a class column (issue 20).

    >>> _check_class_column(np.array([0.0, 1.5, 2.25]), 100, "y")
    Traceback (most recent call last):
    ...
    stflow.errors.InputError: [problem] softmax needs class labels, but target 'y' has non-integer values (e.g. 1.5; 3 distinct): use kind = "least_squares" for a continuous target, or bin it into classes
    """
    frac = values[values != np.round(values)]
    if frac.size:
        raise InputError(
            f"[problem] softmax needs class labels, but target {name!r} has non-integer values "
            f"(e.g. {frac[0]:g}; {values.size} distinct): use kind = \"least_squares\" for a "
            "continuous target, or bin it into classes")
    if values.size * MIN_ROWS_PER_CLASS > rows:
        raise InputError(
            f"[problem] softmax needs class labels, but target {name!r} has {values.size} "
            f"distinct values in {rows} rows ({rows / values.size:.2g} rows a class, fewer than "
            f"{MIN_ROWS_PER_CLASS}): a measurement, not classes? use kind = \"least_squares\", "
            "or bin it into fewer classes")


def split_table(
    table: Table,
    kind: str,
    agents: int,
    *,
    standardize: bool = True,
    intercept: bool = True,
    test_fraction: float = 0.0,
    seed: int = 0,
    split: str = "iid",
    concentration: float = 0.5,
    labels_per_agent: int = 2,
) -> Split:
    r"""Shuffle, hold out a test set, standardize, and deal the rows over ``agents`` agents.

    Rows are permuted by ``numpy.random.default_rng(seed)``; the last
    ``round(test_fraction * n)`` of the permutation are the test set (not stratified). With
    ``standardize`` every feature is mapped to :math:`(x - \mu)/\sigma` with the training mean
    and standard deviation (and, for least squares, the target too); a table with a
    ``feature_scale`` (digits: 16) is divided by it instead. ``intercept`` appends a column
    of ones (its weight is regularized like the others). The training rows are dealt by
    :func:`stflow.splits.deal_rows`, each agent's block zero-padded to the largest (see the
    module docstring): with ``split="iid"`` agent i gets the i-th contiguous block of
    ``numpy.array_split`` of the rows in shuffled order, with ``split="by_label"`` of the
    rows stably sorted by label (so each agent sees few classes); ``"dirichlet"`` (label
    skew, ``concentration``), ``"shards"`` (``labels_per_agent``) and ``"quantity"`` (size
    skew, ``concentration``) draw from the same generator, after the shuffle (so every
    split holds out the same rows). ``Split.label_histogram`` counts each agent's rows per
    class. For ``logistic`` the target must have exactly two
    values, the larger one becomes +1; for ``softmax`` the K distinct target values (of the
    whole table) become the labels 0..K-1 in increasing order.

    Examples
    --------
    >>> s = split_table(load_dataset("breast_cancer"), "logistic", 10, test_fraction=0.2)
    >>> s.arrays["A"].shape, sum(s.block_sizes), s.X_test.shape
    ((10, 46, 31), 455, (114, 31))
    >>> s = split_table(load_dataset("digits"), "softmax", 8, test_fraction=0.25,
    ...                 split="by_label")
    >>> s.arrays["A"].shape, s.classes, np.unique(s.arrays["y"][0]).tolist()
    ((8, 169, 65), 10, [0.0, 1.0])
    """
    if kind not in ("least_squares", "logistic", "softmax"):
        raise InputError(
            f"[problem] kind must be least_squares, logistic or softmax for a data table (got "
            f"{kind!r}): set kind accordingly"
        )
    check_split(split)
    if isinstance(agents, bool) or not isinstance(agents, int | np.integer) or agents < 1:
        raise InputError(f"[problem] agents must be an integer >= 1 (got {agents!r})")
    if not (isinstance(test_fraction, int | float) and 0.0 <= test_fraction < 1.0):
        raise InputError(
            f"[problem] test_fraction must satisfy 0 <= test_fraction < 1 (got "
            f"{test_fraction!r}): e.g. 0.2"
        )
    n = table.n_samples
    n_test = int(round(test_fraction * n))
    n_train = n - n_test
    if n_train < agents:
        raise InputError(
            f"[problem] agents must be <= the {n_train} training rows of {table.name!r} (got "
            f"agents={agents}): lower agents or test_fraction"
        )
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)  # first draw: the same held-out rows under every split
    tr, te = perm[:n_train], perm[n_train:]
    X, y = table.X, table.y.copy()
    values = np.unique(y)
    classes = 0
    if kind == "logistic":
        if values.size != 2:
            raise InputError(
                f"[problem] logistic needs a target with exactly 2 values (got {values.size} "
                f"distinct values in {table.target_name!r}): pick a binary column or use "
                "kind = \"least_squares\" or \"softmax\""
            )
        y = np.where(y == values[1], 1.0, -1.0)
        classes = 2
    elif kind == "softmax":
        if values.size < 2:
            raise InputError(
                f"[problem] softmax needs a target with at least 2 values (got {values.size} "
                f"in {table.target_name!r}): pick a class column"
            )
        _check_class_column(values, n, table.target_name)
        y = np.searchsorted(values, y).astype(np.float64)
        classes = int(values.size)
    if split in LABEL_SPLITS and kind == "least_squares":
        raise InputError(
            f'[problem] split = "{split}" needs class labels (got kind = "least_squares"): '
            'use split = "iid" or "quantity", or kind = "logistic" / "softmax"'
        )
    label_index = None if kind == "least_squares" else np.searchsorted(values, table.y[tr])
    order, sizes, moved = deal_rows(
        n_train if label_index is None else label_index, agents, split=split, rng=rng,
        concentration=concentration, labels_per_agent=labels_per_agent,
    )
    tr = tr[order]
    if split == "by_label":
        if n_test:
            missing = np.setdiff1d(np.unique(y), y[te])
            if missing.size:
                lab = missing[0]
                label = values[int(lab)] if kind == "softmax" else values[int(lab > 0)]
                raise InputError(
                    f"[problem] test_fraction = {test_fraction} leaves class {label:g} of "
                    f"{table.name!r} without held-out rows: raise test_fraction or change seed"
                )
    Xtr, Xte, ytr, yte = X[tr], X[te], y[tr], y[te]
    info = {"n_samples": n, "n_train": n_train, "n_test": n_test, "seed": seed,
            "split": split}
    keys = {"concentration": float(concentration), "labels_per_agent": labels_per_agent}
    info.update({key: keys[key] for key in SPLIT_KEYS[split]})
    if split in ("dirichlet", "quantity"):
        info["rows_moved"] = moved
    if kind != "least_squares":
        info["label_values"] = values.tolist()
    if standardize and table.feature_scale is not None:
        Xtr, Xte = Xtr / table.feature_scale, Xte / table.feature_scale
        info["feature_scale"] = table.feature_scale
    elif standardize:
        mu, sd = Xtr.mean(axis=0), Xtr.std(axis=0)
        const = np.flatnonzero(sd == 0)
        if const.size:
            raise InputError(
                f"[problem] data: feature {table.feature_names[const[0]]!r} is constant on the "
                "training rows, so it cannot be standardized: drop the column"
            )
        Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
        if kind == "least_squares":
            ym, ys = ytr.mean(), ytr.std()
            if ys == 0:
                raise InputError("[problem] data: the target is constant: nothing to fit")
            ytr, yte = (ytr - ym) / ys, (yte - ym) / ys
            info["target_mean"], info["target_std"] = float(ym), float(ys)
    names = table.feature_names
    if intercept:
        Xtr = np.hstack([Xtr, np.ones((Xtr.shape[0], 1))])
        Xte = np.hstack([Xte, np.ones((Xte.shape[0], 1))])
        names = (*names, "intercept")
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    blocks = [np.arange(bounds[i], bounds[i + 1]) for i in range(agents)]
    m = max(len(b) for b in blocks)
    d = Xtr.shape[1]
    A = np.zeros((agents, m, d))
    t = np.ones((agents, m)) if kind == "logistic" else np.zeros((agents, m))
    for i, b in enumerate(blocks):
        A[i, : len(b)] = Xtr[b]
        t[i, : len(b)] = ytr[b]
    arrays = {"A": A, "b": t} if kind == "least_squares" else {"A": A, "y": t}
    return Split(
        kind=kind,
        arrays=arrays,
        X_train=Xtr,
        y_train=ytr,
        X_test=Xte,
        y_test=yte,
        block_sizes=[len(b) for b in blocks],
        feature_names=names,
        info=info,
        classes=classes,
        label_histogram=None if label_index is None else label_histogram(
            label_index[order], sizes, values.size),
    )


def dataset_problem(
    source,
    kind: str | None = None,
    *,
    agents: int = 10,
    regularization: float = 0.0,
    target: str | None = None,
    standardize: bool = True,
    intercept: bool = True,
    test_fraction: float = 0.0,
    seed: int = 0,
    split: str = "iid",
    concentration: float = 0.5,
    labels_per_agent: int = 2,
    batch: int | None = None,
    hidden=(64,),
    network=None,
):
    """Build ``(problem, split)`` from a built-in name, a CSV/NPZ path, or a :class:`Table`.

    ``kind = "mlp"`` builds :class:`stflow.problems.mlp.MLPProblem` (``hidden`` widths) on the
    softmax problem's split (needs PyTorch: ``pip install "stflow[torch]"``). ``network``, a
    function of a :class:`Split`, builds the problem from the softmax split instead of
    ``kind`` (a network's classes: ``kind = "torch"``,
    :meth:`stflow.problems.torch_model.TorchProblem.from_split`).

    ``kind`` defaults to the data set's suggested kind (built-ins) or ``"logistic"`` when the
    target has two values, else ``"least_squares"``. ``seed`` seeds the shuffle of
    :func:`split_table` and the problem's minibatches (``batch``); a classification problem
    holds the held-out rows (``problem.test_accuracy``).

    Examples
    --------
    >>> p, s = dataset_problem("diabetes", agents=5)
    >>> p.kind, p.n_agents, p.dim
    ('least_squares', 5, 11)
    >>> p, s = dataset_problem("digits", agents=8, regularization=1e-3, test_fraction=0.25,
    ...                        batch=16)
    >>> p.kind, p.dim, p.rows_per_agent.tolist(), len(s.y_test), p.has_test
    ('softmax', 650, [169, 169, 169, 169, 168, 168, 168, 168], 449, True)
    """
    from .problems import make_problem

    if isinstance(source, Table):
        table = source
    elif isinstance(source, str) and source in DATASETS:
        table = load_dataset(source, target=target)
    elif isinstance(source, str | os.PathLike) and Path(source).suffix.lower() in (".csv", ".npz"):
        table = load_table(source, target=target)
    else:
        raise InputError(
            f"data set must be one of {', '.join(DATASETS)} or a .csv/.npz path (got "
            f"{source!r}): pick a built-in name or a file"
        )
    if kind is None:
        if table.name in DATASETS:
            kind = DATASETS[table.name][1]
        else:
            kind = "logistic" if np.unique(table.y).size == 2 else "least_squares"
    split = split_table(
        table,
        "softmax" if kind == "mlp" or network is not None else kind,
        agents,
        standardize=standardize,
        intercept=intercept,
        test_fraction=test_fraction,
        seed=seed,
        split=split,
        concentration=concentration,
        labels_per_agent=labels_per_agent,
    )
    if network is not None:
        return network(split), split
    if kind == "mlp":
        from .problems.mlp import make_mlp_problem

        problem = make_mlp_problem(
            split.arrays["A"], split.arrays["y"], hidden=list(hidden), classes=split.classes,
            batch=batch, seed=seed, rows_per_agent=split.block_sizes,
            test_features=split.X_test if split.info["n_test"] > 0 else None,
            test_labels=split.y_test if split.info["n_test"] > 0 else None,
        )
        problem.data_split = split.summary()
        return problem, split
    extra = {}
    if kind == "softmax":
        extra["classes"] = split.classes
    if kind != "least_squares" and split.info["n_test"] > 0:
        extra["test"] = (split.X_test, split.y_test)
    problem = make_problem(
        kind, agents=agents, dim=split.X_train.shape[1], data=split.arrays,
        regularization=regularization, seed=seed, batch=batch, **extra,
    )
    problem.data_split = split.summary()  # shown in summary.json by both engines
    return problem, split


def accuracy(X: np.ndarray, labels: np.ndarray, w: np.ndarray) -> float:
    r"""Fraction of rows with :math:`\operatorname{sign}(x^T w) = y` (labels in {-1, +1};
    a zero score counts as +1).

    Examples
    --------
    >>> accuracy(np.array([[1.0], [-2.0], [0.5]]), np.array([1.0, -1.0, -1.0]), np.array([1.0]))
    0.6666666666666666
    """
    if len(labels) == 0:
        return float("nan")
    pred = np.where(X @ w >= 0, 1.0, -1.0)
    return float(np.mean(pred == labels))


def r2_score(X: np.ndarray, target: np.ndarray, w: np.ndarray) -> float:
    r"""Coefficient of determination :math:`1 - \sum (y - Xw)^2 / \sum (y - \bar y)^2`.

    Examples
    --------
    >>> r2_score(np.array([[1.0], [2.0], [3.0]]), np.array([1.0, 2.0, 3.0]), np.array([1.0]))
    1.0
    """
    if len(target) < 2:
        return float("nan")
    res = np.sum((target - X @ w) ** 2)
    tot = np.sum((target - target.mean()) ** 2)
    return float(1.0 - res / tot) if tot > 0 else float("nan")


def check_npz_file(path) -> None:
    """Refuse a ``[problem] data`` file that is not an .npz archive, with a fitting hint.

    A text table (a CSV under another name, e.g. ``.txt``) is told to be named ``.csv``;
    other files are told to be written with ``numpy.savez``. A missing file is left to the
    loader (which names it).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.txt"
    >>> _ = p.write_text("a,b,y\\n1,2,0\\n")
    >>> check_npz_file(p)
    Traceback (most recent call last):
    ...
    stflow.errors.InputError: [problem] data: 't.txt' is a text table, not an .npz archive (got a file ending in '.txt'): rename it to 't.csv' to load it as a CSV table with a header row
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return
    if head.startswith(b"PK"):  # a zip archive, as numpy.savez writes
        if not zipfile.is_zipfile(path):
            raise InputError(
                f"[problem] data: {path.name!r} is a damaged .npz archive (truncated or "
                "corrupt zip): write it again with numpy.savez"
            )
        return
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text and ("," in text or ";" in text or "\t" in text):
        raise InputError(
            f"[problem] data: {path.name!r} is a text table, not an .npz archive (got a file "
            f"ending in {path.suffix!r}): rename it to {path.stem + '.csv'!r} to load it as a "
            "CSV table with a header row"
        )
    raise InputError(
        f"[problem] data: {path.name!r} is not an .npz archive (it does not start like a zip "
        "file): write the arrays with numpy.savez, or give a .csv table"
    )


def problem_from_config(section: dict, *, network=None):
    """The problem of a ``[problem]`` config section that names a data table.

    Used by :func:`stflow.config.build_run` when ``dataset``, ``target`` or a ``.csv``
    ``data`` is given; checks the types of the table keys. ``network`` (a function of the
    softmax :class:`Split`) builds a network's problem, as in :func:`dataset_problem`.

    Examples
    --------
    >>> p = problem_from_config({"kind": "logistic", "dataset": "breast_cancer", "agents": 4,
    ...                          "regularization": 0.01, "test_fraction": 0.25})
    >>> p.n_agents, p.dim
    (4, 31)
    """
    for key in ("standardize", "intercept"):
        if not isinstance(section.get(key, True), bool):
            raise InputError(
                f"[problem] {key} must be true or false (got {section.get(key)!r})"
            )
    frac = section.get("test_fraction", 0.0)
    if isinstance(frac, bool) or not isinstance(frac, int | float):
        raise InputError(f"[problem] test_fraction must be a number (got {frac!r}): e.g. 0.2")
    for key in ("dataset", "target", "split"):
        if section.get(key) is not None and not isinstance(section[key], str):
            raise InputError(f"[problem] {key} must be a string (got {section[key]!r})")
    if section.get("classes") is not None:
        raise InputError(
            f"[problem] classes applies to generated softmax data (got classes = "
            f"{section['classes']!r} with a data table, whose classes are its target values):"
            " remove classes"
        )
    if section.get("dataset") is not None and section.get("data") is not None:
        raise InputError(
            "[problem] give either dataset (built-in) or data (your file), not both: "
            "remove one"
        )
    split = section.get("split") or "iid"
    for key, default in (("concentration", 0.5), ("labels_per_agent", 2)):
        value = section.get(key, default)
        if value != default and split in SPLIT_KEYS and key not in SPLIT_KEYS[split]:
            users = " or ".join(f'"{k}"' for k, keys in SPLIT_KEYS.items() if key in keys)
            raise InputError(
                f'[problem] {key} applies to split = {users} (got {key} = {value!r} with '
                f'split = "{split}"): remove {key} or change split'
            )
    source = section.get("dataset") or section.get("data")
    if source is None:
        raise InputError(
            '[problem] target needs a data table: set data = "file.csv" or dataset = '
            '"breast_cancer"'
        )
    problem, _split = dataset_problem(
        source,
        section.get("kind"),
        agents=section.get("agents", 10),
        regularization=section.get("regularization", 0.0),
        target=section.get("target"),
        standardize=section.get("standardize", True),
        intercept=section.get("intercept", True),
        test_fraction=float(frac),
        seed=section.get("seed", 0),
        split=split,
        concentration=section.get("concentration", 0.5),
        labels_per_agent=section.get("labels_per_agent", 2),
        batch=section.get("batch"),
        hidden=section.get("hidden") or (64,),
        network=network,
    )
    return problem
