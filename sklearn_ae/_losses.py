"""Reconstruction losses as torch criteria with a per-sample form.

The training engine calls a criterion as ``criterion(output, target)`` and
gets the batch mean; the estimators call ``criterion.per_sample(output,
target)`` to score each row. ``output`` is the module's output: the
reconstruction, or ``(reconstruction, code)`` when a penalty on the code
needs the code.
"""

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
        loss = self.elementwise(reconstruction_of(output), target).mean()
        if self.sparsity is not None:
            if not isinstance(output, tuple):
                raise TypeError(
                    "a sparsity penalty needs the module to return (reconstruction, code)"
                )
            loss = loss + self.penalty(output[1])
        return loss
