"""Leave-sets-out ADBench protocol for AEOutlierDetector, and a large-size run.

**Within a set** (ADBench's protocol): for every seed, a stratified 70/30
split, each part capped at 20,000 rows by stratified subsampling, fit on the
training part without labels, ROC-AUC of the test part's scores (higher =
more abnormal). A set's AUC is the mean over seeds.

**Across sets** (leave-sets-out): the sets (the 17 ``DATA/adbench/*.npz``
and ``DATA/embeddings/CIFAR10_0.npz``) are split into the fixed folds of
``FOLDS``. For each fold, every candidate setting of ``CANDIDATES`` is
rated by its mean AUC over the *other* folds' sets, and the best one is
scored on the held-out fold's sets. The **out-of-fold** mean is the mean
over all sets of the AUC of the candidate chosen without that set; the
**in-sample** mean is that of the candidate chosen on all sets (the one the
detector's defaults are set to). IsolationForest(random_state=0) runs on
the same splits (it has nothing to choose: both figures are the same).
Candidates whose estimated fit+score time exceeds ``--time-budget`` times
IsolationForest's (issue 11's 4x) are left out before any choice, on time
alone (see ``time_ratios``).
Time is wall-clock seconds of ``fit`` plus scoring the test part.

Each (candidate, set, seed) AUC and time is cached in ``--cache`` (JSON),
keyed by the candidate's full parameters, so adding a candidate does not
recompute the others; ``--fresh`` ignores (and rewrites) the cache, for a
run whose times are all measured side by side.

**Large size**: a synthetic 2,000,000 x 100 float32 set with 2% outliers
(``--quick``: 20,000 x 100). Each method runs in a fresh subprocess that
builds the data, then fits on all rows and scores all rows; it reports
the time and the peak resident memory during fit and scoring (``VmHWM``,
reset through ``/proc/self/clear_refs`` once the data are built; else
``getrusage`` max RSS) above the RSS at that point, as a multiple of the
input's size.

torch and the BLAS libraries run with ``--threads`` threads (default 1)
for every method.

Candidates' results may come from the cache; the baselines and the
setting chosen on all sets are measured afresh in every run, one after the
other on each split, so their times are compared under the same load.

Usage::

    python benchmarks/bench_outliers.py --fresh          # the full run
    python benchmarks/bench_outliers.py --quick          # seconds: smoke test
    python benchmarks/bench_outliers.py --candidates "50 epochs"  # research
    python benchmarks/bench_outliers.py --skip-large --output -
"""

import argparse
import datetime
import fcntl
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "datasets"
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "OUTLIER_RESULTS.md"
DEFAULT_CACHE = Path(__file__).resolve().parent / "outlier_auc_cache.json"
CAP = 20_000
DETECTOR = "AEOutlierDetector"
BASELINES = ("IsolationForest", "PCA", "PyOD-AutoEncoder")

# Fixed folds of sets, recorded here so every run uses the same ones: mixed
# sizes, dimensions and outlier rates in each fold. Sets not listed (other
# data, synthetic sets) are dealt round-robin in name order.
FOLDS = (
    ("annthyroid", "cardio", "letter", "WBC"),
    ("breastw", "cover", "mnist", "wine"),
    ("fault", "Ionosphere", "satellite", "thyroid"),
    ("glass", "mammography", "CIFAR10_0"),
    ("Pima", "shuttle", "vowels"),
)

