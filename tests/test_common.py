"""scikit-learn's estimator checks over every public estimator.

No check is expected to fail. The instances are small and train for a few
epochs so the whole run stays quick on two CPU cores.
"""

import warnings

import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_ae import AEOutlierDetector, AutoencoderTransformer, VAETransformer

FAST = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0, device="cpu")


class LinearEncoder(torch.nn.Module):
    """A custom network: the estimator passes the sizes, the grid the rest."""

    def __init__(self, n_features, n_components, bias=True):
        super().__init__()
        self.linear = torch.nn.Linear(n_features, n_components, bias=bias)

    def forward(self, x):
        return self.linear(x)


class LinearDecoder(LinearEncoder):
    def __init__(self, n_features, n_components, bias=True):
        super().__init__(n_components, n_features, bias=bias)


class PosteriorEncoder(LinearEncoder):
    """A VAE's custom encoder branch: the posterior's mean and log-variance."""

    def __init__(self, n_features, n_components):
        super().__init__(n_features, 2 * n_components)


def shift_noise(batch, generator):
    """A user's own corruption (a module-level function, so it pickles)."""
    return batch + 0.1 * torch.randn(batch.shape, generator=generator, device=batch.device)


ESTIMATORS = [
    AutoencoderTransformer(**FAST),
    AutoencoderTransformer(
        n_components=3, early_stopping=True, batch_norm=True, mixed_precision=True,
        **FAST,
    ),
    VAETransformer(**FAST),
    VAETransformer(
        n_components=3, early_stopping=True, kl_warmup=2, n_importance_samples=4,
        mixed_precision=True, **FAST,
    ),
    AutoencoderTransformer(
        noise="mask", noise_level=0.2, layerwise_pretraining=True,
        pretraining_max_iter=2, **FAST,
    ),
    AutoencoderTransformer(tied_weights=True, sparsity="l1", **FAST),
    AutoencoderTransformer(code_activation="tanh", noise=shift_noise, **FAST),
    VAETransformer(encoder=PosteriorEncoder, decoder=LinearDecoder, decoder__bias=False, **FAST),
    AutoencoderTransformer(
        encoder=LinearEncoder,
        decoder=LinearDecoder,
        decoder__bias=False,
        sparsity="kl",
        noise="gaussian",
        **FAST,
    ),
    AEOutlierDetector(n_components=2, n_estimators=2, **FAST),
    AEOutlierDetector(
        n_components=2, contamination=0.1, scaling="robust", max_samples=20, latent_weight=1.0,
        early_stopping=True, batch_norm=False, mixed_precision=True, **FAST
    ),
    AEOutlierDetector(backbone="vae", n_components=2, **FAST),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)
