"""What every sklearn_ae estimator shares: parameters, validation, the fit
skeleton around the training engine, seeding, batched inference, pickling.

Subclasses fill in a few hooks: ``_build_module`` (the torch network),
``_build_criterion`` (the training loss) and, optionally,
``_extra_callbacks``.
"""

import copy
import inspect
import warnings
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import torch
from skorch.callbacks import EarlyStopping
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._callbacks import EpochProgressBar
from ._data import TensorData, feature_scaling
from ._engine import AutoencoderNet, HoldoutSplit, NonFiniteLossError
from ._losses import ReconstructionLoss, reconstruction_of
from ._networks import (
    ACTIVATIONS,
    Autoencoder,
    ConvAutoencoder,
    LSTMAutoencoder,
    MLPAutoencoder,
)
from ._pretraining import pretrain_layerwise

_ACCEPT_SPARSE = ("csr", "csc", "coo")
_DTYPES = (np.float64, np.float32)
# Rows per forward pass at inference: large enough to amortise the per-call
# cost, small enough that a batch of wide rows stays a few tens of MB.
_INFERENCE_ROWS = 8192
# Parameters of user-given networks, passed through in skorch's style.
_NETWORK_PREFIXES = ("encoder__", "decoder__")


def resolve_device(device):
    """Return the ``torch.device`` that ``device`` ('auto', 'cpu', 'cuda:0'...) names."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a torch device; use 'auto', 'cpu' or 'cuda'."
        ) from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available; use "
            "device='cpu' or device='auto'."
        )
    return resolved


@contextmanager
def seeded_torch(seed, device):
    """Seed torch's default generators for the block, then restore them.

    Weight init, shuffling and dropout draw from torch's default generators;
    forking them keeps ``fit`` reproducible without changing the caller's
    global RNG state.
    """
    devices = list(range(torch.cuda.device_count())) if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _run_network(fn, x, role):
    try:
        return fn(x)
    except RuntimeError as exc:
        raise ValueError(
            f"{role} failed on a batch of shape {tuple(x.shape)}: {exc}"
        ) from exc


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
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": [list, None],
        "warm_start": ["boolean"],
        "noise": [StrOptions({"gaussian", "mask"}), None],
        "noise_level": [Interval(Real, 0, None, closed="left")],
        "tied_weights": ["boolean"],
        "sparsity": [StrOptions({"kl", "l1"}), None],
        "sparsity_weight": [Interval(Real, 0, None, closed="left")],
        "sparsity_target": [Interval(Real, 0, 1, closed="neither")],
        "layerwise_pretraining": ["boolean"],
        "pretraining_max_iter": [Interval(Integral, 1, None, closed="left")],
        "input_shape": [tuple, list, None],
        "encoder": [callable, None],
        "decoder": [callable, None],
    }

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
        random_state=None,
        verbose=0,
        callbacks=None,
        warm_start=False,
        noise=None,
        noise_level=0.1,
        tied_weights=False,
        sparsity=None,
        sparsity_weight=0.1,
        sparsity_target=0.05,
        layerwise_pretraining=False,
        pretraining_max_iter=20,
        input_shape=None,
        encoder=None,
        decoder=None,
        **network_params,
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
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.noise = noise
        self.noise_level = noise_level
        self.tied_weights = tied_weights
        self.sparsity = sparsity
        self.sparsity_weight = sparsity_weight
        self.sparsity_target = sparsity_target
        self.layerwise_pretraining = layerwise_pretraining
        self.pretraining_max_iter = pretraining_max_iter
        self.input_shape = input_shape
        self.encoder = encoder
        self.decoder = decoder
        # Stored as given and checked in fit, as skorch does with module__*.
        # A private dict, not attributes: sklearn's checks require that
        # __init__ sets no public attribute but the declared parameters.
        self._extra_params = dict(network_params)

    # ------------------------------------------------- network parameters
    def _network_params(self, role):
        """Return the ``role__*`` parameters ('encoder' or 'decoder'), unprefixed."""
        prefix = role + "__"
        return {
            k[len(prefix) :]: v
            for k, v in vars(self).get("_extra_params", {}).items()
            if k.startswith(prefix)
        }

    def get_params(self, deep=True):
        """Get parameters for this estimator, ``encoder__*``/``decoder__*`` included.

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
        """Set the parameters of this estimator, ``encoder__*``/``decoder__*`` included.

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
            if name.startswith(_NETWORK_PREFIXES) or name in extra:
                extra[name] = params.pop(name)
        return super().set_params(**params)

    # ------------------------------------------------------------------ hooks
    def _build_module(self, n_features):
        """Return the untrained torch module for ``n_features`` inputs."""
        if self.encoder is not None:
            module = Autoencoder(
                self._custom_network("encoder", n_features),
                self._custom_network("decoder", n_features),
                **self._autoencoder_options(),
            )
            self._check_network_shapes(module, n_features)
            return module
        if self.input_shape is not None and len(self.input_shape) == 3:
            return ConvAutoencoder(
                self.input_shape,
                self.n_components,
                self._hidden_sizes(),
                activation=self.activation,
                dropout=self.dropout,
                batch_norm=self.batch_norm,
                **self._autoencoder_options(),
            )
        if self.input_shape is not None:
            return LSTMAutoencoder(
                self.input_shape,
                self.n_components,
                self._hidden_sizes(),
                dropout=self.dropout,
                **self._autoencoder_options(),
            )
        return MLPAutoencoder(
            n_features,
            self.n_components,
            self._hidden_sizes(),
            activation=self.activation,
            dropout=self.dropout,
            batch_norm=self.batch_norm,
            tied_weights=self.tied_weights,
            **self._autoencoder_options(),
        )

    def _autoencoder_options(self):
        """Return the options of :class:`Autoencoder` that every network shares."""
        return dict(
            noise=self.noise,
            noise_level=self.noise_level,
            # KL sparsity compares activation rates, so the code must be in (0, 1).
            code_activation="logistic" if self.sparsity == "kl" else "identity",
            return_code=self.sparsity is not None,
        )

    def _custom_network(self, role, n_features):
        """Build the user's ``encoder`` or ``decoder`` from its parameters.

        A class (or factory) is called with the ``role__*`` parameters, plus
        ``n_features`` and ``n_components`` where its signature takes them
        and they are not set; a module instance is copied.
        """
        spec = getattr(self, role)
        params = self._network_params(role)
        if isinstance(spec, torch.nn.Module):
            if params:
                raise ValueError(
                    f"{role}__* parameters ({', '.join(sorted(params))}) need "
                    f"{role} to be a class, got a module instance."
                )
            return copy.deepcopy(spec)
        try:
            accepted = inspect.signature(spec).parameters
        except (TypeError, ValueError):
            accepted = {}
        for name, value in (("n_features", n_features), ("n_components", self.n_components)):
            if name in accepted and name not in params:
                params[name] = value
        try:
            network = spec(**params)
        except TypeError as exc:
            raise ValueError(
                f"{role}={getattr(spec, '__name__', spec)!r} could not be built "
                f"from the {role}__* parameters {params}: {exc}"
            ) from exc
        if not isinstance(network, torch.nn.Module):
            raise ValueError(
                f"{role} must build a torch.nn.Module, got {type(network).__name__}."
            )
        return network

    def _check_network_shapes(self, module, n_features):
        """Run two rows through user-given networks and check the shapes.

        This also initializes lazy layers before the optimizer is built.
        """
        module.eval()
        with torch.no_grad():
            code = _run_network(module.encode, torch.zeros(2, n_features), "encoder")
            if tuple(code.shape) != (2, self.n_components):
                raise ValueError(
                    f"encoder must map (n_samples, {n_features}) to (n_samples, "
                    f"n_components={self.n_components}), got shape "
                    f"{tuple(code.shape)} for 2 samples."
                )
            output = _run_network(module.decode, code, "decoder")
            if tuple(output.shape) != (2, n_features):
                raise ValueError(
                    f"decoder must map (n_samples, n_components={self.n_components}) "
                    f"back to (n_samples, {n_features}), got shape "
                    f"{tuple(output.shape)} for 2 samples."
                )
        module.train()

    def _build_criterion(self):
        """Return the training loss, a module called as ``criterion(output, X)``."""
        return ReconstructionLoss(
            self.loss,
            sparsity=self.sparsity,
            sparsity_weight=self.sparsity_weight,
            sparsity_target=self.sparsity_target,
        )

    def _extra_callbacks(self):
        """Return ``(name, callback)`` pairs a subclass adds to training."""
        return []

    # ------------------------------------------------------------ validation
    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
        if not all(isinstance(s, Integral) and s > 0 for s in sizes):
            raise ValueError(
                "hidden_layer_sizes must be a positive integer or a sequence of "
                f"positive integers, got {self.hidden_layer_sizes!r}."
            )
        return sizes

    def _check_input_shape(self, n_features):
        """Check that ``input_shape`` is (C, H, W) or (T, F) and fits the rows."""
        shape = self.input_shape
        if shape is None:
            return
        if not (
            len(shape) in (2, 3)
            and all(isinstance(s, Integral) and s > 0 for s in shape)
        ):
            raise ValueError(
                "input_shape must be None, (channels, height, width) for images "
                "or (n_timesteps, n_channels) for sequences, with positive "
                f"integers; got {shape!r}."
            )
        if int(np.prod(shape)) != n_features:
            raise ValueError(
                f"input_shape={tuple(shape)} holds {int(np.prod(shape))} values "
                f"per row but X has {n_features} features."
            )
        if self.encoder is not None:
            raise ValueError(
                "input_shape selects a built-in convolutional or LSTM network; "
                "a custom encoder and decoder reshape rows themselves."
            )
        if self.tied_weights:
            raise ValueError(
                "tied_weights=True applies to the fully connected network only, "
                f"not with input_shape={tuple(shape)}."
            )
        if len(shape) == 2 and not self._hidden_sizes():
            raise ValueError(
                "hidden_layer_sizes must name at least one LSTM layer with "
                f"input_shape={tuple(shape)} (n_timesteps, n_channels); got ()."
            )
        if len(shape) == 2 and self.batch_norm:
            raise ValueError(
                "batch_norm=True is not available for the LSTM network of "
                f"input_shape={tuple(shape)} (n_timesteps, n_channels)."
            )

    def _check_variant_params(self):
        """Check the combinations of variant parameters that constraints cannot."""
        for name in vars(self).get("_extra_params", {}):
            if not name.startswith(_NETWORK_PREFIXES):
                raise ValueError(
                    f"{name!r} is not a parameter of {type(self).__name__}; extra "
                    "keyword parameters must be encoder__* or decoder__* "
                    "parameters of custom networks."
                )
        if (self.encoder is None) != (self.decoder is None):
            given, missing = (
                ("encoder", "decoder") if self.decoder is None else ("decoder", "encoder")
            )
            raise ValueError(
                f"{given} was given without {missing}: custom networks need both "
                "encoder and decoder."
            )
        for role in ("encoder", "decoder"):
            params = self._network_params(role)
            if params and getattr(self, role) is None:
                raise ValueError(
                    f"{role}__{next(iter(params))} is set but {role} is None; "
                    f"{role}__* parameters configure a custom {role} class."
                )
        if self.layerwise_pretraining and (
            self.encoder is not None or self.input_shape is not None
        ):
            raise ValueError(
                "layerwise_pretraining=True pretrains the built-in fully "
                "connected network; it cannot be used with a custom encoder "
                "and decoder or with input_shape."
            )
        if self.tied_weights and self.encoder is not None:
            raise ValueError(
                "tied_weights=True ties the built-in fully connected layers; it "
                "cannot be used with a custom encoder and decoder."
            )
        if self.noise == "mask" and not 0 < self.noise_level < 1:
            raise ValueError(
                "noise='mask' needs 0 < noise_level < 1 (the probability of "
                f"masking each value), got noise_level={self.noise_level}."
            )
        if self.noise == "gaussian" and self.noise_level <= 0:
            raise ValueError(
                "noise='gaussian' needs noise_level > 0 (the noise standard "
                f"deviation), got noise_level={self.noise_level}."
            )

    def _scales_input(self):
        """Whether inputs are z-scored inside the estimator."""
        return self.standardize and self.loss != "bce"

    def _check_input_range(self, X):
        if self.loss != "bce":
            return
        values = X.data if hasattr(X, "tocsr") else X
        if values.size and (values.min() < 0 or values.max() > 1):
            raise ValueError(
                "loss='bce' needs every value of X in [0, 1]; got values in "
                f"[{values.min():.4g}, {values.max():.4g}]. Scale X to [0, 1] "
                "(e.g. MinMaxScaler) or use loss='mse'."
            )

    def _validate_X(self, X, *, reset):
        return validate_data(
            self, X, reset=reset, accept_sparse=_ACCEPT_SPARSE, dtype=_DTYPES
        )

    def _resolved_batch_size(self, n_samples):
        """``'auto'`` is ``min(256, n_samples)``: a size at which a step of a
        small tabular network is still dominated by arithmetic, not overhead."""
        if self.batch_size == "auto":
            return min(256, n_samples)
        return min(self.batch_size, n_samples)

    # -------------------------------------------------------------------- fit
    def _fit(self, X):
        """Validate ``X``, train (or keep training) the network, set fitted state.

        The new net is trained on the side and only stored once training
        succeeded, so a failed fit leaves an earlier fit intact.
        """
        warm = self.warm_start and hasattr(self, "net_")
        X = self._validate_X(X, reset=not warm)
        self._hidden_sizes()
        self._check_variant_params()
        self._check_input_shape(X.shape[1])
        self._check_input_range(X)
        device = resolve_device(self.device)
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        n_samples, n_features = X.shape
        batch_size = self._resolved_batch_size(n_samples)
        if self.batch_norm and n_samples < 2:
            raise ValueError(
                f"batch_norm=True needs at least 2 samples to train, got "
                f"n_samples={n_samples}."
            )

        if warm:
            mean, scale = self.mean_, self.scale_
            net = copy.deepcopy(self.net_)
            net.set_params(
                max_epochs=self.max_iter, batch_size=batch_size, lr=self.learning_rate
            )
            epochs_before = len(net.history)
        elif self._scales_input():
            mean, scale = feature_scaling(X)
        else:
            mean = scale = None
        data = TensorData(X, mean=mean, scale=scale, device=device, resident=True)

        with seeded_torch(seed, device):
            pretraining_curves = getattr(self, "pretraining_loss_curves_", None)
            if not warm:
                net = self._build_net(n_features, batch_size, device, seed)
                net.initialize()
                epochs_before = 0
                pretraining_curves = None
            try:
                if self.layerwise_pretraining and not warm:
                    pretraining_curves = self._pretrain(net, data, batch_size, device)
                net.partial_fit(data)
            except NonFiniteLossError as exc:
                raise ValueError(
                    f"The training loss is not finite ({exc}). The optimisation "
                    f"diverged: try a smaller learning_rate (got "
                    f"{self.learning_rate}), or check X for extreme values."
                ) from None

        self.net_ = net
        self.pretraining_loss_curves_ = pretraining_curves
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

    def _pretrain(self, net, data, batch_size, device):
        """Greedy layer-wise pretraining of ``net``'s module, in place.

        Only the training part is used, so that the rows held out for early
        stopping stay unseen.
        """
        train_data = net.get_split_datasets(data)[0]
        return pretrain_layerwise(
            net.module_,
            train_data,
            loss=self.loss,
            max_epochs=self.pretraining_max_iter,
            batch_size=batch_size,
            lr=self.learning_rate,
            device=device,
            optimizer_options=self._optimizer_options(device),
        )

    def _optimizer_options(self, device):
        options = {"optimizer__weight_decay": self.weight_decay}
        if device.type in ("cpu", "cuda"):
            # The fused kernel is the single largest win on small networks.
            options["optimizer__fused"] = True
        return options

    def _build_net(self, n_features, batch_size, device, seed):
        monitor = "valid_loss" if self.early_stopping else "train_loss"
        callbacks = [
            (
                "early_stopping",
                EarlyStopping(
                    monitor=monitor,
                    patience=self.n_iter_no_change,
                    threshold=self.tol,
                    threshold_mode="abs",
                    load_best=self.early_stopping,
                ),
            )
        ]
        if self.verbose:
            callbacks.append(("progress_bar", EpochProgressBar()))
        callbacks += self._extra_callbacks()
        # Copies: skorch initializes callbacks in place, and the user's objects
        # must come out of fit as they went in.
        callbacks += copy.deepcopy(list(self.callbacks or []))
        optimizer_options = self._optimizer_options(device)
        return AutoencoderNet(
            module=self._build_module(n_features),
            criterion=self._build_criterion(),
            optimizer=torch.optim.Adam,
            lr=self.learning_rate,
            max_epochs=self.max_iter,
            batch_size=batch_size,
            train_split=(
                HoldoutSplit(self.validation_fraction, seed)
                if self.early_stopping
                else None
            ),
            callbacks=callbacks,
            device=device,
            verbose=0,
            **optimizer_options,
        )

    def _set_history_attributes(self):
        history = self.net_.history
        self.loss_curve_ = [float(v) for v in history[:, "train_loss"]]
        self.n_iter_ = len(history)
        self.best_loss_ = min(self.loss_curve_)
        if self.early_stopping:
            scores = [-float(v) for v in history[:, "valid_loss"]]
            self.validation_scores_ = scores
            self.best_validation_score_ = max(scores)
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None

    # -------------------------------------------------------------- inference
    @property
    def module_(self):
        """The fitted torch module (held by ``net_``)."""
        return self.net_.module_

    def _tensor_data(self, X):
        return TensorData(X, mean=self.mean_, scale=self.scale_, device=self.net_.device)

    def _map_batches(self, X, fn, dtype):
        """Return ``fn`` applied to standardized batches of ``X``, as numpy.

        ``X`` is validated; sparse input is densified one batch at a time.
        """
        data = X if isinstance(X, TensorData) else self._tensor_data(X)
        module = self.net_.module_
        module.eval()
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(data), _INFERENCE_ROWS):
                batch = data.take(slice(start, start + _INFERENCE_ROWS))
                outputs.append(fn(module, batch))
        return torch.cat(outputs).cpu().numpy().astype(dtype, copy=False)

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
        """Per-sample reconstruction loss of validated ``X``, in input units.

        Mean squared error over features for ``loss='mse'`` (residuals scaled
        back to the units of X), binary cross-entropy for ``loss='bce'``.
        """
        criterion = self.net_.criterion_
        scale = None
        if self.scale_ is not None:
            scale = torch.as_tensor(self.scale_, dtype=torch.float32, device=self.net_.device)

        def errors(module, xb):
            output = reconstruction_of(module(xb))
            if self.loss == "bce" or scale is None:
                return criterion.per_sample(output, xb)
            return ((output - xb) * scale).square().mean(dim=1)

        return self._map_batches(X, errors, dtype)

    @staticmethod
    def _output_dtype(X):
        return np.float32 if X.dtype == np.float32 else np.float64

    def _check_fitted_input(self, X):
        check_is_fitted(self)
        return self._validate_X(X, reset=False)

    def __setstate__(self, state):
        # skorch maps a CUDA-trained net to the CPU when CUDA is missing;
        # keep device_ telling where the fitted net now lives.
        super().__setstate__(state)
        if "net_" in state:
            self.device_ = torch.device(self.net_.device)