# Every parameter a candidate may change is pinned here, so a cached AUC
# stays valid when the detector's defaults change. BASE is the setting of
# issue 4 (reconstruction error only).
BASE = {
    "n_components": 32,
    "hidden_layer_sizes": [64],
    "dropout": 0.2,
    "batch_norm": True,
    "n_estimators": 4,
    "max_features": 0.75,
    "max_samples": 1024,
    "trim_fraction": 0.2,
    "max_iter": 30,
    "scaling": "standard",
    "latent_weight": 0.0,
    "residual_scaling": None,
    "member_combination": "mean",
    "dropout_passes": 0,
    "learning_rate": 1e-3,
    "batch_size": "auto",
    "isolation_weight": 0.0,
}
CANDIDATES = {
    "reconstruction": {},
    # The code distance (first attempt; weights 1 and 2 and its 4,096-row and
    # 8-member variants lost there and were not rerun on the merged code).
    "recon+code/2": {"latent_weight": 0.5},
    # Issue 4 chose trim_fraction=0.2 on these sets; choosing it again
    # inside the folds puts that choice into the out-of-fold figure too.
    "reconstruction, trim 0.1": {"trim_fraction": 0.1},
    "reconstruction, trim 0.3": {"trim_fraction": 0.3},
    # Issue 4's main alternatives of the network itself (epochs, width,
    # training rows, members, scaling), all chosen then on these sets:
    # as candidates, those choices too are made inside the folds.
    "20 epochs": {"max_iter": 20},
    "50 epochs": {"max_iter": 50},
    "narrow (32, code 16)": {"hidden_layer_sizes": [32], "n_components": 16},
    "2048 rows": {"max_samples": 2048},
    "8 members": {"n_estimators": 8},
    "robust scaling": {"scaling": "robust"},
    # Scores that the mean squared error in scaled units misses.
    # Per-feature residual scales: a Gaussian likelihood with a variance per
    # feature and member, so unpredictable features stop dominating.
    "feature residuals": {"residual_scaling": "feature"},
    # Members' errors standardized by their training median and IQR before
    # the mean, so no member dominates by its scale.
    "standardized members": {"member_combination": "standardized"},
    # Geometric mean of the members' errors over their training medians: a
    # row must be badly reconstructed by most members (agreement).
    "geometric members": {"member_combination": "geometric"},
    # Scoring with dropout on, averaged over 8 fixed masks: a Monte Carlo
    # estimate of the expected error under dropout, which training minimises.
    "8 dropout passes": {"dropout_passes": 8},
    # Added after a full run of the 14 above chose `8 members` at 4.8x
    # IsolationForest's time (target 4x): 8 members for the time of about 5.
    "8 members, 20 epochs": {"n_estimators": 8, "max_iter": 20},
    # Third attempt: the structure of the network itself, chosen in issue 4
    # on 17 of these sets, one change from BASE each (issue 4's main
    # alternatives), so that those choices too are made inside the folds.
    "no dropout": {"dropout": 0.0},
    "no batch norm": {"batch_norm": False},
    "all features": {"max_features": 1.0},
    "two hidden layers (64, 64)": {"hidden_layer_sizes": [64, 64]},
    "learning rate 3e-4": {"learning_rate": 3e-4},
    "learning rate 3e-3": {"learning_rate": 3e-3},
    "batch 512": {"batch_size": 512},
    # Two scores aimed at unseen data, each with its reason stated before it
    # ran. Rank members: each member's error through its own empirical
    # distribution function on the calibration rows before the mean, so the
    # combination is invariant to each member's error distribution (a member
    # whose features are heavy-tailed on a new set cannot dominate), as
    # IsolationForest is invariant to monotone changes of the features.
    "rank members": {"member_combination": "rank"},
    # Log residuals: a Cauchy instead of a Gaussian likelihood per residual,
    # log(1 + r^2 / c): a row's error counts how many features are badly
    # reconstructed rather than how badly the worst one is, so a few
    # heavy-tailed or unpredictable features on a new set cannot dominate
    # (without the per-feature scales that were noisy on small sets).
    "log residuals": {"residual_scaling": "log"},
    # Fourth attempt (2026-11-22): the reconstruction error plus an
    # isolation forest's score, each standardized by its training median
    # and IQR, with equal weights. Reason, stated before it ran here:
    # reconstruction alone led IsolationForest by 0.04 on these sets but
    # trailed it on the 26 unseen ADBench sets of issue 11 (-0.008) and far
    # on the out-of-panel digits constructions (bench_outliers_unseen.py),
    # where its errors rank some outlier classes as normal; the two scores
    # fail on different sets, and a sum standardized on the training rows
    # cannot fall far behind the better one where the other is at chance.
    # Weights 0.5 and 2 show how much the figure depends on the weight.
    "recon+isolation": {"isolation_weight": 1.0},
    "recon+isolation/2": {"isolation_weight": 0.5},
    "recon+2 isolation": {"isolation_weight": 2.0},
}
# Fifth attempt (2026-11-22, thirteenth session): every one-change
# candidate above, hedged by the isolation score at its fixed weight of 1.
# The defaults are chosen among the hedged candidates only (HEDGED): a design
# rule made before these ran, from the mission's "designs that cannot lose
# to the simple baseline" and from the out-of-panel sets, where
# reconstruction alone fell far behind IsolationForest (optdigits 0.35
# against 0.69) and the panel cannot see it. Within that family the folds
# choose, as they do for the network's settings, so the defaults get an
# out-of-fold figure. `8 members` and `8 dropout passes` are left out: over
# the time budget before the forest is added.
_NOT_HEDGED = ("reconstruction", "8 members", "8 dropout passes",
               "recon+isolation", "recon+isolation/2", "recon+2 isolation")
CANDIDATES.update({
    f"{name} + isolation": {**overrides, "isolation_weight": 1.0}
    for name, overrides in list(CANDIDATES.items()) if name not in _NOT_HEDGED
})
HEDGED = tuple(c for c, o in CANDIDATES.items() if o.get("isolation_weight", 0) > 0)
# The shipped defaults: the hedged family's choice on all sets (see
# OUTLIER_NOTES.md, fifth attempt). Measured side by side with the
# baselines in every run; the script says so if the choice differs.
SHIPPED = "recon+isolation/2"
# Parameters added after a cache version was started are left out of the
# cache key at the value that reproduces the earlier code, so its entries
# stay valid.
LEGACY = {"dropout_passes": 0, "learning_rate": 1e-3, "batch_size": "auto",
          "isolation_weight": 0.0}
# Bump when a change to the detector's code changes its scores: old cache
# entries then no longer match. issue11-2: the merged feature_scaling floors
# each feature's scale at 0.1 x the median one (issue 10), which changed
# the scores of sets with nearly constant features (glass, for one).
CODE_VERSION = "issue11-2"
# The 8,192-row calibration sample (tenth session) changed the scores of
# candidates with two parts (isolation or code distance beside the
# reconstruction: their relative scales and the forest's draw) on sets with
# more training rows than that (cover, shuttle); one-part scores are an
# affine map of the same values, so their AUCs did not move. Those entries
# were removed from the cache (twelfth session) and recomputed.

# Issue 11's time target: the detector's fit+score time on this protocol at
# most 4x IsolationForest's. A candidate whose estimated ratio exceeds it is
# not eligible: it is left out before any choice, on time alone.
TIME_BUDGET = 4.0
# The candidate whose time is measured side by side with IsolationForest in
# every run; the others' ratios are estimated through it (see time_ratios).
TIME_REFERENCE = "reconstruction"

