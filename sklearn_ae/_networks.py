"""Torch networks for the autoencoders.

Nothing here knows about scikit-learn: these are plain ``torch.nn.Module``
builders that the estimators configure from their parameters.
"""

from typing import NamedTuple

import torch
from torch import nn

ACTIVATIONS = {
    "identity": nn.Identity,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "logistic": nn.Sigmoid,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "selu": nn.SELU,
    "leaky_relu": nn.LeakyReLU,
}


def mlp(layer_sizes, *, activation="relu", dropout=0.0, batch_norm=False):
    """Return an ``nn.Sequential`` of linear layers through ``layer_sizes``.

    Every linear layer but the last is followed by (optional) batch norm, the
    activation and (optional) dropout; the last layer is left linear so the
    caller decides what the output means (a code, a mean, logits).
    """
    layers = []
    pairs = list(zip(layer_sizes[:-1], layer_sizes[1:]))
    for i, (n_in, n_out) in enumerate(pairs):
        layers.append(nn.Linear(n_in, n_out))
        if i == len(pairs) - 1:
            break
        if batch_norm:
            layers.append(nn.BatchNorm1d(n_out))
        layers.append(ACTIVATIONS[activation]())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class MLPAutoencoder(nn.Module):
    """A fully connected encoder and a decoder that mirrors it.

    Parameters
    ----------
    n_features : int
        Size of the input and of the reconstruction.
    n_components : int
        Size of the code.
    hidden_layer_sizes : sequence of int
        Encoder hidden layers, input side first; the decoder uses them in
        reverse order.
    activation, dropout, batch_norm
        See :func:`mlp`.
    """

    def __init__(
        self,
        n_features,
        n_components,
        hidden_layer_sizes=(),
        *,
        activation="relu",
        dropout=0.0,
        batch_norm=False,
    ):
        super().__init__()
        hidden = list(hidden_layer_sizes)
        options = dict(activation=activation, dropout=dropout, batch_norm=batch_norm)
        self.encoder = mlp([n_features, *hidden, n_components], **options)
        self.decoder = mlp([n_components, *hidden[::-1], n_features], **options)

    def encode(self, x):
        """Return the code of ``x``."""
        return self.encoder(x)

    def decode(self, z):
        """Return the decoder's raw output for code ``z``."""
        return self.decoder(z)

    def forward(self, x):
        return self.decoder(self.encoder(x))


class VAEOutput(NamedTuple):
    """What :class:`VariationalAutoencoder` returns for a batch.

    ``decoded`` is the decoder's raw output (the Gaussian mean, or Bernoulli
    logits); ``x_log_var`` the Gaussian observation log-variance per feature
    (None for a Bernoulli decoder); ``z`` the latent draw that was decoded and
    ``z_mean``, ``z_log_var`` the parameters of the Gaussian posterior
    q(z|x) it was drawn from.
    """

    decoded: torch.Tensor
    x_log_var: "torch.Tensor | None"
    z: torch.Tensor
    z_mean: torch.Tensor
    z_log_var: torch.Tensor


