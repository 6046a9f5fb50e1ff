"""Behaviour of AutoencoderTransformer that users rely on."""

import copy
import pickle
import warnings

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from skorch.callbacks import Callback, LRScheduler
from skorch.exceptions import DeviceWarning
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline

import sklearn_ae._base
from sklearn_ae._data import TensorData
from sklearn_ae import AutoencoderTransformer, VAETransformer, neg_reconstruction_error

# early_stopping=False: most tests are about other behaviour, and a
# validation split changes the batches they count.
FAST = dict(
    hidden_layer_sizes=(16,), max_iter=5, early_stopping=False, random_state=0, device="cpu"
)


def make_data(n_samples=120, n_features=6, seed=0):
    """Low-rank data through a nonlinearity, plus noise."""
    rng = np.random.RandomState(seed)
    latent = rng.randn(n_samples, 2)
    W = rng.randn(2, n_features)
    return np.tanh(latent @ W) + 0.05 * rng.randn(n_samples, n_features)


# ---------------------------------------------------------------- determinism
def test_same_random_state_gives_identical_results():
    X = make_data()
    Z1 = AutoencoderTransformer(**FAST).fit_transform(X)
    Z2 = AutoencoderTransformer(**FAST).fit_transform(X)
    np.testing.assert_array_equal(Z1, Z2)
    Z3 = AutoencoderTransformer(**{**FAST, "random_state": 1}).fit_transform(X)
    assert not np.allclose(Z1, Z3)


def test_fit_leaves_global_rng_state_untouched():
    X = make_data()
    np_state = np.random.get_state()
    torch_state = torch.random.get_rng_state()
    AutoencoderTransformer(dropout=0.2, **FAST).fit(X)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert np_state[0] == after[0]
    np.testing.assert_array_equal(np_state[1], after[1])
    assert np_state[2:] == after[2:]


