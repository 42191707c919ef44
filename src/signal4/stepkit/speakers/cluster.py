"""Who is who: clustering voice embeddings, choosing the speaker count, smoothing in time.

All with numpy and scipy (no scikit-learn, whose import alone costs 0.7-1 s):

* :func:`choose_k` -- today's rule: average-linkage clusterings on cosine distance for
  k = 2..max, keep the k with the best mean silhouette (none above 0.15: one speaker).
  ``scipy.cluster.hierarchy.linkage(method="average", metric="cosine")`` cut with
  ``fcluster(maxclust)`` gives the partitions scikit-learn's ``AgglomerativeClustering``
  gives, and :func:`silhouette` its ``silhouette_score(metric="cosine")``
  (``tests/processing_steps/test_diarize_speakers.py`` checks both on the sample).
* :func:`speakers` -- that first clustering, then centroids re-estimated (weighted
  spherical k-means), clusters too small to be a speaker folded into their nearest
  neighbour, and every cluster tried for a split into two voices. A silhouette picks the
  coarsest split well (male against female voices) but not two similar voices inside a
  cluster: a split is kept when its own silhouette, the distance between its halves'
  centroids and the speech on each side all say two voices.
* :func:`viterbi` -- a label per window along time, rewarding similarity to a speaker's
  centroid and charging for a change of speaker inside one speech region.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Below this mean silhouette of the best first clustering, one speaker is assumed.
MIN_SILHOUETTE = 0.15


@dataclass(frozen=True)
class SplitRule:
    """When a cluster is two voices (chosen on benchmarks/conversations.py; see README)."""

    #: the split's own mean silhouette must reach this
    silhouette: float = 0.26
    #: the cosine between the halves' centroids must stay below this
    cosine: float = 0.92
    #: seconds of speech each half needs: this, or ``share`` of all clustered speech if
    #: that is less (a short recording)
    seconds: float = 4.0
    share: float = 0.2

    def min_weight(self, total: float) -> float:
        """The least speech (seconds) of a speaker, out of ``total`` clustered seconds."""
        return min(self.seconds, self.share * total)


def normalise(x: Any) -> Any:
    """Rows of ``x`` scaled to unit length (zero rows stay zero)."""
    import numpy as np

    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def cosine_distances(x: Any) -> Any:
    """The [n, n] cosine distances of the rows of ``x``, in [0, 2], zero on the diagonal."""
    import numpy as np

    xn = normalise(np.asarray(x, dtype=np.float64))
    d = np.clip(1.0 - xn @ xn.T, 0.0, 2.0)
    np.fill_diagonal(d, 0.0)
    return d


def canonical(labels: Any) -> Any:
    """Labels renumbered 0, 1, ... in the order they first appear."""
    import numpy as np

    labels = np.asarray(labels)
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inverse].astype(int)


def silhouette(distances: Any, labels: Any) -> float:
    """The mean silhouette of ``labels`` under precomputed ``distances``.

    As scikit-learn's ``silhouette_score``: a point alone in its cluster scores 0; needs
    2 <= clusters <= points - 1 (else -1 is returned, the worst score).
    """
    import numpy as np

    labels = canonical(labels)
    n = len(labels)
    k = int(labels.max()) + 1 if n else 0
    if k < 2 or k > n - 1:
        return -1.0
    onehot = np.eye(k)[labels]
    counts = onehot.sum(axis=0)
    sums = distances @ onehot  # [n, k]: distance from each point to each cluster, summed
    own = counts[labels]
    a = sums[np.arange(n), labels] / np.maximum(own - 1, 1)
    mean_other = sums / counts
    mean_other[np.arange(n), labels] = np.inf
    b = mean_other.min(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (b - a) / np.maximum(a, b)
    s = np.where((own > 1) & np.isfinite(s), s, 0.0)
    return float(s.mean())


def linkage_partitions(x: Any, ks: range) -> dict[int, Any]:
    """Average-linkage (cosine) partitions of the rows of ``x`` into k clusters, per k."""
    import numpy as np
    from scipy.cluster.hierarchy import fcluster, linkage

    tree = linkage(np.asarray(x, dtype=np.float64), method="average", metric="cosine")
    return {k: canonical(fcluster(tree, k, criterion="maxclust")) for k in ks}


def choose_k(
    x: Any, max_k: int, min_silhouette: float = MIN_SILHOUETTE
) -> tuple[int, Any, dict[int, float]]:
    """Pick k by silhouette among average-linkage partitions: (k, labels, score per k)."""
    import numpy as np

    n = len(x)
    best: tuple[float, int, Any] = (min_silhouette, 1, np.zeros(n, dtype=int))
    ks = range(2, min(max_k, n - 1) + 1)
    if not ks:
        return 1, best[2], {}
    distances = cosine_distances(x)
    scores = {}
    for k, labels in linkage_partitions(x, ks).items():
        scores[k] = silhouette(distances, labels)
        if scores[k] > best[0]:
            best = (scores[k], k, labels)
    return best[1], best[2], scores


def centroids(xn: Any, labels: Any, weights: Any, k: int) -> Any:
    """Unit-length weighted mean of each cluster's rows ([k, dim])."""
    import numpy as np

    onehot = np.eye(k)[labels] * weights[:, None]
    return normalise(onehot.T @ xn)


