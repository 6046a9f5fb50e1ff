"""Issue 12, items 1-10: divergence, failed fits, threads, warm starts.

Each test names the item of the issue it covers; each failed on the code
before the fix.
"""

import threading
import warnings

import numpy as np
import pytest
import torch
from joblib import parallel_backend
from skorch.callbacks import Callback
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV

from sklearn_ae import AEOutlierDetector, AutoencoderTransformer, VAETransformer
from sklearn_ae._base import _threads_are_per_thread
from sklearn_ae._engine import DIVERGENCE_FACTOR, diverged

CPU = dict(device="cpu")


def issue_X():
    return np.random.RandomState(0).standard_normal((64, 8))


class Raise(Callback):
    """Raises ``error`` at ``hook`` in epoch ``epoch`` (1-based)."""

    def __init__(self, hook="on_batch_end", epoch=1, error=KeyboardInterrupt):
        self.hook = hook
        self.epoch = epoch
        self.error = error

    def _maybe_raise(self, net, hook):
        if hook == self.hook and (hook == "on_train_begin" or len(net.history) == self.epoch):
            raise self.error("raised by the test")

    def on_train_begin(self, net, **kwargs):
        self._maybe_raise(net, "on_train_begin")

    def on_epoch_begin(self, net, **kwargs):
        self._maybe_raise(net, "on_epoch_begin")

    def on_batch_end(self, net, **kwargs):
        self._maybe_raise(net, "on_batch_end")

    def on_epoch_end(self, net, **kwargs):
        self._maybe_raise(net, "on_epoch_end")


# ----------------------------------------------------------- items 1 and 2
def test_divergence_rule():
    """Item 1: the documented rule, on numbers."""
    assert diverged(float("nan"), 1.0)
    assert diverged(float("inf"), 1.0)
    assert not diverged(2.0, 1.0)
    assert not diverged(1.0 + 0.9 * DIVERGENCE_FACTOR, 1.0)
    assert diverged(1.0 + 1.1 * DIVERGENCE_FACTOR, 1.0)
    # Losses near 0 are measured against a floor of 1, not against 0.
    assert not diverged(100.0, 1e-6)
    # Negative losses (a VAE's negative ELBO): measured on |initial loss|.
    assert not diverged(-500.0, -10.0)
    assert diverged(-10.0 + 11 * DIVERGENCE_FACTOR, -10.0)


DIVERGING = [
    AutoencoderTransformer(hidden_layer_sizes=(8,), learning_rate=1e3, max_iter=20, **CPU),
    AutoencoderTransformer(
        input_shape=(2, 2, 2), hidden_layer_sizes=(4,), learning_rate=1e3, max_iter=20, **CPU
    ),
    AutoencoderTransformer(
        input_shape=(4, 2), hidden_layer_sizes=(4,), learning_rate=1e3, max_iter=20, **CPU
    ),
    AEOutlierDetector(learning_rate=1e3, max_iter=20, **CPU),
    AEOutlierDetector(learning_rate=1e6, max_iter=20, **CPU),
]


@pytest.mark.parametrize("estimator", DIVERGING, ids=["mlp", "conv", "lstm", "od", "od-1e6"])
def test_diverging_training_raises_naming_learning_rate(estimator):
    """Item 1: the loss went from 1.1 to 1e26 and fit returned normally."""
    with pytest.raises(ValueError, match="diverged.*learning_rate"):
        estimator.fit(issue_X())
    with pytest.raises(NotFittedError):
        estimator.score_samples(issue_X())


def test_divergence_without_scaling_points_at_the_scaling():
    # A VAE on values of 1e10 with standardize=False diverged at any
    # learning rate (1e-8 here), and the message only suggested a smaller one.
    X = np.random.RandomState(0).randn(40, 6) * 1e10
    vae = VAETransformer(
        2, standardize=False, learning_rate=1e-8, max_iter=2, random_state=0, **CPU
    )
    with pytest.raises(ValueError, match=r"diverged.*standardize=False.*StandardScaler"):
        vae.fit(X)


BLOWN_UP = [
    AEOutlierDetector(learning_rate=1e30, max_iter=1, **CPU),
    AutoencoderTransformer(learning_rate=1e30, max_iter=1, **CPU),
    VAETransformer(learning_rate=1e30, max_iter=1, **CPU),
    AutoencoderTransformer(
        input_shape=(4, 2), hidden_layer_sizes=(4,), learning_rate=1e30, max_iter=1, **CPU
    ),
]


