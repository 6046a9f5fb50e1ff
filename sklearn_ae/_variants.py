"""The plain (non-variational) autoencoder and its family of variants.

Denoising, sparse, tied, convolutional, sequence and user-given networks, and
greedy layer-wise pretraining, as parameters of one base class that
:class:`AutoencoderTransformer` builds on. The torch side of each variant is in
``_networks.py``, ``_losses.py`` and ``_pretraining.py``.
"""

import copy
from numbers import Integral, Real

import numpy as np
import scipy.linalg
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import _BaseAutoencoder, _unit_interval_breach
from ._custom import _NETWORK_PREFIXES, _CustomNetworksMixin, run_network
from ._losses import ReconstructionLoss
from ._networks import Autoencoder, ConvAutoencoder, LSTMAutoencoder, MLPAutoencoder
from ._pretraining import pretrain_layerwise
from ._shapes import as_ints, check_conv_params, check_input_shape, flatten_shaped

# Code activations, with what the PCA start needs of each: the value and
# slope at 0 (the start puts the scores where the activation is close to
# linear) and whether the scores are shifted by 3 standard deviations so
# that they are positive (relu is the identity there).
_CODE_ACTIVATIONS = {
    "identity": (0.0, 1.0, False),
    "logistic": (0.5, 0.25, False),
    "tanh": (0.0, 1.0, False),
    "relu": (0.0, 1.0, True),
}

# The PCA start reads at most this many multiply-adds' worth of rows (about
# a tenth of a second in float64 on one core): rows * n_features**2 for the
# covariance. Below it (all of most data sets) the start is PCA on every
# training row; above it, on evenly spaced rows, at least _PCA_MIN_ROWS; never
# more than _PCA_MAX_ROWS. Rows are read in blocks of _PCA_BLOCK_VALUES values.
_PCA_BUDGET = 2e9
_PCA_MIN_ROWS = 2000
_PCA_MAX_ROWS = 50_000
_PCA_BLOCK_VALUES = 2**22


def _leading_eigenpairs(covariance, n_components):
    """The ``n_components`` largest eigenvalues of a symmetric ``covariance``
    (float64 ndarray), largest first, and their eigenvectors as rows.

    LAPACK's ``syevr`` computes only the pairs asked for: on 784 features,
    16 pairs take about a third of the time of the full ``eigh`` (0.03
    against 0.09 s on one core).
    """
    d = covariance.shape[0]
    k = min(n_components, d)
    values, vectors = scipy.linalg.eigh(
        covariance, subset_by_index=[d - k, d - 1], driver="evr",
        overwrite_a=True, check_finite=False,
    )
    return values[::-1], vectors[:, ::-1].T


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
        values, axes = _leading_eigenpairs(covariance.cpu().numpy(), n_components)
    else:
        rows = data.take(index).to(torch.float64)
        mean = rows.mean(dim=0)
        _, singular, axes = torch.linalg.svd(rows - mean, full_matrices=False)
        values = singular.square() / n_rows
        values, axes = values.cpu().numpy(), axes.cpu().numpy()
    values = np.clip(values[:n_components], 0, None)
    axes = axes[:n_components]
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    axes = axes * np.where(signs == 0, 1.0, signs)[:, None]
    components = np.zeros((n_components, d))
    variances = np.zeros(n_components)
    components[: len(axes)] = axes
    variances[: len(values)] = values
    return mean.cpu().numpy(), components, variances


