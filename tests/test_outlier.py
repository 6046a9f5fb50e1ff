"""Behaviour of AEOutlierDetector that users rely on."""

import functools
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from sklearn_ae import AEOutlierDetector, AutoencoderTransformer, VAETransformer
from sklearn_ae._ensemble import EnsembleAutoencoder, FastDropout, TrimmedEnsembleLoss
from sklearn_ae._isolation import isolation_scores

FAST = dict(hidden_layer_sizes=(16,), n_components=4, max_iter=5, random_state=0, device="cpu")


def make_contaminated(n_inliers=300, n_outliers=15, n_features=8, seed=0):
    """Inliers near a 2-d nonlinear surface; outliers off it.

    Each outlier feature is drawn from the inliers' values of that feature,
    so outliers have the inliers' marginal distributions and only the
    dependence between features gives them away (no row norm or per-feature
    range does). Returns X and y in ``predict``'s convention: 1 inlier, -1
    outlier.
    """
    rng = np.random.RandomState(seed)
    W = rng.normal(size=(2, n_features))
    inliers = np.tanh(rng.normal(size=(n_inliers, 2)) @ W)
    inliers += 0.05 * rng.normal(size=inliers.shape)
    outliers = np.column_stack(
        [inliers[rng.randint(n_inliers, size=n_outliers), j] for j in range(n_features)]
    )
    X = np.vstack([inliers, outliers])
    y = np.r_[np.ones(n_inliers), -np.ones(n_outliers)].astype(int)
    order = rng.permutation(len(y))
    return X[order], y[order]


# ------------------------------------------------------------------- contract
def test_predict_decision_function_and_score_samples_agree():
    X, _ = make_contaminated()
    det = AEOutlierDetector(contamination=0.1, **FAST).fit(X)
    scores = det.score_samples(X)
    decision = det.decision_function(X)
    np.testing.assert_allclose(decision, scores - det.offset_)
    pred = det.predict(X)
    assert set(np.unique(pred)) == {-1, 1}
    np.testing.assert_array_equal(pred, np.where(decision < 0, -1, 1))
    np.testing.assert_array_equal(clone(det).fit_predict(X), pred)
    assert det.score(X) == pytest.approx(scores.mean())
    assert scores.dtype == np.float64 and decision.shape == (len(X),)


@pytest.mark.parametrize("contamination", [0.05, 0.1, 0.25])
def test_float_contamination_is_the_fraction_flagged_on_training_data(contamination):
    X, _ = make_contaminated()
    det = AEOutlierDetector(contamination=contamination, **FAST).fit(X)
    flagged = np.mean(det.predict(X) == -1)
    assert abs(flagged - contamination) <= 1.5 / len(X)
    assert det.offset_ == pytest.approx(np.percentile(det.score_samples(X), 100 * contamination))


def test_auto_contamination_is_tukeys_lower_fence():
    X, y = make_contaminated()
    det = AEOutlierDetector(random_state=0).fit(X)
    scores = det.score_samples(X)
    q1, q3 = np.percentile(scores, [25, 75])
    assert det.offset_ == pytest.approx(q1 - 1.5 * (q3 - q1))
    # On clearly separated data the rule flags the outliers and few inliers.
    pred = det.predict(X)
    assert np.mean(pred[y == -1] == -1) >= 0.9
    assert np.mean(pred[y == 1] == -1) <= 0.1


@pytest.mark.parametrize("contamination", [0.0, 0.6, -0.1, "high"])
def test_invalid_contamination_is_rejected_by_name(contamination):
    X, _ = make_contaminated()
    with pytest.raises(ValueError, match="contamination"):
        AEOutlierDetector(contamination=contamination, **FAST).fit(X)


@pytest.mark.parametrize("backbone", ["pca", object()])
def test_invalid_backbone_is_rejected_by_name(backbone):
    X, _ = make_contaminated()
    with pytest.raises(ValueError, match="backbone"):
        AEOutlierDetector(backbone=backbone, **FAST).fit(X)


def test_not_fitted_raises():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        AEOutlierDetector().score_samples(np.zeros((2, 3)))


def test_wrong_number_of_features_is_rejected():
    X, _ = make_contaminated()
    det = AEOutlierDetector(**FAST).fit(X)
    with pytest.raises(ValueError, match="features"):
        det.predict(X[:, :3])


# -------------------------------------------------------------------- quality
def test_scores_separate_injected_outliers():
    X, y = make_contaminated(seed=1)
    det = AEOutlierDetector(random_state=0).fit(X)
    assert roc_auc_score(y, det.decision_function(X)) > 0.95
    # Held-out rows from the same two populations, scored after fitting.
    X_new, y_new = make_contaminated(seed=1, n_inliers=200, n_outliers=20)
    assert roc_auc_score(y_new, det.decision_function(X_new)) > 0.95


