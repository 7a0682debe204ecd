r"""A user's own cost: ``[problem] kind = "py:FILE:ATTR[:key=value,...]"``.

The contract (``docs/problems.md``): ``ATTR`` is called as ``ATTR(**keys)``, where ``keys``
are the ``[problem]`` section's other keys together with the ``key=value`` pairs of the
``py:`` string (a key given in both places is an error), and returns an object with

- ``n_agents`` (int >= 2) and ``dim`` (int >= 1);
- ``values(X) -> (N,)`` and ``grad(X) -> (N, d)`` for ``X: (N, d)`` float64, agent i's
  cost and gradient at its own row (``f_i`` depends on ``x_i`` only);

and optionally ``x_star`` (the minimizer of the sum, shape (d,); ``None`` for a cost
without one, then ``test_accuracy`` and ``[solver] target_accuracy`` say when a run is
done: :func:`stflow.config.build.check_target` refuses the run without them), ``smoothness``
(:math:`L_f`), ``strong_convexity`` (:math:`\mu` of the sum), ``stochastic_grad(X, draw)``
(evaluation number ``draw`` of a minibatch gradient), ``test_accuracy(X) -> (N,)`` (each
agent's accuracy on held-out rows; makes the run a learning run) and ``subset(agent_ids)``
(the same costs for the agents ``agent_ids`` only: one MPI rank's block).

``ATTR`` may declare its keys as ``ATTR.params`` (a tuple of :class:`~stflow.params.Param`):
they are then type-checked, listed in errors, and a key left out takes its declared default.
Otherwise the keys are the parameters of its signature (a ``**kwargs`` takes any key), and a
parameter without a default is required. The ``key=value`` pairs of the reference are
checked against the same keys as the section's.

What stflow computes when the object does not say: ``x_star`` by
``scipy.optimize.minimize`` (L-BFGS-B on the sum, gradient tolerance 1e-12 relative) and up
to three Newton steps with a finite-difference Hessian of the summed gradient (d <= 2000);
``smoothness`` as the largest curvature found by power iteration on finite-difference
Hessian-vector products at ``x_star`` and at 0 (an estimate, not a bound);
``strong_convexity`` as the smallest eigenvalue of that Hessian at ``x_star`` (d <= 2000,
else 0).

Every call into the object is guarded: an exception, ``SystemExit``, a wrong shape or
dtype (``values``, ``grad`` and ``stochastic_grad`` return float64), or NaN/inf from a finite input becomes one :class:`~stflow.errors.InputError`
naming the reference, what was expected and the fix.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np

from ..errors import InputError
from ..params import Param
from ..user_code import call_user, load_attr, parse_ref
from .base import Problem

__all__ = ["UserProblem", "user_problem_class", "REQUIRED"]

#: Default of a key the user's factory requires.
REQUIRED = "<required>"
#: Largest d for which stflow forms a (d, d) finite-difference Hessian.
_MAX_HESSIAN_DIM = 2000


def _has_params(fn) -> bool:
    """True when ``fn`` declares its keys as ``fn.params`` (a tuple of Param)."""
    params = getattr(fn, "params", None)
    return isinstance(params, tuple | list) and all(isinstance(p, Param) for p in params)


def _declared(fn, ref: str) -> tuple[Param, ...]:
    """The keys ``fn`` takes: its ``params`` declaration, else its signature."""
    params = getattr(fn, "params", None)
    if _has_params(fn):
        return tuple(Param(**{**p.__dict__, "section": "problem"}) for p in params)
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return (Param("**", None, "any key", type="any", section="problem"),)
    out = []
    for p in sig.parameters.values():
        if p.kind == p.VAR_KEYWORD:
            out.append(Param("**", None, "any key (the factory takes **kwargs)", type="any",
                             section="problem"))
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            default = REQUIRED if p.default is p.empty else p.default
            out.append(Param(p.name, default, f"a key of {ref}", type="any", none=True,
                             section="problem"))
    return tuple(out)


def user_problem_class(ref: str, base_dir=None) -> type:
    """A :class:`UserProblem` subclass for the reference ``ref`` (its ``params`` are the
    keys the user's factory takes)."""
    where = f"[problem] kind = {ref!r}"
    fn, pairs = load_attr(ref, "[problem] kind", base_dir, expect="a cost factory or class")
    if not callable(fn):
        raise InputError(
            f"{where}: {parse_ref(ref, '[problem] kind').attr!r} is a "
            f"{type(fn).__name__}, not callable: name a function or class that returns the "
            "cost object (docs/problems.md)"
        )
    declared = _declared(fn, ref)
    return type("UserProblem", (UserProblem,), {
        "kind": ref, "title": f"your cost {ref}", "params": tuple(
            p for p in declared if p.name != "**"),
        "any_key": any(p.name == "**" for p in declared),
        "declared": _has_params(fn),
        "factory": staticmethod(fn), "pairs": pairs, "where": where,
    })


class UserProblem(Problem):
    """The Problem around a user's cost object (see the module docstring)."""

    user = True
    any_key = False
    #: True when the factory declares ``params`` (left-out keys then take their defaults).
    declared = False
    factory = None
    pairs: dict = {}
    where = ""

    # -- config --------------------------------------------------------------------------
    @classmethod
    def check_keys(cls, given: dict) -> dict:
        """The section's keys (``kind`` excluded), checked: unknown keys, a key also in the
        py: string's pairs, and missing required keys are errors. The factory is called
        with these and the pairs (:meth:`from_config`)."""
        names = [p.name for p in cls.params]
        keys = {k: v for k, v in given.items() if k != "kind"}
        for k, v in cls.pairs.items():
            if k not in names and not cls.any_key:
                raise InputError(
                    f"unknown key {k}={v!r} in [problem] kind = {cls.kind!r}: its factory "
                    f"takes {', '.join(names) or 'no keys'} (add {k} to its parameters, or "
                    "remove it from the py: string)"
                )
        for k in keys:
            if k in cls.pairs:
                raise InputError(
                    f"[problem] {k} is given both in the section and in kind = {cls.kind!r}: "
                    "keep one"
                )
            if k not in names and not cls.any_key:
                raise InputError(
                    f"unknown key [problem] {k} for kind = {cls.kind!r}: its factory takes "
                    f"{', '.join(names) or 'no keys'} (add {k} to its parameters, or remove it)"
                )
        by_name = {p.name: p for p in cls.params}
        for k, v in {**cls.pairs, **keys}.items():
            if k in by_name:
                by_name[k].check(v, cls.kind)
        keys = {k: by_name[k].check(v, cls.kind) if k in by_name else v
                for k, v in keys.items()}
        missing = [p.name for p in cls.params
                   if p.default == REQUIRED and p.name not in keys and p.name not in cls.pairs]
        if missing:
            raise InputError(
                f"[problem] {missing[0]} is required by kind = {cls.kind!r} (its factory has no "
                f"default for it): add {missing[0]} = ... to [problem]"
            )
        if cls.declared:  # ATTR.params: a key left out takes its declared default
            for p in cls.params:
                if p.name not in keys and p.name not in cls.pairs:
                    keys[p.name] = p.default
        return keys

    @classmethod
    def data_bytes(cls, section: dict) -> int:
        """Unknown before the user's code runs: 0."""
        return 0

    @classmethod
    def from_config(cls, section: dict) -> UserProblem:
        """The user's object of a resolved section (checked by :meth:`check_keys`): the
        factory is called with the section's keys and the py: string's pairs."""
        keys = {**cls.pairs, **{k: v for k, v in section.items() if k != "kind"}}
        fix = "fix the factory or the [problem] keys"
        obj = call_user(f"{cls.where}: {_attr(cls.kind)}(**{keys})", cls.factory, fix=fix,
                        **keys)
        return cls(obj)

    # -- the object ----------------------------------------------------------------------
    def __init__(self, obj, *, agent_ids=None, x_star: Any = None, f_star: Any = None,
                 full_n: int | None = None):
        self.obj = obj
        w = self.where
        for name in ("n_agents", "dim", "values", "grad"):
            if not hasattr(obj, name):
                raise InputError(
                    f"{w}: the object {_attr(self.kind)}(...) returned ({type(obj).__name__}) "
                    f"has no `{name}`: give it n_agents, dim, values(X) and grad(X) "
                    "(docs/problems.md)"
                )
        n, d = obj.n_agents, obj.dim
        for name, value, low in (("n_agents", n, 1), ("dim", d, 1)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise InputError(
                    f"{w}: `{name}` must be an integer >= {low} (got {value!r}): set it on "
                    "the cost object"
                )
        self._full_n = int(n) if full_n is None else int(full_n)
        ids = (np.arange(int(n), dtype=np.int64) if agent_ids is None
               else np.asarray(agent_ids, dtype=np.int64))
        self._rows = ids  # the agents this object answers for, as the user's rows
        super().__init__(int(n) if agent_ids is None else ids.size, int(d), x_star=x_star,
                         f_star=f_star)
        if agent_ids is not None:
            self._agent_ids = ids
            self._is_subset = True
        self.has_test = hasattr(obj, "test_accuracy")

    def _call(self, name: str, *args, fix: str = "fix the cost"):
        return call_user(f"{self.where}: {name}", getattr(self.obj, name), *args, fix=fix)

    def _full(self, X: np.ndarray) -> np.ndarray:
        """The user's input for this problem's rows: X itself, or (a rank's block of an
        object without ``subset``) X's rows placed at the block's positions of an (N, d)
        array whose other rows repeat the block's first row."""
        if not self._is_subset or getattr(self, "_own_object", False):
            return X
        full = np.broadcast_to(X[:1], (self._full_n, self.dim)).copy()
        full[self._rows] = X
        return full

    def _pick(self, out):
        if not self._is_subset or getattr(self, "_own_object", False):
            return out
        return out[self._rows]

    def _checked(self, name: str, out, X: np.ndarray, shape: tuple, *,
                 exact: bool = True) -> np.ndarray:
        """``out`` as float64 of ``shape``; ``exact``: an array of another dtype (int64,
        float32, ...) is refused rather than converted (an integer gradient would round every
        step, float32 loses the digits the metrics read)."""
        w = f"{self.where}: {name}(X)"
        if np.iscomplexobj(out):  # numpy would drop the imaginary part with a warning a call
            raise InputError(f"{w} returned complex values: return a real float64 array of "
                             f"shape {shape}")
        if exact and isinstance(out, np.ndarray) and out.dtype != np.float64:
            raise InputError(
                f"{w} returned an array of dtype {out.dtype}, not float64: return float64 values "
                f"of shape {shape}, e.g. `return out.astype(float)`"
            )
        try:
            arr = np.asarray(out, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"{w} returned {type(out).__name__}, not an array of numbers ({exc}): return a "
                f"float64 array of shape {shape}"
            ) from None
        if arr.shape != shape:
            raise InputError(
                f"{w} returned shape {arr.shape} for X of shape {X.shape}: return shape "
                f"{shape} (one {'row' if len(shape) == 2 else 'value'} per agent)"
            )
        if not np.isfinite(arr).all() and np.isfinite(X).all() and np.abs(X).max(
                initial=0.0) < 1e100:
            i = int(np.argwhere(~np.isfinite(arr))[0][0])
            raise InputError(
                f"{w} returned NaN or inf (agent {i}) for a finite X: make the cost finite "
                "wherever it is evaluated"
            )
        return arr

    def values(self, X):
        X = self._check_X(X)
        full = self._full(X)
        out = self._checked("values", self._call("values", full), full, (full.shape[0],))
        return self._pick(out)

    def grad(self, X):
        X = self._check_X(X)
        full = self._full(X)
        out = self._checked("grad", self._call("grad", full), full, full.shape)
        return self._pick(out)

    def stochastic_grad(self, X, draw):
        if not hasattr(self.obj, "stochastic_grad"):
            return self.grad(X)
        X = self._check_X(X)
        full = self._full(X)
        out = self._checked("stochastic_grad", self._call("stochastic_grad", full, int(draw)),
                            full, full.shape)
        return self._pick(out)

    @property
    def batch(self):
        """Not None when the object has ``stochastic_grad``: every round then uses it."""
        if not hasattr(self.obj, "stochastic_grad"):
            return None
        return getattr(self.obj, "batch", None) or 1

    def test_accuracy(self, X):
        X = self._check_X(X)
        full = self._full(X)
        out = self._checked("test_accuracy", self._call("test_accuracy", full), full,
                            (full.shape[0],), exact=False)
        return self._pick(out)

    def accuracy_at(self, x):
        return float(self.test_accuracy(np.array(self._stack(x)))[0])

    def train_loss(self, x):
        """Mean of the local costs at one point ``x``."""
        return float(self.values(np.array(self._stack(x))).mean())

    # -- what stflow computes when the object does not say ---------------------------------
    @property
    def x_star(self):
        if self._given_x_star is not None:
            return self._given_x_star
        if "x_star" in vars(self):
            return vars(self)["x_star"]
        if hasattr(self.obj, "x_star"):
            given = self._call_attr("x_star")
            if given is None:
                value = None
            else:
                value = np.array(given, dtype=np.float64)
                if value.shape != (self.dim,) or not np.isfinite(value).all():
                    raise InputError(
                        f"{self.where}: `x_star` must be a finite array of shape (d,) = "
                        f"({self.dim},) (got shape {value.shape}): fix it, or leave it out "
                        "and stflow solves for it"
                    )
                value.setflags(write=False)
        elif self._is_subset:
            raise RuntimeError("a block of a user cost carries no x_star: pass x_star=")
        else:
            value = self._polish(self._minimize())
            value.setflags(write=False)
        vars(self)["x_star"] = value
        return value

    @property
    def no_optimum(self) -> bool:
        """True when the cost object sets ``x_star = None`` (no minimizer: a run is judged by
        ``[solver] target_accuracy`` on its ``test_accuracy``); read without solving for x*.
        A block (:meth:`subset`) answers for the whole cost."""
        if "_no_optimum" in vars(self):
            return vars(self)["_no_optimum"]
        if self._given_x_star is not None:
            return False
        return hasattr(self.obj, "x_star") and self._call_attr("x_star") is None

    @property
    def f_star(self):
        if self._given_f_star is not None:
            return self._given_f_star
        x = self.x_star
        return None if x is None else self.total_value(x)

    def _call_attr(self, name):
        value = getattr(self.obj, name)
        return call_user(f"{self.where}: {name}", value) if callable(value) else value

    def _number(self, name: str):
        if not hasattr(self.obj, name):
            return None
        value = self._call_attr(name)
        ok = isinstance(value, int | float | np.floating) and not isinstance(value, bool)
        if not ok or not math.isfinite(float(value)) or float(value) < 0:
            raise InputError(
                f"{self.where}: `{name}` must be a finite number >= 0 (got {value!r}): fix it, "
                "or leave it out and stflow estimates it"
            )
        return float(value)

    def _minimize(self) -> np.ndarray:
        from scipy.optimize import minimize

        _say(f"solving for x* of {_attr(self.kind)} (L-BFGS-B on the sum; give the cost an "
             "x_star to skip this)")
        x0 = np.zeros(self.dim)
        scale = max(1.0, float(np.linalg.norm(self.total_grad(x0))))
        res = minimize(self.total_value, x0, jac=self.total_grad, method="L-BFGS-B",
                       options={"maxiter": 20000, "gtol": 1e-12 * scale, "ftol": 1e-15})
        return np.asarray(res.x, dtype=np.float64)

    def _hessian_sum(self, x: np.ndarray) -> np.ndarray:
        """Finite-difference Hessian of the summed gradient (central, symmetrized)."""
        d = self.dim
        if d > _MAX_HESSIAN_DIM:
            return np.eye(d) * np.inf
        eps = 1e-5 * max(1.0, float(np.linalg.norm(x)))
        cols = []
        for j in range(d):
            e = np.zeros(d)
            e[j] = eps
            cols.append((self.total_grad(x + e) - self.total_grad(x - e)) / (2 * eps))
        h = np.array(cols).T
        return 0.5 * (h + h.T)

    @property
    def smoothness(self) -> float:
        given = self._number("smoothness")
        if given is not None:
            return given
        if "_smooth" not in vars(self):
            points = [np.zeros(self.dim)]
            x = self.x_star
            if x is not None:
                points.append(np.asarray(x))
            vars(self)["_smooth"] = max(self._curvature_at(p, 50) for p in points)
        return vars(self)["_smooth"]

    @property
    def solution_curvature(self) -> float:
        x = self.x_star
        if x is None:
            return self.smoothness
        return min(self._curvature_at(np.asarray(x), 50), self.smoothness)

    @property
    def strong_convexity(self) -> float:
        given = self._number("strong_convexity")
        if given is not None:
            return given
        x = self.x_star
        if x is None or self.dim > _MAX_HESSIAN_DIM:
            return 0.0
        low = float(np.linalg.eigvalsh(self._hessian_sum(np.asarray(x)))[0])
        return max(low, 0.0)

    def arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _from_arrays(self, arrays, **kw):  # pragma: no cover - subset is overridden
        raise NotImplementedError

    def subset(self, rows: slice, *, x_star: Any = None, f_star: Any = None) -> Problem:
        """The agents ``rows`` (one MPI rank's block): the object's own ``subset(agent_ids)``
        when it has one, else this object evaluated on full (N, d) inputs (N/P times the
        work of a block per evaluation)."""
        from .base import block_bounds

        start, stop = block_bounds(rows, self.n_agents)
        ids = np.arange(start, stop, dtype=np.int64)
        if x_star is not None and f_star is None:
            f_star = self.total_value(np.asarray(x_star, dtype=np.float64))
        if hasattr(self.obj, "subset"):
            part = call_user(f"{self.where}: subset", self.obj.subset, ids.copy(),
                             fix="return the cost object of those agents")
            child = type(self)(part, agent_ids=ids, x_star=x_star, f_star=f_star,
                               full_n=self.n_agents)
            if part.n_agents != ids.size:
                raise InputError(
                    f"{self.where}: subset(agent_ids) returned n_agents = {part.n_agents} for "
                    f"{ids.size} agents: keep exactly the agents asked for"
                )
            child._own_object = True
        else:
            child = type(self)(self.obj, agent_ids=ids, x_star=x_star, f_star=f_star,
                               full_n=self.n_agents)
        child._no_optimum = x_star is None and self.no_optimum
        return child

    def _check_X(self, X):
        return super()._check_X(X)

    def __repr__(self) -> str:
        return f"UserProblem({self.kind!r}, n_agents={self.n_agents}, dim={self.dim})"


def _say(text: str) -> None:
    """One progress line on a terminal (a user's cost may be slow before the first round)."""
    import sys

    if sys.stderr.isatty():
        print(f"stflow: {text} ...", file=sys.stderr, flush=True)


def _attr(ref: str) -> str:
    return parse_ref(ref, "[problem] kind").attr