@pytest.mark.parametrize("estimator", BLOWN_UP, ids=["od", "ae", "vae", "lstm"])
def test_blow_up_in_the_last_step_is_caught(estimator):
    """Item 2: one batch, one epoch: the recorded loss predates the step."""
    with pytest.raises(ValueError, match="diverged.*learning_rate"):
        estimator.fit(issue_X())


def test_detector_with_non_finite_training_scores_does_not_fit(monkeypatch):
    """Item 2: a detector never calls everything normal because its network
    broke: non-finite scores of the training data fail the fit."""
    detector = AEOutlierDetector(max_iter=2, random_state=0, **CPU)
    # _parts: the reconstruction errors that fit and score_samples build on.
    monkeypatch.setattr(
        AEOutlierDetector, "_parts", lambda self, X: np.full((len(X), 1), np.inf)
    )
    with pytest.raises(ValueError, match="learning_rate"):
        detector.fit(issue_X())
    with pytest.raises(NotFittedError):
        detector.predict(issue_X())


# ------------------------------------------------------------------ item 3
X_HUGE = np.array([[1e30], [0.4]], np.float32)
X_HUGE4 = np.array([[1e30] * 4, [0.4] * 4], np.float32)

OVERFLOWING = [
    (AutoencoderTransformer(n_components=1, hidden_layer_sizes=(), max_iter=1, **CPU), X_HUGE),
    (
        AutoencoderTransformer(
            n_components=1, input_shape=(1, 2, 2), hidden_layer_sizes=(2,), max_iter=1, **CPU
        ),
        X_HUGE4,
    ),
    (
        AutoencoderTransformer(
            n_components=1, input_shape=(2, 2), hidden_layer_sizes=(2,), max_iter=1, **CPU
        ),
        X_HUGE4,
    ),
    (
        AEOutlierDetector(
            backbone="vae", n_components=1, hidden_layer_sizes=(), max_iter=1, **CPU
        ),
        X_HUGE,
    ),
    (
        AEOutlierDetector(
            backbone=AutoencoderTransformer(
                n_components=1, hidden_layer_sizes=(), max_iter=1, **CPU
            ),
        ),
        X_HUGE,
    ),
]


@pytest.mark.parametrize(
    "estimator, X", OVERFLOWING, ids=["mlp", "conv", "lstm", "od-vae", "od-ae-backbone"]
)
def test_float32_scores_are_finite_where_float64_is(estimator, X):
    """Item 3: errors in input units overflowed float32 to -inf."""
    scores = estimator.fit(X).score_samples(X)
    assert np.all(np.isfinite(scores))
    scores64 = estimator.score_samples(X.astype(np.float64))
    np.testing.assert_allclose(scores, scores64, rtol=1e-5)


@pytest.mark.parametrize("network", [{}, {"input_shape": (1, 2, 3)}, {"input_shape": (3, 2)}],
                         ids=["mlp", "conv", "lstm"])