def test_quality_test_fails_for_meaningless_scores():
    # Scores that ignore the dependence between features separate nothing
    # here, which shows the quality tests measure the model.
    X, y = make_contaminated(seed=1)
    assert roc_auc_score(y, -np.abs(X).sum(axis=1)) < 0.7
    median = np.median(X, axis=0)
    assert roc_auc_score(y, -np.abs(X - median).max(axis=1)) < 0.7


# ------------------------------------------------------------------ backbones
def test_vae_backbone_uses_a_fitted_vae_log_likelihood():
    X, y = make_contaminated(seed=1)
    det = AEOutlierDetector(backbone="vae", n_components=2, hidden_layer_sizes=(32,),
                            max_iter=300, random_state=0, device="cpu").fit(X)
    assert isinstance(det.backbone_, VAETransformer)
    assert det.backbone_.n_components == 2 and det.backbone_.max_iter == 300
    np.testing.assert_allclose(det.score_samples(X), det.backbone_.score_samples(X))
    assert roc_auc_score(y, det.decision_function(X)) > 0.9


@pytest.mark.parametrize("backbone", ["ae", "vae"])
def test_scores_do_not_depend_on_training_mode_layers(backbone):
    # Dropout and batch norm must run in inference mode from the first call
    # after fit, so the threshold matches later scores of the same rows.
    X, _ = make_contaminated()
    det = AEOutlierDetector(backbone=backbone, dropout=0.3, batch_norm=True, contamination=0.1,
                            **FAST).fit(X)
    first = det.score_samples(X)
    np.testing.assert_array_equal(first, det.score_samples(X))
    assert det.offset_ == pytest.approx(np.percentile(first, 10))


@pytest.mark.parametrize("backbone", ["ae", "vae"])
def test_reaching_max_iter_does_not_warn(backbone):
    # max_iter is a deliberately short budget (see its doc), whichever
    # network the detector builds; an estimator given as backbone keeps its
    # own warnings.
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    X, _ = make_contaminated()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        det = AEOutlierDetector(backbone=backbone, **FAST).fit(X)
    assert det.n_iter_ == FAST["max_iter"]
    given = AutoencoderTransformer(max_iter=2, device="cpu", random_state=0)
    with pytest.warns(ConvergenceWarning, match="maximum iterations"):
        AEOutlierDetector(backbone=given).fit(X)


def test_estimator_backbone_is_cloned_and_used():
    X, y = make_contaminated(seed=1)
    backbone = AutoencoderTransformer(n_components=2, hidden_layer_sizes=(32,), max_iter=60,
                                      random_state=0, device="cpu")
    det = AEOutlierDetector(backbone=backbone).fit(X)
    assert not hasattr(backbone, "net_")
    assert det.backbone_ is not backbone
    np.testing.assert_allclose(det.score_samples(X), det.backbone_.score_samples(X))
    assert roc_auc_score(y, det.decision_function(X)) > 0.9


# --------------------------------------------------------------- grid search
def test_grid_search_with_labels_and_roc_auc():
    X, y = make_contaminated()
    search = GridSearchCV(
        AEOutlierDetector(random_state=0, device="cpu"),
        {"n_components": [2, 32]},
        scoring="roc_auc",
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
    ).fit(X, y)
    assert search.best_score_ > 0.9
    assert search.best_params_["n_components"] in (2, 32)
    # The scorer ranks by decision_function with 1 = inlier as the positive class.
    best = search.best_estimator_
    assert roc_auc_score(y, best.decision_function(X)) > 0.9


def test_unsupervised_grid_search_prefers_the_better_model_of_held_out_rows():
    X, _ = make_contaminated()
    search = GridSearchCV(
        AEOutlierDetector(backbone=VAETransformer(n_components=2, hidden_layer_sizes=(16,),
                                                  early_stopping=False,
                                                  random_state=0, device="cpu")),
        {"backbone__max_iter": [1, 60]},
        cv=3,
    ).fit(X)
    # One epoch leaves the VAE at about its linear start (without early
    # stopping, which could restore that start): held-out likelihood is lower.
    assert search.best_params_ == {"backbone__max_iter": 60}
    scores = search.cv_results_["mean_test_score"]
    assert scores[1] > scores[0]


# --------------------------------------------------------------- ensemble
def test_training_uses_at_most_max_samples_rows():
    X, _ = make_contaminated()
    det = AEOutlierDetector(max_samples=100, batch_size=50, **FAST).fit(X)
    assert det.net_.history[-1, "train_batch_count"] == 2
    full = AEOutlierDetector(max_samples=None, batch_size=50, **FAST).fit(X)
    assert full.net_.history[-1, "train_batch_count"] == int(np.ceil(len(X) / 50))


