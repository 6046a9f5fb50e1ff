"""Training losses as torch criteria with a per-sample form.

The training engine calls a criterion as ``criterion(output, target)`` and
gets the batch mean; the estimators call ``criterion.per_sample(output,
target)`` to score each row. ``output`` is the module's output: the
reconstruction, or ``(reconstruction, code)`` when a penalty on the code
needs the code. The variational autoencoder's terms (the likelihood, the
KL divergence, the importance weights) are plain functions of a
:class:`~sklearn_ae._networks.VAEOutput` so that the criterion and the
estimator's scoring compute them the same way.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

SPARSITY_PENALTIES = ("kl", "l1")


def reconstruction_of(output):
    """Return the reconstruction in a module's output (a tensor or a tuple)."""
    return output[0] if isinstance(output, tuple) else output


def kl_sparsity(code, target, eps=1e-6):
    """Return the KL divergence from ``target`` to each unit's mean activation.

    ``code`` holds activations in (0, 1) (sigmoid codes); the divergence
    between Bernoulli(``target``) and Bernoulli(mean activation of the unit
    over the batch) is summed over units.
    """
    rate = code.mean(dim=0).clamp(eps, 1 - eps)
    return (
        target * torch.log(target / rate)
        + (1 - target) * torch.log((1 - target) / (1 - rate))
    ).sum()


def l1_activity(code):
    """Return the L1 norm of each row's code, averaged over rows."""
    return code.abs().sum(dim=1).mean()


class ReconstructionLoss(nn.Module):
    """Mean squared error (``'mse'``) or binary cross-entropy (``'bce'``).

    For ``'bce'`` the network's output is read as logits, so the decoder stays
    linear and the loss is computed in the numerically stable form.

    Parameters
    ----------
    kind : {'mse', 'bce'}, default='mse'
    sparsity : {None, 'kl', 'l1'}, default=None
        Penalty on the code added to the training loss (``forward``), which
        then expects ``(reconstruction, code)``: :func:`kl_sparsity` toward
        ``sparsity_target`` or :func:`l1_activity`. ``per_sample`` stays the
        pure reconstruction loss.
    sparsity_weight : float, default=0.0
        Weight of the penalty.
    sparsity_target : float, default=0.05
        Target mean activation of each code unit for ``'kl'``.
    """

    def __init__(self, kind="mse", *, sparsity=None, sparsity_weight=0.0, sparsity_target=0.05):
        super().__init__()
        if kind not in ("mse", "bce"):
            raise ValueError(f"kind must be 'mse' or 'bce', got {kind!r}")
        if sparsity is not None and sparsity not in SPARSITY_PENALTIES:
            raise ValueError(f"sparsity must be None, 'kl' or 'l1', got {sparsity!r}")
        self.kind = kind
        self.sparsity = sparsity
        self.sparsity_weight = sparsity_weight
        self.sparsity_target = sparsity_target

    def mean(self, output):
        """Return the reconstruction's mean given the raw network output."""
        return output.sigmoid() if self.kind == "bce" else output

    def elementwise(self, output, target):
        if self.kind == "bce":
            return F.binary_cross_entropy_with_logits(output, target, reduction="none")
        return (output - target).square()

    def penalty(self, code):
        """Return the weighted sparsity penalty of a batch of codes."""
        if self.sparsity == "kl":
            value = kl_sparsity(code, self.sparsity_target)
        else:
            value = l1_activity(code)
        return self.sparsity_weight * value

    def per_sample(self, output, target):
        """Return the reconstruction loss of each row, averaged over features."""
        output = reconstruction_of(output)
        return self.elementwise(output, target).flatten(1).mean(dim=1)

    def forward(self, output, target):
        reconstruction = reconstruction_of(output)
        if self.kind == "mse":
            # One fused op (and one backward node) instead of three.
            loss = F.mse_loss(reconstruction, target)
        else:
            loss = self.elementwise(reconstruction, target).mean()
        if self.sparsity is not None:
            if not isinstance(output, tuple):
                raise TypeError(
                    "a sparsity penalty needs the module to return (reconstruction, code)"
                )
            loss = loss + self.penalty(output[1])
        return loss


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
        """Return the mean of p(x|z) given the decoder's raw output.

        Output with a leading axis of draws (the network in evaluation mode
        decodes every row at fixed posterior draws) gives the mean over the
        draws: one reconstruction per row, as skorch's scoring callbacks
        expect.
        """
        mean = decoded.sigmoid() if self.likelihood == "bernoulli" else decoded
        return mean.mean(dim=0) if mean.dim() == 3 else mean

    def per_sample(self, output, target):
        """Return the loss of each row."""
        weight = self.beta * (self.kl_weight if self.training else 1.0)
        kl = gaussian_kl(output.z_mean, output.z_log_var)
        return -log_likelihood(output, target, self.likelihood) + weight * kl

    def forward(self, output, target):
        return self.per_sample(output, target).mean()
