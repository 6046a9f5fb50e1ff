"""``AEOutlierDetector``: outlier detection from autoencoder reconstruction."""

import math
import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import OutlierMixin, _fit_context, clone
from sklearn.covariance import ledoit_wolf
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import _num_samples, check_array, check_is_fitted

from ._base import (
    _ACCEPT_SPARSE,
    _DTYPES,
    _BaseAutoencoder,
    _restore_on_error,
    resolve_n_jobs,
    torch_threads,
)
from ._data import feature_scaling
from ._ensemble import (
    EnsembleAutoencoder,
    TrimmedEnsembleLoss,
    draw_dropout_masks,
    set_dropout_masks,
    squared_mahalanobis,
)
from ._isolation import grow_isolation_trees, isolation_scores

# The threshold and the scales of the score's parts are estimated on a
# sample of the training rows (all rows below it): at least
# _CALIBRATION_MIN_ROWS, and enough for _CALIBRATION_TAIL_ROWS expected rows
# beyond a float contamination's threshold (the fraction flagged then has a
# relative standard error of about 10%), at most _CALIBRATION_ROWS. Quartiles
# of 8,192 rows are within a fraction of a percentile of the full pass,
# which on 20,000 rows took a fifth to a third of fit (on millions of rows,
# more than training).
_CALIBRATION_ROWS = 65_536
_CALIBRATION_MIN_ROWS = 8_192
_CALIBRATION_TAIL_ROWS = 100
# Scoring pads every batch to the same number of rows (for a fitted model),
# so the same float32 kernels run for every row: a row's score is then the
# same whichever rows share its batch. Each batch's largest temporary,
# (n_estimators, rows, n_features), is kept to about 2**22 values (16 MB).
_SCORE_ROWS = 1024
_SCORE_VALUES = 2**22
# Per-feature residual scales (``residual_scaling='feature'``) are medians
# over at most this many calibration rows; the pass holds their squared
# residuals, (rows, n_estimators, n_features), kept to about 2**24 values.
_RESIDUAL_ROWS = 4096
_RESIDUAL_VALUES = 2**24
# No feature's residual scale is below this fraction of its member's mean
# residual scale: a feature reconstructed almost exactly on most rows (a
# binary feature, say) cannot weigh more than 100 times a typical one.
_RESIDUAL_FLOOR = 1e-2
# member_combination='rank' keeps each member's error distribution on the
# calibration rows as this many quantiles (all rows' errors below it).
_RANK_LEVELS = 1025
# Ratios below this are clipped before a logarithm.
_TINY = float(np.finfo(np.float32).tiny)


def _robust_center_scale(values):
    """Return the median of ``values`` and its IQR / 1.349 (the standard
    deviation where the IQR is 0, and 1 where that is 0 too)."""
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    scale = (q3 - q1) / 1.349
    tiny = 1e-12 * max(1.0, abs(median))
    if not scale > tiny:
        scale = np.std(values)
    if not scale > tiny:
        scale = 1.0
    return float(median), float(scale)


def _empirical_cdf(values, quantiles):
    """Each member's empirical distribution function at its ``values``.

    ``values`` is ``(n_members, B)``; ``quantiles`` is ``(n_members, L)``, each
    row sorted: a member's values at the levels ``0, 1/(L-1), ..., 1``. The
    function is piecewise linear between them, 0 below the first; above the
    last (the largest calibration value) it goes on rising from 1 by the
    excess over the last value, in units of the last value's distance from
    the median, so rows beyond every calibration row keep their order.
    Elementwise: a value's result does not depend on the other values.
    """
    n_levels = quantiles.shape[1]
    idx = torch.searchsorted(quantiles, values.contiguous(), right=True)
    lo = (idx - 1).clamp(0, n_levels - 1)
    hi = idx.clamp(0, n_levels - 1)
    q_lo, q_hi = quantiles.gather(1, lo), quantiles.gather(1, hi)
    width = q_hi - q_lo
    frac = torch.where(width > 0, (values - q_lo) / torch.where(width > 0, width, 1), 0)
    cdf = (lo + frac.clamp(0, 1)) / max(n_levels - 1, 1)
    top, median = quantiles[:, -1:], quantiles[:, (n_levels - 1) // 2 : (n_levels - 1) // 2 + 1]
    spread = torch.clamp(top - median, min=_TINY)
    return cdf + torch.clamp(values - top, min=0) / spread


def _code_distribution(codes, trim_fraction):
    """Return ``(center, whitening)`` of codes ``(n_rows, k)`` in float64.

    A Ledoit-Wolf shrunk covariance (invertible however few rows, and
    however flat the codes), re-estimated once without the ``trim_fraction``
    of rows farthest from the first estimate, so that outliers in the
    training data do not widen the distribution they are measured against.
    """
    center, cov = codes.mean(axis=0), ledoit_wolf(codes)[0]
    n_keep = len(codes) - int(trim_fraction * len(codes))
    if 2 <= n_keep < len(codes):
        whitening = _whitening(cov, center)
        distances = np.square((codes - center) @ whitening).sum(axis=1)
        kept = codes[np.argsort(distances, kind="stable")[:n_keep]]
        center, cov = kept.mean(axis=0), ledoit_wolf(kept)[0]
    return center, _whitening(cov, center)


def _whitening(cov, center):
    """Return ``L`` with ``L @ L.T`` the inverse of ``cov`` (with a tiny ridge).

    The ridge is relative to the mean variance, or to a unit variance where
    that is below the float32 rounding of codes at ``center`` (constant
    codes): a ridge relative to (almost) 0 made ``L`` infinite or NaN.
    """
    k = cov.shape[0]
    scale = np.trace(cov) / k
    rounding = (np.finfo(np.float32).eps * np.abs(center).max()) ** 2
    if not scale > max(rounding, _TINY):
        scale = 1.0
    ridge = 1e-9 * scale
    precision = np.linalg.inv(cov + ridge * np.eye(k))
    return np.linalg.cholesky((precision + precision.T) / 2)


def robust_scaling(X):
    """Return per-feature ``(median, IQR / 1.349)`` of ``X``.

    The IQR is scaled to match the standard deviation on normal data. A
    feature whose IQR is zero (mostly one value, e.g. binary or count
    features) falls back to its standard deviation, and a constant feature to
    1, so no feature is divided by (nearly) zero. Sparse ``X`` gets z-scores.
    """
    if sp.issparse(X):
        return feature_scaling(X, rule="median")
    _, std = feature_scaling(X, rule="median")
    q1, median, q3 = np.percentile(np.asarray(X, dtype=np.float64), [25, 50, 75], axis=0)
    scale = (q3 - q1) / 1.349
    tiny = 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(median))
    return median, np.where(scale < tiny, std, scale)


