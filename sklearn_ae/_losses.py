"""Reconstruction losses as torch criteria with a per-sample form.

The training engine calls a criterion as ``criterion(output, target)`` and
gets the batch mean; the estimators call ``criterion.per_sample(output,
target)`` to score each row.
"""

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
        if self.kind == "mse":
            # One fused op (and one backward node) instead of three.
            return F.mse_loss(output, target)
        return self.elementwise(output, target).mean()