# ------------------------------------------------------------------- pickling
@pytest.mark.parametrize("dump, load", [(pickle.dumps, pickle.loads), (None, None)])
def test_pickle_and_joblib_round_trip(dump, load, tmp_path):
    X = make_data()
    ae = AutoencoderTransformer(**FAST).fit(X)
    if dump is None:
        path = tmp_path / "ae.joblib"
        joblib.dump(ae, path)
        restored = joblib.load(path)
    else:
        restored = load(dump(ae))
    np.testing.assert_array_equal(ae.transform(X), restored.transform(X))
    np.testing.assert_array_equal(ae.score_samples(X), restored.score_samples(X))
    assert restored.device_ == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fitted_model_unpickles_on_cpu(monkeypatch):
    X = make_data()
    ae = AutoencoderTransformer(**{**FAST, "device": "cuda"}).fit(X)
    Z = ae.transform(X)
    blob = pickle.dumps(ae)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(DeviceWarning, match="not available"):
        restored = pickle.loads(blob)
    assert restored.device_ == torch.device("cpu")
    np.testing.assert_allclose(restored.transform(X), Z, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------- inputs
@pytest.mark.parametrize("Estimator", [AutoencoderTransformer, VAETransformer])
def test_feature_names_out_needs_a_fit(Estimator):
    # As PCA: no names before fit (they answered from n_components).
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        Estimator(n_components=3).get_feature_names_out()
    est = Estimator(n_components=3, **FAST).fit(make_data())
    assert len(est.get_feature_names_out()) == 3


def test_pandas_input_keeps_feature_names_and_set_output():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(make_data(), columns=[f"f{i}" for i in range(6)])
    ae = AutoencoderTransformer(n_components=3, **FAST).set_output(transform="pandas")
    Z = ae.fit_transform(X)
    assert list(ae.feature_names_in_) == list(X.columns)
    assert isinstance(Z, pd.DataFrame)
    assert list(Z.columns) == [f"autoencodertransformer{i}" for i in range(3)]
    np.testing.assert_array_equal(ae.get_feature_names_out(), Z.columns)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_sparse_input_matches_dense(fmt):
    X = make_data()
    X[X < 0] = 0
    dense = AutoencoderTransformer(**FAST).fit(X)
    sparse = AutoencoderTransformer(**FAST).fit(sp.csr_matrix(X).asformat(fmt))
    # Sparse batches are densified in the dense batches' row order, so the
    # training is the same (batches whose rows stayed sorted were summed in
    # another order: training from PCA's stationary point turned that
    # rounding into codes a few 1e-3 apart). Only transform's sparse path
    # rounds apart (1e-15 here).
    np.testing.assert_allclose(
        sparse.transform(sp.csr_matrix(X)), dense.transform(X), rtol=1e-6, atol=1e-6
    )


def test_sparse_input_is_densified_batch_by_batch(monkeypatch):
    X = sp.random(300, 20, density=0.1, format="csr", random_state=0)
    densified = []
    original = sp.csr_matrix.toarray

    def spy(self, *args, **kwargs):
        densified.append(self.shape[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(sp.csr_matrix, "toarray", spy)
    monkeypatch.setattr(sklearn_ae._base, "_INFERENCE_ROWS", 64)
    ae = AutoencoderTransformer(batch_size=32, **FAST).fit(X)
    n_training_batches = len(densified)
    # a sample of at most 257 rows for the scaling's reference values, one
    # block of rows for the PCA start, then the training batches
    assert densified[:2] == [257, 300]
    assert n_training_batches == 2 + 5 * int(np.ceil(300 / 32))
    assert max(densified[2:]) <= 32
    ae.transform(X)
    assert densified[n_training_batches:] == [64, 64, 64, 64, 44]


@pytest.mark.parametrize("Estimator", [AutoencoderTransformer, VAETransformer])
def test_inference_batches_share_one_buffer_without_mixing_rows(Estimator, monkeypatch):
    # Inference standardizes each batch of the caller's float32 rows into one
    # reused buffer: every batch's results, the short last one's included,
    # are those of its own rows, and the caller's array is never written.
    monkeypatch.setattr(sklearn_ae._base, "_INFERENCE_ROWS", 64)
    X = make_data(n_samples=300).astype(np.float32)
    est = Estimator(n_components=2, **FAST).fit(X)
    before = X.copy()
    whole_codes, whole_scores = est.transform(X), est.score_samples(X)
    np.testing.assert_array_equal(X, before)
    chunks = [slice(0, 64), slice(64, 200), slice(200, 300)]
    np.testing.assert_allclose(
        whole_codes, np.vstack([est.transform(X[c]) for c in chunks]), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        whole_scores, np.concatenate([est.score_samples(X[c]) for c in chunks]), rtol=1e-5
    )
    # batches of other rows (reversed order) give the same rows' results
    np.testing.assert_allclose(est.transform(X[::-1])[::-1], whole_codes, rtol=1e-5, atol=1e-6)


def test_float64_is_trained_in_float32_and_dtype_is_preserved():
    X = make_data()
    ae = AutoencoderTransformer(**FAST).fit(X)
    assert all(p.dtype == torch.float32 for p in ae.module_.parameters())
    assert ae.transform(X).dtype == np.float64
    assert ae.transform(X.astype(np.float32)).dtype == np.float32
    np.testing.assert_allclose(
        ae.transform(X.astype(np.float32)), ae.transform(X), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    "X, match",
    [
        (np.full((10, 3), np.nan), "NaN"),
        (np.full((10, 3), np.inf), "infinity"),
        (np.empty((0, 3)), "0 sample"),
        (np.ones(10), "Expected 2D array"),
    ],
)
def test_bad_training_input_raises_clear_error(X, match):
    with pytest.raises(ValueError, match=match):
        AutoencoderTransformer(**FAST).fit(X)


def test_wrong_n_features_raises():
    ae = AutoencoderTransformer(**FAST).fit(make_data())
    with pytest.raises(ValueError, match="X has 4 features, but AutoencoderTransformer is expecting 6"):
        ae.transform(make_data(n_features=4))
    with pytest.raises(ValueError, match="n_components=2"):
        ae.inverse_transform(np.zeros((3, 5)))


def test_unfitted_raises_not_fitted():
    with pytest.raises(NotFittedError):
        AutoencoderTransformer().transform(make_data())


@pytest.mark.parametrize("n_samples", [1, 3])
def test_fewer_samples_than_batch_size(n_samples):
    X = make_data(n_samples=n_samples)
    ae = AutoencoderTransformer(batch_size=64, **FAST).fit(X)
    assert ae.transform(X).shape == (n_samples, 2)
    assert ae.net_.batch_size == n_samples


def test_diverging_training_names_learning_rate_and_keeps_previous_fit():
    X = make_data()
    ae = AutoencoderTransformer(**FAST).fit(X)
    Z = ae.transform(X)
    ae.set_params(learning_rate=1e10, activation="identity", max_iter=20)
    with pytest.raises(ValueError, match="learning_rate"):
        ae.fit(X)
    np.testing.assert_array_equal(ae.transform(X), Z)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_components": 0}, "n_components"),
        ({"activation": "swish"}, "activation"),
        ({"hidden_layer_sizes": (8, -1)}, "hidden_layer_sizes"),
        ({"device": "tpu:0"}, "device"),
        ({"loss": "l1"}, "loss"),
    ],
)
def test_bad_parameters_raise_naming_the_parameter(params, match):
    with pytest.raises(ValueError, match=match):
        AutoencoderTransformer(**{**FAST, **params}).fit(make_data())


def test_cuda_requested_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        AutoencoderTransformer(**{**FAST, "device": "cuda"}).fit(make_data())


def test_bce_needs_unit_interval():
    with pytest.raises(ValueError, match=r"loss='bce' needs every value of X in \[0, 1\]"):
        AutoencoderTransformer(loss="bce", **FAST).fit(make_data())
    X = (make_data() > 0).astype(float)
    ae = AutoencoderTransformer(loss="bce", **FAST).fit(X)
    X_rec = ae.inverse_transform(ae.transform(X))
    assert X_rec.min() >= 0 and X_rec.max() <= 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_unit_interval_checks_accept_min_max_scaler_rounding(dtype):
    # MinMaxScaler's output reaches 1.0000000000000002 (1.0000001 in
    # float32), and the [0, 1] checks refused it, with a message saying
    # "got values in [0, 1]": a pipeline of the two failed on every fold.
    from sklearn.preprocessing import MinMaxScaler

    from sklearn_ae import VAETransformer

    X = MinMaxScaler().fit_transform(
        np.random.RandomState(0).rand(60, 16).astype(dtype)
    )
    assert X.max() > 1
    for est in (
        AutoencoderTransformer(loss="bce", **FAST),
        AutoencoderTransformer(output_activation="logistic", **FAST),
        VAETransformer(likelihood="bernoulli", **FAST),
    ):
        assert np.isfinite(est.fit(X).score(X))
    # A real breach, just past rounding, is refused with digits that show it.
    with pytest.raises(ValueError, match=r"got values in \[2e-06, 1\.00000[0-9]+\]"):
        AutoencoderTransformer(loss="bce", **FAST).fit(X.astype(np.float64) + 2e-6)


def test_neg_reconstruction_error_takes_what_the_estimator_takes():
    # Sparse X and (n, *input_shape) rows were refused by a 2-d dense check
    # (cross_validate then scored NaN with a warning only), although the
    # estimator had just transformed them.
    X = np.random.RandomState(0).rand(60, 16)
    X_sparse = sp.csr_matrix(np.where(X > 0.7, X, 0.0))
    ae = AutoencoderTransformer(**{**FAST, "n_components": 3}).fit(X_sparse)
    assert neg_reconstruction_error(ae, X_sparse) == pytest.approx(ae.score(X_sparse))
    images = X.reshape(-1, 1, 4, 4)
    conv = AutoencoderTransformer(
        **{**FAST, "input_shape": (1, 4, 4), "hidden_layer_sizes": (4,)}
    ).fit(images)
    assert neg_reconstruction_error(conv, images) == pytest.approx(conv.score(images))


# ----------------------------------------------------------------- semantics
def test_inverse_transform_is_in_input_units():
    X = 1000.0 + 50.0 * make_data()
    ae = AutoencoderTransformer(**{**FAST, "max_iter": 50}).fit(X)
    X_rec = ae.inverse_transform(ae.transform(X))
    # without undoing the scaling the means would be ~0, not ~1000
    assert np.all(np.abs(X_rec.mean(axis=0) - X.mean(axis=0)) < 0.5 * X.std(axis=0))
    # score_samples is the per-row MSE of that same reconstruction
    np.testing.assert_allclose(
        ae.score_samples(X), -((X - X_rec) ** 2).mean(axis=1), rtol=1e-3
    )
    assert ae.score(X) == pytest.approx(np.mean(ae.score_samples(X)))


def test_convergence_warning_at_max_iter():
    with pytest.warns(ConvergenceWarning, match="maximum iterations"):
        AutoencoderTransformer(**FAST).fit(make_data())


def test_stops_before_max_iter_when_loss_stalls():
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        ae = AutoencoderTransformer(
            **{**FAST, "max_iter": 500, "tol": 10.0, "n_iter_no_change": 2}
        ).fit(make_data())
    assert ae.n_iter_ == 3
    assert len(ae.loss_curve_) == 3


def test_early_stopping_restores_best_epoch():
    # 100 validation rows: the best epoch beats the PCA start clearly
    X = make_data(n_samples=1000)
    ae = AutoencoderTransformer(
        **{**FAST, "max_iter": 40, "early_stopping": True, "n_iter_no_change": 3}
    ).fit(X)
    assert len(ae.validation_scores_) == ae.n_iter_
    assert ae.best_validation_score_ == max(ae.validation_scores_)
    # the restored weights give the best epoch's validation loss
    data = TensorData(X, mean=ae.mean_, scale=ae.scale_, resident=True)
    valid = ae.net_.get_split_datasets(data)[1]
    with torch.no_grad():
        ae.module_.eval()
        out = ae.module_(valid.X)
        loss = ae.net_.criterion_(out, valid.X).item()
    assert -loss == pytest.approx(ae.best_validation_score_, rel=1e-4)


def test_validation_fraction_too_large_for_data():
    with pytest.raises(ValueError, match="validation_fraction"):
        AutoencoderTransformer(**{**FAST, "early_stopping": True}).fit(make_data(n_samples=1))


def test_warm_start_continues_training():
    X = make_data()
    ae = AutoencoderTransformer(warm_start=True, **FAST).fit(X)
    first = list(ae.loss_curve_)
    mean = ae.mean_
    ae.fit(X)
    assert ae.n_iter_ == 10
    assert ae.loss_curve_[:5] == first
    assert ae.loss_curve_[-1] < first[-1]
    assert ae.mean_ is mean
    with pytest.raises(ValueError, match="features"):
        ae.fit(make_data(n_features=4))


def test_user_callbacks_run_and_are_not_modified():
    class CountEpochsAndBatches(Callback):
        def initialize(self):
            self.epochs_ = 0
            self.batches_ = 0
            return self

        def on_epoch_end(self, net, **kwargs):
            self.epochs_ += 1

        def on_batch_end(self, net, **kwargs):
            self.batches_ += 1

    counter = CountEpochsAndBatches()
    scheduler = LRScheduler(policy="StepLR", step_size=1, gamma=0.5)
    ae = AutoencoderTransformer(
        callbacks=[counter, scheduler], batch_size=40, **FAST
    ).fit(make_data())
    assert not hasattr(counter, "epochs_")  # the user's object is untouched
    used = dict(ae.net_.callbacks_)["CountEpochsAndBatches"]
    assert used.epochs_ == 5 and used.batches_ == 15
    assert ae.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(ae.learning_rate * 0.5**5)


def test_verbose_shows_progress_bar(capsys):
    AutoencoderTransformer(verbose=1, **FAST).fit(make_data())
    assert "epoch" in capsys.readouterr().err
    AutoencoderTransformer(verbose=0, **FAST).fit(make_data())
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------ the sklearn API
def test_gridsearch_without_scoring_uses_score():
    X = make_data(n_samples=90)
    grid = GridSearchCV(
        AutoencoderTransformer(**{**FAST, "max_iter": 60}), {"n_components": [1, 4]}, cv=3
    ).fit(X)
    assert grid.best_params_["n_components"] == 4
    assert np.isfinite(grid.best_score_)


def test_pipeline_swaps_pca_and_autoencoder():
    X = make_data(n_samples=90)
    pipe = Pipeline([("reduce", PCA(n_components=2))])
    grid = GridSearchCV(
        pipe,
        {"reduce": [PCA(n_components=2), AutoencoderTransformer(**FAST)]},
        scoring=neg_reconstruction_error,
        cv=3,
    ).fit(X)
    assert set(map(type, grid.cv_results_["param_reduce"])) == {
        PCA,
        AutoencoderTransformer,
    }


def test_clone_gives_unfitted_copy():
    ae = AutoencoderTransformer(**FAST).fit(make_data())
    assert not hasattr(clone(ae), "net_")


def test_beats_pca_on_held_out_digits():
    X, _ = load_digits(return_X_y=True)
    X_train, X_test = train_test_split(X, test_size=0.3, random_state=0)
    pca = PCA(n_components=8).fit(X_train)
    ae = AutoencoderTransformer(
        n_components=8, standardize=False, batch_size=64, max_iter=100,
        random_state=0, device="cpu",
    ).fit(X_train)
    pca_error = -neg_reconstruction_error(pca, X_test)
    ae_error = -neg_reconstruction_error(ae, X_test)
    assert ae_error < 0.85 * pca_error, (ae_error, pca_error)


# ------------------------------------------------------------ the PCA start
class StartOfTraining(Callback):
    """Keeps the network's weights as the first epoch found them."""

    def on_train_begin(self, net, **kwargs):
        self.state_ = copy.deepcopy(net.module_.state_dict())


def _at_start(ae):
    """``ae`` with the weights it had before its first training step."""
    start = dict(ae.net_.callbacks_)["start"].state_
    ae.module_.load_state_dict(start)
    return ae


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"hidden_layer_sizes": (16, 8), "activation": "tanh"},
        {"hidden_layer_sizes": (), "activation": "identity"},
        {"tied_weights": True},
        {"tied_weights": True, "batch_norm": True, "dropout": 0.2},
        {"noise": "gaussian"},
        {"sparsity": "l1"},
        {"layerwise_pretraining": True, "pretraining_max_iter": 2},
        {"input_shape": (1, 4, 3), "hidden_layer_sizes": (4,)},
        {"input_shape": (4, 3), "hidden_layer_sizes": (5,)},
        {"early_stopping": True},
    ],
)
def test_network_starts_as_pca_of_the_scaled_training_rows(params):
    X = make_data(n_samples=150, n_features=12) * np.arange(1, 13) + 3
    ae = AutoencoderTransformer(
        **{**FAST, "n_components": 3, **params}, callbacks=[("start", StartOfTraining())]
    ).fit(X)
    Xs = (X - ae.mean_) / ae.scale_  # X as the network sees it
    fit_rows = Xs
    if ae.early_stopping:  # the training part: the validation rows stay unseen
        data = TensorData(X, mean=ae.mean_, scale=ae.scale_, resident=True)
        fit_rows = ae.net_.get_split_datasets(data)[0].X.numpy().astype(np.float64)
        assert len(fit_rows) < len(Xs)
    pca = PCA(n_components=3).fit(fit_rows)
    _at_start(ae)
    expected = pca.inverse_transform(pca.transform(Xs)) * ae.scale_ + ae.mean_
    # float32 weights: agreement to float32 precision, relative to X's scale
    np.testing.assert_allclose(
        ae.inverse_transform(ae.transform(X)), expected, atol=1e-5 * np.abs(X).max()
    )
    # transform returns PCA's scores, with scikit-learn's signs
    np.testing.assert_allclose(ae.transform(X), pca.transform(Xs), atol=1e-4)
    # and training moved on from there
    assert ae.n_iter_ >= 1


