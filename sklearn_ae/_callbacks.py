"""skorch callbacks used by the estimators."""

import copy
import math

import torch
from skorch.callbacks import Callback, EarlyStopping


class EpochProgressBar(Callback):
    """A tqdm bar that advances once per epoch and shows the latest losses.

    What ``verbose=1`` shows. skorch's own ``ProgressBar`` (which works
    too) advances per batch; a bar per epoch needs no per-batch hook, so
    training keeps its fast path.
    """

    def __init__(self, keys=("train_loss", "valid_loss")):
        self.keys = keys

    def on_train_begin(self, net, **kwargs):
        from tqdm.auto import tqdm

        self.bar_ = tqdm(total=net.max_epochs, unit="epoch", leave=False)

    def on_epoch_end(self, net, **kwargs):
        last = net.history[-1]
        self.bar_.set_postfix(
            {key: f"{last[key]:.4g}" for key in self.keys if key in last},
            refresh=False,
        )
        self.bar_.update()

    def on_train_end(self, net, **kwargs):
        self.bar_.close()
        del self.bar_


class EpochLog(Callback):
    """Print one line per epoch: its number, losses and duration.

    The record that ``verbose=2`` keeps, in the spirit of skorch's
    ``PrintLog`` and of ``MLPRegressor``'s "Iteration N, loss = ..." lines,
    printed as each epoch ends so batch jobs and CI logs keep it.
    """

    def on_epoch_end(self, net, **kwargs):
        last = net.history[-1]
        parts = [f"Epoch {last['epoch']}"]
        for key, label in (("train_loss", "train loss"), ("valid_loss", "validation loss")):
            if key in last:
                parts.append(f"{label} = {last[key]:.6g}")
        if "dur" in last:
            parts.append(f"{last['dur']:.3f} s")
        print(", ".join(parts), flush=True)


def _print(text):
    print(text)


def fresh_callback(callback):
    """Return a new, uninitialized copy of a skorch ``callback`` for one fit.

    The copy is ``type(callback)(**callback.get_params(deep=False))`` plus
    any other public attribute the instance holds (such as the scheduler
    arguments that ``LRScheduler`` keeps from ``**kwargs``): it shares the
    objects passed as its parameters (a ``SummaryWriter``, a file name, a
    scorer) and none of the state that training sets (attributes ending in
    ``_``), so the user's object is never initialized nor mutated and
    objects that cannot be copied (locks, open files) need not be. Where the
    class cannot be rebuilt from its parameters, the copy is a shallow copy
    without the attributes ending in ``_``. Classes (not instances) are
    returned as they are; skorch instantiates them.

    A ``PrintLog`` printing to ``print`` prints whatever the estimator's
    ``verbose``: passing one asks for its table.
    """
    from skorch.callbacks import PrintLog

    if isinstance(callback, type):
        return callback
    state = {k: v for k, v in vars(callback).items() if not k.endswith("_")}
    try:
        fresh = type(callback)(**callback.get_params(deep=False))
    except Exception:  # noqa: BLE001 - any failure: fall back to a copy
        fresh = object.__new__(type(callback))
        vars(fresh).update(state)
    else:
        for key, value in state.items():
            if not key.startswith("_") and key not in vars(fresh):
                setattr(fresh, key, value)
    if isinstance(fresh, PrintLog) and fresh.sink is print:
        fresh.sink = _print
    return fresh


def shared_objects(callbacks):
    """Return a ``copy.deepcopy`` memo under which the objects that
    ``callbacks`` (skorch callbacks or ``(name, callback)`` pairs) hold as
    attributes are shared, not copied, as :func:`fresh_callback` shares
    them: copying a fitted net (``warm_start``) must not try to copy a
    ``SummaryWriter``."""
    memo = {}
    for item in callbacks:
        callback = item[1] if isinstance(item, tuple) else item
        for value in vars(callback).values():
            if not isinstance(value, (str, bytes, int, float, bool, type(None))):
                memo[id(value)] = value
    return memo


def fresh_callbacks(callbacks):
    """Return :func:`fresh_callback` copies of a list of callbacks or
    ``(name, callback)`` pairs."""
    return [
        (item[0], fresh_callback(item[1])) if isinstance(item, tuple) else fresh_callback(item)
        for item in callbacks
    ]


