"""The autoencoder family: each variant is a parameter of the shared
estimators, and each test here fails if its variant silently does nothing."""

import pickle

import numpy as np
import pytest
import torch

from sklearn_ae import AutoencoderTransformer

# early_stopping=False: most tests are about other behaviour, and a
# validation split changes the batches they count.
FAST = dict(
    hidden_layer_sizes=(16,), max_iter=5, early_stopping=False, random_state=0, device="cpu"
)


def make_data(n_samples=200, n_features=8, seed=0):
    """Low-rank data through a nonlinearity, plus noise."""
    rng = np.random.RandomState(seed)
    latent = rng.randn(n_samples, 2)
    W = rng.randn(2, n_features)
    return np.tanh(latent @ W) + 0.05 * rng.randn(n_samples, n_features)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Train with one intra-op thread, then restore the caller's setting.

    These small networks are all per-op overhead: on the shared 2-core test
    machine this module took 206 s with torch's default two threads and 38 s
    with one (the LSTM test alone 111 s against 6 s).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------ denoising
@pytest.mark.parametrize("noise", ["gaussian", "mask"])
def test_noise_corrupts_in_training_mode_only(noise):
    ae = AutoencoderTransformer(noise=noise, noise_level=0.3, **FAST).fit(make_data())
    corruption = ae.module_.corruption
    x = torch.ones(500, 8)
    corruption.train()
    corrupted = corruption(x)
    assert not torch.equal(corrupted, x)
    if noise == "mask":
        assert set(corrupted.unique().tolist()) == {0.0, 1.0}
        assert (corrupted == 0).float().mean().item() == pytest.approx(0.3, abs=0.02)
    else:
        assert (corrupted - x).std().item() == pytest.approx(0.3, rel=0.05)
    corruption.eval()
    assert torch.equal(corruption(x), x)


@pytest.mark.parametrize("noise", ["gaussian", "mask"])
def test_noise_changes_training_but_not_inference(noise):
    X = make_data()
    params = dict(FAST, max_iter=20, batch_size=32, learning_rate=1e-2)
    clean = AutoencoderTransformer(**params).fit(X)
    noisy = AutoencoderTransformer(noise=noise, noise_level=0.3, **params).fit(X)
    # The clean rows are easy to reconstruct (two latent factors); the
    # corrupted ones the training loss is measured on are not. (Ratios over
    # random_state 0-4: 1.8-2.0 with per-fit generators, 1.0-2.7 with the
    # global-seeded draws before issue 12.)
    assert noisy.loss_curve_[-1] > 1.5 * clean.loss_curve_[-1]
    # Inference is deterministic and uses the clean input.
    np.testing.assert_array_equal(noisy.score_samples(X), noisy.score_samples(X))
    X_rec = noisy.inverse_transform(noisy.transform(X))
    np.testing.assert_allclose(
        noisy.score_samples(X), -((X - X_rec) ** 2).mean(axis=1), rtol=1e-3
    )


def test_noise_is_reproducible_and_leaves_global_rng_alone():
    X = make_data()
    state = torch.random.get_rng_state()
    Z1 = AutoencoderTransformer(noise="gaussian", **FAST).fit_transform(X)
    assert torch.equal(torch.random.get_rng_state(), state)
    Z2 = AutoencoderTransformer(noise="gaussian", **FAST).fit_transform(X)
    np.testing.assert_array_equal(Z1, Z2)
    Z3 = AutoencoderTransformer(noise="gaussian", **{**FAST, "random_state": 1}).fit_transform(X)
    assert not np.allclose(Z1, Z3)