def test_members_see_max_features_of_the_features():
    X, _ = make_contaminated(n_features=8)
    det = AEOutlierDetector(n_estimators=5, max_features=0.5, **FAST).fit(X)
    mask = det.module_.feature_mask.cpu().numpy()
    assert mask.shape == (5, 8)
    np.testing.assert_array_equal(mask.sum(axis=1), 4)
    assert len({tuple(row) for row in mask}) > 1


def test_member_ignores_features_outside_its_subset():
    torch.manual_seed(0)
    mask = torch.tensor([[True, True, False], [False, True, True]])
    module = EnsembleAutoencoder(mask, 2, (4,)).eval()
    x = torch.randn(5, 3)
    x_changed = x.clone()
    x_changed[:, 2] += 10.0
    out, out_changed = module(x), module(x_changed)
    torch.testing.assert_close(out[0, :, :2], out_changed[0, :, :2])
    # Features outside a member's subset pass through: zero error there.
    torch.testing.assert_close(out[0, :, 2], x[:, 2])
    assert not torch.allclose(out[1], out_changed[1])


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
def test_fast_dropout_drops_p_of_the_elements_and_keeps_the_mean(p):
    torch.manual_seed(0)
    dropout = FastDropout(p)
    x = torch.ones(4, 250, 100)
    out = dropout(x)
    assert abs((out == 0).float().mean().item() - p) < 0.01
    assert abs(out.mean().item() - 1.0) < 0.02
    kept = out[out != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - p)), rtol=1e-4, atol=0)
    # Different masks for different calls and members, none in eval mode.
    assert not torch.equal(out, dropout(x))
    assert not torch.equal(out[0], out[1])
    torch.testing.assert_close(dropout.eval()(x), x)


def test_trimmed_loss_leaves_out_each_members_worst_rows():
    x = torch.zeros(4, 2)
    output = torch.zeros(2, 4, 2)
    output[0, :, 0] = torch.tensor([1.0, 2.0, 3.0, 10.0])
    output[1, :, 1] = torch.tensor([10.0, 1.0, 1.0, 1.0])
    trimmed = TrimmedEnsembleLoss(0.25)(output, x)
    # Per member, per row: mean over the 2 features of the squared error.
    member0 = np.mean([1, 4, 9]) / 2
    member1 = np.mean([1, 1, 1]) / 2
    assert trimmed.item() == pytest.approx((member0 + member1) / 2)
    assert TrimmedEnsembleLoss(0.0)(output, x).item() > trimmed.item()


def test_robust_scaling_ignores_outlying_values():
    X, _ = make_contaminated()
    X_extreme = X.copy()
    X_extreme[:5, 0] = 1e6
    det = AEOutlierDetector(scaling="robust", **FAST).fit(X_extreme)
    assert abs(det.mean_[0] - np.median(X[:, 0])) < 0.1
    assert det.scale_[0] < 10
    standard = AEOutlierDetector(scaling="standard", **FAST).fit(X_extreme)
    assert standard.scale_[0] > 1e4


# ------------------------------------------------------------------- generic
def test_same_random_state_gives_identical_scores():
    X, _ = make_contaminated()
    a = AEOutlierDetector(max_samples=200, **FAST).fit(X).score_samples(X)
    b = AEOutlierDetector(max_samples=200, **FAST).fit(X).score_samples(X)
    np.testing.assert_array_equal(a, b)
    c = AEOutlierDetector(max_samples=200, **{**FAST, "random_state": 1}).fit(X).score_samples(X)
    assert not np.allclose(a, c)


def test_pandas_feature_names_and_pickle():
    pd = pytest.importorskip("pandas")
    X, _ = make_contaminated()
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    det = AEOutlierDetector(max_samples=100, **FAST).fit(df)
    assert list(det.feature_names_in_) == list(df.columns)
    restored = pickle.loads(pickle.dumps(det))
    np.testing.assert_array_equal(restored.predict(df), det.predict(df))
    np.testing.assert_array_equal(restored.score_samples(df), det.score_samples(df))


