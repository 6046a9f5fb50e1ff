"""The fast paths of training and inference keep the estimator's behaviour."""


import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

import sklearn_ae._data
from sklearn_ae import AutoencoderTransformer
from sklearn_ae._base import torch_threads
from sklearn_ae._data import feature_scaling

FAST = dict(hidden_layer_sizes=(16,), max_iter=4, random_state=0, device="cpu")


def make_data(n_samples=150, n_features=6, seed=0, dtype=np.float64):
    rng = np.random.RandomState(seed)
    X = np.tanh(rng.randn(n_samples, 2) @ rng.randn(2, n_features))
    return (3 * X + 5 + 0.05 * rng.randn(n_samples, n_features)).astype(dtype)


class ThreadsSeen(Callback):
    """Records torch's thread count at the start of each epoch."""

    def initialize(self):
        self.seen = []
        return self

    def on_epoch_begin(self, net, **kwargs):
        self.seen.append(torch.get_num_threads())


class EveryBatch(Callback):
    """A per-batch hook, which sends training through skorch's own step."""

    def on_batch_end(self, net, **kwargs):
        pass


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fit_and_inference_leave_the_input_unchanged(dtype):
    X = make_data(dtype=dtype)
    before = X.copy()
    ae = AutoencoderTransformer(**FAST).fit(X)
    ae.transform(X)
    ae.score_samples(X)
    np.testing.assert_array_equal(X, before)


def test_n_jobs_sets_threads_for_fit_and_restores_them():
    callback = ThreadsSeen()
    caller = torch.get_num_threads()
    ae = AutoencoderTransformer(**FAST, n_jobs=2, callbacks=[("threads", callback)])
    ae.fit(make_data())
    assert ae.net_.callbacks_[-1][1].seen == [2] * ae.n_iter_
    assert torch.get_num_threads() == caller
    ae.set_params(n_jobs=1)
    ae.transform(make_data())
    assert torch.get_num_threads() == caller


def test_n_jobs_default_trains_on_one_thread():
    ae = AutoencoderTransformer(**FAST, callbacks=[("threads", ThreadsSeen())])
    ae.fit(make_data())
    assert set(ae.net_.callbacks_[-1][1].seen) == {1}


def test_torch_threads_restores_the_callers_setting_when_nested():
    caller = torch.get_num_threads()
    target = 1 if caller != 1 else 2
    with torch_threads(target):
        with torch_threads(target):
            assert torch.get_num_threads() == target
        assert torch.get_num_threads() == target
    assert torch.get_num_threads() == caller


def test_n_jobs_zero_is_rejected():
    with pytest.raises(ValueError, match="n_jobs=0"):
        AutoencoderTransformer(**FAST, n_jobs=0).fit(make_data())


def test_fast_step_matches_skorchs_own_step():
    # A per-batch callback makes the engine take skorch's train_step; the
    # fitted network must be the same as the fast step's, bit for bit (the
    # gradients are). The fast step's loss is a dot product of the
    # residual, summed in another order than F.mse_loss: the same to
    # float32 rounding.
    X = make_data()
    fast = AutoencoderTransformer(**FAST).fit(X)
    hooked = AutoencoderTransformer(**FAST, callbacks=[EveryBatch()]).fit(X)
    assert fast.n_iter_ == hooked.n_iter_
    np.testing.assert_allclose(fast.loss_curve_, hooked.loss_curve_, rtol=1e-6)
    np.testing.assert_array_equal(fast.transform(X), hooked.transform(X))


def test_epoch_loss_is_the_mean_loss_over_rows():
    # Batches of 64, 64 and 22 rows: the epoch loss weights each batch's
    # mean by its size. Check it against a forward pass with the weights
    # frozen (lr=0 keeps them at their initial values).
    X = make_data(n_samples=150)
    ae = AutoencoderTransformer(
        **{**FAST, "max_iter": 1}, batch_size=64, learning_rate=1e-30,
        early_stopping=False,
    ).fit(X)
    Xs = torch.as_tensor((X - ae.mean_) / ae.scale_, dtype=torch.float32)
    with torch.no_grad():
        expected = torch.nn.functional.mse_loss(ae.module_(Xs), Xs).item()
    assert ae.loss_curve_[0] == pytest.approx(expected, rel=1e-5)


