"""Local costs f_i of the agents, their data (.npz), and the centralized optimum x*.

Four kinds (`PROBLEM_KINDS`), each evaluated for all N agents at once on stacked
iterates ``X: (N, d)`` (SPEC section 1):

- ``quadratic``:     f_i(x) = 1/2 x^T Q_i x - b_i^T x,            arrays Q (N, d, d), b (N, d)
- ``least_squares``: f_i(x) = 1/2 ||A_i x - b_i||^2,              arrays A (N, m, d), b (N, m)
                     (held as Gram matrices A_i^T A_i, A_i^T b_i when m >= d)
- ``logistic``:      f_i(x) = sum_j log(1 + exp(-y_ij a_ij^T x)) + (reg/2) ||x||^2,
                     arrays A (N, m, d), y (N, m) with labels in {-1, +1}
- ``softmax``:       f_i(x) = sum_j (logsumexp(W^T a_ij) - (W^T a_ij)_{y_ij}) + (reg/2) ||x||^2,
                     W = x.reshape(p, K), arrays A (N, m, p), y (N, m) with labels 0..K-1

The three data-row kinds also draw minibatches (``batch``, SPEC section 7:
``stochastic_grad``, ``samples_per_eval``, ``rows_per_agent``, ``agent_ids``); logistic and
softmax hold optional held-out rows (``test_accuracy``, ``train_loss``). See docs/problems.md.

`make_problem` generates seeded data or loads it (`load_problem_data`, `save_problem_data`);
``Problem.x_star`` is the minimizer of sum_i f_i used by the metrics of SPEC section 6.
"""

from __future__ import annotations

from ._validate import _KEYS as _KEYS
from ._validate import _check_count as _check_count
from ._validate import _check_quadratic as _check_quadratic
from ._validate import _check_regularization as _check_regularization
from ._validate import _raise_keys as _raise_keys
from ._validate import _validate_arrays as _validate_arrays
from .base import _NEWTON_POLISH_STEPS as _NEWTON_POLISH_STEPS
from .base import Problem, curvature_estimate
from .base import _smallest_eigenvalue as _smallest_eigenvalue
from .io import (
    PROBLEM_KINDS,
    centralized_solution,
    load_problem_data,
    make_problem,
    save_problem_data,
)
from .io import _generate as _generate
from .least_squares import LeastSquaresProblem
from .logistic import LogisticProblem
from .quadratic import QuadraticProblem
from .sampling import BatchSampler, batch_rows
from .softmax import SoftmaxProblem

__all__ = [
    "PROBLEM_KINDS",
    "BatchSampler",
    "SoftmaxProblem",
    "batch_rows",
    "LeastSquaresProblem",
    "LogisticProblem",
    "Problem",
    "QuadraticProblem",
    "centralized_solution",
    "curvature_estimate",
    "load_problem_data",
    "make_problem",
    "save_problem_data",
]
