"""Torch networks for the autoencoders.

Nothing here knows about scikit-learn: these are plain ``torch.nn.Module``
builders that the estimators configure from their parameters.
"""

import math
from itertools import islice
from typing import NamedTuple

import torch
from torch import nn

from ._random import Dropout, current_generator, rand_like, randn_like

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


class TiedLinear(nn.Module):
    """A linear layer whose weight is the transpose of another layer's.

    Only the bias is its own; gradients from both layers update the shared
    weight.

    Parameters
    ----------
    tied_to : nn.Linear
        The layer (from ``in_features`` to ``out_features``) whose weight is
        reused; this layer maps ``out_features`` back to ``in_features``.
    """

    def __init__(self, tied_to):
        super().__init__()
        self.tied_to = tied_to
        self.in_features = tied_to.out_features
        self.out_features = tied_to.in_features
        bound = 1 / self.in_features**0.5  # nn.Linear's bias initialisation
        self.bias = nn.Parameter(torch.empty(self.out_features).uniform_(-bound, bound))

    @property
    def weight(self):
        return self.tied_to.weight.t()

    def forward(self, x):
        return nn.functional.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, tied"


def mlp(layer_sizes, *, activation="relu", dropout=0.0, batch_norm=False, tied_to=None):
    """Return an ``nn.Sequential`` of linear layers through ``layer_sizes``.

    Every linear layer but the last is followed by (optional) batch norm, the
    activation and (optional) dropout; the last layer is left linear so the
    caller decides what the output means (a code, a mean, logits).

    ``tied_to``, a list of ``nn.Linear`` (one per layer), makes each layer a
    :class:`TiedLinear` that uses the transpose of that layer's weight.
    """
    layers = []
    pairs = list(zip(layer_sizes[:-1], layer_sizes[1:]))
    for i, (n_in, n_out) in enumerate(pairs):
        if tied_to is None:
            layers.append(nn.Linear(n_in, n_out))
        else:
            if (tied_to[i].out_features, tied_to[i].in_features) != (n_in, n_out):
                raise ValueError(
                    f"layer {i} maps {n_in} to {n_out} features but tied_to[{i}] "
                    f"maps {tied_to[i].in_features} to {tied_to[i].out_features}"
                )
            layers.append(TiedLinear(tied_to[i]))
        if i == len(pairs) - 1:
            break
        if batch_norm:
            layers.append(nn.BatchNorm1d(n_out))
        layers.append(ACTIVATIONS[activation]())
        if dropout > 0:
            layers.append(Dropout(dropout))
    return nn.Sequential(*layers)


class WithLinearPath(nn.Module):
    """A linear map plus a (nonlinear) branch: ``linear(x) + branch(x)``.

    The linear path carries a linear model (PCA's projection or
    reconstruction, see :meth:`Autoencoder.start_from_linear`); the branch
    adds what the linear model misses. :meth:`silence_branch` makes the
    branch's contribution zero by zeroing its output layer
    (:func:`zero_output_layer`), which still gets gradients, so the branch
    starts learning at the first step. (A scalar gate at zero would learn
    too, but the branch's contribution would then grow as the product of
    two small factors, slowly.)

    Parameters
    ----------
    linear : nn.Linear or TiedLinear
        The linear path.
    branch : nn.Module or None
        The branch, with the same input and output sizes; None for a purely
        linear map.
    silence_at_input : bool, default=False
        Make the branch's contribution zero by zeroing its *first* linear
        layer instead, and cancelling its then constant output through the
        linear path's bias: the encoder of a tied autoencoder, whose first
        layer is the decoder branch's output layer (see
        :class:`MLPAutoencoder`).
    """

    def __init__(self, linear, branch=None, *, silence_at_input=False):
        super().__init__()
        self.linear = linear
        self.branch = branch
        self.silence_at_input = silence_at_input

    def forward(self, x):
        if self.branch is None:
            return self.linear(x)
        last = self.branch[-1] if isinstance(self.branch, nn.Sequential) else None
        if (
            x.dim() != 2
            or not isinstance(last, nn.Linear | TiedLinear)
            or self.linear.bias is None
        ):
            return self.linear(x) + self.branch(x)
        # linear(x) + branch(x), with the branch's output layer accumulating
        # into the linear path's output (addmm) and the two biases added as
        # vectors. Not measurably faster at bench_speed's W1/W2 sizes; the
        # panel in benchmarks/REPRESENTATION_RESULTS.md ran with this form
        # (its float rounding differs from the plain sum's).
        h = x
        # (islice, not self.branch[:-1], which builds a new Sequential)
        for layer in islice(self.branch, len(self.branch) - 1):
            h = layer(h)
        bias = self.linear.bias if last.bias is None else self.linear.bias + last.bias
        out = nn.functional.linear(x, self.linear.weight, bias)
        return torch.addmm(out, h, last.weight.t())

    def silence_branch(self):
        """Make the branch's contribution zero, in place.

        Its output layer is zeroed; a :class:`TiedLinear` output layer (whose
        weight is another layer's) keeps its weight, and its bias cancels
        the branch's output instead, which is exact to float rounding when
        that output is constant: in a tied decoder, whose output layer is
        the transpose of the zeroed first layer of the encoder's branch.
        With ``silence_at_input``, the branch's first linear layer is zeroed
        and the linear path's bias cancels its (constant) output.
        """
        if self.branch is None:
            return
        if self.silence_at_input:
            first = next(m for m in self.branch.modules() if isinstance(m, nn.Linear))
            with torch.no_grad():
                first.weight.zero_()
                self.linear.bias.sub_(self._constant_branch_output())
            return
        if zero_output_layer(self.branch):
            return
        last = [m for m in self.branch.modules() if isinstance(m, TiedLinear)][-1]
        with torch.no_grad():
            last.bias.sub_(self._constant_branch_output())

    def _constant_branch_output(self):
        """The branch's output, which must not depend on the input (checked
        on two random rows, in evaluation mode)."""
        training = self.branch.training
        self.branch.eval()
        try:
            device = next(self.branch.parameters()).device
            probe = torch.randn(2, self.linear.in_features, generator=torch.Generator().manual_seed(0))
            outputs = self.branch(probe.to(device))
        finally:
            self.branch.train(training)
        if not torch.allclose(outputs[0], outputs[1]):
            raise ValueError(
                "the branch's output depends on the input with its zeroed "
                "layer (a tied output layer, or another path around it): it "
                "cannot be silenced"
            )
        return outputs[0]


