"""Torch networks for the autoencoders.

Nothing here knows about scikit-learn: these are plain ``torch.nn.Module``
builders that the estimators configure from their parameters.
"""

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


def count_parameters(module):
    """Return the number of trainable scalars in ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = ["ACTIVATIONS", "MLPAutoencoder", "count_parameters", "mlp"]