LARGE = (2_000_000, 100)
LARGE_QUICK = (20_000, 100)
LARGE_OUTLIERS = 0.02


# ------------------------------------------------------------------ methods
class PCAReconstruction:
    """Outlier score = squared PCA reconstruction error of z-scored rows."""

    def fit(self, X):
        self.pipe_ = make_pipeline(StandardScaler(), PCA(n_components=0.9))
        self.pipe_.fit(X)
        return self

    def outlier_scores(self, X):
        Z = self.pipe_[0].transform(X)
        pca = self.pipe_[1]
        return np.square(Z - pca.inverse_transform(pca.transform(Z))).sum(axis=1)


def detector_params(candidate, quick=False):
    params = {**BASE, **CANDIDATES[candidate]}
    params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    if quick:
        params["max_iter"] = 5
    return params


def make_method(name, seed, quick=False):
    """Return ``(fit, outlier_scores)`` for a baseline or ``'AE:<candidate>'``."""
    if name.startswith("AE:"):
        from sklearn_ae import AEOutlierDetector

        det = AEOutlierDetector(random_state=seed, **detector_params(name[3:], quick))
        return det.fit, lambda X: -det.score_samples(X)
    if name == "IsolationForest":
        det = IsolationForest(random_state=0)
        return det.fit, lambda X: -det.score_samples(X)
    if name == "PCA":
        det = PCAReconstruction()
        return det.fit, det.outlier_scores
    if name == "PyOD-AutoEncoder":
        from pyod.models.auto_encoder import AutoEncoder

        det = AutoEncoder(verbose=0, **({"epoch_num": 1} if quick else {}))
        return det.fit, det.decision_function
    raise ValueError(f"unknown method {name!r}")


def pyod_version():
    try:
        import pyod
    except ImportError:
        return None
    return pyod.__version__


# --------------------------------------------------------------------- data
def cap_rows(X, y, cap, seed):
    """Stratified subsample of at most ``cap`` rows."""
    if len(y) <= cap:
        return X, y
    X, _, y, _ = train_test_split(X, y, train_size=cap, stratify=y, random_state=seed)
    return X, y


def split(X, y, seed, cap=CAP):
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=seed
    )
    X_train, y_train = cap_rows(X_train, y_train, cap, seed)
    X_test, y_test = cap_rows(X_test, y_test, cap, seed)
    return X_train, X_test, y_train, y_test


def _load(path):
    with np.load(path, allow_pickle=False) as data:
        return np.asarray(data["X"], dtype=np.float64), data["y"].astype(int)


def load_sets(data, names=None):
    """Return ``[(name, X, y)]``: ``data/adbench/*.npz`` and CIFAR10_0's embeddings."""
    paths = sorted((data / "adbench").glob("*.npz"), key=lambda p: int(p.stem.split("_")[0]))
    cifar = data / "embeddings" / "CIFAR10_0.npz"
    entries = [(p.stem.split("_", 1)[1], p) for p in paths]
    if cifar.is_file():
        entries.append((cifar.stem, cifar))
    return [
        (name, *_load(path))
        for name, path in entries
        if not names or any(n.lower() in name.lower() for n in names)
    ]


