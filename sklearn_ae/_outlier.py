"""``AEOutlierDetector``: outlier detection from autoencoder reconstruction."""

from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import OutlierMixin, _fit_context, clone
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils.validation import _num_samples, check_is_fitted

from ._base import _BaseAutoencoder
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
    mean, std = feature_scaling(X)
    q1, median, q3 = np.percentile(np.asarray(X, dtype=np.float64), [25, 50, 75], axis=0)
    scale = (q3 - q1) / 1.349
    tiny = 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(median))
    scale = np.where(scale < tiny, std, scale)
    return median, scale


class AEOutlierDetector(OutlierMixin, _BaseAutoencoder):
    """Outlier detection from the reconstruction error of autoencoders.

    Work in progress.
    """

    _parameter_constraints: dict = {
        **{k: v for k, v in _BaseAutoencoder._parameter_constraints.items() if k != "loss"},
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        "backbone": [StrOptions({"ae", "vae"}), HasMethods(["fit", "score_samples"])],
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
        "max_features": [Interval(Real, 0, 1, closed="right")],
        "trim_fraction": [Interval(Real, 0, 1, closed="left")],
        "scaling": [StrOptions({"robust", "standard"})],
        "max_samples": [Interval(Integral, 1, None, closed="left"), None],
        "normalize_errors": ["boolean"],
    }

    # The reconstruction loss is always the squared error of scaled inputs.
    loss = "mse"

    def __init__(
        self,
        n_components=2,
        *,
        contamination="auto",
        backbone="ae",
        n_estimators=8,
        max_features=0.5,
        trim_fraction=0.0,
        scaling="robust",
        normalize_errors=False,
        max_samples=None,
        hidden_layer_sizes=(32, 16),
        activation="relu",
        dropout=0.0,
        batch_norm=False,
        learning_rate=1e-3,
        weight_decay=0.0,
        batch_size="auto",
        max_iter=50,
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
    ):
        self.n_components = n_components
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
        self.standardize = standardize
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.contamination = contamination
        self.backbone = backbone
        self.n_estimators = n_estimators
        self.max_features = max_features
        self.trim_fraction = trim_fraction
        self.scaling = scaling
        self.normalize_errors = normalize_errors
        self.max_samples = max_samples

    # ------------------------------------------------------------------ hooks
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
    def fit(self, X, y=None):
        """Fit the detector to (possibly contaminated) X."""
        if isinstance(self.backbone, str) and self.backbone == "ae":
            n = _num_samples(X)
            if self.max_samples is not None and n > self.max_samples:
                rows = check_random_state(self.random_state).choice(n, self.max_samples, replace=False)
                self._fit(_safe_indexing(X, np.sort(rows)))
            else:
                self._fit(X)
            X = self._validate_X(X, reset=False)
            self.backbone_ = None
            self._set_error_normalisation(X)
        else:
            X = self._validate_X(X, reset=True)
            self.backbone_ = clone(self._backbone_estimator()).fit(X)
        scores = self._raw_score_samples(X)
        if self.contamination == "auto":
            q1, q3 = np.percentile(scores, [25, 75])
            self.offset_ = float(q1 - 1.5 * (q3 - q1))
        else:
            self.offset_ = float(np.percentile(scores, 100.0 * self.contamination))
        return self

    def _backbone_estimator(self):
        if isinstance(self.backbone, str):
            from ._vae import VAETransformer

            shared = set(VAETransformer().get_params()) & set(self.get_params(deep=False))
            return VAETransformer(**{k: getattr(self, k) for k in shared})
        return self.backbone

    def _member_errors(self, X, dtype):
        """Per-row, per-member, per-feature squared errors -> (B,) scores."""
        norm = None
        if getattr(self, "feature_error_scale_", None) is not None:
            norm = torch.as_tensor(self.feature_error_scale_, dtype=torch.float32,
                                   device=self.net_.device).unsqueeze(1)

        def errors(module, xb):
            mask = module.feature_mask.unsqueeze(1).to(xb.dtype)
            sq = (module(xb) - xb.unsqueeze(0)).square()
            if norm is not None:
                sq = sq / norm
            per_member = sq.sum(dim=2) / mask.sum(dim=2)
            return per_member.mean(dim=0)

        return self._map_batches(X, errors, dtype)

    def _set_error_normalisation(self, X):
        self.feature_error_scale_ = None
        if not self.normalize_errors:
            return

        def feature_errors(module, xb):
            return (module(xb) - xb.unsqueeze(0)).square().transpose(0, 1)

        errs = self._map_batches(X, feature_errors, np.float64)  # (n, M, F)
        scale = errs.mean(axis=0)
        floor = 1e-2 * scale[scale > 0].mean() if np.any(scale > 0) else 1.0
        self.feature_error_scale_ = np.maximum(scale, floor)

    def _raw_score_samples(self, X):
        if self.backbone_ is None:
            return -self._member_errors(X, self._output_dtype(X))
        return np.asarray(self.backbone_.score_samples(X), dtype=np.float64)

    # -------------------------------------------------------------- inference
    def score_samples(self, X):
        """Return the normality score of each sample: higher is more normal."""
        check_is_fitted(self, "offset_")
        X = self._validate_X(X, reset=False)
        return self._raw_score_samples(X)

    def decision_function(self, X):
        """Return ``score_samples(X) - offset_``: negative for outliers."""
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """Return +1 for inliers and -1 for outliers."""
        is_inlier = np.ones(len(self.decision_function(X)), dtype=int)
        is_inlier[self.decision_function(X) < 0] = -1
        return is_inlier

    def score(self, X, y=None):
        """Return the mean of ``score_samples(X)``."""
        return float(np.mean(self.score_samples(X)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