@pytest.mark.parametrize("tied_weights", [False, True])
def test_bce_decoder_starts_at_the_mean_rate(tied_weights):
    # As documented: the logit of each feature's mean rate; a tied decoder
    # (the encoder's transposed weight) adds PCA's reconstruction of the
    # row's deviation from the mean.
    X = np.clip((make_data(n_samples=150, n_features=8) + 1) / 2, 0, 1)
    ae = AutoencoderTransformer(
        **{**FAST, "n_components": 3}, loss="bce", tied_weights=tied_weights,
        callbacks=[("start", StartOfTraining())],
    ).fit(X)
    _at_start(ae)
    mean = X.mean(axis=0)
    logits = np.log(mean / (1 - mean)) + np.zeros_like(X)
    if tied_weights:
        pca = PCA(n_components=3).fit(X)
        logits += pca.inverse_transform(pca.transform(X)) - mean
    np.testing.assert_allclose(
        ae.inverse_transform(ae.transform(X)), 1 / (1 + np.exp(-logits)), atol=1e-5
    )


def test_sigmoid_codes_start_near_pca():
    # sparsity='kl' codes go through a sigmoid: the start is PCA through the
    # sigmoid's near-linear range, close to PCA but not equal to it
    X = make_data(n_samples=200, n_features=8)
    ae = AutoencoderTransformer(
        **{**FAST, "n_components": 3}, sparsity="kl", callbacks=[("start", StartOfTraining())]
    ).fit(X)
    _at_start(ae)
    Xs = (X - ae.mean_) / ae.scale_
    pca = PCA(n_components=3).fit(Xs)
    pca_error = np.mean((pca.inverse_transform(pca.transform(Xs)) - Xs) ** 2)
    start_error = np.mean(((ae.inverse_transform(ae.transform(X)) - X) / ae.scale_) ** 2)
    assert pca_error <= start_error < 1.5 * pca_error
    Z = ae.transform(X)
    assert 0 < Z.min() and Z.max() < 1


