"""The training engine: a skorch ``NeuralNet`` tuned for autoencoders.

It keeps skorch's shape (initialize, fit loop, one epoch, one step, callbacks,
history) and removes what dominates the time of small networks (see
``benchmarks/``): batches are slices of tensors already on the device instead
of a per-row ``Dataset``/``DataLoader``; batch losses are kept on the device
and read once per epoch instead of a ``.item()`` sync per batch (the per-batch
history rows are written then, from those values); the module is put
in train/eval mode once per epoch instead of once per batch; batches skip
skorch's ``to_tensor`` (they already are device tensors) and gradients are
cleared without the optimizer's per-call profiler bookkeeping; Adam steps
through :meth:`FusedAdam.fast_step` (the fused kernel without ``step``'s
per-call bookkeeping); per-batch
callback hooks are only called when a callback implements them. When one
does, an epoch runs as in skorch: ``on_batch_begin``, the step, the batch's
history row (one ``.item()``), ``on_batch_end`` with the step's ``loss`` and
``y_pred``, and the module put in train/eval mode before each step.
With ``mixed_precision``, forward passes run under bfloat16 autocast.
Where :func:`~sklearn_ae._backprop.manual_step_for` has a hand-written step
for the module and criterion (a plain MLP autoencoder under the mean squared
error), the fast path runs it instead of autograd: the same products and
gradients without the graph (checked once per epoch; see that module).
"""

import math

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import Callback, EpochTimer, PassthroughScoring
from skorch.utils import to_numpy
from torch import nn

from ._backprop import manual_step_for
from ._data import TensorData
from ._losses import reconstruction_of

_BATCH_HOOKS = ("on_batch_begin", "on_batch_end", "on_grad_computed")

# An epoch's training loss this many times (the scale of) the first batch's
# loss, measured before any step, means the optimisation diverged: see
# :func:`diverged`.
DIVERGENCE_FACTOR = 1e4


class DivergenceError(FloatingPointError):
    """Raised when training diverged (see :func:`diverged`)."""


# The former name, for callers that caught it.
NonFiniteLossError = DivergenceError


# Stands for "module_" in a pickled net's module parameter (see __getstate__).
_SAME_AS_MODULE_ = "sklearn_ae: the module_ instance"


def diverged(loss, initial_loss):
    """Whether a training loss shows that the optimisation diverged.

    The rule: ``loss`` is NaN or infinite, or it exceeds ``initial_loss`` (the
    loss of the untrained network on the first batch) by more than
    :data:`DIVERGENCE_FACTOR` times ``max(|initial_loss|, 1)``. The floor of 1
    keeps losses near 0 (a first batch reconstructed almost exactly by
    chance) from making the rule hair-trigger; the units are those the
    network sees, where a loss of order 1 is typical (z-scored inputs).
    Losses that grow ten-thousandfold are not training, and a diverging
    Adam run grows far more (1.1 to 1e26 in 20 epochs at learning_rate=1e3).
    """
    if not math.isfinite(loss):
        return True
    if initial_loss is None or not math.isfinite(initial_loss):
        return False
    return loss - initial_loss > DIVERGENCE_FACTOR * max(abs(initial_loss), 1.0)


