"""dask and dask-ml (issue 16): Incremental training over the blocks of a
dask array, lazy inference with ParallelPostFit, and a grid search on a
small local Dask cluster through joblib's dask backend. Each test starts
and stops its own cluster or uses dask's local threads."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from sklearn_ae import AEOutlierDetector, AutoencoderTransformer, VAETransformer

da = pytest.importorskip("dask.array")
dask_ml_wrappers = pytest.importorskip("dask_ml.wrappers")
distributed = pytest.importorskip("distributed")

FAST = dict(n_components=4, hidden_layer_sizes=(16,), device="cpu", random_state=0)


def _digits():
    return load_digits().data[:800]


def test_incremental_trains_over_the_blocks():
    X = _digits()
    dX = da.from_array(X, chunks=(100, X.shape[1]))  # 8 blocks
    inc = dask_ml_wrappers.Incremental(
        AutoencoderTransformer(batch_size=32, **FAST), shuffle_blocks=False
    )
    inc.fit(dX)
    est = inc.estimator_
    # One partial_fit call (one epoch) per block, on every row.
    assert est.n_iter_ == dX.numblocks[0] == 8
    assert est.n_samples_seen_ == len(X)
    np.testing.assert_allclose(est.mean_, X.mean(axis=0), rtol=1e-9, atol=1e-12)
    # The same as calling partial_fit on the blocks in order.
    by_hand = AutoencoderTransformer(batch_size=32, **FAST)
    for start in range(0, len(X), 100):
        by_hand.partial_fit(X[start : start + 100])
    np.testing.assert_allclose(
        est.transform(X[:50]), by_hand.transform(X[:50]), rtol=1e-5, atol=1e-6
    )
    # Incremental also gives lazy inference.
    Z = inc.transform(dX)
    assert isinstance(Z, da.Array)
    np.testing.assert_allclose(Z.compute(), est.transform(X), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "Estimator, method",
    [
        (AutoencoderTransformer, "transform"),
        (AutoencoderTransformer, "score_samples"),
        (VAETransformer, "transform"),
        (AEOutlierDetector, "predict"),
        (AEOutlierDetector, "score_samples"),
    ],
)
def test_parallel_post_fit_is_lazy(Estimator, method):
    X = _digits()
    dX = da.from_array(X, chunks=(200, X.shape[1]))
    model = dask_ml_wrappers.ParallelPostFit(Estimator(max_iter=2, **FAST))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter=2
        model.fit(X)
    if hasattr(model, method):
        lazy = getattr(model, method)(dX)
    else:  # what ParallelPostFit does not wrap: map_blocks, as it does
        lazy = dX.map_blocks(
            getattr(model.estimator, method), drop_axis=1, dtype=np.float64
        )
    assert isinstance(lazy, da.Array)
    expected = getattr(model.estimator, method)(X)
    np.testing.assert_allclose(lazy.compute(), expected, rtol=1e-6, atol=1e-6)


_SCORED_ON = []


def _score_on_worker(est, X_test, y=None):
    # distributed.get_worker raises ValueError outside a dask worker. The
    # task reaches the worker serialized; this function goes by reference
    # (module level), and the cluster runs in this process, so the list is
    # the test's.
    _SCORED_ON.append(distributed.get_worker().address)
    return est.score(X_test)


def test_grid_search_on_a_local_cluster():
    from joblib import parallel_backend
    from sklearn.model_selection import GridSearchCV

    X = _digits()[:300]
    workers = _SCORED_ON
    workers.clear()
    grid = GridSearchCV(
        AutoencoderTransformer(max_iter=3, **FAST),
        {"n_components": [2, 4], "learning_rate": [1e-3, 3e-3]},
        cv=2,
        n_jobs=-1,
        scoring=_score_on_worker,
    )
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        import warnings

        with warnings.catch_warnings(), parallel_backend("dask"):
            warnings.simplefilter("ignore")
            grid.fit(X)
        # Every fit was scored on this cluster's worker.
        assert set(workers) == set(client.scheduler_info()["workers"])
        assert len(workers) == 8
    assert len(grid.cv_results_["params"]) == 4
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
    assert grid.best_estimator_.n_components in (2, 4)