# ------------------------------------------------------ scoring that scales
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"latent_weight": 1.0},
        {"residual_scaling": "feature"},
        {"member_combination": "standardized"},
        {"member_combination": "geometric", "residual_scaling": "feature"},
        {"dropout_passes": 3, "member_combination": "standardized", "latent_weight": 1.0},
        {"member_combination": "rank", "residual_scaling": "log"},
    ],
)
def test_a_row_scores_the_same_alone_and_in_any_batch(params):
    # Scoring runs in float32 on batches padded to one shape: a row's score
    # must not depend on the rows that share its batch, nor on its place.
    X, _ = make_contaminated()
    det = AEOutlierDetector(**params, **FAST).fit(X)
    together = det.score_samples(X)
    alone = np.array([det.score_samples(X[i : i + 1])[0] for i in range(0, len(X), 7)])
    # Bit for bit on the Intel machines this was written on; on an AMD EPYC
    # one, up to 6e-7 relative (float32 rounding of the kernels' choice).
    np.testing.assert_allclose(alone, together[::7], rtol=2e-6, atol=1e-6)
    order = np.random.RandomState(0).permutation(len(X))
    np.testing.assert_allclose(det.score_samples(X[order]), together[order], rtol=2e-6, atol=1e-6)


def test_scoring_runs_fixed_shape_float32_batches(monkeypatch):
    import sklearn_ae._outlier as outlier

    monkeypatch.setattr(outlier, "_SCORE_ROWS", 64)
    X, _ = make_contaminated()
    det = AEOutlierDetector(**FAST).fit(X)
    shapes = []
    original = det.module_.errors_and_codes

    def spy(x, *args):
        shapes.append((tuple(x.shape), x.dtype))
        return original(x, *args)

    monkeypatch.setattr(det.module_, "errors_and_codes", spy)
    det.score_samples(X[:150])
    assert shapes == [((64, X.shape[1]), torch.float32)] * 3


def test_offset_is_estimated_on_a_bounded_sample_of_rows(monkeypatch):
    import sklearn_ae._outlier as outlier

    monkeypatch.setattr(outlier, "_CALIBRATION_ROWS", 300)
    X, _ = make_contaminated(n_inliers=950, n_outliers=50)
    det = AEOutlierDetector(contamination=0.1, **FAST)
    seen = []
    original = det._fixed_batches
    monkeypatch.setattr(
        det, "_fixed_batches", lambda X, fn: seen.append(len(X)) or original(X, fn)
    )
    det.fit(X)
    # fit scores only the sample (training goes through the net, not here).
    assert seen == [300]
    # The 10th percentile of 300 rows' scores: about 10% of all rows flagged
    # (3 standard deviations of the sample's quantile: 0.05).
    assert abs(np.mean(det.predict(X) == -1) - 0.1) < 0.05


def test_code_distribution_ignores_the_farthest_rows():
    from sklearn_ae._outlier import _code_distribution

    rng = np.random.RandomState(0)
    codes = np.vstack([rng.normal(size=(450, 3)), rng.normal(size=(50, 3)) + 20])
    center, whitening = _code_distribution(codes, trim_fraction=0.2)
    assert np.all(np.abs(center) < 0.3)
    # whitening @ whitening.T is the inverse covariance: about the identity.
    precision = whitening @ whitening.T
    np.testing.assert_allclose(np.diag(precision), 1.0, atol=0.5)
    untrimmed, _ = _code_distribution(codes, trim_fraction=0.0)
    assert np.all(untrimmed > 1.5)


def test_score_adds_the_code_distance_to_the_reconstruction_error():
    X, y = make_contaminated(seed=1)
    det = AEOutlierDetector(latent_weight=1.0, isolation_weight=0, random_state=0).fit(X)
    parts = det._parts(X)
    # The code distance alone separates the outliers: it is a signal of its own.
    assert roc_auc_score(y, -parts[:, 1]) > 0.95
    # Each part is standardized by its median and IQR on the training rows.
    (error_center, error_scale), (code_center, code_scale) = det.score_scales_
    expected = -((parts[:, 0] - error_center) / error_scale
                 + det.latent_weight * (parts[:, 1] - code_center) / code_scale)
    np.testing.assert_allclose(det.score_samples(X), expected)
    np.testing.assert_allclose(np.median(parts, axis=0), [error_center, code_center])
    # latent_weight=0 (the default) and isolation_weight=0 score by the
    # reconstruction error alone.
    plain = AEOutlierDetector(isolation_weight=0, random_state=0).fit(X)
    assert plain.code_center_ is None and plain._parts(X).shape == (len(X), 1)
    error_center, error_scale = plain.score_scales_[0]
    np.testing.assert_allclose(
        plain.score_samples(X), -(plain._parts(X)[:, 0] - error_center) / error_scale
    )


def test_constant_codes_give_a_finite_code_distance():
    # Constant training rows give constant codes, of covariance 0: the ridge
    # relative to it was 0 too, and the whitening infinite.
    X = np.full((30, 4), 2.0)
    det = AEOutlierDetector(latent_weight=1.0, **FAST).fit(X)
    assert np.all(np.isfinite(det.code_whitening_.cpu().numpy()))
    np.testing.assert_array_equal(det._parts(X)[:, 1], 0.0)
    other = np.full((2, 4), 3.0)
    scores = det.score_samples(np.vstack([X, other]))
    assert np.all(np.isfinite(scores))
    assert np.all(scores[-2:] < scores[:-2].min())