def test_validation_loss_uses_clean_inputs():
    import copy

    from skorch.callbacks import Callback

    class Start(Callback):
        def on_train_begin(self, net, **kwargs):
            self.state_ = copy.deepcopy(net.module_.state_dict())

    X = make_data(n_samples=300)
    ae = AutoencoderTransformer(
        noise="gaussian", noise_level=1.0, **{**FAST, "early_stopping": True},
        callbacks=[("start", Start())],
    ).fit(X)
    # no epoch beat the PCA start: its (clean) validation loss is the best score
    assert dict(ae.net_.callbacks_)["early_stopping"].kept_start_
    data_loss = -ae.best_validation_score_
    # the clean validation loss of the start's weights
    from sklearn_ae._data import TensorData

    data = TensorData(X, mean=ae.mean_, scale=ae.scale_, resident=True)
    valid = ae.net_.get_split_datasets(data)[1]
    ae.module_.load_state_dict(dict(ae.net_.callbacks_)["start"].state_)
    ae.module_.eval()
    with torch.no_grad():
        loss = ae.net_.criterion_(ae.module_(valid.X), valid.X).item()
    assert loss == pytest.approx(data_loss, rel=1e-4)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"noise": "salt"}, "noise"),
        ({"noise": "mask", "noise_level": 1.0}, "noise_level"),
        ({"noise": "gaussian", "noise_level": 0.0}, "noise_level"),
        ({"noise_level": -1.0}, "noise_level"),
    ],
)
def test_bad_noise_parameters_raise(params, match):
    with pytest.raises(ValueError, match=match):
        AutoencoderTransformer(**{**FAST, **params}).fit(make_data())


def _zero_in_place(batch, generator):
    return batch.zero_()


def _zeros(batch, generator):
    return torch.zeros_like(batch)


def test_noise_function_gets_a_copy_of_the_batch():
    # Zeroing the batch in place must not zero the loss's target as well:
    # the network still learns to reconstruct the clean rows, as with a
    # noise function that returns a new tensor.
    X = make_data()
    in_place = AutoencoderTransformer(noise=_zero_in_place, **FAST).fit(X)
    new = AutoencoderTransformer(noise=_zeros, **FAST).fit(X)
    np.testing.assert_allclose(in_place.loss_curve_, new.loss_curve_)
    assert min(in_place.loss_curve_) > 0.1


@pytest.mark.parametrize(
    "noise, match",
    [
        (lambda batch, generator: batch[:, :2], "noise=.*batch's shape"),
        (lambda batch, generator: batch.double(), "noise=.*dtype torch.float32, got torch.float64"),
        (lambda batch, generator: batch.half(), "noise=.*dtype torch.float32, got torch.float16"),
        (lambda batch, generator: batch.long(), "noise=.*dtype torch.float32, got torch.int64"),
        (lambda batch, generator: batch * float("nan"), "noise=.*finite"),
    ],
    ids=["shape", "float64", "float16", "int64", "nan"],
)
def test_noise_function_output_is_checked(noise, match):
    # A wrong dtype used to fail inside the network (a torch RuntimeError),
    # and NaN to be blamed on the network.
    with pytest.raises(ValueError, match=match):
        AutoencoderTransformer(noise=noise, **FAST).fit(make_data())


# --------------------------------------------------------------- tied weights
def test_tied_weights_share_the_encoder_weights():
    from sklearn_ae._networks import count_parameters

    X = make_data()
    params = dict(FAST, hidden_layer_sizes=(16, 4), n_components=2)
    untied = AutoencoderTransformer(**params).fit(X)
    tied = AutoencoderTransformer(tied_weights=True, **params).fit(X)
    def linear_weights(path):
        layers = [path.linear, *(path.branch or [])]
        return sum(m.weight.numel() for m in layers if isinstance(m, torch.nn.Linear))

    decoder_weights = linear_weights(untied.module_.decoder)
    encoder_weights = linear_weights(untied.module_.encoder)
    assert decoder_weights == encoder_weights
    n_untied = count_parameters(untied.module_)
    # the tied branch's output layer keeps a bias (it cancels the branch's
    # starting output), which the untied branch leaves to the linear path's
    assert count_parameters(tied.module_) == n_untied - decoder_weights + X.shape[1]
    assert count_parameters(tied.module_) < 0.6 * n_untied  # about half: biases stay
    # after training, each decoder layer still is its mirror's transpose
    assert torch.equal(tied.module_.decoder.linear.weight, tied.module_.encoder.linear.weight.t())
    encoder = [m for m in tied.module_.encoder.branch if isinstance(m, torch.nn.Linear)]
    decoder = [m for m in tied.module_.decoder.branch if hasattr(m, "weight")]
    for enc, dec in zip(encoder[::-1], decoder):
        assert torch.equal(dec.weight, enc.weight.t())
    assert len(tied.net_.optimizer_.param_groups[0]["params"]) == len(
        list(tied.module_.parameters())
    )


