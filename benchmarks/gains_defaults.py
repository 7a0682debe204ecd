"""The flows' default gains (issue 20): fixed (2, 2, 1, 50) against ``"auto"``, and where
``"auto"`` fails.

- ``--user``: configs with only ``[problem]``, ``[graph]``, ``[method] kind`` and
  ``[compressor] spec = "quantize:bits=4"`` (everything else the defaults: ``predict``,
  h = 1e-3, horizon 30): the observer flow with the fixed gains and with ``"auto"``, and
  LEAD with ``lr = "auto"``, on breast cancer (logistic), diabetes (least squares) and E2;
  final relative error and bits per agent to the tolerance 1e-8.
- ``--matrix``: the observer flow with ``"auto"`` gains on small graphs (rings of 4 and 10,
  a star of 6, a complete graph of 8; quadratic costs) x six compressors x three schemes,
  h = 0.01, 3,000 rounds: status and final relative error.

Results are in ``docs/gains.md``. Usage::

    OMP_NUM_THREADS=1 python benchmarks/gains_defaults.py --user --matrix
"""

from __future__ import annotations

import argparse
import warnings

from stflow.config import resolve_config, run_config
from stflow.output import to_target

FIXED = {"alpha": 2.0, "beta": 2.0, "eta": 1.0, "gamma": 50.0}
USER = {
    "breast cancer": ({"kind": "logistic", "dataset": "breast_cancer", "agents": 10,
                       "regularization": 0.01}, {"kind": "ring"}),
    "diabetes": ({"kind": "least_squares", "dataset": "diabetes", "agents": 10},
                 {"kind": "ring"}),
    "E2": ({"kind": "least_squares", "agents": 20, "dim": 10, "seed": 0},
           {"kind": "ring", "chords": 3, "seed": 0}),
}
GRAPHS = [(4, 3, "ring"), (10, 5, "ring"), (6, 4, "star"), (8, 3, "complete")]
SPECS = ["topk:k=1", "topk:k=2", "quantize:bits=4", "randk:k=1", "identity", "sign"]


def _run(raw: dict):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_config(resolve_config(raw))


def user() -> None:
    methods = {"observer, fixed": {"kind": "observer", **FIXED},
               "observer, auto": {"kind": "observer"}, "LEAD, auto": {"kind": "lead"}}
    for name, (problem, graph) in USER.items():
        for label, method in methods.items():
            _, sol = _run({"problem": problem, "graph": graph, "method": dict(method),
                           "compressor": {"spec": "quantize:bits=4"}})
            bits = to_target(sol.records, tolerance=1e-8).get("bits_to_target")
            print(f"{name:13s} {label:16s} {sol.status:13s} final {sol.final_relative_error:.2g}"
                  f"  bits to 1e-8: {bits}", flush=True)


def matrix() -> None:
    counts: dict[str, int] = {}
    for agents, dim, graph in GRAPHS:
        for spec in SPECS:
            for scheme in ("predict", "euler", "gauss_seidel"):
                _, sol = _run({"problem": {"kind": "quadratic", "agents": agents, "dim": dim},
                               "graph": {"kind": graph}, "method": {"kind": "observer"},
                               "compressor": {"spec": spec},
                               "solver": {"scheme": scheme, "step": 1e-2, "horizon": 30.0,
                                          "record_every": 50}})
                counts[sol.status] = counts.get(sol.status, 0) + 1
                print(f"N={agents:<3d} d={dim} {graph:9s} {spec:16s} {scheme:12s} "
                      f"{sol.status:13s} {sol.final_relative_error:.2e}", flush=True)
    print("statuses:", counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--user", action="store_true", help="fixed against auto on user data")
    parser.add_argument("--matrix", action="store_true", help="auto on small graphs")
    args = parser.parse_args()
    if args.user:
        user()
    if args.matrix:
        matrix()


if __name__ == "__main__":
    main()
