"""Held-out representation quality of the autoencoders against their linear models.

A panel of real data sets, each used as plain data (labels ignored): every
tabular set in ``adbench/`` under ``--data``, scikit-learn's breast cancer
and digits, the CIFAR10_0 ResNet-18 embeddings (``embeddings/CIFAR10_0.npz``),
and small, wide cases (300 rows of the 512-column embeddings, 300 rows of
ADBench's mnist, whose near-constant pixel columns are kept). Per set and
seed: a 70/30 split (at most ``--max-train-rows`` training and
``--max-test-rows`` held-out rows, drawn at random), each set z-scored on its
training part, then

- held-out reconstruction error (mean squared error in those z-scored units)
  of ``PCA`` and ``AutoencoderTransformer`` (defaults: only ``n_components``
  and ``random_state`` are set) at ``n_components = max(2, n_features // 4)``;
- held-out log-likelihood (``score``, nats per sample) of ``PCA``
  (probabilistic PCA), ``FactorAnalysis`` and ``VAETransformer`` (defaults;
  its ELBO, a lower bound) at ``n_components`` 4 and 16, where
  ``n_components < n_features``.

The sets are split in two halves by name (alternating in sorted order):
half A is where a default may be chosen, half B is only reported; the
summary gives both halves separately.

With ``--panel unseen`` the same protocol runs on sets that no default and
no design choice was made on (nor looked at before they were chosen):
scikit-learn's bundled iris, wine and diabetes, and made-up data of kinds
the panel lacks (manifolds, heavy tails, gross outliers, skewed, count,
binary and integer columns, uniform noise, a small wide set). It writes
``benchmarks/REPRESENTATION_UNSEEN.md``: the out-of-sample check of the
claims, with no halves (every set is reported only).

Usage::

    python benchmarks/bench_representation.py           # full run, minutes
    python benchmarks/bench_representation.py --quick   # seconds: a smoke test
    python benchmarks/bench_representation.py --panel unseen --seeds 0,1
"""

import argparse
import datetime
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    load_iris,
    load_wine,
    make_friedman1,
    make_s_curve,
    make_swiss_roll,
)
from sklearn.decomposition import PCA, FactorAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sklearn_ae import AutoencoderTransformer, VAETransformer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import load_average as _load  # noqa: E402
from _machine import machine_description  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "datasets"
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "REPRESENTATION_RESULTS.md"
UNSEEN_OUTPUT = Path(__file__).resolve().parent / "REPRESENTATION_UNSEEN.md"
LIKELIHOOD_COMPONENTS = (4, 16)
# The bars: AE error <= 1.02x PCA's on every set, median <= 0.6x;
# VAE's ELBO >= the better linear model's log-likelihood less max(1 nat, 1%).
AE_WORST_BAR, AE_MEDIAN_BAR = 1.02, 0.6


# ------------------------------------------------------------------- data
def _synthetic(n_samples, n_features, seed):
    """Low-rank data through a nonlinearity, with two near-constant columns."""
    rng = np.random.RandomState(seed)
    latent = rng.randn(n_samples, 3)
    X = np.tanh(latent @ rng.randn(3, n_features)) + 0.05 * rng.randn(n_samples, n_features)
    X[:, 0] = (rng.rand(n_samples) < 0.01).astype(float)  # a rare flag
    X[:, 1] = 1e-3 * rng.randn(n_samples)  # nearly constant
    return X


def load_panel(data_dir, quick):
    """Return ``[(name, X)]``, sorted by name; real sets where found."""
    data_dir = Path(data_dir)
    sets = []
    adbench = sorted((data_dir / "adbench").glob("*.npz"))
    cifar = data_dir / "embeddings" / "CIFAR10_0.npz"
    if quick:
        adbench = [p for p in adbench if p.stem == "14_glass"]
    for path in adbench:
        sets.append((path.stem, np.load(path)["X"].astype(np.float64)))
    if cifar.exists():
        X = np.load(cifar)["X"].astype(np.float64)
        if not quick:
            sets.append(("CIFAR10_0", X))
        # small, wide: 300 rows of 512 columns, three disjoint draws
        order = np.random.RandomState(0).permutation(len(X))
        for i in range(1 if quick else 3):
            rows = X[np.sort(order[300 * i : 300 * (i + 1)])]
            sets.append((f"CIFAR10_0 300 rows #{i + 1}", rows[:, :64] if quick else rows))
    mnist = data_dir / "adbench" / "24_mnist.npz"
    if mnist.exists() and not quick:
        X = np.load(mnist)["X"].astype(np.float64)
        rows = np.sort(np.random.RandomState(0).permutation(len(X))[:300])
        sets.append(("24_mnist 300 rows", X[rows]))
    if not sets:
        print(
            f"no data under {data_dir} (pass --data with the folder holding "
            "adbench/ and embeddings/): synthetic sets stand in.",
            file=sys.stderr,
        )
        sets.append(("synthetic 400x12", _synthetic(400, 12, 0)))
        if not quick:
            sets.append(("synthetic 300x200", _synthetic(300, 200, 1)))
    X, _ = load_breast_cancer(return_X_y=True)
    sets.append(("breast cancer", X))
    if not quick:
        X, _ = load_digits(return_X_y=True)
        sets.append(("digits", X))
    return sorted(sets, key=lambda item: item[0].lower())