def test_new_rows_near_float32s_range_give_no_nan(network):
    """Finite float32 rows near float32's range (3.4e38), far beyond the
    training rows, overflowed the float32 network: inf - inf made NaN codes
    and NaN scores. They are computed again in float64: scores as the
    float64 input's, codes as large numbers or the infinities of overflow
    (as PCA's), never NaN; the other rows are untouched."""
    rng = np.random.RandomState(0)
    X = rng.randn(200, 6)
    X[:, 3] = X[:, 0] * X[:, 1]
    ae = AutoencoderTransformer(
        n_components=2, hidden_layer_sizes=(8,), max_iter=5, early_stopping=False,
        batch_norm=False, **network, **CPU,
    ).fit(X)
    far = np.vstack([X[:3], np.sign(rng.randn(3, 6)) * 3e38, X[3:6]]).astype(np.float32)
    codes = ae.transform(far)
    assert not np.isnan(codes).any()
    assert np.isinf(codes[3:6]).any()  # overflow here, as PCA's float32 codes
    scores = ae.score_samples(far)
    assert not np.isnan(scores).any()
    np.testing.assert_allclose(scores, ae.score_samples(far.astype(np.float64)), rtol=1e-5)
    if not network:  # sparse rows (COO: not row-indexable) take the same path
        import scipy.sparse as sp

        np.testing.assert_allclose(ae.score_samples(sp.coo_matrix(far)), scores, rtol=1e-5)
    near = np.r_[0:3, 6:9]  # as without the far rows, to float32 rounding
    np.testing.assert_allclose(codes[near], ae.transform(far[near]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores[near], ae.score_samples(far[near]), rtol=1e-5)


# ------------------------------------------------------------------ item 4
@pytest.mark.parametrize(
    "estimator",
    [
        AutoencoderTransformer(batch_size=1, early_stopping=False, max_iter=2, **CPU),
        VAETransformer(batch_size=1, early_stopping=False, max_iter=2, **CPU),
        AEOutlierDetector(batch_size=1, batch_norm=False, max_iter=2, **CPU),
        AutoencoderTransformer(
            batch_size=1, early_stopping=False, max_iter=2, noise="mask", dropout=0.2, **CPU
        ),
    ],
    ids=["ae", "vae", "od", "ae-noise"],
)
def test_batch_size_one_trains(estimator):
    """Item 4: the engine dropped every one-row batch: KeyError 'train_loss'."""
    estimator.fit(issue_X()[:10])
    assert estimator.n_iter_ == 2
    assert estimator.net_.history[-1, "train_batch_count"] == 10


def test_batch_size_one_with_batch_norm_names_batch_size():
    """Item 4: batch norm cannot train on one row: a clear error."""
    with pytest.raises(ValueError, match="batch_size=1"):
        AEOutlierDetector(batch_size=1, max_iter=2, **CPU).fit(issue_X())


@pytest.mark.parametrize("batch_norm, n_batches", [(False, 3), (True, 2)])
def test_a_last_one_row_batch_is_left_out_only_for_batch_norm(batch_norm, n_batches):
    """Item 4: 5 rows in batches of 2: the last batch has one row."""
    ae = AutoencoderTransformer(
        batch_size=2, batch_norm=batch_norm, early_stopping=False, max_iter=1, **CPU
    )
    ae.fit(issue_X()[:5])
    assert ae.net_.history[-1, "train_batch_count"] == n_batches


# ------------------------------------------------------------------ item 5
@pytest.mark.parametrize(
    "estimator",
    [
        AutoencoderTransformer(max_iter=3, **CPU),
        VAETransformer(max_iter=3, **CPU),
        AEOutlierDetector(max_iter=3, **CPU),
    ],
    ids=["ae", "vae", "od"],
)
@pytest.mark.parametrize(
    "hook, error",
    [
        ("on_batch_end", KeyboardInterrupt),
        ("on_epoch_begin", KeyboardInterrupt),
        ("on_train_begin", RuntimeError),
        ("on_epoch_end", RuntimeError),
    ],
)
def test_failed_first_fit_leaves_the_estimator_unfitted(estimator, hook, error):
    """Item 5: raw KeyError, and check_is_fitted passed on an untrained net."""
    estimator.set_params(callbacks=[("raise", Raise(hook, error=error))])
    with pytest.raises(error):
        estimator.fit(issue_X())
    assert not [k for k in vars(estimator) if k.endswith("_") and not k.startswith("_")]
    with pytest.raises(NotFittedError):
        estimator.score_samples(issue_X())


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_failed_refit_keeps_the_earlier_fit(error):
    """Item 5: the untrained network replaced the good one; a refit on other
    data also kept n_features_in_ and feature names of the failed call."""
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(issue_X(), columns=[f"f{i}" for i in range(8)])
    ae = AutoencoderTransformer(max_iter=3, random_state=0, **CPU).fit(X)
    before = ae.transform(X)
    state = dict(vars(ae))
    ae.set_params(callbacks=[("raise", Raise("on_batch_end", error=error))])
    with pytest.raises(error):
        ae.fit(issue_X()[:, :5])
    assert ae.n_features_in_ == 8
    assert list(ae.feature_names_in_) == list(X.columns)
    assert vars(ae).keys() == state.keys()
    assert ae.net_ is state["net_"]
    np.testing.assert_array_equal(ae.transform(X), before)


def test_interrupt_after_an_epoch_ends_the_fit_early():
    """Item 5: as in skorch, an interrupt after the first epoch keeps what was
    trained; the unfinished epoch is not counted."""
    ae = AutoencoderTransformer(
        max_iter=5, callbacks=[("raise", Raise("on_batch_end", epoch=3))], **CPU
    )
    ae.fit(issue_X())
    assert ae.n_iter_ == 2
    assert len(ae.loss_curve_) == 2
    assert np.all(np.isfinite(ae.transform(issue_X())))


# ------------------------------------------------------------------ item 6
def test_numpy_integers_in_network_sizes():
    """Item 6: torch's LSTM raised TypeError for np.int64 sizes."""
    X = issue_X()
    for params in [
        dict(input_shape=(4, 2), n_components=np.int64(2)),
        dict(input_shape=(np.int64(4), np.int64(2)), hidden_layer_sizes=(np.int64(3),)),
        dict(input_shape=(np.int64(2), np.int64(2), np.int64(2)), n_components=np.int64(2),
             hidden_layer_sizes=np.int64(3)),
        dict(n_components=np.int64(2), hidden_layer_sizes=(np.int64(3),)),
    ]:
        ae = AutoencoderTransformer(max_iter=1, **params, **CPU).fit(X)
        assert ae.transform(X).shape == (64, int(ae.n_components))
    VAETransformer(n_components=np.int64(2), hidden_layer_sizes=np.int64(3), max_iter=1,
                   **CPU).fit(X)
    AEOutlierDetector(n_components=np.int64(2), hidden_layer_sizes=(np.int64(3),),
                      n_estimators=np.int64(2), max_iter=1, **CPU).fit(X)


def test_grid_search_over_numpy_integers():
    """Item 6: a grid over np.arange failed every fit."""
    search = GridSearchCV(
        AutoencoderTransformer(input_shape=(4, 2), hidden_layer_sizes=(4,), max_iter=1, **CPU),
        {"n_components": np.arange(1, 3)},
        cv=2,
        error_score="raise",
    ).fit(issue_X())
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


# ------------------------------------------------------------------ item 7
@pytest.mark.parametrize("device", ["meta", torch.device("meta")])
def test_unsupported_device_names_device(device):
    """Item 7: device='meta' gave a raw RuntimeError."""
    with pytest.raises(ValueError, match="device="):
        AutoencoderTransformer(device=device, max_iter=1).fit(issue_X())


def test_batch_norm_error_names_max_samples():
    """Item 7: the error spoke of n_samples=1 for 64 rows."""
    with pytest.raises(ValueError, match="max_samples=1"):
        AEOutlierDetector(max_samples=1, **CPU).fit(issue_X())


def test_batch_norm_with_early_stopping_on_two_rows():
    """Item 7: torch's 'Expected more than 1 value per channel'."""
    with pytest.raises(ValueError, match="batch_norm=True needs at least 2 training rows"):
        AutoencoderTransformer(batch_norm=True, early_stopping=True, **CPU).fit(issue_X()[:2])


# ------------------------------------------------------------------ item 8
class Rendezvous(Callback):
    """Makes fits in several threads wait for each other at every epoch end,
    so that they overlap. The barrier is a class attribute: skorch copies
    callbacks, and a barrier cannot be copied."""

    barrier = None

    def on_epoch_end(self, net, **kwargs):
        if type(self).barrier is not None:
            type(self).barrier.wait(timeout=60)


def run_in_threads(fns):
    results = [None] * len(fns)
    errors = []

    def run(i):
        try:
            results[i] = fns[i]()
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)
            if Rendezvous.barrier is not None:
                Rendezvous.barrier.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