def test_early_stopping_keeps_the_start_when_no_epoch_beats_it():
    # A learning rate far too large: every epoch is worse on the validation
    # rows than the PCA start (of the training part), and fit returns PCA
    # (of every row).
    X = make_data(n_samples=200)
    ae = AutoencoderTransformer(
        **{**FAST, "early_stopping": True, "max_iter": 3, "learning_rate": 0.5},
        callbacks=[("start", StartOfTraining())],
    ).fit(X)
    Xs = (X - ae.mean_) / ae.scale_
    pca = PCA(n_components=ae.n_components).fit(Xs)
    np.testing.assert_allclose(ae.transform(X), pca.transform(Xs), atol=1e-4)
    # what was restored before that is the start itself: the weights that
    # PCA's start does not set (the branches' hidden layers) are the start's
    start = dict(ae.net_.callbacks_)["start"].state_
    first = ae.module_.encoder.branch[0].weight
    torch.testing.assert_close(first, start["encoder.branch.0.weight"], rtol=0, atol=0)
    initial = dict(ae.net_.callbacks_)["early_stopping"].initial_score_
    assert ae.best_validation_score_ == -initial > max(ae.validation_scores_)


def test_early_stopping_from_the_start_is_generic():
    # the mechanism lives in the base class: another estimator gets it too
    from sklearn_ae import AEOutlierDetector

    X = make_data(n_samples=200)
    # learning_rate=0.3 makes every epoch worse than the start (validation
    # loss 5 to 90 against 0.8) without tripping the divergence check
    # (which a learning rate of 10 now does)
    det = AEOutlierDetector(
        hidden_layer_sizes=(8,), early_stopping=True, max_iter=3, learning_rate=0.3,
        random_state=0, device="cpu", callbacks=[("start", StartOfTraining())],
    ).fit(X)
    start = dict(det.net_.callbacks_)["start"].state_
    for name, value in det.module_.state_dict().items():
        torch.testing.assert_close(value, start[name], rtol=0, atol=0)


