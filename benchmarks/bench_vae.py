"""Held-out log-likelihood of VAETransformer against PCA and FactorAnalysis.

All three are latent-variable density models with ``n_components`` latent
dimensions whose ``score(X)`` is the mean log-likelihood per sample (for the
VAE a lower bound on it) in nats of X's own units, so their held-out scores
compare directly. Data: the CIFAR10_0 ResNet embeddings (512 features,
ADBench, ``embeddings/CIFAR10_0.npz`` under ``--data``) and scikit-learn's
breast-cancer data, each split 70/30 with ``random_state=0``. The VAE runs
with its default settings (only ``n_components``, ``random_state`` and
``device`` are set), over several seeds.

``--panel`` runs the panel of issue 10 instead: every tabular set in
``adbench/``, breast cancer, digits, the CIFAR10_0 embeddings and a
300-row subset of them, each z-scored on its 70% training part, at
``n_components`` 4 and 16 (where smaller than the width), one VAE seed,
training rows capped at ``--max-rows`` (drawn at random). Each line says
whether the VAE's held-out ELBO reaches the better linear model's score
less max(1 nat, 1%).

Usage::

    python benchmarks/bench_vae.py            # full run, writes VAE_RESULTS.md
    python benchmarks/bench_vae.py --quick    # seconds: a smoke test
    python benchmarks/bench_vae.py --panel --output panel.md
"""

import argparse
import datetime
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.decomposition import PCA, FactorAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from sklearn_ae import VAETransformer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_description  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "datasets"
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "VAE_RESULTS.md"
# The importance-weighted bound reported next to the ELBO.
IWAE_SAMPLES = 100


def load_datasets(data_dir, quick):
    """Return ``[(name, X, n_components_list)]``; CIFAR10_0 only if present."""
    datasets = []
    cifar = Path(data_dir) / "embeddings" / "CIFAR10_0.npz"
    if cifar.exists():
        X = np.load(cifar)["X"].astype(np.float64)
        if quick:
            X = X[:600, :64]
        datasets.append(("CIFAR10_0" + (" (quick subset)" if quick else ""), X, [16]))
    else:
        print(
            f"CIFAR10_0 skipped: {cifar} not found (pass --data with the folder "
            "holding embeddings/CIFAR10_0.npz).",
            file=sys.stderr,
        )
    X, _ = load_breast_cancer(return_X_y=True)
    datasets.append(("breast cancer", X, [4] if quick else [4, 16]))
    return datasets


def load_panel(data_dir, quick):
    """Return ``[(name, X)]``: the panel of issue 10 (what is present of it)."""
    from sklearn.datasets import load_digits

    datasets = [
        ("breast cancer", load_breast_cancer().data),
        ("digits", load_digits().data),
    ]
    for path in sorted((Path(data_dir) / "adbench").glob("*.npz")):
        datasets.append((path.stem, np.load(path)["X"]))
    cifar = Path(data_dir) / "embeddings" / "CIFAR10_0.npz"
    if cifar.exists():
        X = np.load(cifar)["X"]
        rows = np.random.RandomState(0).choice(len(X), 300, replace=False)
        datasets += [("CIFAR10_0", X), ("CIFAR10_0 (300 rows)", X[rows])]
    if quick:
        datasets = [(name, X[:200, :20]) for name, X in datasets[:2]]
    return [(name, np.asarray(X, dtype=np.float64)) for name, X in datasets]


def run_panel(datasets, vae_options, max_rows, seed=0):
    """Return one dict per (set, n_components) with the three held-out scores."""
    results = []
    for name, X in datasets:
        X_train, X_test = train_test_split(X, test_size=0.3, random_state=0)
        if len(X_train) > max_rows:
            rows = np.random.RandomState(0).choice(len(X_train), max_rows, replace=False)
            X_train = X_train[rows]
        mean, scale = X_train.mean(axis=0), X_train.std(axis=0)
        scale[scale == 0] = 1.0
        X_train, X_test = (X_train - mean) / scale, (X_test - mean) / scale
        for k in (4, 16):
            if k >= X.shape[1]:
                continue
            row = dict(dataset=name, n_components=k, shape=X_train.shape)
            row["PCA"] = PCA(n_components=k).fit(X_train).score(X_test)
            row["FactorAnalysis"] = (
                FactorAnalysis(n_components=k, random_state=0).fit(X_train).score(X_test)
            )
            vae = VAETransformer(n_components=k, random_state=seed, **vae_options)
            vae, row["seconds"] = timed_fit(vae, X_train)
            row["VAETransformer"] = vae.score(X_test)
            row["start"], row["epochs"] = vae.linear_start_, vae.n_iter_
            best = max(row["PCA"], row["FactorAnalysis"])
            row["margin"] = max(1.0, 0.01 * abs(best))
            row["gap"] = row["VAETransformer"] - best
            row["holds"] = bool(np.isfinite(row["gap"]) and row["gap"] >= -row["margin"])
            results.append(row)
            print(_format_panel_row(row), flush=True)
    return results


