"""Many small autoencoders trained as one torch module, and their loss.

Each member has its own weights and sees its own subset of the features.
The members' layers are stacked into ``(n_members, n_in, n_out)`` tensors
and run with one batched matrix product per layer, so an ensemble costs one
optimisation step per batch, not one per member: on a CPU the per-step
overhead, not the arithmetic, bounds small tabular networks.

Nothing here knows about scikit-learn.
"""

import math

import torch
from torch import nn

from ._networks import ACTIVATIONS
from ._random import current_generator


class ParallelLinear(nn.Module):
    """``n_members`` independent linear layers applied to ``(n_members, B, n_in)``.

    Initialised like :class:`torch.nn.Linear`, member by member.
    """

    def __init__(self, n_members, n_in, n_out):
        super().__init__()
        bound = 1.0 / math.sqrt(n_in)
        self.weight = nn.Parameter(torch.empty(n_members, n_in, n_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_members, 1, n_out).uniform_(-bound, bound))

    def forward(self, x):
        return torch.baddbmm(self.bias, x, self.weight)


class _MemberBatchNorm(nn.Module):
    """Batch norm over each member's units, on ``(n_members, B, n_units)``."""

    def __init__(self, n_members, n_units):
        super().__init__()
        self.norm = nn.BatchNorm1d(n_members * n_units)

    def forward(self, x):
        m, b, u = x.shape
        flat = x.transpose(0, 1).reshape(b, m * u)
        return self.norm(flat).reshape(b, m, u).transpose(0, 1)


class FastDropout(nn.Module):
    """Dropout whose mask comes from 16 random bits per element.

    The same as :class:`torch.nn.Dropout` (zero each element with
    probability ``p``, rounded to a multiple of 1/65536, and scale the rest
    by ``1 / (1 - p)`` in training; the identity in eval mode), but the mask
    is cut from raw 64-bit integers from torch's default generator: on a
    CPU, drawing one float per element made ``nn.Dropout`` about a third of
    a training step of the default ensemble (measured 490 us of forward and
    backward per layer against 140 us here, 4 x 256 x 64 elements, 1 thread).

    A mask set in ``fixed_mask`` (see :func:`set_dropout_masks`) is used
    instead, in training and eval mode alike.
    """

    def __init__(self, p):
        super().__init__()
        self.p = p
        self.fixed_mask = None

    def forward(self, x):
        if self.fixed_mask is not None:
            return x * self.fixed_mask
        if not self.training or self.p == 0:
            return x
        n = x.numel()
        bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device)
        bits.random_(-(2**63), None, generator=current_generator(x.device))  # all bits uniform
        levels = bits.view(torch.int16)[:n].view(x.shape)
        n_dropped = round(self.p * 65536)
        keep = levels >= -32768 + n_dropped
        return x * keep.to(x.dtype).mul_(65536 / (65536 - n_dropped))


def _parallel_mlp(n_members, layer_sizes, *, activation, dropout, batch_norm):
    layers = []
    pairs = list(zip(layer_sizes[:-1], layer_sizes[1:]))
    for i, (n_in, n_out) in enumerate(pairs):
        layers.append(ParallelLinear(n_members, n_in, n_out))
        if i == len(pairs) - 1:
            break
        if batch_norm:
            layers.append(_MemberBatchNorm(n_members, n_out))
        layers.append(ACTIVATIONS[activation]())
        if dropout > 0:
            layers.append(FastDropout(dropout))
    return nn.Sequential(*layers)


