"""Every ``[problem] kind``, read from the problem classes' own declarations.

A problem class declares itself once (see ``docs/extending.md``):

- ``kind``: its ``[problem] kind`` name; ``title``: one line for the docs;
- ``params``: its own ``[problem]`` keys as :class:`~stflow.params.Param` (besides
  :data:`COMMON_PARAMS`, which every kind has); data-table kinds add :data:`TABLE_PARAMS`;
- ``from_config(section)``: the problem of a resolved ``[problem]`` section.

:func:`builtin_classes` finds the built-in classes (every class of this package that sets
``kind``: a new kind is one new module, docs/extending.md);
:func:`problem_class` returns the class of a kind name, or of a user's ``py:FILE:ATTR``
(:class:`~stflow.problems.user.UserProblem`). Config validation, ``docs/config.md`` and the
MPI engine read these; nothing else lists the kinds.
"""

from __future__ import annotations

from ..errors import InputError
from ..params import Param

__all__ = ["COMMON_PARAMS", "TABLE_PARAMS", "builtin_classes", "problem_kinds",
           "problem_class", "problem_params"]


def _p(name, default, doc, **kw) -> Param:
    return Param(name, default, doc, section="problem", **kw)


#: Keys of every ``[problem]`` kind (besides ``kind``).
COMMON_PARAMS: tuple[Param, ...] = (
    _p("agents", 10, "number of agents N (ignored when `data` holds problem arrays)",
       type="int", low=2),
    _p("dim", 8, "dimension d of the decision variable (ignored when `data` is given)",
       type="int", low=1),
    _p("seed", 0, "seed of the generated data (of the shuffle, for a data table)",
       type="int", low=0),
    _p("data", None, "path to a .npz with the problem's arrays (Q,b | A,b | A,y), or a data "
       "table: a .csv with a header row, or a .npz with X and `target` (docs/reproduce.md)",
       type="str", none=True, example="data.npz"),
)

#: Keys of the kinds that learn from a data table (rows of features and a target).
TABLE_PARAMS: tuple[Param, ...] = (
    _p("dataset", None, "built-in data table: breast_cancer | diabetes | digits (no download)",
       type="str", none=True, example="digits"),
    _p("target", None, "data table: name of the target column (CSV default: the last one)",
       type="str", none=True, example="label"),
    _p("standardize", True, "data table: standardize features (and a least-squares target)",
       type="bool"),
    _p("intercept", True, "data table: append a column of ones", type="bool"),
    _p("test_fraction", 0.0, "data table: share of rows held out, 0 <= f < 1",
       zero=True, high=0.999999, example=0.2),
    _p("split", "iid", "data table: how the training rows are dealt to the agents: iid "
       "(shuffled rows) | by_label (rows sorted by label: each agent sees few classes) | "
       "dirichlet (label skew: each class divided by Dirichlet(concentration) proportions) | "
       "shards (labels_per_agent label-sorted shards per agent) | quantity (iid labels, "
       "Dirichlet(concentration) sizes); docs/problems.md",
       choices=("iid", "by_label", "dirichlet", "shards", "quantity"), tunable=False),
    _p("concentration", 0.5, 'data table, split = "dirichlet" or "quantity": Dirichlet '
       "concentration alpha > 0 (small: skewed; large: near iid)", tunable=False),
    _p("labels_per_agent", 2, 'data table, split = "shards": shards (so classes) per agent, '
       "1 <= L <= classes", type="int", low=1, tunable=False),
)

#: Rows per stochastic gradient evaluation, for costs made of data rows.
BATCH = _p("batch", None, "rows B per stochastic gradient evaluation (SPEC section 7; none = "
           "full gradients)", type="int", low=1, none=True, example=16)
#: Rows per agent of generated data.
SAMPLES = _p("samples", None, "samples per agent m of generated data (default: d for "
             "least_squares, 20 otherwise)", type="int", low=1, none=True, example=20)
#: The ridge weight of the classification costs.
REGULARIZATION = _p("regularization", 0.0, "L2 weight of each local cost (>= 0; softmax "
                    "needs > 0 to be strongly convex)", zero=True, example=0.1)

#: Classes K of generated softmax data.
CLASSES = _p("classes", None, "classes K of generated softmax data (default 2); dim = features "
             "x K", type="int", low=2, none=True, example=3)
#: Hidden widths of the built-in network.
HIDDEN = _p("hidden", [64], "widths of the hidden layers (ReLU), e.g. [64] or [128, 64]; [] for "
            "none", type="ints", example=[64])

def builtin_classes() -> tuple[type, ...]:
    """Every built-in problem class: the classes of this package that set ``kind``
    (:func:`stflow.kinds.discover`, modules in alphabetical order)."""
    if "classes" not in _CACHE:
        from ..kinds import discover
        from .base import Problem

        _CACHE["classes"] = tuple(discover("stflow.problems", Problem, "kind"))
    return _CACHE["classes"]


_CACHE: dict[str, tuple] = {}


def problem_kinds() -> tuple[str, ...]:
    """The built-in ``[problem] kind`` names.

    Examples
    --------
    >>> problem_kinds()
    ('least_squares', 'logistic', 'mlp', 'quadratic', 'softmax', 'torch')
    """
    return tuple(c.kind for c in builtin_classes())


def problem_class(kind, base_dir=None):
    """The class of ``[problem] kind`` (a built-in name or ``py:FILE:ATTR``)."""
    from ..user_code import is_py

    if is_py(kind):
        from .user import user_problem_class

        return user_problem_class(kind, base_dir)
    for cls in builtin_classes():
        if cls.kind == kind:
            return cls
    raise InputError(
        f"[problem] kind must be one of {', '.join(problem_kinds())} or py:FILE:ATTR (your own "
        f"cost, docs/problems.md) (got {kind!r}): pick one of those"
    )


def problem_params(kind, base_dir=None) -> tuple[Param, ...]:
    """Every ``[problem]`` key of ``kind`` besides ``kind``: :data:`COMMON_PARAMS` and the
    class's own ``params`` (a user's cost: exactly the keys its factory takes).

    Examples
    --------
    >>> [p.name for p in problem_params("quadratic")]
    ['agents', 'dim', 'seed', 'data']
    """
    cls = problem_class(kind, base_dir)
    own = tuple(cls.params)
    if getattr(cls, "user", False):
        return own
    names = {p.name for p in own}
    return tuple(p for p in COMMON_PARAMS if p.name not in names) + own