def test_early_stopping_patience_covers_a_hundred_steps_on_small_data():
    # 100 rows: 90 training rows in one batch, one step per epoch. Nothing
    # improves by tol, yet training runs 100 steps before it gives up.
    X = make_data(n_samples=100)
    ae = AutoencoderTransformer(
        **{**FAST, "early_stopping": True, "max_iter": 300, "n_iter_no_change": 2,
           "tol": 10.0, "batch_size": 90}
    ).fit(X)
    assert ae.n_iter_ == 100
    # batch_size='auto' on 90 training rows: 16 rows, 6 steps per epoch
    ae = AutoencoderTransformer(
        **{**FAST, "early_stopping": True, "max_iter": 300, "n_iter_no_change": 2,
           "tol": 10.0}
    ).fit(X)
    assert ae.net_.batch_size == 16
    assert ae.n_iter_ == 17  # ceil(100 / 6)
    ae = AutoencoderTransformer(
        **{**FAST, "early_stopping": True, "max_iter": 300, "n_iter_no_change": 2,
           "tol": 10.0, "batch_size": 9}
    ).fit(X)
    assert ae.n_iter_ == 10  # 10 steps per epoch


def test_near_constant_feature_does_not_blow_up_held_out_values():
    from sklearn_ae._data import SCALE_FLOOR, feature_scaling

    X = make_data(n_samples=500)
    X[:, 0] = 0.0
    X[0, 0] = 1.0  # one rare value: standard deviation 0.045
    mean, scale = feature_scaling(X)
    # the floor: a tenth of the smaller of the feature's own deviation from
    # its usual value (1) and the median feature's standard deviation
    typical = np.median(X.std(axis=0))
    assert typical < 1.0
    assert scale[0] == pytest.approx(SCALE_FLOOR * typical)
    np.testing.assert_allclose(scale[1:], X.std(axis=0)[1:])  # the others: z-scores
    # a held-out 1 is 10 typical spreads away, not 22 standard deviations
    assert (1.0 - mean[0]) / scale[0] < 1.0 / (SCALE_FLOOR * typical) * 1.01


