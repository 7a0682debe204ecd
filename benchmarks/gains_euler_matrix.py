"""The loss-free matrix of docs/gains.md ("Open: euler's b = 0.3 diverges on plain rings").

The observer flow with ``"auto"`` gains under ``euler``, with the step budget ``b`` and the
observer ratio ``r`` of ``AUTO_SCHEME["euler"]`` replaced, on 90 settings (6 problems x 3
graphs x 5 compressors, h = 1e-3, 3000 rounds); prints how many diverged, how many reached
relative error 1e-6, and the rounds summed over all 90 (3000 for a run that did not).

Usage::

    python benchmarks/gains_euler_matrix.py 0.3 0.5     # the rule
    python benchmarks/gains_euler_matrix.py 0.2 0.5
"""

from __future__ import annotations

import itertools
import sys
import warnings

import numpy as np

PROBLEMS = [("quadratic", 6, 4), ("quadratic", 8, 6), ("quadratic", 16, 8),
            ("least_squares", 10, 6), ("least_squares", 20, 10), ("least_squares", 40, 20)]
GRAPHS = [{"kind": "ring"}, {"kind": "ring", "chords": 2}, {"kind": "erdos_renyi", "p": 0.4}]
SPECS = ["topk:k=1", "topk:k=2", "topk:k=3", "quantize:bits=4", "sign"]
H, ROUNDS, TARGET = 1e-3, 3000, 1e-6


def main(budget: float, ratio: float) -> str:
    import stflow
    import stflow.methods.primal_dual as pd

    pd.AUTO_SCHEME["euler"] = (budget, ratio, 1.0)
    diverged = reached = 0
    rounds = []
    for (kind, n, d), graph, spec in itertools.product(PROBLEMS, GRAPHS, SPECS):
        raw = {"problem": {"kind": kind, "agents": n, "dim": d}, "graph": graph,
               "method": {"kind": "observer"}, "compressor": {"spec": spec},
               "solver": {"scheme": "euler", "step": H, "horizon": ROUNDS * H,
                          "record_every": 50, "tolerance": 1e-8}}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, sol = stflow.run_config(stflow.resolve_config(raw))
        diverged += sol.status in ("diverged", "diverging")
        hit = np.nonzero(sol.records["relative_error"] < TARGET)[0]
        reached += len(hit) > 0
        rounds.append(int(sol.records["step"][hit[0]]) if len(hit) else ROUNDS)
    return (f"euler (b, r) = ({budget:g}, {ratio:g}): diverged or diverging {diverged}, "
            f"reached {TARGET:g} {reached} of {len(rounds)}, rounds {sum(rounds):,}")


if __name__ == "__main__":
    print(main(float(sys.argv[1]), float(sys.argv[2])))