def test_negative_latent_weight_is_rejected_by_name():
    X, _ = make_contaminated()
    with pytest.raises(ValueError, match="latent_weight"):
        AEOutlierDetector(latent_weight=-1.0, **FAST).fit(X)


# ------------------------------------------ residual scales, member combination
@pytest.mark.parametrize(
    "params",
    [
        {"residual_scaling": "feature"},
        {"member_combination": "geometric"},
        {"residual_scaling": "log"},
        {"member_combination": "rank"},
    ],
)
def test_new_scores_keep_the_outlier_contract(params):
    X, y = make_contaminated()
    det = AEOutlierDetector(contamination=0.1, random_state=0, device="cpu", **params).fit(X)
    scores = det.score_samples(X)
    assert scores.dtype == np.float64 and np.all(np.isfinite(scores))
    np.testing.assert_allclose(det.decision_function(X), scores - det.offset_)
    assert det.offset_ == pytest.approx(np.percentile(scores, 10))
    assert set(np.unique(det.predict(X))) == {-1, 1}
    assert roc_auc_score(y, scores) > 0.9


def test_feature_residual_scales_are_each_features_median_squared_residual():
    X, _ = make_contaminated()
    det = AEOutlierDetector(residual_scaling="feature", **FAST).fit(X)
    module = det.module_
    with torch.no_grad():
        squared, _ = module.squared_residuals(det._tensor_data(X, torch.float32).take(slice(None)))
    typical = np.median(squared.numpy(), axis=1)  # (members, features)
    mask = module.feature_mask.numpy()
    weights = det.residual_weights_.numpy()
    # Inside each member's subset: 1 / the median squared residual (floored
    # at 1% of the member's mean); outside it, 1 (the residual is 0 there).
    floor = 1e-2 * np.array([t[m].mean() for t, m in zip(typical, mask)])[:, None]
    np.testing.assert_allclose(weights[mask], (1 / np.maximum(typical, floor))[mask], rtol=1e-4)
    assert np.all(weights[~mask] == 1)
    # The default leaves the squared residuals as they are.
    assert AEOutlierDetector(**FAST).fit(X).residual_weights_ is None


@functools.lru_cache(maxsize=1)
def _surface_with_heavy_tailed_noise():
    """Six features near a 2-d surface plus two of heavy-tailed noise, 20
    outliers off the surface (y=-1); the detector's parameters for it, and
    the ROC-AUC of the plain reconstruction score."""
    rng = np.random.RandomState(0)
    n, n_out = 400, 20
    surface = np.tanh(rng.normal(size=(n + n_out, 2)) @ rng.normal(size=(2, 6)))
    surface += 0.02 * rng.normal(size=surface.shape)
    surface[n:] += 0.4 * rng.choice([-1, 1], size=(n_out, 6))
    X = np.column_stack([surface, rng.laplace(size=(n + n_out, 2))])
    y = np.r_[np.ones(n), -np.ones(n_out)]
    params = dict(hidden_layer_sizes=(32,), n_components=4, max_features=1.0,
                  max_iter=40, isolation_weight=0, random_state=0, device="cpu")
    plain = roc_auc_score(y, AEOutlierDetector(**params).fit(X).score_samples(X))
    return X, y, params, plain


def test_feature_residual_scales_stop_an_unpredictable_feature_dominating():
    # Six features near a 2-d surface, two of independent heavy-tailed
    # noise that no network can predict. Outliers leave the surface by a
    # margin small next to the noise: their squared error in z-units is
    # buried under the noise features' errors, but not once each feature's
    # residual is measured against its own typical residual.
    X, y, params, plain = _surface_with_heavy_tailed_noise()
    det = AEOutlierDetector(residual_scaling="feature", **params).fit(X)
    scaled = roc_auc_score(y, det.score_samples(X))
    assert scaled > 0.9 and scaled > plain + 0.05  # 0.938 and 0.850 when written
    # The noise features weigh less than the surface's.
    weights = det.residual_weights_.numpy().mean(axis=0)
    assert weights[6:].mean() < weights[:6].mean() / 2