class VariationalAutoencoder(nn.Module):
    """A Gaussian encoder q(z|x) and a decoder p(x|z) with a standard normal prior.

    Parameters
    ----------
    n_features : int
        Size of the input and of the decoder's output.
    n_components : int
        Size of the latent variable z.
    hidden_layer_sizes : sequence of int
        Encoder hidden layers, input side first; the decoder uses them in
        reverse order.
    likelihood : {'gaussian', 'bernoulli'}
        ``'gaussian'``: the decoder outputs the mean, and each feature has its
        own variance (see below). ``'bernoulli'``: the decoder outputs logits.
    min_variance : float
        Smallest observation variance of the Gaussian decoder; it keeps the
        likelihood finite when a feature is predicted (almost) exactly.
    variance_momentum : float
        How far each training batch moves the Gaussian decoder's variance
        toward the batch's mean squared residual per feature.
    activation, dropout, batch_norm
        See :func:`mlp`.

    Notes
    -----
    The Gaussian decoder's per-feature variance is not a gradient-trained
    parameter: like batch norm's running statistics, it is a buffer that
    every forward pass in training mode moves toward its maximum-likelihood
    value given the current decoder, the mean squared residual
    ``(x - decoded) ** 2`` of the batch. Learned by gradient steps, a
    log-variance moves by about the learning rate per step, and features
    that the latent code predicts well need it to travel to -5 or below,
    which takes thousands of steps; the closed-form estimate gets there in
    a few batches (the calibrated decoders of Rybkin et al., 2021, make the
    same observation).
    """

    def __init__(
        self,
        n_features,
        n_components,
        hidden_layer_sizes=(),
        *,
        likelihood="gaussian",
        min_variance=1e-4,
        variance_momentum=0.1,
        activation="relu",
        dropout=0.0,
        batch_norm=False,
    ):
        super().__init__()
        if likelihood not in ("gaussian", "bernoulli"):
            raise ValueError(
                f"likelihood must be 'gaussian' or 'bernoulli', got {likelihood!r}"
            )
        hidden = list(hidden_layer_sizes)
        options = dict(activation=activation, dropout=dropout, batch_norm=batch_norm)
        self.n_components = n_components
        self.likelihood = likelihood
        self.min_variance = min_variance
        self.variance_momentum = variance_momentum
        # One head for the posterior mean and log-variance, split in encode.
        self.encoder = mlp([n_features, *hidden, 2 * n_components], **options)
        self.decoder = mlp([n_components, *hidden[::-1], n_features], **options)
        observation_var = torch.ones(n_features) if likelihood == "gaussian" else None
        self.register_buffer("observation_var", observation_var)

    def encode(self, x):
        """Return the posterior's ``(mean, log_variance)`` for ``x``."""
        z_mean, z_log_var = self.encoder(x).chunk(2, dim=-1)
        return z_mean, z_log_var

    def decode(self, z):
        """Return the decoder's raw output for latent ``z`` (mean or logits)."""
        return self.decoder(z)

    def observation_log_var(self):
        """Return the Gaussian decoder's per-feature log-variance, or None."""
        if self.observation_var is None:
            return None
        return self.observation_var.clamp_min(self.min_variance).log()

    def forward(self, x, noise=None):
        """Encode ``x``, draw z from q(z|x) by reparameterisation, decode it.

        ``noise`` is the standard normal draw (broadcast against the
        posterior's shape); by default it is drawn from torch's default
        generator. In training mode the Gaussian decoder's variance is
        updated from this batch first (see Notes).
        """
        z_mean, z_log_var = self.encode(x)
        z = self._reparameterize(z_mean, z_log_var, noise)
        decoded = self.decode(z)
        if self.training and self.observation_var is not None:
            with torch.no_grad():
                batch_var = (x - decoded).square().mean(dim=0)
                self.observation_var.lerp_(batch_var, self.variance_momentum)
        return VAEOutput(decoded, self.observation_log_var(), z, z_mean, z_log_var)

    def draw(self, z_mean, z_log_var, noise):
        """Decode ``z = z_mean + exp(z_log_var / 2) * noise``; no update.

        Scoring with several draws encodes once and calls this per draw.
        """
        z = self._reparameterize(z_mean, z_log_var, noise)
        return VAEOutput(self.decode(z), self.observation_log_var(), z, z_mean, z_log_var)

    @staticmethod
    def _reparameterize(z_mean, z_log_var, noise):
        if noise is None:
            noise = torch.randn_like(z_mean)
        return z_mean + (0.5 * z_log_var).exp() * noise


def count_parameters(module):
    """Return the number of trainable scalars in ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = [
    "ACTIVATIONS",
    "MLPAutoencoder",
    "VAEOutput",
    "VariationalAutoencoder",
    "count_parameters",
    "mlp",
]
