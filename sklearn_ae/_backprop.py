"""A hand-written training step for MLP autoencoders under the mean squared error.

A small tabular network's training step on a CPU is bound by per-operation
overhead rather than arithmetic, and autograd adds its own to every
operation: a graph node per product, views for the transposes, gradient
accumulation, fresh gradient tensors each step. For the common case (an
:class:`~sklearn_ae._networks.Autoencoder` whose encoder and decoder are
stacks of ``nn.Linear`` layers and element-wise activations, with or without
a :class:`~sklearn_ae._networks.WithLinearPath`, trained on
:class:`~sklearn_ae._losses.ReconstructionLoss` ``('mse')`` without a
penalty), :func:`manual_step_for` returns a :class:`ManualMSEStep`: the same
forward products as the module's ``forward`` and the backward products that
autograd would run, written out, with the gradients written into buffers
reused from step to step.

The loss and its gradient come from one residual ``output - target``,
computed in place in the output's buffer: the gradient is that residual
times ``2 / numel`` (what ``mse_loss_backward`` computes, multiplication for
multiplication, so the gradients and the fitted network are bit for bit
autograd's), the loss its dot product with itself over ``numel``, which
rounds differently from ``F.mse_loss``'s sum (in the last bits of the
reported loss only). ``F.mse_loss`` and its backward each read both
operands and write a batch-sized temporary: on W2 (784 features) they took
about 6% of a step. ``tests/test_hot_path.py`` compares a fit with one whose
per-batch callback makes it take autograd's step; ``tests/test_backprop.py``
compares gradients across networks.

Anything else (other layer or activation types, tied weights, batch norm,
dropout, penalties, hooks, frozen parameters, autocast, extra ``fit_params``)
has no manual step, and the engine runs autograd.

The outlier detector's :class:`~sklearn_ae._ensemble.EnsembleAutoencoder`
under :class:`~sklearn_ae._ensemble.TrimmedEnsembleLoss` gets an
:class:`EnsembleStep`: autograd still, but on each member's own features
(:meth:`~sklearn_ae._ensemble.EnsembleAutoencoder.training_errors`) instead
of the full-width masked output that ``forward`` returns for callbacks and
users: the same loss and gradients up to float rounding, about a quarter
less time per step on 1,555 features (4 members, 256 rows).
"""

import torch
from torch import nn
from torch.nn import functional as F

from ._ensemble import EnsembleAutoencoder, TrimmedEnsembleLoss
from ._losses import ReconstructionLoss
from ._networks import Autoencoder, Corruption, WithLinearPath


def _activation(module):
    """Return ``(forward, backward)`` of an element-wise activation module,
    or None. ``backward(grad, pre, post)`` is what autograd computes."""
    kind = type(module)
    aten = torch.ops.aten
    if kind is nn.Identity:
        return (lambda pre: pre), (lambda grad, pre, post: grad)
    if kind is nn.ReLU and not module.inplace:
        return torch.relu, (lambda grad, pre, post: aten.threshold_backward(grad, post, 0))
    if kind is nn.Tanh:
        return torch.tanh, (lambda grad, pre, post: aten.tanh_backward(grad, post))
    if kind is nn.Sigmoid:
        return torch.sigmoid, (lambda grad, pre, post: aten.sigmoid_backward(grad, post))
    if kind is nn.LeakyReLU and not module.inplace:
        slope = module.negative_slope
        return (
            (lambda pre: F.leaky_relu(pre, slope)),
            (lambda grad, pre, post: aten.leaky_relu_backward(grad, pre, slope, False)),
        )
    return None


