"""``VAETransformer``: a variational autoencoder with a log-likelihood score."""

import math
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from scipy.linalg import cho_factor, cho_solve
from scipy.stats import binom
from sklearn.base import (
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.decomposition import PCA, FactorAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import (
    Interval,
    StrOptions,
    validate_parameter_constraints,
    validate_params,
)
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from skorch.callbacks import Callback, LRScheduler

from ._base import _INFERENCE_ROWS, _BaseAutoencoder, _unit_interval_breach, resolve_n_jobs
from ._callbacks import KLWarmup
from ._losses import NegativeELBO, gaussian_kl, log_importance_weight, log_likelihood
from ._custom import _NETWORK_PREFIXES, _CustomNetworksMixin, run_network
from ._networks import VariationalAutoencoder, structured_branches
from ._random import current_generator
from ._shapes import as_ints, check_conv_params, check_input_shape, flatten_shaped

# Smallest observation variance of the Gaussian decoder, as a fraction of
# the feature's variance on the training rows in the units the network sees
# (features constant there: see _variance_floor): a feature the decoder
# predicts exactly then gets a finite variance, never an infinite score on
# a new row. The fraction is chosen with the linear start, on held-out
# rows, among _VARIANCE_FLOORS (largest first, which wins ties);
# _VARIANCE_FLOOR where none are held out. A fixed 1e-3 cost the start
# about 20 nats on 12_fault's 11 exactly dependent columns (k=16), where
# held-out rows follow the training rows exactly; where they do not, a
# small floor loses the held-out comparison by far.
_VARIANCE_FLOOR = 1e-3
_VARIANCE_FLOORS = (1e-3, 1e-6, 1e-9, 1e-12)
# Smallest variance of a feature constant in training, as a fraction of the
# features' mean variance: at 1e-12, the loss of a feature predicted to
# about 1e-22 was at the mercy of Adam's first steps (on 140 rows of
# digits, five never-inked pixels took the validation loss from -49 to 4e6
# nats in one epoch, a diverged fit).
_CONSTANT_FEATURE_FLOOR = 1e-6
# Variance of a feature constant on the training rows, as a fraction of the
# features' mean variance, for rows that keep the constant (see
# _constant_feature_model): factor analysis's floor on z-scored data.
_CONSTANT_VARIANCE = 1e-12
# Most values (rows x features) of the training data that the probabilistic
# PCA and factor-analysis fits of the linear start see, and fewest rows:
# FactorAnalysis's EM costs O(rows * features * n_components) per
# iteration, and 512 features get about 20,000 rows. Fewer cost accuracy:
# fitted to 1,953 of CIFAR10_0's 3,684 training rows, factor analysis
# scored -1308 nats held out at n_components=16 (floored variances) against
# -598 on all of them.
_LINEAR_START_VALUES = 10_000_000
_LINEAR_START_MIN_ROWS = 1000
# FactorAnalysis's stopping rule for the linear start: a rise of the
# log-likelihood below this many nats per row, or this many EM iterations.
# At 1e-3 the EM stopped while noise variances of exactly determined columns
# were still heading for 0 (one-hot blocks summing to 1): on a campaign-like
# set (4,900 rows, 62 columns, k=4, seed 1) the start, and the VAE that
# kept it, scored 7.2 nats per held-out row below scikit-learn's
# FactorAnalysis; at 1e-5, 0.02 above (chosen on that set). On the
# representation panel (seeds 0 and 1) held-out ELBOs moved by -0.59 to
# +0.58 nats and no run crossed its bar; the VAE fits timed there (CIFAR10_0,
# 24_mnist and 12_fault at k=16) took no longer.
_FA_TOL_PER_ROW = 1e-5
_FA_MAX_ITER = 200
# Fewer held-out rows than this, and the linear start (model and variance
# floor) is chosen by K-fold cross-validation over all the training rows
# instead: a mean over a few rows is noise next to the gaps between the
# candidates. Chosen on training draws of 50 to 400 rows of four ADBench
# sets (cover, letter, satellite, thyroid; z-scored, 4 and 16 components;
# judged on up to 20,000 new rows): with fewer than 20 validation rows the
# split's choice lost more than the bar (1 nat or 1%) in 9 of 90
# draws, cross-validation's in 4; from 20 rows on, neither ever did. CV is
# not free of bias: a row held out is new to its fold's model, and on sets
# with rare values (ADBench's mnist, digits, shuttle, fault) it judged
# factor analysis worse than new rows did, losing the bar more often than
# the split at every size (mnist: 31 of 40 draws against 14 at 20 to 40
# validation rows): held out, a value that one other training row shares
# is, to its fold's model, a one-off that factor analysis fits exactly
# (4,000 nats lost on one row of 300 digits), where the model of every
# row has seen it twice. So it stays where the split is noise; and large
# data pays one fit per candidate, not K.
_LINEAR_START_CV_ROWS = 20
# Held-out rows that every candidate of the linear start scores this many
# robust spreads below the median row are left out of the choice (see
# _explained_rows).
_UNEXPLAINED_ROW_SPREADS = 100.0
_LINEAR_START_CV_FOLDS = 5
# How far each training batch moves the decoder's variance toward the batch's
# mean squared residual: about ten batches of memory. But never below the
# linear start's noise variance, which held-out rows chose (it is the
# network's variance floor): left to track the training residuals down, the
# variances shrank below what new rows bear: on 42_WBC (k=4) the median held-out row gained 2.7
# nats but two rows lost 300 and 350 (mean -20.7 against factor analysis's
# -11.8), on digits (k=16) the median row gained 29 nats and one lost
# 31,000 (mean -127 against -35), and on 300 rows of CIFAR10_0 a PPCA start
# fell 180 nats below PPCA in 11 epochs, all while the validation ELBO
# rose (validation sets of 16 to 126 rows held none of those rows). Kept
# fixed: 42_WBC -11.0 (median row +1.1, worst -6.2), digits -53.4 (median
# row +9.0, worst -3.5), in the same fits. They may still grow: fixed, a
# variance of 1e-12 (an exactly dependent column) turned the first steps
# of the nonlinear branch into a diverged loss.
_VARIANCE_MOMENTUM = 0.1
# Epochs over which the learning rate rises linearly to learning_rate. The
# network starts at the optimum of its linear model, where Adam's first
# steps (each parameter moves by about the full step size, whatever its
# gradient) knock it off: on breast cancer at n_components=16 the held-out
# ELBO fell by 4 nats in the first epoch at full rate and took 15 epochs to
# come back; with the ramp it fell by 0.3.
_LR_WARMUP_EPOCHS = 10
# Seed of the latent draws used by score_samples, so that scores are the same
# on every call and never touch torch's global generator.
_SCORE_SEED = 0
# Fewest antithetic pairs of posterior draws averaged in the ELBO.
_ELBO_PAIRS = 5


class _LearningRateWarmup(Callback):
    """Raise every parameter group's learning rate linearly over the first
    ``n_epochs`` epochs of the net's history: epoch ``e`` (from 1) trains at
    ``e / n_epochs * lr``. Later epochs are left alone, so a warm start
    continues at full rate and a user's scheduler takes over afterwards."""

    def __init__(self, n_epochs):
        self.n_epochs = n_epochs

    def on_epoch_begin(self, net, **kwargs):
        epoch = len(net.history)  # skorch has already opened this epoch's row
        if epoch > self.n_epochs:
            return
        for group in net.optimizer_.param_groups:
            group["lr"] = epoch / self.n_epochs * net.lr


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


class _NegativeELBO(NegativeELBO):
    """``NegativeELBO`` that also reads outputs decoded at several draws.

    In evaluation mode the network decodes every row at the fixed draws of
    ``score_samples`` (its ``eval_noise``, a leading axis on ``decoded``):
    the loss is then the ELBO that ``score`` reports, averaged over those
    draws. The validation loss that early stopping compares across epochs,
    and against the linear start, is thus not one random draw per row (on
    100 validation rows at n_components=16 that noise is several nats per
    row, enough to restore a worse epoch or give up a better one).
    """

    def per_sample(self, output, target):
        if output.decoded.dim() == target.dim():
            return super().per_sample(output, target)
        weight = self.beta * (self.kl_weight if self.training else 1.0)
        expected = torch.stack(
            [
                log_likelihood(output._replace(decoded=decoded), target, self.likelihood)
                for decoded in output.decoded
            ]
        ).mean(dim=0)
        return -expected + weight * gaussian_kl(output.z_mean, output.z_log_var)


def linear_gaussian_log_likelihood(X, mean, W, noise_variance):
    """Return log N(x; mean, W W^T + diag(noise_variance)) of each row of ``X``.

    The density of probabilistic PCA and factor analysis, computed through
    the k x k matrix ``M = I + W^T Psi^-1 W`` (Woodbury), in float64.
    """
    n_features, n_factors = W.shape
    centered = X - mean
    scaled = W / noise_variance[:, None]
    M = np.eye(n_factors) + W.T @ scaled
    factor = cho_factor(M, lower=True)
    projected = centered @ scaled
    quadratic = np.einsum("ij,ij->i", centered, centered / noise_variance) - np.einsum(
        "ij,ij->i", projected, cho_solve(factor, projected.T).T
    )
    log_det = np.log(noise_variance).sum() + 2 * np.log(np.diag(factor[0])).sum()
    return -0.5 * (quadratic + log_det + n_features * math.log(2 * math.pi))


def _variance_floor(X, relative, parts=None):
    """Per-feature floor of the decoder's observation variances, for rows ``X``.

    ``relative`` times each feature's variance on these rows. A feature
    constant on them (variance at most 1e-12 of the features' mean) gets
    instead its leave-one-out maximum-likelihood variance: each row left
    out in turn, the features constant on the other rows predict it with
    one shared variance v, which maximises that held-out likelihood at
    ``v = sum(d ** 2) / (n_rows * n_constant + n_singletons)``, where the
    ``n_singletons`` features off their common value in exactly one row
    (by ``d``) are constant once that row is left out. With no such
    feature nothing has broken a constant yet, and v is
    ``_CONSTANT_FEATURE_FLOOR`` times the mean variance. A fixed fraction cannot be
    right both ways: on digits, pixels that are 0 in all 1,257 training
    rows are 0 in the 540 held-out ones too, but on 100 training rows a
    held-out digit with ink where the training rows had none scored
    -1.3e11 nats under a 1e-12 floor (chosen on 10 validation rows that
    had none either). Returns ``(floor, constant)``: the floors and the
    mask of the constant features.
    """
    variance, constant, singleton, shared = parts if parts is not None else _floor_parts(X)
    floor = relative * variance
    if shared is not None:
        floor[constant] = shared
        # A feature off its common value in one row alone is, that row left
        # out, a constant feature: nothing but that row says the others
        # predict it, and factor analysis, given more features than rows,
        # predicts it to 1e-12 (on 210 rows of CIFAR10_0 embeddings two such
        # columns, each off in one validation row, were left at 1e-12 by
        # the start refitted on all rows, and the first epoch took the
        # validation loss from 624 to 7.8e7 nats: a diverged fit). Its
        # floor is that shared variance, at most its own variance.
        floor[singleton] = np.maximum(
            floor[singleton], np.minimum(shared, variance[singleton])
        )
    return floor, constant


def _floor_parts(X):
    """What ``_variance_floor`` needs of ``X`` whatever ``relative``:
    ``(variance, constant, singleton, shared)``; ``shared`` is None when no
    feature is constant or a singleton."""
    variance = X.var(axis=0)
    typical, constant = _constant_features(variance)
    deviation = X - np.median(X, axis=0)
    off = np.abs(deviation) > math.sqrt(1e-12 * typical)
    singleton = off.sum(axis=0) == 1
    shared = None
    if constant.any() or singleton.any():
        squared = float(np.sum(np.where(off, deviation, 0.0)[:, singleton] ** 2))
        count = len(X) * int(constant.sum()) + int(singleton.sum())
        shared = max(squared / count, _CONSTANT_FEATURE_FLOOR * typical)
    return variance, constant, singleton, shared


def _constant_features(variance):
    """Return ``(typical, constant)``: the features' mean ``variance`` (1
    where every variance is 0) and which features are constant, at most
    1e-12 of it."""
    typical = variance.mean() if variance.any() else 1.0
    return typical, variance <= 1e-12 * typical


def _constant_feature_model(X, center=None):
    """Find the features constant on training rows ``X`` (the user's units)
    and model them: return ``(mask, model)``, ``model`` None when none is.

    The maximum-likelihood variance of a feature that is constant on the
    training rows is 0, an infinite density, and any fixed small variance
    trades an arbitrary bonus on rows that keep the constant against an
    arbitrary penalty on a row that does not: factor analysis's 1e-12
    scored 13 nats per such pixel on held-out digits, and 1.3e11 nats were
    lost on a held-out digit with ink where 100 training rows had none.
    Each such feature is modelled instead, independently of the others, as
    the mixture ``(1 - p) N(c, v0) + p N(c, v1)``: a narrow component at
    its value ``c`` (``v0`` is ``_CONSTANT_VARIANCE`` times the features'
    mean variance: factor analysis's own floor on z-scored data), and a
    break of the constant with probability ``p`` and spread ``v1``, both
    estimated by leaving each row out in turn: a row left out breaks a
    constant of the other rows exactly where a feature is off its common
    value in that row alone (a "singleton", by ``d``), so with ``s``
    singletons among ``n_rows * n_constant + s`` such trials, ``p = (s + 1)
    / (n_rows * n_constant + s + 2)`` (Laplace's rule of succession) and
    ``v1 = (sum(d ** 2) + mean variance) / (s + 1)`` (one pseudo-break of
    the typical spread). A row that keeps the constants gains a finite
    bonus, and one that breaks one loses ``-log p`` and a Gaussian term
    of the typical break, never an absurd amount. ``center``: exact
    values of the constant features (the scaling's means) where ``X``
    went through float32.
    """
    variance = X.var(axis=0)
    typical, constant = _constant_features(variance)
    if not constant.any():
        return constant, None
    median = np.median(X, axis=0)
    deviation = X - median
    off = np.abs(deviation) > math.sqrt(1e-12 * typical)
    singleton = ~constant & (off.sum(axis=0) == 1)
    n_singletons = int(singleton.sum())
    squared = float(np.sum(np.where(off, deviation, 0.0)[:, singleton] ** 2))
    trials = len(X) * int(constant.sum()) + n_singletons
    value = np.asarray((median if center is None else center)[constant], dtype=np.float64)
    return constant, {
        "value": value,
        # Without ``center`` the values went through float32: never
        # narrower than its rounding.
        "variance": np.maximum(
            _CONSTANT_VARIANCE * typical,
            0.0 if center is not None else (np.finfo(np.float32).eps * value) ** 2,
        ),
        "break_probability": (n_singletons + 1) / (trials + 2),
        "break_variance": (squared + typical) / (n_singletons + 1),
    }


def _constant_log_density(X, model):
    """Log-density of rows ``X`` (the constant features only, the user's
    units) under ``_constant_feature_model``'s mixture, summed per row."""
    squared = (np.asarray(X, dtype=np.float64) - model["value"]) ** 2
    p = model["break_probability"]

    def log_normal(v):
        return -0.5 * (np.log(2 * np.pi * v) + squared / v)

    return np.logaddexp(
        np.log1p(-p) + log_normal(model["variance"]),
        np.log(p) + log_normal(model["break_variance"]),
    ).sum(axis=1)


def _constant_draws(model, n_samples, rng):
    """``n_samples`` rows drawn from ``_constant_feature_model``'s mixture
    (the constant features only, the user's units)."""
    breaks = rng.uniform(size=(n_samples, len(model["value"]))) < model["break_probability"]
    variance = np.where(breaks, model["break_variance"], model["variance"])
    return model["value"] + np.sqrt(variance) * rng.standard_normal(breaks.shape)


def _fit_linear_gaussian(kind, X, n_components, seed, scaling=None):
    """Fit probabilistic PCA or factor analysis to rows ``X`` of the network.

    ``kind``: ``'standardized_pca'`` (probabilistic PCA of ``X`` as the
    network sees it), ``'pca'`` (probabilistic PCA of the same rows in the
    units of the user's X, ``X * scale + center`` for ``scaling = (center,
    scale)``: scikit-learn's :class:`~sklearn.decomposition.PCA` model,
    isotropic in those units; without ``scaling`` the same as
    ``'standardized_pca'``) or ``'factor_analysis'`` (whose likelihood does
    not depend on the units). Returns ``(model, mean, W, noise_variance)``:
    the fitted scikit-learn estimator (in the units it was fitted in) and
    the parameters of x ~ N(mean, W W^T + diag(noise_variance)) in the
    network's units, before any variance floor. ``W`` has at most
    ``n_components`` columns (fewer when ``X`` is too narrow or short).
    """
    if kind == "pca" and scaling is not None:
        center, scale = scaling
        model, mean, W, noise_variance = _fit_linear_gaussian(
            "standardized_pca", X * scale + center, n_components, seed
        )
        return (
            model, (mean - center) / scale, W / scale[:, None], noise_variance / scale**2
        )
    n_samples, n_features = X.shape
    n_factors = max(0, min(n_components, n_features - 1, n_samples - 1))
    if n_factors == 0:
        mean = X.mean(axis=0)
        return None, mean, np.zeros((n_features, 0)), X.var(axis=0)
    if kind != "factor_analysis":
        model = PCA(n_components=n_factors, random_state=seed).fit(X)
        # The maximum-likelihood PPCA loadings (Tipping and Bishop, 1999),
        # as in PCA.get_covariance.
        excess = np.maximum(model.explained_variance_ - model.noise_variance_, 0.0)
        W = model.components_.T * np.sqrt(excess)
        noise_variance = np.full(n_features, float(model.noise_variance_))
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            # FactorAnalysis's tol is on the total log-likelihood, 1e-2 nats
            # whatever the number of rows; its EM crawls where variances head
            # for 0 (2,000 x 512 CIFAR10_0 rows at n_components=16: about a
            # minute), so it also stops at _FA_MAX_ITER iterations.
            model = FactorAnalysis(
                n_components=n_factors,
                tol=_FA_TOL_PER_ROW * n_samples,
                max_iter=_FA_MAX_ITER,
                random_state=seed,
            ).fit(X)
        W = model.components_.T
        noise_variance = model.noise_variance_
    return model, model.mean_, W, noise_variance


def _floored(fit, floor):
    """``fit`` (see ``_fit_linear_gaussian``) with noise variances raised to ``floor``."""
    model, mean, W, noise_variance = fit
    return model, mean, W, np.maximum(noise_variance, floor)


def _cross_validation_splits(X, n_folds, rng):
    """``n_folds`` pairs ``(X_train, X_test)`` that hold each row of ``X``
    out once, rows shuffled by ``rng`` (at most ``len(X)`` folds)."""
    folds = np.array_split(rng.permutation(len(X)), min(n_folds, len(X)))
    return [(X[np.sort(np.concatenate(folds[:i] + folds[i + 1 :]))], X[np.sort(fold)])
            for i, fold in enumerate(folds)]


def _held_out_log_likelihoods(splits, kinds, n_components, seed, scaling, keep):
    """Mean log-likelihood of the test rows of ``splits`` (pairs ``(X_train,
    X_test)`` in the network's units) under each candidate fitted to the
    train rows, at each relative variance floor: ``{(kind, relative):
    nats per row}`` over the features ``keep``, every test row counted once
    (NaN where a fit fails to give a density).

    Each split is scored as fit models the training rows: features
    constant on its train rows by their own mixture
    (``_constant_feature_model``, the same for every candidate), the
    candidate by its density of the others. Left to the candidates, such
    a feature gets a variance floor from rows that never broke it, and a
    test row that does costs a factor analysis, whose noise variance there
    is at that floor, about ``d ** 2 / 2e-6`` nats (-1.7e8 for one row of
    300 digits, at 4 components), where PPCA's isotropic noise holds: the
    one row decided the choice."""
    rows = {}
    for X_train, X_test in splits:
        parts = _floor_parts(X_train)
        floors = {r: _variance_floor(X_train, r, parts)[0] for r in _VARIANCE_FLOORS}
        modelled, base = keep, np.zeros(len(X_test))
        variance = parts[0][keep]
        # _constant_feature_model's test, without its median where no
        # feature is constant (0.4 s on 20,000 x 512 rows).
        if _constant_features(variance)[1].any():
            constant, constant_model = _constant_feature_model(X_train[:, keep])
            modelled = keep.copy()
            modelled[np.flatnonzero(keep)[constant]] = False
            base = _constant_log_density(X_test[:, keep][:, constant], constant_model)
        X_modelled = X_test[:, modelled]
        for kind in kinds:
            fit = _fit_linear_gaussian(kind, X_train, n_components, seed, scaling)
            for relative in _VARIANCE_FLOORS:
                _, mean, W, noise_variance = _floored(fit, floors[relative])
                try:
                    with np.errstate(all="ignore"):
                        row_scores = base + linear_gaussian_log_likelihood(
                            X_modelled, mean[modelled], W[modelled],
                            noise_variance[modelled],
                        )
                except np.linalg.LinAlgError:
                    row_scores = np.full(len(X_test), math.nan)
                rows.setdefault((kind, relative), []).append(row_scores)
    rows = {pair: np.concatenate(parts) for pair, parts in rows.items()}
    explained = _explained_rows(rows)
    return {
        # (a fit that failed on some split counts as failed: NaN)
        pair: math.nan if np.isnan(scores).any() else float(np.mean(scores[explained]))
        for pair, scores in rows.items()
    }


def _explained_rows(rows):
    """Which held-out rows some candidate explains: those whose best score
    over the candidates ``rows`` (``{pair: per-row log-likelihoods}``) is
    within ``_UNEXPLAINED_ROW_SPREADS`` robust spreads (1.4826 median
    absolute deviations) of the median row's best score.

    A row that no candidate explains says nothing about which one to
    start from, but its score decided the mean: three training rows at
    1,000 (or 10) standard deviations, one of them drawn into the
    validation rows (1.5e6 spreads below the median row), chose a
    variance floor of 1e-3 that cost clean held-out rows 11 to 22 nats
    (2.8 at 10 standard deviations). A row that one candidate explains and
    another does not (factor analysis's collapse on a rare value, -1e8
    nats, where PPCA's isotropic noise holds) stays, and decides, as it
    should. The bound is far out on purpose: rows of heavy-tailed data
    are information, not errors. At 20 spreads, one of 14 rows of
    linnerud (55 spreads below the median) was left out, the choice
    turned to factor analysis, and new rows, which have such rows too,
    scored 3.2 nats below PPCA; on breast cancer (k=16, 40 validation
    rows) a row at 73 spreads still decides, and the start it chooses can
    end 6.7 nats below factor analysis on new rows.
    """
    finite = [scores for scores in rows.values() if not np.isnan(scores).any()]
    if not finite:
        return np.ones(len(next(iter(rows.values()))), dtype=bool)
    best = np.max(finite, axis=0)
    center = np.median(best)
    spread = 1.4826 * np.median(np.abs(best - center))
    if not np.isfinite(center) or not spread > 0:
        return np.ones(len(best), dtype=bool)
    return best >= center - _UNEXPLAINED_ROW_SPREADS * spread


def _posterior_maps(W, noise_variance):
    """Rotate ``W`` so that the exact posterior over z has diagonal covariance.

    For x ~ N(mu, W W^T + Psi) the posterior of z given x is
    N(M^-1 W^T Psi^-1 (x - mu), M^-1) with M = I + W^T Psi^-1 W. The
    likelihood does not change when W is replaced by W V for an orthogonal
    V; with V the eigenvectors of W^T Psi^-1 W, M becomes diagonal, and so
    does the posterior covariance, which a diagonal Gaussian encoder can
    then represent exactly. Returns ``(W V, A, log_var)`` with posterior
    mean ``A (x - mu)`` and log-variances ``log_var``.
    """
    scaled = W / noise_variance[:, None]
    eigenvalues, V = np.linalg.eigh(W.T @ scaled)
    eigenvalues = np.maximum(eigenvalues, 0.0)
    posterior_var = 1.0 / (1.0 + eigenvalues)
    return W @ V, posterior_var[:, None] * (scaled @ V).T, np.log(posterior_var)


# How far past the fitted rows' posterior means the decoder branch's bound on
# each latent coordinate lies, in posterior standard deviations: the ELBO's
# draws (and most of the prior's, in sample) stay inside it.
_LATENT_MARGIN = 3.0


class _BranchBounds(Callback):
    """Bound the branches' inputs by the range of the training data at the
    end of training (see :func:`_set_branch_bounds`): after early stopping
    has restored its best weights, before a user's callbacks (a
    ``TrainEndCheckpoint`` saves the network the estimator keeps)."""

    def on_train_end(self, net, X=None, y=None, **kwargs):
        if X is not None:
            _set_branch_bounds(net.module_, X)


@torch.no_grad()
def _set_branch_bounds(module, data):
    """Bound ``module``'s branch inputs by what fitting showed them.

    The inputs' bound is each feature's range over the rows of ``data`` (the
    network's units, every row given to fit, validation rows included), the
    latent one each coordinate's range of their posterior means widened by
    ``_LATENT_MARGIN`` times the largest posterior standard deviation; see
    :class:`~sklearn_ae._networks.VariationalAutoencoder`. One pass of the
    encoder over ``data``, in evaluation mode. Bounds set before (training
    continued by ``partial_fit`` or a warm start) are widened to cover
    ``data`` too; a network without bounds gets those of ``data``.
    """
    widen = module.bounds_set
    training = module.training
    module.eval()
    low = high = z_low = z_high = spread = None
    try:
        for start in range(0, len(data), _INFERENCE_ROWS):
            x = module.pin_input(data.take(slice(start, start + _INFERENCE_ROWS)))
            z_mean, z_log_var = module.encode(x)
            batch = (
                x.amin(0), x.amax(0), z_mean.amin(0), z_mean.amax(0),
                (0.5 * z_log_var).exp().amax(0),
            )
            if low is None:
                low, high, z_low, z_high, spread = batch
                continue
            low, high = low.minimum(batch[0]), high.maximum(batch[1])
            z_low, z_high = z_low.minimum(batch[2]), z_high.maximum(batch[3])
            spread = spread.maximum(batch[4])
    finally:
        module.train(training)
    if low is None:
        return
    z_low, z_high = z_low - _LATENT_MARGIN * spread, z_high + _LATENT_MARGIN * spread
    if widen:
        low, high = low.minimum(module.input_low), high.maximum(module.input_high)
        z_low, z_high = z_low.minimum(module.latent_low), z_high.maximum(module.latent_high)
    module.set_bounds(low, high, z_low, z_high)


def _network_rows(dataset, max_rows, rng):
    """Return at most ``max_rows`` rows of a ``TensorData`` (drawn at random
    when there are more) as float64 numpy, in the network's units."""
    n = len(dataset)
    index = np.arange(n) if n <= max_rows else np.sort(rng.choice(n, max_rows, replace=False))
    return dataset.take(index).detach().cpu().numpy().astype(np.float64)


class VAETransformer(
    _CustomNetworksMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _BaseAutoencoder
):
    """Variational autoencoder with a log-likelihood score, trained with PyTorch.

    A probabilistic, nonlinear counterpart of probabilistic
    :class:`~sklearn.decomposition.PCA` and
    :class:`~sklearn.decomposition.FactorAnalysis`: a latent
    ``z ~ N(0, I)`` of ``n_components`` dimensions is decoded into the mean
    of p(x|z), and an encoder gives the Gaussian posterior q(z|x). Training
    maximises the evidence lower bound (ELBO) with Adam.

    The network contains the linear models it generalises: encoder and
    decoder each have a linear path beside their nonlinear branch, whose
    last layer starts at zero. At fit, probabilistic PCA (in the units of
    X, as :class:`~sklearn.decomposition.PCA` fits it, and in the units of
    the internal scaling) and factor analysis (where there are more rows
    than features) are fitted to the training data, the best on held-out
    rows (by 5-fold cross-validation over the training rows where the
    validation split is small) is written into the linear paths (the
    decoder's mean, the per-feature
    observation variances, and the encoder's exact posterior), so that
    before its first step the VAE *is* that model: its ELBO equals the
    model's log-likelihood. Training moves on from there, and early
    stopping on held-out rows keeps the best epoch. Starting from the
    linear model rather than from random weights is what keeps the VAE from
    losing to :class:`~sklearn.decomposition.PCA` and
    :class:`~sklearn.decomposition.FactorAnalysis` on data where a linear
    model is what there is to find.

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
        uses them in reverse order; these nonlinear branches are added to
        the linear paths. ``()`` gives linear encoder and decoder only (with
        a Gaussian likelihood, a factor-analysis model, which starts at
        :class:`~sklearn.decomposition.FactorAnalysis`'s solution or
        probabilistic PCA's and is trained further). The default is wider
        than :class:`AutoencoderTransformer`'s ``(64, 32)``: on the
        512-feature CIFAR10_0 embeddings the held-out log-likelihood rose
        from about 250 to about 300 nats per sample (measured before the
        linear start), with early stopping
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
        the mean and each feature has a variance: it starts at the linear
        model's noise variance, then tracks the mean squared residual of
        that feature, but never below that start (left to track the
        training residuals down, variances shrank below what new rows bear:
        on digits at n_components=16 the median held-out row gained 29 nats
        and one lost 31,000). The start's variances are floored at a fraction
        of the feature's variance in the units the network sees, so that a
        feature predicted exactly cannot make the likelihood of a new row
        absurd. The fraction (``variance_floor_``) is chosen with the linear
        start, on held-out rows. Features constant on the training rows
        are not modelled by the network (it neither reads nor predicts
        them): each gets its own density, a mixture of a narrow Gaussian at
        its value and a rare break whose rate and spread are estimated by
        leaving each training row out (see ``constant_feature_model_``), so
        that rows keeping the constant gain a finite bonus and a row that
        breaks it loses a finite, modest amount, whatever the units. Only
        the Gaussian decoder starts from the linear model.
        ``'bernoulli'``: the decoder gives the
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
        The optimizer's step size. With the default Adam it is reached
        linearly over the first 10 epochs: at full rate, Adam's first steps
        knock the network off the linear model's optimum it starts at. The
        ramp is left out with another ``optimizer`` and when ``callbacks``
        hold a :class:`skorch.callbacks.LRScheduler`, which then sets the
        rate alone.

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

    n_iter_no_change : int, default=30
        Epochs without improvement allowed before stopping. Chosen among 5
        to 59 on half of a panel of data sets (glass, wine, vowels,
        annthyroid, 300 rows of CIFAR10_0, from the linear start with the
        learning-rate ramp): 30 and more gave the best held-out ELBO,
        fewer stopped while it was still rising. With ``early_stopping``,
        at least as many epochs as make 100 optimizer steps (on a small
        data set an epoch is one or two steps).

    early_stopping : bool, default=True
        Whether to hold out ``validation_fraction`` of the training data,
        stop when its negative ELBO stops improving, and restore the weights
        of the best epoch. On by default, unlike
        :class:`AutoencoderTransformer`: a density model is judged on data it
        has not seen, and a VAE's held-out likelihood peaks long before its
        training likelihood does (on CIFAR10_0, about 305 nats held-out at
        the best epoch, 288 after 200 epochs without stopping; measured
        before the linear start). The validation ELBO is computed as
        ``score`` computes it, over the same fixed, balanced posterior
        draws: one random draw per row, on a small validation split, is
        noisy enough to restore a worse epoch than the linear start. A run
        that diverges after its first epoch is stopped and the best epoch's
        weights (the linear start, or a better epoch) are restored, with a
        ``ConvergenceWarning``; without early stopping, or in the first
        epoch, divergence raises ``ValueError``.

    validation_fraction : float, default=0.1
        Fraction of the training data held out when ``early_stopping=True``.

    standardize : bool, default=True
        Whether to z-score each feature internally before training, with
        a floor on each feature's scale at a tenth of the median feature's
        standard deviation (unlike :class:`AutoencoderTransformer`'s floor,
        this one depends on the units of the other features). Scores are
        still log-densities of X in its own units: the scaling's
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
        ``callbacks``, ``verbose``'s record, early stopping
        (``early_stopping``, ``n_iter_no_change``, ``tol``), ``kl_warmup``
        and the learning-rate ramp (Adam's only, see ``learning_rate``)
        are built afresh for each fit, as in a first fit, and both ramps
        count the network's epochs over all its fits; the validation rows
        stay the earlier fit's while ``validation_fraction`` does, and the
        loss takes the current ``beta``. Parameters that describe another
        network or ``likelihood`` raise ``ValueError``.

    input_shape : tuple of int, default=None
        Shape of each sample, for the structured networks that
        :class:`AutoencoderTransformer` builds from the same parameters
        (one builder): ``(channels, height, width)`` a convolutional
        encoder (``hidden_layer_sizes`` channels, ``conv_kernel_size``,
        ``conv_strides``) and a transposed-convolutional decoder;
        ``(n_timesteps, n_channels)`` stacked LSTMs. They are the nonlinear
        branches beside the linear paths, with zeroed output layers, so the
        start is still the linear model's. X may be flat rows or an array
        of shape ``(n_samples, *input_shape)``; every output is flat rows.
        None: fully connected branches.

    conv_kernel_size : int or tuple of int, default=3
        Kernel size of each convolution of a 3-D ``input_shape``; see
        :class:`AutoencoderTransformer`.

    conv_strides : int or tuple of int, default=2
        Stride of each convolution of a 3-D ``input_shape``.

    encoder : class, callable or torch.nn.Module, default=None
        A custom network for the encoder's nonlinear branch, given and
        built as in :class:`AutoencoderTransformer` (a class is called with
        the ``encoder__*`` parameters, and with ``n_features`` and
        ``n_components`` where its signature takes them; a module instance
        is copied). It must map a float32 batch ``(n, n_features)``
        (standardized when ``standardize=True``) to ``(n, 2 *
        n_components)``: the posterior's mean and log-variance, in that
        order. Unlike :class:`AutoencoderTransformer`'s custom networks,
        which replace the network, these are the branches beside the
        linear paths: their output layers (the last linear or convolution
        layer registered) are zeroed, so that training still starts at the
        linear model (PPCA or factor analysis). Shapes are checked at fit.

    decoder : class, callable or torch.nn.Module, default=None
        The matching decoder branch, from codes ``(n, n_components)`` to
        ``(n, n_features)`` (the Gaussian mean, or Bernoulli logits), built
        from the ``decoder__*`` parameters. Required with ``encoder``.


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

    **params : dict
        ``optimizer__*`` parameters of the optimizer, and ``encoder__*`` and
        ``decoder__*`` parameters of custom networks.

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

    linear_start_ : {'pca', 'standardized_pca', 'factor_analysis'} or None
        The linear model the network started from: the one with the highest
        log-likelihood on held-out rows, refitted on all training rows; the
        first among ties. The held-out rows are the early-stopping
        validation rows (without early stopping, a ``validation_fraction``
        of the rows) where there are at least 20 of them; with fewer, a
        mean over so few rows is noise next to the gaps between the
        candidates (on 42 rows of 20 features, 5 validation rows chose
        factor analysis, 2 nats below probabilistic PCA on new rows at 16
        components), and the candidates are compared by 5-fold
        cross-validation instead: each refitted on four fifths of the
        training rows and scored on the fifth left out, so that every
        training row is held out once (features constant on a fold's rows
        scored as fit scores constant features).
        ``'pca'``: probabilistic PCA of X in its own units, the model of
        :class:`~sklearn.decomposition.PCA` (isotropic noise in those
        units); ``'standardized_pca'``: probabilistic PCA of the internally
        scaled data (isotropic there; only with ``standardize=True`` and
        features of different scales, else it is the same model);
        ``'factor_analysis'``: compared on the validation rows, a
        candidate only with more rows to fit than modelled features (with
        fewer, the sample covariance is singular and its noise variances
        can go to 1e-12 on columns the rows happen to fit, which a few
        validation rows may not show); cross-validated, always a
        candidate, as every training row tests it. All are
        fitted to at most ``max(1000, 10**7 // n_features)`` rows drawn at
        random (about 20,000 for 512 features), which keeps
        their cost small next to training's. With too few rows to
        hold any out, probabilistic PCA. None for
        ``likelihood='bernoulli'``.

    linear_start_scores_ : dict or None
        Held-out mean log-likelihood of each candidate (at its best variance
        floor, with the constant features' density), in nats per sample of
        X's units, keyed by the names of ``linear_start_``: on the validation
        rows, or where those are fewer than 20, the cross-validated mean
        over every training row (each scored by the candidate fitted to the
        folds without it; see ``linear_start_``). Rows that every candidate
        scores more than 100 robust spreads below the median row (a data
        error at 1,000 standard deviations, say) are left out: they tell the
        candidates apart by nothing but their tails. None where no rows were
        held out.

    variance_floor_ : float or None
        The Gaussian decoder's smallest observation variance, as a fraction
        of each feature's variance on the training rows in the units the
        network sees: the one of 1e-3, 1e-6, 1e-9 and 1e-12 under which the
        linear start scored best on the held-out rows (with
        ``linear_start_``, and as it is: cross-validated on small data;
        the largest among ties), 1e-3 where no rows were
        held out. Training rows cannot make this choice: a smaller floor
        always fits them better. Features constant on the training rows
        share one floor, ``sum(d ** 2) / (n_rows * n_constant +
        n_singletons)``, the maximiser of their leave-one-out likelihood,
        where ``d`` are the deviations of the ``n_singletons`` features off
        their common value in exactly one row (1e-6 of the features' mean
        variance when there are none): an estimate of how often, and how
        far, a new row breaks a constant (the network pins features
        constant on all the training rows, see ``constant_features_``; the
        floor matters for those constant on the rows a candidate is fitted
        to). A feature off its common value in one row alone gets that
        floor too, at most its own variance: leaving that row out it is
        constant, and on few rows factor analysis predicts it to 1e-12. None
        for ``likelihood='bernoulli'``.

    linear_model_ : PCA, FactorAnalysis or None
        The fitted model named by ``linear_start_``: for ``'pca'`` fitted to
        X in its own units, for the others in the units the network sees
        (``(X - mean_) / scale_``); for factor analysis with the floored
        noise variances the network starts with.

    constant_features_ : ndarray of int or None
        Indices of the features constant on the training rows (those the
        linear start sees, see ``linear_start_``; variance at most 1e-12 of
        the features' mean), pinned in the network and scored
        by ``constant_feature_model_``. Empty where there are none, and
        after a first ``partial_fit`` (a feature constant in one chunk may
        vary in the next); None for ``likelihood='bernoulli'``.

    constant_feature_model_ : dict or None
        The density of each constant feature ``x`` in the units of X, added
        to ``score_samples``: ``(1 - p) N(x; c, v0) + p N(x; c, v1)``, with
        keys ``'value'`` (``c`` per feature), ``'variance'`` (``v0`` per
        feature, 1e-12 of the features' mean variance, factor analysis's
        floor on z-scored data; with ``standardize=False``, at least the
        float32 rounding of ``c``, squared), ``'break_probability'`` (``p``) and ``'break_variance'``
        (``v1``). Leaving each training row out in turn, the features
        constant on the other rows are these and any feature off its
        common value in that row alone (a break, by ``d``); with ``s``
        breaks in ``n_rows * n_constant + s`` such trials, ``p = (s + 1) /
        (n_rows * n_constant + s + 2)`` (Laplace's rule of succession) and
        ``v1 = (sum(d ** 2) + mean variance) / (s + 1)``. None where no
        feature is constant.

    validation_scores_ : list of float or None
        With ``early_stopping``, the held-out ELBO per sample of each epoch
        (in the units of ``score``, over the same fixed posterior draws, so
        ``score`` of the validation rows gives the restored epoch's value;
        with ``beta != 1``, the objective with that weight); None without
        it and after ``partial_fit``.

    best_validation_score_ : float or None
        Held-out ELBO of the weights that were restored: the best epoch's
        (each new best must beat the one before by ``tol``, so a later
        epoch may score a little higher), or the linear start's (epoch 0)
        where no epoch beat it; None without early stopping.

    n_iter_ : int
        Number of epochs run (across warm starts).

    n_samples_seen_ : int
        Number of training rows behind the fitted model: those of the
        ``fit`` that built it (the validation rows included) or of the first
        ``partial_fit`` call, plus those of every ``partial_fit`` call
        since. A ``warm_start`` fit keeps the fitted scaling and leaves it
        unchanged. ``partial_fit``'s running mean and variance weigh a new
        chunk against it.

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
    >>> Z = vae.fit_transform(X)
    >>> Z.shape
    (569, 4)
    >>> vae.score_samples(X[:3]).shape
    (3,)
    >>> vae.sample(10, random_state=0).shape
    (10, 30)

    A convolutional VAE on images given as an array, and one with your own
    networks as the nonlinear branches:

    >>> import torch
    >>> from sklearn.datasets import load_digits
    >>> digits = load_digits().data[:100].reshape(-1, 1, 8, 8) / 16
    >>> conv_vae = VAETransformer(
    ...     n_components=2, input_shape=(1, 8, 8), hidden_layer_sizes=(4,),
    ...     conv_kernel_size=3, conv_strides=2, likelihood="bernoulli",
    ...     max_iter=2, random_state=0,
    ... ).fit(digits)
    >>> conv_vae.sample(3, random_state=0, kind="mean").shape
    (3, 64)
    >>> class Encoder(torch.nn.Module):
    ...     def __init__(self, n_features, n_components, width=16):
    ...         super().__init__()
    ...         self.net = torch.nn.Sequential(
    ...             torch.nn.Linear(n_features, width), torch.nn.ReLU(),
    ...             torch.nn.Linear(width, 2 * n_components))
    ...     def forward(self, x):
    ...         return self.net(x)
    >>> class Decoder(torch.nn.Module):
    ...     def __init__(self, n_features, n_components):
    ...         super().__init__()
    ...         self.net = torch.nn.Sequential(
    ...             torch.nn.Linear(n_components, 16), torch.nn.ReLU(),
    ...             torch.nn.Linear(16, n_features))
    ...     def forward(self, z):
    ...         return self.net(z)
    >>> custom = VAETransformer(
    ...     n_components=2, encoder=Encoder, decoder=Decoder, encoder__width=8,
    ...     max_iter=2, random_state=0,
    ... ).fit(X)
    >>> custom.transform(X[:3]).shape
    (3, 2)
    """

    # optimizer__*, and encoder__*/decoder__* of custom networks.
    _param_prefixes = _BaseAutoencoder._param_prefixes + _NETWORK_PREFIXES

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
        "input_shape": [tuple, list, None],
        "conv_kernel_size": [Interval(Integral, 1, None, closed="left"), tuple, list],
        "conv_strides": [Interval(Integral, 1, None, closed="left"), tuple, list],
        "encoder": [callable, None],
        "decoder": [callable, None],
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
        n_iter_no_change=30,
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
        input_shape=None,
        conv_kernel_size=3,
        conv_strides=2,
        encoder=None,
        decoder=None,
        optimizer=torch.optim.Adam,
        **params,
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
        self.input_shape = input_shape
        self.conv_kernel_size = conv_kernel_size
        self.conv_strides = conv_strides
        self.encoder = encoder
        self.decoder = decoder
        self.optimizer = optimizer
        # optimizer__*, encoder__*, decoder__*: stored as given and checked
        # in fit (see _BaseAutoencoder._param_prefixes).
        self._extra_params = dict(params)

    # ------------------------------------------------------------------ hooks
    def _build_module(self, n_features):
        branches = None
        if self.encoder is not None:
            branches = (
                self._custom_network("encoder", n_features),
                self._custom_network("decoder", n_features),
            )
            self._check_branch_shapes(*branches, n_features)
        elif self.input_shape is not None:
            branches = structured_branches(
                self.input_shape, 2 * self.n_components, self.n_components,
                self._hidden_sizes(), kernel_size=as_ints(self.conv_kernel_size),
                strides=as_ints(self.conv_strides), activation=self.activation,
                dropout=self.dropout, batch_norm=self.batch_norm,
            )
        return VariationalAutoencoder(
            n_features,
            self.n_components,
            self._hidden_sizes(),
            likelihood=self.likelihood,
            min_variance=_VARIANCE_FLOOR,
            variance_momentum=_VARIANCE_MOMENTUM,
            eval_noise=_posterior_draws(1, self.n_components, balanced=True),
            activation=self.activation,
            dropout=self.dropout,
            batch_norm=self.batch_norm,
            branches=branches,
        )

    def _check_branch_shapes(self, encoder, decoder, n_features):
        """Run two rows through user-given branches and check the shapes."""
        k = self.n_components
        training = encoder.training, decoder.training
        encoder.eval()
        decoder.eval()
        with torch.no_grad():
            out = run_network(encoder, torch.zeros(2, n_features), "encoder")
            if tuple(out.shape) != (2, 2 * k):
                raise ValueError(
                    f"encoder must map (n_samples, {n_features}) to (n_samples, "
                    f"2 * n_components={2 * k}) (the posterior's mean and "
                    f"log-variance), got shape {tuple(out.shape)} for 2 samples."
                )
            out = run_network(decoder, torch.zeros(2, k), "decoder")
            if tuple(out.shape) != (2, n_features):
                raise ValueError(
                    f"decoder must map (n_samples, n_components={k}) back to "
                    f"(n_samples, {n_features}), got shape {tuple(out.shape)} "
                    "for 2 samples."
                )
        encoder.train(training[0])
        decoder.train(training[1])

    def _check_fit_params(self, n_features):
        self._check_network_options()
        if self.encoder is not None and self.input_shape is not None:
            raise ValueError(
                "input_shape selects a built-in convolutional or LSTM network; "
                "a custom encoder and decoder reshape rows themselves."
            )
        check_conv_params(
            self.conv_kernel_size, self.conv_strides, self.input_shape,
            len(self._hidden_sizes()),
        )
        if self.input_shape is not None:
            check_input_shape(self.input_shape, n_features, self._hidden_sizes(), self.batch_norm)

    def _validate_X(self, X, *, reset):
        """Validate X, accepting ``(n_samples, *input_shape)`` arrays as flat rows."""
        # As fitted: set_params(input_shape=...) without a new fit must not
        # change what transform and score accept.
        shaped = flatten_shaped(X, self._fitted_param("input_shape"))
        return super()._validate_X(shaped, reset=reset)

    _loss_settings = ("beta",)
    _loss_kinds = {"likelihood": "likelihood"}

    def _build_criterion(self):
        return _NegativeELBO(self.likelihood, beta=self.beta)

    def _before_training(self, net, data, batch_size, device):
        # Kept for _train, which needs them when a diverged run is rolled back.
        self._start_attributes = self._linear_start(net, data, batch_size, device)
        return self._start_attributes

    def _train(self, net, data, batch_size, device, seed, epochs_before, *, start,
               one_epoch=False):
        """Train as the base class does; but where training diverges with
        early stopping, restore the best weights it kept (the linear start
        or a better epoch) and warn, instead of raising.

        The network starts at a linear model that held-out rows chose, and
        early stopping keeps the best epoch against it: a run that diverges
        found nothing better, which is what restore-best returns. On
        ADBench's shuttle (20,000 z-scored rows, 9 columns, values up to 111
        standard deviations) factor analysis gives six columns noise
        variances of about 5e-4, and the nonlinear encoder branch, fed the
        extreme rows, took the training loss from 2.3 nats in the first
        epoch to 3.1e4 in the seventh: a default fit raised. A linear VAE
        (``hidden_layer_sizes=()``) trains there without diverging.
        """
        self._start_attributes = {}
        try:
            return super()._train(
                net, data, batch_size, device, seed, epochs_before, start=start,
                one_epoch=one_epoch,
            )
        except ValueError as exc:
            early_stopping = dict(net.callbacks_).get("early_stopping")
            best = getattr(early_stopping, "best_model_weights_", None)
            if (
                one_epoch
                or best is None
                or not str(exc).startswith("The optimisation diverged")
            ):
                raise
            history = net.history
            if len(history) > epochs_before and "train_loss" not in history[-1]:
                history.pop()
            if len(history) == epochs_before:
                raise  # no epoch of this fit finished
            net.module_.load_state_dict(best)
            # Training ended without on_train_end, and its callbacks.
            _set_branch_bounds(net.module_, data)
            best_epoch = early_stopping.best_epoch_ - epochs_before
            detail = str(exc).split("(", 1)[1].split("):", 1)[0]
            warnings.warn(
                f"{type(self).__name__}: training diverged ({detail}); the "
                "weights of the best epoch on the validation rows were restored "
                f"(epoch {best_epoch} of this fit; 0 is the start). A smaller "
                "learning_rate, or hidden_layer_sizes=() (a linear VAE), may "
                "train further.",
                ConvergenceWarning,
            )
            return self._start_attributes if start else {}

    def _linear_start(self, net, data, batch_size, device):
        """Start the network from the better of PPCA and factor analysis.

        Both are fitted to the training rows in the units the network sees
        and compared on held-out rows (the early-stopping validation rows,
        or without early stopping a ``validation_fraction`` of the rows
        drawn here; by cross-validation over all the rows where those are
        fewer than ``_LINEAR_START_CV_ROWS``), and the winner is refitted
        on all rows. The decoder's
        linear path, the observation variances and the encoder's linear
        path are set to the winner's loadings, noise variances and exact
        posterior; the nonlinear branches start at zero, so the network's
        ELBO before the first step is the winner's log-likelihood.
        """
        if self.likelihood != "gaussian":
            return {
                "linear_start_": None,
                "linear_start_scores_": None,
                "linear_model_": None,
                "variance_floor_": None,
                "constant_features_": None,
                "constant_feature_model_": None,
            }
        # From the fit's own CPU generator (seeded from random_state; the
        # caller's random_state object is not drawn from again). torch's
        # default generator is not seeded in fit any more, and drawing from
        # it made the held-out split and the start differ between fits
        # with the same random_state.
        seed = int(
            torch.randint(
                np.iinfo(np.int32).max, (), generator=current_generator("cpu")
            )
        )
        rng = np.random.RandomState(seed)
        if net.train_split is not None:  # early stopping's rows (not in partial_fit)
            fit_part, held_out = net.train_split(data)
        else:
            fit_part, held_out = data, None
            n_valid = math.ceil(self.validation_fraction * len(data))
            if n_valid >= 1 and len(data) - n_valid >= 2:
                order = rng.permutation(len(data))
                fit_part = data.subset(np.sort(order[n_valid:]))
                held_out = data.subset(np.sort(order[:n_valid]))
        max_rows = max(_LINEAR_START_MIN_ROWS, _LINEAR_START_VALUES // data.n_features)
        X_fit = _network_rows(fit_part, max_rows, rng)
        with threadpool_limits(resolve_n_jobs(self.n_jobs)):
            return self._start_from_linear_model(
                net, data, X_fit, held_out, max_rows, seed, rng
            )

    def _start_from_linear_model(self, net, data, X_fit, held_out, max_rows, seed, rng):
        # BLAS threads are limited like torch's (n_jobs): on 2 busy cores
        # (load 12), factor analysis at n_components=16 took 6.4 s on 1,953
        # x 512 CIFAR10_0 rows with OpenBLAS's default threads, 0.9 s on
        # 3,315 rows with one.
        scaling = (self._start_center, self._start_scale) if self._scales_input() else None
        X_all = _network_rows(data, max_rows, rng)
        # Features constant on the training rows are modelled apart (see
        # _constant_feature_model) and pinned in the network; the linear
        # models are still fitted to every feature (PPCA's noise variance
        # is then scikit-learn's), and compared on the others.
        constant, constant_model = np.zeros(data.n_features, dtype=bool), None
        if getattr(self, "_pin_constants", True):
            user_rows = X_all if scaling is None else X_all * scaling[1] + scaling[0]
            constant, constant_model = _constant_feature_model(
                user_rows, None if scaling is None else scaling[0]
            )
        keep = ~constant
        # PPCA is isotropic in the units it is fitted in, so it is fitted in
        # the user's units (scikit-learn's PCA model, which the start must
        # contain) and, where the network scales its input, in the network's
        # units too.
        kinds = ("pca", "standardized_pca", "factor_analysis")
        log_scale = None if scaling is None else np.log(scaling[1][keep])
        if log_scale is None or not len(log_scale) or np.ptp(log_scale) < 1e-6:
            # One scale for every modelled feature (X already z-scored, or
            # no scaling): the two are the same model.
            kinds = ("pca", "factor_analysis")
        # Fewer held-out rows than _LINEAR_START_CV_ROWS: every training row
        # is held out once, by K-fold cross-validation, and each candidate is
        # refitted per fold. On 42 training rows of 20 features at 16
        # components, factor analysis won on the 5 validation rows by 3.7
        # nats and was 2 nats below PPCA on new rows.
        splits = None
        if held_out is not None:
            if len(held_out) < _LINEAR_START_CV_ROWS:
                splits = _cross_validation_splits(X_all, _LINEAR_START_CV_FOLDS, rng)
            else:
                splits = [(X_fit, _network_rows(held_out, max_rows, rng))]
        if (splits is None or len(splits) == 1) and len(X_fit) <= keep.sum():
            # With no more rows than (modelled) features the sample
            # covariance is singular and factor analysis drives noise
            # variances to its floor of 1e-12 (a Heywood case) on columns
            # the rows happen to fit: held out, FactorAnalysis scored about
            # -4e12 nats on 210 rows of CIFAR10_0 embeddings (512 columns),
            # and on 50 rows of 120 sparse columns the start it won on 6
            # validation rows scored -31,000 on new rows, where PPCA's
            # isotropic noise held (-430). It is not a candidate on one
            # split. Cross-validated, every training row is held out, and
            # such a collapse is seen, not missed: on 40 to 70 rows of 60
            # to 200 sparse columns (rectified low-rank data, 4 and 16
            # components) factor analysis scored 2 to 2e6 nats below PPCA
            # and PPCA was kept in all 24 draws; where the columns'
            # own variances are what the rows show (80 rows of 200 dense
            # columns, 4 factors), factor analysis won and scored -151 on
            # new rows, PPCA -219.
            kinds = kinds[:-1]
        scores = None
        chosen, relative_floor = "pca", _VARIANCE_FLOOR
        # log-Jacobian of the modelled features' scaling, and the density of
        # the constant features at their values (every training row's).
        shift = -float(np.sum(np.log(scaling[1][keep]))) if scaling is not None else 0.0
        if constant_model is not None:
            shift += float(_constant_log_density(constant_model["value"][None], constant_model)[0])
        if splits is None:
            fits = {
                kind: _fit_linear_gaussian(kind, X_fit, self.n_components, seed, scaling)
                for kind in kinds
            }
            floor = _variance_floor(X_fit, relative_floor)[0]
        else:
            # Every pair of model and relative floor, scored on the held-out
            # rows: the floor is the one setting here that the training rows
            # cannot choose (a smaller one always fits them better).
            pair_scores = {
                pair: v + shift
                for pair, v in _held_out_log_likelihoods(
                    splits, kinds, self.n_components, seed, scaling, keep
                ).items()
            }
            # A non-finite score (a failed fit) never wins; among equal
            # scores the first (PPCA, the larger floor) does.
            finite = {pair: v for pair, v in pair_scores.items() if np.isfinite(v)}
            if finite:
                # Ties within rounding (the two PPCAs of z-scored data
                # differ in the last digits) go to the first pair.
                best = max(finite.values())
                tie = 1e-9 * max(1.0, abs(best))
                chosen, relative_floor = next(
                    pair for pair, v in finite.items() if v >= best - tie
                )
            scores = {
                kind: max(
                    (v for (k, _), v in finite.items() if k == kind), default=math.nan
                )
                for kind in kinds
            }
            # The winner is refitted on all the training rows: the linear
            # start is then the model a user would fit, and the validation
            # rows, having seen it, keep it unless training does better.
            fits = {
                chosen: _fit_linear_gaussian(
                    chosen, X_all, self.n_components, seed, scaling
                )
            }
            floor = _variance_floor(X_all, relative_floor)[0]
        model, mean, W, noise_variance = _floored(fits[chosen], floor)
        if chosen == "factor_analysis":
            # So that model.score is the density the network starts from.
            model.noise_variance_ = noise_variance
        # Training never takes the variances below these (see
        # _VARIANCE_MOMENTUM).
        self._set_linear_start(net.module_, mean, W, noise_variance, keep)
        if constant.any():
            net.module_.pin(constant, X_all[0, constant])
        return {
            "linear_start_": chosen,
            "linear_start_scores_": scores,
            "linear_model_": model,
            "variance_floor_": relative_floor,
            "constant_features_": np.flatnonzero(constant),
            "constant_feature_model_": constant_model,
        }

    def _scaling_rule(self):
        # The floor at a tenth of the median feature's standard deviation,
        # as before the autoencoder's per-feature floor: with that floor, on
        # 50 training rows of 120 sparse columns the held-out ELBO fell from
        # a mean of -334 to -1.9e5 nats per row (PCA: +13); the VAE's
        # handling of nearly constant features is tuned to this floor.
        return "median"

    def _input_scaling(self, X):
        mean, scale = super()._input_scaling(X)
        # The scores of the linear start are reported in the units of X
        # before fit sets scale_.
        self._start_center, self._start_scale = mean, scale
        return mean, scale

    def _set_linear_start(self, module, mean, W, noise_variance, keep):
        """Write a linear-Gaussian model of the features ``keep`` and its
        posterior into ``module`` (the others get no loadings)."""
        n_components = self.n_components
        W_rotated, posterior_mean, posterior_log_var = _posterior_maps(
            W[keep], noise_variance[keep]
        )
        n_factors = W.shape[1]
        decoder_weight = np.zeros((len(mean), n_components))
        decoder_weight[keep, :n_factors] = W_rotated
        encoder_weight = np.zeros((2 * n_components, len(mean)))
        encoder_weight[:n_factors, keep] = posterior_mean
        encoder_bias = np.zeros(2 * n_components)
        encoder_bias[:n_factors] = -posterior_mean @ mean[keep]
        encoder_bias[n_components : n_components + n_factors] = posterior_log_var
        values = {
            module.decoder_linear.weight: decoder_weight,
            module.decoder_linear.bias: mean,
            module.encoder_linear.weight: encoder_weight,
            module.encoder_linear.bias: encoder_bias,
            module.observation_var: noise_variance,
            module.variance_floor: noise_variance,
        }
        with torch.no_grad():
            for tensor, value in values.items():
                tensor.copy_(torch.as_tensor(value, dtype=tensor.dtype))

    def _extra_callbacks(self):
        callbacks = [("kl_warmup", KLWarmup(self.kl_warmup)), ("branch_bounds", _BranchBounds())]
        # The warm-up protects the linear start from Adam's first full-rate
        # steps; it stands aside for another optimizer and for a user's
        # learning-rate schedule, which it would otherwise overwrite.
        user = [cb[1] if isinstance(cb, tuple) else cb for cb in self.callbacks or []]
        if self.optimizer is torch.optim.Adam and not any(
            isinstance(cb, LRScheduler) for cb in user
        ):
            callbacks.append(("lr_warmup", _LearningRateWarmup(_LR_WARMUP_EPOCHS)))
        return callbacks

    def _scales_input(self):
        return self.standardize and self._fitted_param("likelihood") == "gaussian"

    def _check_input_range(self, X):
        if self._fitted_param("likelihood") != "bernoulli":
            return
        breach = _unit_interval_breach(X)
        if breach is not None:
            raise ValueError(
                "likelihood='bernoulli' needs every value of X in [0, 1]; got "
                f"values in {breach}. Scale X "
                "to [0, 1] (e.g. MinMaxScaler) or use likelihood='gaussian'."
            )

    def _prepare_fit(self, X, *, reset, validation=True):
        X, *rest = super()._prepare_fit(X, reset=reset, validation=validation)
        if not reset:  # a continued fit: warm_start, or partial_fit after fit
            self._check_constants_kept(X)
        return (X, *rest)

    def _check_constants_kept(self, X):
        """Raise ``ValueError`` where a continued fit's ``X`` breaks a feature
        modelled as constant (``constant_feature_model_``) in more rows than
        that model makes plausible (a binomial tail below 1e-6 at its break
        probability).

        A continued fit trains the network and leaves that model as it
        was, so such a feature would keep its constant: after a fit with a
        constant column and a warm-started fit on data that vary it, the
        data scored -23.6 nats per row against -4.8 for a new fit. Rare
        breaks, which the model allows, pass.
        """
        model = getattr(self, "constant_feature_model_", None)
        if model is None:
            return
        columns = X[:, self.constant_features_]
        columns = columns.toarray() if hasattr(columns, "toarray") else np.asarray(columns)
        off = np.abs(columns - model["value"]) > 6 * np.sqrt(model["variance"])
        n_breaks = off.sum(axis=0)
        tail = binom.sf(n_breaks - 1, len(columns), model["break_probability"])
        broken = tail < 1e-6
        if broken.any():
            features = self.constant_features_[broken].tolist()
            raise ValueError(
                f"{type(self).__name__}: feature(s) {features} were constant in the "
                "data of the fit this one continues, and are modelled apart from "
                "the network (constant_features_, constant_feature_model_), which "
                f"a continued fit does not change; X breaks that constant in "
                f"{n_breaks[broken].tolist()} of {len(columns)} rows, where the model "
                f"expects a break with probability {model['break_probability']:.2g}. "
                "Fit anew (warm_start=False), or call partial_fit from the start, "
                "which models no feature apart."
            )

    def _constant_mask(self):
        """Boolean mask of the features modelled apart from the network."""
        mask = np.zeros(self.n_features_in_, dtype=bool)
        if getattr(self, "constant_feature_model_", None) is not None:
            mask[self.constant_features_] = True
        return mask

    def _log_jacobian(self):
        """log |d x_standardized / d x| over the features the network
        models: converts its log-densities to the units of X."""
        if self.scale_ is None:
            return 0.0
        return -float(np.sum(np.log(self.scale_[~self._constant_mask()])))

    def _training_row_shift(self):
        """What converts the network's log-density of a training row to
        ``score_samples``'s: the log-Jacobian and the density of the
        constant features at their values."""
        shift = self._log_jacobian()
        model = getattr(self, "constant_feature_model_", None)
        if model is not None:
            shift += float(_constant_log_density(model["value"][None], model)[0])
        return shift

    def _set_history_attributes(self, validation=True):
        # The engine records losses in the network's (standardized) units.
        super()._set_history_attributes(validation)
        shift = self._training_row_shift()
        self.loss_curve_ = [v - shift for v in self.loss_curve_]
        self.best_loss_ = min(self.loss_curve_)
        if self.validation_scores_ is not None:
            self.validation_scores_ = [v + shift for v in self.validation_scores_]
            self.best_validation_score_ = self._restored_validation_score(shift)

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
        self._pin_constants = True
        return self._fit(X)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Train the variational autoencoder on one chunk of X: one pass over it.

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
        # A feature constant in the first chunk may vary in the next: none
        # is pinned.
        self._pin_constants = False
        return self._partial_fit(X)

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
            "kind": [StrOptions({"draw", "mean"})],
        },
        prefer_skip_nested_validation=True,
    )
    def sample(self, n_samples=1, random_state=None, *, kind="draw"):
        """Draw samples from the fitted model, in input units.

        Each sample decodes ``z ~ N(0, I)``. With ``kind='draw'`` (the
        default) it is then drawn from p(x|z): the decoder's mean plus
        Gaussian noise of the learned per-feature variance, or 0/1 values
        with the decoder's probabilities for ``likelihood='bernoulli'``.
        The observation noise is part of the model, and without it samples
        would understate the data's variance. With ``kind='mean'`` it is
        the mean of p(x|z) itself, without that noise: the decoder's
        probabilities for ``likelihood='bernoulli'`` (the grey-level
        "generated digits" of the tutorials, where draws are 0/1 speckle),
        as ``inverse_transform`` of the same ``z``. Features constant in
        training are drawn from their own model (``constant_feature_model_``,
        the density ``score_samples`` gives them): their value, with rare
        breaks.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples to draw.

        random_state : int, RandomState instance or None, default=None
            Seeds the draws (numpy's generator; torch's is not used). The
            same seed gives the same ``z`` for both kinds.

        kind : {'draw', 'mean'}, default='draw'
            Whether to return draws from p(x|z) or its means.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features_in_)
            Samples, float64.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.datasets import load_digits
        >>> from sklearn_ae import VAETransformer
        >>> X = load_digits().data[:200] / 16
        >>> vae = VAETransformer(likelihood="bernoulli", max_iter=2,
        ...                      random_state=0).fit(X)
        >>> draws = vae.sample(3, random_state=0)
        >>> means = vae.sample(3, random_state=0, kind="mean")
        >>> np.unique(draws).tolist(), bool(0 < means.min() and means.max() < 1)
        ([0.0, 1.0], True)
        """
        check_is_fitted(self)
        rng = check_random_state(random_state)
        Z = rng.standard_normal((n_samples, self._fitted_param("n_components")))
        means = self._decoder_means(Z, np.float64)
        if kind == "mean":
            return self._undo_scaling(means)
        if self._fitted_param("likelihood") == "bernoulli":
            return (rng.uniform(size=means.shape) < means).astype(np.float64)
        log_var = self.module_.observation_log_var().detach().cpu().numpy()
        noise = rng.standard_normal(means.shape)
        samples = self._undo_scaling(means + np.exp(0.5 * log_var.astype(np.float64)) * noise)
        constant = self._constant_mask()
        if constant.any():
            # Drawn from the density that score_samples gives them (the
            # network's pinned variance, undone by a floored scale, put a
            # spread of 0.04 on a constant 7 that the model scores at 1e-12).
            samples[:, constant] = _constant_draws(self.constant_feature_model_, n_samples, rng)
        return samples

    def score_samples(self, X):
        """Return a lower bound on the log-likelihood of each sample, in nats.

        The ELBO (``n_importance_samples=1``) or the importance-weighted
        bound with ``n_importance_samples`` draws (see that parameter), as a
        log-density of X in
        its own units (the log-Jacobian of the internal scaling is included).
        Higher is more typical of the training data. The latent draws come
        from a fixed seed, so repeated calls return the same values and each
        sample's score does not depend on the other rows. With
        ``likelihood='bernoulli'``, values outside [0, 1] raise
        ``ValueError``, as in ``fit``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Log-likelihood bound of each sample. Never NaN: a row far
            outside the training data gets a hugely negative bound, and one
            whose arithmetic overflows (values beyond about 1e150 in
            float64, 1e19 in float32) gets ``-inf``. Beyond the range of
            the rows the model was fitted on, the nonlinear branches hold
            their values at the boundary (each feature, and each latent
            coordinate, clipped to the fitted rows' range), so such a row
            is scored by the linear model's extrapolation plus a bounded
            term, not by branches that grow without bound off the data.
        """
        X = self._check_fitted_input(X)
        # A Bernoulli likelihood of a value outside [0, 1] is no density
        # (it scored 2.0 as a number, not as impossible).
        self._check_input_range(X)
        dtype = self._output_dtype(X)
        # Read as set now (an inference option, see the parameter), so
        # checked here too: set_params does not validate, and 0 or 2.0 gave
        # torch's own errors.
        validate_parameter_constraints(
            {"n_importance_samples": self._parameter_constraints["n_importance_samples"]},
            {"n_importance_samples": self.n_importance_samples},
            caller_name=type(self).__name__,
        )
        n_importance = self.n_importance_samples
        likelihood = self._fitted_param("likelihood")
        noise = _posterior_draws(
            n_importance, self._fitted_param("n_components"), balanced=n_importance == 1
        ).to(self.net_.device)
        n_draws = len(noise)
        # Scores sum hundreds of terms; in float64 (``_map_batches`` runs a
        # float64 copy of the module for float64 output) they are also the
        # same to the last digits whether a row is scored alone or in a batch.

        def bound(module, xb):
            # Features constant in training are scored apart (below).
            xb = module.pin_input(xb)
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
        constant = self._constant_mask()
        if constant.any():
            columns = X[:, constant]
            columns = columns.toarray() if hasattr(columns, "toarray") else columns
            scores += _constant_log_density(columns, self.constant_feature_model_)
        # A row beyond the arithmetic (squares past the float range) can
        # meet inf - inf; its bound is -inf, never NaN.
        scores[np.isnan(scores)] = -np.inf
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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
