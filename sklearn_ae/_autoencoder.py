"""``AutoencoderTransformer``: a nonlinear, trainable stand-in for ``PCA``."""

import numpy as np
from sklearn.base import (
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)

from ._variants import _BaseVariantAutoencoder


class AutoencoderTransformer(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, _BaseVariantAutoencoder
):
    """Autoencoder for dimensionality reduction, trained with PyTorch.

    An encoder network maps each sample to ``n_components`` latent values
    (``transform``) and a decoder that mirrors it maps them back
    (``inverse_transform``). Training minimises the reconstruction loss with
    Adam, with the stopping rules of :class:`~sklearn.neural_network.MLPRegressor`.
    It drops into a :class:`~sklearn.pipeline.Pipeline` wherever
    :class:`~sklearn.decomposition.PCA` does.

    The autoencoder contains PCA and starts as PCA. Encoder and decoder are
    each a linear map plus a nonlinear branch through the hidden layers;
    before the first training step the linear maps hold PCA's solution on
    the training rows as the network sees them (after ``standardize``) and
    the branches' output layers are zero, so that ``transform`` returns
    PCA's scores and ``inverse_transform(transform(X))`` PCA's
    reconstruction. Training moves on from there, and with
    ``early_stopping`` (the default) the start is a candidate like every
    epoch: if no epoch beats PCA on the validation rows, ``fit`` returns
    PCA. Where a nonlinear code helps, the branches learn it.

    Parameters
    ----------
    n_components : int, default=2
        Number of latent dimensions (the code size).

    hidden_layer_sizes : int or tuple of int, default=(64, 32)
        Sizes of the nonlinear branch's hidden layers in the encoder, input
        side first. The decoder uses them in reverse order. ``()`` leaves
        only the linear maps: with ``activation='identity'`` (which then has
        no layer to act on) a linear autoencoder, which starts at PCA's
        solution and stays there up to the optimizer's noise.

    activation : {'relu', 'tanh', 'logistic', 'identity', 'elu', 'gelu', \
'selu', 'leaky_relu'}, default='relu'
        Activation of the hidden layers. The code and output layers are
        linear.

    dropout : float, default=0.0
        Dropout probability after each hidden activation, in training only.

    batch_norm : bool, default=False
        Whether to put batch normalization before each hidden activation.

    loss : {'mse', 'bce'}, default='mse'
        Reconstruction loss. ``'bce'`` (binary cross-entropy, the decoder
        output read as logits) is for data in [0, 1] and needs no scaling.

    learning_rate : float, default=1e-3
        Adam's step size.

    weight_decay : float, default=0.0
        L2 penalty on the weights (Adam's ``weight_decay``).

    batch_size : int or 'auto', default='auto'
        Rows per optimisation step. ``'auto'`` is ``min(256, n_samples)``:
        at 256 rows a step of a small tabular network is still dominated by
        arithmetic rather than by per-step overhead (with batches of 32 an
        epoch takes several times longer, see ``benchmarks/RESULTS.md``),
        while an epoch still takes many steps. Larger values are clipped to
        ``n_samples``.

    max_iter : int, default=200
        Maximum number of epochs (passes over the training data).

    tol : float, default=1e-4
        Training stops when the monitored loss (training loss, or the
        validation loss with ``early_stopping``) has not improved by at least
        ``tol`` for ``n_iter_no_change`` consecutive epochs.

    n_iter_no_change : int, default=10
        Epochs without improvement allowed before stopping. With
        ``early_stopping``, at least as many epochs as make 100 optimizer
        steps: on a small data set an epoch is one or two steps, and 10 of
        them say nothing yet about a network that started at PCA.

    early_stopping : bool, default=True
        Whether to hold out ``validation_fraction`` of the training data,
        stop when its loss stops improving, and restore the weights of the
        best epoch. The network before the first epoch (PCA, see above)
        counts as epoch 0: when no epoch beats it by ``tol``, it is what
        ``fit`` returns, so the held-out error is not meant to end up worse
        than PCA's. Needs at least 2 samples; set it to False to train on
        every row for a fixed schedule.

    validation_fraction : float, default=0.1
        Fraction of the training data held out when ``early_stopping=True``.

    standardize : bool, default=True
        Whether to z-score each feature internally before training, so that
        features in large units do not dominate the loss. ``transform``
        applies the same scaling, ``inverse_transform`` undoes it, and scores
        are reported in the units of X. Ignored with ``loss='bce'``. Unlike
        :class:`~sklearn.preprocessing.StandardScaler`, no feature's scale
        is below a tenth of the median feature's standard deviation: a
        feature that is almost constant in the training data (a border
        pixel that is nearly always 0) would otherwise get a tiny scale, and
        a rare value at ``transform`` time a z-score of hundreds that
        dominates the loss.

    device : str or torch.device, default='auto'
        Where the network is trained and run. ``'auto'`` picks CUDA when
        available, else the CPU.

    n_jobs : int, default=None
        Number of CPU threads torch uses in ``fit`` and in inference.
        ``None`` means 1 unless in a :func:`joblib.parallel_config` context;
        ``-1`` means all CPUs. One thread is the fastest setting for small
        tabular networks, whose steps are too short to split, and it stays
        fast when other processes hold the other cores (with more threads
        than free cores every step waits for a busy one: on a 2-core
        machine shared with other jobs, training ran 10 to 50 times slower
        with 2 threads than with 1). More threads can pay off for wide
        layers and large batches on an otherwise idle machine. torch's own
        thread setting is restored afterwards.

    mixed_precision : bool, default=False
        Whether ``fit`` runs the network's forward passes in bfloat16 under
        :class:`torch.autocast` (matrix products in bfloat16; weights,
        gradients, optimizer state and the loss in float32). It pays off
        where wide layers dominate and the device has bfloat16 matrix
        units (recent GPUs, CPUs with AMX), and slows down narrow networks,
        whose casts cost more than they save: see the ``sklearn_ae bf16``
        rows of ``benchmarks/RESULTS.md``. The fitted weights differ from a
        float32 fit at bfloat16's precision (about 3 significant digits per
        product). ``transform``, ``inverse_transform`` and the scores always
        run in full precision.

    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling, dropout and the validation
        split. Pass an int for reproducible results across calls. torch's
        global random state is left as it was.

    verbose : int, default=0
        0: silent. 1: a progress bar over epochs (tqdm). 2 and more: one
        line per epoch (epoch, training loss, validation loss, duration), as
        ``MLPRegressor``'s "Iteration N, loss = ..." lines, kept in logs.
        Also the verbosity of the skorch net, under which skorch callbacks
        that print to ``print`` (``EarlyStopping``'s notes) speak.

    callbacks : list of skorch callbacks or (name, callback) tuples, default=None
        Extra skorch callbacks for training, e.g.
        :class:`skorch.callbacks.LRScheduler` or
        :class:`skorch.callbacks.Checkpoint`: those of
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

    noise : {'gaussian', 'mask'} or None, default=None
        Corruption of the training inputs, for a denoising autoencoder: the
        network reconstructs the clean row from a corrupted one.
        ``'gaussian'`` adds noise of standard deviation ``noise_level``;
        ``'mask'`` sets each value to zero with probability ``noise_level``.
        Applied in training only (validation loss, ``transform`` and scores
        use clean inputs), to the values the network sees (z-scored when
        ``standardize=True``, so that zero is the feature mean).

    noise_level : float, default=0.1
        Standard deviation of the Gaussian noise, or the masking probability
        (then in (0, 1)). Used only when ``noise`` is set.

    tied_weights : bool, default=False
        Whether each decoder layer uses the transpose of its mirror encoder
        layer's weight (with its own bias): half the weights to learn, and a
        decoder that cannot drift from the encoder. The linear maps are tied
        too (PCA's decoder is its encoder's transpose), so the start is
        still PCA; the decoder branch's output layer is then the encoder
        branch's first layer, which cannot start at zero, and its bias
        cancels the branch's (constant) starting output instead. In our
        tests the tied branches improve on PCA more slowly than untied ones.

    sparsity : {'kl', 'l1'} or None, default=None
        Penalty on the code added to the training loss, for a sparse
        autoencoder. ``'kl'`` passes the code through a sigmoid and adds
        ``sparsity_weight`` times the KL divergence between
        ``sparsity_target`` and each code unit's mean activation over the
        batch (summed over units); ``'l1'`` adds ``sparsity_weight`` times the
        mean L1 norm of the (linear) code. Scores stay the pure
        reconstruction error. With ``'kl'`` the start cannot be PCA exactly:
        each PCA score is scaled into the sigmoid's near-linear range (one
        standard deviation to half a logit unit; a fixed factor 2 with
        ``tied_weights``) and the decoder undoes the scaling, so the start
        is PCA up to the sigmoid's curvature.

    sparsity_weight : float, default=0.1
        Weight of the sparsity penalty, relative to the reconstruction loss
        (a mean over values). Used only when ``sparsity`` is set; ``'l1'``
        usually wants smaller values, around 0.01.

    sparsity_target : float, default=0.05
        Target mean activation of each code unit, in (0, 1), for
        ``sparsity='kl'``.

    layerwise_pretraining : bool, default=False
        Whether to pretrain the fully connected network greedily before
        training it as a whole: each encoder layer and its mirror decoder
        layer are trained as a shallow autoencoder for
        ``pretraining_max_iter`` epochs on the codes of the layers below
        (with the input corruption of ``noise``, if any: stacked denoising
        autoencoders), then the stack is fine-tuned for up to ``max_iter``
        epochs. Not used with ``warm_start`` continuations. It pretrains
        the nonlinear branches; their output layers are then zeroed so that
        fine-tuning still starts at PCA, from pretrained hidden layers.

    pretraining_max_iter : int, default=20
        Epochs of each shallow autoencoder in ``layerwise_pretraining``.

    input_shape : tuple of int, default=None
        Shape of each row for the built-in structured networks; rows stay
        flat in X and in every output. ``(channels, height, width)``: a
        convolutional encoder (3x3 convolutions of stride 2 with
        ``hidden_layer_sizes`` channels, then a linear code) and a
        transposed-convolutional decoder, for images. ``(n_timesteps,
        n_channels)``: a sequence-to-sequence LSTM autoencoder (stacked LSTMs
        of ``hidden_layer_sizes`` units, the code repeated at every step of
        the decoder), for windows of a time series stored time-major;
        ``activation`` does not apply to it, ``dropout`` is applied between
        LSTM layers and ``batch_norm`` is not available. None: fully
        connected networks. The convolutional and LSTM networks are the
        branches of linear maps on the flat rows, with their output layers
        zeroed: they start at PCA too.

    encoder : class, callable or torch.nn.Module, default=None
        A custom encoder network replacing the built-in one (then
        ``hidden_layer_sizes``, ``activation``, ``dropout``, ``batch_norm``
        and ``tied_weights`` do not apply). It must map a float32 batch of
        shape ``(n, n_features)`` (standardized when ``standardize=True``) to
        codes of shape ``(n, n_components)``. A class is instantiated at fit
        with the ``encoder__*`` parameters, in skorch's style
        (``encoder__n_hidden=32`` passes ``n_hidden=32``), and with
        ``n_features`` and ``n_components`` when its signature takes them;
        a module instance is copied. The parameters can be searched with
        :class:`~sklearn.model_selection.GridSearchCV`. Shapes are checked
        at fit. Custom networks are used as given: no linear map is added
        and training starts from their own initialisation, not from PCA.

    decoder : class, callable or torch.nn.Module, default=None
        The matching custom decoder, from codes of shape ``(n, n_components)``
        to the reconstruction ``(n, n_features)`` (logits for ``loss='bce'``),
        built from the ``decoder__*`` parameters in the same way. Required
        with ``encoder``.

    optimizer : subclass of torch.optim.Optimizer, default=torch.optim.Adam
        The optimizer class (not an instance), configured with
        ``optimizer__*`` keyword parameters (``optimizer=torch.optim.SGD,
        optimizer__momentum=0.9``), which ``get_params``/``set_params``, and
        so ``GridSearchCV``, see. ``learning_rate`` and ``weight_decay`` give
        its ``lr`` and ``weight_decay``. Adam trains through a fused kernel
        (the fastest path on small networks).

    **network_params : dict
        ``encoder__*`` and ``decoder__*`` parameters for custom networks,
        and ``optimizer__*`` parameters of the optimizer.

    Attributes
    ----------
    net_ : AutoencoderNet
        The fitted skorch net; ``net_.history`` holds per-epoch losses and
        times.

    module_ : torch.nn.Module
        The fitted network (``net_.module_``), with ``encoder`` and
        ``decoder`` sub-modules and ``encode``/``decode`` methods.

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
        Mean training loss (in standardized units) of each epoch.

    best_loss_ : float
        Smallest value of ``loss_curve_``.

    validation_scores_ : list of float or None
        Negative validation loss of each epoch with ``early_stopping``, else
        None.

    best_validation_score_ : float or None
        Largest negative validation loss among the epochs and the network
        before training (epoch 0, PCA); its weights were restored.

    n_iter_ : int
        Number of epochs run (across warm starts).

    pretraining_loss_curves_ : list of list of float or None
        With ``layerwise_pretraining``, the training loss of each epoch of
        each shallow autoencoder, input side first; else None.

    device_ : torch.device
        Device the fitted network lives on.

    See Also
    --------
    VAETransformer : Variational autoencoder with a likelihood and sampling.
    AEOutlierDetector : Outlier detection from reconstruction error.
    sklearn.decomposition.PCA : Linear dimensionality reduction.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_ae import AutoencoderTransformer
    >>> X, _ = load_digits(return_X_y=True)
    >>> ae = AutoencoderTransformer(n_components=8, max_iter=5, random_state=0)
    >>> Z = ae.fit_transform(X)  # doctest: +SKIP
    >>> Z.shape  # doctest: +SKIP
    (1797, 8)
    >>> ae.inverse_transform(Z).shape  # doctest: +SKIP
    (1797, 64)
    """

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the autoencoder to X.

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

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Train the autoencoder on one chunk of X: one pass over it.

        The first call builds the network and its start from ``X`` (the
        start that :meth:`fit` computes from all the data, here from the
        first chunk only); each call then trains one pass (one epoch) over
        ``X``, as :class:`~sklearn.neural_network.MLPRegressor`'s
        ``partial_fit``: no early stopping, no validation split and no
        ``ConvergenceWarning``, whatever ``early_stopping`` and
        ``max_iter`` say. With ``standardize=True`` the internal scaling
        is updated from every chunk before training on it (the running mean
        and variance of all rows seen, as
        :class:`~sklearn.preprocessing.StandardScaler`'s ``partial_fit``,
        with the same floor on small scales as :meth:`fit`): the network
        then sees inputs scaled by the statistics of all chunks so far,
        which drift less with every chunk (a change of order 1/``n_chunks``).
        A ``partial_fit`` after :meth:`fit` continues the fitted network;
        :meth:`fit` after ``partial_fit`` starts anew unless
        ``warm_start=True``. A memory-mapped ``X`` is streamed a batch at a
        time. If the call raises, the estimator is left as it was.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            A chunk of training data; ``n_features`` must be the same in
            every call.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        return self._partial_fit(X)

    def transform(self, X):
        """Return the latent code of each sample.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to encode.

        Before training the codes are PCA's scores of the (standardized)
        rows; the trained encoder adds its nonlinear branch to them.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
            Latent codes, float32 for float32 input, else float64.
        """
        X = self._check_fitted_input(X)
        return self._map_batches(
            X, lambda module, xb: module.encode(xb), self._output_dtype(X)
        )

    def inverse_transform(self, X):
        """Return the reconstruction decoded from latent codes, in input units.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Latent codes, e.g. from :meth:`transform`.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features_in_)
            Reconstructed data.
        """
        Z = self._check_fitted_codes(X)
        criterion = self.net_.criterion_

        def decode(module, zb):
            return self._to_input_units(criterion.mean(module.decode(zb)))

        return self._map_codes(Z, decode, self._output_dtype(Z))

    def score_samples(self, X):
        """Return the negative reconstruction error of each sample.

        The error is the mean squared error over features in the units of X
        (``loss='mse'``) or the mean binary cross-entropy (``loss='bce'``).
        Higher is better.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to reconstruct.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Negative per-sample reconstruction error.
        """
        X = self._check_fitted_input(X)
        return -self._reconstruction_errors(X, self._output_dtype(X))

    def score(self, X, y=None):
        """Return the mean negative reconstruction error on X.

        Higher is better, so :class:`~sklearn.model_selection.GridSearchCV`
        can tune the autoencoder without labels or a ``scoring`` argument.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to reconstruct.

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