class _Map:
    """One encoder or decoder: hidden ``(linear, activation)`` layers, a last
    linear layer, and optionally a linear path added to the last layer's
    output (``WithLinearPath``).

    ``hidden`` is a list of ``(nn.Linear, forward, backward)``; ``last`` an
    ``nn.Linear`` or None (a purely linear map: the path alone).
    """

    def __init__(self, hidden, last, path):
        self.hidden, self.last, self.path = hidden, last, path

    @classmethod
    def parse(cls, module):
        """Return the map of ``module``, or None if it is not one."""
        if type(module) is WithLinearPath:
            path = module.linear
            if type(path) is not nn.Linear or path.bias is None:
                return None
            if module.branch is None:
                return cls([], None, path)
            stack = cls._parse_sequential(module.branch)
            return None if stack is None else cls(stack[0], stack[1], path)
        stack = cls._parse_sequential(module)
        return None if stack is None else cls(stack[0], stack[1], None)

    @staticmethod
    def _parse_sequential(module):
        if type(module) is not nn.Sequential or len(module) == 0:
            return None
        hidden, pending = [], None
        for layer in module:
            if type(layer) is nn.Linear:
                if pending is not None:  # two products in a row: no activation
                    hidden.append((pending, *_activation(nn.Identity())))
                pending = layer
                continue
            activation = _activation(layer)
            if activation is None or pending is None:
                return None
            hidden.append((pending, *activation))
            pending = None
        if pending is None:  # an activation after the last product
            return None
        return hidden, pending

    def parameters(self):
        layers = [linear for linear, _, _ in self.hidden]
        layers += [layer for layer in (self.last, self.path) if layer is not None]
        return [p for layer in layers for p in (layer.weight, layer.bias) if p is not None]

    def forward(self, a):
        """Return the map's output for input ``a`` and what backward needs."""
        h, saved = a, []
        for linear, forward, _ in self.hidden:
            pre = F.linear(h, linear.weight, linear.bias)
            post = forward(pre)
            saved.append((h, pre, post))
            h = post
        last, path = self.last, self.path
        if last is None:
            out = F.linear(a, path.weight, path.bias)
        elif path is None:
            out = F.linear(h, last.weight, last.bias)
        else:
            # As WithLinearPath.forward: the path's product with both
            # biases, the last layer's product accumulated into it.
            bias = path.bias if last.bias is None else path.bias + last.bias
            out = torch.addmm(bias, a, path.weight.t()).addmm_(h, last.weight.t())
        return out, (a, saved, h)

    def backward(self, grad_out, tape, grads, input_grad):
        """Write the gradients of the map's parameters into ``grads`` (a dict
        of buffers by parameter) and return the input's (if ``input_grad``)."""
        a, saved, h = tape
        last, path = self.last, self.path
        bias_grad = None
        if last is not None:
            torch.mm(grad_out.t(), h, out=grads[last.weight])
            if last.bias is not None:
                bias_grad = torch.sum(grad_out, 0, out=grads[last.bias])
        if path is not None:
            torch.mm(grad_out.t(), a, out=grads[path.weight])
            if bias_grad is None:
                torch.sum(grad_out, 0, out=grads[path.bias])
            else:
                grads[path.bias].copy_(bias_grad)
        grad_in = None
        if last is not None and self.hidden:
            grad_h = torch.mm(grad_out, last.weight)
            for i in range(len(self.hidden) - 1, -1, -1):
                linear, _, backward = self.hidden[i]
                inp, pre, post = saved[i]
                grad_pre = backward(grad_h, pre, post)
                torch.mm(grad_pre.t(), inp, out=grads[linear.weight])
                if linear.bias is not None:
                    torch.sum(grad_pre, 0, out=grads[linear.bias])
                if i or input_grad:
                    grad_h = torch.mm(grad_pre, linear.weight)
            grad_in = grad_h if input_grad else None
        elif last is not None and input_grad:  # one linear layer, no hidden ones
            grad_in = torch.mm(grad_out, last.weight)
        if input_grad and path is not None:
            through_path = torch.mm(grad_out, path.weight)
            # Two products added, as autograd sums the two paths' gradients
            # (an accumulating addmm_ rounds differently for wide codes).
            grad_in = through_path if grad_in is None else through_path.add_(grad_in)
        return grad_in


class ManualMSEStep:
    """Forward and backward of an MLP autoencoder under the mean squared
    error, by hand. Built by :func:`manual_step_for`.

    Calling it on a batch ``(x, target)`` returns the batch's loss (the
    mean squared error, detached; see the module's docstring) and sets
    every parameter's ``.grad`` to its gradient (buffers reused across
    steps, which is what the optimizer reads; the engine sets the gradients
    to None before a step).
    """

    def __init__(self, module, criterion, encoder, decoder):
        self.module, self.criterion = module, criterion
        self.encoder, self.decoder = encoder, decoder
        self.params = encoder.parameters() + decoder.parameters()
        self.param_ids = tuple(id(p) for p in module.parameters())
        first = self.params[0]
        self.dtype, self.device = first.dtype, first.device
        self.grads = {p: torch.empty_like(p, memory_format=torch.contiguous_format)
                      for p in self.params}

    def usable(self):
        """Whether the module still is what the step was built for and runs
        as autograd would run it: checked by the engine once per epoch
        (callbacks freeze parameters or add hooks between epochs)."""
        return _unhooked(self.module, self.params, self.param_ids)

    def __call__(self, x, target):
        """Return the loss of the batch and set the gradients; None (nothing
        done) if the batch is not what the step was built for."""
        if (
            x.dtype != self.dtype or x.device != self.device or x.dim() != 2
            or target.shape != x.shape or x.layout != torch.strided
            or not torch.is_grad_enabled()
        ):
            return None
        grads = self.grads
        with torch.no_grad():
            code, encoder_tape = self.encoder.forward(self.module.corruption(x))
            output, decoder_tape = self.decoder.forward(code)
            # output is this step's own tensor (backward does not read it):
            # the residual overwrites it, then becomes the gradient.
            residual = output.sub_(target)
            flat = residual.view(-1)
            loss = torch.dot(flat, flat) / flat.numel()
            grad_output = residual.mul_(2.0 / flat.numel())
            grad_code = self.decoder.backward(grad_output, decoder_tape, grads, True)
            self.encoder.backward(grad_code, encoder_tape, grads, False)
        for p in self.params:
            p.grad = grads[p]
        return loss


