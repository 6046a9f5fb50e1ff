"""Greedy layer-wise pretraining of a fully connected autoencoder.

Each encoder layer and its mirror decoder layer form a shallow autoencoder,
trained on the codes of the layers below it; the layers are trained in place,
so after the last one the deep network starts fine-tuning from the stack.
In a network with linear paths (:class:`~sklearn_ae._networks.WithLinearPath`)
the layers pretrained are those of the nonlinear branches.
"""

import torch
from torch import nn

from ._data import TensorData
from ._engine import AutoencoderNet
from ._losses import ReconstructionLoss
from ._networks import Corruption, TiedLinear, WithLinearPath


def layer_blocks(sequential):
    """Split an ``mlp`` into blocks: each linear layer with what follows it
    (batch norm, activation, dropout) up to the next linear layer."""
    blocks = []
    for layer in sequential:
        if isinstance(layer, nn.Linear | TiedLinear) or not blocks:
            blocks.append([layer])
        else:
            blocks[-1].append(layer)
    return [nn.Sequential(*block) for block in blocks]


def _codes(blocks, data, batch_rows=8192):
    """Return the output of ``blocks`` for every row of ``data``, as numpy."""
    stack = nn.Sequential(*blocks).eval()
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(data), batch_rows):
            outputs.append(stack(data.take(slice(start, start + batch_rows))))
    return torch.cat(outputs).cpu().numpy()


def pretrain_layerwise(module, data, *, loss, max_epochs, batch_size, lr, device,
                       optimizer, optimizer_options, mixed_precision=False):
    """Train each encoder/decoder layer pair of ``module`` as a shallow
    autoencoder on the previous layer's codes, in place.

    Parameters
    ----------
    module : MLPAutoencoder
        The deep network; its ``encoder`` and ``decoder`` are ``mlp`` stacks,
        or linear paths whose branches are (a network without hidden
        layers has no branch: nothing is pretrained).
    data : TensorData
        The (standardized) training rows.
    loss : {'mse', 'bce'}
        Loss of the first layer, which reconstructs the data; deeper layers
        reconstruct codes with the squared error.
    max_epochs, batch_size, lr, device, mixed_precision
        Training settings of each shallow autoencoder.
    optimizer : subclass of torch.optim.Optimizer
        The optimizer class of each shallow autoencoder: the one that
        fine-tunes the deep network (:class:`~sklearn_ae._optim.FusedAdam`
        for Adam).
    optimizer_options : dict
        Its ``optimizer__*`` keyword arguments, in skorch's form.

    Returns
    -------
    loss_curves : list of list of float
        The training loss of each epoch, for each layer, input side first.
    """
    encoder_stack, decoder_stack = module.encoder, module.decoder
    if isinstance(encoder_stack, WithLinearPath):
        encoder_stack, decoder_stack = encoder_stack.branch, decoder_stack.branch
    if encoder_stack is None:
        return []
    encoder = layer_blocks(encoder_stack)
    decoder = layer_blocks(decoder_stack)[::-1]
    corruption = module.corruption
    loss_curves = []
    inputs = data
    for depth, (down, up) in enumerate(zip(encoder, decoder)):
        if depth:
            codes = _codes(encoder[:depth], data)
            inputs = TensorData(codes, device=device, resident=True)
        # The module's input corruption, at every layer: stacked denoising
        # autoencoders when noise is set, the identity otherwise. A user's
        # noise function is written for the input (its shape and range), so
        # it corrupts the first layer's input only.
        kind = corruption.kind
        if depth and callable(kind):
            kind = None
        shallow = nn.Sequential(Corruption(kind, corruption.level), down, up)
        net = AutoencoderNet(
            module=shallow,
            criterion=ReconstructionLoss(loss if depth == 0 else "mse"),
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=min(batch_size, len(inputs)),
            train_split=None,
            device=device,
            verbose=0,
            mixed_precision=mixed_precision,
            **optimizer_options,
        )
        net.fit(inputs)
        loss_curves.append([float(v) for v in net.history[:, "train_loss"]])
    module.train()
    return loss_curves


__all__ = ["layer_blocks", "pretrain_layerwise"]
