"""AEOutlierDetector's time against IsolationForest's on data shaped like
the ADBench sets that are not in ``../shared/datasets``.

Issue 11 bounds the detector's fit+score time on the ADBench protocol at 4
times IsolationForest's, and says the claim will be checked on 26 ADBench
sets that are not available here. Time depends on the shape of the data far
more than on its values, so this script times both methods on synthetic
data (standard normal) with the shapes of the 30 classical ADBench sets
outside ``../shared/datasets`` (rows and columns as ADBench lists them),
split as the protocol splits them: 70% to fit, 30% to score, each part
capped at 20,000 rows. It measures time only: the data carry no outliers
and no ROC-AUC is computed (``bench_outliers.py`` and
``bench_outliers_unseen.py`` measure accuracy).

Per shape, the two methods run one after the other, ``--repeats`` times,
the order alternating from repeat to repeat, so both are timed under the
same load; a shape's figure is each method's median. The report gives the
ratio per shape and the ratio of the summed seconds over all shapes (the
protocol's "fit+score time ... in the same run"). Both methods run with
``--threads`` threads (default 1): torch's and the BLAS pools.

Usage::

    python benchmarks/bench_outlier_shapes.py            # all 30 shapes
    python benchmarks/bench_outlier_shapes.py --quick    # 3 small shapes, 1 repeat
"""

import argparse
import datetime
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import load_average, machine_description  # noqa: E402

# ADBench's classical sets outside ../shared/datasets: name -> (rows, columns).
SHAPES = {
    "ALOI": (49534, 27), "backdoor": (95329, 196), "campaign": (41188, 62),
    "celeba": (202599, 39), "census": (299285, 500), "Cardiotocography": (2114, 21),
    "donors": (619326, 10), "fraud": (284807, 29), "Hepatitis": (80, 19),
    "http": (567498, 3), "InternetAds": (1966, 1555), "landsat": (6435, 36),
    "Lymphography": (148, 18), "magic.gamma": (19020, 10), "musk": (3062, 166),
    "optdigits": (5216, 64), "PageBlocks": (5393, 10), "pendigits": (6870, 16),
    "satimage-2": (5803, 36), "skin": (245057, 3), "smtp": (95156, 3),
    "SpamBase": (4207, 57), "speech": (3686, 400), "Stamps": (340, 9),
    "vertebral": (240, 6), "Waveform": (3443, 21), "WDBC": (367, 30),
    "Wilt": (4819, 5), "WPBC": (198, 33), "yeast": (1484, 8),
}
QUICK_SHAPES = {"Hepatitis": (80, 19), "WDBC": (367, 30), "yeast": (1484, 8)}
CAP = 20_000
OUTPUT = Path(__file__).resolve().parent / "OUTLIER_SHAPES_RESULTS.md"


def parts(n_rows):
    """Rows to fit on and to score, as the protocol's 70/30 split, capped."""
    n_train = int(0.7 * n_rows)
    return min(n_train, CAP), min(n_rows - n_train, CAP)


def time_method(make, X_train, X_test):
    start = time.perf_counter()
    make().fit(X_train).score_samples(X_test)
    return time.perf_counter() - start


def run(shapes, repeats, seed=0):
    from sklearn.ensemble import IsolationForest

    from sklearn_ae import AEOutlierDetector

    methods = {
        "AEOutlierDetector": lambda: AEOutlierDetector(random_state=seed),
        "IsolationForest": lambda: IsolationForest(random_state=seed),
    }
    # One warm-up fit each, outside the timings (imports, first optimizer).
    warm = np.random.RandomState(1).standard_normal((300, 5))
    for make in methods.values():
        time_method(make, warm, warm)
    rng = np.random.RandomState(seed)
    rows = []
    for name, (n, d) in shapes.items():
        n_train, n_test = parts(n)
        X = rng.standard_normal((n_train + n_test, d))
        seconds = {m: [] for m in methods}
        order = list(methods)
        for r in range(repeats):
            for m in order if r % 2 == 0 else order[::-1]:
                seconds[m].append(time_method(methods[m], X[:n_train], X[n_train:]))
        row = {"set": name, "shape": (n, d), "fit rows": n_train, "score rows": n_test}
        row.update({m: statistics.median(s) for m, s in seconds.items()})
        rows.append(row)
        print(f"{name:18s} {n_train:6d} x {d:4d}  AE {row['AEOutlierDetector']:6.2f} s  "
              f"IF {row['IsolationForest']:5.2f} s  "
              f"{row['AEOutlierDetector'] / row['IsolationForest']:5.2f}x", flush=True)
    return rows


def report(rows, args, started, load_start):
    total_ae = sum(r["AEOutlierDetector"] for r in rows)
    total_if = sum(r["IsolationForest"] for r in rows)
    ratios = [r["AEOutlierDetector"] / r["IsolationForest"] for r in rows]
    lines = [
        "# AEOutlierDetector's time on ADBench-shaped data "
        "(written by `benchmarks/bench_outlier_shapes.py`)",
        "",
        f"- command: `python benchmarks/bench_outlier_shapes.py"
        f"{' --quick' if args.quick else ''} --repeats {args.repeats} --threads {args.threads}`",
        f"- date: {started:%Y-%m-%d %H:%M} UTC; load average (1/5/15 min) at start "
        f"{load_start}, at end {load_average('/')}",
        f"- machine: {machine_description()} (shared with other jobs: times are noisy)",
        "- data: standard normal, with the shapes of the classical ADBench sets "
        "that are not in `../shared/datasets`; 70% fitted, 30% scored, each part "
        f"capped at {CAP:,} rows (the protocol of `bench_outliers.py`). Time only: "
        "no outliers, no ROC-AUC.",
        f"- timing: fit plus `score_samples` of the scored part, wall-clock; per shape "
        f"the two methods alternate over {args.repeats} repeat(s) and each figure is "
        "the median; defaults of both (`random_state=0`).",
        "",
        "## Summary",
        "",
        f"- seconds summed over the {len(rows)} shapes: AEOutlierDetector "
        f"{total_ae:.1f} s, IsolationForest {total_if:.1f} s: "
        f"**{total_ae / total_if:.2f}x** (issue 11's bar: at most 4x)",
        f"- per shape: median {statistics.median(ratios):.2f}x, largest "
        f"{max(ratios):.2f}x ({rows[int(np.argmax(ratios))]['set']})",
        "",
        "## Per shape",
        "",
        "| set (ADBench) | rows x columns | fitted rows | scored rows | "
        "AEOutlierDetector s | IsolationForest s | ratio |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r, ratio in zip(rows, ratios):
        n, d = r["shape"]
        lines.append(
            f"| {r['set']} | {n:,} x {d:,} | {r['fit rows']:,} | {r['score rows']:,} | "
            f"{r['AEOutlierDetector']:.2f} | {r['IsolationForest']:.2f} | {ratio:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 small shapes, 1 repeat")
    parser.add_argument("--repeats", type=int, default=None, help="default 2 (quick: 1)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=None,
                        help=f"report file (default {OUTPUT.name}; with --quick, none)")
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 2
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = load_average("/")
    with threadpool_limits(args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = run(QUICK_SHAPES if args.quick else SHAPES, args.repeats)
    text = report(rows, args, started, load_start)
    output = args.output if args.output is not None else (None if args.quick else OUTPUT)
    if output is not None:
        Path(output).write_text(text)
        print(f"written to {output}")
    return rows


if __name__ == "__main__":
    main()