def spherical_kmeans(
    xn: Any, k: int, weights: Any, *, restarts: int = 8, iterations: int = 30, seed: int = 0
) -> Any:
    """Weighted k-means on the unit sphere (k-means++ starts, fixed seed): the labels."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = len(xn)
    best: tuple[float, Any] | None = None
    for _ in range(restarts):
        chosen = [int(rng.integers(n))]
        for _ in range(1, k):
            far = np.clip(1.0 - xn @ xn[chosen].T, 0.0, None).min(axis=1) ** 2 * weights
            total = far.sum()
            chosen.append(int(rng.choice(n, p=far / total)) if total > 0 else int(rng.integers(n)))
        c = xn[chosen]
        labels = np.argmax(xn @ c.T, axis=1)
        for _ in range(iterations):
            c = np.where(
                np.bincount(labels, minlength=k)[:, None] > 0, centroids(xn, labels, weights, k), c
            )
            new = np.argmax(xn @ c.T, axis=1)
            if np.array_equal(new, labels):
                break
            labels = new
        score = float(np.sum(weights * np.max(xn @ c.T, axis=1)))
        if best is None or score > best[0]:
            best = (score, labels)
    assert best is not None
    return canonical(best[1])


def refine(xn: Any, labels: Any, weights: Any, rounds: int = 10) -> Any:
    """Re-estimate centroids and reassign until stable (clusters may empty out)."""
    import numpy as np

    labels = canonical(labels)
    for _ in range(rounds):
        k = int(labels.max()) + 1
        new = canonical(np.argmax(xn @ centroids(xn, labels, weights, k).T, axis=1))
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


def absorb_small(xn: Any, labels: Any, weights: Any, min_weight: float) -> Any:
    """Fold clusters with less than ``min_weight`` into their members' nearest other cluster."""
    import numpy as np

    labels = canonical(labels)
    while labels.max() > 0:
        k = int(labels.max()) + 1
        totals = np.bincount(labels, weights=weights, minlength=k)
        small = int(np.argmin(totals))
        if totals[small] >= min_weight:
            break
        c = centroids(xn, labels, weights, k)
        members = labels == small
        scores = xn[members] @ c.T
        scores[:, small] = -np.inf
        labels = labels.copy()
        labels[members] = np.argmax(scores, axis=1)
        labels = canonical(labels)
    return labels


def split(xn: Any, weights: Any, rule: SplitRule, min_weight: float) -> Any | None:
    """Two-voice labels for one cluster's rows if ``rule`` says it holds two, else None."""
    import numpy as np

    if len(xn) < 3:
        return None
    labels = spherical_kmeans(xn, 2, weights)
    if labels.max() < 1:
        return None
    sides = np.bincount(labels, weights=weights, minlength=2)
    if sides.min() < min_weight:
        return None
    c = centroids(xn, labels, weights, 2)
    if float(c[0] @ c[1]) >= rule.cosine:
        return None
    if silhouette(cosine_distances(xn), labels) < rule.silhouette:
        return None
    return labels


def speakers(
    x: Any,
    weights: Any,
    *,
    max_k: int,
    fixed_k: int | None = None,
    rule: SplitRule | None = None,
) -> Any:
    """Speaker labels of the rows of ``x`` (one embedding per stretch of speech).

    ``weights`` are the seconds each row stands for. With ``fixed_k``, the average-linkage
    partition into that many clusters, refined; otherwise :func:`choose_k`, refined, small
    clusters absorbed, and clusters split while :class:`SplitRule` finds two voices.
    """
    import numpy as np

    rule = rule or SplitRule()
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=int)
    xn = normalise(np.asarray(x, dtype=np.float64))
    weights = np.asarray(weights, dtype=np.float64)
    if fixed_k is not None:
        k = min(fixed_k, n)
        if k <= 1:
            return np.zeros(n, dtype=int)
        return refine(xn, linkage_partitions(xn, range(k, k + 1))[k], weights)
    _, labels, _ = choose_k(xn, max_k)
    min_weight = rule.min_weight(float(weights.sum()))
    labels = absorb_small(xn, refine(xn, labels, weights), weights, min_weight)
    tried: set[tuple[int, ...]] = set()
    while labels.max() + 1 < max_k:
        for j in range(int(labels.max()) + 1):
            members = np.flatnonzero(labels == j)
            key = tuple(members.tolist())
            if key in tried:
                continue
            tried.add(key)
            halves = split(xn[members], weights[members], rule, min_weight)
            if halves is not None:
                labels = labels.copy()
                labels[members[halves == 1]] = labels.max() + 1
                labels = absorb_small(xn, refine(xn, labels, weights), weights, min_weight)
                break
        else:
            break
    return canonical(labels)


def viterbi(scores: Any, regions: Any, switch_cost: float) -> Any:
    """The best label path through ``scores`` [n, k] (higher is better).

    Changing label between two consecutive rows of the same speech region (``regions``:
    a region id per row) costs ``switch_cost``; between regions it is free.
    """
    import numpy as np

    n, k = scores.shape
    if n == 0:
        return np.zeros(0, dtype=int)
    costs = (np.zeros((k, k)), switch_cost * (1.0 - np.eye(k)))  # [from, to]
    total = scores[0].astype(np.float64)
    back = np.zeros((n, k), dtype=int)
    for t in range(1, n):
        step = total[:, None] - costs[int(regions[t] == regions[t - 1])]
        back[t] = np.argmax(step, axis=0)
        total = step[back[t], np.arange(k)] + scores[t]
    path = np.zeros(n, dtype=int)
    path[-1] = int(np.argmax(total))
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path