def has_batch_norm(module):
    """Whether ``module`` holds a batch norm layer (which needs 2 rows a batch)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def holdout_size(fraction, n_samples):
    """Rows :class:`HoldoutSplit` holds out of ``n_samples`` for ``fraction``."""
    return int(np.ceil(fraction * n_samples))


class HoldoutSplit:
    """skorch ``train_split``: a random held-out fraction of a ``TensorData``.

    Rows are drawn with numpy's ``RandomState(seed)`` so the split does not
    depend on (or touch) any global generator.
    """

    def __init__(self, fraction, seed):
        self.fraction = fraction
        self.seed = seed

    def __call__(self, dataset, y=None, **fit_params):
        n = len(dataset)
        n_valid = holdout_size(self.fraction, n)
        if n_valid < 1 or n - n_valid < 1:
            raise ValueError(
                f"validation_fraction={self.fraction} leaves an empty training or "
                f"validation set with n_samples={n}; use more samples, another "
                "validation_fraction, or early_stopping=False."
            )
        order = np.random.RandomState(self.seed).permutation(n)
        return dataset.subset(np.sort(order[n_valid:])), dataset.subset(
            np.sort(order[:n_valid])
        )


class _Epochs:
    """Re-iterable batches of a ``TensorData``: each pass is one epoch."""

    def __init__(self, dataset, batch_size, training, drop_singleton):
        self.dataset = dataset
        self.batch_size = batch_size
        self.training = training
        self.drop_singleton = drop_singleton

    def __iter__(self):
        return self.dataset.batches(
            self.batch_size, shuffle=self.training, drop_singleton=self.drop_singleton
        )


def full_precision(output):
    """Return ``output`` (a tensor, a tuple or named tuple of them, or None)
    with its bfloat16 tensors cast to float32."""
    if isinstance(output, torch.Tensor):
        return output.float() if output.dtype == torch.bfloat16 else output
    if isinstance(output, tuple):
        items = [full_precision(item) for item in output]
        return type(output)(*items) if hasattr(output, "_fields") else tuple(items)
    return output


def plain_tuple(output):
    """Return a named tuple ``output`` (VAEOutput) as a plain tuple, anything
    else as is: skorch's ``to_device``, which its ``forward_iter`` and the
    scoring callbacks' cache call on outputs, cannot rebuild named tuples."""
    if isinstance(output, tuple) and hasattr(output, "_fields"):
        return tuple(output)
    return output