def _low_rank(rng, n_samples, n_features, rank, noise):
    return rng.randn(n_samples, rank) @ rng.randn(rank, n_features) + noise * rng.randn(
        n_samples, n_features
    )


def load_unseen(quick):
    """Return ``[(name, X)]``: sets that no default was chosen on.

    Drawn once (fixed seeds): the run's seeds vary the split and the models.
    Added 2026-11-22, after every default of the estimators was set.
    """
    rng = np.random.RandomState(100)
    sets = [
        ("iris", load_iris().data),
        ("wine", load_wine().data),
        ("diabetes", load_diabetes().data),
    ]
    if quick:
        return sets[:2]
    X, _ = make_swiss_roll(1500, noise=0.2, random_state=0)
    sets.append(("swiss roll + 7 noise columns", np.hstack([X, 0.5 * rng.randn(1500, 7)])))
    X, _ = make_s_curve(1000, noise=0.1, random_state=0)
    sets.append(("S curve through tanh, 12 columns", np.tanh(X @ rng.randn(3, 12))))
    X, _ = make_friedman1(800, n_features=16, random_state=0)
    sets.append(("uniform noise, 16 columns", X))
    latent = rng.randn(2000, 3)
    sets.append((
        "rank 3 + Student t(2) noise, 20 columns",
        latent @ rng.randn(3, 20) + rng.standard_t(2, size=(2000, 20)),
    ))
    X = _low_rank(rng, 1200, 24, 4, 0.3)
    X[rng.rand(1200) < 0.05] *= 8
    sets.append(("rank 4, 5% gross outlier rows, 24 columns", X))
    sets.append(("lognormal, 15 columns", np.exp(_low_rank(rng, 900, 15, 3, 0.5))))
    sets.append((
        "Poisson counts, 30 columns",
        rng.poisson(np.exp(0.5 * _low_rank(rng, 1000, 30, 3, 0.1))).astype(float),
    ))
    X = _low_rank(rng, 600, 40, 5, 0.3)
    X[:, :6] = rng.rand(600, 6) < 0.03
    sets.append(("rank 5 + 6 rare binary columns, 40 columns", X))
    sets.append(("small wide 150 x 60, rank 6", _low_rank(rng, 150, 60, 6, 0.3)))
    sets.append((
        "rank 2 + 5 integer columns, 15 columns",
        np.hstack([_low_rank(rng, 700, 10, 2, 0.3), np.round(rng.randn(700, 5) * 2)]),
    ))
    angles = rng.rand(1500, 2) * 2 * np.pi
    sets.append((
        "torus in 16 columns",
        np.hstack([np.cos(angles), np.sin(angles)]) @ rng.randn(4, 16)
        + 0.05 * rng.randn(1500, 16),
    ))
    return sorted(sets, key=lambda item: item[0].lower())


def halves(names):
    """Half 'A' (defaults may be chosen here) or 'B' (reported only), alternating."""
    return {name: "AB"[i % 2] for i, name in enumerate(sorted(names, key=str.lower))}


def split(X, seed, max_train, max_test):
    X_train, X_test = train_test_split(X, test_size=0.3, random_state=seed)
    rng = np.random.RandomState(seed)
    if len(X_train) > max_train:
        X_train = X_train[np.sort(rng.choice(len(X_train), max_train, replace=False))]
    if len(X_test) > max_test:
        X_test = X_test[np.sort(rng.choice(len(X_test), max_test, replace=False))]
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test)


# ----------------------------------------------------------------- models
def _mse(model, X):
    return float(np.mean((model.inverse_transform(model.transform(X)) - X) ** 2))


