r"""How the training rows of a data table are dealt to the agents (``[problem] split``).

Five splits, all seeded (the generator that shuffled the table, so a seed gives one split)
and deterministic:

- ``iid``: the shuffled rows cut into N contiguous blocks (``numpy.array_split``).
- ``by_label``: the rows stably sorted by label, then cut the same way (each agent sees one
  to three neighbouring classes).
- ``dirichlet`` (label skew; Hsu, Qi and Brown 2019, "Measuring the effects of non-identical
  data distribution for federated visual classification", and the NIID-Bench recipe of Li,
  Diao, Chen and He 2021, "Federated learning on non-IID data silos"): for every class c
  draw proportions :math:`p_c \sim \mathrm{Dir}(\alpha \mathbf 1_N)` and cut the class's rows
  (in shuffled order) at :math:`\lfloor n_c \sum_{j \le i} p_{c,j} \rfloor`, agent i taking
  the i-th piece. Small :math:`\alpha` puts each class on few agents; large :math:`\alpha`
  tends to ``iid``.
- ``shards`` (McMahan et al. 2017, "Communication-efficient learning of deep networks from
  decentralized data"): the rows stably sorted by label are cut into :math:`S = N L` shards
  (``numpy.array_split``, L = ``labels_per_agent``) and every agent gets L shards, chosen at
  random among the assignments in which no agent holds two shards of one class (see
  :func:`assign_shards`). When every class has the same number of rows and every shard is
  one class (K divides N L and the shard size divides each class), every agent holds
  exactly L classes.
- ``quantity`` (quantity skew, Li et al. 2021): the shuffled rows, labels left iid, cut
  into N contiguous blocks of sizes :math:`\lfloor n \sum_{j \le i} q_j \rfloor -
  \lfloor n \sum_{j < i} q_j \rfloor` with :math:`q \sim \mathrm{Dir}(\alpha \mathbf 1_N)`.
  Needs no labels, so it also splits a regression table.

**Every agent gets at least one row.** A Dirichlet draw can leave an agent with no row
(certainly so for small :math:`\alpha`). Rather than redraw (which for small :math:`\alpha`
would almost never succeed), each empty agent, in index order, takes one row from the agent
holding the most rows (the lowest index among ties): the donor's last row in the shuffled
order. ``rows_moved`` counts these rows (at most one per empty agent); the histograms shown
are those after the move.

Rows within an agent keep the shuffled order (``by_label`` and ``shards``: sorted by label).
Heterogeneity is measured by :func:`label_skew`, the mean total-variation distance of the
agents' label distributions from that of all training rows.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import InputError

__all__ = ["SPLITS", "SPLIT_KEYS", "check_split", "deal_rows", "assign_shards", "label_histogram",
           "label_skew"]

#: Ways to deal the training rows over the agents.
SPLITS = ("iid", "by_label", "dirichlet", "shards", "quantity")

#: The ``[problem]`` keys each split reads (besides ``seed``).
SPLIT_KEYS: dict[str, tuple[str, ...]] = {
    "iid": (),
    "by_label": (),
    "dirichlet": ("concentration",),
    "shards": ("labels_per_agent",),
    "quantity": ("concentration",),
}

#: Splits that need class labels (not a regression target).
LABEL_SPLITS = ("by_label", "dirichlet", "shards")


def deal_rows(labels, agents: int, *, split: str = "iid", rng=None,
              concentration: float = 0.5, labels_per_agent: int = 2):
    r"""The order of the n training rows and each agent's row count under ``split``.

    Agent i holds the rows ``order[off[i]:off[i+1]]`` with ``off = [0, *cumsum(sizes)]``;
    positions refer to the rows in their shuffled order. See the module docstring for the
    splits and the one-row rule (``moved`` counts the rows it moved).

    Parameters
    ----------
    labels : array_like of int, shape (n,), or int
        Class index of every training row (0..K-1), or the number of rows n when the
        table has no classes (``iid`` and ``quantity`` only).
    agents : int
        N, with ``1 <= N <= n``.
    split : str
        One of :data:`SPLITS`.
    rng : numpy.random.Generator
        Draws of ``dirichlet``, ``shards`` and ``quantity`` (``iid``, ``by_label`` draw
        nothing).
    concentration : float
        :math:`\alpha > 0` of ``dirichlet`` and ``quantity``.
    labels_per_agent : int
        L of ``shards``, ``1 <= L <= K`` and ``N L <= n``.

    Returns
    -------
    order : ndarray of int, (n,)
    sizes : ndarray of int, (N,)
    moved : int

    Examples
    --------
    >>> labels = np.repeat(np.arange(4), 6)  # 24 rows, 4 classes of 6
    >>> order, sizes, moved = deal_rows(labels, 4, split="shards",
    ...                                 rng=np.random.default_rng(0))
    >>> sizes.tolist(), moved
    ([6, 6, 6, 6], 0)
    >>> h = label_histogram(labels[order], sizes, 4)
    >>> (h > 0).sum(axis=1).tolist(), h.sum(axis=0).tolist()  # two classes each, all rows
    ([2, 2, 2, 2], [6, 6, 6, 6])
    >>> order, sizes, moved = deal_rows(labels, 4, split="dirichlet", concentration=1e-3,
    ...                                 rng=np.random.default_rng(0))
    >>> int(sizes.min()) >= 1, int(sizes.sum())
    (True, 24)
    """
    check_split(split)
    if isinstance(labels, int | np.integer):
        n, labels = int(labels), None
    else:
        labels = np.asarray(labels, dtype=np.int64)
        n = labels.size
    if labels is None and split in LABEL_SPLITS:
        raise InputError(
            f'[problem] split = "{split}" needs class labels (got a regression target): use '
            'split = "iid" or "quantity", or kind = "logistic" / "softmax"'
        )
    if not 1 <= agents <= n:
        raise InputError(
            f"[problem] agents must be <= the {n} training rows (got agents={agents}): lower "
            "agents or test_fraction"
        )
    if split == "iid":
        return np.arange(n), _even(n, agents), 0
    if split == "by_label":
        return np.argsort(labels, kind="stable"), _even(n, agents), 0
    if split == "shards":
        return _shards(labels, agents, _check_lpa(labels_per_agent, labels, agents), rng)
    alpha = _check_concentration(concentration, split)
    if split == "quantity":
        owner = _cut(np.arange(n), _dirichlet(rng, alpha, agents), np.zeros(n, np.int64))
    else:
        owner = np.zeros(n, dtype=np.int64)
        for c in np.unique(labels):  # setup only: one Dirichlet draw per class
            rows = np.flatnonzero(labels == c)
            _cut(rows, _dirichlet(rng, alpha, agents), owner)
    moved = _one_row_each(owner, agents)
    return np.argsort(owner, kind="stable"), np.bincount(owner, minlength=agents), moved


def check_split(split) -> str:
    """``split`` if it is one of :data:`SPLITS`, else an `InputError` that lists them.

    Examples
    --------
    >>> check_split("shards")
    'shards'
    >>> check_split("nope")
    Traceback (most recent call last):
    ...
    stflow.errors.InputError: [problem] split must be one of iid, by_label, dirichlet, shards, quantity (got 'nope'): iid (shuffled rows), by_label (sorted by label), dirichlet (label skew), shards (labels_per_agent classes per agent) or quantity (size skew); docs/problems.md
    """
    if split not in SPLITS:
        raise InputError(
            f"[problem] split must be one of {', '.join(SPLITS)} (got {split!r}): iid "
            "(shuffled rows), by_label (sorted by label), dirichlet (label skew), shards "
            "(labels_per_agent classes per agent) or quantity (size skew); docs/problems.md"
        )
    return split


def _even(n: int, agents: int) -> np.ndarray:
    return np.array([len(b) for b in np.array_split(np.arange(n), agents)], dtype=np.int64)


def _dirichlet(rng, alpha: float, agents: int) -> np.ndarray:
    p = rng.dirichlet(np.full(agents, alpha))
    if not np.all(np.isfinite(p)):
        raise InputError(
            f"[problem] concentration = {alpha:g} is too small for numpy's Dirichlet sampler "
            "(it returned NaN): raise concentration (1e-3 already puts each class on one agent)"
        )
    return p


def _cut(rows: np.ndarray, p: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """``owner[rows[j]] = i`` for the j in agent i's piece of ``floor(len(rows) cumsum(p))``."""
    cuts = np.minimum((np.cumsum(p) * rows.size).astype(np.int64)[:-1], rows.size)
    owner[rows] = np.searchsorted(cuts, np.arange(rows.size), side="right")
    return owner


