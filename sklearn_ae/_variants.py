"""The plain (non-variational) autoencoder and its family of variants.

Denoising, sparse, tied, convolutional, sequence and user-given networks, and
greedy layer-wise pretraining, as parameters of one base class that
:class:`AutoencoderTransformer` builds on. The torch side of each variant is in
``_networks.py``, ``_losses.py`` and ``_pretraining.py``.
"""

import copy
import inspect
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import _BaseAutoencoder
from ._losses import ReconstructionLoss
from ._networks import Autoencoder, ConvAutoencoder, LSTMAutoencoder, MLPAutoencoder
from ._pretraining import pretrain_layerwise

# Parameters of user-given networks, passed through in skorch's style.
_NETWORK_PREFIXES = ("encoder__", "decoder__")


def _run_network(fn, x, role):
    try:
        return fn(x)
    except RuntimeError as exc:
        raise ValueError(
            f"{role} failed on a batch of shape {tuple(x.shape)}: {exc}"
        ) from exc


# The PCA start reads at most this many multiply-adds' worth of rows (about
# a tenth of a second in float64 on one core): rows * n_features**2 for the
# covariance. Below it (all of most data sets) the start is PCA on every
# training row; above it, on evenly spaced rows, at least _PCA_MIN_ROWS; never
# more than _PCA_MAX_ROWS. Rows are read in blocks of _PCA_BLOCK_VALUES values.
_PCA_BUDGET = 2e9
_PCA_MIN_ROWS = 2000
_PCA_MAX_ROWS = 50_000
_PCA_BLOCK_VALUES = 2**22