def test_tied_weights_leave_the_pca_start():
    # Silenced at the encoder branch's output layer (whose transpose is the
    # decoder branch's first layer), a tied network started at a saddle
    # point: every branch weight's gradient is zero at PCA's solution, and
    # training ended where it started (held-out error 1.000x PCA's here).
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA

    X = load_digits().data / 16
    X_train, X_test = X[:1200], X[1200:]
    params = dict(
        n_components=10, hidden_layer_sizes=(48, 24), activation="tanh",
        standardize=False, learning_rate=3e-3, batch_size=64, max_iter=60,
        random_state=0, device="cpu",
    )
    tied = AutoencoderTransformer(tied_weights=True, **params).fit(X_train)
    pca = PCA(10).fit(X_train)
    pca_error = np.mean((pca.inverse_transform(pca.transform(X_test)) - X_test) ** 2)
    assert -tied.score(X_test) < 0.9 * pca_error
    # It starts at PCA all the same.
    start = AutoencoderTransformer(
        tied_weights=True, **{**params, "max_iter": 1, "learning_rate": 1e-12,
                              "early_stopping": False}
    ).fit(X)
    full = PCA(10).fit(X)
    np.testing.assert_allclose(
        start.inverse_transform(start.transform(X_test)),
        full.inverse_transform(full.transform(X_test)), atol=1e-4,
    )


def test_tied_weights_train():
    X = make_data()
    ae = AutoencoderTransformer(
        tied_weights=True, **{**FAST, "max_iter": 20, "batch_size": 32}
    ).fit(X)
    # training moves from the PCA start without diverging
    assert ae.loss_curve_[-1] < ae.loss_curve_[0]
    clone_ = pickle.loads(pickle.dumps(ae))
    np.testing.assert_array_equal(clone_.transform(X), ae.transform(X))
    dec = clone_.module_.decoder.branch[0]
    assert dec.tied_to is clone_.module_.encoder.branch[-1]
    assert clone_.module_.decoder.linear.tied_to is clone_.module_.encoder.linear


# ------------------------------------------------------- linear autoencoder = PCA
def test_linear_autoencoder_finds_the_pca_subspace():
    from scipy.linalg import subspace_angles
    from sklearn.decomposition import PCA

    rng = np.random.RandomState(0)
    n_features, rank, n_components = 20, 5, 3
    basis = np.linalg.qr(rng.randn(n_features, rank))[0].T
    latent = rng.randn(3000, rank) * [3.0, 2.5, 2.0, 0.5, 0.3]
    X = latent @ basis + 0.1 * rng.randn(3000, n_features) + 1.0
    X_train, X_test = X[:2000], X[2000:]

    pca = PCA(n_components=n_components).fit(X_train)
    # Full-batch Adam: no minibatch noise left in the optimum it reaches.
    ae = AutoencoderTransformer(
        n_components=n_components, hidden_layer_sizes=(), activation="identity",
        standardize=False, learning_rate=3e-2, batch_size=2000, max_iter=600,
        tol=0.0, n_iter_no_change=600, early_stopping=False, random_state=0,
        device="cpu",
    ).fit(X_train)

    pca_error = np.mean((X_test - pca.inverse_transform(pca.transform(X_test))) ** 2)
    ae_error = -ae.score(X_test)
    assert ae_error <= 1.01 * pca_error, (ae_error, pca_error)
    # Reconstructions lie in the span of the decoder's columns: PCA's subspace.
    # (The encoder's rows converge there too, but slowly along directions of
    # little variance, which barely change the error.)
    decoder = ae.module_.decoder.linear.weight.detach().numpy()
    angles = np.degrees(subspace_angles(decoder, pca.components_.T))
    assert angles.max() < 1.0, angles


# --------------------------------------------------------------------- sparse
SPARSE = dict(FAST, n_components=12, max_iter=30, batch_size=32, learning_rate=1e-2)


@pytest.mark.parametrize("target", [0.05, 0.2])
def test_kl_sparsity_drives_unit_activations_to_the_target(target):
    X = make_data(n_samples=400, n_features=10)
    free = AutoencoderTransformer(sparsity="kl", sparsity_weight=0.0, **SPARSE).fit(X)
    sparse = AutoencoderTransformer(
        sparsity="kl", sparsity_weight=1.0, sparsity_target=target, **SPARSE
    ).fit(X)
    Z_free, Z = free.transform(X), sparse.transform(X)
    assert Z.min() > 0 and Z.max() < 1  # sigmoid codes
    assert Z_free.mean() > 0.3  # without the penalty, units sit near 0.5
    np.testing.assert_allclose(Z.mean(axis=0), target, atol=0.03)
    # scores stay the pure reconstruction error
    X_rec = sparse.inverse_transform(Z)
    np.testing.assert_allclose(
        sparse.score_samples(X), -((X - X_rec) ** 2).mean(axis=1), rtol=1e-3
    )