def _one_row_each(owner: np.ndarray, agents: int) -> int:
    """Give every empty agent one row of the fullest agent (its last row); rows moved."""
    counts = np.bincount(owner, minlength=agents)
    moved = 0
    for i in np.flatnonzero(counts == 0):  # setup only: at most one move per empty agent
        donor = int(np.argmax(counts))
        last = np.flatnonzero(owner == donor)[-1]
        owner[last] = i
        counts[donor] -= 1
        counts[i] += 1
        moved += 1
    return moved


def _check_concentration(value, split: str) -> float:
    ok = isinstance(value, int | float | np.floating) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and value > 0):
        raise InputError(
            f'[problem] concentration must be a number > 0 for split = "{split}" (got '
            f"{value!r}): e.g. 0.5 (small: skewed, large: near iid)"
        )
    return float(value)


def _check_lpa(value, labels: np.ndarray, agents: int) -> int:
    k = int(np.unique(labels).size)
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise InputError(
            f'[problem] labels_per_agent must be an integer >= 1 for split = "shards" (got '
            f"{value!r}): e.g. labels_per_agent = 2"
        )
    if value > k:
        raise InputError(
            f"[problem] labels_per_agent must be <= the {k} classes of the training rows (got "
            f"labels_per_agent={value}): lower labels_per_agent to {k} or less"
        )
    if agents * value > labels.size:
        raise InputError(
            f'[problem] split = "shards" cuts agents x labels_per_agent = {agents * value} '
            f"shards from {labels.size} training rows (got more shards than rows): lower "
            "agents or labels_per_agent"
        )
    return int(value)