def synthetic_sets(n_sets=4):
    """Small contaminated sets for ``--quick`` when no data folder exists."""
    rng = np.random.RandomState(0)
    sets = []
    for i in range(n_sets):
        n, d = 200 + 50 * i, 8 + 2 * i
        W = rng.randn(2, d)
        X = np.tanh(rng.randn(n, 2) @ W) + 0.05 * rng.randn(n, d)
        y = np.zeros(n, dtype=int)
        y[: n // 10] = 1
        X[y == 1] = rng.uniform(-2, 2, size=(n // 10, d))
        sets.append((f"synthetic-{'abcdefgh'[i]}", X, y))
    return sets


def assign_folds(names, n_folds=len(FOLDS)):
    """Return ``{set name: fold}``: ``FOLDS`` for the listed sets, round-robin else."""
    fold_of = {name: f for f, members in enumerate(FOLDS) for name in members}
    n_folds = min(n_folds, len(names))
    out, others = {}, sorted(n for n in names if n not in fold_of)
    for name in names:
        if name in fold_of and fold_of[name] < n_folds:
            out[name] = fold_of[name]
    for i, name in enumerate(others + [n for n in names if n in fold_of and n not in out]):
        out[name] = i % n_folds
    return out


# -------------------------------------------------------------------- cache
class Cache:
    """``{key: {"auc": float, "seconds": float}}`` in a JSON file (or memory)."""

    def __init__(self, path, fresh):
        self.path = path
        self.entries = {}
        if path is not None and path.is_file() and not fresh:
            self.entries = json.loads(path.read_text())
        self.hits = 0

    @staticmethod
    def key(method, name, seed, cap, quick):
        if method.startswith("AE:"):
            params = {
                k: v for k, v in detector_params(method[3:]).items()
                if not (k in LEGACY and v == LEGACY[k])
            }
            method = "AE " + CODE_VERSION + " " + json.dumps(params, sort_keys=True)
        return f"{method}|{name}|seed={seed}|cap={cap}|quick={quick}"

    def get(self, key, count=True):
        entry = self.entries.get(key)
        self.hits += count and entry is not None
        return entry

    def put(self, key, auc, seconds, reference_seconds=None):
        self.entries[key] = {"auc": auc, "seconds": seconds}
        if reference_seconds is not None:
            self.entries[key]["reference_seconds"] = reference_seconds
        return self.entries[key]

    def save(self):
        """Merge this run's entries into the file (another run may have
        added its own since this one started) and replace it atomically."""
        if self.path is None:
            return
        lock_path = Path(tempfile.gettempdir()) / f"sklearn_ae_{self.path.name}.lock"
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            entries = json.loads(self.path.read_text()) if self.path.is_file() else {}
            entries.update(self.entries)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(entries, indent=0, sort_keys=True) + "\n")
            os.replace(tmp, self.path)


# ---------------------------------------------------------------------- run
def run(sets, methods, seeds, cap, cache, quick=False, log=print, time_reference=None):
    """Return ``{method: {set: [(auc, seconds, reference seconds) per seed]}}``.

    Methods run one after the other on each split (interleaved over sets
    and seeds), so their times are taken under the same load. With
    ``time_reference`` (a method), on every split where a method is not in
    the cache the reference is first measured afresh too (not cached), and
    each new entry keeps the reference's seconds on its split beside its
    own (``reference_seconds``): its time ratio to the reference is then
    measured side by side, whatever the load when it ran (see
    ``time_ratios``). Otherwise the third element is None.
    """
    results = {m: {} for m in methods}
    for name, X, y in sets:
        for seed in seeds:
            X_train = None
            reference_seconds = None
            keys = {m: cache.key(m, name, seed, cap, quick) for m in methods}
            missing = [m for m in methods if cache.get(keys[m], count=False) is None]
            if time_reference is not None and missing:
                X_train, X_test, _, y_test = split(X, y, seed, cap)
                _, reference_seconds = _fit_score(time_reference, seed, quick, X_train, X_test, name)
            for method in methods:
                entry = cache.get(keys[method])
                if entry is None:
                    if X_train is None:
                        X_train, X_test, _, y_test = split(X, y, seed, cap)
                    scores, seconds = _fit_score(method, seed, quick, X_train, X_test, name)
                    entry = cache.put(keys[method], float(roc_auc_score(y_test, scores)), seconds,
                                      reference_seconds)
                results[method].setdefault(name, []).append(
                    (entry["auc"], entry["seconds"], entry.get("reference_seconds"))
                )
            log(f"{name:<12} seed {seed}: " + "  ".join(
                f"{m.removeprefix('AE:')}={results[m][name][-1][0]:.3f}" for m in methods
            ))
        cache.save()
    return results


def _fit_score(method, seed, quick, X_train, X_test, name):
    """Fit ``method`` on ``X_train``; return its outlier scores of ``X_test``
    and the seconds of both."""
    fit, outlier_scores = make_method(method, seed, quick)
    return timed_scores(fit, outlier_scores, X_train, X_test, method, f" on {name}")


def timed_scores(fit, outlier_scores, X_train, X_test, method, where=""):
    """Run ``fit(X_train)`` then ``outlier_scores(X_test)`` (warnings
    silenced); return the scores and the seconds of both. Non-finite
    scores raise, naming ``method`` (and ``where``)."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit(X_train)
        scores = outlier_scores(X_test)
    seconds = time.perf_counter() - start
    if not np.all(np.isfinite(scores)):
        raise RuntimeError(f"{method} gave non-finite scores{where}")
    return scores, seconds


def set_auc(results, method):
    """``{set: mean AUC over seeds}``."""
    return {name: float(np.mean([r[0] for r in v])) for name, v in results[method].items()}


def total_seconds(results, method):
    return float(sum(r[1] for v in results[method].values() for r in v))


def time_ratios(cached, measured, candidates):
    """Estimate each candidate's fit+score time over IsolationForest's.

    ``measured`` holds ``TIME_REFERENCE`` and IsolationForest measured side
    by side in this run. A candidate's ratio is its seconds over the
    reference's, times the reference's over IsolationForest's (measured).
    Its seconds over the reference's come from ``cached``, the runs that
    computed it: where every one of its entries holds the reference's
    seconds measured beside it on the same split (``run``'s
    ``time_reference``), over those; else (entries computed before that
    existed) over the reference's own cached seconds, which compare only
    when both were computed in one run, interleaved on each split.
    """
    ref = "AE:" + TIME_REFERENCE
    measured_ratio = total_seconds(measured, ref) / total_seconds(measured, "IsolationForest")
    out = {}
    for c in candidates:
        rows = [r for v in cached["AE:" + c].values() for r in v]
        if c != TIME_REFERENCE and all(r[2] is not None for r in rows):
            relative = sum(r[1] for r in rows) / sum(r[2] for r in rows)
        else:
            relative = total_seconds(cached, "AE:" + c) / total_seconds(cached, ref)
        out[c] = relative * measured_ratio
    return out


def leave_sets_out(results, candidates, folds):
    """Choose a candidate on each fold's training sets, score it on the fold.

    Returns ``(chosen per fold, out-of-fold AUC per set, in-sample choice)``.
    """
    auc = {c: set_auc(results, "AE:" + c) for c in candidates}
    names = list(folds)
    chosen, oof = {}, {}
    for fold in sorted(set(folds.values())):
        train = [n for n in names if folds[n] != fold]
        best = max(candidates, key=lambda c: np.mean([auc[c][n] for n in train]))
        chosen[fold] = best
        for n in names:
            if folds[n] == fold:
                oof[n] = auc[best][n]
    in_sample = max(candidates, key=lambda c: np.mean([auc[c][n] for n in names]))
    return chosen, oof, in_sample


# --------------------------------------------------------------- large size
def large_data(n_rows, n_features, seed=0, chunk=10_000):
    """Synthetic float32 rows near a 5-d nonlinear surface; 2% off it.

    Built chunk by chunk into one float32 array, so building it peaks at
    the input's size plus one chunk. Outliers have independent features of
    a similar range (only the dependence between features gives them away).
    """
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(5, n_features)) / np.sqrt(5)
    X = np.empty((n_rows, n_features), dtype=np.float32)
    y = (rng.random(n_rows) < LARGE_OUTLIERS).astype(int)
    for start in range(0, n_rows, chunk):
        stop = min(start + chunk, n_rows)
        rows = np.tanh(rng.normal(size=(stop - start, 5)) @ W)
        rows += 0.1 * rng.normal(size=rows.shape)
        out = y[start:stop] == 1
        rows[out] = np.tanh(rng.normal(size=(out.sum(), n_features))) + 0.1 * rng.normal(
            size=(out.sum(), n_features)
        )
        X[start:stop] = rows
    return X, y


def _max_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _status_bytes(field):
    """``VmRSS``, ``VmHWM``... of this process from /proc (Linux), or None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak_rss():
    """Reset this process's peak RSS to its current RSS (Linux >= 4.0).

    Building the data leaves temporaries behind in the peak; without the
    reset they would hide a method's smaller peak. Returns whether it worked.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _status_bytes("VmHWM") is not None


def large_worker(method, n_rows, n_features, threads):
    """Run in a fresh process: build the data, fit + score all rows, print JSON."""
    import torch

    torch.set_num_threads(threads)
    if method.startswith("AE:"):
        import sklearn_ae  # noqa: F401  (import cost is not the method's memory)
    X, y = large_data(n_rows, n_features)
    fit, outlier_scores = make_method(method, 0)
    gc.collect()
    reset = _reset_peak_rss()
    before = _status_bytes("VmRSS") if reset else _max_rss_bytes()
    start = time.perf_counter()
    with warnings.catch_warnings(), threadpool_limits(threads):
        warnings.simplefilter("ignore")
        fit(X)
        fitted = time.perf_counter()
        scores = outlier_scores(X)
    end = time.perf_counter()
    print(json.dumps({
        "fit_s": fitted - start,
        "score_s": end - fitted,
        "peak_increase_bytes": (_status_bytes("VmHWM") if reset else _max_rss_bytes()) - before,
        "peak_reset": reset,
        "input_bytes": X.nbytes,
        "auc": float(roc_auc_score(y, scores)),
    }))


def large_run(methods, size, threads, log=print):
    out = {}
    for method in methods:
        command = [sys.executable, str(Path(__file__).resolve()), "--large-worker", method,
                   "--large-size", str(size[0]), str(size[1]), "--threads", str(threads)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"large run of {method} failed:\n{done.stderr[-3000:]}")
        out[method] = json.loads(done.stdout.strip().splitlines()[-1])
        r = out[method]
        log(f"large {method}: fit {r['fit_s']:.1f} s, score {r['score_s']:.1f} s, "
            f"+{r['peak_increase_bytes'] / r['input_bytes']:.2f}x input, AUC {r['auc']:.3f}")
    return out


# ------------------------------------------------------------------- report
def machine():
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPU cores, {platform.system()} {platform.release()}"


def load():
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def report(results, candidates, baselines, folds, seeds, sets_note, command, threads,
           loads, cache, large=None, large_size=None, ratios=None, time_budget=None,
           cached_seconds=None, side_by_side=None, shipped=None):
    import torch

    names = list(folds)
    eligible = [c for c in candidates if ratios is None or ratios[c] <= time_budget]
    chosen, oof, in_sample = leave_sets_out(results, eligible, folds)
    # The defaults' own selection: the same folds, among the hedged
    # candidates only (HEDGED, fifth attempt).
    hedged = [c for c in eligible if c in HEDGED]
    h_chosen, h_oof, h_in_sample = (
        leave_sets_out(results, hedged, folds) if hedged else ({}, {}, None))
    auc = {c: set_auc(results, "AE:" + c) for c in candidates}
    base_auc = {b: set_auc(results, b) for b in baselines}
    final = "AE:" + in_sample
    mean = lambda d: float(np.mean([d[n] for n in names]))  # noqa: E731
    oof_mean, in_mean = mean(oof), mean(auc[in_sample])
    # The defaults have an out-of-fold figure when they are what their
    # selection chooses on all sets.
    shipped_oof = mean(h_oof) if shipped is not None and shipped == h_in_sample else None
    if_mean = mean(base_auc["IsolationForest"]) if "IsolationForest" in baselines else None
    lines = [
        "# Outlier detection: leave-sets-out ADBench protocol "
        "(written by `benchmarks/bench_outliers.py`)",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"load average (1/5/15 min) at start {loads[0]}, at end {loads[-1]}",
        f"- machine: {machine()} (shared with other jobs: times are noisy); "
        f"torch threads: {threads}",
        f"- versions: python {platform.python_version()}, numpy {np.__version__}, "
        f"scikit-learn {sklearn.__version__}, torch {torch.__version__}, "
        f"pyod {pyod_version()}",
        f"- data: {sets_note}; within a set: stratified 70/30 split per seed (seeds "
        f"{', '.join(map(str, seeds))}), each part capped at {CAP:,} rows, fit on "
        "train without labels, ROC-AUC of the test part; a set's AUC is the mean over seeds.",
        "- leave-sets-out: folds "
        + "; ".join(
            f"{f}: " + ", ".join(n for n in names if folds[n] == f)
            for f in sorted(set(folds.values()))
        )
        + ". Each fold's candidate is the best mean AUC on the other folds' sets.",
        f"- cache: {cache.hits} of the candidates' (set, seed) results were read from "
        f"`{cache.path.name if cache.path else None}` (the candidates table's seconds "
        "then come from the run that computed them, and so do the scores of the "
        "candidates the folds chose, in the summary's out-of-fold column); the "
        "defaults, IsolationForest and PCA were all measured in this run, "
        "interleaved on each split"
        if cache.hits else "- cache: none used; every result was measured in this run",
        "",
        "## Summary",
        "",
        "| method | in-sample mean ROC-AUC | out-of-fold mean ROC-AUC | fit+score seconds | time / IsolationForest |",
        "|---|---:|---:|---:|---:|",
    ]
    if_seconds = total_seconds(results, "IsolationForest") if if_mean is not None else None
    ratio = lambda s: f"{s / if_seconds:.2f}x" if if_seconds else "-"  # noqa: E731
    if shipped is not None:
        s, m = total_seconds(results, "AE:" + shipped), mean(auc[shipped])
        how = (f"chosen per fold among the hedged candidates (in-sample choice: `{h_in_sample}`)"
               if shipped_oof is not None else
               f"NOT the hedged candidates' choice on all sets (`{h_in_sample}`)")
        lines.append(
            f"| **AEOutlierDetector defaults** (`{shipped}`), {how} | {m:.4f} | "
            f"{'none' if shipped_oof is None else f'{shipped_oof:.4f}'} | {s:.1f} | {ratio(s)} |"
        )
    s = total_seconds(results, final)
    lines.append(
        f"| AEOutlierDetector, chosen per fold among all candidates (in-sample: `{in_sample}`) | "
        f"{in_mean:.4f} | {oof_mean:.4f} | {s:.1f} | {ratio(s)} |"
    )
    for b in baselines:
        s = total_seconds(results, b)
        m = mean(base_auc[b])
        lines.append(f"| {b} | {m:.4f} | {m:.4f} | {s:.1f} | {ratio(s)} |")
    if shipped is not None and if_mean is not None:
        s = total_seconds(results, "AE:" + shipped)
        m = mean(auc[shipped])
        lines += [
            "",
            f"**Shipped defaults** (`{shipped}`): "
            + (f"out-of-fold mean ROC-AUC {shipped_oof:.4f}, margin over IsolationForest "
               f"**{shipped_oof - if_mean:+.4f}** out of fold; "
               if shipped_oof is not None else "no out-of-fold figure (they are not "
               "what their selection chooses on all sets); ")
            + f"in-sample {m:.4f}, **{m - if_mean:+.4f}**; time {ratio(s)} "
            "IsolationForest's on the same splits (measured side by side). They are "
            "the leave-sets-out selection's choice on all sets among the *hedged* "
            f"candidates ({len(hedged)} eligible: every candidate whose score adds the "
            "isolation score, `isolation_weight > 0`); the out-of-fold figure is that "
            "selection's, each fold choosing on the other folds' sets. Not held out: "
            "the rule that the defaults are hedged was made after the out-of-panel "
            "sets of `bench_outliers_unseen.py` were seen (OUTLIER_NOTES.md, fourth "
            "and fifth attempts), and the candidates are one change each from a base "
            "chosen on these sets in issue 4.",
        ]
    if if_mean is not None:
        lines += [
            "",
            f"Among all candidates (hedged or not), the out-of-fold margin over "
            f"IsolationForest is {oof_mean - if_mean:+.4f} (in-sample: "
            f"{in_mean - if_mean:+.4f}; chosen on all sets: `{in_sample}`, "
            f"{ratio(total_seconds(results, final))} IsolationForest's time on the "
            "same splits)"
            + ("." if in_sample == shipped else
               "; the defaults do not follow it: they are hedged (see above)."),
        ]
        if ratios is not None:
            lines.append(
                f"Both selections choose among the {len(eligible)} of {len(candidates)} "
                f"candidates whose estimated time is within {time_budget:g}x "
                "IsolationForest's (see Candidates); over budget: "
                + (", ".join(f"`{c}`" for c in candidates if c not in eligible) or "none") + "."
            )
    lines += [
        "",
        "## Candidates",
        "",
        "Parameters beyond the common base "
        f"`{json.dumps(BASE)}`. Training folds = mean over the training folds' "
        "sets, averaged over the 5 folds; all sets = mean over every set (a "
        "fixed candidate chooses nothing here, but the common base was chosen "
        "on these sets in issue 4, so this is not a held-out figure); chosen = "
        "the folds whose training sets rated it best, among all eligible "
        "candidates and among the hedged ones (`isolation_weight > 0`, the "
        "defaults' selection). "
        "Seconds are from the run that computed the candidate (candidates "
        "computed together were interleaved on each split); time / "
        "IsolationForest is estimated as the candidate's seconds over "
        f"`{TIME_REFERENCE}`'s, times `{TIME_REFERENCE}`'s ratio measured side "
        "by side with IsolationForest in this run. The first ratio is over "
        f"`{TIME_REFERENCE}` measured beside the candidate on each split where "
        "the cache holds that (candidates computed since it was added: "
        + (", ".join(f"`{c}`" for c in candidates if c in (side_by_side or ())) or "none")
        + f"), else over `{TIME_REFERENCE}`'s seconds in the run that computed "
        "the candidate"
        + (f"; candidates over the time budget of {time_budget:g}x are not "
           "eligible (marked *over budget*) and are never chosen." if ratios else "."),
        "",
        "| candidate | overrides | mean on training folds | mean on all sets | chosen in folds (all) | chosen in folds (hedged) | fit+score seconds | time / IsolationForest (est.) |",
        "|---|---|---:|---:|---|---|---:|---:|",
    ]
    fold_ids = sorted(set(folds.values()))
    for c in candidates:
        train = np.mean([
            np.mean([auc[c][n] for n in names if folds[n] != f]) for f in fold_ids
        ])
        picked = ", ".join(str(f) for f in fold_ids if chosen[f] == c) or "-"
        h_picked = ("n/a" if c not in HEDGED else
                    ", ".join(str(f) for f in fold_ids if h_chosen.get(f) == c) or "-")
        seconds = (cached_seconds or {}).get(c, total_seconds(results, "AE:" + c))
        est = "-" if ratios is None else f"{ratios[c]:.2f}x" + (
            "" if c in eligible else " *over budget*")
        lines.append(
            f"| `{c}` | `{json.dumps(CANDIDATES[c])}` | {train:.4f} | {mean(auc[c]):.4f} | "
            f"{picked} | {h_picked} | {seconds:.1f} | {est} |"
        )
    lines += [
        "",
        "## Per set",
        "",
        "Out-of-fold = the AUC of the candidate chosen without the set's fold, "
        "among the hedged candidates (the defaults' selection) and among all."
        + (f" Defaults = `{shipped}`, in-sample." if shipped else ""),
        "",
        "| data set | fold | hedged: chosen | hedged: out-of-fold | "
        + ("defaults | " if shipped else "")
        + f"all: chosen | all: out-of-fold | all: in-sample (`{in_sample}`) | "
        + " | ".join(baselines) + " |",
        "|---|---:|---|---:|" + "---:|" * bool(shipped) + "---|---:|---:|"
        + "---:|" * len(baselines),
    ]
    shipped_cell = (lambda n: f"{auc[shipped][n]:.3f} | ") if shipped else (lambda n: "")
    h_cell = lambda n: (  # noqa: E731
        f"`{h_chosen[folds[n]]}` | {h_oof[n]:.3f} | " if h_oof else "- | - | ")
    for n in names:
        lines.append(
            f"| {n} | {folds[n]} | " + h_cell(n) + shipped_cell(n)
            + f"`{chosen[folds[n]]}` | {oof[n]:.3f} | {auc[in_sample][n]:.3f} | "
            + " | ".join(f"{base_auc[b][n]:.3f}" for b in baselines) + " |"
        )
    lines.append(
        "| **mean ROC-AUC** | | | "
        + (f"**{mean(h_oof):.3f}** | " if h_oof else "- | ")
        + (f"**{mean(auc[shipped]):.3f}** | " if shipped else "")
        + f"| **{oof_mean:.3f}** | **{in_mean:.3f}** | "
        + " | ".join(f"**{mean(base_auc[b]):.3f}**" for b in baselines) + " |"
    )
    lines.append(
        "| fit+score seconds | | | | "
        + (f"{total_seconds(results, 'AE:' + shipped):.1f} | " if shipped else "")
        + f"| | {total_seconds(results, final):.1f} | "
        + " | ".join(f"{total_seconds(results, b):.1f}" for b in baselines) + " |"
    )
    if large:
        n, d = large_size
        lines += [
            "",
            f"## Large size: {n:,} x {d} float32 (synthetic, {LARGE_OUTLIERS:.0%} outliers)",
            "",
            "Fresh process per method, one run each in the order of the table "
            "(not repeated: on a shared machine the ratio moves between runs of "
            "the same code, see OUTLIER_NOTES.md); fit on all rows, then "
            "score all rows. Peak "
            "memory = peak RSS during fit and scoring above the RSS once the data "
            "were built (the peak reset there through /proc/self/clear_refs"
            + ("" if all(r.get("peak_reset") for r in large.values()) else
               "; NOT available here: max RSS since the start, which includes building the data")
            + "), over the input's size (excludes imports).",
            "",
            "| method | fit s | score s | fit+score s | time / IsolationForest | peak memory / input | ROC-AUC |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        ref = large.get("IsolationForest")
        for m, r in large.items():
            t = r["fit_s"] + r["score_s"]
            rel = f"{t / (ref['fit_s'] + ref['score_s']):.2f}x" if ref else "-"
            lines.append(
                f"| {m.removeprefix('AE:')} | {r['fit_s']:.1f} | {r['score_s']:.1f} | {t:.1f} | "
                f"{rel} | +{r['peak_increase_bytes'] / r['input_bytes']:.2f}x | {r['auc']:.3f} |"
            )
    lines.append("")
    return "\n".join(lines), {"oof": oof_mean, "in_sample": in_mean, "chosen": in_sample,
                              "IsolationForest": if_mean, "hedged_chosen": h_in_sample,
                              "shipped_oof": shipped_oof}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder holding adbench/*.npz (default: %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sets", nargs="+", default=None,
                        help="only sets whose name contains one of these")
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES),
                        choices=list(CANDIDATES))
    parser.add_argument("--baselines", nargs="+", default=["IsolationForest", "PCA"],
                        choices=BASELINES)
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT),
                        help="Markdown file to write, '-' for stdout only")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="JSON cache of per-(method, set, seed) results")
    parser.add_argument("--fresh", action="store_true",
                        help="ignore the cache's entries (and rewrite them)")
    parser.add_argument("--skip-large", action="store_true", help="no large-size run")
    parser.add_argument("--time-budget", type=float, default=TIME_BUDGET,
                        help="candidates estimated slower than this multiple of "
                             "IsolationForest's time are not eligible; 0: no budget "
                             "(default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for every method (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: small sets, one seed, a few epochs, no cache")
    parser.add_argument("--large-worker", help=argparse.SUPPRESS)
    parser.add_argument("--large-size", type=int, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.large_worker:
        large_worker(args.large_worker, *args.large_size, args.threads)
        return 0
    baselines = list(args.baselines)
    if "IsolationForest" not in baselines:
        baselines.insert(0, "IsolationForest")
    if "PyOD-AutoEncoder" in baselines and pyod_version() is None:
        print("pyod is not installed (pip install -e '.[benchmarks]'); "
              "skipping PyOD-AutoEncoder.")
        baselines.remove("PyOD-AutoEncoder")
    candidates = list(args.candidates)

    cap, seeds, names = CAP, args.seeds, args.sets
    cache = Cache(None if args.quick else args.cache, args.fresh)
    if args.quick:
        cap, seeds = 300, args.seeds[:1]
        names = names or ["wine", "glass", "WBC", "breastw"]
        if args.candidates == list(CANDIDATES):  # the reference and the shipped design
            candidates = [TIME_REFERENCE, SHIPPED]
    if (args.data / "adbench").is_dir():
        sets = load_sets(args.data, names)
        sets_note = f"{len(sets)} sets: " + ", ".join(n for n, _, _ in sets)
    elif args.quick:
        print(f"no data folder at {args.data / 'adbench'}; --quick uses synthetic sets.")
        sets = synthetic_sets()
        sets_note = f"{len(sets)} synthetic sets"
    else:
        print(f"no data folder at {args.data / 'adbench'}: pass --data DIR. Skipping.")
        return 0
    if len(sets) < 2:
        print(f"leave-sets-out needs at least 2 sets; {len(sets)} match --sets {names}.")
        return 0
    folds = assign_folds([n for n, _, _ in sets])

    import torch

    loads = [load()]
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        with threadpool_limits(args.threads):
            # Candidates computed now (not in the cache) get the reference's
            # seconds measured beside them on each split (see time_ratios);
            # a --fresh run computes them all side by side anyway.
            side_by_side = None if args.fresh or args.quick else "AE:" + TIME_REFERENCE
            results = run(sets, ["AE:" + c for c in candidates], seeds, cap, cache, args.quick,
                          time_reference=side_by_side)
            # The setting chosen on all sets and the baselines are always
            # measured again in this run, interleaved on the same splits, so
            # their times (and the ratio) are side by side, never cached.
            reference = TIME_REFERENCE if TIME_REFERENCE in candidates else candidates[0]
            # The shipped design is known before any choice: it is measured
            # in the same interleaved pass as the reference and the baselines.
            shipped = SHIPPED if SHIPPED in candidates else None
            first = [reference] + ([shipped] if shipped not in (None, reference) else [])
            measured = run(sets, baselines + ["AE:" + c for c in first], seeds, cap,
                           Cache(None, fresh=True), args.quick)
            ratios = None
            if reference == TIME_REFERENCE and args.time_budget:
                ratios = time_ratios(results, measured, candidates)
            eligible = [c for c in candidates if ratios is None or ratios[c] <= args.time_budget]
            _, _, chosen = leave_sets_out(results, eligible, folds)
            hedged = [c for c in eligible if c in HEDGED]
            hedged_choice = leave_sets_out(results, hedged, folds)[2] if hedged else None
            if shipped is not None and hedged_choice not in (None, shipped):
                print(f"NOTE: the hedged candidates' choice on all sets is "
                      f"`{hedged_choice}`, not the shipped `{shipped}`: the defaults "
                      "then have no out-of-fold figure (update SHIPPED and the defaults).")
            extra = [c for c in dict.fromkeys([chosen, hedged_choice]) if c not in first + [None]]
            if extra:
                # Measured beside the baselines again; the first pass's
                # baselines are kept, which the defaults were measured beside.
                second = run(sets, baselines + ["AE:" + c for c in extra], seeds, cap,
                             Cache(None, fresh=True), args.quick)
                measured.update({"AE:" + c: second["AE:" + c] for c in extra})
    finally:
        torch.set_num_threads(threads)
    cached_seconds = {c: total_seconds(results, "AE:" + c) for c in candidates}
    timed_beside = [
        c for c in candidates if c != TIME_REFERENCE
        and all(r[2] is not None for v in results["AE:" + c].values() for r in v)
    ]
    results.update(measured)
    large = large_size = None
    if not args.skip_large:
        large_size = LARGE_QUICK if args.quick else LARGE
        large = large_run(["IsolationForest", "AE:" + (shipped or chosen)], large_size,
                          args.threads)
    loads.append(load())
    command = "python benchmarks/bench_outliers.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    text, _ = report(results, candidates, baselines, folds, seeds, sets_note,
                     command.strip(), args.threads, loads, cache, large, large_size,
                     ratios, args.time_budget, cached_seconds, timed_beside, shipped)
    print(text)
    if args.output != "-" and not (args.quick and args.output == str(DEFAULT_OUTPUT)):
        Path(args.output).write_text(text)
        print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