@pytest.mark.parametrize(
    "penalty", [dict(sparsity="kl", sparsity_weight=1.0), dict(sparsity="l1", sparsity_weight=0.01)]
)
def test_sparsity_survives_early_stopping(penalty):
    # With early_stopping=True (the default), the start was kept by a sign
    # test on the reconstruction alone, which a sparse network loses to its
    # dense PCA start on nearly every row: fit returned the untrained start,
    # codes as dense as without the penalty. The mean validation loss, with
    # its penalty, now decides.
    X = make_data(n_samples=400, n_features=10)
    params = dict(SPARSE, early_stopping=True)
    sparse = AutoencoderTransformer(**penalty, **params).fit(X)
    dense = AutoencoderTransformer(**{**penalty, "sparsity_weight": 0.0}, **params).fit(X)
    Z, Z_dense = np.abs(sparse.transform(X)), np.abs(dense.transform(X))
    assert Z.mean() < 0.5 * Z_dense.mean()
    assert sparse.best_validation_score_ == max(sparse.validation_scores_)


def test_l1_activity_penalty_shrinks_the_code():
    X = make_data(n_samples=400, n_features=10)
    free = AutoencoderTransformer(**SPARSE).fit(X)
    sparse = AutoencoderTransformer(sparsity="l1", sparsity_weight=0.01, **SPARSE).fit(X)
    assert np.abs(sparse.transform(X)).mean() < 0.3 * np.abs(free.transform(X)).mean()


def test_sparsity_penalty_is_added_to_the_training_loss():
    from sklearn_ae._losses import ReconstructionLoss

    x = torch.zeros(4, 3)
    code = torch.full((4, 2), 0.5)
    plain = ReconstructionLoss("mse")(x, x)
    kl = ReconstructionLoss("mse", sparsity="kl", sparsity_weight=2.0, sparsity_target=0.5)
    assert kl((x, code), x).item() == pytest.approx(plain.item())  # rate == target
    l1 = ReconstructionLoss("mse", sparsity="l1", sparsity_weight=2.0)
    assert l1((x, code), x).item() == pytest.approx(2.0 * 1.0)  # |0.5| + |0.5|
    assert l1.per_sample((x, code), x).tolist() == [0.0] * 4


@pytest.mark.parametrize(
    "params, match",
    [
        ({"sparsity": "l2"}, "sparsity"),
        ({"sparsity": "kl", "sparsity_target": 1.0}, "sparsity_target"),
        ({"sparsity": "kl", "sparsity_weight": -1.0}, "sparsity_weight"),
    ],
)
def test_bad_sparsity_parameters_raise(params, match):
    with pytest.raises(ValueError, match=match):
        AutoencoderTransformer(**{**FAST, **params}).fit(make_data())


# ------------------------------------------------------------ custom networks
class SmallEncoder(torch.nn.Module):
    """A user's encoder: sizes injected by the estimator, width a parameter."""

    def __init__(self, n_features, n_components, n_hidden=8):
        super().__init__()
        self.n_hidden = n_hidden
        self.net = torch.nn.Sequential(
            torch.nn.Linear(n_features, n_hidden),
            torch.nn.Tanh(),
            torch.nn.Linear(n_hidden, n_components),
        )

    def forward(self, x):
        return self.net(x)


class SmallDecoder(torch.nn.Module):
    def __init__(self, n_features, n_components, n_hidden=8):
        super().__init__()
        self.n_hidden = n_hidden
        self.net = torch.nn.Sequential(
            torch.nn.Linear(n_components, n_hidden),
            torch.nn.Tanh(),
            torch.nn.Linear(n_hidden, n_features),
        )

    def forward(self, z):
        return self.net(z)


CUSTOM = dict(FAST, encoder=SmallEncoder, decoder=SmallDecoder)