def _shards(labels: np.ndarray, agents: int, per: int, rng):
    sorted_rows = np.argsort(labels, kind="stable")
    shards = np.array_split(sorted_rows, agents * per)
    owner_of_shard = assign_shards([np.unique(labels[s]) for s in shards], agents, rng)
    owner = np.empty(labels.size, dtype=np.int64)
    owner[sorted_rows] = np.repeat(owner_of_shard, [s.size for s in shards])
    order = sorted_rows[np.argsort(owner[sorted_rows], kind="stable")]
    return order, np.bincount(owner, minlength=agents), 0


def assign_shards(shard_classes, agents: int, rng, *, sweeps: int = 20) -> np.ndarray:
    r"""Owner of each of the :math:`S = N L` shards: L shards per agent, at random, avoiding
    two shards of one class on one agent.

    Start from the stride assignment (agent i gets shards i, i + N, ..., of the
    label-sorted order: when each class spans at most N consecutive whole shards, no agent
    holds a class twice), then make ``sweeps * S`` random swaps of two shards of different
    agents, each kept only when it does not raise the number of repeated classes of the two
    agents. The proposals are symmetric, so this is a Markov chain whose stationary law is
    uniform over the assignments it can reach without repeats (the switch chain of random
    bipartite graphs with given degrees); a final random relabelling of the agents removes
    the stride's order.

    ``shard_classes``: the classes in each shard (one, or two where a shard straddles a
    class boundary).

    Examples
    --------
    >>> classes = [[0], [0], [1], [1], [2], [2]]  # 3 classes, 2 shards each
    >>> own = assign_shards(classes, 3, np.random.default_rng(1))
    >>> [sorted(c for s in np.flatnonzero(own == i) for c in classes[s]) for i in range(3)]
    [[0, 2], [1, 2], [0, 1]]
    """
    sets = [sorted({int(c) for c in cs}) for cs in shard_classes]
    n_shards = len(sets)
    width = 1 + max((c for cs in sets for c in cs), default=0)
    owner = (np.arange(n_shards) % agents).tolist()
    count = [0] * (agents * width)  # count[a * width + c]: shards of agent a with class c
    for s, a in enumerate(owner):
        for c in sets[s]:
            count[a * width + c] += 1

    def move(a: int, remove, add) -> int:
        """Apply the change to agent a's counts; the change in its repeated classes."""
        delta = 0
        for c in remove:
            count[a * width + c] -= 1
            delta -= count[a * width + c] >= 1
        for c in add:
            delta += count[a * width + c] >= 1
            count[a * width + c] += 1
        return delta

    proposals = rng.integers(n_shards, size=(sweeps * n_shards, 2))
    for s, t in proposals.tolist():  # setup only: O(1) work per proposed swap
        a, b = owner[s], owner[t]
        if a == b:
            continue
        if move(a, sets[s], sets[t]) + move(b, sets[t], sets[s]) <= 0:
            owner[s], owner[t] = b, a
        else:  # undo
            move(a, sets[t], sets[s])
            move(b, sets[s], sets[t])
    owner = np.array(owner, dtype=np.int64)
    relabel = rng.permutation(agents)
    return relabel[owner]


def label_histogram(labels, sizes, classes: int) -> np.ndarray:
    """Rows of each class on each agent, ``(N, K)``, for labels dealt in agent order.

    ``labels``: the class index (0..K-1) of the rows in dealt order (agent 0's rows, then
    agent 1's, ...); ``sizes``: each agent's row count.

    Examples
    --------
    >>> label_histogram(np.array([0, 0, 1, 2, 2, 2]), [3, 3], 3).tolist()
    [[2, 1, 0], [0, 0, 3]]
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    agent = np.repeat(np.arange(sizes.size), sizes)
    hist = np.zeros((sizes.size, classes), dtype=np.int64)
    np.add.at(hist, (agent, np.asarray(labels, dtype=np.int64)), 1)
    return hist


def label_skew(histogram) -> float:
    r"""Mean total-variation distance of the agents' label distributions from the pooled one.

    .. math:: \frac1N \sum_i \tfrac12 \sum_k \Big| \frac{h_{ik}}{m_i} - \frac{n_k}{n} \Big|,
              \qquad m_i = \sum_k h_{ik},\ n_k = \sum_i h_{ik},

    0 when every agent has the pooled class mix, close to :math:`1 - n_k/n` when every
    agent holds one class k.

    Examples
    --------
    >>> label_skew([[5, 5], [5, 5]]), label_skew([[10, 0], [0, 10]])
    (0.0, 0.5)
    """
    h = np.asarray(histogram, dtype=np.float64)
    pooled = h.sum(axis=0) / h.sum()
    own = h / np.maximum(h.sum(axis=1, keepdims=True), 1.0)
    return float(np.mean(0.5 * np.abs(own - pooled).sum(axis=1)))
