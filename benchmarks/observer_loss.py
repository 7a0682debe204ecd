"""Observer flow under message loss: four ways to keep the copies of xhat_i (issue 23).

The Euler observer flow (SPEC section 5) with one copy of xhat_j *per receiver* (an
``(N, N, d)`` array, so copies may differ), on E2's problem (least squares, N = 20, d = 10,
ring with 3 chords, seed 0; gains alpha = beta = 10, eta = 2, gamma = 300, h = 1e-3) and
on a second problem the protocol was not tuned on (``make_problem("quadratic", agents=16,
dim=8, seed=3)`` on ``make_graph("erdos_renyi", 16, seed=3)``, alpha = beta = 10, eta = 5,
gamma = 300).
Messages are lost by :class:`stflow.network.Channel` (independent, the same draws as the
library). Protocols:

- ``naive``: a receiver that misses q_j keeps its copy (copies drift apart for good);
- ``resync``: naive, and every R rounds each agent sends its xhat_j raw (64 d bits, assumed
  delivered) so every copy is reset to the sender's;
- ``ack_correct``: naive copies, 1-bit acknowledgements; the sender knows each neighbour's
  copy and subtracts its share of the mismatch from its own V, so sum_i V_i stays 0;
- ``commit`` (stflow's default, :mod:`stflow.engines.driver`): 1-bit acknowledgements and a
  commit bit; a sender's q_j is integrated by every holder only when all its neighbours got
  it (else by none), so every copy equals the sender's.

Prints, per protocol and loss rate, the final relative error and the bits per agent to reach
1e-6 against the loss-free run's. Usage: ``python benchmarks/observer_loss.py [--quick]``.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from stflow.compressors import make_compressor
from stflow.graphs import make_graph
from stflow.network import Channel
from stflow.problems import make_problem


def simulate(problem, graph, comp, gains, *, h, rounds, drop, protocol, resync=100, seed=0):
    """Relative error per 10 rounds and bits per agent per round (see the module)."""
    a, b_, e_, g_ = gains
    n, d = problem.n_agents, problem.dim
    A = -graph.laplacian.toarray()
    np.fill_diagonal(A, 0.0)
    deg = (A > 0).sum(axis=1)
    ch = Channel(graph, drop=drop, seed=seed) if drop else None
    X, V = np.zeros((n, d)), np.zeros((n, d))
    C = np.zeros((n, n, d))  # C[i, j]: agent i's copy of xhat_j (C[j, j] is the sender's)
    bits = float(comp.bits_per_message())
    x_star = problem.x_star
    errs, spent = [], []
    total = 0.0
    idx = np.arange(n)
    for k in range(rounds):
        own = C[idx, idx]
        Q = comp(X - own, k * h)
        got = np.ones((n, n), dtype=bool)  # got[i, j]: i received j's message
        if ch is not None:
            m = ch.masks(k).delivered
            E = ch.n_edges
            got[ch.dst[~m], ch.src[~m]] = False
            del E
        if protocol == "commit":
            ok = np.all(got | (A.T == 0), axis=0)  # column j: every neighbour received
            got = np.broadcast_to(ok, (n, n)).copy()
        mix = np.einsum("ij,ijd->id", A, own[:, None, :] - C)  # sum_j a_ij (xhat_i - c_ij)
        G = problem.grad(X)
        Xn = X + h * (-a * mix - b_ * V - e_ * G)
        Vn = V + h * b_ * mix
        if protocol == "ack_correct":
            # sender j knows every neighbour's copy of xhat_j; it subtracts the mismatch its
            # neighbours fed into their V this round, so sum_i V_i stays 0
            mismatch = np.einsum("ij,ijd->jd", A, own[None, :, :] - C)
            Vn = Vn - h * b_ * mismatch
        inc = h * g_ * Q
        C = C + got[:, :, None] * inc[None, :, :]
        C[idx, idx] = own + (inc if protocol != "commit" else got[idx, idx, None] * inc)
        X, V = Xn, Vn
        total += bits + (deg + (1 if protocol == "commit" else 0) if protocol in (
            "commit", "ack_correct") else 0)
        if protocol == "resync" and (k + 1) % resync == 0:
            C[:] = C[idx, idx][None, :, :]
            total += 64.0 * d
        if k % 10 == 9:
            errs.append(np.linalg.norm(X - x_star) / (np.sqrt(n) * max(np.linalg.norm(x_star),
                                                                       1e-12)))
            spent.append(total if np.ndim(total) == 0 else float(np.mean(total)))
    return np.array(errs), np.array(spent)


def bits_to(errs, spent, tol=1e-6):
    i = np.nonzero(errs <= tol)[0]
    return float(spent[i[0]]) if i.size else np.inf


def main(quick: bool) -> None:
    settings = {
        "E2": (make_problem("least_squares", agents=20, dim=10, seed=0),
               make_graph("ring", 20, chords=3, seed=0), (10.0, 10.0, 2.0, 300.0),
               12000 if quick else 20000),
        "quadratic": (make_problem("quadratic", agents=16, dim=8, seed=3),
                      make_graph("erdos_renyi", 16, seed=3), (10.0, 10.0, 5.0, 300.0),
                      12000 if quick else 20000),
    }
    for name, (problem, graph, gains, rounds) in settings.items():
        comp = make_compressor("quantize:bits=4", problem.dim)
        t0 = time.process_time()
        e0, s0 = simulate(problem, graph, comp, gains, h=1e-3, rounds=rounds, drop=0.0,
                          protocol="naive")
        base = bits_to(e0, s0)
        print(f"{name}: loss-free final {e0[-1]:.2e}, bits to 1e-6 {base:.0f}")
        for drop in (0.1, 0.2):
            for protocol in ("naive", "resync", "ack_correct", "commit"):
                e, s = simulate(problem, graph, comp, gains, h=1e-3, rounds=rounds, drop=drop,
                                protocol=protocol)
                print(f"  drop {drop:.0%} {protocol:12s} final {e[-1]:.2e}  bits to 1e-6 "
                      f"{bits_to(e, s) / base:.3f}x")
        print(f"  ({time.process_time() - t0:.0f} s CPU)")


if __name__ == "__main__":
    main("--quick" in sys.argv)
