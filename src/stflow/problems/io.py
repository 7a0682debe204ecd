"""Building problems: :func:`make_problem` from seeded synthetic data, a .npz file or a dict
of arrays; loading and saving .npz data; :func:`centralized_solution`."""

from __future__ import annotations

import numbers
import os
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from stflow.errors import InputError

from ._validate import _check_count, _check_regularization, _raise_keys, _validate_arrays
from .base import Problem

__all__ = [
    "PROBLEM_KINDS",
    "centralized_solution",
    "make_problem",
    "load_problem_data",
    "save_problem_data",
]


#: The kinds :func:`make_problem` builds (every built-in class with ``data_keys``).
PROBLEM_KINDS = ("quadratic", "least_squares", "logistic", "softmax")


def centralized_solution(problem: Problem) -> np.ndarray:
    """A copy of ``problem.x_star``, the minimizer of the sum of the local costs.

    Examples
    --------
    >>> p = make_problem("quadratic", agents=3, dim=2)
    >>> bool(np.array_equal(centralized_solution(p), p.x_star))
    True
    """
    return np.array(problem.x_star)




def make_problem(
    kind: str,
    *,
    agents: int,
    dim: int,
    seed: int = 0,
    data: Any = None,
    regularization: float = 0.0,
    samples: int | None = None,
    classes: int | None = None,
    batch: int | None = None,
    test: Any = None,
    keep_rows: bool = False,
) -> Problem:
    r"""Build a problem from seeded synthetic data, a .npz file or a dict of arrays.

    Synthetic data (``numpy.random.default_rng(seed)``), all per agent i:

    - quadratic: :math:`Q_i = M_i M_i^T / d + 0.1 I` with :math:`M_i` a d x d standard
      Gaussian matrix (each f_i 0.1-strongly convex; the largest eigenvalue is about 4 for
      large d, Marchenko-Pastur), :math:`b_i \sim N(0, I)`.
    - least_squares: m = ``samples`` (default d) rows, :math:`A_i \sim N(0, 1/m)`,
      :math:`b_i = A_i x_{true} + 0.1\,\varepsilon`, :math:`x_{true}, \varepsilon \sim N(0, I)`.
    - logistic: m = ``samples`` (default 20) rows :math:`a_{ij} \sim N(0, I/d)`,
      :math:`y_{ij} = \operatorname{sign}(a_{ij}^T x_{true})` with 10% of the labels
      flipped; with ``regularization == 0`` this needs N m well above d, else the labels
      are separable and ``x_star`` raises.
    - softmax: K = ``classes`` (default 2) classes, p = d / K features (d must be a
      multiple of K), m = ``samples`` (default 20) rows :math:`a_{ij} \sim N(0, I/p)`,
      :math:`y_{ij} = \arg\max_k (W_{true}^T a_{ij})_k` with :math:`W_{true}` a p x K
      standard Gaussian matrix and 10% of the labels redrawn uniformly.

    With ``data`` (a path to a .npz or a dict of arrays), N and d come from the arrays and
    ``agents``, ``dim`` and ``samples`` are ignored (and softmax's K defaults to the largest
    label + 1). ``seed`` also seeds the minibatches (``batch``, SPEC section 7).

    Parameters
    ----------
    kind : str
        One of `PROBLEM_KINDS`.
    agents : int
        Number of agents N >= 1 (synthetic data).
    dim : int
        Dimension d >= 1 (synthetic data).
    seed : int
        Seed of the data generator.
    data : str, os.PathLike or Mapping, optional
        Arrays ``Q, b`` / ``A, b`` / ``A, y`` (see `load_problem_data`).
    regularization : float
        Ridge weight of the logistic and softmax costs (must be 0 for the other kinds).
    samples : int, optional
        Rows m per agent for least_squares, logistic and softmax.
    classes : int, optional
        Number of classes K of softmax.
    batch : int, optional
        Rows per stochastic gradient evaluation (least_squares, logistic, softmax; None:
        full gradients).
    test : (A_test, y_test), optional
        Held-out rows of logistic or softmax (for ``test_accuracy``).
    keep_rows : bool
        least_squares with m >= d only: keep ``A`` and ``b`` besides the Gram form
        (`LeastSquaresProblem`; needed for `save_problem_data`; ``batch`` keeps them too).
        By default only the Gram form is kept, and generated or loaded data is not copied
        (with m == d the Gram matrices reuse the memory of ``A``). The other kinds always
        keep their arrays.

    Returns
    -------
    Problem

    Examples
    --------
    >>> p = make_problem("logistic", agents=5, dim=3, seed=2, regularization=0.1)
    >>> p.n_agents, p.dim, p.A.shape, p.strong_convexity
    (5, 3, (5, 20, 3), 0.5)
    """
    cls = _class(kind)
    names = {p.name for p in cls.params} | ({"test"} if getattr(cls, "classifies", False)
                                               else set())
    reg = _check_regularization(regularization)
    for key, given in (("regularization", reg != 0.0), ("classes", classes is not None),
                       ("samples", samples is not None and data is None),
                       ("batch", batch is not None), ("test", test is not None)):
        if given and key not in names:
            takers = [c.kind for c in _generated() if key in {p.name for p in c.params}
                      or (key == "test" and getattr(c, "classifies", False))]
            raise InputError(
                f"`{key}` applies to kind={' or '.join(map(repr, takers))} only (got it with "
                f"kind={kind!r}): remove [problem] {key}"
            )
    owned = True  # fresh arrays of this call: no defensive copy needed
    if data is None:
        arrays = _generate(kind, agents, dim, seed, samples, classes)
    elif isinstance(data, (str, os.PathLike)):
        arrays = _load(kind, data, freeze=False)
    elif isinstance(data, Mapping):
        arrays, owned = dict(data), False
    else:
        raise InputError(
            f"`data` must be a path to a .npz file or a dict of arrays (got "
            f"{type(data).__name__}): set [problem] data to a file path"
        )
    if set(arrays) != set(cls.data_keys):
        _raise_keys(kind, arrays, "fix the data arrays")
    return cls.build(arrays, owned=owned, generated=data is None, regularization=reg,
                     classes=classes, batch=batch, seed=seed, test=test,
                     keep_rows=bool(keep_rows))