def test_scaling_of_a_feature_does_not_depend_on_the_units_of_the_others():
    # Mixed units (1e-6 to 1e6): every feature that is not nearly constant
    # is z-scored exactly, in any units (with a floor at a tenth of the
    # median feature's spread alone, the small-unit features were scaled by
    # the large ones' and dropped out of the loss).
    from sklearn_ae._data import SCALE_FLOOR, feature_scaling

    X = make_data(n_samples=400, n_features=8)
    X[:, 0] = 0.0
    X[:3, 0] = [1.0, 2.0, 1.5]  # nearly constant
    units = 10.0 ** np.linspace(-6, 6, X.shape[1])
    for data in (X, X * units):
        mean, scale = feature_scaling(data)
        std = data.std(axis=0)
        np.testing.assert_allclose(mean, data.mean(axis=0), rtol=1e-9)
        np.testing.assert_allclose(scale[1:], std[1:], rtol=1e-9)
        # the nearly constant feature: at most a tenth of its own deviation
        own_floor = SCALE_FLOOR * np.sqrt(np.mean(data[:3, 0] ** 2))
        assert std[0] <= scale[0] <= max(std[0], own_floor) * (1 + 1e-9)
    # data z-scored already are left as they are
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    np.testing.assert_allclose(feature_scaling(Z)[1], 1.0, rtol=1e-9)

    # The same fit in any units: the error per feature, in that feature's
    # own z-units, comes out the same (training amplifies float rounding,
    # so the codes agree only to about 1e-2, as they do for X * (1 + 1e-7);
    # 2 steps an epoch, as the rounding grows with the number of steps).
    params = dict(n_components=3, max_iter=4, batch_size=256, early_stopping=False,
                  random_state=0)
    errors = []
    for data in (X, X * units):
        ae = AutoencoderTransformer(**params).fit(data)
        residual = (ae.inverse_transform(ae.transform(data)) - data) / data.std(axis=0)
        errors.append(np.mean(residual[:, 1:] ** 2, axis=0))
    np.testing.assert_allclose(errors[1], errors[0], rtol=0.02)