class KLWarmup(Callback):
    """Raise the criterion's ``kl_weight`` linearly from 0 to 1 over the first epochs.

    At epoch ``e`` (counted from 1 over the net's whole history, so a warm
    start continues where it stopped) the weight is ``min(1, e / n_epochs)``;
    ``n_epochs=0`` keeps it at 1. Annealing the KL term lets the decoder learn
    to use z before the prior pulls the posterior onto it (Bowman et al.,
    2016), which guards against posterior collapse.
    """

    def __init__(self, n_epochs):
        self.n_epochs = n_epochs

    def on_epoch_begin(self, net, **kwargs):
        epoch = len(net.history)  # skorch has already opened this epoch's row
        if self.n_epochs <= 0:
            weight = 1.0
        else:
            weight = min(1.0, epoch / self.n_epochs)
        net.criterion_.kl_weight = weight
        net.history.record("kl_weight", weight)


def sign_test(n_better, n):
    """One-sided p-value of ``n_better`` successes out of ``n`` fair coin
    flips: P(X >= n_better), X ~ Binomial(n, 1/2); 1 when ``n`` is 0."""
    if n == 0:
        return 1.0
    # scipy.stats is already imported by scikit-learn's base module.
    from scipy.stats import binomtest

    return float(binomtest(n_better, n, 0.5, alternative="greater").pvalue)



def _row_losses_are_the_loss(criterion):
    """Whether ``criterion.per_sample`` gives the loss that training
    minimises, row by row. Not with a sparsity penalty (on the mean code of
    a batch, and left out of ``per_sample``): judged on the reconstruction
    alone, a sparse network lost to its dense PCA start on nearly every
    validation row, and early stopping gave back the untrained start (no
    sparsity at all) by default."""
    return hasattr(criterion, "per_sample") and getattr(criterion, "sparsity", None) is None