RANDOM_FITS = [
    # early_stopping=False: restoring the (deterministic) PCA start would
    # hide the random draws this test is about.
    AutoencoderTransformer(
        hidden_layer_sizes=(16,), dropout=0.3, noise="gaussian", batch_size=16, max_iter=3,
        early_stopping=False, **CPU
    ),
    AutoencoderTransformer(
        input_shape=(4, 2), hidden_layer_sizes=(4, 4), dropout=0.3, batch_size=16, max_iter=3,
        early_stopping=False, **CPU,
    ),
    # early_stopping=False, as for the autoencoders: restored to its
    # linear start (the same for every seed), a VAE shows no random draws.
    VAETransformer(
        hidden_layer_sizes=(16,), dropout=0.3, batch_size=16, max_iter=3,
        early_stopping=False, **CPU,
    ),
    AEOutlierDetector(n_components=4, batch_size=16, max_iter=3, **CPU),
]


@pytest.mark.parametrize("estimator", RANDOM_FITS, ids=["ae", "lstm", "vae", "od"])
def test_fits_in_parallel_threads_match_serial_fits(estimator):
    """Item 8: fits side by side in threads differed from serial fits and
    changed torch's global random state."""
    X = issue_X()
    seeds = [0, 1, 2]
    estimator = estimator.set_params(callbacks=[("rendezvous", Rendezvous())])

    def fit(seed):
        est = estimator.__class__(**estimator.get_params()).set_params(random_state=seed)
        return est.fit(X).score_samples(X)

    serial = [fit(seed) for seed in seeds]
    rng_before = torch.get_rng_state()
    Rendezvous.barrier = threading.Barrier(len(seeds))
    try:
        parallel = run_in_threads([lambda s=s: fit(s) for s in seeds])
    finally:
        Rendezvous.barrier = None
    assert torch.equal(torch.get_rng_state(), rng_before)
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(serial[0], serial[1])