def test_digits_defaults_beat_pca_clearly():
    # Held-out reconstruction error on digits at n_components=8, all defaults.
    X, _ = load_digits(return_X_y=True)
    X_train, X_test = train_test_split(X, test_size=0.3, random_state=0)
    pca = PCA(n_components=8).fit(X_train)
    pca_error = np.mean((pca.inverse_transform(pca.transform(X_test)) - X_test) ** 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ae = AutoencoderTransformer(n_components=8, random_state=0, device="cpu").fit(X_train)
    ae_error = -ae.score(X_test)
    assert ae_error <= 0.75 * pca_error, ae_error / pca_error


# ------------------------------------------ the linear model carried inside
@pytest.mark.parametrize("hidden", [(12,), (16, 12), (40, 24, 12)])
def test_carried_linear_path_computes_the_linear_map(hidden):
    from sklearn_ae._networks import CarriedLinearPath

    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.normal(size=(50, 9)), dtype=torch.float32)
    for n_in, n_out in ((9, 3), (3, 9)):
        path = CarriedLinearPath([n_in, *hidden, n_out])
        weight = rng.normal(size=(n_out, n_in))
        bias = rng.normal(size=n_out)
        path.set_linear(weight, bias)
        xin = x if n_in == 9 else x[:, :3]
        expected = xin.double().numpy() @ weight.T + bias
        np.testing.assert_allclose(path(xin).detach().numpy(), expected, atol=1e-5)
        # the other hidden units add nothing yet, but they are there and learn
        last = path[-1]
        assert torch.all(last.weight[:, 2 * path.n_carried :] == 0)
        path(xin).sum().backward()
        assert last.weight.grad[:, 2 * path.n_carried :].abs().sum() > 0


@pytest.mark.parametrize(
    "options, carried",
    [
        ({}, True),  # 4 * 3 <= 16: PCA rides in the hidden layers, no extra layer
        ({"hidden_layer_sizes": (16, 8)}, False),  # no room in the 8-unit layer
        ({"dropout": 0.2}, False),
        ({"batch_norm": True}, False),
        ({"activation": "tanh"}, False),
        ({"tied_weights": True}, False),
    ],
)
def test_where_the_linear_model_can_be_carried(options, carried):
    from sklearn_ae._networks import CarriedLinearPath, MLPAutoencoder, WithLinearPath

    options = {"hidden_layer_sizes": (16,), **options}
    module = MLPAutoencoder(12, 3, carry=True, **options)
    expected = CarriedLinearPath if carried else WithLinearPath
    assert isinstance(module.encoder, expected) and isinstance(module.decoder, expected)
    if carried:  # exactly the parameters of the plain network
        n_weights = sum(p.numel() for p in module.parameters())
        assert n_weights == (12 * 16 + 16 + 16 * 3 + 3) + (3 * 16 + 16 + 16 * 12 + 12)
    # the estimators keep separate linear paths (see MLPAutoencoder's carry)
    ae = AutoencoderTransformer(**{**FAST, "n_components": 3, "max_iter": 1, **options})
    ae.fit(make_data(n_samples=60, n_features=12))
    assert isinstance(ae.module_.encoder, WithLinearPath)
    # whose branches' output layers have no bias beside the linear path's
    if not options.get("tied_weights"):
        assert ae.module_.encoder.branch[-1].bias is None
        assert ae.module_.decoder.branch[-1].bias is None