def _format_panel_row(row):
    return (
        f"| {row['dataset']} | {row['shape'][0]}x{row['shape'][1]} | "
        f"{row['n_components']} | {row['PCA']:.4g} | {row['FactorAnalysis']:.4g} | "
        f"{row['VAETransformer']:.4g} | {row['start']} | {row['epochs']} | "
        f"{row['gap']:+.2f} | {'yes' if row['holds'] else 'NO'} | {row['seconds']:.0f} |"
    )


def write_panel_report(path, results, vae_options, max_rows, command):
    header = (
        "| data | train rows x features | n_components | PCA | FactorAnalysis | "
        "VAE (ELBO) | linear start | epochs | VAE - best | holds | fit s |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|"
    )
    n_holds = sum(row["holds"] for row in results)
    lines = [
        "# VAETransformer on the panel of issue 10",
        "",
        "Written by `benchmarks/bench_vae.py --panel` from a real run.",
        "",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- Machine: {machine_description()}; 1-minute load average "
        f"{os.getloadavg()[0]:.1f} when the run ended.",
        f"- Command: `{command}`",
        f"- VAE: defaults, plus {vae_options}, random_state=0; training rows "
        f"capped at {max_rows}. Held-out mean log-likelihood per sample (VAE: "
        "its ELBO) on the 30% test part, each set z-scored on its training part.",
        "- holds: VAE >= max(PCA, FactorAnalysis) - max(1 nat, 1%).",
        "",
        header,
        *(_format_panel_row(row) for row in results),
        "",
        f"Holds on {n_holds} of {len(results)}.",
        "",
    ]
    Path(path).write_text("\n".join(lines))


def timed_fit(model, X):
    start = time.perf_counter()
    model.fit(X)
    return model, time.perf_counter() - start


def run(datasets, seeds, vae_options):
    """Return result rows: dict(dataset, n_components, model, test, train, seconds)."""
    rows = []
    for name, X, n_components_list in datasets:
        X_train, X_test = train_test_split(X, test_size=0.3, random_state=0)
        for k in n_components_list:
            for label, model in [
                ("PCA", PCA(n_components=k)),
                ("FactorAnalysis", FactorAnalysis(n_components=k, random_state=0)),
            ]:
                model, seconds = timed_fit(model, X_train)
                rows.append(
                    dict(
                        dataset=name,
                        n_components=k,
                        model=label,
                        test=[model.score(X_test)],
                        train=[model.score(X_train)],
                        seconds=[seconds],
                        epochs=None,
                    )
                )
                print(_format_row(rows[-1]), flush=True)
            elbo = dict(test=[], train=[], seconds=[], epochs=[])
            iwae = dict(test=[], train=[], seconds=[], epochs=[])
            for seed in seeds:
                vae = VAETransformer(n_components=k, random_state=seed, **vae_options)
                vae, seconds = timed_fit(vae, X_train)
                for result, n_importance in [(elbo, 1), (iwae, IWAE_SAMPLES)]:
                    vae.set_params(n_importance_samples=n_importance)
                    result["test"].append(vae.score(X_test))
                    result["train"].append(vae.score(X_train))
                    result["seconds"].append(seconds)
                    result["epochs"].append(vae.n_iter_)
            for label, result in [
                ("VAETransformer (ELBO)", elbo),
                (f"VAETransformer (IWAE, K={IWAE_SAMPLES})", iwae),
            ]:
                rows.append(dict(dataset=name, n_components=k, model=label, **result))
                print(_format_row(rows[-1]), flush=True)
    return rows


