"""The isolation score's forest, grown as arrays (``sklearn_ae/_isolation.py``)."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import spearmanr
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

from sklearn_ae._isolation import (
    _BLOCK_ROWS,
    average_path_length,
    grow_isolation_trees,
    isolation_scores,
)


def _data(n_rows, n_features, seed=0):
    """Rows of mixed scales, a column of ties, a constant column, and 2%
    outliers (rows scaled by 3); labels 1 = outlier."""
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n_rows, n_features)) * rng.uniform(0.01, 100, n_features)
    X[:, 0] = np.round(X[:, 0] / 50)
    y = np.zeros(n_rows)
    y[: max(1, n_rows // 50)] = 1
    X[y == 1] *= 3
    X[:, 1] = 7.0
    return X, y


@pytest.mark.parametrize("n_rows, n_features", [(300, 7), (3000, 30), (600, 300)])
def test_forest_scores_as_scikit_learns_isolation_forest(n_rows, n_features):
    # The same algorithm with other random draws: the scores agree with
    # IsolationForest's as two of its seeds agree with each other.
    X, y = _data(n_rows, n_features)
    ours = isolation_scores(grow_isolation_trees(X, random_state=0), X)
    theirs = [-IsolationForest(random_state=s).fit(X).score_samples(X) for s in (0, 1)]
    assert spearmanr(ours, theirs[0])[0] > spearmanr(theirs[1], theirs[0])[0] - 0.05
    assert abs(roc_auc_score(y, ours) - roc_auc_score(y, theirs[0])) < 0.02
    assert abs(ours.mean() - theirs[0].mean()) < 0.015


def test_forest_shape_and_path_lengths():
    trees = grow_isolation_trees(_data(300, 7)[0], random_state=0)
    depth = trees["depth"]
    assert depth == 8  # ceil(log2(256)): IsolationForest's height limit
    assert trees["feature"].shape == trees["threshold"].shape == (100, 2**depth - 1)
    assert trees["leaf_path"].shape == (100, 2**depth)
    assert trees["threshold"].dtype == np.float32
    assert all(isinstance(v, (np.ndarray, int, float)) for v in trees.values())
    assert trees["normalizer"] == pytest.approx(100 * average_path_length([256])[0])
    # The constant column is never split on; a leaf's path is at least its depth.
    split = np.isfinite(trees["threshold"])
    assert not np.any(trees["feature"][split] == 1)
    reached = trees["leaf_path"] > 0
    assert np.all(trees["leaf_path"][reached] >= 1)


def test_two_rows_are_isolated_by_one_split():
    trees = grow_isolation_trees(np.array([[0.0], [1.0]]), random_state=0)
    assert trees["depth"] == 1
    # Every tree splits once, at a cut in [0, 1) (thresholds are kept less
    # the feature's median, 0.5): each row alone in a leaf of depth 1, so
    # its mean path is 1 = average_path_length(2), score 1/2.
    assert trees["center"][0] == 0.5
    cut = trees["threshold"][:, 0] + trees["center"][0]
    assert np.all((cut >= 0) & (cut < 1))
    np.testing.assert_array_equal(isolation_scores(trees, np.array([[0.0], [1.0]])), 0.5)


def test_constant_or_single_rows_give_one_leaf():
    for X in (np.ones((50, 3)), np.array([[1.0, 2.0]])):
        trees = grow_isolation_trees(X, random_state=0)
        assert not np.isfinite(trees["threshold"]).any()
        scores = isolation_scores(trees, np.r_[X, 100 + X])
        assert np.all(scores == scores[0])


def test_sparse_rows_grow_and_score_as_dense():
    X = _data(300, 7)[0]
    X[np.abs(X) < 1] = 0
    dense = grow_isolation_trees(X, random_state=0)
    for fmt in (sp.csr_matrix, sp.csc_matrix, sp.coo_matrix):
        trees = grow_isolation_trees(fmt(X), random_state=0)
        for key in ("feature", "threshold", "leaf_path"):
            np.testing.assert_array_equal(trees[key], dense[key])
        np.testing.assert_array_equal(isolation_scores(trees, fmt(X)), isolation_scores(dense, X))


def test_a_rows_score_does_not_depend_on_its_block():
    X = _data(2 * _BLOCK_ROWS + 7, 5)[0]
    trees = grow_isolation_trees(X, random_state=0)
    full = isolation_scores(trees, X)
    rows = np.r_[3, _BLOCK_ROWS + 1, 2 * _BLOCK_ROWS + 6]
    np.testing.assert_array_equal(isolation_scores(trees, X[rows]), full[rows])
    np.testing.assert_array_equal(isolation_scores(trees, X[5:6]), full[5:6])


def test_same_seed_same_forest():
    X = _data(500, 6)[0]
    a, b = (grow_isolation_trees(X, random_state=3) for _ in range(2))
    for key in ("feature", "threshold", "leaf_path"):
        np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.parametrize("offset", [1e8, 1.6e9])
def test_a_large_offset_keeps_the_features_resolution(offset):
    # float32 steps are 8 at 1e8 and 128 at 1.6e9: compared raw, a feature
    # of spread 1 there takes a few values, and scikit-learn's forest (and
    # this one before its values were centred) scored these outliers at
    # ROC-AUC 0.79 and 0.5. Centred on each feature's median, the forest
    # ranks them as on the centred data.
    rng = np.random.RandomState(0)
    X = rng.randn(2000, 5)
    y = np.zeros(2000)
    y[:40] = 1
    X[:40] += 3 * rng.choice([-1, 1], (40, 5))
    plain = isolation_scores(grow_isolation_trees(X, random_state=0), X)
    shifted = isolation_scores(grow_isolation_trees(X + offset, random_state=0), X + offset)
    assert roc_auc_score(y, shifted) > 0.99
    assert abs(roc_auc_score(y, shifted) - roc_auc_score(y, plain)) < 0.01


def test_forests_saved_without_centers_score_as_before():
    # A forest grown before the centring (no "center") compares raw float32
    # values, as it did.
    X = np.random.RandomState(1).randn(300, 4) + 5.0
    trees = grow_isolation_trees(X, random_state=0)
    old = {k: v for k, v in trees.items() if k != "center"}
    old["threshold"] = (trees["threshold"] + trees["center"][trees["feature"]]).astype(np.float32)
    np.testing.assert_allclose(isolation_scores(old, X), isolation_scores(trees, X), atol=1e-6)
