"""``VAETransformer``: a variational autoencoder with a log-likelihood score."""

import math
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions, validate_params
from sklearn.utils.validation import check_is_fitted

from ._base import _BaseAutoencoder
from ._callbacks import KLWarmup
from ._losses import NegativeELBO, gaussian_kl, log_importance_weight, log_likelihood
from ._networks import VariationalAutoencoder

# Smallest observation variance of the Gaussian decoder, in the units the
# network sees (standardized units by default): a feature the decoder
# predicts exactly then adds at most 0.5 * log(1e4) ~ 4.6 nats, not infinity.
_MIN_VARIANCE = 1e-4
# How far each training batch moves the decoder's variance toward the batch's
# mean squared residual: about ten batches of memory.
_VARIANCE_MOMENTUM = 0.1
# Seed of the latent draws used by score_samples, so that scores are the same
# on every call and never touch torch's global generator.
_SCORE_SEED = 0
# Fewest antithetic pairs of posterior draws averaged in the ELBO.
_ELBO_PAIRS = 5


def _posterior_draws(n_importance, n_components, *, balanced):
    """Return the standard normal draws ``score_samples`` uses, shape (K, n_components).

    Every row is scored with the same draws, which keeps its score
    independent of its batch and position, and they come from a fixed seed on
    the CPU, so that scores do not depend on the call or the device.

    ``balanced`` (the ELBO) gives ``2 * max(5, n_components)`` draws in
    antithetic pairs, whitened so that their sample mean is exactly 0 and
    their sample covariance exactly the identity: the expected
    log-likelihood term is then exact when it is quadratic in z (a linear
    decoder with a Gaussian likelihood), and far less noisy otherwise.
    Measured on CIFAR10_0 embeddings (n_components=16, default settings),
    the standard deviation of a sample's ELBO between seeds is about 3.3
    nats with one plain draw, 1.0 with ten antithetic draws and 0.04 with
    these 32. The importance-weighted bound needs independent draws, so
    ``balanced=False`` gives plain ones (about 1.5 nats between seeds for
    K=100 there).
    """
    generator = torch.Generator().manual_seed(_SCORE_SEED)
    if not balanced:
        return torch.randn(
            n_importance, n_components, generator=generator, dtype=torch.float64
        )
    n_pairs = max(_ELBO_PAIRS, n_components)
    draws = torch.randn(n_pairs, n_components, generator=generator, dtype=torch.float64)
    cholesky = torch.linalg.cholesky(draws.T @ draws / n_pairs)
    draws = torch.linalg.solve_triangular(cholesky, draws.T, upper=False).T
    return torch.cat([draws, -draws])


class VAETransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, _BaseAutoencoder):
    """Variational autoencoder with a log-likelihood score, trained with PyTorch.

    A probabilistic, nonlinear counterpart of probabilistic
    :class:`~sklearn.decomposition.PCA` and
    :class:`~sklearn.decomposition.FactorAnalysis`: a latent
    ``z ~ N(0, I)`` of ``n_components`` dimensions is decoded into the mean
    of p(x|z), and an encoder gives the Gaussian posterior q(z|x). Training
    maximises the evidence lower bound (ELBO) with Adam.

    ``transform`` returns the posterior mean (deterministic),
    ``inverse_transform`` the decoder's mean in input units, ``sample`` draws
    new data from the model, and ``score_samples`` a lower bound on the
    log-likelihood of each sample **in nats of the units of X**, so that
    :meth:`score` compares directly with ``PCA().score(X)`` and
    ``FactorAnalysis().score(X)``, and
    :class:`~sklearn.model_selection.GridSearchCV` can choose between them
    without labels.

    Parameters
    ----------
    n_components : int, default=2
        Number of latent dimensions.

    hidden_layer_sizes : int or tuple of int, default=(256,)
        Sizes of the encoder's hidden layers, input side first. The decoder
        uses them in reverse order. ``()`` gives linear encoder and decoder
        (with a Gaussian likelihood, a model of the same family as
        :class:`~sklearn.decomposition.FactorAnalysis`). The default is wider
        than :class:`AutoencoderTransformer`'s ``(64, 32)``: on the
        512-feature CIFAR10_0 embeddings the held-out log-likelihood rises
        from about 250 to about 300 nats per sample, with early stopping
        keeping the larger network from overfitting (see
        ``benchmarks/VAE_RESULTS.md``).

    activation : {'relu', 'tanh', 'logistic', 'identity', 'elu', 'gelu', \
'selu', 'leaky_relu'}, default='relu'
        Activation of the hidden layers.

    dropout : float, default=0.0
        Dropout probability after each hidden activation, in training only.

    batch_norm : bool, default=False
        Whether to put batch normalization before each hidden activation.

    likelihood : {'gaussian', 'bernoulli'}, default='gaussian'
        The decoder's distribution p(x|z). ``'gaussian'``: the decoder gives
        the mean and each feature has a learned variance: during training it
        tracks the mean squared residual of that feature (its
        maximum-likelihood value), floored at 1e-4 in the units the network
        sees so that a feature predicted exactly cannot make the likelihood
        infinite. ``'bernoulli'``: the decoder gives the
        probability of each feature being 1; for data in [0, 1], which is not
        standardized. For non-binary data in [0, 1] its score is a
        cross-entropy, not a density.

    beta : float, default=1.0
        Weight of the KL term in the training objective (a beta-VAE when not
        1). ``score_samples`` always reports the ELBO, with weight 1.

    kl_warmup : int, default=0
        Number of epochs over which the KL term's weight rises linearly from
        0 to ``beta`` at the start of training (KL annealing), which helps a
        decoder learn to use the latent code before the prior pulls the
        posterior onto it. 0 disables it. With ``early_stopping=False`` the
        training loss rises while the weight does, so keep it shorter than
        ``n_iter_no_change``.

    n_importance_samples : int, default=1
        Which bound ``score_samples`` reports. 1 gives the ELBO, the
        quantity training maximises (its expected log-likelihood term
        averaged over ``2 * max(5, n_components)`` posterior draws, the KL
        term in closed form); K > 1 the importance-weighted bound of Burda et al.
        (2016) with K independent draws, tighter and closer to the exact
        log-likelihood as K grows, at K times the cost of one draw, and
        noisier per sample than the ELBO's balanced draws.

    learning_rate : float, default=1e-3
        Adam's step size.

    weight_decay : float, default=0.0
        L2 penalty on the weights (Adam's ``weight_decay``).

    batch_size : int or 'auto', default='auto'
        Rows per optimisation step. ``'auto'`` is ``min(256, n_samples)``;
        larger values are clipped to ``n_samples``.

    max_iter : int, default=200
        Maximum number of epochs (passes over the training data).

    tol : float, default=1e-4
        Training stops when the monitored loss (training loss, or the
        validation loss with ``early_stopping``) has not improved by at least
        ``tol`` nats per sample for ``n_iter_no_change`` consecutive epochs.

    n_iter_no_change : int, default=10
        Epochs without improvement allowed before stopping.

    early_stopping : bool, default=True
        Whether to hold out ``validation_fraction`` of the training data,
        stop when its negative ELBO stops improving, and restore the weights
        of the best epoch. On by default, unlike
        :class:`AutoencoderTransformer`: a density model is judged on data it
        has not seen, and a VAE's held-out likelihood peaks long before its
        training likelihood does (on CIFAR10_0, about 305 nats held-out at
        the best epoch, 288 after 200 epochs without stopping).

    validation_fraction : float, default=0.1
        Fraction of the training data held out when ``early_stopping=True``.

    standardize : bool, default=True
        Whether to z-score each feature internally before training.
        Scores are still log-densities of X in its own units: the scaling's
        log-Jacobian, ``-sum(log(scale_))``, is added. Ignored with
        ``likelihood='bernoulli'``.

    device : str or torch.device, default='auto'
        Where the network is trained and run. ``'auto'`` picks CUDA when
        available, else the CPU.

    n_jobs : int, default=None
        Number of CPU threads torch uses in ``fit`` and in inference.
        ``None`` means 1 unless in a :func:`joblib.parallel_config` context;
        ``-1`` means all CPUs. See :class:`AutoencoderTransformer`.

    mixed_precision : bool, default=False
        Whether ``fit`` runs forward passes in bfloat16 under
        :class:`torch.autocast`; the ELBO and the scores stay float32. See
        :class:`AutoencoderTransformer`.

    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling, dropout, the latent draws of
        training and the validation split. Pass an int for reproducible
        results across calls. torch's global random state is left as it was.
        The latent draws of ``score_samples`` do not depend on it: they use
        a fixed seed.

    verbose : int, default=0
        0: silent. 1: a progress bar over epochs (tqdm). 2 and more: one
        line per epoch (epoch, training loss, validation loss, duration), as
        ``MLPRegressor``'s "Iteration N, loss = ..." lines, kept in logs.
        Also the verbosity of the skorch net, under which skorch callbacks
        that print to ``print`` (``EarlyStopping``'s notes) speak.

    callbacks : list of skorch callbacks or (name, callback) tuples, default=None
        Extra skorch callbacks for training: those of
        :mod:`skorch.callbacks` work as on a ``skorch.NeuralNet``
        (per-batch history rows, ``*_best`` flags and every hook are
        recorded and called as there). Each fit trains with fresh copies,
        ``type(cb)(**cb.get_params())``, which share the objects passed as
        the callbacks' parameters (a ``SummaryWriter``, a file name) and
        start with none of their state; the objects passed in are never
        initialized nor modified, and ``clone`` copies them the same way.
        A ``PrintLog`` prints its table whatever ``verbose``. Scoring
        callbacks (``EpochScoring('r2')``) score reconstructions against
        the inputs in the units the network trains in (z-scores with
        ``standardize=True``).

    warm_start : bool, default=False
        When True and already fitted, ``fit`` continues training the fitted
        network (keeping its scaling) for up to ``max_iter`` more epochs.

    optimizer : subclass of torch.optim.Optimizer, default=torch.optim.Adam
        The optimizer class (not an instance), configured with
        ``optimizer__*`` keyword parameters (``optimizer=torch.optim.SGD,
        optimizer__momentum=0.9``), which ``get_params``/``set_params``, and
        so ``GridSearchCV``, see. ``learning_rate`` and ``weight_decay`` give
        its ``lr`` and ``weight_decay``. Adam trains through a fused kernel
        (the fastest path on small networks).

    **optimizer_params : dict
        ``optimizer__*`` parameters of the optimizer.

    Attributes
    ----------
    net_ : AutoencoderNet
        The fitted skorch net; ``net_.history`` holds per-epoch losses, KL
        weights and times (losses there are in the units the network sees).

    module_ : VariationalAutoencoder
        The fitted network (``net_.module_``), with ``encoder`` and
        ``decoder`` sub-modules.

    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit. Defined only when X has feature
        names that are all strings.

    mean_ : ndarray of shape (`n_features_in_`,) or None
        Per-feature mean removed before training (None without scaling).

    scale_ : ndarray of shape (`n_features_in_`,) or None
        Per-feature scale divided out before training (None without scaling).

    loss_curve_ : list of float
        Training objective of each epoch, in nats per sample of X in its own
        units: the negative ELBO (one draw per sample) when ``beta=1`` and
        after the KL warm-up, so ``-loss_curve_[-1]`` is comparable with
        ``score(X_train)``.

    best_loss_ : float
        Smallest value of ``loss_curve_``.

    validation_scores_ : list of float or None
        With ``early_stopping``, the held-out ELBO per sample of each epoch
        (in the units of ``score``; with ``beta != 1``, the objective with
        that weight), else None.

    best_validation_score_ : float or None
        Largest value of ``validation_scores_``, whose weights were restored.

    n_iter_ : int
        Number of epochs run (across warm starts).

    device_ : torch.device
        Device the fitted network lives on.

    See Also
    --------
    AutoencoderTransformer : Deterministic autoencoder.
    sklearn.decomposition.PCA : Probabilistic PCA, with ``score``.
    sklearn.decomposition.FactorAnalysis : Linear-Gaussian latent model with
        per-feature noise.

    References
    ----------
    Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.

    Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance Weighted
    Autoencoders. ICLR.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn_ae import VAETransformer
    >>> X, _ = load_breast_cancer(return_X_y=True)
    >>> vae = VAETransformer(n_components=4, max_iter=5, random_state=0)
    >>> Z = vae.fit_transform(X)  # doctest: +SKIP
    >>> Z.shape  # doctest: +SKIP
    (569, 4)
    >>> vae.score_samples(X[:3]).shape  # doctest: +SKIP
    (3,)
    >>> vae.sample(10, random_state=0).shape  # doctest: +SKIP
    (10, 30)
    """

    _parameter_constraints: dict = {
        **{
            name: rule
            for name, rule in _BaseAutoencoder._parameter_constraints.items()
            if name != "loss"  # `likelihood` takes its place
        },
        "likelihood": [StrOptions({"gaussian", "bernoulli"})],
        "beta": [Interval(Real, 0, None, closed="left")],
        "kl_warmup": [Interval(Integral, 0, None, closed="left")],
        "n_importance_samples": [Interval(Integral, 1, None, closed="left")],
    }

    # The base's __init__ is not called: it would also set `loss`, which this
    # estimator does not have, and scikit-learn requires __init__ to set
    # exactly the parameters.
    def __init__(
        self,
        n_components=2,
        *,
        hidden_layer_sizes=(256,),
        activation="relu",
        dropout=0.0,
        batch_norm=False,
        likelihood="gaussian",
        beta=1.0,
        kl_warmup=0,
        n_importance_samples=1,
        learning_rate=1e-3,
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
        optimizer=torch.optim.Adam,
        **optimizer_params,
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.likelihood = likelihood
        self.beta = beta
        self.kl_warmup = kl_warmup
        self.n_importance_samples = n_importance_samples
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
        self._extra_params = dict(optimizer_params)

    # ------------------------------------------------------------------ hooks
    def _build_module(self, n_features):
        return VariationalAutoencoder(
            n_features,
            self.n_components,
            self._hidden_sizes(),
            likelihood=self.likelihood,
            min_variance=_MIN_VARIANCE,
            variance_momentum=_VARIANCE_MOMENTUM,
            activation=self.activation,
            dropout=self.dropout,
            batch_norm=self.batch_norm,
        )

    def _build_criterion(self):
        return NegativeELBO(self.likelihood, beta=self.beta)

    def _extra_callbacks(self):
        return [("kl_warmup", KLWarmup(self.kl_warmup))]

    def _scales_input(self):
        return self.standardize and self.likelihood == "gaussian"

    def _check_input_range(self, X):
        if self.likelihood != "bernoulli":
            return
        values = X.data if hasattr(X, "tocsr") else X
        if values.size and (values.min() < 0 or values.max() > 1):
            raise ValueError(
                "likelihood='bernoulli' needs every value of X in [0, 1]; got "
                f"values in [{values.min():.4g}, {values.max():.4g}]. Scale X "
                "to [0, 1] (e.g. MinMaxScaler) or use likelihood='gaussian'."
            )

    def _log_jacobian(self):
        """log |d x_standardized / d x|: converts log-densities to the units of X."""
        if self.scale_ is None:
            return 0.0
        return -float(np.sum(np.log(self.scale_)))

    def _set_history_attributes(self):
        # The engine records losses in the network's (standardized) units.
        super()._set_history_attributes()
        shift = self._log_jacobian()
        self.loss_curve_ = [v - shift for v in self.loss_curve_]
        self.best_loss_ = min(self.loss_curve_)
        if self.validation_scores_ is not None:
            self.validation_scores_ = [v + shift for v in self.validation_scores_]
            self.best_validation_score_ = max(self.validation_scores_)

    # -------------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the variational autoencoder to X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data. Sparse input is densified one batch at a time.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        return self._fit(X)

    # -------------------------------------------------------------- inference
    def transform(self, X):
        """Return the posterior mean of the latent code of each sample.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
            Means of q(z|x), float32 for float32 input, else float64.
        """
        X = self._check_fitted_input(X)
        return self._map_batches(
            X, lambda module, xb: module.encode(xb)[0], self._output_dtype(X)
        )

    def _decoder_means(self, Z, dtype):
        """Decoder means for latent codes ``Z`` (validated), in network units."""
        criterion = self.net_.criterion_
        return self._map_codes(
            Z, lambda module, zb: criterion.mean(module.decode(zb)), dtype
        )

    def inverse_transform(self, X):
        """Return the decoder's mean for latent codes, in input units.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Latent codes, e.g. from :meth:`transform`.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features_in_)
            Mean of p(x|z) for each code.
        """
        Z = self._check_fitted_codes(X)
        means = self._decoder_means(Z, np.float64)
        return self._undo_scaling(means).astype(self._output_dtype(Z), copy=False)

    def _undo_scaling(self, X):
        if self.scale_ is not None:
            X = X * self.scale_
        if self.mean_ is not None:
            X = X + self.mean_
        return X

    @validate_params(
        {
            "n_samples": [Interval(Integral, 1, None, closed="left")],
            "random_state": ["random_state"],
        },
        prefer_skip_nested_validation=True,
    )
    def sample(self, n_samples=1, random_state=None):
        """Draw samples from the fitted model, in input units.

        Each sample is ``z ~ N(0, I)`` decoded into p(x|z), then drawn from
        p(x|z): the decoder's mean plus Gaussian noise of the learned
        per-feature variance, or 0/1 values with the decoder's probabilities
        for ``likelihood='bernoulli'``. The observation noise is part of the
        model, and without it samples would understate the data's
        variance. For the noise-free means, use
        ``inverse_transform(rng.standard_normal((n_samples, n_components)))``.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples to draw.

        random_state : int, RandomState instance or None, default=None
            Seeds the draws (numpy's generator; torch's is not used).

        Returns
        -------
        X : ndarray of shape (n_samples, n_features_in_)
            Samples, float64.
        """
        check_is_fitted(self)
        rng = check_random_state(random_state)
        Z = rng.standard_normal((n_samples, self.n_components))
        means = self._decoder_means(Z, np.float64)
        if self.likelihood == "bernoulli":
            return (rng.uniform(size=means.shape) < means).astype(np.float64)
        log_var = self.module_.observation_log_var().detach().cpu().numpy()
        noise = rng.standard_normal(means.shape)
        return self._undo_scaling(means + np.exp(0.5 * log_var.astype(np.float64)) * noise)

    def score_samples(self, X):
        """Return a lower bound on the log-likelihood of each sample, in nats.

        The ELBO (``n_importance_samples=1``) or the importance-weighted
        bound with ``n_importance_samples`` draws (see that parameter), as a
        log-density of X in
        its own units (the log-Jacobian of the internal scaling is included).
        Higher is more typical of the training data. The latent draws come
        from a fixed seed, so repeated calls return the same values and each
        sample's score does not depend on the other rows.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Log-likelihood bound of each sample.
        """
        X = self._check_fitted_input(X)
        dtype = self._output_dtype(X)
        n_importance = self.n_importance_samples
        likelihood = self.likelihood
        noise = _posterior_draws(
            n_importance, self.n_components, balanced=n_importance == 1
        ).to(self.net_.device)
        n_draws = len(noise)
        # Scores sum hundreds of terms; in float64 (``_map_batches`` runs a
        # float64 copy of the module for float64 output) they are also the
        # same to the last digits whether a row is scored alone or in a batch.

        def bound(module, xb):
            noise_ = noise.to(xb.dtype)
            z_mean, z_log_var = module.encode(xb)
            if n_importance == 1:
                expected_log_likelihood = torch.stack(
                    [
                        log_likelihood(module.draw(z_mean, z_log_var, eps), xb, likelihood)
                        for eps in noise_
                    ]
                ).mean(dim=0)
                return expected_log_likelihood - gaussian_kl(z_mean, z_log_var)
            log_weights = torch.stack(
                [
                    log_importance_weight(
                        module.draw(z_mean, z_log_var, eps), xb, likelihood
                    )
                    for eps in noise_
                ]
            )
            return torch.logsumexp(log_weights, dim=0) - math.log(n_draws)

        scores = self._map_batches(X, bound, np.float64) + self._log_jacobian()
        return scores.astype(dtype, copy=False)

    def score(self, X, y=None):
        """Return the mean log-likelihood bound of X, in nats per sample.

        Comparable with ``PCA().score(X)`` and ``FactorAnalysis().score(X)``;
        higher is better.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to score.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        score : float
            Mean of :meth:`score_samples`.
        """
        return float(np.mean(self.score_samples(X)))

    @property
    def _n_features_out(self):
        return self.n_components

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