def _mean_sd(values, digits=1):
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def _format_row(row):
    epochs = "" if row["epochs"] is None else _mean_sd(row["epochs"], 0)
    return (
        f"| {row['dataset']} | {row['n_components']} | {row['model']} | "
        f"{_mean_sd(row['test'])} | {_mean_sd(row['train'])} | {epochs} | "
        f"{_mean_sd(row['seconds'])} |"
    )


def comparisons(rows):
    """Return one line per (data, n_components): the VAE's ELBO against the best linear model."""
    lines = []
    keys = dict.fromkeys((row["dataset"], row["n_components"]) for row in rows)
    for dataset, k in keys:
        scores = {
            row["model"]: float(np.mean(row["test"]))
            for row in rows
            if (row["dataset"], row["n_components"]) == (dataset, k)
        }
        vae = scores["VAETransformer (ELBO)"]
        best_name = max(["PCA", "FactorAnalysis"], key=scores.get)
        best = scores[best_name]
        verdict = "above" if vae > best else "below"
        lines.append(
            f"- {dataset}, n_components={k}: the VAE's mean held-out ELBO is "
            f"{verdict} the better linear model ({best_name}) by {abs(vae - best):.1f} "
            "nats per sample."
        )
    return lines


def write_report(path, rows, seeds, vae_options, command):
    header = (
        "| data | n_components | model | held-out score | train score | epochs "
        "| fit seconds |\n|---|---|---|---|---|---|---|"
    )
    lines = [
        "# VAETransformer: held-out log-likelihood against PCA and FactorAnalysis",
        "",
        "Written by `benchmarks/bench_vae.py` from a real run.",
        "",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- Machine: {machine_description()}",
        f"- Command: `{command}`",
        f"- VAE settings: defaults, plus {vae_options or 'nothing'}; "
        f"random_state in {list(seeds)} (mean ± sd over seeds where several).",
        "- Scores are mean log-likelihoods per sample (the VAE: a lower bound on "
        "it) in nats of X's own units, on a 70/30 split with random_state=0. "
        "Higher is better. The ELBO row is `score` with the default "
        f"`n_importance_samples=1`; the IWAE row is the same fitted model scored "
        f"with `n_importance_samples={IWAE_SAMPLES}`, a tighter bound.",
        "- Fit seconds on a CPU shared with other jobs (1-minute load average "
        f"{os.getloadavg()[0]:.1f} when the run ended): read them as rough.",
        "",
        header,
        *(_format_row(row) for row in rows),
        "",
        *comparisons(rows),
        "",
    ]
    Path(path).write_text("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", default=str(DEFAULT_DATA), help="folder holding embeddings/CIFAR10_0.npz"
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny data and few epochs: a smoke test"
    )
    parser.add_argument(
        "--output",
        default=None,
        help=f"where to write the table (default: {DEFAULT_OUTPUT.name} next to "
        "this script for a full run, nowhere with --quick)",
    )
    parser.add_argument("--seeds", type=int, default=3, help="VAE seeds (full run)")
    parser.add_argument(
        "--panel", action="store_true", help="the panel of issue 10 (see above)"
    )
    parser.add_argument(
        "--max-rows", type=int, default=3000, help="training rows per panel set"
    )
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    seeds = [0] if args.quick else list(range(args.seeds))
    vae_options = {"device": args.device}
    if args.quick:
        vae_options["max_iter"] = 5
    output = args.output or (None if args.quick else DEFAULT_OUTPUT)
    command = "python benchmarks/bench_vae.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )

    if args.panel:
        output = args.output
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            results = run_panel(
                load_panel(args.data, args.quick), vae_options, args.max_rows
            )
        if output is not None:
            write_panel_report(output, results, vae_options, args.max_rows, command.strip())
            print(f"wrote {output}")
        return results

    print(
        "| data | n_components | model | held-out score | train score | epochs "
        "| fit seconds |"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        rows = run(load_datasets(args.data, args.quick), seeds, vae_options)
    if output is not None:
        write_report(output, rows, seeds, vae_options, command.strip())
        print(f"wrote {output}")
    return rows


if __name__ == "__main__":
    main()