def _unhooked(module, params, param_ids):
    """Whether ``module`` still has the parameters ``param_ids``, all
    trainable, and no hooks that a step bypassing its modules would skip."""
    if tuple(id(p) for p in module.parameters()) != param_ids:
        return False
    if not all(p.requires_grad for p in params):
        return False
    if any(p._backward_hooks or getattr(p, "_post_accumulate_grad_hooks", None)
           for p in params):
        return False
    if _global_hooks():
        return False
    return not any(
        m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
        or getattr(m, "_backward_pre_hooks", None)
        for m in module.modules()
    )


class EnsembleStep:
    """The training step of an :class:`~sklearn_ae._ensemble.EnsembleAutoencoder`
    under :class:`~sklearn_ae._ensemble.TrimmedEnsembleLoss`, on each member's
    own features (see the module's docstring). Built by
    :func:`manual_step_for`; called as :class:`ManualMSEStep` is."""

    def __init__(self, module, criterion):
        self.module, self.criterion = module, criterion
        self.params = list(module.parameters())
        self.param_ids = tuple(id(p) for p in self.params)

    def usable(self):
        return (
            _unhooked(self.module, self.params, self.param_ids)
            and self.module.own_features() is not None
        )

    def __call__(self, x, target):
        """Return the loss of the batch and set the gradients; None (nothing
        done) if the batch is not an autoencoder's ``(x, x)``."""
        if target is not x or x.dim() != 2 or not torch.is_grad_enabled():
            return None
        errors = self.module.training_errors(x)
        if errors is None:
            return None
        loss = self.criterion.trimmed_mean(errors)
        loss.backward()
        return loss.detach()


def _global_hooks():
    hooks = nn.modules.module
    return any(
        getattr(hooks, name, None)
        for name in (
            "_global_forward_hooks", "_global_forward_pre_hooks",
            "_global_backward_hooks", "_global_backward_pre_hooks",
        )
    )


def manual_step_for(module, criterion):
    """Return a :class:`ManualMSEStep` (or, for the outlier detector's
    ensemble, an :class:`EnsembleStep`) for ``module`` trained on
    ``criterion``, or None where the generic step must run (see the
    module's docstring)."""
    if type(module) is EnsembleAutoencoder and type(criterion) is TrimmedEnsembleLoss:
        step = EnsembleStep(module, criterion)
        return step if step.usable() else None
    if type(criterion) is not ReconstructionLoss:
        return None
    if criterion.kind != "mse" or criterion.sparsity is not None:
        return None
    if not isinstance(module, Autoencoder):
        return None
    kind = type(module)
    for name in ("forward", "encode", "decode"):
        if getattr(kind, name) is not getattr(Autoencoder, name):
            return None
    if type(module.corruption) is not Corruption:
        return None
    if type(module.code_activation) is not nn.Identity:
        return None
    if type(module.output_activation) is not nn.Identity:
        return None
    encoder, decoder = _Map.parse(module.encoder), _Map.parse(module.decoder)
    if encoder is None or decoder is None:
        return None
    params = encoder.parameters() + decoder.parameters()
    module_params = list(module.parameters())
    if len({id(p) for p in params}) != len(params) or {id(p) for p in params} != {
        id(p) for p in module_params
    }:
        return None  # shared (tied) or unhandled parameters
    first = params[0]
    if not first.is_floating_point() or any(
        p.dtype != first.dtype or p.device != first.device or p.layout != torch.strided
        for p in params
    ):
        return None
    step = ManualMSEStep(module, criterion, encoder, decoder)
    return step if step.usable() else None