def test_start_is_kept_unless_an_epoch_beats_it_on_most_rows():
    # 10 validation rows: the best epoch's mean loss is a third below the PCA
    # start's, but it is better on too few rows for the sign test at 5%
    # (one step per epoch: the 90 training rows in one batch)
    X = make_data(n_samples=100, seed=1)
    ae = AutoencoderTransformer(
        **{**FAST, "max_iter": 40, "early_stopping": True, "n_iter_no_change": 3,
           "batch_size": 90},
        callbacks=[("start", StartOfTraining())],
    ).fit(X)
    stopper = dict(ae.net_.callbacks_)["early_stopping"]
    assert max(ae.validation_scores_) > -0.9 * stopper.initial_score_
    assert stopper.improvement_p_ >= 0.05
    assert stopper.kept_start_
    assert ae.best_validation_score_ == -stopper.initial_score_
    # training started from the PCA of the training part; what comes out is
    # the PCA of every row
    Xs = (X - ae.mean_) / ae.scale_
    pca = PCA(n_components=ae.n_components).fit(Xs)
    expected = pca.inverse_transform(pca.transform(Xs)) * ae.scale_ + ae.mean_
    np.testing.assert_allclose(
        ae.inverse_transform(ae.transform(X)), expected, atol=1e-5 * np.abs(X).max()
    )
    start = dict(ae.net_.callbacks_)["start"].state_
    assert not all(torch.equal(v, start[k]) for k, v in ae.module_.state_dict().items())
    # with more rows the same kind of improvement passes the test
    ae = AutoencoderTransformer(
        **{**FAST, "max_iter": 40, "early_stopping": True, "n_iter_no_change": 3}
    ).fit(make_data(n_samples=1000, seed=1))
    stopper = dict(ae.net_.callbacks_)["early_stopping"]
    assert stopper.improvement_p_ < 1e-6 and not stopper.kept_start_


def test_sign_test_is_the_binomial_tail():
    from sklearn_ae._callbacks import sign_test

    # P(X >= k), X ~ Binomial(n, 1/2), counted by hand
    assert sign_test(12, 15) == pytest.approx((455 + 105 + 15 + 1) / 2**15)
    assert sign_test(16, 16) == pytest.approx(2.0**-16)
    assert sign_test(0, 9) == 1.0
    assert sign_test(0, 0) == 1.0  # every row tied: no evidence



def test_replacing_the_start_needs_a_lower_mean_loss_than_what_it_falls_back_on(monkeypatch):
    # The fallback (normally PCA of every row) is here a network trained for
    # long: a short fit that beats its own start on most validation rows
    # still does not beat that one on mean, and the fallback comes out.
    from sklearn_ae._callbacks import EarlyStoppingFromStart

    X = make_data(n_samples=1000, seed=1)
    params = {**FAST, "early_stopping": True, "n_iter_no_change": 3}
    strong = AutoencoderTransformer(**{**params, "max_iter": 200}).fit(X)
    short = AutoencoderTransformer(**{**params, "max_iter": 15}).fit(X)
    stopper = dict(short.net_.callbacks_)["early_stopping"]
    assert stopper.improvement_p_ < 0.05 and not stopper.kept_start_
    assert strong.best_validation_score_ > short.best_validation_score_

    original = EarlyStoppingFromStart.restore_if_start_wins

    def fall_back_on_strong(self, state_dict, start):
        original(self, copy.deepcopy(strong.module_.state_dict()), start)

    monkeypatch.setattr(EarlyStoppingFromStart, "restore_if_start_wins", fall_back_on_strong)
    again = AutoencoderTransformer(**{**params, "max_iter": 15}).fit(X)
    stopper = dict(again.net_.callbacks_)["early_stopping"]
    assert stopper.improvement_p_ < 0.05 and stopper.kept_start_
    for name, value in again.module_.state_dict().items():
        torch.testing.assert_close(value, strong.module_.state_dict()[name], rtol=0, atol=0)