def test_custom_networks_are_built_from_their_parameters():
    from sklearn.base import clone

    X = make_data()
    ae = AutoencoderTransformer(encoder__n_hidden=5, decoder__n_hidden=7, **CUSTOM)
    assert ae.get_params()["encoder__n_hidden"] == 5
    assert clone(ae).get_params()["decoder__n_hidden"] == 7
    ae.set_params(encoder__n_hidden=6).fit(X)
    assert isinstance(ae.module_.encoder, SmallEncoder)
    assert ae.module_.encoder.n_hidden == 6
    assert ae.module_.decoder.n_hidden == 7
    assert ae.module_.encoder.net[0].in_features == 8  # n_features injected
    # the rest of the estimator works on top of them
    Z = ae.transform(X)
    assert Z.shape == (200, 2)
    X_rec = ae.inverse_transform(Z)
    np.testing.assert_allclose(
        ae.score_samples(X), -((X - X_rec) ** 2).mean(axis=1), rtol=1e-3
    )
    restored = pickle.loads(pickle.dumps(ae))
    np.testing.assert_array_equal(restored.transform(X), Z)
    assert "encoder__n_hidden=6" in repr(ae)


def test_custom_networks_train_with_the_other_variants():
    X = make_data()
    ae = AutoencoderTransformer(
        noise="gaussian", sparsity="kl", learning_rate=1e-2,
        **{**CUSTOM, "max_iter": 20, "batch_size": 32},
    ).fit(X)
    assert ae.loss_curve_[-1] < 0.7 * ae.loss_curve_[0]
    Z = ae.transform(X)
    assert Z.min() > 0 and Z.max() < 1  # the sigmoid code of sparsity='kl'
    assert ae.module_.corruption.kind == "gaussian"


def test_module_instances_are_copied():
    X = make_data()
    encoder, decoder = SmallEncoder(8, 2), SmallDecoder(8, 2)
    before = encoder.net[0].weight.detach().clone()
    ae = AutoencoderTransformer(encoder=encoder, decoder=decoder, **FAST).fit(X)
    assert torch.equal(encoder.net[0].weight, before)  # the user's module untouched
    assert ae.module_.encoder is not encoder


def test_gridsearch_over_custom_network_parameters():
    from sklearn.model_selection import GridSearchCV

    X = make_data(n_samples=90)
    grid = GridSearchCV(
        AutoencoderTransformer(**{**CUSTOM, "max_iter": 30, "batch_size": 16}),
        {"encoder__n_hidden": [1, 16], "decoder__n_hidden": [16]},
        cv=3,
    ).fit(X)
    assert grid.best_params_ == {"encoder__n_hidden": 16, "decoder__n_hidden": 16}
    assert grid.best_estimator_.module_.encoder.n_hidden == 16
    assert len(set(grid.cv_results_["mean_test_score"])) == 2


@pytest.mark.parametrize(
    "params, match",
    [
        ({"encoder": SmallEncoder}, "encoder was given without decoder"),
        ({"encoder__n_hidden": 3}, "encoder__n_hidden is set but encoder is None"),
        ({**CUSTOM, "encoder__width": 3}, "encoder=.*SmallEncoder.*width"),
        ({**CUSTOM, "n_components": 3, "decoder": SmallEncoder}, "decoder failed"),
        ({**CUSTOM, "encoder": SmallDecoder}, "encoder failed"),
        ({**CUSTOM, "encoder": torch.nn.Identity}, "encoder must map"),
        # nn.LSTM returns (output, (h, c))
        ({**CUSTOM, "encoder": torch.nn.LSTM(8, 2)}, "encoder must return a single tensor"),
        ({**CUSTOM, "encoder": torch.nn.LSTM(8, 2), "code_activation": "logistic"},
         "encoder must return a single tensor"),
        ({**CUSTOM, "decoder": torch.nn.LSTM(2, 8)}, "decoder must return a single tensor"),
        ({**CUSTOM, "tied_weights": True}, "tied_weights"),
        ({"encoder": SmallEncoder(8, 2), "decoder": SmallDecoder, "encoder__n_hidden": 2},
         "need encoder to be a class"),
        ({"encoder": "mlp", "decoder": SmallDecoder}, "encoder"),
    ],
)
def test_bad_custom_networks_raise_naming_the_parameter(params, match):
    with pytest.raises(ValueError, match=match):
        AutoencoderTransformer(**{**FAST, **params}).fit(make_data())


def test_unknown_keyword_is_an_error_at_fit():
    ae = AutoencoderTransformer(n_hiden=3, **FAST)  # stored, as skorch does
    with pytest.raises(ValueError, match="'n_hiden' is not a parameter"):
        ae.fit(make_data())
    with pytest.raises(ValueError, match="Invalid parameter 'hiden'"):
        ae.set_params(hiden=3)


