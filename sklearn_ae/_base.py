"""What every sklearn_ae estimator shares: parameters, validation, the fit
skeleton around the training engine, seeding, batched inference, pickling.

Subclasses fill in a few hooks: ``_build_module`` (the torch network),
``_build_criterion`` (the training loss) and, optionally,
``_check_fit_params``, ``_before_training`` and ``_extra_callbacks``.
"""

import copy
import functools
import inspect
import threading
import warnings
from contextlib import contextmanager, nullcontext
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from joblib import effective_n_jobs
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._callbacks import (
    EarlyStoppingFromStart,
    EpochLog,
    EpochProgressBar,
    fresh_callbacks,
    shared_objects,
)
from ._data import RunningScaling, TensorData, is_memory_mapped
from ._engine import AutoencoderNet, DivergenceError, HoldoutSplit, has_batch_norm
from ._losses import reconstruction_of
from ._networks import ACTIVATIONS, Corruption
from ._optim import FusedAdam
from ._random import draws_globally, fit_generators, seeded_global_rng

_ACCEPT_SPARSE = ("csr", "csc", "coo")
_DTYPES = (np.float64, np.float32)
# Rows per forward pass at inference: large enough to amortise the per-call
# cost, small enough that a batch of wide rows stays a few tens of MB.
_INFERENCE_ROWS = 8192
# With early_stopping, patience is at least as many epochs as make this many
# optimizer steps: on 100 rows an epoch is a single step, and 10 epochs
# without progress say nothing yet about a network that started at a good
# linear model.
_MIN_PATIENCE_STEPS = 100