def test_fit_draws_nothing_from_torch_global_generator():
    """Item 8: shuffling, dropout and noise draw from the fit's generator, so
    reseeding torch globally mid-fit changes nothing."""

    class Reseed(Callback):
        def on_epoch_begin(self, net, **kwargs):
            torch.manual_seed(len(net.history))

    params = dict(hidden_layer_sizes=(16,), dropout=0.3, noise="mask", batch_size=16,
                  max_iter=3, random_state=0, **CPU)
    plain = AutoencoderTransformer(**params).fit(issue_X()).transform(issue_X())
    with torch.random.fork_rng():
        reseeded = AutoencoderTransformer(
            **params, callbacks=[("reseed", Reseed())]
        ).fit(issue_X()).transform(issue_X())
    np.testing.assert_array_equal(plain, reseeded)


def test_grid_search_in_threads_is_reproducible():
    """Item 8: GridSearchCV(n_jobs=2) under threading gave new scores each run."""
    X = issue_X()
    search = GridSearchCV(
        AutoencoderTransformer(hidden_layer_sizes=(16,), dropout=0.2, batch_size=16,
                               max_iter=3, random_state=0, **CPU),
        {"n_components": [1, 2], "noise": [None, "gaussian"]},
        cv=2,
        n_jobs=2,
    )
    with parallel_backend("threading", n_jobs=2):
        first = search.fit(X).cv_results_["mean_test_score"]
        second = search.fit(X).cv_results_["mean_test_score"]
    serial = search.set_params(n_jobs=1).fit(X).cv_results_["mean_test_score"]
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, serial)


class TorchDropoutEncoder(torch.nn.Module):
    """A user's network drawing from torch's global generator (nn.Dropout)."""

    def __init__(self, n_features, n_components):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(n_features, 16), torch.nn.Dropout(0.3),
            torch.nn.Linear(16, n_components),
        )

    def forward(self, x):
        return self.net(x)


class TorchDropoutDecoder(TorchDropoutEncoder):
    def __init__(self, n_features, n_components):
        super().__init__(n_components, n_features)


def test_custom_network_with_global_draws_is_reproducible_in_threads():
    """Item 8: a user's network that draws from torch's global generator is
    trained with it forked and seeded, one such fit at a time."""
    X = issue_X()

    def fit(seed):
        return AutoencoderTransformer(
            encoder=TorchDropoutEncoder, decoder=TorchDropoutDecoder, batch_size=16,
            max_iter=3, random_state=seed, **CPU,
        ).fit(X).transform(X)

    serial = [fit(0), fit(1)]
    rng_before = torch.get_rng_state()
    parallel = run_in_threads([lambda: fit(0), lambda: fit(1)])
    assert torch.equal(torch.get_rng_state(), rng_before)
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ item 9
@pytest.mark.skipif(
    not _threads_are_per_thread(),
    reason="torch's thread count is process-wide in this build (no OpenMP)",
)
def test_thread_count_restored_in_each_thread_when_fits_overlap():
    """Item 9: the thread that finished first was left at 1 torch thread."""
    b_started = threading.Event()
    a_done = threading.Event()

    class WaitForB(Callback):
        def on_train_begin(self, net, **kwargs):
            assert b_started.wait(timeout=60)

    class StartThenWaitForA(Callback):
        def on_train_begin(self, net, **kwargs):
            b_started.set()

        def on_train_end(self, net, **kwargs):
            assert a_done.wait(timeout=60)

    def run(own_threads, callback, done=None):
        # torch gives a new thread the last count set anywhere on its first
        # use, which a set_num_threads before that use does not count as:
        # use torch first, so that the thread's own setting sticks.
        torch.get_num_threads()
        torch.set_num_threads(own_threads)
        AutoencoderTransformer(max_iter=2, n_jobs=1, callbacks=[("cb", callback)], **CPU).fit(
            issue_X()
        )
        seen = torch.get_num_threads()
        if done is not None:
            done.set()
        return seen

    caller = torch.get_num_threads()
    seen_a, seen_b = run_in_threads(
        [lambda: run(3, WaitForB(), a_done), lambda: run(2, StartThenWaitForA())]
    )
    assert (seen_a, seen_b) == (3, 2)
    assert torch.get_num_threads() == caller