def _generated() -> list:
    """The built-in classes that generate data (numpy kinds: ``make_problem``'s)."""
    from .registry import builtin_classes

    return [c for c in builtin_classes() if c.data_keys]


def _class(kind):
    for cls in _generated():
        if cls.kind == kind:
            return cls
    raise InputError(
        f"`kind` must be one of {', '.join(PROBLEM_KINDS)} (got {kind!r}): "
        "set [problem] kind to a known cost"
    )


def load_problem_data(kind: str, path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load and validate the arrays of a problem from a .npz file.

    Keys: ``Q, b`` (quadratic), ``A, b`` (least_squares), ``A, y`` (logistic); shapes as in
    the module docstring; all entries finite, logistic labels in {-1, +1}.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ls.npz"
    >>> save_problem_data(make_problem("least_squares", agents=2, dim=3, keep_rows=True), path)
    >>> {k: v.shape for k, v in load_problem_data("least_squares", path).items()}
    {'A': (2, 3, 3), 'b': (2, 3)}
    """
    return _load(kind, path, freeze=True)


def _load(kind: str, path: str | os.PathLike, *, freeze: bool) -> dict[str, np.ndarray]:
    _class(kind)
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(
            f"problem data: cannot read {os.fspath(path)!r} as .npz ({exc}): check the path "
            "and write it with numpy.savez"
        ) from None
    return _validate_arrays(
        kind, arrays, fix=f"fix the arrays in {os.fspath(path)!r}", copy=False, freeze=freeze
    )


def save_problem_data(problem: Problem, path: str | os.PathLike) -> None:
    """Write ``problem.arrays()`` to ``path`` (exactly that name) with ``numpy.savez``.

    A least-squares problem must hold its rows (``keep_rows=True``, or m < d): the file
    format is ``A, b``, which its Gram form cannot give back.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "q.npz"
    >>> p = make_problem("quadratic", agents=2, dim=2)
    >>> save_problem_data(p, path)
    >>> q = make_problem("quadratic", agents=2, dim=2, data=path)
    >>> bool(np.array_equal(q.x_star, p.x_star))
    True
    """
    if not isinstance(problem, Problem):
        raise InputError(
            f"`problem` must be a stflow Problem (got {type(problem).__name__}): "
            "build it with make_problem"
        )
    if problem.kind == "least_squares" and not problem.keeps_rows:
        raise InputError(
            "`problem` keeps only the Gram form of its least-squares data, not A and b "
            "(got a problem built without keep_rows): build it with make_problem(..., "
            "keep_rows=True) to save it"
        )
    with open(path, "wb") as fh:
        np.savez(fh, **problem.arrays())


def check_generation(kind: str, agents: Any, dim: Any, seed: Any, samples: Any):
    """``(N, d)`` after checking the keys of generated data (shared with the MPI blocks)."""
    n = _check_count(agents, "agents", "set [problem] agents >= 1")
    d = _check_count(dim, "dim", "set [problem] dim >= 1")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise InputError(f"`seed` must be a non-negative integer (got {seed!r}): set seed >= 0")
    if samples is not None and "samples" not in {p.name for p in _class(kind).params}:
        raise InputError(
            f"`samples` applies to kinds made of data rows only (got {samples!r} with "
            f"kind={kind!r}): remove [problem] samples"
        )
    return n, d


def _generate(kind: str, agents: Any, dim: Any, seed: Any, samples: Any,
              classes: Any = None, start: int = 0, stop: int | None = None) -> dict:
    """The arrays kind's class generates (its ``generate``), rows ``start:stop``."""
    from .base import Stream

    n, d = check_generation(kind, agents, dim, seed, samples)
    return _class(kind).generate(Stream(int(seed), n, start, stop), d, samples=samples,
                                   classes=classes)
