"""The fitted encoder as a plain torch module, and a hidden layer's activations.

:class:`FittedEncoder` carries the estimator's internal scaling as buffers,
so that it maps raw input to codes like ``transform`` and can be trained
further inside any torch model (a skorch ``NeuralNetClassifier``, say).
:func:`hidden_layers` and :func:`hidden_activations` read the activations of
the encoder's hidden layers with forward hooks.
"""

import copy

import torch
from torch import nn

from ._networks import ACTIVATIONS

_ACTIVATION_TYPES = tuple(ACTIVATIONS.values())


class FittedEncoder(nn.Module):
    """A fitted encoder that maps raw input to codes, scaling included.

    ``forward(x)`` flattens each sample (``(n, *input_shape)`` or flat rows),
    removes ``mean`` and divides by ``scale`` (buffers; absent when the
    estimator does not scale its input), then runs the encoder and the code
    activation. Its parameters are trainable.

    Parameters
    ----------
    encoder : nn.Module
        The encoder network, on flat rows.
    code_activation : nn.Module
        The activation applied to the encoder's output.
    mean, scale : array-like of shape (n_features,) or None
        The estimator's ``mean_`` and ``scale_``.
    """

    def __init__(self, encoder, code_activation, mean=None, scale=None):
        super().__init__()
        self.encoder = encoder
        self.code_activation = code_activation
        for name, value in (("mean", mean), ("scale", scale)):
            tensor = None if value is None else torch.as_tensor(value, dtype=torch.float32)
            self.register_buffer(name, tensor)

    def forward(self, x):
        x = x.reshape(len(x), -1)
        if not x.is_floating_point():
            x = x.float()
        if self.mean is not None:
            x = x - self.mean.to(x.dtype)
        if self.scale is not None:
            x = x / self.scale.to(x.dtype)
        return self.code_activation(self.encoder(x))


def export_encoder(module, mean, scale):
    """Return a :class:`FittedEncoder` copy of ``module``'s encoder, on the CPU
    in float32 and in training mode."""
    encoder = FittedEncoder(
        copy.deepcopy(module.encoder), copy.deepcopy(module.code_activation), mean, scale
    )
    return encoder.to(device="cpu", dtype=torch.float32).train()


def hidden_layers(encoder):
    """Return the activation modules of ``encoder``'s hidden layers, input side
    first (in registration order)."""
    return [m for m in encoder.modules() if isinstance(m, _ACTIVATION_TYPES)]


def hidden_activations(module, x, layer):
    """Return the output of hidden layer ``layer`` of ``module.encoder`` for ``x``.

    A forward hook on that layer's activation module records its output
    while ``module.encode(x)`` runs.
    """
    captured = []
    handle = hidden_layers(module.encoder)[layer].register_forward_hook(
        lambda _module, _inputs, output: captured.append(output)
    )
    try:
        module.encode(x)
    finally:
        handle.remove()
    return captured[0]


__all__ = ["FittedEncoder", "export_encoder", "hidden_activations", "hidden_layers"]
