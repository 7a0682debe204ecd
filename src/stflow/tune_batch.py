r"""The tuner's search in waves of candidates run as one batch (:func:`search_batched`).

Same rules as :func:`stflow.tune.tune` (score, counting, robustness, search box, first
candidate = the config itself), with Optuna's ask/tell in *waves*: ``wave`` candidates are
asked (TPE with ``constant_liar`` so the pending ones repel each other), run for the full
round cap as one batch (:func:`stflow.engines.batch.evaluate_batch`, recording only the
scored column), then told. The candidates of a wave that count and beat the winner so far
get their :data:`~stflow.tune.ROBUST_RUNS` perturbed runs (one batch each) fewest bits
first, until one passes: it is the wave's winner, and the others, with more bits, could not
beat it (the same winner as checking them all; the sequential search checks a candidate
when it beats the winner of the candidates before it). The likeliest contender's perturbed
runs (the survivor of the pruning that reached the target first; in the first wave the
config itself) run speculatively in the wave's full-cap batch, which saves a pass when the
guess is right and changes nothing else. In the refine phase the local search proposes the
wave around its centre.

Pruning as in the sequential search, per wave: with a winner found in an earlier wave, the
wave first runs the winner's number of rounds, and only the candidates that reached the
target before it run the full cap (a second batch). What differs: a wave's candidates are
drawn before any of them is scored (and pruned against the winner of the earlier waves),
so the same seed gives other candidates. The score of
a candidate is the one the sequential search gives it (its runs are equal to the single
runs, :mod:`stflow.engines.batch`). With ``wave = 1`` it is the sequential search: the same
candidates, scores and winner.

:func:`stflow.tune.tune` (``stflow tune --wave W``) calls ``search_batched`` instead of the
sequential ``_search`` when ``wave > 1`` and the batch engine can stack the config
(:func:`stflow.engines.batch.batch_refusal`); same arguments plus ``wave``, same return
value.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import InputError

__all__ = ["search_batched", "WAVE"]

#: Candidates per wave (one batch).
WAVE = 10


def _outcome(sol, crit):
    """The score of one full-cap run, as :func:`stflow.tune._evaluate` gives it."""
    from .tune import _check_column, _Outcome, _unreached, first_hit

    if sol.status == "interrupted":
        raise KeyboardInterrupt
    _check_column(sol, crit)
    i, stays = first_hit(sol.records, crit.column, crit.target, at_least=crit.at_least)
    if sol.status == "diverged" or i is None or not stays:
        return _unreached(sol, crit, pruned=False, runs=1)
    bits = float(sol.records["bits_per_agent"][i])
    return _Outcome(True, bits, int(sol.records["step"][i]), False, False,
                    math.log10(max(bits, 1.0)), 1)


def _evaluate_wave(cfgs, crit, cap, prune, robust_of=None, first=False):
    """:func:`stflow.tune._evaluate` of every config, as batches: with ``prune`` (the
    winner's rounds) all run ``prune`` rounds first and only those that reached the target
    before it run the full cap (pruning, as the sequential search does it).

    ``robust_of(j)`` (the perturbed configs of candidate j) adds, speculatively, the
    robustness runs of the likeliest contender to the full-cap batch (one pass instead of
    two when the guess is right): the survivor of the pruning that reached the target
    first, or, with ``first`` and no pruning, candidate 0 (the config itself). Returns the
    outcomes, the runs made and ``(j, robustness outcomes)`` of the guess (or None)."""
    from .engines.batch import evaluate_batch
    from .tune import _check_column, _unreached, first_hit

    outs = [None] * len(cfgs)
    full = list(range(len(cfgs)))
    used = 0
    guess = 0 if first and robust_of is not None else None
    if prune is not None and prune < cap // 2:
        full, hits = [], {}
        for j, sol in enumerate(evaluate_batch(cfgs, prune, metrics=(crit.column,))):
            used += 1
            _check_column(sol, crit)
            i, _ = first_hit(sol.records, crit.column, crit.target, at_least=crit.at_least)
            if sol.status == "interrupted":
                raise KeyboardInterrupt
            if sol.status == "diverged" or i is None or sol.records["step"][i] >= prune:
                outs[j] = _unreached(sol, crit, pruned=sol.status != "diverged", runs=1)
            else:
                full.append(j)
                hits[j] = int(sol.records["step"][i])
        guess = (min(full, key=lambda j: (hits[j], j)) if full and robust_of is not None
                 else None)
    if not full:
        return outs, used, None
    extra = [] if guess is None else robust_of(guess)
    sols = evaluate_batch([cfgs[j] for j in full] + extra, cap, metrics=(crit.column,))
    used += len(sols)
    for j, sol in zip(full, sols, strict=False):
        outs[j] = _outcome(sol, crit)
    spec = None if guess is None else (guess, [_outcome(x, crit) for x in sols[len(full):]])
    return outs, used, spec


def search_batched(base, space, tunables, crit, cap, h0, spec0, *, budget, seed, progress,
                   wave: int = WAVE, speculate: bool = True):
    """:func:`stflow.tune._search` in waves of ``wave`` candidates run as one batch;
    returns ``(best, trials, runs, reason)`` as it does. ``speculate`` runs the likeliest
    contender's robustness runs with the wave (:func:`_evaluate_wave`): fewer passes, the
    same trials and winner (only ``runs`` differs)."""
    from .engines.batch import evaluate_batch
    from .tune import EXPLORE_SHARE, ROBUST_RUNS, _candidate, _LocalSearch, _open_search, _perturbed

    if isinstance(wave, bool) or not isinstance(wave, int) or wave < 1:
        raise InputError(f"`wave` must be an integer >= 1 (got {wave!r}): e.g. wave = 10")
    study, dists, fixed, bar, tick = _open_search(space, budget=budget, seed=seed,
                                                  progress=progress, liar=True)

    best = None
    trials, runs, reason = [], 0, ""
    explore = max(1, int(round(EXPLORE_SHARE * budget)))
    es = _LocalSearch(space, np.random.default_rng([seed, 1]))
    try:
        n = 0
        while n < budget:
            size = min(wave, budget - n, explore - n if n < explore else budget - n)
            asked = []
            for j in range(size):
                if n + j >= explore and es.center is not None:
                    study.enqueue_trial(es.propose())
                trial = study.ask(dists)
                asked.append((trial, {**fixed, **trial.params}))
            cfgs = [_candidate(base, v, cap, h0, spec0) for _t, v in asked]
            prune = None if best is None else best[1].rounds

            def robust_of(j, asked=asked, n=n):  # candidate j's perturbed configs (seeded)
                rng = np.random.default_rng([seed, n + j])
                return [_candidate(base, _perturbed(asked[j][1], space, tunables, rng), cap,
                                   h0, spec0) for _ in range(ROBUST_RUNS)]

            outs, used, guessed = _evaluate_wave(cfgs, crit, cap, prune,
                                                 robust_of if speculate else None,
                                                 first=n == 0)
            runs += used
            tick(used)
            # robustness runs of the candidates that would beat the winner, fewest bits
            # first (ties: the earlier one), one batch each, until one passes
            threshold = math.inf if best is None else best[1].bits
            contenders = sorted((j for j, o in enumerate(outs)
                                 if o.counted and o.bits < threshold),
                                key=lambda j: (outs[j].bits, j))
            robust = {}
            for j in contenders:
                if guessed is not None and guessed[0] == j:  # run with the wave already
                    rs = guessed[1]
                else:
                    rs = [_outcome(s, crit) for s in evaluate_batch(
                        robust_of(j), cap, metrics=(crit.column,))]
                    runs += len(rs)
                    tick(len(rs))
                robust[j] = float(np.median([o.bits if o.counted else math.inf for o in rs]))
                if math.isfinite(robust[j]):
                    break
            for j, ((trial, values), out) in enumerate(zip(asked, outs, strict=True)):
                entry = {"params": {k: float(v) for k, v in values.items()},
                         "bits_to_target": out.bits if out.counted else None,
                         "rounds_to_target": out.rounds, "diverged": out.diverged,
                         "pruned": out.pruned, "robust_bits_to_target": None,
                         "phase": "explore" if n + j < explore else "refine"}
                score = out.score
                if j in robust:
                    rb = robust[j]
                    entry["robust_bits_to_target"] = None if math.isinf(rb) else rb
                    if math.isfinite(rb) and (best is None or out.bits < best[1].bits):
                        best = (values, out, rb)
                    elif not math.isfinite(rb):
                        score += 0.5
                trials.append(entry)
                study.tell(trial, score)
                es.update({k: values[k] for k in dists}, score, refining=n + j >= explore)
            n += size
            if bar is not None:
                bar.set_postfix_str(f"candidate {n} of {budget}" + (
                    f", best {best[1].bits:,.0f} bits" if best is not None else ""))
        tick(budget * (2 + ROBUST_RUNS))  # the budget is spent: fill the bar
    except KeyboardInterrupt:
        reason = f"interrupted after {len(trials)} of {budget} candidates"
    finally:
        if bar is not None:
            bar.close()
    return best, trials, runs, reason