# ----------------------------------------------------------------- item 10
@pytest.mark.parametrize(
    "estimator, change",
    [
        (AutoencoderTransformer(max_iter=2, **CPU), dict(n_components=3)),
        (AutoencoderTransformer(max_iter=2, **CPU), dict(hidden_layer_sizes=(8,))),
        (AutoencoderTransformer(input_shape=(4, 2), hidden_layer_sizes=(4,), max_iter=2, **CPU),
         dict(input_shape=(2, 4))),
        (VAETransformer(max_iter=2, **CPU), dict(n_components=3)),
        (AEOutlierDetector(max_iter=2, **CPU), dict(hidden_layer_sizes=(8,))),
        (AEOutlierDetector(max_iter=2, **CPU), dict(n_estimators=2)),
    ],
)
def test_warm_start_with_a_changed_network_raises(estimator, change):
    """Item 10: transform kept the old width, get_feature_names_out the new."""
    X = issue_X()
    estimator.set_params(warm_start=True, random_state=0).fit(X)
    before = estimator.score_samples(X)
    original = {name: estimator.get_params()[name] for name in change}
    with pytest.raises(ValueError, match="warm_start"):
        estimator.set_params(**change).fit(X)
    estimator.set_params(**original)
    np.testing.assert_array_equal(estimator.score_samples(X), before)


@pytest.mark.parametrize("continued", ["warm_start", "partial_fit"])
@pytest.mark.parametrize(
    "estimator, change, attr",
    [
        (VAETransformer(n_components=2, beta=0.1), {"beta": 2.0}, "beta"),
        (AutoencoderTransformer(sparsity="l1", sparsity_weight=0.1),
         {"sparsity_weight": 3.0}, "sparsity_weight"),
        (AEOutlierDetector(n_components=2), {"trim_fraction": 0.0}, "trim_fraction"),
    ],
    ids=lambda v: type(v).__name__ if hasattr(v, "fit") else None,
)
def test_continued_fits_train_with_the_current_loss_settings(estimator, change, attr, continued):
    # A warm start or a later partial_fit kept the first fit's loss: the new
    # beta (KL annealing by hand), sparsity weight or trim fraction was
    # silently ignored.
    X = issue_X()
    est = estimator.set_params(max_iter=2, random_state=0, **CPU)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X)
        est.set_params(**change)
        if continued == "warm_start":
            est.set_params(warm_start=True).fit(X)
        else:
            est.partial_fit(X)
    (value,) = change.values()
    assert getattr(est.net_.criterion_, attr) == value
    assert est.n_iter_ > 2  # it continued


@pytest.mark.parametrize(
    "estimator, change",
    [
        (AutoencoderTransformer(n_components=2), {"loss": "bce"}),
        (VAETransformer(n_components=2), {"likelihood": "bernoulli"}),
    ],
    ids=lambda v: type(v).__name__ if hasattr(v, "fit") else None,
)
def test_continued_fits_with_another_loss_raise_naming_it(estimator, change):
    X = np.abs(issue_X()) / 10
    est = estimator.set_params(max_iter=2, random_state=0, **CPU)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X)
    before = est.transform(X)
    (name,) = change
    est.set_params(**change)
    for continue_fit in (est.partial_fit, est.set_params(warm_start=True).fit):
        with pytest.raises(ValueError, match=f"{name} changed"):
            continue_fit(X)
    np.testing.assert_array_equal(est.transform(X), before)


