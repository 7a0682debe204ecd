"""E6 (breast-cancer logistic regression, E9's setting): where the observer flow's gains must be.

- ``--facts``: L_f (``smoothness``), the curvature at the solution
  (``solution_curvature``), the mean Hessian's spectrum at x*, lambda_2, and the ``"auto"``
  gains of the observer flow (``predict``, h = 0.01, ``quantize:bits=4``).
- ``--scan``: the observer flow (``predict``, ``quantize:bits=4``, h = 0.01, beta = alpha)
  over a grid of per-round gains h eta, h alpha, h gamma; rounds and bits per agent to
  relative error 1e-2 and 1e-3 within 5000 rounds (first record at or below, staying there).
- ``--tune B``: flow ``predict`` and LEAD tuned as E9 tunes them (``stflow.tune.tune``,
  budget B, target 1e-2, 5000 rounds, span 300, seed 0): bits, robust bits, flow / LEAD.

Results are in ``docs/gains.md`` and ``docs/peers.md``. Usage::

    OMP_NUM_THREADS=1 python benchmarks/gains_e6.py --facts --scan --tune 30
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from stflow.config import build_run, run_config
from stflow.experiments.comparison import method_config
from stflow.tune import first_hit, tune

ROUNDS, SPEC = 5000, "quantize:bits=4"


def facts() -> None:
    run = build_run(method_config("E6", "observer", "predict", SPEC, ROUNDS))
    p, g = run.problem, run.graph
    ev = np.linalg.eigvalsh(p._hessian_sum(p.x_star) / p.n_agents)
    f = run.config["method"]
    print(f"L_f {p.smoothness:.4g}  solution_curvature {p.solution_curvature:.4g}  mean Hessian "
          f"at x*: max {ev[-1]:.4g} min {ev[0]:.4g}  lambda_2 {g.lambda_2:.4g}  lambda_max "
          f"{g.lambda_max:.4g}")
    print("auto (h = 0.01): " + ", ".join(f"h {k} = {0.01 * f[k]:.4g}"
                                          for k in ("alpha", "beta", "eta", "gamma")))


def scan() -> None:
    h = 0.01
    for he, ha, hg in itertools.product((0.0039, 0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.2),
                                        (0.1, 0.2, 0.3, 0.38, 0.45), (0.5, 0.75, 1.0)):
        cfg = method_config("E6", "observer", "predict", SPEC, ROUNDS)
        cfg["method"].update(alpha=ha / h, beta=ha / h, eta=he / h, gamma=hg / h)
        _, sol = run_config(cfg)
        rec, out = sol.records, []
        for target in (1e-2, 1e-3):
            i, stays = first_hit(rec, target=target)
            out.append("-" if i is None or not stays else
                       f"{int(rec['step'][i])} rounds {rec['bits_per_agent'][i]:,.0f} bits")
        print(f"h eta {he:<6} h alpha {ha:<4} h gamma {hg:<4} {sol.status:13} final "
              f"{rec['relative_error'][-1]:.2e}  1e-2: {out[0]:28}  1e-3: {out[1]}", flush=True)


def tuned(budget: int) -> None:
    bits = {}
    for kind, scheme in (("observer", "predict"), ("lead", "euler")):
        res = tune(method_config("E6", kind, scheme, SPEC, ROUNDS), budget=budget,
                   target=1e-2, seed=0, span=300.0)
        bits[kind] = (res.bits_to_target, res.robust_bits_to_target)
        print(f"{kind} {scheme}: bits {res.bits_to_target} robust {res.robust_bits_to_target} "
              f"rounds {res.rounds_to_target} auto config {res.trials[0]['bits_to_target']} "
              f"params {res.params}", flush=True)
    (fb, fr), (lb, lr) = bits["observer"], bits["lead"]
    if fb and lb:
        print(f"flow / LEAD: {fb / lb:.3f} (robust {fr / lr:.3f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--facts", action="store_true")
    ap.add_argument("--scan", action="store_true")
    ap.add_argument("--tune", type=int, metavar="BUDGET")
    args = ap.parse_args()
    if args.facts:
        facts()
    if args.scan:
        scan()
    if args.tune:
        tuned(args.tune)


if __name__ == "__main__":
    main()
