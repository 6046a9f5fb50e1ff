"""partial_fit on the three estimators (issue 16): one epoch a call, the
running scaling, n_features_in_ across calls, warm_start interplay, all or
nothing, offset_ kept current, and memory-mapped input streamed."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError

from sklearn_ae import AEOutlierDetector, AutoencoderTransformer, VAETransformer
from sklearn_ae._data import RunningScaling, TensorData, feature_scaling, is_memory_mapped

FAST = dict(hidden_layer_sizes=(16,), device="cpu", random_state=0)


def _digits_split():
    X = load_digits().data
    order = np.random.RandomState(0).permutation(len(X))
    X = X[order]
    return X[:1600], X[1600:]


def _heldout_mse(est, X):
    return float(np.mean((est.inverse_transform(est.transform(X)) - X) ** 2))


@pytest.mark.parametrize("sparse", [False, True])
def test_running_scaling_matches_whole_data(sparse):
    rng = np.random.RandomState(0)
    X = rng.normal(3.0, [1e-3, 1.0, 50.0, 0.0], size=(1003, 4))
    X[:, 3] = 7.0
    moments = RunningScaling(4)
    for chunk in np.array_split(X, 7):
        if sparse:
            import scipy.sparse as sp

            chunk = sp.csr_matrix(chunk)
        moments.update(chunk)
    mean, scale = moments.scaling()
    expected_mean, expected_scale = feature_scaling(X)
    assert moments.n_samples_seen == 1003
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-12)
    np.testing.assert_allclose(scale, expected_scale, rtol=1e-9)


@pytest.mark.parametrize("Estimator", [AutoencoderTransformer, VAETransformer])
def test_ten_chunks_match_fit_with_the_same_passes(Estimator):
    # Issue 16's criterion: 10 chunks, the same number of passes and of
    # optimizer steps (batch_size fixed), held-out error within 10% of fit.
    X, X_test = _digits_split()
    n_passes = 15
    params = dict(n_components=8, batch_size=32, learning_rate=3e-3, **FAST)
    whole = Estimator(max_iter=n_passes, early_stopping=False, **params)
    with pytest.warns(Warning):  # ConvergenceWarning: max_iter reached
        whole.fit(X)
    chunked = Estimator(**params)
    chunks = np.array_split(X, 10)
    for _ in range(n_passes):
        for chunk in chunks:
            chunked.partial_fit(chunk)
    assert chunked.n_iter_ == 10 * n_passes
    assert chunked.n_samples_seen_ == 10 * n_passes * len(X) // 10
    err_whole, err_chunked = _heldout_mse(whole, X_test), _heldout_mse(chunked, X_test)
    assert err_chunked <= 1.1 * err_whole, (err_chunked, err_whole)
    # The scaling is that of all rows seen (each row seen n_passes times).
    mean, scale = feature_scaling(X, rule=chunked._scaling_rule())
    np.testing.assert_allclose(chunked.mean_, mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(chunked.scale_, scale, rtol=1e-6)


@pytest.mark.parametrize("Estimator", [AutoencoderTransformer, VAETransformer, AEOutlierDetector])
def test_one_epoch_per_call_without_early_stopping(Estimator):
    X = np.random.RandomState(0).normal(size=(60, 5))
    est = Estimator(n_components=2, early_stopping=True, max_iter=50, **FAST)
    with pytest.raises(NotFittedError):
        est.transform(X) if hasattr(est, "transform") else est.predict(X)
    est.partial_fit(X[:30])
    assert est.n_features_in_ == 5
    assert est.n_iter_ == 1 and len(est.loss_curve_) == 1
    est.partial_fit(X[30:])
    assert est.n_iter_ == 2 and len(est.loss_curve_) == 2
    assert est.validation_scores_ is None


def test_first_call_starts_from_every_row_whatever_early_stopping():
    # partial_fit holds out no validation rows, but its first call built the
    # PCA start on 90% of the chunk when early_stopping=True (the default):
    # 0.39 away from PCA of the chunk, against 8e-8 with early_stopping=False.
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    rng = np.random.RandomState(0)
    X = rng.randn(40, 6) @ rng.randn(6, 6)
    codes = PCA(2).fit_transform(StandardScaler().fit_transform(X))
    for early_stopping in (True, False):
        ae = AutoencoderTransformer(
            2, learning_rate=1e-12, early_stopping=early_stopping, **FAST
        ).partial_fit(X)
        Z = ae.transform(X)
        signs = np.sign(np.sum(Z * codes, axis=0))
        np.testing.assert_allclose(Z * signs, codes, atol=1e-5)


@pytest.mark.parametrize("Estimator", [AutoencoderTransformer, VAETransformer])
def test_small_first_chunk_is_not_refused_for_a_validation_split(Estimator):
    # A chunk of one row (two with batch norm) was refused because
    # early_stopping's validation_fraction would leave no training rows,
    # a split that partial_fit does not make.
    X = np.random.RandomState(0).randn(10, 4)
    est = Estimator(n_components=2, **FAST).partial_fit(X[:1])
    assert est.n_samples_seen_ == 1 and np.isfinite(est.transform(X)).all()
    if Estimator is AutoencoderTransformer:
        est = Estimator(n_components=2, batch_norm=True, **FAST).partial_fit(X[:2])
        assert np.isfinite(est.transform(X)).all()


@pytest.mark.parametrize("Estimator", [AutoencoderTransformer, VAETransformer, AEOutlierDetector])
def test_n_features_checked_and_failed_call_changes_nothing(Estimator):
    X = np.random.RandomState(0).normal(size=(40, 5))
    est = Estimator(n_components=2, **FAST).partial_fit(X)
    state = {k: v.clone() for k, v in est.module_.state_dict().items()}
    before = (est.n_iter_, est.n_samples_seen_, est.mean_.copy())
    with pytest.raises(ValueError, match="5 features"):
        est.partial_fit(X[:, :4])
    X_bad = X.copy()
    X_bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        est.partial_fit(X_bad)
    assert (est.n_iter_, est.n_samples_seen_) == before[:2]
    np.testing.assert_array_equal(est.mean_, before[2])
    for k, v in est.module_.state_dict().items():
        torch.testing.assert_close(v, state[k], rtol=0, atol=0)


def test_diverging_partial_fit_changes_nothing():
    X = np.random.RandomState(0).normal(size=(200, 6))
    est = AutoencoderTransformer(n_components=2, **FAST).partial_fit(X)
    est.set_params(learning_rate=1e6, optimizer=torch.optim.SGD, batch_size=8)
    with pytest.raises(ValueError, match="diverged"):
        for _ in range(5):
            # the state before each call: the one that raises changes nothing
            state = {k: v.clone() for k, v in est.module_.state_dict().items()}
            est.partial_fit(X * 1e3)
    for k, v in est.module_.state_dict().items():
        assert torch.isfinite(v).all()
        torch.testing.assert_close(v, state[k], rtol=0, atol=0)
    assert est.n_iter_ >= 1


def test_warm_start_interplay():
    X = np.random.RandomState(0).normal(size=(80, 5))
    est = AutoencoderTransformer(n_components=2, max_iter=3, **FAST)
    with pytest.warns(Warning):
        est.fit(X)
    assert est.n_iter_ == 3
    est.partial_fit(X)  # partial_fit continues a fitted network
    assert est.n_iter_ == 4 and est.n_samples_seen_ == 160
    with pytest.warns(Warning):
        est.fit(X)  # fit starts anew
    assert est.n_iter_ == 3 and est.n_samples_seen_ == 80
    est.partial_fit(X)
    est.set_params(warm_start=True)
    with pytest.warns(Warning):
        est.fit(X)  # warm_start keeps training the partial_fit network
    assert est.n_iter_ == 7


def test_outlier_offset_kept_current():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(1200, 6))
    det = AEOutlierDetector(n_components=2, contamination=0.1, **FAST)
    offsets = []
    for chunk in np.array_split(X, 6):
        det.partial_fit(chunk)
        offsets.append(det.offset_)
        # offset_ is the 10th percentile of the kept rows' current scores
        # (here every row seen so far).
        kept = X[: 200 * len(offsets)]
        assert np.mean(det.predict(kept) == -1) == pytest.approx(0.1, abs=0.01)
    assert len(set(offsets)) == len(offsets)
    # Rows far from the data are outliers.
    assert (det.predict(rng.normal(size=(20, 6)) * 20) == -1).mean() > 0.9


def test_outlier_backbone_without_partial_fit():
    from sklearn.decomposition import PCA

    X = np.random.RandomState(0).normal(size=(50, 4))
    det = AEOutlierDetector(backbone=PCA(2), device="cpu")
    with pytest.raises(ValueError, match="partial_fit"):
        det.partial_fit(X)
    assert not hasattr(det, "offset_")
    det = AEOutlierDetector(backbone="vae", n_components=2, **FAST).partial_fit(X)
    det.partial_fit(X)
    assert det.backbone_.n_iter_ == 2
    assert det.predict(X).shape == (50,)


def test_memmap_is_streamed_and_fits_as_in_memory(tmp_path):
    X = np.random.RandomState(0).normal(size=(300, 7)).astype(np.float32)
    path = tmp_path / "X.dat"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    readonly = np.memmap(path, dtype=np.float32, mode="r", shape=X.shape)
    assert is_memory_mapped(readonly) and is_memory_mapped(np.asarray(readonly)[10:])
    assert not is_memory_mapped(X)
    np.save(tmp_path / "X.npy", X)
    assert is_memory_mapped(np.load(tmp_path / "X.npy", mmap_mode="r"))
    data = TensorData(np.asarray(readonly), device="cpu", resident=not is_memory_mapped(readonly))
    assert not data.resident
    params = dict(n_components=2, max_iter=3, early_stopping=False, **FAST)
    with pytest.warns(Warning):
        a = AutoencoderTransformer(**params).fit(X)
    with pytest.warns(Warning):
        b = AutoencoderTransformer(**params).fit(readonly)
    # the batches are the same rows in the same order: the same network
    np.testing.assert_array_equal(a.transform(X), b.transform(readonly))
    c = AutoencoderTransformer(**params).partial_fit(readonly)
    assert c.n_samples_seen_ == 300


def test_fit_shuffles_and_each_partial_fit_call_draws_its_own_order(monkeypatch):
    # Unshuffled batches, or one order repeated by every partial_fit call
    # with an int random_state, passed every test (a mutation audit).
    orders, shuffled = [], []
    randperm, batches = torch.randperm, TensorData.batches

    def spy_randperm(*args, **kwargs):
        out = randperm(*args, **kwargs)
        orders.append(out.clone())
        return out

    def spy_batches(self, *args, shuffle=False, **kwargs):
        shuffled.append(shuffle)
        return batches(self, *args, shuffle=shuffle, **kwargs)

    monkeypatch.setattr(torch, "randperm", spy_randperm)
    monkeypatch.setattr(TensorData, "batches", spy_batches)
    X = np.random.RandomState(0).randn(64, 5)
    AutoencoderTransformer(2, max_iter=2, early_stopping=False, **FAST).fit(X)
    assert any(shuffled)
    orders.clear()
    est = AutoencoderTransformer(2, **FAST).partial_fit(X)
    n_first = len(orders)
    est.partial_fit(X)
    assert n_first >= 1 and len(orders) > n_first
    assert not torch.equal(orders[n_first - 1], orders[-1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("Estimator", [AutoencoderTransformer, VAETransformer, AEOutlierDetector])
def test_rows_streamed_to_the_gpu_train_as_rows_held_there(Estimator, tmp_path, monkeypatch):
    # The shuffled order is drawn on the device whether the rows are held
    # there or streamed from the host (a memmap, or data too large for the
    # GPU): the same rows train the same network. Streamed batches drew it
    # from the CPU generator.
    import sklearn_ae._data as data_module

    X = np.random.RandomState(0).normal(size=(1000, 6)).astype(np.float32)
    X[:, 3] = X[:, 0] * X[:, 1]  # something to learn beyond PCA's start
    np.save(tmp_path / "X.npy", X)
    mm = np.load(tmp_path / "X.npy", mmap_mode="r")
    params = dict(n_components=2, batch_size=50, random_state=0, device="cuda")
    if Estimator is not AEOutlierDetector:
        # (early stopping could keep the PCA start both ways)
        params.update(max_iter=5, early_stopping=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        held = Estimator(**params).fit(X)
        from_file = Estimator(**params).fit(mm)
        monkeypatch.setattr(data_module, "fits_on_device", lambda nbytes, device: False)
        from_host = Estimator(**params).fit(X)
    np.testing.assert_array_equal(held.score_samples(X), from_file.score_samples(X))
    np.testing.assert_array_equal(held.score_samples(X), from_host.score_samples(X))


@pytest.mark.parametrize("Estimator", [AutoencoderTransformer, VAETransformer])
def test_memmap_split_for_early_stopping_stays_in_the_file(Estimator, tmp_path, monkeypatch):
    # Early stopping's held-out split (and the VAE's start) indexed the
    # memmap with row numbers, which copied 90% of the file into memory.
    X = np.random.RandomState(0).normal(size=(400, 6)).astype(np.float32)
    np.save(tmp_path / "X.npy", X)
    mm = np.load(tmp_path / "X.npy", mmap_mode="r")
    subsets = []
    subset = TensorData.subset

    def spy(self, index):
        new = subset(self, index)
        subsets.append(new._rows)
        return new

    monkeypatch.setattr(TensorData, "subset", spy)
    params = dict(n_components=2, max_iter=3, early_stopping=True, **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = Estimator(**params).fit(mm)
        a = Estimator(**params).fit(X)
    assert subsets and not any(isinstance(rows, np.ndarray) for rows in subsets)
    # A memmap's batches are read in file order, then put in the shuffled
    # order: the fits are the same, bit for bit. (Batches whose rows stayed
    # sorted summed in another order than on the array: the VAE's codes were
    # 0.006 apart after 3 epochs, and a default detector's scores up to 0.056.)
    np.testing.assert_array_equal(a.transform(X), b.transform(mm))
    assert a.score(X) == b.score(mm)


@pytest.mark.parametrize("Estimator", [AutoencoderTransformer, VAETransformer, AEOutlierDetector])
@pytest.mark.parametrize("fmt", ["csc", "coo"])
def test_partial_fit_takes_every_accepted_sparse_format(Estimator, fmt):
    # The detector's partial_fit sliced a COO chunk by rows: scipy's TypeError.
    import scipy.sparse as sp

    X = sp.random(60, 4, density=0.4, random_state=0, format="csr")
    params = dict(n_components=2, **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = Estimator(**params).partial_fit(X).partial_fit(X)
        est = Estimator(**params).partial_fit(X.asformat(fmt)).partial_fit(X.asformat(fmt))
    np.testing.assert_allclose(
        est.score_samples(X.asformat(fmt)), reference.score_samples(X), rtol=1e-5, atol=1e-6
    )
