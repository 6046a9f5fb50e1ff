"""``AEOutlierDetector``: outlier detection from autoencoder reconstruction."""

import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import OutlierMixin, _fit_context, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import _num_samples, check_is_fitted

from ._base import _BaseAutoencoder, _restore_on_error
from ._data import feature_scaling
from ._ensemble import EnsembleAutoencoder, TrimmedEnsembleLoss


def robust_scaling(X):
    """Return per-feature ``(median, IQR / 1.349)`` of ``X``.

    The IQR is scaled to match the standard deviation on normal data. A
    feature whose IQR is zero (mostly one value, e.g. binary or count
    features) falls back to its standard deviation, and a constant feature to
    1, so no feature is divided by (nearly) zero. Sparse ``X`` gets z-scores.
    """
    if sp.issparse(X):
        return feature_scaling(X)
    _, std = feature_scaling(X)
    q1, median, q3 = np.percentile(np.asarray(X, dtype=np.float64), [25, 50, 75], axis=0)
    scale = (q3 - q1) / 1.349
    tiny = 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(median))
    return median, np.where(scale < tiny, std, scale)


class AEOutlierDetector(OutlierMixin, _BaseAutoencoder):
    """Outlier detection from the reconstruction error of autoencoders.

    A small ensemble of autoencoders learns to reconstruct the training
    data; rows it reconstructs badly are outliers. The training data may be
    contaminated (hold unlabelled outliers); the defaults were chosen on 17
    real tabular data sets of the ADBench benchmark, all with one setting,
    to cope with that (see ``benchmarks/OUTLIER_NOTES.md``):

    - each member is a wide, regularised network (dropout and batch norm)
      on a random subset of the features, trained for a short fixed number
      of epochs; the members are trained together, as one torch module;
    - each member leaves the worst-reconstructed ``trim_fraction`` of every
      batch out of its loss, so the likeliest outliers are not learned;
    - training uses at most ``max_samples`` rows, which bounds the time on
      large data sets.

    It follows the outlier-detection contract of
    :class:`~sklearn.ensemble.IsolationForest`: ``score_samples`` is higher
    for more normal rows, ``decision_function = score_samples - offset_`` is
    negative for outliers and ``predict`` returns +1 (inlier) or -1
    (outlier).

    Parameters
    ----------
    n_components : int, default=32
        Code size of each autoencoder. With dropout and a short training, a
        code as wide as the input still does not reconstruct everything.

    contamination : 'auto' or float, default='auto'
        Sets the threshold ``offset_`` on the scores of the training data.
        A float in (0, 0.5] is the expected proportion of outliers:
        ``offset_`` is that percentile of the training scores. ``'auto'``
        uses Tukey's rule: ``offset_ = Q1 - 1.5 * (Q3 - Q1)``, the lower
        fence of the training scores (Q1, Q3 their quartiles), so a row is
        an outlier when its reconstruction error is far above the bulk of
        the training rows'. The threshold does not change ``score_samples``.

    backbone : {'ae', 'vae'} or estimator, default='ae'
        The model behind ``score_samples``:

        - ``'ae'``: the ensemble of autoencoders described above;
          ``score_samples`` is minus the mean squared reconstruction error
          in scaled units, averaged over the members.
        - ``'vae'``: a :class:`~sklearn_ae.VAETransformer` built from this
          estimator's shared parameters (``n_components``,
          ``hidden_layer_sizes``, ``max_iter``, ...); ``score_samples`` is
          its log-likelihood bound. ``n_estimators``, ``max_features``,
          ``max_samples`` and ``trim_fraction`` do not apply; ``scaling``
          only switches the VAE's own z-scoring on or off.
        - an estimator with ``fit`` and ``score_samples`` (higher = more
          normal), e.g. ``VAETransformer(...)`` or
          ``AutoencoderTransformer(...)``: a clone is fitted and its
          ``score_samples`` is used; tune it through ``backbone__<name>``.
          This estimator's network parameters are then ignored.

    n_estimators : int, default=4
        Number of autoencoders in the ensemble.

    max_features : float in (0, 1], default=0.75
        Fraction of the features each autoencoder sees (at least one),
        drawn at random for each member.

    max_samples : int or None, default=1024
        Train on at most this many rows, drawn at random without
        replacement; None trains on all rows. Scores and the threshold use
        all rows.

    trim_fraction : float in [0, 1), default=0.2
        Fraction of the rows of each batch with the largest reconstruction
        error that each member leaves out of its training loss.

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
        Epochs without improvement allowed before stopping.

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
        ``standardize=True``).

    warm_start : bool, default=False
        When True and already fitted, ``fit`` continues training the fitted
        networks (keeping their scaling and feature subsets) on all of X.

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
    offset_ : float
        Threshold on ``score_samples``: ``decision_function = score_samples
        - offset_``.

    backbone_ : estimator or None
        The fitted backbone estimator for ``backbone='vae'`` or an estimator;
        None for ``backbone='ae'``, whose networks are ``net_``.

    net_ : AutoencoderNet
        The fitted skorch net of the ensemble (``backbone='ae'`` only);
        ``net_.history`` holds per-epoch losses and times.

    module_ : EnsembleAutoencoder
        The fitted ensemble (``net_.module_``); ``module_.feature_mask``
        tells which features each member sees.

    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit. Defined only when X has feature
        names that are all strings.

    mean_ : ndarray of shape (`n_features_in_`,) or None
        Per-feature centre removed before training (the median with
        ``scaling='robust'``; None without scaling).

    scale_ : ndarray of shape (`n_features_in_`,) or None
        Per-feature scale divided out before training.

    loss_curve_ : list of float
        Mean trimmed training loss of each epoch (scaled units; features
        outside a member's subset count as zero error).

    n_iter_ : int
        Number of epochs run (the backbone's ``n_iter_`` when it has one).

    device_ : torch.device
        Device the fitted networks live on.

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

    def _input_scaling(self, X):
        if self.scaling == "robust":
            return robust_scaling(X)
        return feature_scaling(X)

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
        if isinstance(self.backbone, str) and self.backbone == "ae":
            self.backbone_ = None
            self._fit_ensemble(X)
            X = self._validate_X(X, reset=False)
        else:
            X = self._validate_X(X, reset=True)
            with warnings.catch_warnings():
                if isinstance(self.backbone, str):  # max_iter is ours: see its doc
                    warnings.simplefilter("ignore", ConvergenceWarning)
                self.backbone_ = clone(self._backbone_estimator()).fit(X)
            if hasattr(self.backbone_, "n_iter_"):
                self.n_iter_ = self.backbone_.n_iter_
        scores = self._score_samples(X)
        self._check_training_scores(scores)
        if self.contamination == "auto":
            q1, q3 = np.percentile(scores, [25, 75])
            self.offset_ = float(q1 - 1.5 * (q3 - q1))
        else:
            self.offset_ = float(np.percentile(scores, 100.0 * self.contamination))
        return self

    def _fit_ensemble(self, X):
        n_samples = _num_samples(X)
        if self.max_samples is not None and n_samples > self.max_samples and not (
            self.warm_start and hasattr(self, "net_")
        ):
            if sp.issparse(X):
                X = X.tocsr()  # COO, DIA... cannot be indexed by row
            rng = check_random_state(self.random_state)
            rows = np.sort(rng.choice(n_samples, self.max_samples, replace=False))
            X = _safe_indexing(X, rows)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self._fit(X)

    def _backbone_estimator(self):
        if isinstance(self.backbone, str):
            from ._vae import VAETransformer

            shared = set(VAETransformer().get_params()) & set(self.get_params(deep=False))
            params = {name: getattr(self, name) for name in shared}
            params.update(vars(self).get("_extra_params", {}))  # optimizer__*
            return VAETransformer(standardize=self.scaling is not None, **params)
        return self.backbone

    def _member_errors(self, X):
        """Return ``(n_samples, n_estimators)``: each member's mean squared
        error over its features, in scaled units."""

        # Asking _map_batches for float64 gives a float64 copy of the module
        # in eval mode: a row's score is then the same to the last digits
        # whether it is scored alone or in a batch (float32 batched products
        # round differently for one row and for many).
        counts = self.module_.feature_mask.sum(dim=1).double()

        def errors(module, xb):
            squared = (module(xb) - xb.unsqueeze(0)).square()
            return (squared.sum(dim=2) / counts.to(xb.device).unsqueeze(1)).T

        return self._map_batches(X, errors, np.float64)

    def _score_samples(self, X):
        if self.backbone_ is None:
            return -np.mean(self._member_errors(X), axis=1)
        return np.asarray(self.backbone_.score_samples(X), dtype=np.float64)

    # -------------------------------------------------------------- inference
    def score_samples(self, X):
        """Return how normal each sample is: the higher, the more normal.

        For ``backbone='ae'``, minus the mean squared reconstruction error in
        scaled units, averaged over the ensemble's members (each over its
        own features). Otherwise the backbone's ``score_samples`` (for a
        VAE, a lower bound on the log-likelihood).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Normality score of each sample, float64.
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
        different models are in different units.

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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