class AutoencoderNet(NeuralNet):
    """``NeuralNet`` whose data is a :class:`TensorData` and whose target is X.

    ``criterion`` must return the batch mean loss for ``criterion(output, X)``.
    Every other skorch parameter (``optimizer__*``, ``callbacks``, ``lr``...)
    keeps its meaning.

    Parameters
    ----------
    mixed_precision : bool, default=False
        Run the module's forward passes in training and validation under
        ``torch.autocast`` with bfloat16 on the batch's device; its outputs
        are cast back to float32 before the loss. Parameters, gradients and
        the optimizer's state stay float32.
    """

    def __init__(self, *args, mixed_precision=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.mixed_precision = mixed_precision

    @property
    def _default_callbacks(self):
        # skorch's defaults but PrintLog (the estimators' verbose prints).
        return [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            ("valid_loss", PassthroughScoring(name="valid_loss")),
        ]

    def get_dataset(self, X, y=None):
        """Return ``X`` if a :class:`TensorData`; a tensor is taken as rows
        already in the network's units (a batch, a ``TensorData``'s ``X``),
        which is how skorch's uncached scoring callbacks predict."""
        if isinstance(X, TensorData):
            return X
        if isinstance(X, torch.Tensor):
            rows = X.detach()
            if rows.device.type == torch.device(self.device).type:
                rows = rows.float()  # the network's dtype; as is if float32
            else:  # left on the host and moved a batch at a time
                rows = rows.cpu().numpy()
            return TensorData(rows, device=self.device)
        raise TypeError(
            "AutoencoderNet trains on TensorData or tensors of rows, got "
            f"{type(X).__name__}"
        )

    def get_iterator(self, dataset, training=False):
        # skorch builds the iterator once and loops over it every epoch.
        # BatchNorm cannot train on a batch of one row: only then is a last
        # batch of one row left out (never the only batch).
        drop = training and has_batch_norm(self.module_)
        return _Epochs(dataset, self.batch_size, training, drop)

    def initialize_callbacks(self):
        super().initialize_callbacks()
        self._batch_hooks_ = any(
            getattr(type(cb), hook) is not getattr(Callback, hook)
            for _, cb in self.callbacks_
            for hook in _BATCH_HOOKS
        )
        return self

    def infer(self, x, **fit_params):
        # Batches are already tensors on the device: skip skorch's to_tensor.
        if isinstance(x, torch.Tensor):
            if self.mixed_precision:
                with torch.autocast(x.device.type, dtype=torch.bfloat16):
                    output = self.module_(x, **fit_params)
                return full_precision(output)
            return self.module_(x, **fit_params)
        return super().infer(x, **fit_params)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        if isinstance(y_true, torch.Tensor):
            return self.criterion_(y_pred, y_true)
        return super().get_loss(y_pred, y_true, X=X, training=training)

    def reconstruction(self, output):
        """Return the reconstruction (rows by features, in the units the
        network trains in) in a module's output: its first element if a
        tuple, through the criterion's ``mean`` where it has one (e.g. the
        sigmoid of Bernoulli logits, the members' mean of an ensemble)."""
        output = reconstruction_of(output)
        mean = getattr(self.criterion_, "mean", None)
        return output if mean is None else mean(output)

    def predict_proba(self, X):
        """Return the reconstructions of ``X`` (see :meth:`reconstruction`)
        as a float64 numpy array; what skorch's scoring callbacks score.

        float64 so that scikit-learn's metrics compute in float64 (they
        work in the wider dtype of targets and predictions): in float32, a
        feature constant over the scored rows (a blank pixel) gets a
        variance of rounding noise instead of 0, and its r2 of -1e12 swamps
        the average over features.
        """
        return np.concatenate(
            [to_numpy(self.reconstruction(out)) for out in self.forward_iter(X)]
        ).astype(np.float64)

    def train_step_single(self, batch, **fit_params):
        Xi, yi = batch
        y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        loss.backward()
        return {"loss": loss, "y_pred": y_pred}

    def train_step(self, batch, **fit_params):
        optimizers = [getattr(self, name + "_") for name in self._optimizers]
        if self._batch_hooks_ or not all(hasattr(o, "fast_step") for o in optimizers):
            # skorch's step: the optimizer's step gets a closure (LBFGS
            # needs one) and callbacks get on_grad_computed.
            return super().train_step(batch, **fit_params)
        # The same as every optimizer's zero_grad(set_to_none=True), without
        # its per-call profiler bookkeeping (a few percent of a small step).
        for optimizer in optimizers:
            for group in optimizer.param_groups:
                for param in group["params"]:
                    param.grad = None
        manual = None if fit_params else getattr(self, "_manual_step_", None)
        loss = None if manual is None else manual(*batch)
        step = {"loss": loss} if loss is not None else self.train_step_single(
            batch, **fit_params
        )
        for optimizer in optimizers:
            optimizer.fast_step()
        return step

    def _epoch_manual_step(self):
        """Return the hand-written step (see :mod:`sklearn_ae._backprop`)
        for this epoch's training batches, or None to run autograd.

        Built once per module and criterion, and checked once per epoch:
        callbacks freeze parameters or add hooks between epochs."""
        if self.mixed_precision:
            return None
        cached = getattr(self, "_manual_step_cache", None)
        # Keyed by the objects, not their ids (which a later module can reuse).
        if (
            cached is None
            or cached[0] is not self.module_
            or cached[1] is not self.criterion_
        ):
            cached = self._manual_step_cache = (
                self.module_, self.criterion_,
                manual_step_for(self.module_, self.criterion_),
            )
        step = cached[2]
        return step if step is not None and step.usable() else None

    def evaluation_step(self, batch, training=False):
        # What forward_iter yields, through skorch's to_device, which
        # cannot rebuild a named tuple (VAEOutput): a plain tuple.
        return plain_tuple(super().evaluation_step(batch, training=training))

    def validation_step(self, batch, **fit_params):
        Xi, yi = batch
        with torch.no_grad():
            y_pred = self.infer(Xi, **fit_params)
            loss = self.get_loss(y_pred, yi, X=Xi, training=False)
        return {"loss": loss, "y_pred": y_pred}

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        if iterator is None:
            return
        self._set_training(training)
        hooks = self._batch_hooks_
        if training:
            self._manual_step_ = None if hooks else self._epoch_manual_step()
        losses = []
        sizes = []
        history = self.history
        for batch in iterator:
            batch_rows = len(batch[0])
            if hooks:
                # skorch's order: the net's own on_batch_begin opens the row.
                self.notify("on_batch_begin", batch=batch, training=training)
                # A callback may have predicted (eval mode) since the last step.
                self._set_training(training)
                step = step_fn(batch, **fit_params)
                loss = step["loss"].item()
                history.record_batch(prefix + "_loss", loss)
                history.record_batch(prefix + "_batch_size", batch_rows)
                # Scoring callbacks cache y_pred (see plain_tuple).
                if "y_pred" in step:
                    step = {**step, "y_pred": plain_tuple(step["y_pred"])}
                self.notify("on_batch_end", batch=batch, training=training, **step)
                losses.append(loss)
            else:
                step = step_fn(batch, **fit_params)
                # Kept on the device; read once per epoch. Written into one
                # buffer: a list of small tensors, each allocated between
                # two batches, fragmented the heap so that every batch cut
                # from host data stayed allocated until the epoch ended
                # (an epoch streamed from a memmap then held all of it).
                loss = step["loss"].detach()
                n_done = len(sizes)
                if not isinstance(losses, torch.Tensor) or n_done == len(losses):
                    grown = torch.empty(
                        max(64, 2 * n_done), dtype=torch.float32, device=loss.device
                    )
                    if n_done:
                        grown[:n_done] = losses
                    losses = grown
                losses[n_done] = loss
            sizes.append(batch_rows)
        history.record(prefix + "_batch_count", len(sizes))
        if not sizes:
            return
        if not hooks:
            losses = losses[: len(sizes)].tolist()  # the one sync per epoch
            for loss, batch_rows in zip(losses, sizes):
                history.new_batch()
                history.record_batch(prefix + "_loss", loss)
                history.record_batch(prefix + "_batch_size", batch_rows)
        if training:
            # For check_trained: a batch already on the device, so the check
            # costs no data movement (nor densifying sparse rows).
            self._last_train_batch = batch[0]
            if getattr(self, "initial_loss_", None) is None:
                # The first batch's loss was computed before the first step:
                # the untrained network's, the reference of the divergence rule.
                self.initial_loss_ = losses[0]
        # What the train_loss/valid_loss callbacks (PassthroughScoring)
        # record at the end of the epoch: batch losses averaged by batch size.
        epoch_loss = float(np.average(losses, weights=sizes))
        # A non-finite validation loss counts too: it is measured after the
        # epoch's last step, which the training loss predates, and early
        # stopping would otherwise restore an earlier network without a word.
        # A finite one, however large, is early stopping's to judge (it keeps
        # the start or a better epoch): a VAE started at factor analysis
        # with an exactly duplicated column (noise variance 1e-12) has
        # validation losses of 2e8 nats after Adam's first steps in the
        # nonlinear branch, then of 60 and falling, at training losses of
        # -8 to 18; a training loss that grows that far, or a broken final
        # network (check_trained), still raises.
        reference = getattr(self, "initial_loss_", None) if training else None
        if diverged(epoch_loss, reference):
            what = "training" if training else "validation"
            raise DivergenceError(
                f"the {what} loss went from {self.initial_loss_:.4g} on the "
                f"first training batch to {epoch_loss:.4g} at epoch {len(self.history)}"
            )

    def initialize(self):
        super().initialize()
        # A fresh history, a fresh reference: set at the first training
        # epoch, then kept across partial_fit calls (which do not initialize).
        self.initial_loss_ = None
        self._manual_step_ = self._manual_step_cache = None
        return self

    def check_trained(self):
        """Raise :class:`DivergenceError` if the trained network is broken.

        The losses recorded in training predate the last step, so the network
        as it is now is checked: every parameter and buffer finite, and its
        loss on the last training batch (in evaluation mode) finite and
        within the divergence rule (:func:`diverged`).
        """
        xb = self.__dict__.pop("_last_train_batch", None)
        for name, tensor in [*self.module_.named_parameters(), *self.module_.named_buffers()]:
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise DivergenceError(
                    f"the trained network's {name} holds non-finite values"
                )
        if xb is None:
            return
        self._set_training(False)
        with torch.no_grad():
            loss = float(self.get_loss(self.infer(xb), xb, X=xb, training=False))
        initial = getattr(self, "initial_loss_", None)
        if diverged(loss, initial):
            raise DivergenceError(
                f"the trained network's loss on a training batch is {loss:.4g} "
                "(the first batch's before training: "
                f"{'unknown' if initial is None else format(initial, '.4g')})"
            )

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_last_train_batch", None)
        # Rebuilt at the next training epoch (and they hold closures).
        state.pop("_manual_step_", None)
        state.pop("_manual_step_cache", None)
        # The module parameter is the very instance of module_, which skorch
        # saves apart, mapped to the CPU where CUDA is missing; pickled here
        # as well, a CUDA-trained net could not be unpickled without CUDA
        # (torch's "Attempting to deserialize object on a CUDA device").
        if state.get("module") is self.__dict__.get("module_"):
            state["module"] = _SAME_AS_MODULE_
        return state

    def __setstate__(self, state):
        same = isinstance(state.get("module"), str) and state["module"] == _SAME_AS_MODULE_
        super().__setstate__(state)
        if same:
            self.module = self.module_
