"""An isolation forest kept as plain arrays, for ``AEOutlierDetector``'s
isolation score.

The trees are grown level by level, all at once, straight into a few
arrays (each inner node's feature and threshold, each leaf's path length),
which is all that scoring needs. So a fitted detector holds numbers only
(it saves in :mod:`sklearn_ae`'s safe format, which holds no scikit-learn
objects); growing takes a few milliseconds where scikit-learn's
:class:`~sklearn.ensemble.IsolationForest` spends about 1 ms a tree; and
scoring walks every tree at once, a block of rows at a time, with no
temporary larger than a block. Each row's score depends on that row alone.
"""

import numpy as np
import scipy.sparse as sp
from sklearn.utils import check_random_state
from sklearn.utils.random import sample_without_replacement

# Rows scored at a time: the walk's temporaries are (rows, n_trees).
_BLOCK_ROWS = 1024


def average_path_length(n):
    """Average path length of an unsuccessful search in a binary search
    tree of ``n`` keys: the expected depth still to go in a leaf holding
    ``n`` training rows (Liu et al., 2008; as scikit-learn computes it)."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    more = n > 2
    out[more] = 2.0 * (np.log(n[more] - 1.0) + np.euler_gamma) - 2.0 * (n[more] - 1.0) / n[more]
    return out


def _round_down_to_float32(threshold):
    """The largest float32 at most ``threshold`` (float64): for a float32
    ``x``, ``x <= threshold`` exactly when ``x <= result``."""
    t32 = threshold.astype(np.float32)
    return np.where(t32 > threshold, np.nextafter(t32, np.float32(-np.inf)), t32)


# Rows (evenly spaced) whose per-feature median centres the values, and the
# columns densified at a time to take it from sparse rows.
_CENTER_ROWS = 1024
_CENTER_COLUMNS = 4096


def feature_centers(X):
    """Per-feature median of up to ``_CENTER_ROWS`` evenly spaced rows of
    ``X`` (dense or sparse), float64: the values the trees subtract before
    comparing in float32. The same for the same values, dense or sparse
    (0 for a sparse column that is mostly zeros)."""
    n_samples, n_features = X.shape
    rows = np.unique(
        np.linspace(0, n_samples - 1, min(n_samples, _CENTER_ROWS)).round().astype(np.intp)
    )
    sample = X.tocsr()[rows] if sp.issparse(X) else X[rows]
    centers = np.empty(n_features)
    for start in range(0, n_features, _CENTER_COLUMNS):
        part = sample[:, start : start + _CENTER_COLUMNS]
        part = part.toarray() if sp.issparse(part) else part
        centers[start : start + _CENTER_COLUMNS] = np.median(
            np.asarray(part, dtype=np.float64), axis=0
        )
    return centers


def _centred_float32(values, centers):
    """``values - centers`` in float64, then float32 (values beyond
    float32's range become infinite: the farthest side of every split)."""
    with np.errstate(over="ignore"):
        return np.subtract(values, centers, dtype=np.float64).astype(np.float32)


def _values(X, rows, columns, centers):
    """``X[rows[i], columns[i]] - centers[columns[i]]`` for every ``i``, as
    float32 (``X`` dense or CSR)."""
    values = X[rows, columns]
    if sp.issparse(values):  # scipy returns the pairs' values as a 1 x k matrix
        values = values.toarray()
    return _centred_float32(np.asarray(values).ravel(), centers[columns])


def grow_isolation_trees(X, *, random_state, n_trees=100, max_samples=256):
    """Grow an isolation forest on ``X`` and return it as arrays.

    Liu, Ting and Zhou's isolation forest as scikit-learn's
    :class:`~sklearn.ensemble.IsolationForest` grows it with its defaults:
    ``n_trees`` trees, each on ``min(max_samples, n_samples)`` rows drawn
    without replacement, split at random until a node holds one row (or
    only equal rows) or the depth reaches ``ceil(log2(rows))``; a split
    takes a feature drawn uniformly among those not constant on the node's
    rows, and a threshold drawn uniformly between their smallest and largest
    value (in float32, as scikit-learn compares them, but of the values
    less each feature's median, :func:`feature_centers`); a row goes left
    when its value is at most the threshold. Centring moves no split (a
    threshold drawn between the smallest and largest value moves with
    them), but keeps float32's resolution where a feature's offset is large
    against its spread: timestamps of about 1.6e9 s vary in float32 steps
    of 128 s, where scikit-learn's forest scores a feature of such values
    at chance. Grown level by level, all trees at
    once (scikit-learn grows one tree at a time, at about 1 ms each). The
    same algorithm, not the same random draws: the forests differ from
    scikit-learn's for a given seed as two of its seeds do.

    Each tree is laid out as a complete binary tree of depth ``D``: node
    ``p``'s children are ``2p + 1`` and ``2p + 2``, so a walk needs no child
    table. A leaf above depth ``D`` becomes a chain of nodes that always go
    left (threshold ``+inf``) down to depth ``D``. Returns a dict:
    ``feature`` and ``threshold`` (float32, rounded down) of the ``2**D -
    1`` inner nodes, ``leaf_path`` of the ``2**D`` leaves (a leaf's depth
    plus :func:`average_path_length` of its training rows), each with one
    row per tree; ``depth`` ``D``; ``normalizer``, the number of trees
    times the average path length of a tree's rows; and ``center``, the
    per-feature values subtracted before comparing (float64).
    """
    rng = check_random_state(random_state)
    if sp.issparse(X):
        X = sp.csr_matrix(X)
    else:
        X = np.asarray(X)
    if X.dtype.kind != "f":
        X = X.astype(np.float64)
    centers = feature_centers(X)
    n_samples, n_features = X.shape
    m = min(max_samples, n_samples)
    depth = int(np.ceil(np.log2(max(m, 2))))
    n_inner = 2**depth - 1
    feature = np.zeros((n_trees, n_inner), dtype=np.intp)
    threshold = np.full((n_trees, n_inner), np.inf, dtype=np.float32)
    leaf_path = np.zeros((n_trees, n_inner + 1))
    rows = np.stack([
        sample_without_replacement(n_samples, m, random_state=rng) for _ in range(n_trees)
    ]).ravel()
    tree = np.repeat(np.arange(n_trees), m)
    position = np.zeros(n_trees * m, dtype=np.intp)
    active = np.arange(n_trees * m)  # rows whose node is not a leaf yet

    def make_leaves(t, p, level, counts):
        # A leaf at (t, p) of `level`, reached by `counts` training rows.
        chain = depth - level  # left steps down to depth D: p -> 2p + 1
        leaf_path[t, (p + 1) * 2**chain - 1 - n_inner] = level + average_path_length(counts)

    stride = 2 ** (depth + 1)  # more than any position at any level
    for level in range(depth + 1):
        if len(active) == 0:
            break
        t, p = tree[active], position[active]
        nodes, node_of, counts = np.unique(
            t * stride + p, return_inverse=True, return_counts=True
        )
        node_t, node_p = np.divmod(nodes, stride)
        split = counts >= 2 if level < depth else np.zeros(len(nodes), dtype=bool)
        chosen = np.full(len(nodes), -1)
        low = np.zeros(len(nodes), dtype=np.float32)
        high = np.zeros(len(nodes), dtype=np.float32)
        row_values = np.zeros(len(active), dtype=np.float32)  # of the chosen features
        # A random feature per node, drawn again where it is constant on the
        # node's rows: uniform among the features that are not.
        pending = split.copy()
        for _ in range(8):
            if not pending.any():
                break
            draw = np.full(len(nodes), -1)
            draw[pending] = rng.randint(n_features, size=int(pending.sum()))
            on = np.flatnonzero(pending[node_of])
            values = _values(X, rows[active[on]], draw[node_of[on]], centers)
            lo = np.full(len(nodes), np.inf, dtype=np.float32)
            hi = np.full(len(nodes), -np.inf, dtype=np.float32)
            np.minimum.at(lo, node_of[on], values)
            np.maximum.at(hi, node_of[on], values)
            found = pending & (hi > lo)
            chosen[found], low[found], high[found] = draw[found], lo[found], hi[found]
            kept = found[node_of[on]]
            row_values[on[kept]] = values[kept]
            pending &= ~found
        for j in np.flatnonzero(pending):  # rare: try every feature
            members = np.flatnonzero(node_of == j)
            block = X[rows[active[members]]]
            block = block.toarray() if sp.issparse(block) else block
            block = _centred_float32(block, centers)
            varying = np.flatnonzero(block.max(axis=0) > block.min(axis=0))
            if len(varying):
                f = varying[rng.randint(len(varying))]
                chosen[j], low[j], high[j] = f, block[:, f].min(), block[:, f].max()
                row_values[members] = block[:, f]
        split = chosen >= 0
        cut = low.astype(np.float64) + rng.uniform(size=len(nodes)) * (
            high.astype(np.float64) - low
        )
        cut = np.where(cut >= high, low, cut)  # as scikit-learn: low <= cut < high
        cut = _round_down_to_float32(cut)  # the same sides for float32 values
        feature[node_t[split], node_p[split]] = chosen[split]
        threshold[node_t[split], node_p[split]] = cut[split]
        leaf = ~split
        make_leaves(node_t[leaf], node_p[leaf], level, counts[leaf])
        going = split[node_of]
        moving = active[going]
        right = row_values[going] > cut[node_of[going]]
        position[moving] = 2 * position[moving] + 1 + right
        active = moving
    return {
        "feature": feature,
        "threshold": threshold,
        "leaf_path": leaf_path,
        "depth": depth,
        "normalizer": float(n_trees * average_path_length([m])[0]),
        "center": centers,
    }


def isolation_scores(trees, X):
    """Return each row's anomaly score under ``trees``, float64 in (0, 1]:
    ``2 ** -(mean path length / average path length)``, IsolationForest's
    ``-score_samples`` (higher = easier to isolate)."""
    n_trees, n_inner = trees["feature"].shape
    # 32-bit indices where they fit (a quarter faster than 64-bit ones).
    n_features = X.shape[1]
    index = np.int32 if _BLOCK_ROWS * n_features + n_trees * (n_inner + 1) < 2**31 else np.intp
    feature = trees["feature"].ravel().astype(index)
    threshold = trees["threshold"].ravel()
    leaf_path = trees["leaf_path"].ravel()
    centers = trees.get("center")
    inner_offset = np.arange(n_trees, dtype=index) * n_inner
    leaf_offset = np.arange(n_trees, dtype=index) * (n_inner + 1) - n_inner
    if sp.issparse(X):
        X = X.tocsr()  # COO and others cannot be sliced by rows
    n_samples = X.shape[0]
    out = np.empty(n_samples)
    for start in range(0, n_samples, _BLOCK_ROWS):
        block = X[start : start + _BLOCK_ROWS]
        if sp.issparse(block):
            block = block.toarray()
        if centers is None:  # a forest saved before the trees were centred
            block = np.ascontiguousarray(block, dtype=np.float32)
        else:
            block = np.ascontiguousarray(_centred_float32(block, centers))
        flat = block.ravel()
        row_offset = (np.arange(len(block), dtype=index) * n_features)[:, None]
        node = np.zeros((len(block), n_trees), dtype=index)
        for _ in range(trees["depth"]):
            inner = node + inner_offset
            values = np.take(flat, np.take(feature, inner) + row_offset)
            node = 2 * node + 1 + (values > np.take(threshold, inner))
        out[start : start + len(block)] = np.take(leaf_path, node + leaf_offset).sum(axis=1)
    normalizer = trees["normalizer"]
    if normalizer == 0:  # one training row: IsolationForest's score is then 0.5
        return np.full(n_samples, 0.5)
    return 2.0 ** (-out / normalizer)