@pytest.mark.parametrize("continued", ["warm_start", "partial_fit"])
@pytest.mark.parametrize(
    "first, then",
    [
        ({"noise": "gaussian", "noise_level": 0.1}, {"noise_level": 0.5}),
        ({"noise": "gaussian", "noise_level": 0.1}, {"noise": None}),
        ({"noise": None}, {"noise": "mask", "noise_level": 0.3}),
    ],
)
def test_continued_fits_train_with_the_current_noise(first, then, continued):
    # A denoising fit continued with less noise (or none) was refused as
    # "a different network": the corruption has no weights, and it is a
    # setting of training like learning_rate.
    X = issue_X()

    def fitted():
        ae = AutoencoderTransformer(
            n_components=2, max_iter=2, early_stopping=False, random_state=0, **CPU
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ae.set_params(**first).fit(X)

    def go_on(ae):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if continued == "warm_start":
                return ae.set_params(warm_start=True).fit(X)
            return ae.partial_fit(X)

    changed = go_on(fitted().set_params(**then))
    params = {**first, **then}
    corruption = changed.net_.module_.corruption
    assert (corruption.kind, corruption.level) == (
        params["noise"], params.get("noise_level", 0.1)
    )
    assert changed.n_iter_ > 2
    # The continued training used it: the same continuation under the first
    # fit's noise ends elsewhere, and the new noise gives the same model again.
    unchanged = go_on(fitted())
    again = go_on(fitted().set_params(**then))
    assert not np.allclose(changed.transform(X), unchanged.transform(X))
    np.testing.assert_allclose(changed.transform(X), again.transform(X), rtol=1e-5, atol=1e-6)


def test_warm_start_with_the_same_network_continues():
    X = issue_X()
    ae = AutoencoderTransformer(max_iter=2, warm_start=True, random_state=0, **CPU).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ae.set_params(learning_rate=1e-4).fit(X)
    assert ae.n_iter_ == 4


@pytest.mark.parametrize("resident", [True, False])
@pytest.mark.parametrize("sparse", [False, True])
def test_float64_rows_are_standardized_before_narrowing(resident, sparse):
    # A mean of 1e8 against a spread of about 1: in float32 the rows
    # would be multiples of 8 before centring.
    from scipy import sparse as sp

    from sklearn_ae._data import TensorData

    rng = np.random.RandomState(0)
    X = rng.randn(50, 4) + np.array([1e8, 0.0, -3e9, 5.0])
    if sparse:
        X[:, 1] = 0.0
    mean, scale = X.mean(axis=0), X.std(axis=0) + 1.0
    data = TensorData(sp.csr_matrix(X) if sparse else X, mean=mean, scale=scale,
                      resident=resident)
    expected = ((X - mean) / scale).astype(np.float32)
    np.testing.assert_array_equal(data.take(slice(None)).numpy(), expected)
    np.testing.assert_array_equal(data.take(np.array([3, 7])).numpy(), expected[[3, 7]])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_large_offsets_train_as_well_as_centred_data():
    rng = np.random.RandomState(0)
    Z = rng.randn(600, 2)
    X = np.tanh(Z @ rng.randn(2, 6)) + 0.05 * rng.randn(600, 6)
    errors = []
    for offset in (0.0, 1e8):
        ae = AutoencoderTransformer(n_components=2, max_iter=20, random_state=0)
        ae.fit(X[:400] + offset)
        Xte = X[400:] + offset
        errors.append(((ae.inverse_transform(ae.transform(Xte)) - Xte) ** 2).mean())
    # The same network up to float rounding (narrowed after centring, the
    # offset rows train as the centred ones); narrowing first gave 20x.
    assert errors[1] < 1.5 * errors[0]


# ------------------------------------------------ set_params after a fit
def _outputs(est, X):
    """Every inference output of a fitted estimator, as arrays."""
    out = {"names": est.get_feature_names_out() if hasattr(est, "transform") else None}
    if hasattr(est, "transform"):
        codes = est.transform(X)
        out.update(codes=codes, reconstruction=est.inverse_transform(codes))
    for method in ("score_samples", "predict", "decision_function"):
        if hasattr(est, method):
            out[method] = getattr(est, method)(X)
    if hasattr(est, "sample"):
        out["sample"] = est.sample(5, random_state=0)
    return out


@pytest.mark.parametrize(
    "estimator, change",
    [
        (AutoencoderTransformer(n_components=2), {"n_components": 3}),
        (AutoencoderTransformer(n_components=2), {"loss": "bce"}),
        (VAETransformer(n_components=2), {"n_components": 3}),
        (VAETransformer(n_components=2), {"likelihood": "bernoulli"}),
        (AEOutlierDetector(n_components=2), {"residual_scaling": "log"}),
        (AEOutlierDetector(n_components=2, latent_weight=0.5),
         {"isolation_weight": 5.0, "latent_weight": 0.0}),
        (AEOutlierDetector(n_components=2, member_combination="standardized"),
         {"member_combination": "geometric"}),
    ],
    ids=lambda v: type(v).__name__ if hasattr(v, "fit") else str(v),
)
def test_set_params_after_fit_changes_nothing_until_the_next_fit(estimator, change, tmp_path):
    # As with scikit-learn's fitted attributes, the fitted model is the one
    # fit made: set_params afterwards used to change the loss in score, the
    # weights of the detector's score (but not offset_, so predict flagged
    # 22% of rows instead of 2%), or describe a code size the network does
    # not have (a torch size-mismatch error from the VAE's score_samples).
    import sklearn_ae

    X = np.random.RandomState(0).uniform(size=(120, 6))
    est = estimator.set_params(max_iter=3, random_state=0, **CPU)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X)
        fitted_with = est.get_params()
        before = _outputs(est, X)
        est.set_params(**change)
        after = _outputs(est, X)
        est.save(tmp_path / "model.safetensors")
        loaded = sklearn_ae.load(tmp_path / "model.safetensors")
        for out in (after, _outputs(loaded, X)):
            for name, value in before.items():
                np.testing.assert_array_equal(out[name], value, err_msg=name)
        # the file holds both the parameters as set and as fitted, as a pickle does
        for name, value in change.items():
            assert loaded.get_params()[name] == value != fitted_with[name]
            assert loaded._fitted_param(name) == fitted_with[name]
        est.fit(X)  # the next fit takes the new parameters
    assert est._fitted_param(next(iter(change))) == next(iter(change.values()))