def test_log_residuals_are_a_cauchy_loss_on_the_members_typical_residual():
    X, _ = make_contaminated()
    det = AEOutlierDetector(residual_scaling="log", isolation_weight=0, **FAST).fit(X)
    module = det.module_
    xb = det._tensor_data(X, torch.float32).take(slice(None))
    with torch.no_grad():
        squared, _ = module.squared_residuals(xb)
    squared = squared.numpy().astype(np.float64)  # (members, rows, features)
    mask = module.feature_mask.numpy()
    # One scale per member: the median of its squared residuals over its
    # own features and the calibration rows (all rows here).
    typical = np.array([np.median(sq[:, m]) for sq, m in zip(squared, mask)])
    np.testing.assert_allclose(det.residual_weights_.numpy(),
                               np.repeat(1 / typical[:, None], X.shape[1], axis=1), rtol=1e-4)
    errors = np.array([
        np.log1p(sq[:, m] / t).mean(axis=1) for sq, m, t in zip(squared, mask, typical)
    ])
    center, scale = det.score_scales_[0]
    np.testing.assert_allclose(
        det.score_samples(X), -(errors.mean(axis=0) - center) / scale, rtol=1e-4, atol=1e-4
    )


def test_log_residuals_stop_a_few_heavy_tailed_features_dominating():
    # As for residual_scaling='feature': six features near a 2-d surface,
    # two of heavy-tailed noise. The log caps what the noise features'
    # extreme residuals add to an inlier's error.
    X, y, params, plain = _surface_with_heavy_tailed_noise()
    logged = roc_auc_score(
        y, AEOutlierDetector(residual_scaling="log", **params).fit(X).score_samples(X)
    )
    assert logged > plain + 0.03  # 0.902 and 0.850 when written


def test_rank_combination_is_the_mean_of_each_members_distribution_function():
    X, _ = make_contaminated()
    det = AEOutlierDetector(member_combination="rank", isolation_weight=0, **FAST).fit(X)
    with torch.no_grad():
        errors, _ = det.module_.errors_and_codes(
            det._tensor_data(X, torch.float32).take(slice(None))
        )
    errors = errors.numpy().astype(np.float64)  # (members, rows)
    # The calibration rows (all rows here) at evenly spaced levels.
    levels = np.linspace(0, 1, len(X))
    quantiles = np.quantile(errors, levels, axis=1)  # (levels, members)
    np.testing.assert_allclose(det.member_quantiles_.numpy(), quantiles.T, rtol=1e-5)
    # Within the calibration range: the piecewise linear distribution
    # function; the training rows are ranked by it.
    cdf = np.array([np.interp(e, q, levels) for e, q in zip(errors, quantiles.T)])
    center, scale = det.score_scales_[0]
    np.testing.assert_allclose(
        det.score_samples(X), -(cdf.mean(axis=0) - center) / scale, rtol=1e-4, atol=1e-4
    )
    assert det.member_centers_ is None


def test_rank_distribution_function_keeps_order_beyond_the_calibration_rows():
    from sklearn_ae._outlier import _empirical_cdf

    quantiles = torch.tensor([[0.0, 1.0, 2.0, 4.0, 8.0]])  # median 2, largest 8
    values = torch.tensor([[-1.0, 0.0, 0.5, 3.0, 8.0, 14.0, 20.0]])
    expected = [0.0, 0.0, 0.125, 0.625, 1.0, 2.0, 3.0]  # beyond 8: 1 + excess / (8 - 2)
    torch.testing.assert_close(_empirical_cdf(values, quantiles)[0], torch.tensor(expected))


