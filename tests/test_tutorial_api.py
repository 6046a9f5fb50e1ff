"""The API the classic autoencoder tutorials need (issue 14)."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from sklearn_ae import AutoencoderTransformer, VAETransformer
from sklearn_ae._export import FittedEncoder

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

FAST = dict(max_iter=2, random_state=0, device="cpu", early_stopping=False)


def _digits(n=200):
    X, y = load_digits(return_X_y=True)
    return X[:n] / 16, y[:n]


def _rng_data(n=60, d=6, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


# --------------------------------------------------- item 2: architecture
@pytest.mark.parametrize(
    "activation, low, high",
    [("logistic", 0, 1), ("tanh", -1, 1), ("relu", 0, np.inf)],
)
def test_code_activation_bounds_codes(activation, low, high):
    X = _rng_data()
    ae = AutoencoderTransformer(
        n_components=3, hidden_layer_sizes=(8,), code_activation=activation, **FAST
    ).fit(X)
    Z = ae.transform(X)
    assert Z.shape == (60, 3)
    assert Z.min() >= low and Z.max() <= high
    assert isinstance(ae.module_.code_activation, type(ae._build_module(6).code_activation))


def test_identity_code_is_unbounded_and_default():
    X = _rng_data()
    ae = AutoencoderTransformer(n_components=3, hidden_layer_sizes=(8,), **FAST).fit(X)
    assert isinstance(ae.module_.code_activation, torch.nn.Identity)
    assert ae.transform(X).min() < 0


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
def test_pca_start_through_code_activation(activation):
    # Untrained (max_iter=1, learning rate tiny): the reconstruction is PCA's
    # exactly for identity, and close to it through the other activations.
    from sklearn.decomposition import PCA

    X = _rng_data(200, 6)
    ae = AutoencoderTransformer(
        n_components=3, hidden_layer_sizes=(8,), code_activation=activation,
        learning_rate=1e-9, standardize=False, max_iter=1, random_state=0,
        early_stopping=False, device="cpu",
    ).fit(X)
    pca = PCA(3).fit(X)
    expected = pca.inverse_transform(pca.transform(X))
    got = ae.inverse_transform(ae.transform(X))
    pca_error = np.mean((X - expected) ** 2)
    ae_error = np.mean((X - got) ** 2)
    if activation == "identity":
        np.testing.assert_allclose(got, expected, atol=1e-4)
    else:
        assert ae_error < 1.1 * pca_error
        assert ae_error < 0.8 * np.mean((X - X.mean(0)) ** 2)


def test_output_activation_logistic_bounds_and_skips_scaling():
    X, _ = _digits()
    ae = AutoencoderTransformer(
        n_components=4, hidden_layer_sizes=(16,), output_activation="logistic", **FAST
    ).fit(X)
    R = ae.inverse_transform(ae.transform(X))
    assert R.min() > 0 and R.max() < 1
    assert ae.mean_ is None and ae.scale_ is None
    identity = AutoencoderTransformer(n_components=4, hidden_layer_sizes=(16,), **FAST).fit(X)
    assert identity.mean_ is not None
    # The start is PCA to first order: far better than the mean image.
    start = AutoencoderTransformer(
        n_components=8, hidden_layer_sizes=(16,), output_activation="logistic",
        learning_rate=1e-9, max_iter=1, random_state=0, early_stopping=False,
    ).fit(X)
    error = np.mean((X - start.inverse_transform(start.transform(X))) ** 2)
    assert error < 0.6 * np.mean((X - X.mean(0)) ** 2)


def test_output_activation_logistic_needs_unit_range():
    with pytest.raises(ValueError, match="output_activation='logistic'.*\\[0, 1\\]"):
        AutoencoderTransformer(output_activation="logistic", **FAST).fit(_rng_data())


def test_bce_with_logistic_output_is_rejected():
    X, _ = _digits(50)
    with pytest.raises(ValueError, match="loss='bce' reads the decoder's outputs as logits"):
        AutoencoderTransformer(loss="bce", output_activation="logistic", **FAST).fit(X)


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(code_activation="softmax"), "code_activation"),
        (dict(output_activation="tanh"), "output_activation"),
        (dict(sparsity="kl", code_activation="tanh"), "sparsity='kl'.*code_activation"),
        (dict(conv_kernel_size=5), "conv_kernel_size=5 sets the convolutions"),
        (dict(conv_strides=0, input_shape=(1, 2, 3)), "conv_strides"),
        (dict(conv_strides=(1, 2, 2), input_shape=(1, 2, 3), hidden_layer_sizes=(4,)),
         "one value per convolution"),
        (dict(noise="salt"), "noise"),
    ],
)
def test_architecture_parameters_are_validated(params, match):
    with pytest.raises(ValueError, match=match):
        AutoencoderTransformer(**{**FAST, **params}).fit(_rng_data())


@pytest.mark.parametrize(
    "kernel, strides, expected_sizes",
    [(3, 2, [(4, 4), (2, 2)]), (5, 1, [(8, 8), (8, 8)]), ((3, 5), (1, 2), [(8, 8), (4, 4)])],
)
def test_conv_kernel_size_and_strides_change_the_network(kernel, strides, expected_sizes):
    X, _ = _digits(60)
    ae = AutoencoderTransformer(
        n_components=3, input_shape=(1, 8, 8), hidden_layer_sizes=(4, 6),
        conv_kernel_size=kernel, conv_strides=strides, **FAST,
    ).fit(X)
    convs = [m for m in ae.module_.encoder.branch.modules() if isinstance(m, torch.nn.Conv2d)]
    kernels = [kernel] * 2 if isinstance(kernel, int) else list(kernel)
    stride_list = [strides] * 2 if isinstance(strides, int) else list(strides)
    assert [c.kernel_size[0] for c in convs] == kernels
    assert [c.stride[0] for c in convs] == stride_list
    maps = ae.transform_hidden(X, layer=0)
    assert maps.shape[2:] == expected_sizes[0]
    assert ae.transform_hidden(X, layer=1).shape[1:] == (6, *expected_sizes[1])
    # The decoder lands on the image's size again.
    assert ae.inverse_transform(ae.transform(X)).shape == (60, 64)


@pytest.mark.parametrize("height, width", [(7, 9), (5, 6)])
@pytest.mark.parametrize("kernel, strides", [(3, 2), (4, 2), (2, 3), (5, 3)])
def test_conv_decoder_matches_odd_sizes(height, width, kernel, strides):
    from sklearn_ae._networks import ConvAutoencoder

    net = ConvAutoencoder((2, height, width), 3, (4, 4), kernel_size=kernel, strides=strides)
    out = net(torch.zeros(5, 2 * height * width))
    assert out.shape == (5, 2 * height * width)
    # the branch really runs: a nonzero code gives a nonzero branch output
    torch.nn.init.normal_(net.decoder.branch.features[-1].weight)
    assert net.decoder.branch(torch.ones(2, 3)).abs().sum() > 0


# ------------------------------------------------------ item 3: shaped arrays
@pytest.mark.parametrize("shape", [(1, 8, 8), (8, 8)])
def test_shaped_arrays_match_flat_rows(shape):
    X, _ = _digits(80)
    params = dict(n_components=3, input_shape=shape, hidden_layer_sizes=(4,), **FAST)
    flat = AutoencoderTransformer(**params).fit(X)
    shaped_X = X.reshape(-1, *shape)
    shaped = AutoencoderTransformer(**params).fit(shaped_X)
    assert shaped.n_features_in_ == 64
    np.testing.assert_allclose(shaped.transform(shaped_X), flat.transform(X), atol=1e-6)
    np.testing.assert_allclose(shaped.transform(X), flat.transform(X), atol=1e-6)
    assert shaped.inverse_transform(shaped.transform(shaped_X)).shape == (80, 64)
    assert shaped.score_samples(shaped_X).shape == (80,)


def test_shaped_array_of_another_shape_is_rejected():
    X, _ = _digits(40)
    ae = AutoencoderTransformer(input_shape=(1, 8, 8), hidden_layer_sizes=(4,), **FAST)
    with pytest.raises(ValueError, match=r"accepts arrays of shape \(n_samples, 1, 8, 8\)"):
        ae.fit(X.reshape(-1, 8, 8, 1))


# ------------------------------------------------------------ item 4: noise
def _shift_and_clip(batch, generator):
    noise = torch.randn(batch.shape, generator=generator, device=batch.device)
    return (batch + 0.3 * noise).clamp(0, 1)


def test_callable_noise_is_called_with_the_fit_generator():
    X, _ = _digits(60)
    calls = []

    def noise(batch, generator):
        calls.append((tuple(batch.shape), isinstance(generator, torch.Generator)))
        return _shift_and_clip(batch, generator)

    ae = AutoencoderTransformer(
        n_components=3, hidden_layer_sizes=(8,), noise=noise, batch_size=20,
        output_activation="logistic", **FAST,
    ).fit(X)
    assert calls and all(ok for _, ok in calls)
    assert all(shape[1] == 64 for shape, _ in calls)
    # Not used at inference
    n_calls = len(calls)
    ae.transform(X)
    ae.score_samples(X)
    assert len(calls) == n_calls


def test_callable_noise_changes_training_and_is_reproducible():
    X, _ = _digits(100)
    params = dict(n_components=3, hidden_layer_sizes=(8,), output_activation="logistic",
                  max_iter=3, random_state=0, early_stopping=False)
    clean = AutoencoderTransformer(**params).fit(X).transform(X)
    a = AutoencoderTransformer(noise=_shift_and_clip, **params).fit(X).transform(X)
    b = AutoencoderTransformer(noise=_shift_and_clip, **params).fit(X).transform(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, clean)


@pytest.mark.parametrize(
    "noise, match",
    [
        (lambda batch, generator: batch[:, :3], "must return a tensor of the batch's shape"),
        (lambda batch: batch, "failed on a batch"),
    ],
)
def test_bad_callable_noise_raises_clearly(noise, match):
    with pytest.raises(ValueError, match=match):
        AutoencoderTransformer(noise=noise, **FAST).fit(_rng_data())


def test_y_of_x_shape_warns_and_labels_do_not():
    X, y = _digits(60)
    ae = AutoencoderTransformer(n_components=2, hidden_layer_sizes=(4,), **FAST)
    with pytest.warns(UserWarning, match="fit ignores y"):
        ae.fit(X + 0.1, y=X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ConvergenceWarning)
        make_pipeline(ae, LogisticRegression(max_iter=50)).fit(X, y)


# --------------------------------------------------- item 5: encoder module
def test_encoder_module_maps_raw_input_like_transform():
    X, _ = _digits(80)
    for params in (dict(hidden_layer_sizes=(16,)),
                   dict(input_shape=(1, 8, 8), hidden_layer_sizes=(4,), code_activation="tanh")):
        ae = AutoencoderTransformer(n_components=3, **params, **FAST).fit(X * 16)
        encoder = ae.encoder_module()
        assert isinstance(encoder, FittedEncoder) and encoder.training
        assert torch.is_tensor(encoder.mean) and torch.is_tensor(encoder.scale)
        with torch.no_grad():
            codes = encoder.eval()(torch.as_tensor(X * 16, dtype=torch.float32))
            shaped = encoder(torch.as_tensor(X * 16, dtype=torch.float32).reshape(-1, 1, 8, 8))
        np.testing.assert_allclose(codes.numpy(), ae.transform(X * 16), atol=1e-5)
        np.testing.assert_allclose(shaped.numpy(), codes.numpy())
        assert all(p.requires_grad for p in encoder.parameters())
        # a copy: training it leaves the estimator alone
        before = ae.transform(X * 16)
        with torch.no_grad():
            for p in encoder.parameters():
                p.add_(1.0)
        np.testing.assert_array_equal(ae.transform(X * 16), before)


def test_encoder_module_takes_float64_and_a_large_mean_like_transform():
    # float64 input gave torch's "mat1 and mat2 must have the same dtype",
    # and scaling in float32 put rows of 1e6 + a small spread 0.69 away from
    # transform's codes (whose spread was 1.7).
    rng = np.random.RandomState(0)
    X = 1e6 + rng.randn(200, 5) @ rng.randn(5, 8) * 0.05
    ae = AutoencoderTransformer(n_components=2, **FAST).fit(X)
    encoder = ae.encoder_module().eval()
    with torch.no_grad():
        for dtype in (np.float64, np.float32):
            X_in = X.astype(dtype)  # float32: what it holds of X, scaled in float64
            codes = encoder(torch.as_tensor(X_in)).numpy()
            np.testing.assert_allclose(codes, ae.transform(X_in.astype(np.float64)), atol=1e-4)


def test_encoder_module_fine_tunes_in_a_skorch_classifier():
    from skorch import NeuralNetClassifier

    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    ae = AutoencoderTransformer(
        n_components=16, hidden_layer_sizes=(32,), max_iter=5, random_state=0,
        device="cpu",
    ).fit(X)
    torch.manual_seed(0)
    model = torch.nn.Sequential(ae.encoder_module(), torch.nn.Linear(16, 10))
    before = [p.detach().clone() for p in model[0].parameters()]
    clf = NeuralNetClassifier(
        model, criterion=torch.nn.CrossEntropyLoss, optimizer=torch.optim.Adam, lr=3e-3,
        max_epochs=8, batch_size=64, train_split=None, verbose=0,
    )
    clf.fit(X[:1200], y[:1200])
    accuracy = np.mean(clf.predict(X[1200:]) == y[1200:])
    assert accuracy > 0.8  # chance is 0.1
    after = list(clf.module_[0].parameters())
    assert any(not torch.equal(a, b) for a, b in zip(after, before))


# ----------------------------------------------- item 6: hidden activations
def test_transform_hidden_shapes_and_values():
    X = _rng_data(30, 6)
    ae = AutoencoderTransformer(
        n_components=2, hidden_layer_sizes=(8, 5), activation="tanh", **FAST
    ).fit(X)
    H0 = ae.transform_hidden(X, layer=0)
    H1 = ae.transform_hidden(X, layer=-1)
    assert H0.shape == (30, 8) and H1.shape == (30, 5)
    # by hand: first layer of the encoder's branch on the scaled rows
    first = ae.module_.encoder.branch[0]
    Xs = (X - ae.mean_) / ae.scale_
    expected = np.tanh(Xs @ first.weight.detach().double().numpy().T
                       + first.bias.detach().double().numpy())
    np.testing.assert_allclose(H0, expected, atol=1e-6)
    assert ae.transform_hidden(X.astype(np.float32)).dtype == np.float32


def test_transform_hidden_rejects_bad_layers():
    X = _rng_data(30, 6)
    ae = AutoencoderTransformer(n_components=2, hidden_layer_sizes=(8,), **FAST).fit(X)
    with pytest.raises(ValueError, match="layer=1 is out of range"):
        ae.transform_hidden(X, layer=1)
    for layer in (0.5, "0", True, None):  # a TypeError from a list index before
        with pytest.raises(ValueError, match="layer must be an int"):
            ae.transform_hidden(X, layer=layer)
    assert ae.transform_hidden(X, layer=np.int64(0)).shape == (30, 8)
    lstm = AutoencoderTransformer(
        n_components=2, input_shape=(3, 2), hidden_layer_sizes=(4,), **FAST
    ).fit(X)
    with pytest.raises(ValueError, match="no hidden activation layers"):
        lstm.transform_hidden(X)


# --------------------------------------------------------- item 7: sample()
def test_vae_sample_mean_and_draw():
    X, _ = _digits(150)
    vae = VAETransformer(likelihood="bernoulli", **FAST).fit(X)
    draws = vae.sample(20, random_state=0)
    means = vae.sample(20, random_state=0, kind="mean")
    assert set(np.unique(draws)) <= {0.0, 1.0}
    assert means.shape == draws.shape == (20, 64)
    assert 0 < means.min() and means.max() < 1 and len(np.unique(means)) > 100
    Z = np.random.RandomState(0).standard_normal((20, vae.n_components))
    np.testing.assert_allclose(means, vae.inverse_transform(Z), rtol=1e-6)
    gaussian = VAETransformer(**FAST).fit(X)
    g_means = gaussian.sample(20, random_state=0, kind="mean")
    np.testing.assert_allclose(g_means, gaussian.inverse_transform(Z), rtol=1e-6)
    assert not np.allclose(g_means, gaussian.sample(20, random_state=0))
    with pytest.raises(ValueError, match="kind"):
        vae.sample(2, kind="mode")


# --------------------------------------- item 1 (part): VAE with input_shape
@pytest.mark.parametrize(
    "shape, encoder_type",
    [((1, 8, 8), "ConvEncoder"), ((8, 8), "LSTMEncoder")],
)
def test_vae_input_shape_builds_the_shared_structured_networks(shape, encoder_type):
    X, _ = _digits(120)
    vae = VAETransformer(
        n_components=2, input_shape=shape, hidden_layer_sizes=(4,), **FAST
    )
    module = vae._build_module(64)
    assert type(module.encoder).__name__ == encoder_type
    # built by the autoencoder's builder: the same layers
    ae_module = AutoencoderTransformer(
        n_components=2, input_shape=shape, hidden_layer_sizes=(4,)
    )._build_module(64)
    assert type(ae_module.encoder.branch) is type(module.encoder)
    # the branches start silent: the untrained network is the linear model
    with torch.no_grad():
        x = torch.randn(5, 64)
        assert torch.count_nonzero(module.encoder(x)) == 0
        assert torch.count_nonzero(module.decoder(torch.randn(5, 2))) == 0
    vae.fit(X.reshape(-1, *shape))
    assert vae.transform(X.reshape(-1, *shape)).shape == (120, 2)
    np.testing.assert_allclose(vae.transform(X), vae.transform(X.reshape(-1, *shape)))
    assert vae.sample(4, random_state=0, kind="mean").shape == (4, 64)
    assert np.isfinite(vae.score(X))
    # training moved the branches off zero
    with torch.no_grad():
        assert torch.count_nonzero(vae.module_.encoder(torch.as_tensor(X[:5], dtype=torch.float32))) > 0


def test_vae_conv_parameters_change_the_network_and_are_validated():
    vae = VAETransformer(
        n_components=2, input_shape=(1, 8, 8), hidden_layer_sizes=(4, 4),
        conv_kernel_size=5, conv_strides=(1, 2),
    )
    convs = [m for m in vae._build_module(64).encoder.modules()
             if isinstance(m, torch.nn.Conv2d)]
    assert [(c.kernel_size[0], c.stride[0]) for c in convs] == [(5, 1), (5, 2)]
    X, _ = _digits(40)
    with pytest.raises(ValueError, match="conv_strides=3 sets the convolutions"):
        VAETransformer(conv_strides=3, **FAST).fit(X)
    with pytest.raises(ValueError, match=r"input_shape=\(1, 4, 4\) holds 16 values"):
        VAETransformer(input_shape=(1, 4, 4), **FAST).fit(X)


# ------------------------------ item 1 (part): VAE with encoder= / decoder=
class _PosteriorMLP(torch.nn.Module):
    def __init__(self, n_features, n_components, width=8):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(n_features, width), torch.nn.ReLU(),
            torch.nn.Linear(width, 2 * n_components),
        )

    def forward(self, x):
        return self.net(x)


class _DecoderMLP(torch.nn.Module):
    def __init__(self, n_features, n_components, width=8):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(n_components, width), torch.nn.ReLU(),
            torch.nn.Linear(width, n_features),
        )

    def forward(self, z):
        return self.net(z)


def test_vae_custom_networks_are_built_with_their_parameters():
    from sklearn.base import clone

    X, _ = _digits(100)
    vae = VAETransformer(
        n_components=2, encoder=_PosteriorMLP, decoder=_DecoderMLP,
        encoder__width=16, **FAST,
    )
    assert clone(vae).get_params()["encoder__width"] == 16
    module = vae._build_module(64)
    assert module.encoder.net[0].out_features == 16
    assert module.decoder.net[0].out_features == 8
    # output layers zeroed: the start is the linear model
    assert torch.count_nonzero(module.encoder.net[-1].weight) == 0
    vae.fit(X)
    assert vae.transform(X).shape == (100, 2)
    assert np.isfinite(vae.score(X))
    assert torch.count_nonzero(vae.module_.encoder.net[-1].weight) > 0


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(encoder=_DecoderMLP, decoder=_DecoderMLP), "encoder failed on a batch"),
        (dict(encoder=_PosteriorMLP, decoder=_PosteriorMLP),
         "decoder failed on a batch|decoder must map"),
        (dict(encoder=_PosteriorMLP), "encoder was given without decoder"),
        (dict(encoder__width=3), "encoder__width is set but encoder is None"),
        (dict(encoder=_PosteriorMLP, decoder=_DecoderMLP, input_shape=(1, 8, 8)),
         "input_shape selects a built-in"),
    ],
)
def test_vae_custom_networks_are_validated(params, match):
    X, _ = _digits(40)
    with pytest.raises(ValueError, match=match):
        VAETransformer(n_components=2, **{**FAST, **params}).fit(X)


def test_callable_noise_corrupts_only_the_input_in_layerwise_pretraining():
    X, _ = _digits(60)
    widths = []

    def noise(batch, generator):
        widths.append(batch.shape[1])
        return _shift_and_clip(batch, generator)

    AutoencoderTransformer(
        n_components=3, hidden_layer_sizes=(16, 8), noise=noise,
        layerwise_pretraining=True, pretraining_max_iter=1,
        output_activation="logistic", **FAST,
    ).fit(X)
    assert widths and set(widths) == {64}


# ------------------------------------------------------------------- demo
@pytest.mark.parametrize("argv", [["--n-components", "0"], ["--n-components", "100"],
                                  ["--max-iter", "0"]])
def test_demo_refuses_arguments_out_of_range(argv, capsys):
    # Every fit failed and the demo announced a "winner" from NaN scores,
    # with exit status 0.
    from sklearn_ae.demo import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert argv[0] in capsys.readouterr().err


def test_demo_runs(capsys):
    from sklearn_ae.demo import main

    main(["--n-components", "4", "--max-iter", "2"])
    out = capsys.readouterr().out
    assert "Winner: " in out and "nan" not in out