def principal_axes(data, n_components):
    """PCA of the rows of a ``TensorData``, in float64.

    Returns ``(mean, components, variances)``: the rows' mean, the first
    ``n_components`` principal axes as rows (signs as in scikit-learn's
    ``svd_flip``: each axis's largest absolute entry is positive; rows of
    zeros beyond the data's rank) and the variance along each. From the
    covariance's eigendecomposition when there are more rows than features,
    else from the SVD of the centred rows; on at most ``_PCA_BUDGET /
    n_features**2`` rows (evenly spaced, at least ``_PCA_MIN_ROWS``, at most
    ``_PCA_MAX_ROWS``).
    """
    n, d = len(data), data.n_features
    n_rows = min(n, _PCA_MAX_ROWS, max(_PCA_MIN_ROWS, int(_PCA_BUDGET / d**2)))
    if n_rows <= d:
        # the SVD path holds the rows at once: at most _PCA_BLOCK_VALUES
        n_rows = min(n_rows, max(100, _PCA_BLOCK_VALUES // d))
    block_rows = max(1, _PCA_BLOCK_VALUES // d)
    index = np.arange(n) if n_rows == n else np.linspace(0, n - 1, n_rows).round()
    index = torch.as_tensor(index.astype(np.int64))
    if data.resident:
        index = index.to(data.device)
    else:
        index = index.numpy()
    if n_rows > d:
        # Covariance accumulated over blocks of rows (sparse rows are
        # densified a block at a time), centred at the first block's mean
        # so that the sums do not cancel.
        shift = None
        total = gram = None
        for start in range(0, n_rows, block_rows):
            block = data.take(index[start : start + block_rows]).to(torch.float64)
            if shift is None:
                shift = block.mean(dim=0)
                total = torch.zeros_like(shift)
                gram = torch.zeros(d, d, dtype=torch.float64, device=block.device)
            block = block - shift
            total += block.sum(dim=0)
            gram += block.T @ block
        offset = total / n_rows
        mean = shift + offset
        covariance = gram / n_rows - torch.outer(offset, offset)
        values, vectors = torch.linalg.eigh(covariance)
        values, axes = values.flip(0), vectors.flip(1).T
    else:
        rows = data.take(index).to(torch.float64)
        mean = rows.mean(dim=0)
        _, singular, axes = torch.linalg.svd(rows - mean, full_matrices=False)
        values = singular.square() / n_rows
    values = values.clamp_min(0)[:n_components].cpu().numpy()
    axes = axes[:n_components].cpu().numpy()
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    axes = axes * np.where(signs == 0, 1.0, signs)[:, None]
    components = np.zeros((n_components, d))
    variances = np.zeros(n_components)
    components[: len(axes)] = axes
    variances[: len(values)] = values
    return mean.cpu().numpy(), components, variances


class _BaseVariantAutoencoder(_BaseAutoencoder):
    """An autoencoder trained on reconstruction loss, with the family's variants.

    Not for direct use.
    """

    # encoder__*/decoder__*: parameters of user-given networks, as
    # skorch's module__*; stored and exposed by the base like optimizer__*.
    _param_prefixes = _BaseAutoencoder._param_prefixes + _NETWORK_PREFIXES

    _parameter_constraints: dict = {
        **_BaseAutoencoder._parameter_constraints,
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
        learning_rate=3e-3,
        weight_decay=0.0,
        batch_size="auto",
        max_iter=200,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=True,
        validation_fraction=0.1,
        standardize=True,
        device="auto",
        n_jobs=None,
        mixed_precision=False,
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
        optimizer=torch.optim.Adam,
        **network_params,
    ):
        super().__init__(
            n_components,
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            dropout=dropout,
            batch_norm=batch_norm,
            loss=loss,
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            batch_size=batch_size,
            max_iter=max_iter,
            tol=tol,
            n_iter_no_change=n_iter_no_change,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            standardize=standardize,
            device=device,
            n_jobs=n_jobs,
            mixed_precision=mixed_precision,
            random_state=random_state,
            verbose=verbose,
            callbacks=callbacks,
            warm_start=warm_start,
            optimizer=optimizer,
            **network_params,
        )
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

    # ------------------------------------------------- network parameters
    def _network_params(self, role):
        """Return the ``role__*`` parameters ('encoder' or 'decoder'), unprefixed."""
        prefix = role + "__"
        return {
            k[len(prefix) :]: v
            for k, v in vars(self).get("_extra_params", {}).items()
            if k.startswith(prefix)
        }

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

    def _check_fit_params(self, n_features):
        self._check_variant_params()
        self._check_input_shape(n_features)

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
            if not name.startswith(self._param_prefixes):
                raise ValueError(
                    f"{name!r} is not a parameter of {type(self).__name__}; extra "
                    "keyword parameters must be encoder__* or decoder__* "
                    "parameters of custom networks, or optimizer__* parameters."
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

    def _before_training(self, net, data, batch_size, device):
        """Greedy layer-wise pretraining of ``net``'s module (if asked), then
        the PCA start of its linear paths, in place.

        Pretraining uses only the training part, so that the rows held out
        for early stopping stay unseen. The PCA start uses every row: it is
        the PCA a user would fit on X, and training has to beat it on the
        validation rows (which it has seen, to its advantage) to replace it.
        On small data sets a PCA fitted on 10% fewer rows would be a worse
        start than the PCA it is compared with.
        """
        curves = None
        if self.layerwise_pretraining:
            train_data = net.get_split_datasets(data)[0]
            curves = pretrain_layerwise(
                net.module_,
                train_data,
                loss=self.loss,
                max_epochs=self.pretraining_max_iter,
                batch_size=batch_size,
                lr=self.learning_rate,
                device=device,
                optimizer_options=self._optimizer_options(device),
                mixed_precision=self.mixed_precision,
            )
        if net.module_.has_linear_path:
            self._start_from_pca(net.module_, data)
        return {"pretraining_loss_curves_": curves}

    def _start_from_pca(self, module, data):
        """Set ``module``'s linear paths to PCA's solution on ``data``
        (rows as the network sees them) and silence its nonlinear branches.

        The encoder's linear path gives PCA's scores and the decoder's the
        PCA reconstruction. Codes through a sigmoid (``sparsity='kl'``) get
        each score scaled into the sigmoid's near-linear range and the
        decoder the inverse scaling, so the start is PCA up to the sigmoid's
        curvature; with ``loss='bce'`` the decoder starts from each
        feature's mean rate (the logit of its mean), the best reconstruction
        that ignores the code, since a linear map of the data is no logit.
        """
        k = self.n_components
        mean, components, variances = principal_axes(data, k)
        encoder_weight = components
        decoder_weight = components.T.copy()
        if self.sparsity == "kl":
            if self.tied_weights:
                # The decoder's weight is the encoder's transpose: 1/s = 4s.
                factor = np.full(k, 0.5)
            else:
                # Scores of about one standard deviation in half a logit unit.
                factor = 2 * np.sqrt(np.where(variances > 0, variances, 1.0))
            encoder_weight = components / factor[:, None]
            decoder_weight = decoder_weight * (4 * factor)[None, :]
            decoder_bias = mean - decoder_weight @ np.full(k, 0.5)
        else:
            decoder_bias = mean
        encoder_bias = -encoder_weight @ mean
        if self.loss == "bce":
            decoder_weight = np.zeros_like(decoder_weight)
            rate = np.clip(mean, 1e-3, 1 - 1e-3)
            decoder_bias = np.log(rate / (1 - rate))
        module.start_from_linear(encoder_weight, encoder_bias, decoder_weight, decoder_bias)