class CarriedLinearPath(nn.Sequential):
    """A ReLU :func:`mlp` whose first units carry a linear map through the
    hidden layers: ``relu(u) - relu(-u) = u``.

    :meth:`set_linear` makes the network compute ``weight @ x + bias``
    exactly (to float rounding) without any layer of its own: the first
    ``2 m`` units of every hidden layer (``m`` the smaller of the input and
    output sizes) hold the map's ``m`` signals and their negatives, passed
    on unchanged by identity blocks, and the output layer takes their
    difference; the other hidden units are left as they are, and their
    weights into the output layer are zeroed, so that they add nothing
    until trained (and, as every weight, they start learning at the first
    step). The network then costs exactly what the plain :func:`mlp` costs,
    where a separate linear path (:class:`WithLinearPath`) adds two matrix
    products per pass (10-20% of a fit at ``bench_speed.py``'s W1 and W2
    sizes). Training may change every weight, the carrying ones included.

    It needs ReLU hidden layers without dropout or batch norm, and room:
    see :func:`can_carry`.
    """

    def __init__(self, layer_sizes):
        super().__init__(*mlp(layer_sizes, activation="relu"))
        self.in_features = int(layer_sizes[0])
        self.out_features = int(layer_sizes[-1])
        self.n_carried = min(self.in_features, self.out_features)

    def set_linear(self, weight, bias):
        """Make the network compute ``weight @ x + bias``, in place."""
        layers = [m for m in self if isinstance(m, nn.Linear)]
        first, last = layers[0], layers[-1]
        m = self.n_carried
        weight = torch.as_tensor(weight, dtype=first.weight.dtype, device=first.weight.device)
        bias = torch.as_tensor(bias, dtype=first.weight.dtype, device=first.weight.device)
        eye = torch.eye(m, dtype=weight.dtype, device=weight.device)
        # weight = outer @ inner, one factor the identity.
        inner, outer = (weight, eye) if self.out_features <= self.in_features else (eye, weight)
        with torch.no_grad():
            first.weight[:m] = inner
            first.weight[m : 2 * m] = -inner
            first.bias[: 2 * m] = 0
            for layer in layers[1:-1]:
                layer.weight[: 2 * m] = 0
                layer.weight[: 2 * m, : 2 * m] = torch.eye(2 * m, dtype=weight.dtype, device=weight.device)
                layer.bias[: 2 * m] = 0
            last.weight.zero_()
            last.weight[:, :m] = outer
            last.weight[:, m : 2 * m] = -outer
            last.bias.copy_(bias)


def can_carry(n_features, n_components, hidden_layer_sizes, *, activation="relu",
              dropout=0.0, batch_norm=False, tied_weights=False):
    """Whether :class:`CarriedLinearPath` can hold the linear encoder and
    decoder of an :class:`MLPAutoencoder` with these settings.

    The carried map needs ReLU hidden layers (``relu(u) - relu(-u) = u``),
    no dropout or batch norm (which would perturb or rescale the carried
    signals), untied weights, and ``2 * n_components`` units in each hidden
    layer; we ask for at most half of each layer (``4 * n_components <=
    min(hidden_layer_sizes)``), so that the nonlinear part keeps at least as
    many units as it carries. Otherwise the linear model gets a path of its
    own (:class:`WithLinearPath`).
    """
    hidden = list(hidden_layer_sizes)
    return bool(
        hidden
        and activation == "relu"
        and dropout == 0
        and not batch_norm
        and not tied_weights
        and 4 * min(n_features, n_components) <= min(hidden)
    )


def zero_output_layer(module):
    """Set the weight and bias of ``module``'s output layer to zero, in place.

    The output layer is the last linear or (transposed) convolution layer in
    registration order, as in :func:`mlp` and the built-in networks. Returns
    False (and changes nothing) when there is none, or when it is a
    :class:`TiedLinear`, whose weight belongs to another layer.
    """
    # A TiedLinear holds the layer it is tied to as a child: not this
    # module's own layer.
    borrowed = {id(m.tied_to) for m in module.modules() if isinstance(m, TiedLinear)}
    last = None
    for layer in module.modules():
        if id(layer) in borrowed:
            continue
        if isinstance(layer, nn.Linear | nn.Conv2d | nn.ConvTranspose2d | TiedLinear):
            last = layer
    if last is None or isinstance(last, TiedLinear):
        return False
    with torch.no_grad():
        last.weight.zero_()
        if last.bias is not None:
            last.bias.zero_()
    return True