class EarlyStoppingFromStart(EarlyStopping):
    """skorch's ``EarlyStopping`` in which the network as training found it
    is the first candidate for the best.

    Before the first epoch of each training run the monitored validation
    loss of the initial network is computed on the validation split; it is
    the score to beat (recorded as epoch 0, or as the last epoch of an
    earlier run when training continues), and with ``load_best`` its
    weights are the ones restored when no epoch beats it by ``threshold``.
    A network that starts from a good model (PCA, factor analysis) thus
    never comes out of training worse on held-out data than it went in.

    Parameters
    ----------
    min_patience_steps : int, default=0
        Patience is at least as many epochs as make this many optimizer
        steps (at the epoch's number of training batches): on a small data
        set, where an epoch is one or two steps, ``patience`` epochs would
        stop training before the network has moved.
    significance : float or None, default=None
        With ``load_best``, the best epoch (which has the lowest mean
        validation loss) replaces the start only if it is also better on
        more validation rows than chance would give: a one-sided sign test
        of the per-row losses (``criterion_.per_sample``, ties left out)
        at this level; else the start's weights are restored. On a few
        dozen validation rows the best of many epochs is often better there
        by chance and worse on new rows; on hundreds of rows a real
        improvement passes. A sign test rather than a test on the mean: a
        few rows with very large losses (outliers) make the mean's standard
        error large even when nearly every row improved. None turns the
        test off. Where :meth:`restore_if_start_wins` is set, the best
        epoch must also have a lower mean per-row loss than those weights.
        Not applied where the per-row losses are not the loss the run
        minimises (a sparsity penalty on the codes is a batch's, not a
        row's): there the mean validation loss alone decides.
    **kwargs
        Those of :class:`skorch.callbacks.EarlyStopping`.

    Attributes
    ----------
    initial_score_ : float or None
        The monitored validation loss of the network before the run's first
        epoch (None when there is no validation split, or when the monitor
        is not a validation loss).
    kept_start_ : bool
        Whether training ended with the start's weights: no epoch beat it,
        or none beat it on enough rows (``significance``).
    improvement_p_ : float or None
        The sign test's p-value for the best epoch against the start (None
        when not tested).
    """

    def __init__(self, *, min_patience_steps=0, significance=None, **kwargs):
        super().__init__(**kwargs)
        self.min_patience_steps = min_patience_steps
        self.significance = significance
        self._instead_of_start = None  # set by restore_if_start_wins

    def restore_if_start_wins(self, state_dict, start):
        """Restore ``state_dict`` instead of the start's weights if the start
        wins the coming training run (e.g. a start fitted on the training
        part, replaced by the same model fitted on every row). Set before
        the run; it applies to that run only, and only if the network it
        starts from is still ``start`` (another callback, such as
        ``LoadInitState``, may load other weights). With ``significance``,
        the best epoch replaces the start only if its mean per-row
        validation loss is also below that of ``state_dict``."""
        self._instead_of_start = (state_dict, start)

    def on_train_begin(self, net, **kwargs):
        super().on_train_begin(net, **kwargs)
        self.initial_score_ = None
        self.kept_start_ = False
        self.improvement_p_ = None
        self._start_epoch = None
        self._start_weights = None
        self._start_losses = None
        self._dataset_valid = None
        self._instead_loss = None
        self._pending_start = self.monitor.startswith("valid")

    def on_epoch_begin(self, net, dataset_valid=None, **kwargs):
        if not self._pending_start:
            return
        self._pending_start = False
        if dataset_valid is None:
            return
        score = self._validation_loss(net, dataset_valid)
        if not math.isfinite(score):
            return
        self.initial_score_ = score
        self.dynamic_threshold_ = self._calc_new_threshold(score)
        # The row of this epoch is already open; the start is the row before.
        self.best_epoch_ = self._start_epoch = len(net.history) - 1
        instead = self._instead_of_start
        if instead is not None:
            current = net.module_.state_dict()
            if set(current) != set(instead[1]) or not all(
                torch.equal(value, instead[1][name]) for name, value in current.items()
            ):
                self._instead_of_start = None
        if self.load_best:
            self.best_model_weights_ = copy.deepcopy(net.module_.state_dict())
            if self.significance is not None and _row_losses_are_the_loss(net.criterion_):
                self._start_weights = self.best_model_weights_
                self._start_losses = self._per_row_losses(net, dataset_valid)
                self._dataset_valid = dataset_valid
                instead = self._instead_of_start
                if instead is not None:
                    net.module_.load_state_dict(instead[0])
                    self._instead_loss = float(self._per_row_losses(net, dataset_valid).mean())
                    net.module_.load_state_dict(self._start_weights)

    @staticmethod
    def _per_row_losses(net, dataset_valid):
        """Per-row validation losses of the current network (float64)."""
        net._set_training(False)
        losses = []
        with torch.no_grad():
            for Xi, yi in net.get_iterator(dataset_valid, training=False):
                losses.append(net.criterion_.per_sample(net.infer(Xi), yi).double().cpu())
        return torch.cat(losses)

    def on_train_end(self, net, **kwargs):
        super().on_train_end(net, **kwargs)  # restores the best epoch's weights
        start, self._start_weights = self._start_weights, None
        dataset_valid, self._dataset_valid = self._dataset_valid, None
        instead, self._instead_of_start = self._instead_of_start, None
        self.kept_start_ = self.best_epoch_ == self._start_epoch
        instead_loss, self._instead_loss = self._instead_loss, None
        if start is not None and not self.kept_start_:
            best = self._per_row_losses(net, dataset_valid)
            diff = self._start_losses - best
            n_better, n_worse = int((diff > 0).sum()), int((diff < 0).sum())
            self.improvement_p_ = sign_test(n_better, n_better + n_worse)
            # The replacement must also beat, on mean, what would be restored
            # in the start's place (which may have seen these rows).
            if not self.improvement_p_ < self.significance or (
                instead is not None
                and instead_loss is not None
                and not float(best.mean()) < instead_loss
            ):
                net.module_.load_state_dict(start)
                self.kept_start_ = True
        self._start_losses = None
        if self.kept_start_ and instead is not None and self.load_best:
            net.module_.load_state_dict(instead[0])

    @staticmethod
    def _validation_loss(net, dataset_valid):
        """Mean validation loss of the current network, as an epoch computes it."""
        net._set_training(False)
        total, n_rows = 0.0, 0
        for batch in net.get_iterator(dataset_valid, training=False):
            step = net.validation_step(batch)
            total += float(step["loss"]) * len(batch[0])
            n_rows += len(batch[0])
        return total / n_rows if n_rows else math.nan

    def on_epoch_end(self, net, **kwargs):
        if self.min_patience_steps:
            batches = net.history[-1].get("train_batch_count") or 1
            needed = math.ceil(self.min_patience_steps / batches)
            if self.patience < needed:
                # skorch compares misses_ with patience: lend it the larger one.
                stored, self.patience = self.patience, needed
                try:
                    return super().on_epoch_end(net, **kwargs)
                finally:
                    self.patience = stored
        return super().on_epoch_end(net, **kwargs)
