"""``AutoencoderTransformer``: a nonlinear, trainable stand-in for ``PCA``."""

import numbers
import warnings

import numpy as np
from sklearn.base import (
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)

from sklearn.utils.validation import check_is_fitted

from ._base import _unit_interval_breach
from ._engine import holdout_size
from ._export import export_encoder, hidden_activations, hidden_layers
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

    The autoencoder contains PCA and starts as PCA. Before the first
    training step encoder and decoder compute PCA's solution on the training
    rows as the network sees them (after ``standardize``), so that
    ``transform`` returns PCA's scores and ``inverse_transform(transform(X))``
    PCA's reconstruction; the rest of the network adds nothing yet. Training
    moves on from there, and with ``early_stopping`` (the default) the start
    is a candidate like every epoch. It is then the PCA of the training
    part (the validation rows stay unseen), and an epoch replaces it only if
    it is better on significantly more than half of the validation rows (a
    one-sided sign test at 5%) and has a lower mean validation loss than the
    PCA of every row; otherwise ``fit`` returns the PCA of every row. With
    ``sparsity`` the mean validation loss, penalty included, decides alone
    (see ``early_stopping``). Where
    a nonlinear code helps, training finds it. Encoder and decoder are each
    a linear map (holding PCA) plus a nonlinear branch through the hidden
    layers whose output layer starts at zero.

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
        set by ``code_activation`` and ``output_activation``.

    dropout : float, default=0.0
        Dropout probability after each hidden activation, in training only.

    batch_norm : bool, default=False
        Whether to put batch normalization before each hidden activation.

    loss : {'mse', 'bce'}, default='mse'
        Reconstruction loss. ``'bce'`` (binary cross-entropy, the decoder
        output read as logits) is for data in [0, 1] and needs no scaling.

    learning_rate : float, default=3e-3
        Adam's step size. The default was chosen on half of the data sets
        of ``benchmarks/bench_representation.py`` (half A: held-out error
        relative to PCA's at a median of 0.77 and at most 1.0, against 0.80
        and 1.23 with 1e-3) and is reported on the other half in
        ``benchmarks/REPRESENTATION_RESULTS.md``.

    weight_decay : float, default=0.0
        L2 penalty on the weights (Adam's ``weight_decay``).

    batch_size : int or 'auto', default='auto'
        Rows per optimisation step. ``'auto'`` is
        ``min(256, max(16, n_train // 20))``, where ``n_train`` is the
        number of rows trained on (without the ``validation_fraction`` held
        out by ``early_stopping``), and at most ``n_samples``: 256 rows from
        5,120 training rows on, fewer below so that an epoch takes at least
        20 steps, down to 16 rows; below 305 training rows the floor of 16
        leaves fewer than 20 steps (7 on 100 rows). At 256 rows a
        step of a small tabular network is still dominated by arithmetic
        rather than by per-step overhead (with batches of 32 an epoch takes
        several times longer, see ``benchmarks/RESULTS.md``); below 5,120
        training rows, full or near-full batches would give too few steps
        per epoch (one on a few hundred rows). The 20 steps were chosen on
        half of ``benchmarks/bench_representation.py``'s panel and improved
        the held-out error on the other half too (median ratio to PCA 0.513
        against 0.576 with ``min(256, n_samples)``). Larger values are
        clipped to ``n_samples``.

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
        counts as epoch 0: when no epoch beats it by ``tol``, or the best
        epoch is not better on significantly more validation rows than
        chance would give (a sign test at 5%), it is what ``fit`` returns,
        so the held-out error is not meant to end up worse than PCA's. With
        ``sparsity``, whose penalty is not a per-row loss, there is no sign
        test: the mean validation loss, penalty included, decides (a sparse
        network loses to its dense start on reconstruction alone). Needs at
        least 2 samples; set it to False to train on every row for a fixed
        schedule.

    validation_fraction : float, default=0.1
        Fraction of the training data held out when ``early_stopping=True``.

    standardize : bool, default=True
        Whether to z-score each feature internally before training, so that
        features in large units do not dominate the loss. ``transform``
        applies the same scaling, ``inverse_transform`` undoes it, and scores
        are reported in the units of X. Ignored with ``loss='bce'``. As
        :class:`~sklearn.preprocessing.StandardScaler`, but a feature whose
        rows nearly all share one value (a border pixel that is nearly
        always 0, a rare flag; fewer than 2% of rows differ) has its scale
        floored at the smaller of a tenth of the root mean square of its
        deviations from that value and a tenth of the median feature's
        standard deviation: it would otherwise get a tiny scale, and a rare
        value at ``transform`` time a z-score of hundreds that dominates the
        loss. Every other feature is z-scored exactly, whatever the units of
        the others; data z-scored already are left as they are.

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
        ``standardize=True``). A ``warm_start`` fit and every
        ``partial_fit`` call train with fresh copies of the callbacks set
        then (``set_params(callbacks=...)`` takes effect), which carry on
        from the network's history as skorch's callbacks do after a
        ``partial_fit`` (a scheduler's epoch, a scoring's best score).
        Validation scores (``valid_loss``, what skorch's ``EarlyStopping``
        and ``Checkpoint`` monitor by default) exist only in a ``fit`` with
        ``early_stopping=True``; elsewhere a callback that monitors one
        raises ``ValueError`` before training.

    warm_start : bool, default=False
        When True and already fitted, ``fit`` continues training the fitted
        network (keeping its scaling) for up to ``max_iter`` more epochs,
        with its history and its optimizer's state (see ``optimizer``).
        Everything else about training is as the parameters say now: the
        ``callbacks``, ``verbose``'s record and early stopping
        (``early_stopping``, ``n_iter_no_change``, ``tol``) are built
        afresh for each fit, as in a first fit; the validation rows stay
        the earlier fit's while ``validation_fraction`` does, and the loss
        takes the current ``sparsity_weight`` and ``sparsity_target``, the
        input corruption the current ``noise`` and ``noise_level`` (a
        denoising fit may go on with less noise, or none).
        Parameters that describe another network or another ``loss`` or
        ``sparsity`` raise ``ValueError``.

    noise : {'gaussian', 'mask'}, callable or None, default=None
        Corruption of the training inputs, for a denoising autoencoder: the
        network reconstructs the clean row from a corrupted one.
        ``'gaussian'`` adds noise of standard deviation ``noise_level``;
        ``'mask'`` sets each value to zero with probability ``noise_level``.
        A callable is your own noise model: it is called as
        ``noise(batch, generator)`` with a float tensor of flat rows
        ``(batch_size, n_features)`` (a copy: it may be modified in place)
        and a :class:`torch.Generator`, and returns the corrupted batch, of
        the same shape and dtype; draw its random numbers from ``generator`` (e.g.
        ``torch.randn(batch.shape, generator=generator,
        device=batch.device)``) so that ``random_state`` makes fits
        reproducible. Applied in training only (validation loss,
        ``transform`` and scores use clean inputs), to the values the
        network sees: z-scored when ``standardize=True`` (zero is the
        feature mean), X itself with ``standardize=False``,
        ``loss='bce'`` or ``output_activation='logistic'``. This is the way
        to train a denoiser: fit on clean X and let ``noise`` corrupt it
        (``fit(X_noisy, y=X_clean)`` does not; ``y`` is ignored, as by
        every scikit-learn transformer). A callable must be a module-level
        function for the estimator to be pickled or saved; with
        ``layerwise_pretraining`` it corrupts the input layer only (the
        built-in noises corrupt each layer's input).

    noise_level : float, default=0.1
        Standard deviation of the Gaussian noise, or the masking probability
        (then in (0, 1)). Used only when ``noise`` is ``'gaussian'`` or
        ``'mask'``.

    tied_weights : bool, default=False
        Whether each decoder layer uses the transpose of its mirror encoder
        layer's weight (with its own bias): half the weights to learn, and a
        decoder that cannot drift from the encoder. The linear maps are tied
        too (PCA's decoder is its encoder's transpose), so the start is
        still PCA. The decoder branch's output layer is then the encoder
        branch's first layer: that layer starts at zero, and the biases
        cancel the branches' (then constant) starting outputs. (Zeroing
        the encoder branch's output layer, as untied networks do, started
        tied ones at a saddle point that training never left: on digits in
        [0, 1] at ``n_components=10``, hidden (48, 24), tanh, the tied
        network ended at PCA's held-out error; it now ends at 0.78x PCA's,
        the untied one at 0.74x.)

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
        ``pretraining_max_iter`` epochs, with the ``optimizer`` (its
        ``optimizer__*`` options, ``learning_rate`` and ``weight_decay``) of
        fine-tuning, on the codes of the layers below
        (with the input corruption of ``noise``, if any: stacked denoising
        autoencoders), then the stack is fine-tuned for up to ``max_iter``
        epochs. Not used with ``warm_start`` continuations. It pretrains
        the nonlinear branches; their output layers are then zeroed so that
        fine-tuning still starts at PCA, from pretrained hidden layers (with
        ``tied_weights``, the encoder branch's first layer, which is the
        decoder branch's output layer, is zeroed instead: see
        ``tied_weights``).

    pretraining_max_iter : int, default=20
        Epochs of each shallow autoencoder in ``layerwise_pretraining``.

    input_shape : tuple of int, default=None
        Shape of each sample for the built-in structured networks. X may be
        given as flat rows ``(n_samples, prod(input_shape))`` (C order,
        time-major for sequences) or as an array of shape ``(n_samples,
        *input_shape)``; ``transform`` returns ``(n_samples,
        n_components)`` codes and ``inverse_transform`` flat rows
        ``(n_samples, prod(input_shape))`` either way, as for every
        scikit-learn transformer (``.reshape(-1, *input_shape)`` gives the
        images back). ``(channels, height, width)``: a convolutional encoder
        (``hidden_layer_sizes`` channels, kernels of ``conv_kernel_size``,
        strides of ``conv_strides``, then a linear code) and a
        transposed-convolutional decoder, for images. ``(n_timesteps,
        n_channels)``: a sequence-to-sequence LSTM autoencoder (stacked LSTMs
        of ``hidden_layer_sizes`` units, the code repeated at every step of
        the decoder), for windows of a time series stored time-major;
        ``activation`` does not apply to it, ``dropout`` is applied between
        LSTM layers and ``batch_norm`` is not available. None: fully
        connected networks. The convolutional and LSTM networks are the
        branches of linear maps on the flat rows, with their output layers
        zeroed: they start at PCA too.

    code_activation : {'auto', 'identity', 'logistic', 'tanh', 'relu'}, \
default='auto'
        Activation of the code layer, which ``transform`` returns.
        ``'auto'`` is ``'logistic'`` with ``sparsity='kl'`` (which needs
        codes in (0, 1)), else ``'identity'``. ``'logistic'`` gives codes in
        (0, 1), ``'tanh'`` in (-1, 1), ``'relu'`` non-negative codes. The
        PCA start is exact for ``'identity'`` only. Through ``'logistic'``
        and ``'tanh'`` each PCA score is scaled into the activation's
        near-linear range (one standard deviation to half a unit) and the
        decoder undoes the scaling: PCA up to the activation's curvature.
        Through ``'relu'`` each score is shifted by three standard
        deviations, so that it is positive for almost every row, and the
        decoder shifts it back: PCA except for the rare rows with a score
        below the shift. With a custom ``encoder`` the activation is
        applied to its output.

    output_activation : {'identity', 'logistic'}, default='identity'
        Activation of the decoder's output. ``'logistic'`` reconstructs
        values in (0, 1), for data in [0, 1] (pixel intensities) trained
        with ``loss='mse'``: X must then be in [0, 1] and is not
        standardized (``standardize`` is ignored), like with ``loss='bce'``.
        ``loss='bce'`` already reads the output as logits and reconstructs
        through a sigmoid, so it takes ``'identity'`` only (``'logistic'``
        raises a ``ValueError``). The PCA start then holds PCA's
        reconstruction to first order around each feature's mean (the
        decoder's linear map scaled by the inverse of the sigmoid's slope
        there); with ``tied_weights`` that scaling is left out.

    conv_kernel_size : int or tuple of int, default=3
        Kernel size of each convolution of ``input_shape=(channels, height,
        width)`` (one for all, or one per layer of ``hidden_layer_sizes``),
        padded by ``conv_kernel_size // 2``; the transposed convolutions of
        the decoder mirror them. Only for that network: another value
        raises a ``ValueError`` without a 3-D ``input_shape``.

    conv_strides : int or tuple of int, default=2
        Stride of each convolution (2 halves height and width), as
        ``conv_kernel_size``.

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
        (the fastest path on small networks). A ``warm_start`` fit or a
        later ``partial_fit`` continues the optimizer and its state, or
        starts a fresh one where ``optimizer``, ``optimizer__*`` or
        ``weight_decay`` changed since.

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
        Negative validation loss of each epoch of a ``fit`` with
        ``early_stopping``; None without it and after ``partial_fit``.

    best_validation_score_ : float or None
        Negative validation loss of the weights that were restored: the best
        epoch's (each new best must beat the one before by ``tol``, so a
        later epoch may score a little higher), or the network's before
        training (epoch 0, PCA) where no epoch beat it (see
        ``early_stopping``), which may be below ``max(validation_scores_)``.

    n_iter_ : int
        Number of epochs run (across warm starts).

    n_samples_seen_ : int
        Number of training rows behind the fitted model: those of the
        ``fit`` that built it (the validation rows included) or of the first
        ``partial_fit`` call, plus those of every ``partial_fit`` call
        since. A ``warm_start`` fit keeps the fitted scaling and leaves it
        unchanged. ``partial_fit``'s running mean and variance weigh a new
        chunk against it.

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
    >>> Z = ae.fit_transform(X)
    >>> Z.shape
    (1797, 8)
    >>> ae.inverse_transform(Z).shape
    (1797, 64)

    Images as arrays, with sigmoid codes and outputs and a chosen
    convolution stack:

    >>> images = X[:100].reshape(-1, 1, 8, 8) / 16
    >>> conv = AutoencoderTransformer(
    ...     n_components=4, input_shape=(1, 8, 8), hidden_layer_sizes=(4,),
    ...     conv_kernel_size=5, conv_strides=2, code_activation="logistic",
    ...     output_activation="logistic", max_iter=2, random_state=0,
    ... ).fit(images)
    >>> codes = conv.transform(images)
    >>> codes.shape, bool(codes.min() > 0 and codes.max() < 1)
    ((100, 4), True)
    >>> conv.inverse_transform(codes).shape
    (100, 64)

    Your own noise model (a shift, then a clip to [0, 1]) trains a denoiser:

    >>> import torch
    >>> def shift_and_clip(batch, generator):
    ...     noise = torch.randn(batch.shape, generator=generator, device=batch.device)
    ...     return (batch + 0.2 * noise).clamp(0, 1)
    >>> denoiser = AutoencoderTransformer(
    ...     n_components=4, hidden_layer_sizes=(16,), noise=shift_and_clip,
    ...     output_activation="logistic", max_iter=2, random_state=0,
    ... ).fit(X[:100] / 16)
    >>> denoiser.transform_hidden(X[:3] / 16, layer=0).shape
    (3, 16)
    >>> denoiser.encoder_module()(torch.as_tensor(X[:3] / 16, dtype=torch.float32)).shape
    torch.Size([3, 4])
    """

    def _resolved_batch_size(self, n_samples, validation=True):
        """``'auto'``: ``min(256, max(16, n_train // 20), n_samples)``, at
        least 20 steps an epoch from 305 training rows on (see the
        ``batch_size`` parameter); VAETransformer and AEOutlierDetector keep
        ``min(256, n_samples)``."""
        if self.batch_size != "auto":
            return super()._resolved_batch_size(n_samples, validation)
        n_train = n_samples
        if validation and self.early_stopping:
            n_train -= holdout_size(self.validation_fraction, n_samples)
        return min(256, max(16, n_train // 20), n_samples)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the autoencoder to X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data. Sparse input is densified one batch at a time.

        y : Ignored
            Not used, present for API consistency by convention (pipelines
            pass their labels). A ``y`` of X's own shape, which looks like
            clean targets for noisy X, gets a ``UserWarning``: the network
            is trained to reconstruct X itself; train a denoiser on clean X
            with ``noise`` instead.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        if _looks_like_targets(X, y):
            warnings.warn(
                "AutoencoderTransformer.fit ignores y: it reconstructs X. To "
                "train a denoiser, fit on the clean data and pass noise='gaussian', "
                "'mask' or your own noise function (see the noise parameter).",
                UserWarning,
                stacklevel=2,
            )
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
            Data to encode; with ``input_shape``, also an array of shape
            ``(n_samples, *input_shape)``.

        Before training the codes are PCA's scores of the (standardized)
        rows; training moves the encoder on from them.

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
            Reconstructed data, as flat rows also when ``input_shape`` is set
            (``.reshape(-1, *input_shape)`` gives images or windows).
        """
        Z = self._check_fitted_codes(X)
        criterion = self.net_.criterion_

        def decode(module, zb):
            return self._to_input_units(criterion.mean(module.decode(zb)))

        return self._map_codes(Z, decode, self._output_dtype(Z))

    def transform_hidden(self, X, layer=0):
        """Return the activations of a hidden layer of the encoder.

        The hidden layers are the activation layers of the encoder's
        nonlinear branch (``hidden_layer_sizes``), input side first:
        ``layer=0`` is the first hidden layer, ``layer=-1`` the last. With a
        custom ``encoder``, they are its activation modules (``nn.ReLU``,
        ``nn.Tanh``, ``nn.Sigmoid``... in registration order). The
        activations are read with a forward hook while the encoder runs on
        the (internally scaled) rows, in evaluation mode. The LSTM network
        of a 2-D ``input_shape`` has no such layers.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to encode; with ``input_shape``, also an array of shape
            ``(n_samples, *input_shape)``.

        layer : int, default=0
            Index of the hidden layer (negative indices count from the code
            side).

        Returns
        -------
        H : ndarray of shape (n_samples, hidden_layer_sizes[layer])
            The layer's activations; for ``input_shape=(C, H, W)``, the
            feature maps, of shape ``(n_samples, hidden_layer_sizes[layer],
            height, width)``. float32 for float32 input, else float64.
        """
        X = self._check_fitted_input(X)
        if not isinstance(layer, numbers.Integral) or isinstance(layer, bool):
            raise ValueError(f"layer must be an int, got {layer!r}.")
        n_layers = len(hidden_layers(self.module_.encoder))
        if n_layers == 0:
            raise ValueError(
                "this encoder has no hidden activation layers: hidden_layer_sizes="
                f"{self._fitted_param('hidden_layer_sizes')!r} with input_shape="
                f"{self._fitted_param('input_shape')!r}."
            )
        if not -n_layers <= layer < n_layers:
            raise ValueError(
                f"layer={layer!r} is out of range: the encoder has {n_layers} "
                f"hidden layers (0 to {n_layers - 1}, or -{n_layers} to -1)."
            )
        return self._map_batches(
            X,
            lambda module, xb: hidden_activations(module, xb, layer),
            self._output_dtype(X),
        )

    def encoder_module(self):
        """Return the fitted encoder as a trainable torch module, scaling included.

        The module maps raw input (flat rows, or ``(n, *input_shape)``
        batches) to codes as :meth:`transform` does: the internal scaling
        (``mean_``, ``scale_``) is held as buffers and applied first, then
        the encoder and the code activation. It is a copy (training it
        leaves the estimator unchanged), on the CPU, in float32 (the scaling
        in float64, as ``transform``; float32 or float64 input) and in
        training mode, so that it drops into any torch model, e.g. the
        ``module`` of a skorch ``NeuralNetClassifier``, to fine-tune the
        pretrained encoder with labels.

        Returns
        -------
        encoder : FittedEncoder
            A ``torch.nn.Module`` from ``(n, n_features_in_)`` to
            ``(n, n_components)``.
        """
        check_is_fitted(self)
        return export_encoder(self.module_, self.mean_, self.scale_)

    def score_samples(self, X):
        """Return the negative reconstruction error of each sample.

        The error is the mean squared error over features in the units of X
        (``loss='mse'``) or the mean binary cross-entropy (``loss='bce'``,
        which scores values in [0, 1] only, as it fits). Higher is better.

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
        # Cross-entropy against targets outside [0, 1] is no error measure
        # (a value of 2 scored higher than any row of the data).
        breach = _unit_interval_breach(X) if self._loss_kind() == "bce" else None
        if breach is not None:
            raise ValueError(
                "a model fitted with loss='bce' scores values in [0, 1]; X has "
                f"values in {breach}. Scale X as the "
                "training data were."
            )
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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _looks_like_targets(X, y):
    """Whether ``y`` is an array of ``X``'s own 2-D (or more) shape."""
    y_shape = getattr(y, "shape", None)
    return (
        y_shape is not None
        and len(y_shape) >= 2
        and tuple(y_shape) == tuple(getattr(X, "shape", ()))
    )