def test_float64_inference_does_not_depend_on_the_batch():
    X = make_data(n_samples=40)
    ae = AutoencoderTransformer(**FAST).fit(X)
    full = ae.score_samples(X)
    one_by_one = np.concatenate([ae.score_samples(row[None]) for row in X])
    np.testing.assert_allclose(full, one_by_one, rtol=1e-12, atol=1e-14)
    assert ae.transform(X).dtype == np.float64
    assert ae.transform(X.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blockwise_scaling_matches_numpy(monkeypatch, dtype):
    monkeypatch.setattr(sklearn_ae._data, "_SCALING_ROWS", 7)
    X = make_data(n_samples=50, dtype=dtype)
    X[:, 2] = 4.0  # a constant feature: scale 1 (own rule) or the floor (median rule)
    X64 = X.astype(np.float64)
    expected = X64.std(axis=0)
    for rule in ("own", "median"):
        mean, scale = feature_scaling(X, rule=rule)
        np.testing.assert_allclose(mean, X64.mean(axis=0), rtol=1e-12)
        floor = sklearn_ae._data.SCALE_FLOOR * np.median(np.delete(expected, 2))
        expected[2] = 1.0 if rule == "own" else floor
        np.testing.assert_allclose(scale, expected, rtol=1e-10)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_float32_input_trains_like_the_same_values_in_float64(early_stopping):
    # float32 input is kept as the caller's array and standardized batch by
    # batch in float32; float64 input is standardized once in float64, then
    # narrowed. Same values, the same training up to float32 rounding of
    # the standardized rows.
    X32 = make_data(n_samples=130, dtype=np.float32)
    X64 = X32.astype(np.float64)
    params = dict(**FAST, batch_size=32, early_stopping=early_stopping)
    a = AutoencoderTransformer(**params).fit(X32)
    b = AutoencoderTransformer(**params).fit(X64)
    assert a.n_iter_ == b.n_iter_
    # (Adam turns rounding-level differences in tiny gradients into
    # steps of the learning rate: 0.1% in the losses after 4 epochs)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=5e-3)
    if early_stopping:
        np.testing.assert_allclose(a.validation_scores_, b.validation_scores_, rtol=5e-3)
    # codes of spread about 4; a wrong scaling of a batch would move them by 1s
    np.testing.assert_allclose(a.transform(X32), b.transform(X32), atol=0.05)


class TrainingDataSeen(Callback):
    """Records whether the training data was kept whole on the device."""

    def initialize(self):
        self.resident = []
        return self

    def on_train_begin(self, net, X=None, **kwargs):
        self.resident.append(X.resident)


def _trained_callback(est, cls):
    # The estimator trains with a copy of each user callback.
    (used,) = [cb for _, cb in est.net_.callbacks_ if isinstance(cb, cls)]
    return used


def _training_data_seen(est):
    return _trained_callback(est, TrainingDataSeen).resident


def test_fits_on_device_keeps_data_resident_up_to_half_the_free_gpu_memory(
    monkeypatch,
):
    from sklearn_ae._data import fits_on_device

    free = 8 * 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 2 * free))
    assert fits_on_device(free // 2, torch.device("cuda"))
    assert not fits_on_device(free // 2 + 1, torch.device("cuda"))
    assert fits_on_device(10 * free, torch.device("cpu"))  # host memory: always


@pytest.mark.parametrize("early_stopping", [False, True])
def test_training_data_that_does_not_fit_the_device_streams_from_the_host(
    monkeypatch, early_stopping
):
    # What a GPU too small for the training set gets: batches copied from
    # host memory one at a time. Same batches, same result as resident data
    # (up to the order of rows inside a batch, i.e. float rounding).
    X = make_data(300, dtype=np.float32)
    params = dict(FAST, early_stopping=early_stopping, validation_fraction=0.2)
    seen = TrainingDataSeen()
    resident = AutoencoderTransformer(**params, callbacks=[seen]).fit(X)
    monkeypatch.setattr(sklearn_ae._data, "fits_on_device", lambda nbytes, device: False)
    streamed = AutoencoderTransformer(**params, callbacks=[seen]).fit(X)
    assert _training_data_seen(resident) == [True]
    assert _training_data_seen(streamed) == [False]
    # rtol and atol 1e-3: from the PCA start (a stationary point of the
    # linear paths) Adam's normalised steps follow float rounding more than
    # from a random one (loss curves measured 1.6e-4 apart after 5 epochs)
    np.testing.assert_allclose(streamed.loss_curve_, resident.loss_curve_, rtol=1e-3)
    np.testing.assert_allclose(streamed.transform(X), resident.transform(X), atol=1e-3)


def test_out_of_memory_while_moving_the_training_set_falls_back_to_the_host(
    monkeypatch,
):
    from sklearn_ae._data import TensorData

    calls = []
    move = TensorData._to_device

    def out_of_memory(self, rows):
        calls.append(len(rows))
        if len(calls) == 1:  # the whole set: the device is full
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return move(self, rows)

    monkeypatch.setattr(TensorData, "_to_device", out_of_memory)
    X = make_data(40)
    data = TensorData(X, mean=X.mean(0), scale=X.std(0), resident=True)
    assert not data.resident and calls == [40]
    batch, _ = next(data.batches(16))
    np.testing.assert_allclose(
        batch.numpy(), ((X[:16] - X.mean(0)) / X.std(0)).astype(np.float32), rtol=1e-5
    )


class ForwardDtypes(Callback):
    """Records the dtypes of the Linear layers' outputs during the training
    epochs (training and validation passes; not the VAE's full-precision
    pass at the end of training, which bounds its branches' inputs)."""

    def initialize(self):
        self.seen = set()
        self.in_epochs = set()
        return self

    def on_train_begin(self, net, **kwargs):
        for layer in net.module_.modules():
            if isinstance(layer, torch.nn.Linear):
                layer.register_forward_hook(lambda mod, i, out: self.seen.add(out.dtype))

    def on_epoch_end(self, net, **kwargs):
        self.in_epochs = set(self.seen)


def _forward_dtypes(est):
    return _trained_callback(est, ForwardDtypes).in_epochs


@pytest.mark.parametrize("estimator_class", ["AutoencoderTransformer", "VAETransformer"])
def test_mixed_precision_trains_in_bfloat16_and_infers_in_full_precision(estimator_class):
    import sklearn_ae

    X = make_data(300, dtype=np.float32)
    params = dict(FAST, max_iter=10, callbacks=[ForwardDtypes()])
    cls = getattr(sklearn_ae, estimator_class)
    full = cls(**params).fit(X)
    mixed = cls(**params, mixed_precision=True).fit(X)
    assert _forward_dtypes(full) == {torch.float32}
    assert _forward_dtypes(mixed) == {torch.bfloat16}
    # The fit itself is float32 (weights, optimizer state, recorded losses) ...
    assert all(p.dtype == torch.float32 for p in mixed.module_.parameters())
    # ... and close to the float32 fit: bfloat16 rounds each product to
    # about 3 significant digits.
    np.testing.assert_allclose(mixed.loss_curve_, full.loss_curve_, rtol=0.05)
    assert mixed.loss_curve_ != full.loss_curve_
    # Inference is full precision: same model, same numbers, in float64 too.
    Z = mixed.transform(X)
    assert Z.dtype == np.float32 and np.isfinite(Z).all()
    np.testing.assert_allclose(
        mixed.transform(X.astype(np.float64)), Z, rtol=1e-4, atol=1e-5
    )


def test_mixed_precision_on_a_gpu_without_bfloat16_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Old GPU")
    est = AutoencoderTransformer(**dict(FAST, device="cuda"), mixed_precision=True)
    with pytest.raises(ValueError, match=r"mixed_precision=True .*Old GPU"):
        est.fit(make_data())
    assert not hasattr(est, "net_")
