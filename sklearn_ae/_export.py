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
    removes ``mean`` and divides by ``scale`` (float64 buffers, absent when
    the estimator does not scale its input) in float64, as ``transform``
    does, then runs the encoder and the code activation in the dtype of the
    encoder's weights (float32): float64 input is accepted, and a feature
    whose mean is large against its spread keeps its variation. Its
    parameters are trainable.

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
            tensor = None if value is None else torch.as_tensor(value, dtype=torch.float64)
            self.register_buffer(name, tensor)

    def forward(self, x):
        # x.shape[0], not len(x): a traced module keeps the batch size free.
        x = x.reshape(x.shape[0], -1)
        if self.mean is not None or self.scale is not None:
            # In float64, as transform: centred in float32, rows of 1e6 +
            # a spread of 0.05 came out 0.69 away from transform's codes
            # (whose spread was 1.7).
            x = x.to(torch.float64)
            if self.mean is not None:
                x = x - self.mean
            if self.scale is not None:
                x = x / self.scale
        # The weights' dtype: float64 input gave torch's "mat1 and mat2 must
        # have the same dtype".
        weights = next(
            (p for p in self.encoder.parameters() if p.is_floating_point()), None
        )
        x = x.to(torch.float32 if weights is None else weights.dtype)
        return self.code_activation(self.encoder(x))


def export_encoder(module, mean, scale):
    """Return a :class:`FittedEncoder` copy of ``module``'s encoder, on the CPU
    in float32 (its scaling buffers in float64) and in training mode."""
    networks = [copy.deepcopy(module.encoder), copy.deepcopy(module.code_activation)]
    networks = [net.to(device="cpu", dtype=torch.float32) for net in networks]
    return FittedEncoder(*networks, mean, scale).train()


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