class _BaseVariantAutoencoder(_CustomNetworksMixin, _BaseAutoencoder):
    """An autoencoder trained on reconstruction loss, with the family's variants.

    Not for direct use.
    """

    # encoder__*/decoder__*: parameters of user-given networks, as
    # skorch's module__*; stored and exposed by the base like optimizer__*.
    _param_prefixes = _BaseAutoencoder._param_prefixes + _NETWORK_PREFIXES
    # The PCA start is replaced only by an epoch better on significantly more
    # than half of the validation rows (one-sided sign test at 5%).
    _start_significance = 0.05

    _parameter_constraints: dict = {
        **_BaseAutoencoder._parameter_constraints,
        "noise": [StrOptions({"gaussian", "mask"}), callable, None],
        "noise_level": [Interval(Real, 0, None, closed="left")],
        "tied_weights": ["boolean"],
        "sparsity": [StrOptions({"kl", "l1"}), None],
        "sparsity_weight": [Interval(Real, 0, None, closed="left")],
        "sparsity_target": [Interval(Real, 0, 1, closed="neither")],
        "layerwise_pretraining": ["boolean"],
        "pretraining_max_iter": [Interval(Integral, 1, None, closed="left")],
        "input_shape": [tuple, list, None],
        "code_activation": [StrOptions({"auto", *_CODE_ACTIVATIONS})],
        "output_activation": [StrOptions({"identity", "logistic"})],
        "conv_kernel_size": [Interval(Integral, 1, None, closed="left"), tuple, list],
        "conv_strides": [Interval(Integral, 1, None, closed="left"), tuple, list],
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
        code_activation="auto",
        output_activation="identity",
        conv_kernel_size=3,
        conv_strides=2,
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
        self.code_activation = code_activation
        self.output_activation = output_activation
        self.conv_kernel_size = conv_kernel_size
        self.conv_strides = conv_strides
        self.encoder = encoder
        self.decoder = decoder

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
                kernel_size=as_ints(self.conv_kernel_size),
                strides=as_ints(self.conv_strides),
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
            code_activation=self._code_activation(),
            output_activation=self.output_activation,
            return_code=self.sparsity is not None,
        )

    def _code_activation(self):
        """The code activation that ``code_activation`` names; ``'auto'`` is
        ``'logistic'`` with ``sparsity='kl'`` (which compares activation
        rates, so the code must be in (0, 1)), else ``'identity'``."""
        if self.code_activation == "auto":
            return "logistic" if self.sparsity == "kl" else "identity"
        return self.code_activation

    # ------------------------------------------------------ input validation
    def _scales_input(self):
        """Whether inputs are z-scored inside the estimator: not with
        ``loss='bce'`` or ``output_activation='logistic'``, whose
        reconstructions are in (0, 1) and are compared with X as it is."""
        return super()._scales_input() and self.output_activation == "identity"

    def _check_input_range(self, X):
        super()._check_input_range(X)
        if self.output_activation != "logistic":
            return
        breach = _unit_interval_breach(X)
        if breach is not None:
            raise ValueError(
                "output_activation='logistic' reconstructs values in (0, 1), but X "
                f"has values in {breach}. Scale X "
                "to [0, 1] (e.g. MinMaxScaler) or use output_activation='identity'."
            )

    def _validate_X(self, X, *, reset):
        """Validate X, accepting ``(n_samples, *input_shape)`` arrays as flat rows."""
        return super()._validate_X(self._flatten_shaped(X), reset=reset)

    def _flatten_shaped(self, X):
        # As fitted: set_params(input_shape=...) without a new fit must not
        # change what transform and score accept.
        return flatten_shaped(X, self._fitted_param("input_shape"))

    def _check_network_shapes(self, module, n_features):
        """Run two rows through user-given networks and check the shapes.

        This also initializes lazy layers before the optimizer is built.
        """
        module.eval()
        with torch.no_grad():
            # (the encoder itself: a code activation would fail on an output
            # that is not a tensor before run_network could name the encoder)
            code = module.code_activation(
                run_network(module.encoder, torch.zeros(2, n_features), "encoder")
            )
            if tuple(code.shape) != (2, self.n_components):
                raise ValueError(
                    f"encoder must map (n_samples, {n_features}) to (n_samples, "
                    f"n_components={self.n_components}), got shape "
                    f"{tuple(code.shape)} for 2 samples."
                )
            output = run_network(module.decoder, code, "decoder")
            if tuple(output.shape) != (2, n_features):
                raise ValueError(
                    f"decoder must map (n_samples, n_components={self.n_components}) "
                    f"back to (n_samples, {n_features}), got shape "
                    f"{tuple(output.shape)} for 2 samples."
                )
        module.train()

    _loss_settings = ("sparsity_weight", "sparsity_target")
    _loss_kinds = {"kind": "loss", "sparsity": "sparsity"}

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
        check_input_shape(shape, n_features, self._hidden_sizes(), self.batch_norm)
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

    def _check_variant_params(self):
        """Check the combinations of variant parameters that constraints cannot."""
        self._check_network_options()
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
        if self.loss == "bce" and self.output_activation != "identity":
            raise ValueError(
                "loss='bce' reads the decoder's outputs as logits and already "
                "reconstructs through a sigmoid; output_activation="
                f"{self.output_activation!r} would apply a second one. Use "
                "output_activation='identity' with loss='bce', or "
                "output_activation='logistic' with loss='mse'."
            )
        if self.sparsity == "kl" and self._code_activation() != "logistic":
            raise ValueError(
                "sparsity='kl' compares each code unit's mean activation with "
                "sparsity_target, so the code must be in (0, 1): use "
                f"code_activation='auto' or 'logistic', got {self.code_activation!r}."
            )
        check_conv_params(
            self.conv_kernel_size, self.conv_strides, self.input_shape,
            len(self._hidden_sizes()),
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

        Pretraining and the PCA start use only the training part, so that
        the rows held out for early stopping stay unseen. To replace PCA,
        the best epoch must beat that start on significantly more than half
        of the validation rows (a sign test: rows neither has seen), and
        must also have a lower mean validation loss than the PCA of every
        row (which has seen them: an advantage to PCA). Otherwise the
        network comes out as the PCA of every row, the one a user would fit
        on X (:meth:`EarlyStoppingFromStart.restore_if_start_wins`). Why
        both: started from and compared with the PCA of every row, training
        on some sets (24_mnist, digits with other seeds) first moved away
        from its validation loss and stopped, although longer training
        ended at half PCA's error on new rows; compared only with the PCA of
        the training part, 24_mnist's 300-row sample (k=25 from 189 rows,
        where 10% more rows make a better PCA) replaced PCA by a network
        1.04-1.09x PCA's error on new rows.
        """
        curves = None
        if self.layerwise_pretraining:
            train_data = net.get_split_datasets(data)[0]
            # The optimizer of fine-tuning, class and options.
            optimizer, optimizer_options = self._net_optimizer(device)
            curves = pretrain_layerwise(
                net.module_,
                train_data,
                loss=self.loss,
                max_epochs=self.pretraining_max_iter,
                batch_size=batch_size,
                lr=self.learning_rate,
                device=device,
                optimizer=optimizer,
                optimizer_options=optimizer_options,
                mixed_precision=self.mixed_precision,
            )
        if net.module_.has_linear_path:
            if net.train_split is None:
                self._start_from_pca(net.module_, data)
            else:
                # PCA of every row, restored if training does not beat the
                # start; then the start itself, PCA of the training part.
                self._start_from_pca(net.module_, data)
                full = copy.deepcopy(net.module_.state_dict())
                self._start_from_pca(net.module_, net.get_split_datasets(data)[0])
                dict(net.callbacks_)["early_stopping"].restore_if_start_wins(
                    full, copy.deepcopy(net.module_.state_dict())
                )
        return {"pretraining_loss_curves_": curves}

    def _start_from_pca(self, module, data):
        """Set ``module``'s linear paths to PCA's solution on ``data``
        (rows as the network sees them) and silence its nonlinear branches.

        The encoder's linear path gives PCA's scores and the decoder's the
        PCA reconstruction. Through a sigmoid or tanh code
        (``code_activation``) each score is scaled into the activation's
        near-linear range (one standard deviation to half a unit; with
        ``tied_weights`` a fixed factor, the square root of the slope at 0)
        and the decoder undoes the scaling, so the start is PCA up to the
        activation's curvature; through relu each score is shifted by three
        standard deviations and shifted back by the decoder. With
        ``output_activation='logistic'`` the decoder holds PCA's
        reconstruction to first order around each feature's mean. With
        ``loss='bce'`` the decoder starts from each feature's mean rate (the
        logit of its mean), the best reconstruction that ignores the code;
        a tied decoder, whose weight is the encoder's transpose, adds PCA's
        reconstruction of the row's deviation from the mean to that logit.
        """
        k = self.n_components
        mean, components, variances = principal_axes(data, k)
        code_at_zero, slope, shifted = _CODE_ACTIVATIONS[self._code_activation()]
        std = np.sqrt(np.where(variances > 0, variances, 0.0))
        if slope == 1.0 and code_at_zero == 0.0 and self._code_activation() != "tanh":
            factor = np.ones(k)
        elif self.tied_weights:
            # The decoder's weight is the encoder's transpose: 1/f = f/slope.
            factor = np.full(k, np.sqrt(slope))
        else:
            # Scores of about one standard deviation in half a unit.
            factor = 2 * np.where(std > 0, std, 1.0)
        shift = 3 * std / factor if shifted else np.zeros(k)
        # codes u = f(scores / factor + shift) ~ code_at_zero + slope * (...);
        # the decoder maps them back to scores and then to PCA's reconstruction.
        encoder_weight = components / factor[:, None]
        encoder_bias = -encoder_weight @ mean + shift
        decoder_weight = components.T * (factor / slope)[None, :]
        decoder_bias = mean - decoder_weight @ (code_at_zero + slope * shift)
        if self.loss == "bce":
            decoder_weight = np.zeros_like(decoder_weight)
            rate = np.clip(mean, 1e-3, 1 - 1e-3)
            decoder_bias = np.log(rate / (1 - rate))
        elif self.output_activation == "logistic":
            # First order around each feature's mean m: sigmoid(logit(m) + d)
            # ~ m + m (1 - m) d, so the pre-activation carries the PCA
            # reconstruction's deviation from m divided by m (1 - m). A tied
            # decoder keeps its weight unscaled (a shrunken start).
            rate = np.clip(mean, 1e-3, 1 - 1e-3)
            gain = 1 / (rate * (1 - rate))
            decoder_weight = decoder_weight * gain[:, None]
            decoder_bias = np.log(rate / (1 - rate)) + gain * (decoder_bias - mean)
        module.start_from_linear(encoder_weight, encoder_bias, decoder_weight, decoder_bias)