class AEOutlierDetector(OutlierMixin, _BaseAutoencoder):
    """Outlier detection from the reconstruction error of autoencoders,
    hedged by an isolation score.

    A small ensemble of autoencoders learns to reconstruct the training
    data; rows it reconstructs badly are outliers. The reconstruction error
    misses rows that lie on the data's surface, and reconstruct well, yet
    hold values rare in the training data (on digits, a digit that few
    training rows show, drawn in strokes the others share). So, with
    ``isolation_weight > 0`` (the default), the score adds how easily an
    :class:`~sklearn.ensemble.IsolationForest` fitted on the same training
    rows isolates the row; with ``latent_weight > 0``, how far its codes
    are, in Mahalanobis distance, from the training rows' codes. Each part
    is standardized by its median and IQR on the training rows before the
    weighted sum, so neither dominates by its units. The training data may
    be contaminated (hold unlabelled outliers):

    - each member is a wide, regularised network (dropout and batch norm)
      on a random subset of the features, trained for a short fixed number
      of epochs; the members are trained together, as one torch module;
    - each member leaves the worst-reconstructed ``trim_fraction`` of every
      batch out of its loss, so the likeliest outliers are not learned, and
      the codes' distribution is estimated without the farthest
      ``trim_fraction`` of the rows;
    - training uses at most ``max_samples`` rows, and the threshold and the
      scales of the score a sample of at most 8,192 rows (more for a small
      float ``contamination``, at most 65,536), which bounds the time of
      ``fit`` on large data sets.

    The defaults were chosen by leave-sets-out cross-validation over 18
    real data sets (17 ADBench tabular sets and CIFAR-10 embeddings),
    among the candidate settings within 4 times IsolationForest's time
    whose score includes the isolation score (one change each from a base
    network: dropout, batch norm, ``max_features``, depth,
    ``learning_rate``, ``batch_size``, epochs, training rows, trimming,
    scaling, the other scores below, and ``isolation_weight`` 0.5, 1 or
    2): each was rated on four folds of sets and scored on the fifth, so
    that the reported figure is measured on sets the choice did not see
    (``benchmarks/OUTLIER_NOTES.md``, ``benchmarks/OUTLIER_RESULTS.md``).
    That the score includes the isolation score is a design rule, not one
    of those choices: it was made after reconstruction alone proved weaker
    outside those sets than inside them (see ``isolation_weight``).

    It follows the outlier-detection contract of
    :class:`~sklearn.ensemble.IsolationForest`: ``score_samples`` is higher
    for more normal rows, ``decision_function = score_samples - offset_`` is
    negative for outliers and ``predict`` returns +1 (inlier) or -1
    (outlier).

    Scores are computed in float32 on batches of a fixed number of rows
    (the last one padded), so a row's score does not depend on the rows
    scored with it, and memory does not grow with the number of rows.

    Parameters
    ----------
    n_components : int, default=32
        Code size of each autoencoder. With dropout and a short training, a
        code as wide as the input still does not reconstruct everything.

    contamination : 'auto' or float, default='auto'
        Sets the threshold ``offset_`` on the scores of the training data,
        or of a random sample of them on large data: 8,192 rows, or with a
        float contamination enough rows for 100 expected beyond the
        threshold (``100 / contamination``: the fraction of the training
        rows flagged then has a relative standard error of about 10%; on
        100,000 rows of Student-t data, 0.00094-0.00108 at 0.001 and
        0.0099-0.0116 at 0.01 over 3 seeds), at most 65,536. The score's scales and the
        isolation forest use the same rows. A float in (0, 0.5] is the
        expected proportion of outliers: ``offset_`` is that percentile of
        the training scores.
        ``'auto'`` uses Tukey's rule: ``offset_ = Q1 - 1.5 * (Q3 - Q1)``,
        the lower fence of the training scores (Q1, Q3 their quartiles), so
        a row is an outlier when its score is far below the bulk of the
        training rows'. The threshold does not change ``score_samples``.

    backbone : {'ae', 'vae'} or estimator, default='ae'
        The model behind ``score_samples``:

        - ``'ae'``: the ensemble of autoencoders described above;
          ``score_samples`` is minus the sum of the standardized
          reconstruction error, ``latent_weight`` times the standardized
          code distance and ``isolation_weight`` times the standardized
          isolation score (see :meth:`score_samples`).
        - ``'vae'``: a :class:`~sklearn_ae.VAETransformer` built from this
          estimator's shared parameters (``n_components``,
          ``hidden_layer_sizes``, ``max_iter``, ...); ``score_samples`` is
          its log-likelihood bound. ``n_estimators``, ``max_features``,
          ``max_samples`` and ``trim_fraction`` do not apply; ``scaling``
          only switches the VAE's own z-scoring on or off, and
          ``latent_weight`` and ``isolation_weight`` do not apply.
        - an estimator with ``fit`` and ``score_samples`` (higher = more
          normal), e.g. ``VAETransformer(...)`` or
          ``AutoencoderTransformer(...)``: a clone is fitted and its
          ``score_samples`` is used; tune it through ``backbone__<name>``.
          This estimator's network parameters are then ignored.

        With a backbone other than ``'ae'``, ``offset_`` is still set on
        the sample described under ``contamination``.

    n_estimators : int, default=4
        Number of autoencoders in the ensemble. 8 members scored higher in
        the leave-sets-out comparison (mean ROC-AUC 0.858 against 0.855 on
        18 sets) but at about 1.8 times the time, over the time budget of
        4 times IsolationForest's (``benchmarks/OUTLIER_NOTES.md``).

    max_features : float in (0, 1], default=0.75
        Fraction of the features each autoencoder sees (at least one),
        drawn at random for each member. A member trains and scores on its
        own features only, so on wide data the time grows with
        ``max_features`` times the number of features.

    max_samples : int or None, default=1024
        Train on at most this many rows, drawn at random without
        replacement; None trains on all rows. The threshold and the score's
        scales use a separate sample of at most 8,192 rows by default (see
        ``contamination``).

    trim_fraction : float in [0, 1), default=0.2
        Fraction of the rows of each batch with the largest reconstruction
        error that each member leaves out of its training loss; also the
        fraction of the training codes farthest from their centre that the
        codes' distribution is re-estimated without.

    latent_weight : float >= 0, default=0.0
        Weight of the code distance in the score, beside the reconstruction
        error's weight of 1 (all parts standardized). Each member's code
        distribution is a Ledoit-Wolf shrunk covariance of the training
        rows' codes; a row's code distance is its squared Mahalanobis
        distance per code dimension, averaged over the members. 0 scores by
        the reconstruction error alone: weights of 0.5, 1 and 2 did not hold
        up in the leave-sets-out comparison (lower mean ROC-AUC on the
        held-out sets than 0; see ``benchmarks/OUTLIER_NOTES.md``).

    isolation_weight : float >= 0, default=0.5
        Weight of the isolation score in the score, beside the
        reconstruction error's weight of 1 (all parts standardized). The
        isolation score is minus what
        :class:`~sklearn.ensemble.IsolationForest` with its defaults gives as
        ``score_samples``: the same algorithm (100 trees, each on at most
        256 rows drawn without replacement, random splits), grown here as
        arrays (``isolation_trees_``) with ``random_state`` drawn from this
        estimator's, on the rows that set ``offset_`` (see
        ``contamination``), in the units of ``X`` (a forest does not depend
        on each feature's scale). 0 scores by the autoencoders alone.

        The two scores fail on different data. On the 18 sets of the
        leave-sets-out comparison, reconstruction alone scores higher
        (out-of-fold mean ROC-AUC 0.855; the default sum 0.851,
        IsolationForest 0.814), but outside them it trailed
        IsolationForest: by 0.008 on 26 ADBench sets (issue 11), and on
        optdigits (digit 0 against the other digits) it ranks the outliers
        as more normal than the rest (0.35, against 0.69), where the
        default sum reaches 0.47 and a weight of 1 0.52
        (``benchmarks/OUTLIER_NOTES.md``,
        ``benchmarks/OUTLIER_UNSEEN_RESULTS.md``). So the default score is
        always the sum (a design rule, so that the detector does not fall
        far behind IsolationForest where reconstruction misses the
        outliers); its weight, 0.5, is the folds' choice among weights of
        0.5, 1 and 2 and the network's alternatives, each with the isolation
        score (0.5 in every fold). It adds to ``fit`` and scoring about half of
        IsolationForest's time on the ADBench protocol's sets, and about
        IsolationForest's own time on 2,000,000 rows, where scoring every
        row dominates. ``backbone='ae'`` only.

    residual_scaling : {'feature', 'log'} or None, default=None
        How each member's squared residuals are weighed before their mean
        over its features. None: as they are, in scaled units. ``'feature'``:
        each divided by that feature's median squared residual under that
        member on the training rows (on at most 4,096 of the calibration
        rows; floored at 1% of the member's mean over its features), the
        Gaussian log-likelihood with a variance per feature, so features
        that no member can predict do not dominate the error. ``'log'``:
        each squared residual ``r**2`` counts as ``log(1 + r**2 / c)``, ``c``
        the member's median squared residual over its features and the
        same rows (one scale per member, floored likewise): a Cauchy
        log-likelihood, which grows with the log of a large residual, so a
        row's error tells how many features are badly reconstructed more
        than how badly the worst one is, and a few heavy-tailed features
        cannot dominate it.

    member_combination : {'mean', 'standardized', 'geometric', 'rank'}, \
default='mean'
        How the members' errors make a row's error. ``'mean'``: their mean.
        ``'standardized'``: the mean of each member's error minus its
        median over its IQR / 1.349 on the calibration rows, so no member
        dominates by its scale. ``'geometric'``: the mean of the log of each
        member's error over its median on the calibration rows (a geometric
        mean), so a row is abnormal when most members agree that it is,
        rather than when one member reconstructs it very badly. ``'rank'``:
        the mean of each member's empirical distribution function of its
        error on the calibration rows (kept as 1,025 quantiles; linear
        between them, and rising on beyond the largest by the excess in
        units of its distance to the median), so the combination does not
        depend on the shape of any member's error distribution.

    dropout_passes : int >= 0, default=0
        With a positive number and ``dropout > 0``, each member's error is
        averaged over this many passes with dropout on (a Monte Carlo
        estimate of the expected error under dropout, the quantity training
        minimises), instead of one pass with dropout off. The masks are
        drawn once in ``fit`` and each is shared by all rows, so a row's
        score does not depend on its batch; scoring costs this many passes.

    scaling : {'standard', 'robust'} or None, default='standard'
        Per-feature scaling learned on the training data, applied inside
        the estimator: ``'standard'`` z-scores, ``'robust'`` centres on the
        median and divides by the IQR / 1.349 (the standard deviation where
        the IQR is 0), None leaves X as it is. Errors are measured in these
        scaled units, so no feature dominates by its units.

    hidden_layer_sizes : int or tuple of int, default=(64,)
        Sizes of each encoder's hidden layers, input side first; decoders
        mirror them.

    activation : {'relu', 'tanh', 'logistic', 'identity', 'elu', 'gelu', \
'selu', 'leaky_relu'}, default='relu'
        Activation of the hidden layers.

    dropout : float, default=0.2
        Dropout probability after each hidden activation, in training only.

    batch_norm : bool, default=True
        Whether to put batch normalization before each hidden activation.

    learning_rate : float, default=1e-3
        Adam's step size.

    weight_decay : float, default=0.0
        L2 penalty on the weights (Adam's ``weight_decay``).

    batch_size : int or 'auto', default='auto'
        Rows per optimisation step; ``'auto'`` is ``min(256, n_samples)``.

    max_iter : int, default=30
        Number of epochs. Training for long lets the networks learn the
        outliers too; reaching ``max_iter`` is intended and does not warn.

    tol : float, default=1e-4
        Training stops earlier when the monitored loss has not improved by
        ``tol`` for ``n_iter_no_change`` epochs.

    n_iter_no_change : int, default=10
        Epochs without improvement allowed before stopping. With
        ``early_stopping``, at least as many epochs as make 100 optimizer
        steps (on a small data set an epoch is one or two steps).

    early_stopping : bool, default=False
        Whether to hold out ``validation_fraction`` of the training rows,
        stop when their (trimmed) loss stops improving, and restore the
        best weights.

    validation_fraction : float, default=0.1
        Fraction of the training rows held out when ``early_stopping=True``.

    device : str or torch.device, default='auto'
        Where the networks are trained and run. ``'auto'`` picks CUDA when
        available, else the CPU.

    n_jobs : int, default=None
        Number of CPU threads torch uses in ``fit`` and in scoring. ``None``
        means 1 unless in a :func:`joblib.parallel_config` context; ``-1``
        means all CPUs. Not passed to an estimator given as ``backbone``.

    mixed_precision : bool, default=False
        Whether ``fit`` runs forward passes in bfloat16 under
        :class:`torch.autocast`; scores are computed in full precision. See
        :class:`AutoencoderTransformer`. Not passed to an estimator given as
        ``backbone``.

    random_state : int, RandomState instance or None, default=None
        Seeds the row subsample, the feature subsets, weight initialisation,
        shuffling and dropout. torch's global random state is left as it was.

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
        ``scaling='standard'``). A ``warm_start`` fit and every
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
        networks (keeping their scaling and feature subsets) on all of X,
        with their history and their optimizer's state (see
        ``optimizer``). Everything else about training is as the
        parameters say now: the ``callbacks``, ``verbose``'s record and
        early stopping (``early_stopping``, ``n_iter_no_change``, ``tol``)
        are built afresh for each fit, as in a first fit; the validation
        rows stay the earlier fit's while ``validation_fraction`` does, and
        the loss takes the current ``trim_fraction``. With another
        ``backbone``, ``fit`` continues the fitted
        ``backbone_`` (of the same class) under the parameters passed to
        it now: ``'vae'`` continues its network as ``VAETransformer``'s
        ``warm_start`` does, an estimator as its own ``warm_start`` says.
        Parameters that describe another network raise ``ValueError``.

    optimizer : subclass of torch.optim.Optimizer, default=torch.optim.Adam
        The optimizer class (not an instance), configured with
        ``optimizer__*`` keyword parameters (``optimizer=torch.optim.SGD,
        optimizer__momentum=0.9``), which ``get_params``/``set_params``, and
        so ``GridSearchCV``, see. ``learning_rate`` and ``weight_decay`` give
        its ``lr`` and ``weight_decay``. Adam trains through a fused kernel
        (the fastest path on small networks). With ``backbone='ae'`` or
        ``'vae'``, a ``warm_start`` fit or a later ``partial_fit``
        continues the optimizer and its state, or starts a fresh one where
        ``optimizer``, ``optimizer__*`` or ``weight_decay`` changed since.

    **optimizer_params : dict
        ``optimizer__*`` parameters of the optimizer.

    Attributes
    ----------
    offset_ : float
        Threshold on ``score_samples``: ``decision_function = score_samples
        - offset_``.

    score_scales_ : ndarray of shape (n_parts, 2)
        Median and IQR / 1.349 on the training rows of each part of the
        score: the reconstruction error, then (with ``latent_weight > 0``)
        the code distance, then (with ``isolation_weight > 0``) the
        isolation score. ``backbone='ae'`` only.

    isolation_trees_ : dict or None
        The isolation forest behind the isolation score, as arrays (None
        with ``isolation_weight=0``): per tree, the feature and threshold of
        each inner node and the path length of each leaf, in a complete
        binary tree layout (``sklearn_ae/_isolation.py``). ``backbone='ae'``
        only.

    code_center_ : torch.Tensor of shape (n_estimators, n_components) or None
        Centre of each member's training codes (None with
        ``latent_weight=0``). ``backbone='ae'`` only.

    code_whitening_ : torch.Tensor of shape (n_estimators, n_components, \
n_components) or None
        Per member, ``L`` with ``L @ L.T`` the inverse covariance of the
        training codes: the code distance of ``z`` is ``||(z - center) @
        L||^2``. ``backbone='ae'`` only.

    residual_weights_ : torch.Tensor of shape (n_estimators, n_features_in_) \
or None
        Per member, the weight of each feature's squared residual (1 /
        its typical squared residual) with ``residual_scaling='feature'``,
        or 1 / the member's typical squared residual on every feature with
        ``residual_scaling='log'``; None otherwise. ``backbone='ae'`` only.

    member_centers_ : torch.Tensor of shape (n_estimators,) or None
        Median of each member's error on the calibration rows with
        ``member_combination='standardized'`` or ``'geometric'``; None
        otherwise (``'rank'`` keeps ``member_quantiles_`` instead).
        ``backbone='ae'`` only.

    member_scales_ : torch.Tensor of shape (n_estimators,) or None
        IQR / 1.349 of each member's error on the calibration rows, as
        ``member_centers_``.

    member_quantiles_ : torch.Tensor of shape (n_estimators, n_levels) or None
        Each member's error on the calibration rows at ``n_levels`` evenly
        spaced levels from 0 to 1 (at most 1,025) with
        ``member_combination='rank'``; None otherwise. ``backbone='ae'`` only.

    dropout_masks_ : list of torch.Tensor or None
        Per dropout layer, the ``(dropout_passes, n_estimators, 1, n_units)``
        fixed masks of the scoring passes; None with ``dropout_passes=0``.
        ``backbone='ae'`` only.

    backbone_ : estimator or None
        The fitted backbone estimator for ``backbone='vae'`` or an estimator;
        None for ``backbone='ae'``, whose networks are ``net_``.

    net_ : AutoencoderNet
        The fitted skorch net of the ensemble (``backbone='ae'`` only);
        ``net_.history`` holds per-epoch losses and times.

    module_ : EnsembleAutoencoder
        The fitted ensemble (``net_.module_``); ``module_.feature_mask``
        tells which features each member sees. ``backbone='ae'`` only.

    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit. Defined only when X has feature
        names that are all strings.

    mean_ : ndarray of shape (`n_features_in_`,) or None
        Per-feature centre removed before training (the median with
        ``scaling='robust'``; None without scaling). ``backbone='ae'``
        only.

    scale_ : ndarray of shape (`n_features_in_`,) or None
        Per-feature scale divided out before training. ``backbone='ae'``
        only.

    loss_curve_ : list of float
        Mean trimmed training loss of each epoch (scaled units; features
        outside a member's subset count as zero error). ``backbone='ae'``
        only.

    best_loss_ : float
        Smallest value of ``loss_curve_``. ``backbone='ae'`` only.

    validation_scores_ : list of float or None
        Negative (trimmed) validation loss of each epoch of a ``fit`` with
        ``early_stopping``; None without it (the default) and after
        ``partial_fit``. ``backbone='ae'`` only.

    best_validation_score_ : float or None
        Negative validation loss of the weights that were restored: the
        best epoch's (each new best must beat the one before by ``tol``,
        so a later epoch may score a little higher), or the untrained
        networks' (before the first epoch) where no epoch beat them by
        ``tol``, which may be below ``max(validation_scores_)``; None where
        ``validation_scores_`` is. ``backbone='ae'`` only.

    n_iter_ : int
        Number of epochs run (the backbone's ``n_iter_``; absent with an
        estimator backbone that has none).

    n_samples_seen_ : int
        Number of training rows behind the fitted networks: those that
        ``fit`` trained on (at most ``max_samples``, drawn from X; the
        validation rows included) or the first ``partial_fit`` chunk, plus
        every ``partial_fit`` chunk since. A ``warm_start`` fit, which
        trains on all of X with the fitted scaling, leaves it unchanged.
        With ``scaling='standard'``, ``partial_fit``'s running mean and
        variance weigh a new chunk against it. ``backbone='ae'`` only.

    device_ : torch.device
        Device the fitted networks live on. ``backbone='ae'`` only.

    See Also
    --------
    sklearn.ensemble.IsolationForest : Outlier detection with random trees.
    AutoencoderTransformer : Deterministic autoencoder.
    VAETransformer : Variational autoencoder with a likelihood.

    Examples
    --------
    Fit on contaminated data; outliers get negative decisions:

    >>> import numpy as np
    >>> from sklearn_ae import AEOutlierDetector
    >>> rng = np.random.RandomState(0)
    >>> inliers = np.tanh(rng.normal(size=(300, 2)) @ rng.normal(size=(2, 8)))
    >>> outliers = rng.uniform(-3, 3, size=(15, 8))
    >>> X = np.vstack([inliers, outliers])
    >>> detector = AEOutlierDetector(random_state=0).fit(X)
    >>> detector.predict(outliers[:5])
    array([-1, -1, -1, -1, -1])
    >>> bool((detector.decision_function(inliers) > 0).mean() > 0.9)
    True

    Tune it with a labelled validation set (``1`` = inlier, ``-1`` =
    outlier, ``predict``'s convention) and ROC-AUC on ``decision_function``:

    >>> from sklearn.model_selection import GridSearchCV, StratifiedKFold
    >>> y = np.r_[np.ones(300), -np.ones(15)]
    >>> search = GridSearchCV(
    ...     AEOutlierDetector(random_state=0),
    ...     {"trim_fraction": [0.0, 0.2]},
    ...     scoring="roc_auc",
    ...     cv=StratifiedKFold(3, shuffle=True, random_state=0),
    ... ).fit(X, y)
    >>> bool(search.best_score_ > 0.9)
    True

    Or without labels: ``score`` (the mean of ``score_samples``) rates how
    well held-out rows are modelled. Here with a VAE backbone, tuned
    through ``backbone__``:

    >>> from sklearn_ae import VAETransformer
    >>> vae = VAETransformer(n_components=2, max_iter=30, random_state=0)
    >>> search = GridSearchCV(
    ...     AEOutlierDetector(backbone=vae), {"backbone__n_components": [1, 2]}, cv=3
    ... ).fit(X)
    >>> search.best_estimator_.predict(outliers[:5])
    array([-1, -1, -1, -1, -1])
    """

    _parameter_constraints: dict = {
        **{
            name: rule
            for name, rule in _BaseAutoencoder._parameter_constraints.items()
            if name not in ("loss", "standardize")
        },
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        "backbone": [StrOptions({"ae", "vae"}), HasMethods(["fit", "score_samples"])],
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
        "max_features": [Interval(Real, 0, 1, closed="right")],
        "max_samples": [Interval(Integral, 1, None, closed="left"), None],
        "trim_fraction": [Interval(Real, 0, 1, closed="left")],
        "latent_weight": [Interval(Real, 0, None, closed="left")],
        "isolation_weight": [Interval(Real, 0, None, closed="left")],
        "residual_scaling": [StrOptions({"feature", "log"}), None],
        "member_combination": [StrOptions({"mean", "standardized", "geometric", "rank"})],
        "dropout_passes": [Interval(Integral, 0, None, closed="left")],
        "scaling": [StrOptions({"standard", "robust"}), None],
    }

    def __init__(
        self,
        n_components=32,
        *,
        contamination="auto",
        backbone="ae",
        n_estimators=4,
        max_features=0.75,
        max_samples=1024,
        trim_fraction=0.2,
        latent_weight=0.0,
        isolation_weight=0.5,
        residual_scaling=None,
        member_combination="mean",
        dropout_passes=0,
        scaling="standard",
        hidden_layer_sizes=(64,),
        activation="relu",
        dropout=0.2,
        batch_norm=True,
        learning_rate=1e-3,
        weight_decay=0.0,
        batch_size="auto",
        max_iter=30,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
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
        self.contamination = contamination
        self.backbone = backbone
        self.n_estimators = n_estimators
        self.max_features = max_features
        self.max_samples = max_samples
        self.trim_fraction = trim_fraction
        self.latent_weight = latent_weight
        self.isolation_weight = isolation_weight
        self.residual_scaling = residual_scaling
        self.member_combination = member_combination
        self.dropout_passes = dropout_passes
        self.scaling = scaling
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
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
    def _loss_kind(self):
        # The training loss is always the squared error of the scaled inputs.
        return "mse"

    def _scales_input(self):
        return self.scaling is not None

    def _scaling_switch(self):
        return "scaling=None"

    def _scaling_switched_off(self):
        return self.scaling is None

    def _scaling_rule(self):
        # The z-scores' floor at 0.1 x the median feature's standard
        # deviation: the defaults were chosen with it (benchmarks/
        # bench_outliers.py); the autoencoders floor each feature in its
        # own units instead.
        return "median"

    def _input_scaling(self, X):
        if self.scaling == "robust":
            return robust_scaling(X)
        return super()._input_scaling(X)

    def _feature_mask(self, n_features):
        """Draw each member's feature subset from torch's (seeded) generator."""
        n_selected = max(1, int(np.ceil(self.max_features * n_features)))
        mask = torch.zeros(self.n_estimators, n_features, dtype=torch.bool)
        for member in range(self.n_estimators):
            mask[member, torch.randperm(n_features)[:n_selected]] = True
        return mask

    def _build_module(self, n_features):
        return EnsembleAutoencoder(
            self._feature_mask(n_features),
            self.n_components,
            self._hidden_sizes(),
            activation=self.activation,
            dropout=self.dropout,
            batch_norm=self.batch_norm,
        )

    _loss_settings = ("trim_fraction",)

    def _build_criterion(self):
        return TrimmedEnsembleLoss(self.trim_fraction)

    # -------------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
    @_restore_on_error
    def fit(self, X, y=None):
        """Fit the detector to X, which may hold unlabelled outliers.

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
        rng = check_random_state(self.random_state)
        if isinstance(self.backbone, str) and self.backbone == "ae":
            self.backbone_ = None
            self._fit_ensemble(X, rng)
            X = self._validate_X(X, reset=False)
        else:
            X = self._validate_X(X, reset=True)
            backbone = (
                self._continued_backbone()
                if self.warm_start
                else clone(self._backbone_estimator())
            )
            with warnings.catch_warnings():
                if isinstance(self.backbone, str):  # max_iter is ours: see its doc
                    warnings.simplefilter("ignore", ConvergenceWarning)
                self.backbone_ = backbone.fit(X)
            if hasattr(self.backbone_, "n_iter_"):
                self.n_iter_ = self.backbone_.n_iter_
        self._calibrate(self._calibration_sample(X, rng), rng)
        return self

    def _calibrate(self, X, rng, *, draw_masks=True):
        """Set the score's scales (and, with ``draw_masks``, the fixed
        dropout masks) and ``offset_`` from the calibration rows ``X``."""
        if self.backbone_ is None:
            if draw_masks:
                self._draw_dropout_masks(rng)
            self._fit_member_scales(X, rng)
            scores = self._combine(self._fit_score_scales(X, rng))
        else:
            scores = self._score_samples(X)
        self._check_training_scores(scores)
        if self.contamination == "auto":
            q1, q3 = np.percentile(scores, [25, 75])
            self.offset_ = float(q1 - 1.5 * (q3 - q1))
        else:
            self.offset_ = float(np.percentile(scores, 100.0 * self.contamination))

    @_fit_context(prefer_skip_nested_validation=True)
    @_restore_on_error
    def partial_fit(self, X, y=None):
        """Train the detector on one chunk of X: one pass over it.

        With ``backbone='ae'``, the first call builds the ensemble (on all
        of the chunk's rows: ``max_samples`` applies to :meth:`fit` only)
        and each call trains one epoch over the chunk, without early
        stopping, as ``AutoencoderTransformer.partial_fit``; with
        ``scaling='standard'`` the scaling is updated from every chunk
        (running mean and variance), with ``scaling='robust'`` it stays the
        first chunk's (medians and quartiles have no exact running update).
        Another backbone is trained with its own ``partial_fit`` (a
        ``ValueError`` if it has none); later calls continue the fitted
        ``backbone_`` under the parameters passed to it then, so that
        ``set_params`` (``learning_rate``, ``optimizer``, ``callbacks``,
        ``backbone__*``...) reaches it, and a ``backbone`` of another class
        starts a new one. The most recent training rows (at
        most 2**21 values, and at most 65,536 rows) are kept, and after
        every call the score's scales and ``offset_`` are set on them,
        scored by the network as it now is, so that ``offset_`` stays
        current. If the call raises, the estimator is left as it was.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            A chunk of training data, which may hold unlabelled outliers.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        first = not hasattr(self, "offset_")
        ae = isinstance(self.backbone, str) and self.backbone == "ae"
        # The rows kept by the last partial_fit, unless a fit came since.
        recent = getattr(self, "_recent_rows", None)
        owner = self._recent_rows_owner()
        if first or owner is None or getattr(self, "_recent_owner", None) is not owner:
            recent = None
        if ae:
            self.backbone_ = None
            self._partial_fit(X)
            # _partial_fit checked X (its width, its feature names, warning
            # once): here only the same conversion.
            X = check_array(X, accept_sparse=_ACCEPT_SPARSE, dtype=_DTYPES)
        else:
            X = self._validate_X(X, reset=first)
            backbone = (
                clone(self._backbone_estimator()) if first else self._continued_backbone()
            )
            if not hasattr(backbone, "partial_fit"):
                raise ValueError(
                    f"backbone={type(backbone).__name__} has no partial_fit; "
                    "use fit, or a backbone with partial_fit ('ae', 'vae')."
                )
            self.backbone_ = backbone
            self.backbone_.partial_fit(X)
            if hasattr(self.backbone_, "n_iter_"):
                self.n_iter_ = self.backbone_.n_iter_
        # The recent rows that set the score's scales and offset_.
        max_rows = max(1, min(_CALIBRATION_ROWS, 2**21 // X.shape[1]))
        new_network = recent is None
        if sp.issparse(X):
            X = sp.csr_matrix(X)  # COO input (accepted) has no row slicing
        if recent is not None:
            if sp.issparse(X) or sp.issparse(recent):
                X = sp.vstack([sp.csr_matrix(recent), sp.csr_matrix(X)], format="csr")
            else:
                X = np.concatenate([recent, X.astype(recent.dtype, copy=False)])
        recent = X[-max_rows:]
        recent = recent.copy() if not sp.issparse(recent) else recent.tocsr()
        # As fit does, on the recent rows; the fixed dropout masks are drawn
        # once per network.
        self._calibrate(
            recent,
            check_random_state(self.random_state),
            draw_masks=new_network or not hasattr(self, "dropout_masks_"),
        )
        self._recent_rows = recent
        self._recent_owner = self._recent_rows_owner()
        return self

    def _recent_rows_owner(self):
        """The fitted network (or backbone estimator) that ``partial_fit``'s
        recent rows belong to: a ``fit`` since replaces it, and they lapse."""
        ae = isinstance(self.backbone, str) and self.backbone == "ae"
        return vars(self).get("net_" if ae else "backbone_")

    @staticmethod
    def _row_sample(X, n_rows, rng):
        """Return at most ``n_rows`` rows of ``X`` drawn without replacement."""
        n_samples = _num_samples(X)
        if n_samples <= n_rows:
            return X
        if sp.issparse(X):
            X = X.tocsr()  # COO, DIA... cannot be indexed by row
        rows = np.sort(rng.choice(n_samples, n_rows, replace=False))
        return _safe_indexing(X, rows)

    def _calibration_sample(self, X, rng):
        """The training rows that set ``offset_`` and the score's scales
        (see ``contamination``)."""
        n_rows = _CALIBRATION_MIN_ROWS
        if self.contamination != "auto":
            n_rows = max(n_rows, math.ceil(_CALIBRATION_TAIL_ROWS / self.contamination))
        return self._row_sample(X, min(n_rows, _CALIBRATION_ROWS), rng)

    def _fit_ensemble(self, X, rng):
        if self.max_samples is not None and not (self.warm_start and hasattr(self, "net_")):
            X = self._row_sample(X, self.max_samples, rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self._fit(X)

    def _continued_backbone(self):
        """Return the backbone a warm start or a later ``partial_fit``
        trains: the fitted ``backbone_`` under the parameters this estimator
        gives it now, or an unfitted clone where there is none of that class.

        A changed ``optimizer``, ``learning_rate``, ``callbacks`` (or, for an
        estimator, ``backbone__*``) reaches the backbone, which continues as
        it continues on its own (``VAETransformer`` takes them as its
        ``warm_start`` and ``partial_fit`` do). The fitted state moves to a
        new instance built from those parameters, so that ``backbone_`` is
        left as it was when training raises.
        """
        backbone = clone(self._backbone_estimator())
        fitted = vars(self).get("backbone_")
        if type(fitted) is type(backbone):
            fresh = set(vars(backbone))
            vars(backbone).update(
                {name: value for name, value in vars(fitted).items() if name not in fresh}
            )
        return backbone

    def _backbone_estimator(self):
        if isinstance(self.backbone, str):
            from ._vae import VAETransformer

            shared = set(VAETransformer().get_params()) & set(self.get_params(deep=False))
            params = {name: getattr(self, name) for name in shared}
            params.update(vars(self).get("_extra_params", {}))  # optimizer__*
            return VAETransformer(standardize=self.scaling is not None, **params)
        return self.backbone

    # ---------------------------------------------------------------- scoring
    def _fixed_batches(self, X, fn):
        """Return ``fn(module, batch)`` over validated ``X`` as float32 numpy.

        Every batch is padded with zero rows to the same shape, so the same
        float32 kernels compute every row, and a row's result does not
        depend on the other rows of its batch (float32 products of
        different shapes round differently). ``fn`` returns tensors with the
        batch's rows first; only one batch is in memory at a time.
        """
        module = self.net_.module_
        module.eval()
        data = self._tensor_data(X, torch.float32)
        return self._padded_map(
            len(data), lambda rows: data.take(rows), lambda xb: fn(module, xb)
        )

    def _padded_map(self, n_samples, take, fn):
        """Apply ``fn`` to ``take(slice)`` batches padded to one fixed shape."""
        n_members, n_features = self.net_.module_.feature_mask.shape
        n_rows = max(1, min(_SCORE_ROWS, _SCORE_VALUES // (n_members * n_features)))
        out = None
        with torch_threads(resolve_n_jobs(self.n_jobs)), torch.inference_mode():
            for start in range(0, n_samples, n_rows):
                batch = take(slice(start, start + n_rows))
                size = len(batch)
                if size < n_rows:
                    padding = batch.new_zeros(n_rows - size, *batch.shape[1:])
                    batch = torch.cat([batch, padding])
                result = fn(batch)[:size].cpu().numpy()
                if out is None:
                    out = np.empty((n_samples, *result.shape[1:]), dtype=np.float32)
                out[start : start + size] = result
        return out

    def _errors_and_codes(self, module, xb):
        """Each row's reconstruction error combined over the members (see
        ``member_combination``), and its codes as ``(n_members, B,
        n_components)``."""
        errors, codes = self._member_errors(module, xb)
        if self.member_quantiles_ is not None:
            errors = _empirical_cdf(errors, self.member_quantiles_)
        elif self.member_centers_ is not None:
            center, scale = self.member_centers_.unsqueeze(1), self.member_scales_.unsqueeze(1)
            if self._fitted_param("member_combination") == "geometric":
                errors = torch.log(torch.clamp(errors / center, min=_TINY))
            else:
                errors = (errors - center) / scale
        return errors.mean(dim=0), codes

    def _member_errors(self, module, xb):
        """Each member's error ``(n_members, B)`` and codes: in eval mode, or
        averaged over the fixed dropout masks of ``dropout_masks_``."""
        log_residuals = self._fitted_param("residual_scaling") == "log"
        if self.dropout_masks_ is None:
            return module.errors_and_codes(xb, self.residual_weights_, log_residuals)
        n_passes = self.dropout_masks_[0].shape[0]
        total = 0
        try:
            for t in range(n_passes):
                set_dropout_masks(module, [masks[t] for masks in self.dropout_masks_])
                total = total + module.errors_and_codes(
                    xb, self.residual_weights_, log_residuals
                )[0]
        finally:
            set_dropout_masks(module, None)
        codes = module.encode(xb) if self._fitted_param("latent_weight") > 0 else None
        return total / n_passes, codes

    def _draw_dropout_masks(self, rng):
        """Draw ``dropout_passes`` fixed dropout masks per dropout layer."""
        self.dropout_masks_ = None
        if self.dropout_passes > 0 and self.dropout > 0:
            generator = torch.Generator().manual_seed(int(rng.randint(2**31 - 1)))
            masks = draw_dropout_masks(self.net_.module_, self.dropout_passes, generator)
            self.dropout_masks_ = [m.to(self.net_.device) for m in masks]

    def _fit_member_scales(self, X, rng):
        """Fit ``residual_weights_`` and the members' error scales on the
        calibration rows ``X`` (for ``residual_scaling`` and
        ``member_combination``; None where they do not apply)."""
        self.residual_weights_ = self.member_centers_ = self.member_scales_ = None
        self.member_quantiles_ = None
        n_members, n_features = self.net_.module_.feature_mask.shape
        device = self.net_.device
        if self.residual_scaling is not None:
            n_rows = max(1, min(_RESIDUAL_ROWS, _RESIDUAL_VALUES // (n_members * n_features)))
            squared = self._fixed_batches(
                self._row_sample(X, n_rows, rng),
                lambda module, xb: module.squared_residuals(xb)[0].transpose(0, 1),
            )  # (rows, members, features)
            mask = self.net_.module_.feature_mask.cpu().numpy()
            tiny = np.finfo(np.float32).tiny
            if self.residual_scaling == "feature":
                typical = np.median(squared, axis=0).astype(np.float64)  # (members, features)
                mean = np.array([row[m].mean() for row, m in zip(typical, mask)])
                floor = np.maximum(_RESIDUAL_FLOOR * mean, tiny)[:, None]
                weights = np.where(mask, 1.0 / np.maximum(typical, floor), 1.0)
            else:  # 'log': one scale per member, over all its rows and features
                own = [squared[:, j, m].astype(np.float64) for j, m in enumerate(mask)]
                typical = np.array([
                    max(np.median(r), _RESIDUAL_FLOOR * r.mean(), tiny) for r in own
                ])
                weights = np.repeat(1.0 / typical[:, None], n_features, axis=1)
            self.residual_weights_ = torch.as_tensor(weights, dtype=torch.float32, device=device)
        if self.member_combination != "mean":
            errors = self._fixed_batches(
                X,
                lambda module, xb: self._member_errors(module, xb)[0].T,
            ).astype(np.float64)
            if self.member_combination == "rank":
                levels = np.linspace(0, 1, min(len(errors), _RANK_LEVELS))
                quantiles = np.quantile(errors, levels, axis=0).T  # (members, levels)
                self.member_quantiles_ = torch.as_tensor(
                    np.ascontiguousarray(quantiles), dtype=torch.float32, device=device
                )
                return
            center, scale = np.array([_robust_center_scale(e) for e in errors.T]).T
            center = np.maximum(center, np.finfo(np.float32).tiny)
            self.member_centers_ = torch.as_tensor(center, dtype=torch.float32, device=device)
            self.member_scales_ = torch.as_tensor(scale, dtype=torch.float32, device=device)

    def _code_distances(self, codes):
        """Squared Mahalanobis distance per code dimension of ``(n_members, B,
        k)`` codes, averaged over the members: ``(B,)``."""
        codes = codes.contiguous()  # the same kernel whichever way they came
        squared = squared_mahalanobis(codes, self.code_center_, self.code_whitening_)
        return squared.mean(dim=0) / codes.shape[2]

    def _fit_score_scales(self, X, rng):
        """Fit the code distribution, the isolation forest and the scales of
        the score's parts on the calibration rows ``X``."""
        self.code_center_ = self.code_whitening_ = self.isolation_trees_ = None
        if self.latent_weight == 0:
            parts = self._parts(X)
        else:

            def errors_and_codes(module, xb):
                error, codes = self._errors_and_codes(module, xb)
                return torch.cat([error.unsqueeze(1), codes.transpose(0, 1).flatten(1)], dim=1)

            values = self._fixed_batches(X, errors_and_codes)
            n_members = self.net_.module_.feature_mask.shape[0]
            codes = values[:, 1:].reshape(len(values), n_members, -1)
            center, whitening = zip(
                *(
                    _code_distribution(codes[:, j].astype(np.float64), self.trim_fraction)
                    for j in range(n_members)
                )
            )
            device = self.net_.device
            self.code_center_ = torch.as_tensor(
                np.stack(center), dtype=torch.float32, device=device
            )
            self.code_whitening_ = torch.as_tensor(
                np.stack(whitening), dtype=torch.float32, device=device
            )
            # The codes computed above, in the batches scoring would use:
            # the same distances as score_samples gives these rows.
            codes_t = torch.from_numpy(codes).to(device)
            distances = self._padded_map(
                len(codes),
                lambda rows: codes_t[rows],
                lambda cb: self._code_distances(cb.transpose(0, 1)),
            )
            parts = np.column_stack([values[:, 0], distances]).astype(np.float64)
        if self.isolation_weight > 0:
            # Drawn after every other use of rng in fit: the networks and the
            # other parts are those of isolation_weight=0.
            self.isolation_trees_ = grow_isolation_trees(
                X, random_state=rng.randint(np.iinfo(np.int32).max)
            )
            parts = np.column_stack([parts, self._isolation_part(X)])
        self.score_scales_ = np.array([_robust_center_scale(p) for p in parts.T])
        return parts

    def _isolation_part(self, X):
        """Each row's isolation score under ``isolation_trees_`` (higher =
        easier to isolate), float64."""
        return isolation_scores(self.isolation_trees_, X)

    def _parts(self, X):
        """Return ``(n_samples, n_parts)`` float64: each row's reconstruction
        error averaged over the members (scaled units); with
        ``latent_weight > 0``, its squared Mahalanobis distance per code
        dimension, averaged over the members; with an isolation forest, its
        isolation score. Each row's values do not depend on the others."""

        def parts(module, xb):
            error, codes = self._errors_and_codes(module, xb)
            if self.code_center_ is None:
                return error.unsqueeze(1)
            return torch.stack([error, self._code_distances(codes)], dim=1)

        values = self._fixed_batches(X, parts).astype(np.float64)
        # A row far beyond the training rows (z-scores whose squares pass
        # float32's range, about 1e19) comes out of the float32 networks as
        # inf or NaN (inf - inf): either way the most abnormal of rows. A NaN
        # would compare as neither side of offset_, and predict would call
        # the row an inlier. (Inputs are finite, so nothing else is NaN.)
        values[np.isnan(values)] = np.inf
        if self.isolation_trees_ is None:
            return values
        return np.column_stack([values, self._isolation_part(X)])

    def _combine(self, parts):
        """The score from its parts, each standardized by its training
        median and IQR: minus (error + ``latent_weight`` x code distance +
        ``isolation_weight`` x isolation score)."""
        center, scale = self.score_scales_.T
        z = (parts - center) / scale
        weights = [1.0]
        if self.code_center_ is not None:
            weights.append(self._fitted_param("latent_weight"))
        if self.isolation_trees_ is not None:
            weights.append(self._fitted_param("isolation_weight"))
        # Elementwise (no BLAS): the same rounding for every row.
        total = z[:, 0].copy()
        for j in range(1, len(weights)):
            total += weights[j] * z[:, j]
        return -total

    def _score_samples(self, X):
        if self.backbone_ is not None:
            return np.asarray(self.backbone_.score_samples(X), dtype=np.float64)
        return self._combine(self._parts(X))

    # -------------------------------------------------------------- inference
    def score_samples(self, X):
        """Return how normal each sample is: the higher, the more normal.

        For ``backbone='ae'``, ``-(e - e_0) / s_e - latent_weight * (d -
        d_0) / s_d - isolation_weight * (i - i_0) / s_i``: ``e`` is the mean
        squared reconstruction error in scaled units (each squared residual
        weighed by ``residual_scaling``), combined over the ensemble's
        members by ``member_combination`` (each member over its own
        features), ``d`` the squared Mahalanobis distance of the row's
        codes per code dimension, averaged over the members, ``i`` the isolation
        score (minus :class:`~sklearn.ensemble.IsolationForest`'s
        ``score_samples``), and ``e_0, s_e, d_0, s_d, i_0,
        s_i`` their medians and IQRs / 1.349 on the training rows
        (``score_scales_``). Otherwise the backbone's ``score_samples``
        (for a VAE, a lower bound on the log-likelihood).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Normality score of each sample, float64. A row so far from the
            training rows that its scaled values overflow the networks'
            float32 arithmetic (squares beyond about 1e38) scores ``-inf``:
            the most abnormal, never NaN.
        """
        check_is_fitted(self, "offset_")
        X = self._validate_X(X, reset=False)
        return self._score_samples(X)

    def decision_function(self, X):
        """Return ``score_samples(X) - offset_``: negative for outliers.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        decision : ndarray of shape (n_samples,)
            Shifted normality score; below 0 for outliers.
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """Return +1 for inliers and -1 for outliers.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to classify.

        Returns
        -------
        is_inlier : ndarray of shape (n_samples,)
            -1 where ``decision_function(X) < 0``, else +1.
        """
        return np.where(self.decision_function(X) < 0, -1, 1)

    def score(self, X, y=None):
        """Return the mean of ``score_samples(X)``: higher is better.

        Lets :class:`~sklearn.model_selection.GridSearchCV` tune the detector
        without labels, by how well it models held-out rows. Compare only
        settings of the same ``backbone`` and ``scaling``: scores of
        different models are in different units. With ``backbone='ae'``
        each fit standardizes its scores on its own training rows, so
        ``score`` tells how much worse held-out rows are modelled than
        training rows (overfitting), not which ensemble reconstructs best;
        tune it with labels, or use a VAE backbone's likelihood.

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

    # Parameters added since detectors were first saved, with the value that
    # describes an earlier detector (it had no isolation score), and the
    # fitted attributes such a detector lacks: unpickling and
    # sklearn_ae.load fill them in, so it keeps scoring, and describing
    # itself, as it was fitted.
    _added_params = {"isolation_weight": 0.0}
    _added_fitted = {"isolation_trees_": None}

    def __setstate__(self, state):
        for name, value in self._added_params.items():
            state.setdefault(name, value)
        if "offset_" in state:
            for name, value in self._added_fitted.items():
                state.setdefault(name, value)
        super().__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