class EnsembleAutoencoder(nn.Module):
    """``n_members`` fully connected autoencoders on feature subsets.

    Parameters
    ----------
    feature_mask : bool tensor of shape (n_members, n_features)
        Which features each member sees; the others are zeroed on the way
        in and passed through unchanged to the output, so their error is 0.
    n_components : int
        Code size of each member.
    hidden_layer_sizes : sequence of int
        Encoder hidden layers of each member, input side first; the decoder
        mirrors them.
    activation, dropout, batch_norm
        As in :func:`sklearn_ae._networks.mlp`.

    ``forward`` maps ``(B, n_features)`` to reconstructions of shape
    ``(n_members, B, n_features)``.
    """

    def __init__(
        self,
        feature_mask,
        n_components,
        hidden_layer_sizes=(),
        *,
        activation="relu",
        dropout=0.0,
        batch_norm=False,
    ):
        super().__init__()
        mask = torch.as_tensor(feature_mask, dtype=torch.bool)
        n_members, n_features = mask.shape
        self.register_buffer("feature_mask", mask)
        hidden = list(hidden_layer_sizes)
        options = dict(activation=activation, dropout=dropout, batch_norm=batch_norm)
        self.encoder = _parallel_mlp(n_members, [n_features, *hidden, n_components], **options)
        self.decoder = _parallel_mlp(n_members, [n_components, *hidden[::-1], n_features], **options)

    def own_features(self):
        """Each member's features, ascending, as a ``(n_members, n_selected)``
        index tensor; None where members see different numbers of features.

        With it, :meth:`encode`, :meth:`errors_and_codes` and
        :meth:`training_errors` run each member on its own features only:
        the first layer's rows and the last layer's columns of the other
        features are left out of the products, which the masked form
        multiplies by zero (input) or replaces (output) anyway. The same
        values up to float rounding, for ``max_features`` of the work of the
        first and last layers (nearly all of it on wide data) and without
        the full-width masking passes.
        """
        mask = self.feature_mask
        # Rebuilt when the mask is replaced (``to``) or written in place
        # (``load_state_dict``, which bumps its version counter).
        try:
            key = (mask, mask._version)
        except RuntimeError:  # an inference tensor has no version counter
            key = (mask, None)  # never reused below
        cached = self.__dict__.get("_own_features_cache")
        if cached is None or cached[0] is not key[0] or cached[1] != key[1] or key[1] is None:
            counts = mask.sum(dim=1)
            index = None
            if len(counts) and int(counts[0]) > 0 and bool((counts == counts[0]).all()):
                index = torch.nonzero(mask)[:, 1].reshape(mask.shape[0], -1)
            cached = self.__dict__["_own_features_cache"] = (*key, index)
        return cached[2]

    def _own_index(self):
        """:meth:`own_features` where the own-feature products may replace
        the first and last layers' modules: not while hooks are set on
        those modules (they would not run)."""
        index = self.own_features()
        if index is None:
            return None
        for layer in (self.encoder[0], self.decoder[-1]):
            if layer._forward_hooks or layer._forward_pre_hooks:
                return None
        hooks = nn.modules.module
        if getattr(hooks, "_global_forward_hooks", None) or getattr(
            hooks, "_global_forward_pre_hooks", None
        ):
            return None
        return index

    @staticmethod
    def _own_input(x, index):
        """Each member's own features of ``x``: ``(n_members, B, n_selected)``."""
        n_members, n_selected = index.shape
        own = x.index_select(1, index.reshape(-1)).view(len(x), n_members, n_selected)
        return own.transpose(0, 1)

    def _encode_own(self, own, index):
        first = self.encoder[0]
        weight = first.weight.gather(
            1, index.unsqueeze(2).expand(-1, -1, first.weight.shape[2])
        )
        h = torch.baddbmm(first.bias, own, weight)
        for layer in list(self.encoder)[1:]:
            h = layer(h)
        return h

    def _decode_own(self, codes, index):
        """Each member's reconstruction of its own features."""
        *body, last = self.decoder
        h = codes
        for layer in body:
            h = layer(h)
        weight = last.weight.gather(
            2, index.unsqueeze(1).expand(-1, last.weight.shape[1], -1)
        )
        bias = last.bias.gather(2, index.unsqueeze(1))
        return torch.baddbmm(bias, h, weight)

    def _own_residuals(self, x, index):
        """Each member's residuals on its own features, ``(n_members, B,
        n_selected)``, and its codes."""
        own = self._own_input(x, index)
        codes = self._encode_own(own, index)
        return self._decode_own(codes, index) - own, codes

    def encode(self, x):
        """Return each member's code of ``x``: ``(n_members, B, n_components)``."""
        index = self._own_index()
        if index is not None:
            return self._encode_own(self._own_input(x, index), index)
        masked = x.unsqueeze(0) * self.feature_mask.unsqueeze(1).to(x.dtype)
        return self.encoder(masked)

    def decode(self, codes, x):
        """Return the reconstructions of ``x`` from its ``codes``.

        Features outside a member's subset pass through from ``x`` unchanged,
        so their error is exactly zero and the loss needs no mask.
        """
        return torch.where(self.feature_mask.unsqueeze(1), self.decoder(codes), x.unsqueeze(0))

    def forward(self, x):
        return self.decode(self.encode(x), x)

    def squared_residuals(self, x):
        """Return each member's squared residuals, ``(n_members, B,
        n_features)`` (0 outside its features), and its codes."""
        codes = self.encode(x)
        return (self.decode(codes, x) - x.unsqueeze(0)).square(), codes

    def errors_and_codes(self, x, feature_weights=None, log_residuals=False):
        """Return each member's mean squared error over its own features,
        ``(n_members, B)``, and its codes, ``(n_members, B, n_components)``.

        ``feature_weights``, of shape ``(n_members, n_features)``, multiplies
        each member's squared residual on each feature before the mean.
        With ``log_residuals``, each (weighted) squared residual ``r`` counts
        as ``log(1 + r)``: the negative log-likelihood of a Cauchy residual,
        which grows with the log of a large residual rather than its square.
        """
        index = self._own_index()
        if index is not None:
            residuals, codes = self._own_residuals(x, index)
            squared = residuals.square()
            if feature_weights is not None:
                squared = squared * feature_weights.gather(1, index).unsqueeze(1)
            if log_residuals:
                squared = torch.log1p(squared)
            return squared.sum(dim=2) / index.shape[1], codes
        squared, codes = self.squared_residuals(x)
        if feature_weights is not None:
            squared = squared * feature_weights.unsqueeze(1)
        if log_residuals:
            squared = torch.log1p(squared)  # log(1 + 0) = 0 outside a member's features
        counts = self.feature_mask.sum(dim=1, keepdim=True).to(x.dtype)
        return squared.sum(dim=2) / counts, codes

    def training_errors(self, x):
        """Return each member's squared error per row over all the features,
        ``(n_members, B)``, as :class:`TrimmedEnsembleLoss` computes it from
        :meth:`forward`'s output (features outside a member's subset count
        as reconstructed exactly), from each member's own features; None
        where :meth:`own_features` is None."""
        index = self._own_index()
        if index is None:
            return None
        residuals, _ = self._own_residuals(x, index)
        return residuals.square().sum(dim=2) / x.shape[1]