def resolve_device(device):
    """Return the ``torch.device`` that ``device`` ('auto', 'cpu', 'cuda:0'...) names.

    Only CPU and CUDA devices are accepted: the estimators train and score
    on those (``'meta'`` holds no data; other back ends are untested).
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a torch device; use 'auto', 'cpu' or 'cuda'."
        ) from exc
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(
            f"device={device!r} is not supported; use 'auto', 'cpu' or 'cuda' "
            "(a CUDA device such as 'cuda:0')."
        )
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available; use "
            "device='cpu' or device='auto'."
        )
    return resolved


_THREADS_LOCK = threading.Lock()
_THREADS_STATE = {"depth": 0, "caller": None, "per_thread": None}


def resolve_n_jobs(n_jobs):
    """Return the number of torch threads that ``n_jobs`` asks for.

    scikit-learn's convention: ``None`` is 1 unless a
    ``joblib.parallel_config`` context says otherwise, ``-1`` all CPUs,
    ``-2`` all but one.
    """
    if n_jobs == 0:
        raise ValueError("n_jobs=0 is not a number of threads; use None, -1 or >= 1.")
    return max(1, effective_n_jobs(n_jobs))


def _threads_are_per_thread():
    """Whether ``torch.set_num_threads`` in one Python thread leaves the
    others' setting alone.

    It does with OpenMP (torch's Linux and Windows wheels: the setting is
    each OS thread's own); with torch's native thread pool it is
    process-wide. Probed once, in a helper thread.
    """
    if _THREADS_STATE["per_thread"] is None:
        here = torch.get_num_threads()
        probe = here + 1

        def set_elsewhere():
            torch.set_num_threads(probe)
            seen["there"] = torch.get_num_threads()
            torch.set_num_threads(here)

        seen = {}
        helper = threading.Thread(target=set_elsewhere)
        helper.start()
        helper.join()
        per_thread = seen.get("there") == probe and torch.get_num_threads() == here
        if torch.get_num_threads() != here:
            torch.set_num_threads(here)
        _THREADS_STATE["per_thread"] = per_thread
    return _THREADS_STATE["per_thread"]


@contextmanager
def torch_threads(n_threads):
    """Run the block with ``torch.set_num_threads(n_threads)``, then restore.

    Where torch's setting belongs to each thread (OpenMP builds), each block
    restores its own thread's setting on exit, so blocks overlapping in
    several Python threads each get their caller's setting back. Where it is
    process-wide, the setting found by the first of overlapping blocks comes
    back when the last one exits.
    """
    with _THREADS_LOCK:
        per_thread = _threads_are_per_thread()
        if per_thread:
            before = torch.get_num_threads()
        else:
            if _THREADS_STATE["depth"] == 0:
                _THREADS_STATE["caller"] = torch.get_num_threads()
            _THREADS_STATE["depth"] += 1
    if torch.get_num_threads() != n_threads:
        torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        if per_thread:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)
        else:
            with _THREADS_LOCK:
                _THREADS_STATE["depth"] -= 1
                if _THREADS_STATE["depth"] == 0:
                    caller = _THREADS_STATE["caller"]
                    if torch.get_num_threads() != caller:
                        torch.set_num_threads(caller)


# How far outside [0, 1] a value may lie and still count as inside: float
# rounding. MinMaxScaler's output reaches 1.0000000000000002, and
# loss='bce' refused it (a pipeline of the two failed on every fold).
_UNIT_INTERVAL_SLACK = 1e-6


def _unit_interval_breach(X):
    """The range ``'[min, max]'`` of ``X``'s values, formatted, where some lie
    outside [0, 1] by more than rounding (``_UNIT_INTERVAL_SLACK``), else
    None (sparse: its stored values; the implicit zeros lie inside). What
    ``loss='bce'``, ``likelihood='bernoulli'`` and a logistic output check."""
    values = X.data if hasattr(X, "tocsr") else X
    if not values.size:
        return None
    low, high = values.min(), values.max()
    if low < -_UNIT_INTERVAL_SLACK or high > 1 + _UNIT_INTERVAL_SLACK:
        # Digits enough to show a breach of just past the slack.
        return f"[{low:.8g}, {high:.8g}]"
    return None


def _restore_on_error(fit):
    """Decorate a ``fit`` method so that it changes nothing when it raises,
    and so that the model keeps the parameters it was fitted with.

    The estimator's ``__dict__`` (its fitted attributes, and
    ``n_features_in_``/``feature_names_in_``, which validation sets early)
    comes back as it was before the call, for any exception, interrupts
    included: an earlier fit stays intact, and a fresh estimator stays
    unfitted (``NotFittedError``). Before the call the parameters are
    recorded (``_params_at_fit``, read by ``_fitted_param``): inference
    reads them there, so ``set_params`` after ``fit`` changes nothing until
    the next fit, as with scikit-learn's fitted attributes.
    """

    @functools.wraps(fit)
    def wrapper(self, *args, **kwargs):
        before = dict(self.__dict__)
        self._params_at_fit = self.get_params(deep=False)
        try:
            return fit(self, *args, **kwargs)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    return wrapper


@contextmanager
def _one_plain_epoch(net):
    """Train ``net`` without its early-stopping callback and validation split
    in the block (``partial_fit``'s epochs), then put them back."""
    callbacks, train_split = net.callbacks_, net.train_split
    net.callbacks_ = [(n, cb) for n, cb in callbacks if n != "early_stopping"]
    net.train_split = None
    try:
        yield
    finally:
        net.callbacks_, net.train_split = callbacks, train_split


def _diverged_error(estimator, detail, net=None):
    initial = getattr(net, "initial_loss_", None)
    if initial is not None and not np.isfinite(initial):
        # Nothing was trained yet: not a matter of the learning rate.
        start = (
            f"The loss of the untrained network on the first training batch is "
            f"{initial} ({detail}). "
        )
        if estimator._scales_input():
            return ValueError(
                start + "X is scaled internally, so the network's output is "
                "not finite on it: check the network (a custom encoder or "
                "decoder, or its initialisation)."
            )
        return ValueError(
            start + f"Without the internal scaling ({estimator._scaling_switch()}) "
            "the network trains on X's values in float32, where squares of "
            "values beyond about 1e19 overflow: scale X first (e.g. "
            "StandardScaler) or leave the scaling on."
        )
    unscaled = ""
    if estimator._scaling_switched_off():
        # A VAE on values of 1e10 with standardize=False diverged at any
        # learning rate, and the message only suggested a smaller one.
        unscaled = (
            f" Without the internal scaling ({estimator._scaling_switch()}) the "
            "network trains on X's own values: on large ones, scale X first "
            "(e.g. StandardScaler) or leave the scaling on."
        )
    return ValueError(
        f"The optimisation diverged ({detail}): try a smaller learning_rate "
        f"(got learning_rate={estimator.learning_rate}), or check X for "
        f"extreme values.{unscaled} Training counts as diverged when an "
        "epoch's training loss, or the trained network's loss, is not finite "
        "or exceeds the first batch's loss by more than 1e4 times max(|first "
        "batch's loss|, 1), or when a validation loss is not finite."
    )


def _tensors_to(value, device):
    """``value`` with its tensors (alone, or in a list or tuple) on
    ``device``; ``value`` itself where nothing moves."""
    if isinstance(value, torch.Tensor):
        return value if value.device == device else value.to(device)
    if isinstance(value, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in value):
        moved = [_tensors_to(v, device) for v in value]
        if all(m is v for m, v in zip(moved, value)):
            return value
        return type(value)(moved) if isinstance(value, tuple) else moved
    return value


class _BaseAutoencoder(BaseEstimator):
    """Base class for the autoencoder estimators. Not for direct use."""

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "batch_norm": ["boolean"],
        "loss": [StrOptions({"mse", "bce"})],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "standardize": ["boolean"],
        "device": [str, torch.device],
        "n_jobs": [Integral, None],
        "mixed_precision": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": [list, None],
        "warm_start": ["boolean"],
        "optimizer": "no_validation",  # checked in fit: _check_optimizer
    }

    # Keyword parameters passed through in skorch's style (``optimizer__*``
    # to the optimizer); subclasses may add prefixes. They are stored as
    # given in a private dict (sklearn's checks require that __init__ sets
    # no public attribute but the declared parameters) and checked in fit.
    _param_prefixes = ("optimizer__",)
    # With early stopping, the level of the sign test by which the best epoch
    # must beat the start on the validation rows (EarlyStoppingFromStart's
    # significance); None: any better mean loss replaces the start.
    _start_significance = None

    def __init__(
        self,
        n_components=2,
        *,
        hidden_layer_sizes=(64, 32),
        activation="relu",
        dropout=0.0,
        batch_norm=False,
        loss="mse",
        learning_rate=1e-3,
        weight_decay=0.0,
        batch_size="auto",
        max_iter=200,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        standardize=True,
        device="auto",
        n_jobs=None,
        mixed_precision=False,
        random_state=None,
        verbose=0,
        callbacks=None,
        warm_start=False,
        optimizer=torch.optim.Adam,
        **params,
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.loss = loss
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.standardize = standardize
        self.device = device
        self.n_jobs = n_jobs
        self.mixed_precision = mixed_precision
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.optimizer = optimizer
        self._extra_params = dict(params)

    # ---------------------------------------------- pass-through parameters
    def _prefixed_params(self, prefix):
        """Return the ``prefix*`` keyword parameters (e.g. ``'optimizer__'``),
        unprefixed."""
        return {
            k[len(prefix) :]: v
            for k, v in vars(self).get("_extra_params", {}).items()
            if k.startswith(prefix)
        }

    def get_params(self, deep=True):
        """Get parameters for this estimator, ``optimizer__*`` included.

        Parameters
        ----------
        deep : bool, default=True
            If True, will return the parameters for this estimator and
            contained subobjects that are estimators.

        Returns
        -------
        params : dict
            Parameter names mapped to their values.
        """
        params = super().get_params(deep=deep)
        params.update(vars(self).get("_extra_params", {}))
        return params

    def set_params(self, **params):
        """Set the parameters of this estimator, ``optimizer__*`` included.

        Parameters
        ----------
        **params : dict
            Estimator parameters.

        Returns
        -------
        self : estimator instance
            Estimator instance.
        """
        extra = vars(self).setdefault("_extra_params", {})
        for name in list(params):
            if name.startswith(self._param_prefixes) or name in extra:
                extra[name] = params.pop(name)
        return super().set_params(**params)

    def __sklearn_clone__(self):
        # scikit-learn's clone, but callbacks are copied as fit copies them
        # (fresh_callbacks: new instances sharing their parameter objects),
        # so that a callback holding an object that cannot be deep-copied
        # (TensorBoard's SummaryWriter) survives clone and GridSearchCV.
        from sklearn.base import _clone_parametrized

        if not self.callbacks:
            return _clone_parametrized(self)
        # A shallow stand-in without callbacks, so that self is not touched.
        shadow = object.__new__(type(self))
        vars(shadow).update(vars(self), callbacks=None)
        new = _clone_parametrized(shadow)
        new.callbacks = fresh_callbacks(self.callbacks)
        return new

    # ------------------------------------------------------------------ hooks
    def _build_module(self, n_features):
        """Return the untrained torch module for ``n_features`` inputs."""
        raise NotImplementedError

    def _build_criterion(self):
        """Return the training loss, a module called as ``criterion(output, X)``."""
        raise NotImplementedError

    def _check_fit_params(self, n_features):
        """Raise ``ValueError`` for parameter combinations constraints cannot express."""

    def _before_training(self, net, data, batch_size, device):
        """Prepare the initialized ``net`` before its first epoch (e.g. pretrain).

        Returns a dict of fitted attributes to set once training succeeded.
        """
        return {}

    def _extra_callbacks(self):
        """Return ``(name, callback)`` pairs a subclass adds to training."""
        return []

    def _fitted_param(self, name):
        """Parameter ``name`` as the model was fitted with it (as it is now
        during a fit, before any fit, and for models saved before the
        parameters were recorded). Inference reads structural parameters
        here: ``set_params`` after ``fit`` must not describe a model other
        than the fitted one (a code size the network does not have, another
        loss in ``score``)."""
        return getattr(self, "_params_at_fit", {}).get(name, getattr(self, name))

    @property
    def _n_features_out(self):
        """The code size, for ``ClassNamePrefixFeaturesOutMixin``'s
        ``get_feature_names_out``; absent before fit, so that it raises
        NotFittedError (check_is_fitted looks for this attribute)."""
        if not hasattr(self, "net_"):
            raise AttributeError("_n_features_out")
        return self._fitted_param("n_components")

    def _loss_kind(self):
        """Return the reconstruction loss, ``'mse'`` or ``'bce'`` (the
        ``loss`` parameter where an estimator has one), as fitted."""
        return self._fitted_param("loss")

    def _scaling_rule(self):
        """The floor rule of the internal z-scores (see ``floored_scale``)."""
        return "own"

    def _input_scaling(self, X):
        """Return per-feature ``(center, scale)`` of validated ``X`` for the
        internal scaling (z-scores by default). The moments they come from
        are kept for ``partial_fit`` to continue."""
        moments = RunningScaling(X.shape[1], rule=self._scaling_rule()).update(X)
        self._scaling_moments = moments
        return moments.scaling()

    # ------------------------------------------------------------ validation
    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
        if not all(isinstance(s, Integral) and s > 0 for s in sizes):
            raise ValueError(
                "hidden_layer_sizes must be a positive integer or a sequence of "
                f"positive integers, got {self.hidden_layer_sizes!r}."
            )
        # numpy integers (a grid over np.arange) as Python ints: torch's LSTM
        # and others accept nothing else.
        return [int(s) for s in sizes]

    def _scaling_switch(self):
        """The parameter setting that turns the internal scaling off."""
        return "standardize=False"

    def _scaling_switched_off(self):
        """Whether the user set :meth:`_scaling_switch` (not: whether the
        input is scaled, which a [0, 1] loss turns off too)."""
        return self.standardize is False

    def _check_float32_range(self, X):
        """Without the internal scaling the network computes on X's values
        in float32: values beyond its range would become infinite."""
        if self._scales_input():
            return
        values = X.data if hasattr(X, "tocsr") else X
        if values.dtype == np.float32 or not values.size:
            return
        largest = max(float(values.max()), -float(values.min()))
        if largest > float(np.finfo(np.float32).max):
            raise ValueError(
                f"X has values beyond float32's range (largest |value| "
                f"{largest:.3g}). The network computes in float32, and without "
                f"the internal scaling ({self._scaling_switch()}) on X's values: "
                "scale X first (e.g. StandardScaler) or leave the scaling on."
            )

    def _scales_input(self):
        """Whether inputs are z-scored inside the estimator."""
        return self.standardize and self._loss_kind() != "bce"

    def _check_input_range(self, X):
        if self._loss_kind() != "bce":
            return
        breach = _unit_interval_breach(X)
        if breach is not None:
            raise ValueError(
                "loss='bce' needs every value of X in [0, 1]; got values in "
                f"{breach}. Scale X to [0, 1] "
                "(e.g. MinMaxScaler) or use loss='mse'."
            )

    def _check_mixed_precision(self, device):
        if (
            self.mixed_precision
            and device.type == "cuda"
            and not torch.cuda.is_bf16_supported()
        ):
            raise ValueError(
                f"mixed_precision=True trains in bfloat16, which {device} "
                f"({torch.cuda.get_device_name(device)}) does not support; use "
                "mixed_precision=False."
            )

    def _validate_X(self, X, *, reset):
        return validate_data(
            self, X, reset=reset, accept_sparse=_ACCEPT_SPARSE, dtype=_DTYPES
        )

    def _resolved_batch_size(self, n_samples, validation=True):
        """``'auto'`` is ``min(256, n_samples)``: a size at which a step of a
        small tabular network is still dominated by arithmetic, not overhead.
        ``validation``: whether this call holds out validation rows where
        ``early_stopping`` asks (``partial_fit`` never does)."""
        if self.batch_size == "auto":
            return min(256, n_samples)
        return min(self.batch_size, n_samples)

    # -------------------------------------------------------------------- fit
    @_restore_on_error
    def _fit(self, X):
        """Validate ``X``, train (or keep training) the network, set fitted state.

        The new net is trained on the side and only stored once training
        succeeded; on any error (interrupts included) the estimator is left
        as it was (see :func:`_restore_on_error`): an earlier fit intact, a
        fresh estimator unfitted.

        Every random draw of training comes from generators of this fit
        (:mod:`sklearn_ae._random`), so fits are reproducible also when they
        run in parallel threads, and torch's global random state is left
        alone. Training that diverges raises ``ValueError`` (see
        :func:`sklearn_ae._engine.diverged`).
        """
        warm = self.warm_start and hasattr(self, "net_")
        X, device, n_threads, seed = self._prepare_fit(X, reset=not warm)
        n_samples, n_features = X.shape
        batch_size = self._resolved_batch_size(n_samples)

        if warm:
            net = self._continued_net(
                n_features, seed, device, max_epochs=self.max_iter, batch_size=batch_size
            )
            mean, scale = self.mean_, self.scale_
            epochs_before = len(net.history)
        else:
            # What partial_fit's running scaling continues from: the moments
            # _input_scaling keeps (None where the scaling is not z-scores).
            self._scaling_moments = None
            mean, scale = self._input_scaling(X) if self._scales_input() else (None, None)

        with torch_threads(n_threads):
            if not warm:
                with seeded_global_rng(seed, device):
                    # Weight initialisation draws from torch's default
                    # generator, in the modules' constructors.
                    net = self._build_net(n_features, batch_size, device, seed)
                    net.initialize()
                epochs_before = 0
            self._check_batch_norm(net.module_, n_samples, batch_size)
            # A memory-mapped X is streamed a batch at a time, never loaded.
            data = TensorData(
                X, mean=mean, scale=scale, device=device,
                resident=not is_memory_mapped(X),
            )
            fitted = self._train(
                net, data, batch_size, device, seed, epochs_before, start=not warm
            )

        self.net_ = net
        for name, value in fitted.items():
            setattr(self, name, value)
        if not warm:
            self.n_samples_seen_ = n_samples
        self.mean_, self.scale_ = mean, scale
        self.device_ = device
        self._set_history_attributes()
        if len(net.history) - epochs_before >= self.max_iter:
            warnings.warn(
                f"{type(self).__name__}: maximum iterations ({self.max_iter}) "
                "reached and the optimization hasn't converged yet.",
                ConvergenceWarning,
            )
        return self

    def _updates_scaling(self):
        """Whether ``partial_fit`` updates the internal scaling from every
        chunk: z-scores do (running mean and variance); a robust scaling
        (median and IQR, which have no exact running update) stays the
        first chunk's."""
        return self._scales_input() and getattr(self, "scaling", "standard") != "robust"

    def _running_scaling(self, n_features):
        """Return the running moments the fitted scaling came from."""
        moments = getattr(self, "_scaling_moments", None)
        if (
            isinstance(moments, RunningScaling)
            and moments.n_samples_seen == self.n_samples_seen_
            and len(moments.mean) == n_features
        ):
            return copy.deepcopy(moments)
        # Moments not kept (a robust scaling's estimator, a model loaded from a
        # file written before they were saved):
        # rebuilt from the fitted scaling, the scale's square standing for
        # the variance (larger for floored features); the rows seen so far
        # count as differing from the reference values set from the next
        # chunk.
        moments = RunningScaling(n_features, rule=self._scaling_rule())
        moments.n_samples_seen = self.n_samples_seen_
        moments.mean = np.asarray(self.mean_, dtype=np.float64).copy()
        moments.m2 = np.square(np.asarray(self.scale_, dtype=np.float64)) * self.n_samples_seen_
        return moments

    @_restore_on_error
    def _partial_fit(self, X):
        """One pass (epoch) over the chunk ``X``, building the network first
        if there is none; the running scaling is updated from ``X`` first.

        No early stopping and no validation split: as in scikit-learn, a
        ``partial_fit`` call trains exactly one epoch. All or nothing, as
        :meth:`_fit`.
        """
        first = not hasattr(self, "net_")
        X, device, n_threads, seed = self._prepare_fit(X, reset=first, validation=False)
        if not first:
            # Each call draws its own shuffles: an int random_state would
            # otherwise visit every chunk in the same order of positions.
            seed = (seed + len(self.net_.history)) % np.iinfo(np.int32).max
        n_samples, n_features = X.shape
        batch_size = self._resolved_batch_size(n_samples, validation=False)
        moments = None
        if first:
            if self._scales_input():
                self._scaling_moments = None
                mean, scale = self._input_scaling(X)
                moments = self._scaling_moments  # None for a robust scaling
            else:
                mean = scale = None
            n_seen = n_samples
        else:
            net = self._continued_net(n_features, seed, device, batch_size=batch_size)
            n_seen = self.n_samples_seen_ + n_samples
            if self._scales_input() and self.mean_ is not None and self._updates_scaling():
                moments = self._running_scaling(n_features).update(X)
                mean, scale = moments.scaling()
            else:
                mean, scale = self.mean_, self.scale_

        with torch_threads(n_threads):
            if first:
                with seeded_global_rng(seed, device):
                    net = self._build_net(n_features, batch_size, device, seed)
                    net.initialize()
            epochs_before = len(net.history)
            self._check_batch_norm(net.module_, n_samples, batch_size, validation=False)
            data = TensorData(
                X, mean=mean, scale=scale, device=device,
                resident=not is_memory_mapped(X),
            )
            fitted = self._train(
                net, data, batch_size, device, seed, epochs_before, start=first,
                one_epoch=True,
            )

        self.net_ = net
        for name, value in fitted.items():
            setattr(self, name, value)
        self.mean_, self.scale_ = mean, scale
        self.n_samples_seen_ = n_seen
        self._scaling_moments = moments
        self.device_ = device
        # The epochs of partial_fit have no validation losses.
        self._set_history_attributes(validation=False)
        return self

    def _prepare_fit(self, X, *, reset, validation=True):
        """What fit and partial_fit check and resolve before training:
        return validated ``X``, the device, the torch thread count and this
        call's seed (one draw from ``random_state``). ``validation``: whether
        this call holds out validation rows where ``early_stopping`` asks
        (``partial_fit`` never does)."""
        X = self._validate_X(X, reset=reset)
        self._hidden_sizes()
        self._check_optimizer()
        self._check_callbacks(validation)
        self._check_fit_params(X.shape[1])
        self._check_input_range(X)
        self._check_float32_range(X)
        device = resolve_device(self.device)
        self._check_mixed_precision(device)
        n_threads = resolve_n_jobs(self.n_jobs)
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        return X, device, n_threads, seed

    def _train(self, net, data, batch_size, device, seed, epochs_before, *, start,
               one_epoch=False):
        """Train ``net`` on ``data`` under this fit's generators and check it.

        ``start``: run :meth:`_before_training` first (a new network);
        ``one_epoch``: one plain epoch (partial_fit) instead of ``max_iter``.
        Returns the fitted attributes :meth:`_before_training` gave.
        """
        fitted = {}
        with self._training_rng(net.module_, seed, device):
            try:
                # partial_fit's epoch, and its start too, see no validation
                # split: the start is built from every row of the chunk.
                with _one_plain_epoch(net) if one_epoch else nullcontext():
                    if start:
                        fitted = self._before_training(net, data, batch_size, device)
                    net.partial_fit(data, epochs=1 if one_epoch else None)
                self._drop_unfinished_epoch(net, epochs_before)
                net.check_trained()
            except DivergenceError as exc:
                raise _diverged_error(self, exc, net) from None
        return fitted

    @staticmethod
    @contextmanager
    def _training_rng(module, seed, device):
        """Make this fit's generators current; and where ``module`` may draw
        from torch's default generator itself (a user's network, a stock
        ``nn.Dropout``), also fork and seed that one, under its process-wide
        lock: such fits stay reproducible but do not run side by side."""
        with fit_generators(seed):
            if draws_globally(module):
                with seeded_global_rng(seed, device):
                    yield
            else:
                yield

    @staticmethod
    def _drop_unfinished_epoch(net, epochs_before):
        """After skorch stopped training on ``KeyboardInterrupt``, forget an
        epoch cut short; re-raise when no epoch of this fit finished.

        skorch ends training quietly on an interrupt and keeps the weights
        trained so far, so an interrupt after the first epoch ends a fit
        early, as in skorch. Before it, there is no trained model to keep.
        """
        history = net.history
        if len(history) > epochs_before and "train_loss" not in history[-1]:
            history.pop()
        if len(history) == epochs_before:
            raise KeyboardInterrupt(
                "training was interrupted before its first epoch ended; the "
                "estimator was left as it was before fit"
            )

    def _check_batch_norm(self, module, n_samples, batch_size, validation=True):
        """Raise ``ValueError`` where batch norm would get batches of one row;
        ``validation``: whether ``early_stopping`` holds out rows of these
        (``partial_fit`` never does)."""
        if not has_batch_norm(module):
            return
        if batch_size < 2 and n_samples >= 2:
            raise ValueError(
                f"batch_norm=True cannot train on batches of one row "
                f"(batch_size={self.batch_size}); use batch_size >= 2 or "
                "batch_norm=False."
            )
        holds_out = validation and self.early_stopping
        n_train = n_samples
        if holds_out:
            n_train -= int(np.ceil(self.validation_fraction * n_samples))
        if n_train < 2:
            params = self.get_params(deep=False)
            causes = [f"n_samples={n_samples}"]
            if params.get("max_samples") is not None and params["max_samples"] < 2:
                causes.append(f"max_samples={params['max_samples']} rows drawn")
            if holds_out:
                causes.append(
                    f"early_stopping=True holds out validation_fraction="
                    f"{self.validation_fraction} of them"
                )
            raise ValueError(
                f"batch_norm=True needs at least 2 training rows, got {n_train} "
                f"({', '.join(causes)}); use more samples or batch_norm=False."
            )

    def _continued_net(self, n_features, seed, device, **net_params):
        """Return a copy of the fitted net for a continued fit
        (``warm_start``, ``partial_fit``) to train, under the parameters set
        now: its loss takes their settings (``_loss_settings``: a continued
        fit used to keep the first fit's, so a new ``beta`` or
        ``sparsity_weight`` was silently ignored) and their input corruption
        (no weights, training only: a denoising fit may go on with another
        noise level, or none), the net ``net_params``, the learning rate, the
        optimizer and the callbacks. Raises ``ValueError`` where they
        describe another loss or network (:meth:`_check_warm_start_network`).
        """
        fresh_loss, fresh_corruption = self._check_warm_start_network(n_features, seed)
        net = copy.deepcopy(self.net_, shared_objects(self.net_.callbacks_))
        for attr in self._loss_settings:
            setattr(net.criterion_, attr, getattr(fresh_loss, attr))
        if fresh_corruption is not None:
            net.module_.corruption = fresh_corruption
        net.verbose = 0  # no notes of re-initialized parts
        net.set_params(lr=self.learning_rate, mixed_precision=self.mixed_precision, **net_params)
        self._continue_optimizer(net, device)
        net.verbose = self.verbose
        self._continue_callbacks(net, seed)
        return net

    def _check_warm_start_network(self, n_features, seed):
        """Raise ``ValueError`` when the parameters now describe another loss
        or another network than the fitted one, which ``warm_start`` and
        ``partial_fit`` would keep training; else return the loss and the
        input corruption (or None) that the parameters now build."""
        fresh_loss = self._build_criterion()
        changed = [
            param for attr, param in self._loss_kinds.items()
            if getattr(fresh_loss, attr) != getattr(self.net_.criterion_, attr)
        ]
        if changed:
            raise ValueError(
                "warm_start=True and partial_fit keep training the fitted "
                f"network, but {', '.join(changed)} changed since it was fitted: "
                "that is another model; set warm_start=False and call fit to "
                "fit a new one."
            )
        with seeded_global_rng(seed, torch.device("cpu")):
            fresh = self._build_module(n_features)
        fitted = self.net_.module_
        corruption = getattr(fresh, "corruption", None)
        if isinstance(corruption, Corruption):
            # The input corruption (noise, noise_level) is a setting of
            # training, not a part of the network: compare without it.
            fresh.corruption = fitted.corruption
        else:
            corruption = None

        def layout(module):
            return repr(module), {
                name: tuple(t.shape) for name, t in module.state_dict().items()
            }

        if layout(fresh) != layout(fitted):
            raise ValueError(
                "warm_start=True and partial_fit keep training the fitted "
                "network, but the parameters now describe a different one (a "
                "changed n_components, hidden_layer_sizes, input_shape, "
                "activation, dropout, batch_norm or network option); set "
                "warm_start=False and call fit to fit a new network."
            )
        return fresh_loss, corruption

    # The training loss of a continued fit (warm_start, partial_fit): its
    # attributes set from the current parameters (``beta``, a sparsity
    # weight), and those, by parameter, whose change makes it another loss
    # and so another model (``loss``, ``likelihood``).
    _loss_settings = ()
    _loss_kinds = {}

    def _check_training_scores(self, scores):
        """Raise ``ValueError`` when the scores of the training rows are not
        finite: the network broke in training."""
        if not np.all(np.isfinite(scores)):
            raise _diverged_error(self, "the scores of the training data are not finite")

    def _check_callbacks(self, validation):
        """Raise ``ValueError`` for ``callbacks`` that are not skorch
        callbacks (instances or classes, or ``(name, callback)`` pairs), and,
        where this call has no validation rows (``partial_fit``, or
        ``early_stopping=False``), for callbacks that read validation scores
        (a ``monitor`` such as ``'valid_loss'``): skorch failed there after
        the first epoch, with a ``KeyError`` from its history."""
        from skorch.callbacks import Callback

        if not validation:
            no_validation = (
                "partial_fit trains without validation rows; use fit with "
                "early_stopping=True"
            )
        elif not self.early_stopping:
            no_validation = (
                "early_stopping=False trains without validation rows; set "
                "early_stopping=True (validation_fraction of the rows are held out)"
            )
        else:
            no_validation = None

        for index, item in enumerate(self.callbacks or []):
            callback = item
            if isinstance(item, tuple):
                if len(item) != 2 or not isinstance(item[0], str):
                    raise ValueError(
                        "callbacks must hold skorch callbacks or (name, callback) "
                        f"pairs with a str name; got {item!r} at index {index}."
                    )
                callback = item[1]
            is_class = isinstance(callback, type)
            hooks = all(hasattr(callback, name) for name in ("initialize", "on_epoch_end"))
            if not (issubclass(callback, Callback) if is_class else hooks):
                raise ValueError(
                    "callbacks must hold skorch callbacks (instances or classes of "
                    "skorch.callbacks.Callback) or (name, callback) pairs; got "
                    f"{callback!r} at index {index}."
                )
            if is_class:  # skorch builds it with its defaults
                default = inspect.signature(callback).parameters.get("monitor")
                monitor = None if default is None else default.default
            else:
                monitor = getattr(callback, "monitor", None)
            if no_validation and isinstance(monitor, str) and monitor.startswith("valid_"):
                raise ValueError(
                    f"callbacks: {callback.__name__ if is_class else type(callback).__name__}"
                    f"(monitor={monitor!r}) reads a validation score, but "
                    f"{no_validation}, or monitor a training score such as "
                    "'train_loss'."
                )

    def _check_optimizer(self):
        """Raise ``ValueError`` for an ``optimizer`` that is not a torch
        optimizer class, or ``optimizer__*`` arguments it does not take."""
        optimizer = self.optimizer
        if not (isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer)):
            raise ValueError(
                "optimizer must be a torch.optim.Optimizer subclass such as "
                f"torch.optim.SGD (the class, not an instance), got {optimizer!r}."
            )
        for name in vars(self).get("_extra_params", {}):
            if not name.startswith(self._param_prefixes):
                raise ValueError(
                    f"{name!r} is not a parameter of {type(self).__name__}; extra "
                    "keyword parameters must be "
                    + " or ".join(p + "*" for p in self._param_prefixes)
                    + " parameters."
                )
        options = self._prefixed_params("optimizer__")
        for name, replacement in (("lr", "learning_rate"), ("weight_decay", "weight_decay")):
            if name in options:
                raise ValueError(
                    f"optimizer__{name} is set; use the {replacement} parameter instead."
                )
        signature = inspect.signature(optimizer.__init__).parameters
        if any(p.kind == p.VAR_KEYWORD for p in signature.values()):
            return
        if self.weight_decay and "weight_decay" not in signature:
            # (torch's own TypeError came from inside skorch otherwise)
            raise ValueError(
                f"weight_decay={self.weight_decay} is set, but {optimizer.__name__} "
                "takes no weight_decay argument; use weight_decay=0 with it, or "
                "an optimizer that takes one (e.g. torch.optim.SGD, Adam, AdamW)."
            )
        accepted = set(signature) - {"self", "params", "lr", "weight_decay"}
        for name in options:
            if name not in accepted:
                raise ValueError(
                    f"optimizer__{name} is not an argument of {optimizer.__name__}; "
                    f"it takes {sorted(accepted)}."
                )

    def _net_optimizer(self, device):
        """Return the training optimizer class and its ``optimizer__*`` options.

        Adam trains with :class:`~sklearn_ae._optim.FusedAdam` and the
        fused kernel (the fast path); any other class as given.
        """
        if self.optimizer is torch.optim.Adam:
            optimizer, options = FusedAdam, self._optimizer_options(device)
        else:
            optimizer, options = self.optimizer, {}
            if self.weight_decay or "weight_decay" in inspect.signature(
                optimizer.__init__
            ).parameters:
                options["optimizer__weight_decay"] = self.weight_decay
        options.update(
            ("optimizer__" + k, v) for k, v in self._prefixed_params("optimizer__").items()
        )
        return optimizer, options

    def _continue_optimizer(self, net, device):
        """Give ``net``, continued by a warm start or ``partial_fit``, the
        optimizer this estimator is set to now.

        While the class and its options (``optimizer__*``, ``weight_decay``)
        are those ``net`` trains with, its optimizer and state carry on (a
        changed ``learning_rate`` is set in place); otherwise the optimizer
        starts afresh with the new ones, as ``MLPRegressor``'s does at every
        warm start: state kept for other settings (or another algorithm)
        would not be theirs.
        """
        optimizer, options = self._net_optimizer(device)
        current = {k: v for k, v in vars(net).items() if k.startswith("optimizer__")}
        if net.optimizer is optimizer and current == options:
            return
        for name in current:
            delattr(net, name)
        net.optimizer = optimizer
        for name, value in options.items():
            setattr(net, name, value)
        net.initialize_optimizer()

    def _optimizer_options(self, device):
        options = {"optimizer__weight_decay": self.weight_decay}
        if device.type in ("cpu", "cuda"):
            # The fused kernel is the single largest win on small networks.
            options["optimizer__fused"] = True
        return options

    def _training_callbacks(self):
        """Return the ``(name, callback)`` pairs a fit trains with, as the
        parameters say now: early stopping (``n_iter_no_change``, ``tol``,
        ``early_stopping``), the record of ``verbose``, a subclass's own
        (:meth:`_extra_callbacks`) and fresh copies of ``callbacks``."""
        monitor = "valid_loss" if self.early_stopping else "train_loss"
        callbacks = [
            (
                "early_stopping",
                EarlyStoppingFromStart(
                    monitor=monitor,
                    patience=self.n_iter_no_change,
                    threshold=self.tol,
                    threshold_mode="abs",
                    load_best=self.early_stopping,
                    min_patience_steps=(
                        _MIN_PATIENCE_STEPS if self.early_stopping else 0
                    ),
                    significance=self._start_significance,
                ),
            )
        ]
        if self.verbose:
            callbacks.append(
                ("progress_bar", EpochProgressBar())
                if self.verbose == 1
                else ("epoch_log", EpochLog())  # one line per epoch
            )
        callbacks += self._extra_callbacks()
        # Fresh instances sharing the objects passed as their parameters:
        # skorch initializes callbacks in place, and the user's objects must
        # come out of fit as they went in (see fresh_callbacks).
        callbacks += fresh_callbacks(self.callbacks or [])
        return callbacks

    def _train_split(self, seed):
        """Return the net's ``train_split``: the early-stopping validation
        split, or None."""
        if not self.early_stopping:
            return None
        return HoldoutSplit(self.validation_fraction, seed)

    def _continue_callbacks(self, net, seed):
        """Give ``net``, continued by a warm start or ``partial_fit``, the
        callbacks and validation split this estimator is set to now.

        The callbacks are rebuilt as :meth:`_build_net` builds them (fresh
        copies of ``callbacks``, the internal ones from the current
        ``early_stopping``, ``n_iter_no_change``, ``tol``, ``verbose``...):
        a continued fit trained with those of its first fit, whatever
        ``set_params`` had changed since. skorch's default callbacks (the
        epoch timer, the loss records) carry on with their state, so the
        ``*_best`` flags keep counting over the whole history; stock
        callbacks read what they need to continue from the history (a
        scheduler's epoch, a scoring's best score). The validation rows
        stay those of the earlier fits while ``validation_fraction`` does.
        """
        kept = {name: cb for name, cb in net.callbacks_}
        defaults = {name for name, _ in net._default_callbacks}
        net.callbacks = self._training_callbacks()
        net.initialize_callbacks()
        net.callbacks_ = [
            (name, kept[name] if name in defaults and name in kept else cb)
            for name, cb in net.callbacks_
        ]
        split = net.train_split
        if not (
            self.early_stopping
            and isinstance(split, HoldoutSplit)
            and split.fraction == self.validation_fraction
        ):
            net.train_split = self._train_split(seed)

    def _build_net(self, n_features, batch_size, device, seed):
        optimizer, optimizer_options = self._net_optimizer(device)
        return AutoencoderNet(
            module=self._build_module(n_features),
            criterion=self._build_criterion(),
            optimizer=optimizer,
            lr=self.learning_rate,
            max_epochs=self.max_iter,
            batch_size=batch_size,
            train_split=self._train_split(seed),
            callbacks=self._training_callbacks(),
            device=device,
            # skorch's callbacks print through print sinks only when the
            # net's verbose is set; a PrintLog the user passed prints anyway
            # (fresh_callbacks).
            verbose=self.verbose,
            mixed_precision=self.mixed_precision,
            **optimizer_options,
        )

    def _set_history_attributes(self, validation=True):
        """Set the loss curves from the net's history; ``validation=False``
        for epochs without validation losses (partial_fit)."""
        history = self.net_.history
        self.loss_curve_ = [float(v) for v in history[:, "train_loss"]]
        self.n_iter_ = len(history)
        self.best_loss_ = min(self.loss_curve_)
        if self.early_stopping and validation:
            self.validation_scores_ = [-float(v) for v in history[:, "valid_loss"]]
            self.best_validation_score_ = self._restored_validation_score()
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _restored_validation_score(self, shift=0.0):
        """The negative validation loss (plus ``shift``) of the weights early
        stopping restored: the start's (see EarlyStoppingFromStart) where it
        was kept, else the best epoch's. Not the largest of the epochs'
        scores: an epoch better by less than ``tol`` is not taken, and the
        VAE reported such an epoch's -31.4 for a restored start's -33.3."""
        stopper = dict(self.net_.callbacks_)["early_stopping"]
        initial = stopper.initial_score_
        # (kept_start_ is set at the end of training; a VAE whose training
        # diverged restores the best weights itself, before that)
        if initial is not None and (
            getattr(stopper, "kept_start_", False)
            or stopper.best_epoch_ == getattr(stopper, "_start_epoch", None)
        ):
            return -initial + shift
        history = self.net_.history
        for row in reversed(history):
            if row["epoch"] == stopper.best_epoch_ and "valid_loss" in row:
                return -float(row["valid_loss"]) + shift
        # (no epoch was better than none: the last one's weights stand)
        return -float(history[-1, "valid_loss"]) + shift

    # ------------------------------------------------------------ persistence
    def save(self, path):
        """Save the estimator to ``path`` in a format that runs no code on load.

        A safetensors file (weights, optimizer state and fitted arrays) with
        the parameters, scalar fitted state and training history as JSON in
        its metadata; read it back with :func:`sklearn_ae.load`. Pickle and
        joblib also work, but loading a pickle runs code from the file: load
        pickles only from sources you trust. See :func:`sklearn_ae.save` for
        what is not saved.

        Parameters
        ----------
        path : str or path-like
            File to write (conventionally ``*.safetensors``); overwritten.
        """
        from ._persistence import save

        save(self, path)

    # -------------------------------------------------------------- inference
    @property
    def module_(self):
        """The fitted torch module (held by ``net_``)."""
        return self.net_.module_

    def _tensor_data(self, X, dtype=torch.float32):
        return TensorData(
            X, mean=self.mean_, scale=self.scale_, device=self.net_.device, dtype=dtype
        )

    @staticmethod
    def _compute_dtype(dtype):
        """The torch dtype inference runs in for numpy output ``dtype``."""
        return torch.float64 if dtype == np.float64 else torch.float32

    def _map_batches(self, X, fn, dtype, out_dtype=None):
        """Return ``fn(module, batch)`` over standardized batches of ``X``, as numpy.

        ``X`` is validated; sparse input is densified one batch at a time.
        ``fn`` gets the module and batches in the precision of ``dtype``:
        float64 output is computed in float64 (with a float64 copy of the
        module), so that a row's result does not depend on which rows share
        its batch, as it would at float32 rounding. The result has
        ``out_dtype`` (default ``dtype``).

        A row whose float32 result is not finite is computed again in
        float64 (:meth:`_redo_in_float64`): finite rows near float32's range
        overflow the float32 arithmetic, where ``inf - inf`` made NaN codes
        and scores.
        """
        compute_dtype = self._compute_dtype(dtype)
        data = X if isinstance(X, TensorData) else self._tensor_data(X, compute_dtype)
        module = self.net_.module_
        if compute_dtype != torch.float32:
            module = copy.deepcopy(module).to(compute_dtype)
        module.eval()
        outputs = []
        with torch_threads(resolve_n_jobs(self.n_jobs)), torch.inference_mode():
            # One buffer for the standardized copies of the caller's rows
            # (TensorData.take): fn's results are new tensors, never views
            # of their batch, so each batch may overwrite the last.
            buffer = torch.empty(
                (min(len(data), _INFERENCE_ROWS), data.n_features),
                dtype=compute_dtype, device=self.net_.device,
            )
            for start in range(0, len(data), _INFERENCE_ROWS):
                batch = data.take(slice(start, start + _INFERENCE_ROWS), out=buffer)
                outputs.append(fn(module, batch))
            result = torch.cat(outputs)
            if compute_dtype == torch.float32:
                result = self._redo_in_float64(X, fn, module, result)
        out_dtype = dtype if out_dtype is None else out_dtype
        return result.cpu().numpy().astype(out_dtype, copy=False)

    def _redo_in_float64(self, X, fn, module, result):
        """Return ``result`` with its non-finite rows computed again in float64.

        The inputs are finite (validated), so a non-finite row is one whose
        values overflowed the float32 network: a row far beyond the training
        rows, near float32's range (3.4e38). In float64 it gets its true
        value, which float32 output then holds as a large number or as
        +-inf, the overflow scikit-learn's PCA shows, never NaN. Each row is
        computed alone either way, so that no row depends on the others.
        """
        # A row's sum is finite when all its values are (torch.isfinite on
        # every value cost 150 ms on 200,000 x 100, the sums 5 ms); a sum of
        # finite values that overflows only sends that row to float64 too.
        bad = ~torch.isfinite(result.reshape(len(result), -1).sum(dim=1))
        if not bool(bad.any()):
            return result
        rows = torch.nonzero(bad).flatten().cpu().numpy()
        if isinstance(X, TensorData):  # codes: not scaled, float32 exactly in float64
            batch = X.take(rows).to(torch.float64)
        else:
            if sp.issparse(X):
                X = X.tocsr()  # (COO has no row indexing)
            batch = self._tensor_data(X[rows], torch.float64).take(slice(None))
        redone = fn(copy.deepcopy(module).to(torch.float64), batch)
        result = result.clone()
        result[torch.as_tensor(rows, device=result.device)] = redone.to(result.dtype)
        return result

    def _map_codes(self, Z, fn, dtype):
        """Return ``fn(module, codes)`` over batches of latent codes ``Z``, as numpy.

        Like :meth:`_map_batches`, but the rows are codes, which are not scaled.
        """
        codes = TensorData(Z, device=self.net_.device, dtype=self._compute_dtype(dtype))
        return self._map_batches(codes, fn, dtype)

    def _to_input_units(self, standardized):
        """Undo the internal scaling of a tensor of reconstructions."""
        if self.scale_ is not None:
            standardized = standardized * torch.as_tensor(
                self.scale_, dtype=standardized.dtype, device=standardized.device
            )
        if self.mean_ is not None:
            standardized = standardized + torch.as_tensor(
                self.mean_, dtype=standardized.dtype, device=standardized.device
            )
        return standardized

    def _reconstruction_errors(self, X, dtype):
        """Per-sample reconstruction loss of validated ``X``, in input units, float64.

        Mean squared error over features for ``loss='mse'`` (residuals scaled
        back to the units of X), binary cross-entropy for ``loss='bce'``.
        The network runs in ``dtype`` (X's): float32 input takes the float32
        forward pass that ``transform`` takes, float64 input a float64 copy
        of the network. The errors are weighted by the squared feature scales
        and averaged in float64 either way: in input units a squared error
        overflows float32 once residuals pass about 1e19 (features in large
        units), where float64 stays finite.
        """
        criterion = self.net_.criterion_
        device = self.net_.device
        scale = None
        if self.scale_ is not None:
            scale = torch.as_tensor(self.scale_, dtype=torch.float64, device=device)
        # float32 input: each squared standardized residual's weight in the
        # mean in input units. The squares stay float32 (in standardized
        # units they overflow only past residuals of 1e19); their weighted
        # sum is float64.
        n_features = self.n_features_in_
        weights = torch.full((n_features,), 1.0 / n_features, dtype=torch.float64, device=device)
        if scale is not None:
            weights = weights * scale.square()

        def errors(module, xb):
            output = reconstruction_of(module(xb))
            if self._loss_kind() == "bce":
                return criterion.per_sample(output, xb).double()
            residuals = (output - xb).flatten(1)
            if residuals.dtype == torch.float32:
                return residuals.square().double() @ weights
            # float64: elementwise, so that a row's error does not depend
            # on the rows that share its batch.
            if scale is not None:
                residuals = residuals * scale
            return residuals.square().mean(dim=1)

        return self._map_batches(X, errors, dtype, out_dtype=np.float64)

    @staticmethod
    def _output_dtype(X):
        return np.float32 if X.dtype == np.float32 else np.float64

    def _check_fitted_input(self, X):
        check_is_fitted(self)
        return self._validate_X(X, reset=False)

    def _check_fitted_codes(self, Z):
        """Validate latent codes given to ``inverse_transform``."""
        check_is_fitted(self)
        Z = check_array(Z, dtype=_DTYPES)
        n_components = self._fitted_param("n_components")
        if Z.shape[1] != n_components:
            raise ValueError(
                f"X has {Z.shape[1]} features, but inverse_transform expects "
                f"n_components={n_components} latent features."
            )
        return Z

    def __getstate__(self):
        # Fitted tensors of the estimator's own (a detector's member scales,
        # dropout masks...) live on the training device; pickled as they
        # are, a CUDA-trained model could not be unpickled without CUDA.
        # They travel on the CPU, and go back beside the net on unpickling.
        # A copy: object.__getstate__ may return the instance's own __dict__,
        # and pickling must not move the live estimator's tensors.
        state = dict(super().__getstate__())
        for name in filter(self._is_own_fitted, list(state)):
            state[name] = _tensors_to(state[name], torch.device("cpu"))
        return state

    def __setstate__(self, state):
        # skorch maps a CUDA-trained net to the CPU when CUDA is missing;
        # keep device_ telling where the fitted net now lives.
        super().__setstate__(state)
        if "net_" in state:
            self.device_ = torch.device(self.net_.device)
            self._fitted_tensors_to(self.device_)

    def _fitted_tensors_to(self, device):
        """Put the estimator's own fitted tensors on ``device`` (the net's)."""
        for name in filter(self._is_own_fitted, list(vars(self))):
            moved = _tensors_to(getattr(self, name), device)
            if moved is not getattr(self, name):
                setattr(self, name, moved)

    @staticmethod
    def _is_own_fitted(name):
        """Whether attribute ``name`` is a fitted attribute of the estimator's
        own (not the net, whose tensors skorch saves and maps itself)."""
        return name.endswith("_") and not name.startswith("_") and name != "net_"