class Corruption(nn.Module):
    """Input corruption of a denoising autoencoder, applied in training only.

    Parameters
    ----------
    kind : {None, 'gaussian', 'mask'} or callable
        ``'gaussian'`` adds noise of standard deviation ``level``; ``'mask'``
        sets each value to zero with probability ``level`` (masking noise).
        A callable is called as ``kind(batch, generator)`` and returns the
        corrupted batch, finite, of the same shape and dtype; ``batch`` is
        a copy, which it may modify in place (the clean batch stays the
        loss's target); ``generator`` is the ``torch.Generator`` its draws
        should come from (the current fit's,
        see :mod:`sklearn_ae._random`, else torch's default generator for
        the batch's device). ``None`` leaves the input unchanged.
    level : float
        Noise standard deviation, or masking probability (not used by a
        callable).

    In eval mode (inference) the input always passes through unchanged.
    """

    # Whether a callable's output was checked for non-finite values (on the
    # first training batch; see _call_noise).
    _checked_finite = False

    def __init__(self, kind=None, level=0.0):
        super().__init__()
        if not (kind in (None, "gaussian", "mask") or callable(kind)):
            raise ValueError(
                f"kind must be None, 'gaussian', 'mask' or a callable, got {kind!r}"
            )
        self.kind = kind
        self.level = level

    def forward(self, x):
        if not self.training or self.kind is None:
            return x
        if callable(self.kind):
            return self._call_noise(x)
        if self.level == 0:
            return x
        if self.kind == "gaussian":
            return x + self.level * randn_like(x)
        return x * (rand_like(x) >= self.level)

    def _call_noise(self, x):
        generator = current_generator(x.device)
        if generator is None:
            generator = (
                torch.cuda.default_generators[x.device.index or 0]
                if x.device.type == "cuda"
                else torch.default_generator
            )
        name = getattr(self.kind, "__name__", repr(self.kind))
        try:
            # A copy: an in-place noise (``batch.mul_(0.5)``) would otherwise
            # corrupt the clean batch, the loss's target, too.
            out = self.kind(x.clone(), generator)
        except Exception as exc:
            raise ValueError(
                f"noise={name} failed on a batch of shape {tuple(x.shape)}: {exc}"
            ) from exc
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"noise={name} must return a tensor of the batch's shape "
                f"{tuple(x.shape)}, got {got}."
            )
        dtypes = {x.dtype}
        if torch.is_autocast_enabled(x.device.type):
            # (mixed_precision: a matrix product gives the autocast dtype,
            # as in the network itself)
            dtypes.add(torch.get_autocast_dtype(x.device.type))
        if out.dtype not in dtypes:
            raise ValueError(
                f"noise={name} must return a tensor of the batch's dtype "
                f"{x.dtype}, got {out.dtype}."
            )
        if not self._checked_finite:
            # On the first batch only (a check per batch would wait for the
            # device at every step): non-finite values there would otherwise
            # be blamed on the network, as an untrained loss that is not
            # finite.
            if not torch.isfinite(out).all():
                raise ValueError(
                    f"noise={name} must return finite values, got NaN or "
                    f"infinity on a batch of shape {tuple(x.shape)}."
                )
            self._checked_finite = True
        return out

    def extra_repr(self):
        kind = getattr(self.kind, "__name__", self.kind) if callable(self.kind) else repr(self.kind)
        return f"kind={kind}, level={self.level}"


class Autoencoder(nn.Module):
    """An encoder and a decoder, with the options every variant shares.

    Parameters
    ----------
    encoder : nn.Module
        Maps a batch of flat rows ``(n, n_features)`` to codes ``(n, n_components)``.
    decoder : nn.Module
        Maps codes back to the decoder's raw output ``(n, n_features)``.
    noise, noise_level
        Corruption of the input in training (denoising); see :class:`Corruption`.
    code_activation : str, default='identity'
        Activation applied to the encoder's output, a key of ``ACTIVATIONS``
        (``'logistic'`` gives codes in (0, 1), as a KL sparsity penalty needs).
    output_activation : str, default='identity'
        Activation applied to the decoder's output, a key of ``ACTIVATIONS``
        (``'logistic'`` gives reconstructions in (0, 1)).
    return_code : bool, default=False
        If True, ``forward`` returns ``(reconstruction, code)`` so that a
        criterion can penalise the code; else only the reconstruction.
    """

    def __init__(
        self,
        encoder,
        decoder,
        *,
        noise=None,
        noise_level=0.0,
        code_activation="identity",
        output_activation="identity",
        return_code=False,
    ):
        super().__init__()
        self.corruption = Corruption(noise, noise_level)
        self.encoder = encoder
        self.code_activation = ACTIVATIONS[code_activation]()
        self.decoder = decoder
        self.output_activation = ACTIVATIONS[output_activation]()
        self.return_code = return_code

    def encode(self, x):
        """Return the code of ``x``."""
        return self.code_activation(self.encoder(x))

    def decode(self, z):
        """Return the decoder's output for code ``z`` (through the output
        activation; logits for a binary cross-entropy loss)."""
        return self.output_activation(self.decoder(z))

    def forward(self, x):
        code = self.encode(self.corruption(x))
        reconstruction = self.decode(code)
        return (reconstruction, code) if self.return_code else reconstruction

    @property
    def has_linear_path(self):
        """Whether encoder and decoder are :class:`WithLinearPath` or
        :class:`CarriedLinearPath` maps."""
        paths = (WithLinearPath, CarriedLinearPath)
        return isinstance(self.encoder, paths) and isinstance(self.decoder, paths)

    def start_from_linear(self, encoder_weight, encoder_bias, decoder_weight, decoder_bias):
        """Set the linear paths to the given linear encoder and decoder, and
        make the branches' contributions exactly zero.

        The network then computes ``decode(encode(x))`` of the linear model
        (up to the code and output activations). Weights are ``(out, in)`` arrays or
        tensors, as in ``nn.Linear``; a tied decoder keeps the encoder's
        transposed weight and takes only ``decoder_bias``.
        """
        if not self.has_linear_path:
            raise ValueError("this network has no linear path to start from")
        with torch.no_grad():
            for path, weight, bias in (
                (self.encoder, encoder_weight, encoder_bias),
                (self.decoder, decoder_weight, decoder_bias),
            ):
                if isinstance(path, CarriedLinearPath):
                    path.set_linear(weight, bias)
                    continue
                linear = path.linear
                if not isinstance(linear, TiedLinear):
                    linear.weight.copy_(torch.as_tensor(weight))
                linear.bias.copy_(torch.as_tensor(bias))
                path.silence_branch()