def squared_mahalanobis(codes, center, whitening):
    """Return ``(n_members, B)`` squared distances of ``codes`` to ``center``.

    ``codes`` has shape ``(n_members, B, k)``, ``center`` ``(n_members, k)``
    and ``whitening`` ``(n_members, k, k)``, a matrix ``L`` with ``L @ L.T``
    the precision (inverse covariance) of each member's codes, so that the
    distance is ``||(z - center) @ L||^2``.
    """
    return torch.bmm(codes - center.unsqueeze(1), whitening).square().sum(dim=2)


class TrimmedEnsembleLoss(nn.Module):
    """Mean squared error of an ensemble, ignoring each member's worst rows.

    Called as ``loss(output, x)`` with ``output`` of shape ``(n_members, B,
    n_features)`` (see :class:`EnsembleAutoencoder`) and ``x`` of shape ``(B,
    n_features)``. A row's error is its mean over all features; features
    outside a member's subset count as reconstructed exactly.

    Parameters
    ----------
    trim_fraction : float in [0, 1)
        Fraction of the rows of each batch with the largest error that each
        member leaves out of its loss: rows that reconstruct worst are the
        likeliest outliers in contaminated training data.
    """

    def __init__(self, trim_fraction=0.0):
        super().__init__()
        self.trim_fraction = trim_fraction

    def mean(self, output):
        """Return the members' mean reconstruction, rows by features."""
        return output.mean(dim=0)

    def per_member(self, output, x):
        """Return ``(n_members, B)`` mean squared errors per row."""
        return (output - x.unsqueeze(0)).square().mean(dim=2)

    def forward(self, output, x):
        return self.trimmed_mean(self.per_member(output, x))

    def trimmed_mean(self, errors):
        """Return the loss from the ``(n_members, B)`` errors of the rows."""
        n_rows = errors.shape[1]
        n_keep = n_rows - int(self.trim_fraction * n_rows)
        if n_keep < n_rows:
            errors = torch.topk(errors, n_keep, dim=1, largest=False, sorted=False).values
        return errors.mean()


def draw_dropout_masks(module, n_masks, generator):
    """Return, per :class:`FastDropout` layer of ``module``, ``n_masks`` masks.

    Each mask has shape ``(n_members, 1, n_units)``: one draw of the layer's
    dropout (zeros with probability ``p``, the rest ``1 / (1 - p)``) shared
    by every row of a batch, so a row's output under it does not depend on
    the other rows. Returns a list of ``(n_masks, n_members, 1, n_units)``
    tensors, in the order of the layers.
    """
    masks = []
    for layer in _dropout_layers(module):
        n_members, n_units = layer.shape
        keep = torch.rand(n_masks, n_members, 1, n_units, generator=generator) >= layer.p
        masks.append(keep.to(torch.float32) / (1 - layer.p))
    return masks


def set_dropout_masks(module, masks):
    """Fix the masks of ``module``'s dropout layers (``None``: unfix them)."""
    for i, layer in enumerate(_dropout_layers(module)):
        layer.module.fixed_mask = None if masks is None else masks[i]


class _DropoutLayer:
    def __init__(self, module, p, shape):
        self.module, self.p, self.shape = module, p, shape


def _dropout_layers(module):
    """The :class:`FastDropout` layers of an :class:`EnsembleAutoencoder`,
    with the ``(n_members, n_units)`` shape of their input."""
    layers = []
    for half in (module.encoder, module.decoder):
        units = None
        for layer in half:
            if isinstance(layer, ParallelLinear):
                units = layer.weight.shape[::2]
            elif isinstance(layer, FastDropout) and layer.p > 0:
                layers.append(_DropoutLayer(layer, layer.p, tuple(units)))
    return layers