# ------------------------------------------------ values too large for the arithmetic
def _huge_estimators(**off):
    return [
        AutoencoderTransformer(n_components=2, max_iter=2, random_state=0, **CPU, **off.get("ae", {})),
        VAETransformer(n_components=2, max_iter=2, random_state=0, **CPU, **off.get("ae", {})),
        AEOutlierDetector(n_components=2, max_iter=2, random_state=0, **CPU, **off.get("det", {})),
    ]


@pytest.mark.parametrize("estimator", _huge_estimators(), ids=lambda e: type(e).__name__)
def test_values_whose_variance_overflows_are_named(estimator):
    # 1e160: finite in float64, but squares overflow; the moments used to be
    # NaN and the fit ended in "The optimisation diverged ... try a smaller
    # learning_rate" (the VAE: "Input X contains infinity").
    X = issue_X() * 1e160
    with pytest.raises(ValueError, match="too large to standardize") as info:
        estimator.fit(X)
    assert "learning_rate" not in str(info.value)


@pytest.mark.parametrize(
    "estimator", _huge_estimators(ae={"standardize": False}, det={"scaling": None}),
    ids=lambda e: type(e).__name__,
)
def test_unscaled_values_beyond_float32_name_the_scaling_switch(estimator):
    switch = "scaling=None" if isinstance(estimator, AEOutlierDetector) else "standardize=False"
    with pytest.raises(ValueError, match=f"beyond float32's range.*{switch}"):
        estimator.fit(issue_X() * 1e50)
    # In range, but squares overflow float32: the first batch's loss is
    # already infinite, so the message is about X, not the learning rate.
    with pytest.raises(ValueError, match=f"untrained network.*{switch}") as info:
        estimator.fit(issue_X() * 1e30)
    assert "learning_rate" not in str(info.value)


@pytest.mark.parametrize(
    "estimator",
    [AutoencoderTransformer(n_components=2, loss="bce", max_iter=2, **CPU),
     VAETransformer(n_components=2, likelihood="bernoulli", max_iter=2, **CPU)],
    ids=["bce", "bernoulli"],
)
def test_scores_of_a_0_1_model_refuse_values_outside_0_1(estimator):
    # Fit refused such values, score did not: a bce autoencoder scored a
    # row of 2s at +1.7, above every row of its data.
    X = (np.random.RandomState(0).rand(60, 5) > 0.5).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = estimator.set_params(random_state=0).fit(X)
    assert np.all(np.isfinite(est.score_samples(np.full((2, 5), 0.5))))
    for bad in (np.full((2, 5), 2.0), np.full((2, 5), -0.5)):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            est.score_samples(bad)
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            est.score(bad)
