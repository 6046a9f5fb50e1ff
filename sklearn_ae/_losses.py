"""Training losses as torch criteria with a per-sample form.

The training engine calls a criterion as ``criterion(output, target)`` and
gets the batch mean; the estimators call ``criterion.per_sample(output,
target)`` to score each row. The variational autoencoder's terms (the
likelihood, the KL divergence, the importance weights) are plain functions
of a :class:`~sklearn_ae._networks.VAEOutput` so that the criterion and the
estimator's scoring compute them the same way.
"""

import math

from torch import nn
from torch.nn import functional as F


class ReconstructionLoss(nn.Module):
    """Mean squared error (``'mse'``) or binary cross-entropy (``'bce'``).

    For ``'bce'`` the network's output is read as logits, so the decoder stays
    linear and the loss is computed in the numerically stable form.
    """

    def __init__(self, kind="mse"):
        super().__init__()
        if kind not in ("mse", "bce"):
            raise ValueError(f"kind must be 'mse' or 'bce', got {kind!r}")
        self.kind = kind

    def mean(self, output):
        """Return the reconstruction's mean given the raw network output."""
        return output.sigmoid() if self.kind == "bce" else output

    def elementwise(self, output, target):
        if self.kind == "bce":
            return F.binary_cross_entropy_with_logits(output, target, reduction="none")
        return (output - target).square()

    def per_sample(self, output, target):
        """Return the loss of each row, averaged over features."""
        return self.elementwise(output, target).flatten(1).mean(dim=1)

    def forward(self, output, target):
        return self.elementwise(output, target).mean()


_LOG_2PI = math.log(2 * math.pi)


def log_likelihood(output, target, likelihood):
    """Return log p(x|z) of each row of ``target``, in nats, summed over features.

    ``output`` is a :class:`~sklearn_ae._networks.VAEOutput`. For
    ``'gaussian'`` it is a log-density; for ``'bernoulli'`` (logits) a
    log-probability, i.e. minus the binary cross-entropy summed over features.
    """
    if likelihood == "bernoulli":
        return -F.binary_cross_entropy_with_logits(
            output.decoded, target, reduction="none"
        ).sum(dim=1)
    log_var = output.x_log_var
    squared = (target - output.decoded).square() * (-log_var).exp()
    return -0.5 * (squared + log_var + _LOG_2PI).sum(dim=1)


def gaussian_kl(z_mean, z_log_var):
    """Return KL(N(z_mean, exp(z_log_var)) || N(0, I)) of each row, in closed form."""
    return 0.5 * (z_mean.square() + z_log_var.exp() - 1.0 - z_log_var).sum(dim=1)


def log_importance_weight(output, target, likelihood):
    """Return log p(x|z) + log p(z) - log q(z|x) of each row for the drawn z.

    Its expectation under q is the ELBO; the log of the mean of K such
    weights (exponentiated) is the importance-weighted bound of Burda et al.
    (2016).
    """
    z, mean, log_var = output.z, output.z_mean, output.z_log_var
    log_prior = -0.5 * (z.square() + _LOG_2PI).sum(dim=1)
    log_posterior = -0.5 * (
        (z - mean).square() * (-log_var).exp() + log_var + _LOG_2PI
    ).sum(dim=1)
    return log_likelihood(output, target, likelihood) + log_prior - log_posterior


class NegativeELBO(nn.Module):
    """Negative evidence lower bound of a variational autoencoder, in nats per row.

    ``-log p(x|z) + beta * kl_weight * KL(q(z|x) || p(z))`` with one
    reparameterised draw of z, summed over features (not averaged), so the
    batch mean is the negative ELBO per sample when ``beta=1``.

    Parameters
    ----------
    likelihood : {'gaussian', 'bernoulli'}
        How the decoder's output is read; see :func:`log_likelihood`.
    beta : float
        Weight of the KL term (a beta-VAE for ``beta != 1``).

    Attributes
    ----------
    kl_weight : float
        Extra factor on the KL term while the criterion is in training mode
        (KL warm-up sets it each epoch). In evaluation mode the KL term is
        weighted by ``beta`` alone, so validation losses of every epoch are
        comparable.
    """

    def __init__(self, likelihood="gaussian", beta=1.0):
        super().__init__()
        if likelihood not in ("gaussian", "bernoulli"):
            raise ValueError(
                f"likelihood must be 'gaussian' or 'bernoulli', got {likelihood!r}"
            )
        self.likelihood = likelihood
        self.beta = beta
        self.kl_weight = 1.0

    def mean(self, decoded):
        """Return the mean of p(x|z) given the decoder's raw output."""
        return decoded.sigmoid() if self.likelihood == "bernoulli" else decoded

    def per_sample(self, output, target):
        """Return the loss of each row."""
        weight = self.beta * (self.kl_weight if self.training else 1.0)
        kl = gaussian_kl(output.z_mean, output.z_log_var)
        return -log_likelihood(output, target, self.likelihood) + weight * kl

    def forward(self, output, target):
        return self.per_sample(output, target).mean()