class MLPAutoencoder(Autoencoder):
    """A fully connected encoder and a decoder that mirrors it, each able to
    hold a linear map exactly.

    Encoder and decoder are :class:`WithLinearPath` maps: a linear layer
    from input to output, plus an :func:`mlp` branch through the hidden
    layers whose output layer starts at zero (no branch without hidden
    layers) and has no bias of its own (the linear layer's is the sum's).
    With ``carry=True``, where :func:`can_carry` allows, they are instead
    plain :func:`mlp` stacks whose first hidden units carry the linear map
    (:class:`CarriedLinearPath`). Until trained, or
    until :meth:`Autoencoder.start_from_linear` sets the linear maps (to
    PCA's solution, say), the network is a linear autoencoder.

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
    tied_weights : bool, default=False
        Whether each decoder layer uses the transposed weight of its mirror
        encoder layer (with its own bias), halving the number of weights;
        the decoder's linear path uses the encoder's. The branches are then
        silenced at the encoder branch's first layer, which is the decoder
        branch's output layer: zeroed, it makes the encoder branch's output
        a constant (cancelled by the encoder's linear bias) and the decoder
        branch's one its own bias (cancelled too). Silenced at the encoder
        branch's output layer instead, as untied branches are, the start is
        a saddle point: that layer's transpose is the decoder branch's first
        layer, so neither branch depends on its input, and the gradient of
        the zeroed layer is the residuals' correlation with the codes,
        which is zero at PCA's solution: a tied network on digits in [0, 1]
        (k=10, hidden (48, 24), tanh) ended at PCA's held-out error, 1.000x,
        and now ends at 0.783x (untied: 0.741x).
    carry : bool, default=False
        Whether to carry the linear map in the hidden layers where
        :func:`can_carry` allows. A training step then costs what the plain
        network's does (about 15% less than with separate paths at
        ``bench_speed.py``'s W1 sizes), but the estimators do not use it:
        on the representation panel (24 sets, seeds 0-2) the autoencoder
        with separate paths stayed within 1.02x PCA's held-out error on all
        72 runs, the carried one on 71 (42_WBC, seed 0: 1.98x, from two
        outlier rows reconstructed 5-8x worse than by PCA: once trained,
        the carrying units no longer extrapolate linearly), at a similar
        median (0.725 against 0.745).
    **options
        ``noise``, ``noise_level``, ``code_activation``, ``return_code``:
        see :class:`Autoencoder`.
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
        tied_weights=False,
        carry=False,
        **options,
    ):
        hidden = list(hidden_layer_sizes)
        layer_options = dict(activation=activation, dropout=dropout, batch_norm=batch_norm)
        if carry and can_carry(n_features, n_components, hidden, tied_weights=tied_weights, **layer_options):
            encoder = CarriedLinearPath([n_features, *hidden, n_components])
            decoder = CarriedLinearPath([n_components, *hidden[::-1], n_features])
            for path in (encoder, decoder):
                start = nn.Linear(path.in_features, path.out_features)
                path.set_linear(start.weight.detach(), start.bias.detach())
            super().__init__(encoder, decoder, **options)
            return
        linear = nn.Linear(n_features, n_components)
        branch = None
        if hidden:
            branch = mlp([n_features, *hidden, n_components], **layer_options)
        if branch is not None:
            _drop_output_bias(branch)
        # Tied, the encoder branch is silenced at its first layer, which is
        # also the decoder branch's output layer (see tied_weights).
        encoder = WithLinearPath(linear, branch, silence_at_input=tied_weights)
        decoder_linear = TiedLinear(linear) if tied_weights else nn.Linear(n_components, n_features)
        branch = None
        if hidden:
            tied_to = None
            if tied_weights:
                tied_to = [m for m in encoder.branch if isinstance(m, nn.Linear)][::-1]
            branch = mlp(
                [n_components, *hidden[::-1], n_features], tied_to=tied_to, **layer_options
            )
            if not tied_weights:
                _drop_output_bias(branch)
        decoder = WithLinearPath(decoder_linear, branch)
        encoder.silence_branch()
        decoder.silence_branch()
        super().__init__(encoder, decoder, **options)


def _drop_output_bias(branch):
    """Remove the bias of an :func:`mlp` branch's (untied) output layer: in
    ``linear(x) + branch(x)`` the linear layer's bias covers it, and one
    bias fewer is one addition (and its gradient) fewer per step."""
    last = branch[-1]
    if isinstance(last, nn.Linear) and last.bias is not None:
        last.register_parameter("bias", None)


def _linear_paths(n_features, n_components, encoder, decoder):
    """Wrap a structured encoder and decoder as branches of linear paths on
    flat rows, their output layers zeroed (see :class:`WithLinearPath`)."""
    encoder = WithLinearPath(nn.Linear(n_features, n_components), encoder)
    decoder = WithLinearPath(nn.Linear(n_components, n_features), decoder)
    encoder.silence_branch()
    decoder.silence_branch()
    return encoder, decoder


def _per_layer(value, n_layers, name):
    """Return ``value`` (an int, or one int per layer) as a list of ints."""
    values = [value] * n_layers if isinstance(value, int) else list(value)
    if len(values) != n_layers:
        raise ValueError(
            f"{name} must be an int or one int per convolution ({n_layers}), "
            f"got {value!r}"
        )
    return [int(v) for v in values]


def _conv_size(size, kernel_size, stride):
    """Spatial size after a convolution with padding ``kernel_size // 2``."""
    return (size + 2 * (kernel_size // 2) - kernel_size) // stride + 1


def conv_sizes(input_shape, n_layers, kernel_size=3, strides=2):
    """Return the ``(height, width)`` after each of ``n_layers`` convolutions
    of :class:`ConvEncoder`, the input's first."""
    kernels = _per_layer(kernel_size, n_layers, "kernel_size")
    strides = _per_layer(strides, n_layers, "strides")
    sizes = [tuple(input_shape[1:])]
    for k, s in zip(kernels, strides):
        sizes.append(tuple(_conv_size(t, k, s) for t in sizes[-1]))
    return sizes


class ConvEncoder(nn.Module):
    """Strided convolutions, then a linear layer to the code.

    Parameters
    ----------
    input_shape : tuple of int
        ``(channels, height, width)`` of an image given as a flat row.
    n_components : int
        Size of the code.
    channels : sequence of int
        Output channels of each convolution.
    kernel_size : int or sequence of int, default=3
        Kernel size of each convolution (one for all, or one per layer),
        padded by ``kernel_size // 2``.
    strides : int or sequence of int, default=2
        Stride of each convolution; 2 halves height and width.
    activation, dropout, batch_norm
        As in :func:`mlp` (``BatchNorm2d`` after each convolution).
    """

    def __init__(self, input_shape, n_components, channels=(16, 32), *,
                 kernel_size=3, strides=2, activation="relu", dropout=0.0,
                 batch_norm=False):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        n_components = int(n_components)
        channels = list(channels)
        kernels = _per_layer(kernel_size, len(channels), "kernel_size")
        strides = _per_layer(strides, len(channels), "strides")
        sizes = conv_sizes(self.input_shape, len(channels), kernels, strides)
        n_channels = self.input_shape[0]
        layers = []
        for n_out, k, s in zip(channels, kernels, strides):
            layers.append(nn.Conv2d(n_channels, n_out, k, stride=s, padding=k // 2))
            if batch_norm:
                layers.append(nn.BatchNorm2d(n_out))
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(Dropout(dropout))
            n_channels = n_out
        self.features = nn.Sequential(*layers)
        self.code = nn.Linear(n_channels * math.prod(sizes[-1]), n_components)

    def forward(self, x):
        return self.code(self.features(x.reshape(-1, *self.input_shape)).flatten(1))

    def extra_repr(self):
        # The reshape is part of the network: without it in the repr, a
        # continued fit could not tell (1, 4, 4) from (1, 2, 8), whose
        # layers have the same sizes.
        return f"input_shape={self.input_shape}"


class ConvDecoder(nn.Module):
    """A linear layer from the code, then transposed convolutions that mirror
    :class:`ConvEncoder` back to ``input_shape``; returns flat rows."""

    def __init__(self, input_shape, n_components, channels=(16, 32), *,
                 kernel_size=3, strides=2, activation="relu", dropout=0.0,
                 batch_norm=False):
        super().__init__()
        self.input_shape = input_shape = tuple(int(s) for s in input_shape)
        n_components = int(n_components)
        n_channels = input_shape[0]
        channels = list(channels)
        kernels = _per_layer(kernel_size, len(channels), "kernel_size")
        strides = _per_layer(strides, len(channels), "strides")
        sizes = conv_sizes(input_shape, len(channels), kernels, strides)
        self.start_shape = (channels[-1], *sizes[-1]) if channels else tuple(input_shape)
        self.expand = nn.Linear(n_components, math.prod(self.start_shape))
        layers = [] if not channels else [ACTIVATIONS[activation]()]
        outputs = channels[-2::-1] + [n_channels]
        for i, (n_in, n_out) in enumerate(zip(channels[::-1], outputs)):
            layer = len(channels) - 1 - i
            k, s = kernels[layer], strides[layer]
            source, target = sizes[layer + 1], sizes[layer]
            # output_padding makes each layer land exactly on the encoder's
            # size; with padding k // 2 it is in [0, s - 1], as torch requires
            padding = tuple(
                t - ((n - 1) * s - 2 * (k // 2) + k) for t, n in zip(target, source)
            )
            layers.append(
                nn.ConvTranspose2d(
                    n_in, n_out, k, stride=s, padding=k // 2, output_padding=padding
                )
            )
            if i == len(channels) - 1:
                break
            if batch_norm:
                layers.append(nn.BatchNorm2d(n_out))
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(Dropout(dropout))
        self.features = nn.Sequential(*layers)

    def forward(self, z):
        return self.features(self.expand(z).reshape(-1, *self.start_shape)).flatten(1)

    def extra_repr(self):
        return f"input_shape={self.input_shape}"


class ConvAutoencoder(Autoencoder):
    """Convolutional encoder and transposed-convolutional decoder for images
    given as flat rows of ``prod(input_shape)`` values, each the branch of a
    linear path on the flat rows (see :class:`WithLinearPath`) with its
    output layer zeroed.

    ``channels``, ``kernel_size``, ``strides``, ``activation``, ``dropout``
    and ``batch_norm`` are those of :class:`ConvEncoder`; ``**options``
    those of :class:`Autoencoder`.
    """

    def __init__(self, input_shape, n_components, channels=(16, 32), *,
                 kernel_size=3, strides=2, activation="relu", dropout=0.0,
                 batch_norm=False, **options):
        super().__init__(
            *_linear_paths(
                math.prod(input_shape),
                n_components,
                *structured_branches(
                    input_shape, n_components, n_components, channels,
                    kernel_size=kernel_size, strides=strides, activation=activation,
                    dropout=dropout, batch_norm=batch_norm,
                ),
            ),
            **options,
        )


def structured_branches(input_shape, n_codes, n_components, hidden_sizes, *,
                        kernel_size=3, strides=2, activation="relu", dropout=0.0,
                        batch_norm=False):
    """Return the ``(encoder, decoder)`` networks for samples of ``input_shape``.

    ``(channels, height, width)``: a :class:`ConvEncoder` and
    :class:`ConvDecoder` with ``hidden_sizes`` channels; ``(n_timesteps,
    n_channels)``: an :class:`LSTMEncoder` and :class:`LSTMDecoder` with
    ``hidden_sizes`` units (``kernel_size``, ``strides``, ``activation`` and
    ``batch_norm`` do not apply). The encoder maps flat rows to ``n_codes``
    outputs (the code, or a variational posterior's mean and log-variance),
    the decoder ``n_components`` codes back to flat rows. The one builder of
    the structured networks of every estimator.
    """
    if len(input_shape) == 3:
        options = dict(kernel_size=kernel_size, strides=strides, activation=activation,
                       dropout=dropout, batch_norm=batch_norm)
        return (
            ConvEncoder(input_shape, n_codes, hidden_sizes, **options),
            ConvDecoder(input_shape, n_components, hidden_sizes, **options),
        )
    return (
        LSTMEncoder(input_shape, n_codes, hidden_sizes, dropout=dropout),
        LSTMDecoder(input_shape, n_components, hidden_sizes, dropout=dropout),
    )


class LSTMEncoder(nn.Module):
    """Stacked LSTMs over the time steps; the last step's output, through a
    linear layer, is the code.

    Parameters
    ----------
    input_shape : tuple of int
        ``(n_timesteps, n_channels)`` of a window given as a flat row
        (time-major: the first ``n_channels`` values are the first step).
    n_components : int
        Size of the code.
    hidden_sizes : sequence of int
        Hidden size of each LSTM layer.
    dropout : float
        Dropout between LSTM layers, in training.
    """

    def __init__(self, input_shape, n_components, hidden_sizes=(32,), *, dropout=0.0):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        n_components = int(n_components)
        n_in = self.input_shape[1]
        self.lstms = nn.ModuleList()
        for size in hidden_sizes:
            self.lstms.append(nn.LSTM(n_in, int(size), batch_first=True))
            n_in = int(size)
        self.dropout = Dropout(dropout)
        self.code = nn.Linear(n_in, n_components)

    def forward(self, x):
        h = x.reshape(-1, *self.input_shape)
        for i, lstm in enumerate(self.lstms):
            h = lstm(self.dropout(h) if i else h)[0]
        return self.code(h[:, -1])


class LSTMDecoder(nn.Module):
    """The code repeated at every time step, through stacked LSTMs (sizes
    reversed) and a linear read-out per step; returns flat rows."""

    def __init__(self, input_shape, n_components, hidden_sizes=(32,), *, dropout=0.0):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        n_in = int(n_components)
        self.lstms = nn.ModuleList()
        for size in list(hidden_sizes)[::-1]:
            self.lstms.append(nn.LSTM(n_in, int(size), batch_first=True))
            n_in = int(size)
        self.dropout = Dropout(dropout)
        self.readout = nn.Linear(n_in, self.input_shape[1])

    def forward(self, z):
        h = z.unsqueeze(1).expand(-1, self.input_shape[0], -1)
        for i, lstm in enumerate(self.lstms):
            h = lstm(self.dropout(h) if i else h)[0]
        return self.readout(h).flatten(1)


class LSTMAutoencoder(Autoencoder):
    """Sequence-to-sequence LSTM autoencoder for windows of a time series
    given as flat rows of ``n_timesteps * n_channels`` values; encoder and
    decoder are the branches of linear paths on the flat rows (see
    :class:`WithLinearPath`), with their output layers zeroed."""

    def __init__(self, input_shape, n_components, hidden_sizes=(32,), *,
                 dropout=0.0, **options):
        super().__init__(
            *_linear_paths(
                math.prod(input_shape),
                n_components,
                *structured_branches(
                    input_shape, n_components, n_components, hidden_sizes, dropout=dropout
                ),
            ),
            **options,
        )


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


# Names of VariationalAutoencoder's buffers bounding its branches' inputs
# (see its Notes): inputs low and high, latent coordinates low and high.
BRANCH_BOUNDS = ("input_low", "input_high", "latent_low", "latent_high")

# Bound on the posterior's log-variance (see VariationalAutoencoder.encode):
# exp(60) and exp(-60) are finite in float32, and so are their products with
# the squared draws in the importance weights.
_LOG_VAR_BOUND = 60.0


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
        Smallest observation variance of the Gaussian decoder, the initial
        value of the per-feature buffer ``variance_floor``; it keeps the
        likelihood finite when a feature is predicted (almost) exactly.
    variance_momentum : float
        How far each training batch moves the Gaussian decoder's variance
        toward the batch's mean squared residual per feature.
    eval_noise : tensor of shape (n_draws, n_components) or None
        Standard normal draws that ``forward`` decodes in evaluation mode
        (when no ``noise`` is given) instead of one fresh draw per row: the
        output's ``z`` and ``decoded`` then have a leading axis of
        ``n_draws``, and a loss averaged over it is a deterministic,
        low-noise estimate of the ELBO (e.g. the validation loss of early
        stopping). Kept as a non-persistent buffer (it follows the module's
        device and dtype and is not saved). None: one fresh draw per row.
    activation, dropout, batch_norm
        See :func:`mlp`.
    branches : tuple of nn.Module or None
        ``(encoder, decoder)`` nonlinear branches to use instead of the
        :func:`mlp` ones (e.g. :func:`structured_branches`): the encoder maps
        flat rows to ``2 * n_components`` outputs, the decoder codes to flat
        rows. Their output layers are zeroed.

    Notes
    -----
    Encoder and decoder are each a linear path (``encoder_linear``,
    ``decoder_linear``) plus, when ``hidden_layer_sizes`` is not empty, a
    nonlinear branch (``encoder``, ``decoder``) whose output is added to it.
    The branches' last layers start at zero, so an untrained network is the
    linear-Gaussian model that its linear paths and ``observation_var``
    hold: set them to a probabilistic PCA or factor-analysis solution and
    the network starts as that model (the estimator does).


    Features can be *pinned* (:meth:`pin`, Gaussian decoder only): the
    encoder reads them as their pinned value whatever the input, and the
    decoder outputs that value, with variance ``1 / (2 pi)``; a row at the
    pinned values then adds exactly 0 to the log-likelihood from them, and
    no weight learns from or acts on them. The estimator pins the features
    that are constant on the training rows and models them apart.

    Outside training, the nonlinear branches see their inputs *bounded*:
    the encoder branch (and the linear path's log-variance head) reads each
    feature clipped to ``[input_low, input_high]``, the decoder branch each
    latent coordinate clipped to ``[latent_low, latent_high]``; the linear
    paths of the means read the inputs as given. The bounds are buffers, at
    float32's largest values (no bound) until :meth:`set_bounds` sets them
    (the estimator sets them from the rows it was fitted on). Within the
    bounds nothing changes; beyond them the branches and the posterior's
    variance stay at their values on the boundary, and only the linear
    model extrapolates.
    A ReLU branch grows linearly without bound off the data, fitted only
    where there is data: on a page-blocks-like set (area = height x
    length), four held-out rows 24-63 standard deviations out scored down
    to -1.7e8 nats each after training, where the linear start scored them
    about -3,500.

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
        eval_noise=None,
        activation="relu",
        dropout=0.0,
        batch_norm=False,
        branches=None,
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
        self.encoder_linear = nn.Linear(n_features, 2 * n_components)
        self.decoder_linear = nn.Linear(n_components, n_features)
        self.encoder = self.decoder = None
        if hidden and branches is None:
            self.encoder = mlp([n_features, *hidden, 2 * n_components], **options)
            self.decoder = mlp([n_components, *hidden[::-1], n_features], **options)
            for branch in (self.encoder, self.decoder):
                nn.init.zeros_(branch[-1].weight)
                nn.init.zeros_(branch[-1].bias)
        if branches is not None:
            self.encoder, self.decoder = branches
            for branch in branches:
                zero_output_layer(branch)
        if likelihood == "gaussian":
            observation_var = torch.ones(n_features)
            variance_floor = torch.full((n_features,), float(min_variance))
        else:
            observation_var = variance_floor = None
        self.register_buffer("observation_var", observation_var)
        # Per feature, so that the caller can floor each variance relative
        # to its feature's own variance.
        self.register_buffer("variance_floor", variance_floor)
        if eval_noise is not None:
            eval_noise = torch.as_tensor(eval_noise, dtype=torch.float32)
        self.register_buffer("eval_noise", eval_noise, persistent=False)
        # Pinned features (see pin) and their values; none by default.
        pinned = pinned_value = None
        if likelihood == "gaussian":
            pinned = torch.zeros(n_features, dtype=torch.bool)
            pinned_value = torch.zeros(n_features)
        self.register_buffer("pinned", pinned)
        self.register_buffer("pinned_value", pinned_value)
        self._register_bounds(n_features)

    def _register_bounds(self, n_features):
        """Register the bounds of the branches' inputs, set to no bound (see
        Notes): float32's largest values (finite, as the trained network's
        checks ask of every buffer; no finite input is clipped)."""
        device = self.encoder_linear.weight.device
        largest = torch.finfo(torch.float32).max
        sizes = (n_features, n_features, self.n_components, self.n_components)
        for name, size, sign in zip(BRANCH_BOUNDS, sizes, (-1, 1, -1, 1)):
            self.register_buffer(name, torch.full((size,), sign * largest, device=device))

    def __setstate__(self, state):
        super().__setstate__(state)
        # A module pickled before the bounds existed has none: no bound.
        if BRANCH_BOUNDS[0] not in self._buffers:
            self._register_bounds(self.encoder_linear.in_features)

    @property
    def bounds_set(self):
        """Whether :meth:`set_bounds` has bounded the branches' inputs."""
        return bool(self.input_high.lt(torch.finfo(torch.float32).max).any()
                    or self.input_low.gt(-torch.finfo(torch.float32).max).any())

    @torch.no_grad()
    def set_bounds(self, input_low, input_high, latent_low, latent_high):
        """Set the bounds of the branches' inputs (see Notes), in place."""
        for name, value in zip(BRANCH_BOUNDS, (input_low, input_high, latent_low, latent_high)):
            buffer = getattr(self, name)
            buffer.copy_(torch.as_tensor(value, dtype=buffer.dtype, device=buffer.device))

    def _bounded(self, x, low, high):
        """``x`` clipped to ``[low, high]`` outside training; as is in training."""
        if self.training:
            return x
        return torch.maximum(torch.minimum(x, high.to(x.dtype)), low.to(x.dtype))

    @torch.no_grad()
    def pin(self, mask, values):
        """Pin the features of boolean ``mask`` to ``values`` (Gaussian only).

        Their encoder input and decoder output become ``values``, their
        observation variance (and its floor) ``1 / (2 pi)``, at which the
        log-density of the pinned value is 0.
        """
        mask = torch.as_tensor(mask, dtype=torch.bool, device=self.pinned.device)
        self.pinned.copy_(mask)
        self.pinned_value.zero_()
        self.pinned_value[mask] = torch.as_tensor(
            values, dtype=self.pinned_value.dtype, device=self.pinned_value.device
        )
        for buffer in (self.observation_var, self.variance_floor):
            buffer[mask] = 1.0 / (2.0 * math.pi)

    def pin_input(self, x):
        """Return ``x`` with its pinned features set to their pinned values."""
        if self.pinned is None:
            return x
        return torch.where(self.pinned, self.pinned_value, x)

    def encode(self, x):
        """Return the posterior's ``(mean, log_variance)`` for ``x``."""
        x = self.pin_input(x)
        bounded = self._bounded(x, self.input_low, self.input_high)
        if bounded is x:
            out = self.encoder_linear(x)
        else:
            # The mean head reads the input, the log-variance head the
            # bounded input (see Notes).
            k, weight, bias = self.n_components, self.encoder_linear.weight, self.encoder_linear.bias
            out = torch.cat([
                nn.functional.linear(x, weight[:k], bias[:k]),
                nn.functional.linear(bounded, weight[k:], bias[k:]),
            ], dim=-1)
        if self.encoder is not None:
            out = out + self.encoder(bounded)
        z_mean, z_log_var = out.chunk(2, dim=-1)
        # The log-variance grows with the input, and a row far from the
        # training data (1e6 where they are of order 1) overflowed exp():
        # inf - inf made its score NaN, and the detector called it normal.
        # Bounded, the posterior is still a distribution, so the ELBO is
        # still a bound (hugely negative there); within the bound, nothing
        # changes (a standard deviation of e^30 or e^-30 times the prior's).
        return z_mean, z_log_var.clamp(-_LOG_VAR_BOUND, _LOG_VAR_BOUND)

    def decode(self, z):
        """Return the decoder's raw output for latent ``z`` (mean or logits)."""
        out = self.decoder_linear(z)
        if self.decoder is not None:
            out = out + self.decoder(self._bounded(z, self.latent_low, self.latent_high))
        return self.pin_input(out)

    def observation_log_var(self):
        """Return the Gaussian decoder's per-feature log-variance, or None."""
        if self.observation_var is None:
            return None
        return self.observation_var.maximum(self.variance_floor).log()

    def forward(self, x, noise=None):
        """Encode ``x``, draw z from q(z|x) by reparameterisation, decode it.

        ``noise`` is the standard normal draw (broadcast against the
        posterior's shape); by default it is drawn from torch's default
        generator; in evaluation mode with ``eval_noise`` set, every row is
        decoded at each of those draws (a leading axis of ``n_draws`` on
        ``z`` and ``decoded``). In training mode the Gaussian decoder's
        variance is updated from this batch first (see Notes).
        """
        z_mean, z_log_var = self.encode(x)
        if noise is None and not self.training and self.eval_noise is not None:
            noise = self.eval_noise[:, None, :]
        z = self._reparameterize(z_mean, z_log_var, noise)
        if z.dim() > z_mean.dim():
            # One batch of draws x rows for the decoder (batch norm takes
            # 2-d input), then the draws' axis again.
            decoded = self.decode(z.flatten(0, 1)).unflatten(0, z.shape[:2])
        else:
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
            noise = randn_like(z_mean)
        return z_mean + (0.5 * z_log_var).exp() * noise


def count_parameters(module):
    """Return the number of trainable scalars in ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = [
    "ACTIVATIONS",
    "Autoencoder",
    "ConvAutoencoder",
    "ConvDecoder",
    "ConvEncoder",
    "conv_sizes",
    "Corruption",
    "LSTMAutoencoder",
    "LSTMDecoder",
    "LSTMEncoder",
    "CarriedLinearPath",
    "MLPAutoencoder",
    "can_carry",
    "TiedLinear",
    "VAEOutput",
    "VariationalAutoencoder",
    "WithLinearPath",
    "count_parameters",
    "mlp",
    "structured_branches",
    "zero_output_layer",
]
