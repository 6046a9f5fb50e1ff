"""ADBench protocol: AEOutlierDetector against IsolationForest, PCA and PyOD.

For every ``*.npz`` in ``DATA/adbench/`` and every seed: a stratified 70/30
split, each part capped at 20,000 rows by stratified subsampling, fit on the
training part without labels, ROC-AUC of the test part's scores (higher =
more abnormal). Time is wall-clock seconds of ``fit`` plus scoring the test
part, summed over sets and seeds. Writes a Markdown table (per-set mean
ROC-AUC over seeds, the overall mean, the total time per method, machine,
date and versions).

Methods (same run, same splits):

- ``AEOutlierDetector``: sklearn_ae's detector with its defaults
  (``random_state`` set to the seed for reproducibility); ``--params`` passes
  overrides as JSON for research runs.
- ``IsolationForest``: ``IsolationForest(random_state=0)``.
- ``PCA``: z-scored features, ``PCA(n_components=0.9)`` (90% of the
  variance), squared reconstruction error in z-scored units.
- ``PyOD-AutoEncoder``: ``pyod.models.auto_encoder.AutoEncoder`` with its
  defaults but ``verbose=0`` (no progress bar); skipped with a note when
  pyod is not installed (it is a ``benchmarks`` extra, not a dependency).

torch runs with ``--threads`` threads (default 1) for every method: on the
shared 2-core machine these runs were made on, two threads made a training
step of these small networks 10 to 100 times slower whenever another process
held a core, and one thread is as fast otherwise.

Usage::

    python benchmarks/bench_outliers.py                 # the full run
    python benchmarks/bench_outliers.py --quick         # seconds: smoke test
    python benchmarks/bench_outliers.py --seeds 0 --sets cardio letter \\
        --methods AEOutlierDetector --params '{"n_estimators": 1}' --output -
"""

import argparse
import datetime
import json
import os
import platform
import sys
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

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "datasets"
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "OUTLIER_RESULTS.md"
METHODS = ("AEOutlierDetector", "IsolationForest", "PCA", "PyOD-AutoEncoder")
CAP = 20_000


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


def make_method(name, seed, params, quick):
    """Return ``(fit, outlier_scores)`` callables for method ``name``."""
    if name == "AEOutlierDetector":
        from sklearn_ae import AEOutlierDetector

        options = {"random_state": seed, **params}
        if quick:
            options.setdefault("max_iter", 5)
        det = AEOutlierDetector(**options)
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
    raise ValueError(f"unknown method {name!r}; choose from {METHODS}")


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


def load_sets(folder, names=None):
    """Return ``[(name, X, y)]`` for the ``.npz`` files in ``folder``."""
    sets = []
    for path in sorted(folder.glob("*.npz"), key=lambda p: int(p.stem.split("_")[0])):
        name = path.stem.split("_", 1)[1]
        if names and not any(n.lower() in name.lower() for n in names):
            continue
        with np.load(path, allow_pickle=False) as data:
            sets.append((name, np.asarray(data["X"], dtype=np.float64), data["y"].astype(int)))
    return sets


