"""Held-out log-likelihood of VAETransformer against PCA and FactorAnalysis.

All three are latent-variable density models with ``n_components`` latent
dimensions whose ``score(X)`` is the mean log-likelihood per sample (for the
VAE a lower bound on it) in nats of X's own units, so their held-out scores
compare directly. Data: the CIFAR10_0 ResNet embeddings (512 features,
ADBench, ``embeddings/CIFAR10_0.npz`` under ``--data``) and scikit-learn's
breast-cancer data, each split 70/30 with ``random_state=0``. The VAE runs
with its default settings (only ``n_components``, ``random_state`` and
``device`` are set), over several seeds.

Usage::

    python benchmarks/bench_vae.py            # full run, writes VAE_RESULTS.md
    python benchmarks/bench_vae.py --quick    # seconds: a smoke test
"""

import argparse
import datetime
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.decomposition import PCA, FactorAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from sklearn_ae import VAETransformer

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


def machine_description():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}, torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads), scikit-learn "
        f"{sklearn.__version__}"
    )


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
        "- Fit seconds on a CPU shared with other jobs: read them as rough.",
        "",
        header,
        *(_format_row(row) for row in rows),
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
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    seeds = [0] if args.quick else list(range(args.seeds))
    vae_options = {"device": args.device}
    if args.quick:
        vae_options["max_iter"] = 5
    output = args.output or (None if args.quick else DEFAULT_OUTPUT)

    print(
        "| data | n_components | model | held-out score | train score | epochs "
        "| fit seconds |"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        rows = run(load_datasets(args.data, args.quick), seeds, vae_options)
    if output is not None:
        command = "python benchmarks/bench_vae.py " + " ".join(
            argv if argv is not None else sys.argv[1:]
        )
        write_report(output, rows, seeds, vae_options, command.strip())
        print(f"wrote {output}")
    return rows


if __name__ == "__main__":
    main()