def _timed(fn):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = fn()
    return result, time.perf_counter() - start


def reconstruction_row(name, X_train, X_test, seed, ae_options):
    d = X_train.shape[1]
    k = min(max(2, d // 4), len(X_train))
    # PCA's default solver is randomized on wide sets: seeded, so reruns agree
    pca = PCA(n_components=k, random_state=seed).fit(X_train)
    ae, seconds = _timed(
        lambda: AutoencoderTransformer(n_components=k, random_state=seed, **ae_options).fit(
            X_train
        )
    )
    initial = getattr(dict(ae.net_.callbacks_)["early_stopping"], "initial_score_", None)
    kept_start = bool(
        ae.early_stopping and initial is not None
        and ae.best_validation_score_ == -initial
    )
    pca_error, ae_error = _mse(pca, X_test), _mse(ae, X_test)
    return {
        "set": name, "seed": seed, "n_train": len(X_train), "n_test": len(X_test),
        "n_features": d, "k": k, "pca": pca_error, "ae": ae_error,
        "ratio": ae_error / pca_error if pca_error > 0 else math.nan,
        "epochs": ae.n_iter_, "kept_start": kept_start, "fit_s": seconds,
    }


def likelihood_rows(name, X_train, X_test, seed, vae_options, quick=False):
    rows = []
    d = X_train.shape[1]
    for k in LIKELIHOOD_COMPONENTS[:1] if quick else LIKELIHOOD_COMPONENTS:
        if k >= d or k >= len(X_train):
            continue
        row = {"set": name, "seed": seed, "n_features": d, "k": k}
        models = {
            "pca": lambda: PCA(n_components=k, random_state=seed).fit(X_train),
            "fa": lambda: FactorAnalysis(n_components=k, random_state=seed).fit(X_train),
            "vae": lambda: VAETransformer(
                n_components=k, random_state=seed, **vae_options
            ).fit(X_train),
        }
        for key, fit in models.items():
            try:
                model, seconds = _timed(fit)
                with np.errstate(all="ignore"):
                    row[key] = float(model.score(X_test))
                row[key + "_s"] = seconds
            except Exception as exc:  # a failed model is a finding, not a crash
                row[key] = math.nan
                row[key + "_error"] = f"{type(exc).__name__}: {exc}"[:120]
        rows.append(row)
    return rows


# ----------------------------------------------------------------- report
def _fmt(value, digits=4):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a" if value is None or math.isnan(value) else str(value)
    return f"{value:.{digits}g}"


def _whole_tabular(name):
    """Whether a panel set is a tabular set at its full size (not a row
    draw such as '24_mnist 300 rows', not an embedding set)."""
    return "rows" not in name and not name.startswith("CIFAR")


def ae_summary(rows):
    ratios = np.array([r["ratio"] for r in rows if math.isfinite(r["ratio"])])
    if not len(ratios):
        return "no sets"
    worst = max(rows, key=lambda r: r["ratio"])
    return (
        f"{len(ratios)} runs: AE below PCA's error on {int((ratios < 1).sum())}, "
        f"at most {AE_WORST_BAR}x on {int((ratios <= AE_WORST_BAR).sum())}; median "
        f"ratio {np.median(ratios):.3f} (bar {AE_MEDIAN_BAR}), worst {ratios.max():.3f} "
        f"({worst['set']}, bar {AE_WORST_BAR})"
    )


def vae_gap(row):
    """ELBO minus the better linear log-likelihood, and whether the bar holds."""
    linear = [row[m] for m in ("pca", "fa") if math.isfinite(row.get(m, math.nan))]
    if not linear or not math.isfinite(row.get("vae", math.nan)):
        return math.nan, False
    best = max(linear)
    gap = row["vae"] - best
    return gap, gap >= -max(1.0, 0.01 * abs(best))


def vae_summary(rows):
    gaps = [vae_gap(r) for r in rows]
    finite = [g for g, _ in gaps if math.isfinite(g)]
    if not finite:
        return "no runs"
    met = sum(ok for _, ok in gaps)
    return (
        f"{len(rows)} runs: VAE ELBO within max(1 nat, 1%) of the better linear "
        f"model (or above) on {met}; median gap {np.median(finite):+.3g} nats, "
        f"worst {min(finite):+.3g}; non-finite VAE scores: "
        f"{sum(not math.isfinite(r.get('vae', math.nan)) for r in rows)}"
    )


def _write(path, lines):
    """Write the report to ``path``; ``'-'``: nowhere (a smoke test's run
    prints its rows as it goes)."""
    if path != "-":
        Path(path).write_text("\n".join(lines) + "\n")


def _settings(options):
    """How a report names the estimator's settings."""
    if not options:
        return "its defaults"
    return "its defaults except " + ", ".join(f"`{k}={v!r}`" for k, v in options.items())


def write_report(path, recon, likelihood, half, args, command, load_before, load_after,
                 started, seconds):
    unseen = args.panel == "unseen"
    lines = [
        "# Representation panel: autoencoders against their linear models"
        + (", on sets no default was chosen on" if unseen else ""),
        "",
        f"Written by `benchmarks/bench_representation.py` (`{command}`), started "
        f"{started} UTC, {seconds / 60:.1f} min.",
        "",
        f"- Machine: {machine_description()}.",
        f"- Load average (1, 5, 15 min) before: {load_before}; after: {load_after} "
        "(a shared machine: fit times are indicative only).",
        f"- Seeds: {args.seeds} (split, row caps and `random_state` of every model).",
        f"- Protocol: 70/30 split, at most {args.max_train_rows} training and "
        f"{args.max_test_rows} held-out rows (random), z-scored on the training part "
        "(StandardScaler). Labels ignored.",
        "- Reconstruction: mean squared error on the held-out rows in those z-scored "
        "units, `n_components = max(2, n_features // 4)`; AutoencoderTransformer with "
        f"{_settings(args.ae_options)}. `kept start`: early stopping restored the PCA "
        "start (no epoch beat it on the validation rows).",
        "- Likelihood: `score` on the held-out rows, nats per sample (VAE: ELBO, a "
        "lower bound); gap = VAE minus the better of PCA and FactorAnalysis; bar: "
        "gap >= -max(1 nat, 1% of that model's |score|).",
        (
            "- Sets: `--panel unseen` (see `load_unseen`): scikit-learn's iris, wine "
            "and diabetes and made-up data of kinds the main panel lacks, added after "
            "every default was set. Nothing was chosen on them: every set is reported "
            "only (no halves)."
        ) if unseen else (
            "- Halves: sets alternate in sorted order between A (where a default may be "
            "chosen) and B (reported only). How each default and design choice was made "
            "on this panel (on which half, after which runs, and what the other "
            "candidates scored) is recorded in `benchmarks/REPRESENTATION_NOTES.md`."
        ),
        "",
        "## Reconstruction error (held out, z-scored units)",
        "",
        "| set | half | seed | rows train/test | features | k | PCA | AE | AE/PCA | "
        "epochs | kept start | AE fit s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    if args.skip_reconstruction:
        lines.append("| (not run: `--skip-reconstruction`) |||||||||||||")
    for r in recon:
        lines.append(
            f"| {r['set']} | {half[r['set']]} | {r['seed']} | {r['n_train']}/{r['n_test']} "
            f"| {r['n_features']} | {r['k']} | {_fmt(r['pca'])} | {_fmt(r['ae'])} | "
            f"{r['ratio']:.3f} | {r['epochs']} | {'yes' if r['kept_start'] else 'no'} | "
            f"{r['fit_s']:.1f} |"
        )
    lines += ["", f"- All sets: {ae_summary(recon)}."]
    if not unseen:
        lines += [
            f"- Half A: {ae_summary([r for r in recon if half[r['set']] == 'A'])}.",
            f"- Half B: {ae_summary([r for r in recon if half[r['set']] == 'B'])}.",
            "- Whole tabular sets only (a breakdown, not the bar: every ADBench set, "
            "breast cancer and digits at their full size, without the 300-row "
            f"draws and the embedding sets): {ae_summary([r for r in recon if _whole_tabular(r['set'])])}.",
        ]
    if args.skip_likelihood:
        lines += ["", "Log-likelihood: not run (`--skip-likelihood`)."]
        _write(path, lines)
        return
    lines += [
        "",
        "## Log-likelihood (held out, nats per sample)",
        "",
        "| set | half | seed | features | k | PCA | FactorAnalysis | VAE (ELBO) | gap | "
        "bar met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in likelihood:
        gap, ok = vae_gap(r)
        lines.append(
            f"| {r['set']} | {half[r['set']]} | {r['seed']} | {r['n_features']} | "
            f"{r['k']} | {_fmt(r.get('pca'), 6)} | {_fmt(r.get('fa'), 6)} | "
            f"{_fmt(r.get('vae'), 6)} | {_fmt(gap, 4)} | {'yes' if ok else 'no'} |"
        )
    errors = [
        f"- {r['set']} k={r['k']} {m}: {r[m + '_error']}"
        for r in likelihood for m in ("pca", "fa", "vae") if m + "_error" in r
    ]
    lines += ["", f"- All sets: {vae_summary(likelihood)}."]
    if not unseen:
        lines += [
            f"- Half A: {vae_summary([r for r in likelihood if half[r['set']] == 'A'])}.",
            f"- Half B: {vae_summary([r for r in likelihood if half[r['set']] == 'B'])}.",
        ]
    if errors:
        lines += ["", "Failed fits:", *errors]
    _write(path, lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA),
                        help="folder with adbench/ and embeddings/ "
                        "(default: ../shared/datasets next to the repository)")
    parser.add_argument(
        "--panel", choices=("adbench", "unseen"), default="adbench",
        help="'adbench': the panel defaults were chosen on (half A) and reported on "
        "(half B); 'unseen': sets no default was chosen on (see load_unseen)",
    )
    parser.add_argument(
        "--output", default=None,
        help="Markdown file to write ('-': none; default REPRESENTATION_RESULTS.md, or "
        "REPRESENTATION_UNSEEN.md with --panel unseen); --quick writes none unless given one",
    )
    parser.add_argument("--quick", action="store_true",
                        help="a few small sets and short fits: a smoke test")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--max-train-rows", type=int, default=20_000)
    parser.add_argument("--max-test-rows", type=int, default=10_000)
    parser.add_argument("--sets", default=None,
                        help="comma-separated substrings: only sets whose name has one "
                        "('=name': only the set of exactly that name)")
    parser.add_argument("--half", choices=("A", "B"), default=None,
                        help="only the sets of this half (e.g. A, to choose a default)")
    parser.add_argument("--ae-params", default=None,
                        help="JSON dict of AutoencoderTransformer parameters to set "
                        "instead of its defaults (a candidate default, tried on half A)")
    parser.add_argument("--skip-likelihood", action="store_true")
    parser.add_argument("--skip-reconstruction", action="store_true",
                        help="run only the log-likelihood part")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.panel == "unseen":
        panel = load_unseen(args.quick)
        half = {name: "-" for name, _ in panel}
    else:
        panel = load_panel(args.data, args.quick)
        half = halves([name for name, _ in panel])
    if args.sets:
        wanted = args.sets.split(",")
        panel = [
            (n, X) for n, X in panel
            if any(n == w[1:] if w.startswith("=") else w in n for w in wanted)
        ]
    if args.half:
        panel = [(n, X) for n, X in panel if half[n] == args.half]
    ae_options = {"max_iter": 5} if args.quick else {}
    if args.ae_params:
        ae_options.update(json.loads(args.ae_params))
    vae_options = {"max_iter": 5} if args.quick else {}
    args.ae_options, args.vae_options = ae_options, vae_options
    if args.output is None:
        # A smoke test does not overwrite the committed results of a full run.
        default = UNSEEN_OUTPUT if args.panel == "unseen" else DEFAULT_OUTPUT
        args.output = "-" if args.quick else str(default)
    command = "python benchmarks/bench_representation.py " + " ".join(argv or sys.argv[1:])
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    load_before, start = _load(), time.perf_counter()
    recon, likelihood = [], []
    for name, X in panel:
        for seed in seeds:
            X_train, X_test = split(X, seed, args.max_train_rows, args.max_test_rows)
            if not args.skip_reconstruction:
                row = reconstruction_row(name, X_train, X_test, seed, ae_options)
                recon.append(row)
                print(f"{name} seed {seed}: AE/PCA {row['ratio']:.3f} "
                      f"({row['epochs']} epochs, {row['fit_s']:.1f} s)", flush=True)
            if not args.skip_likelihood:
                for lrow in likelihood_rows(name, X_train, X_test, seed, vae_options,
                                             args.quick):
                    likelihood.append(lrow)
                    print(f"{name} seed {seed} k={lrow['k']}: PCA {lrow.get('pca')} FA {lrow.get('fa')} "
                          f"VAE {lrow.get('vae')}", flush=True)
            # rewritten after every set, so that a long run leaves its results
            write_report(args.output, recon, likelihood, half, args, command,
                         load_before, _load(), started, time.perf_counter() - start)
    return recon, likelihood


if __name__ == "__main__":
    main()