def test_rank_combination_stops_one_members_error_scale_dominating(monkeypatch):
    # Member 0's errors spread over 0-100 on the training rows, the others'
    # over 0-1. Row 0 is at member 0's 60th percentile and typical for the
    # others; row 1 beyond every training row of members 1-3 and typical
    # for member 0. The mean of the raw errors ranks row 0 as the more
    # abnormal (15.4 against 13.6); the mean of the ranks, row 1.
    X, _ = make_contaminated()
    det = AEOutlierDetector(
        member_combination="rank", n_estimators=4, isolation_weight=0, **FAST
    ).fit(X)
    levels = torch.linspace(0, 1, 101)
    det.member_quantiles_ = torch.stack([100 * levels, levels, levels, levels])
    fixed = torch.tensor([[60.0, 50.0], [0.5, 1.5], [0.5, 1.5], [0.5, 1.5]])
    monkeypatch.setattr(
        det.module_, "errors_and_codes",
        lambda x, *args: (fixed.repeat(1, len(x) // 2), torch.zeros(4, len(x), 4)),
    )
    scores = det.score_samples(X[:2])
    assert scores[1] < scores[0]
    det.member_quantiles_ = None  # the plain mean of the same errors
    scores = det.score_samples(X[:2])
    assert scores[0] < scores[1]


def test_member_combination_standardizes_or_takes_the_geometric_mean():
    X, _ = make_contaminated()
    fits = {
        kind: AEOutlierDetector(member_combination=kind, isolation_weight=0, **FAST).fit(X)
        for kind in ("mean", "standardized", "geometric")
    }
    with torch.no_grad():
        errors, _ = fits["mean"].module_.errors_and_codes(
            fits["mean"]._tensor_data(X, torch.float32).take(slice(None))
        )
    errors = errors.numpy().astype(np.float64)  # (members, rows), the same nets
    median = np.median(errors, axis=1, keepdims=True)
    q1, q3 = np.percentile(errors, [25, 75], axis=1, keepdims=True)
    combined = {
        "mean": errors.mean(axis=0),
        "standardized": ((errors - median) / ((q3 - q1) / 1.349)).mean(axis=0),
        "geometric": np.log(errors / median).mean(axis=0),
    }
    for kind, det in fits.items():
        center, scale = det.score_scales_[0]
        np.testing.assert_allclose(
            det.score_samples(X), -(combined[kind] - center) / scale, rtol=1e-4, atol=1e-4
        )
    assert fits["mean"].member_centers_ is None


def test_geometric_combination_ranks_by_agreement_of_the_members(monkeypatch):
    # Row 0: one member reconstructs it very badly, the others well; row 1:
    # every member reconstructs it somewhat badly. The mean error ranks row
    # 0 as the more abnormal; the geometric mean (agreement) ranks row 1.
    X, _ = make_contaminated()
    det = AEOutlierDetector(
        member_combination="geometric", n_estimators=4, isolation_weight=0, **FAST
    ).fit(X)
    fixed = torch.tensor([[20.0, 3.0], [0.5, 3.0], [0.5, 3.0], [0.5, 3.0]])
    det.member_centers_ = torch.ones(4)
    monkeypatch.setattr(
        det.module_, "errors_and_codes",
        lambda x, *args: (fixed.repeat(1, len(x) // 2), torch.zeros(4, len(x), 4)),
    )
    scores = det.score_samples(X[:2])
    assert scores[1] < scores[0]  # row 1 is the more abnormal
    det.member_centers_ = None  # the plain mean of the same errors
    scores = det.score_samples(X[:2])
    assert scores[0] < scores[1]


@pytest.mark.parametrize(
    "params, name",
    [({"residual_scaling": "all"}, "residual_scaling"),
     ({"member_combination": "max"}, "member_combination"),
     ({"dropout_passes": -1}, "dropout_passes")],
)
def test_invalid_scoring_options_are_rejected_by_name(params, name):
    X, _ = make_contaminated()
    with pytest.raises(ValueError, match=name):
        AEOutlierDetector(**params, **FAST).fit(X)


def test_dropout_passes_average_the_error_over_fixed_dropout_masks():
    from sklearn_ae._ensemble import FastDropout, set_dropout_masks

    X, y = make_contaminated()
    params = dict(random_state=0, device="cpu", max_iter=10)
    det = AEOutlierDetector(dropout_passes=50, **params).fit(X)
    # One mask per pass and dropout layer, shared by the rows of a batch:
    # zeros with probability `dropout`, 1 / (1 - dropout) elsewhere.
    for masks in det.dropout_masks_:
        assert masks.shape[:3] == (50, det.n_estimators, 1)
        values = masks.unique().tolist()
        assert values == pytest.approx([0.0, 1 / 0.8])
        assert abs(float((masks == 0).float().mean()) - 0.2) < 0.02
    # The members' errors are the mean over the passes of the errors with
    # each pass's masks applied, in eval mode.
    module = det.module_
    xb = det._tensor_data(X[:40], torch.float32).take(slice(None))
    expected = 0
    with torch.no_grad():
        for t in range(50):
            set_dropout_masks(module, [m[t] for m in det.dropout_masks_])
            expected = expected + module.errors_and_codes(xb)[0]
        set_dropout_masks(module, None)
        errors, _ = det._member_errors(module, xb)
    torch.testing.assert_close(errors, expected / 50)
    assert all(layer.fixed_mask is None for layer in module.modules()
               if isinstance(layer, FastDropout))
    # They change the scores, not the outlier contract; without dropout they
    # do nothing.
    plain = AEOutlierDetector(**params).fit(X)
    assert not np.allclose(det.score_samples(X), plain.score_samples(X))
    assert roc_auc_score(y, det.score_samples(X)) > 0.95
    no_dropout = dict(params, dropout=0.0)
    np.testing.assert_array_equal(
        AEOutlierDetector(dropout_passes=5, **no_dropout).fit(X).score_samples(X),
        AEOutlierDetector(**no_dropout).fit(X).score_samples(X),
    )


def test_fixed_dropout_mask_applies_in_eval_mode():
    from sklearn_ae._ensemble import FastDropout

    layer = FastDropout(0.5).eval()
    x = torch.ones(2, 3, 4)
    assert torch.equal(layer(x), x)
    layer.fixed_mask = torch.tensor([0.0, 2.0, 2.0, 0.0]).reshape(1, 1, 4)
    assert torch.equal(layer(x), x * layer.fixed_mask)


def test_score_adds_the_standardized_isolation_score():
    X, _ = make_contaminated(seed=2)
    det = AEOutlierDetector(isolation_weight=0.7, **FAST).fit(X)
    parts = det._parts(X)
    assert parts.shape == (len(X), 2)
    np.testing.assert_array_equal(parts[:, 1], isolation_scores(det.isolation_trees_, X))
    (error_center, error_scale), (iso_center, iso_scale) = det.score_scales_
    expected = -((parts[:, 0] - error_center) / error_scale
                 + 0.7 * (parts[:, 1] - iso_center) / iso_scale)
    np.testing.assert_allclose(det.score_samples(X), expected)
    # The networks and the reconstruction part are those of isolation_weight=0.
    plain = AEOutlierDetector(isolation_weight=0, **FAST).fit(X)
    assert plain.isolation_trees_ is None
    np.testing.assert_array_equal(plain._parts(X)[:, 0], parts[:, 0])
    for name, value in plain.module_.state_dict().items():
        torch.testing.assert_close(det.module_.state_dict()[name], value)


def test_isolation_score_finds_outliers_that_reconstruct_well():
    # Digit 0 against the other nine digits (ADBench's optdigits, built from
    # scikit-learn's digits): the autoencoders reconstruct the zeros as well
    # as the rest (reconstruction alone ranks them below chance), while
    # their pixel values are easy to isolate. The sum lifts the ROC-AUC from
    # 0.35 to 0.57 on this construction's 15 splits in
    # benchmarks/bench_outliers_unseen.py.
    digits, labels = load_digits(return_X_y=True)
    rng = np.random.RandomState(0)
    zeros = rng.choice(np.flatnonzero(labels == 0), 48, replace=False)
    X = np.r_[digits[labels != 0], digits[zeros]]
    y = np.r_[np.ones(np.sum(labels != 0)), -np.ones(48)]
    plain = AEOutlierDetector(isolation_weight=0, random_state=0, device="cpu").fit(X)
    hedged = AEOutlierDetector(random_state=0, device="cpu").fit(X)
    auc_plain = roc_auc_score(y, plain.score_samples(X))
    auc_hedged = roc_auc_score(y, hedged.score_samples(X))
    assert auc_plain < 0.5 and auc_hedged > auc_plain + 0.1



@pytest.mark.parametrize(
    "contamination, expected", [("auto", 8192), (0.1, 8192), (0.005, 20000), (0.001, 65536)]
)
def test_calibration_sample_has_enough_rows_beyond_the_threshold(contamination, expected):
    # 8,192 rows, or 100 expected rows beyond a float contamination's
    # threshold (100 / contamination), at most 65,536.
    X = np.zeros((70000, 1), dtype=np.float32)
    det = AEOutlierDetector(contamination=contamination)
    assert len(det._calibration_sample(X, np.random.RandomState(0))) == expected
    assert len(det._calibration_sample(X[:5000], np.random.RandomState(0))) == 5000


def test_rows_beyond_float32_score_minus_inf_and_are_outliers():
    # A new row with a value of 1e50 (z-score about 1e50) overflows the
    # float32 networks: its score was NaN, and predict called it an inlier
    # (NaN < 0 is False). It is now -inf: the most abnormal row.
    X, _ = make_contaminated(seed=4)
    det = AEOutlierDetector(**FAST).fit(X)
    new = X[:4].copy()
    new[0, 0], new[1, 1], new[2, 2] = 1e50, 1e30, -1e45
    scores = det.score_samples(new)
    assert not np.isnan(scores).any()
    assert np.all(scores[:3] == -np.inf) and np.isfinite(scores[3])
    np.testing.assert_array_equal(det.predict(new)[:3], -1)
    # the same with float32 rows at float32's edge
    assert not np.isnan(det.score_samples(new.clip(-3e38, 3e38).astype(np.float32))).any()


def test_partial_fit_warns_once_about_missing_feature_names():
    # Fitted with names, continued without: one warning per call, as every
    # scikit-learn estimator (partial_fit checked X twice).
    import warnings

    pd = pytest.importorskip("pandas")
    X, _ = make_contaminated(n_inliers=60, n_outliers=0)
    det = AEOutlierDetector(**FAST).fit(pd.DataFrame(X, columns=[f"f{i}" for i in range(8)]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        det.partial_fit(X)
    assert sum("feature names" in str(w.message) for w in caught) == 1