# ------------------------------------------------------------- convolutional
def test_convolutional_autoencoder_on_digits_beats_pca():
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA
    from sklearn.model_selection import train_test_split

    from sklearn_ae import neg_reconstruction_error

    X, _ = load_digits(return_X_y=True)
    X_train, X_test = train_test_split(X / 16, test_size=0.3, random_state=0)
    ae = AutoencoderTransformer(
        n_components=8, input_shape=(1, 8, 8), hidden_layer_sizes=(16, 32),
        standardize=False, batch_size=64, max_iter=20, learning_rate=3e-3,
        random_state=0, device="cpu",
    ).fit(X_train)
    convs = [m for m in ae.module_.modules() if isinstance(m, torch.nn.Conv2d)]
    deconvs = [m for m in ae.module_.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [16, 32]
    assert [c.out_channels for c in deconvs] == [16, 1]
    assert ae.transform(X_test).shape == (len(X_test), 8)
    assert ae.inverse_transform(ae.transform(X_test)).shape == X_test.shape
    pca = PCA(n_components=8).fit(X_train)
    ae_error = -neg_reconstruction_error(ae, X_test)
    pca_error = -neg_reconstruction_error(pca, X_test)
    assert ae_error < 0.9 * pca_error, (ae_error, pca_error)


@pytest.mark.parametrize("shape", [(1, 3, 3), (2, 2, 1, 1, 1)])
def test_input_shape_must_match_the_rows(shape):
    with pytest.raises(ValueError, match="input_shape"):
        AutoencoderTransformer(input_shape=shape, **FAST).fit(make_data())


@pytest.mark.parametrize(
    "params, match",
    [
        ({"input_shape": (2, 4), "tied_weights": True}, "tied_weights"),
        ({"input_shape": (2, 4), "batch_norm": True}, "batch_norm"),
        ({"input_shape": (2, 4), "hidden_layer_sizes": ()}, "hidden_layer_sizes"),
        ({"input_shape": (2, 2, 2), **CUSTOM}, "input_shape"),
    ],
)
def test_input_shape_combinations_that_do_not_apply(params, match):
    with pytest.raises(ValueError, match=match):
        AutoencoderTransformer(**{**FAST, **params}).fit(make_data())


def test_continued_fit_rejects_another_input_shape_with_the_same_layers():
    # (1, 4, 4) and (1, 2, 8) give layers of the same sizes: the network
    # would have kept reshaping rows to (1, 4, 4).
    X = make_data(n_samples=60, n_features=16)
    ae = AutoencoderTransformer(**{**FAST, "input_shape": (1, 4, 4), "hidden_layer_sizes": (2,)})
    ae.fit(X).set_params(warm_start=True, input_shape=(1, 2, 8))
    with pytest.raises(ValueError, match="input_shape"):
        ae.fit(X)
    with pytest.raises(ValueError, match="input_shape"):
        ae.partial_fit(X)


def test_inference_reads_input_shape_as_fitted():
    X = make_data(n_samples=60, n_features=16)
    images = X.reshape(-1, 1, 4, 4)
    ae = AutoencoderTransformer(**{**FAST, "input_shape": (1, 4, 4), "hidden_layer_sizes": (2,)})
    Z = ae.fit(X).transform(X)
    score = ae.score(X)
    for shape in (None, (1, 2, 8)):
        ae.set_params(input_shape=shape)
        np.testing.assert_array_equal(ae.transform(images), Z)
        assert ae.score(images) == score
        with pytest.raises(ValueError, match=r"input_shape=\(1, 4, 4\)"):
            ae.transform(X.reshape(-1, 1, 2, 8))
    # the next fit takes the new value
    with pytest.raises(ValueError, match="dim 4"):
        ae.set_params(input_shape=None).fit(images)


# ------------------------------------------------------------------ sequence
def signal_windows(seed=0, length=24):
    """Windows of a noisy two-tone signal; a test set with anomalies injected."""
    rng = np.random.RandomState(seed)
    t = np.arange(7000)
    signal = np.sin(2 * np.pi * t / 50) + 0.5 * np.sin(2 * np.pi * t / 13)
    signal += 0.1 * rng.randn(len(t))
    train = np.lib.stride_tricks.sliding_window_view(signal[:4000], length)[::6]
    test = signal[4000:].reshape(-1, length).copy()
    is_anomaly = np.zeros(len(test), dtype=bool)
    for i in rng.choice(len(test), 12, replace=False):
        start = rng.randint(0, length - 10)
        kind = i % 3
        if kind == 0:  # spike
            test[i, start] += 3 * rng.choice([-1, 1])
        elif kind == 1:  # stuck sensor
            test[i, start : start + 10] = test[i, start]
        else:  # level shift
            test[i, start:] += 1.5
        is_anomaly[i] = True
    return train, test, is_anomaly


def test_lstm_autoencoder_finds_anomalous_windows():
    from sklearn.metrics import roc_auc_score

    train, test, is_anomaly = signal_windows()
    ae = AutoencoderTransformer(
        n_components=8, input_shape=(24, 1), hidden_layer_sizes=(32,),
        batch_size=32, max_iter=60, learning_rate=1e-2, random_state=0, device="cpu",
    ).fit(train)
    assert any(isinstance(m, torch.nn.LSTM) for m in ae.module_.encoder.modules())
    assert any(isinstance(m, torch.nn.LSTM) for m in ae.module_.decoder.modules())
    assert ae.transform(test).shape == (len(test), 8)
    auc = roc_auc_score(is_anomaly, -ae.score_samples(test))
    # measured 0.91-1.0 over random_state 0-2 and two signals; 0.5 is chance
    assert auc > 0.85, auc


# ------------------------------------------------- greedy layer-wise pretraining
@pytest.mark.parametrize("extra", [{}, {"tied_weights": True, "noise": "mask"}])
def test_layerwise_pretraining_trains_each_layer_then_fine_tunes(extra, monkeypatch):
    from skorch.callbacks import Callback

    import sklearn_ae._variants as variants

    def snapshot(module):
        return {k: v.detach().clone() for k, v in module.state_dict().items()}

    pretrained, at_first_epoch = [], []

    def recording_pretrain(module, *args, **kwargs):
        curves = pretrain_layerwise(module, *args, **kwargs)
        pretrained.append(snapshot(module))
        return curves

    class FirstEpochWeights(Callback):
        def on_epoch_begin(self, net, **kwargs):
            if not net.history or len(net.history) == 1:
                at_first_epoch.append(snapshot(net.module_))

    pretrain_layerwise = variants.pretrain_layerwise
    monkeypatch.setattr(variants, "pretrain_layerwise", recording_pretrain)
    X = make_data(n_samples=300, n_features=10)
    params = dict(FAST, hidden_layer_sizes=(16, 8), batch_size=32, learning_rate=1e-2, **extra)
    plain = AutoencoderTransformer(callbacks=[FirstEpochWeights()], **params).fit(X)
    assert plain.pretraining_loss_curves_ is None
    assert not pretrained
    ae = AutoencoderTransformer(
        layerwise_pretraining=True, pretraining_max_iter=10,
        callbacks=[FirstEpochWeights()], **params,
    ).fit(X)
    curves = ae.pretraining_loss_curves_
    assert [len(c) for c in curves] == [10, 10, 10]  # 10->16, 16->8, 8->2
    for curve in curves:
        assert curve[-1] < curve[0]
    # Fine-tuning starts from the pretrained stack, not from scratch: at its
    # first epoch every hidden layer holds the weights pretraining left,
    # except the layer the PCA start zeroes to silence each branch, and
    # those weights are not the plain network's random start.
    (after_pretraining,) = pretrained
    plain_start, start = at_first_epoch
    hidden = [k for k in start if "branch" in k and k in after_pretraining]
    kept = [k for k in hidden if torch.equal(start[k], after_pretraining[k])]
    silenced = [k for k in hidden if k not in kept]
    assert all(not start[k].any() for k in silenced), silenced
    # (a tied decoder's state lists the zeroed weight under its own names too)
    assert "encoder.branch.2.weight" in kept and len(kept) > len(silenced)
    assert any(k.startswith("decoder.") for k in kept)
    for k in kept:
        assert not torch.allclose(start[k], plain_start[k]), k
    if extra.get("tied_weights"):
        # The tied start zeroes the pretrained first layer (the decoder
        # branch's output layer): fine-tuning still moves from PCA.
        assert ae.loss_curve_[-1] < ae.loss_curve_[0]
    assert ae.n_iter_ == 5


def test_layerwise_pretraining_needs_the_fully_connected_network():
    with pytest.raises(ValueError, match="layerwise_pretraining"):
        AutoencoderTransformer(
            layerwise_pretraining=True, input_shape=(2, 4), **FAST
        ).fit(make_data())


@pytest.mark.parametrize(
    "optimizer, params",
    [(torch.optim.SGD, {"optimizer__momentum": 0.9, "optimizer__nesterov": True}),
     (torch.optim.AdamW, {"optimizer__betas": (0.8, 0.99)}),
     (torch.optim.Adam, {"optimizer__betas": (0.8, 0.99)})],
)
def test_layerwise_pretraining_uses_the_optimizer_of_fine_tuning(
    monkeypatch, optimizer, params
):
    """Every shallow autoencoder trains with the estimator's optimizer class,
    optimizer__* options, learning_rate and weight_decay, as fine-tuning
    does; Adam keeps the fused fast path. Pretraining built FusedAdam
    whatever the optimizer, and dropped optimizer__* options."""
    from sklearn_ae._engine import AutoencoderNet
    from sklearn_ae._optim import FusedAdam

    built = []
    initialize = AutoencoderNet.initialize

    def spy(net):
        initialize(net)
        built.append(net.optimizer_)
        return net

    monkeypatch.setattr(AutoencoderNet, "initialize", spy)
    ae = AutoencoderTransformer(
        layerwise_pretraining=True, pretraining_max_iter=2, optimizer=optimizer,
        learning_rate=0.005, weight_decay=1e-4, **params, **FAST,
    ).fit(make_data())
    n_layers = len(ae.pretraining_loss_curves_)
    assert n_layers == 2 and len(built) == n_layers + 1  # the last fine-tunes
    expected = FusedAdam if optimizer is torch.optim.Adam else optimizer
    for used in [*built, ae.net_.optimizer_]:
        assert type(used) is expected
        group = used.param_groups[0]
        assert group["lr"] == 0.005 and group["weight_decay"] == 1e-4
        for name, value in params.items():
            assert group[name.removeprefix("optimizer__")] == value
        if optimizer is torch.optim.Adam:
            assert group["fused"] is True


def test_layerwise_pretraining_leaves_the_validation_rows_unseen(monkeypatch):
    import sklearn_ae._variants

    seen = []
    original = sklearn_ae._variants.pretrain_layerwise

    def spy(module, data, **kwargs):
        seen.append(len(data))
        return original(module, data, **kwargs)

    monkeypatch.setattr(sklearn_ae._variants, "pretrain_layerwise", spy)
    AutoencoderTransformer(
        layerwise_pretraining=True, pretraining_max_iter=2, validation_fraction=0.25, **{**FAST, "early_stopping": True},
    ).fit(make_data(n_samples=200))
    assert seen == [150]


# ------------------------------------------------ PCA of the start, all paths
def _check_principal_axes(X, n_components):
    from sklearn.decomposition import PCA

    from sklearn_ae._data import TensorData
    from sklearn_ae._variants import principal_axes

    mean, components, variances = principal_axes(TensorData(X, resident=True), n_components)
    pca = PCA(n_components).fit(X)
    np.testing.assert_allclose(mean, pca.mean_, atol=1e-5)
    np.testing.assert_allclose(components, pca.components_, atol=1e-4)
    np.testing.assert_allclose(
        variances, pca.explained_variance_ * (len(X) - 1) / len(X), rtol=1e-4
    )


def test_principal_axes_over_several_blocks_of_rows(monkeypatch):
    # The covariance path reads the rows in blocks (large data only, which
    # no other test reaches): a mean from the first block, or a covariance
    # left uncentred, passed every test (a mutation audit).
    import sklearn_ae._variants as variants

    monkeypatch.setattr(variants, "_PCA_BLOCK_VALUES", 8 * 50)  # 500 rows: 10 blocks
    rng = np.random.RandomState(0)
    X = rng.randn(500, 8) @ rng.randn(8, 8) + 5 * np.arange(8)
    _check_principal_axes(X, 3)


def test_principal_axes_of_fewer_rows_than_features():
    # The SVD path, uncentred, passed every test (a mutation audit).
    rng = np.random.RandomState(0)
    X = rng.randn(30, 50) @ np.diag(np.linspace(1, 3, 50)) + 4.0
    _check_principal_axes(X, 3)