def synthetic_sets():
    """Two small contaminated sets for ``--quick`` when no data folder exists."""
    rng = np.random.RandomState(0)
    sets = []
    for name, n, d in (("synthetic-a", 300, 8), ("synthetic-b", 200, 12)):
        W = rng.randn(2, d)
        X = np.tanh(rng.randn(n, 2) @ W) + 0.05 * rng.randn(n, d)
        y = np.zeros(n, dtype=int)
        y[: n // 10] = 1
        X[y == 1] = rng.uniform(-2, 2, size=(n // 10, d))
        sets.append((name, X, y))
    return sets


# ---------------------------------------------------------------------- run
def run(sets, methods, seeds, params, quick, cap, log=print):
    """Return ``{method: {set: [auc per seed]}}`` and ``{method: seconds}``."""
    aucs = {m: {} for m in methods}
    seconds = dict.fromkeys(methods, 0.0)
    for name, X, y in sets:
        for seed in seeds:
            X_train, X_test, _, y_test = split(X, y, seed, cap)
            for method in methods:
                fit, outlier_scores = make_method(method, seed, params, quick)
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fit(X_train)
                    scores = outlier_scores(X_test)
                seconds[method] += time.perf_counter() - start
                if not np.all(np.isfinite(scores)):
                    raise RuntimeError(f"{method} gave non-finite scores on {name}")
                aucs[method].setdefault(name, []).append(roc_auc_score(y_test, scores))
            log(
                f"{name:<14} seed {seed}: "
                + "  ".join(f"{m}={aucs[m][name][-1]:.3f}" for m in methods),
            )
    return aucs, seconds


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


def report(aucs, seconds, seeds, params, sets_note, command, threads):
    import torch

    methods = list(aucs)
    names = list(next(iter(aucs.values())))
    means = {m: float(np.mean([np.mean(v) for v in aucs[m].values()])) for m in methods}
    lines = [
        "# Outlier detection on ADBench (written by `benchmarks/bench_outliers.py`)",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {machine()} (shared with other jobs: times are noisy); "
        f"torch threads: {threads}",
        f"- versions: python {platform.python_version()}, numpy {np.__version__}, "
        f"scikit-learn {sklearn.__version__}, torch {torch.__version__}, "
        f"pyod {pyod_version()}",
        f"- protocol: {sets_note}; stratified 70/30 split per seed (seeds "
        f"{', '.join(map(str, seeds))}), train and test parts each capped at "
        f"{CAP:,} rows by stratified subsampling, fit on train without labels, "
        "ROC-AUC on test; the table shows the mean over seeds.",
        "- AEOutlierDetector: defaults, `random_state=seed`"
        + (f", overrides `{json.dumps(params)}`" if params else "")
        + "; IsolationForest(random_state=0); PCA: z-scored, 90% of the variance, "
        "squared reconstruction error; PyOD AutoEncoder: defaults with verbose=0.",
        "",
        "| data set | " + " | ".join(methods) + " |",
        "|---|" + "---:|" * len(methods),
    ]
    for name in names:
        row = [f"{np.mean(aucs[m][name]):.3f}" for m in methods]
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    lines.append("| **mean ROC-AUC** | " + " | ".join(f"**{means[m]:.3f}**" for m in methods) + " |")
    lines.append(
        "| fit+score seconds (total) | " + " | ".join(f"{seconds[m]:.1f}" for m in methods) + " |"
    )
    lines.append("")
    return "\n".join(lines), means


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder holding adbench/*.npz (default: %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sets", nargs="+", default=None,
                        help="only sets whose name contains one of these")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--params", default="{}",
                        help="JSON dict of AEOutlierDetector parameter overrides")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT),
                        help="Markdown file to write, '-' for stdout only")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for every method (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: two small sets, one seed, a few epochs")
    args = parser.parse_args(argv)
    params = json.loads(args.params)
    methods = list(args.methods)
    if "PyOD-AutoEncoder" in methods and pyod_version() is None:
        print("pyod is not installed (pip install -e '.[benchmarks]'); "
              "skipping PyOD-AutoEncoder.")
        methods.remove("PyOD-AutoEncoder")

    folder = args.data / "adbench"
    cap, seeds, names = CAP, args.seeds, args.sets
    if args.quick:
        cap, seeds = 300, args.seeds[:1]
        names = names or ["wine", "glass"]
    if folder.is_dir():
        sets = load_sets(folder, names)
        sets_note = f"{len(sets)} sets from `{folder.name}/`"
    elif args.quick:
        print(f"no data folder at {folder}; --quick uses synthetic sets.")
        sets, sets_note = synthetic_sets(), "2 synthetic sets"
    else:
        print(f"no data folder at {folder}: pass --data DIR holding adbench/*.npz. Skipping.")
        return 0
    if not sets:
        print(f"no set in {folder} matches --sets {names}. Skipping.")
        return 0

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        aucs, seconds = run(sets, methods, seeds, params, args.quick, cap)
    finally:
        torch.set_num_threads(threads)
    command = "python benchmarks/bench_outliers.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    text, means = report(
        aucs, seconds, seeds, params, sets_note, command.strip(), args.threads
    )
    print(text)
    if args.output != "-" and not args.quick:
        Path(args.output).write_text(text)
        print(f"written to {args.output}")
    elif args.output != "-" and args.quick and args.output != str(DEFAULT_OUTPUT):
        Path(args.output).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
