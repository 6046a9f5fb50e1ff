"""How low a stopping rule could take the representation panel's median.

Issue 10 asks for a median held-out error of ``AutoencoderTransformer`` of at
most 0.6x PCA's on the panel of ``bench_representation.py``. This script
bounds what any *stopping rule* can give there: per panel run it trains the
network without early stopping on every training row, and measures the
held-out error after each of a list of epoch counts (``--epochs``). The best
of these, chosen on the held-out rows themselves (or the PCA start, or the
honest fit below, where either is better), is an oracle: no rule that sees
only the training rows can be told to stop there. The panel's median of the
oracle values approximates from below the best median any stopping rule can
reach with that network: up to the epoch grid's granularity and the
run-to-run variation of training (another shuffle of the batches).

Beside it, each run's honest value: ``AutoencoderTransformer`` as the panel
fits it (early stopping on its own validation split). Same panel, split,
scaling and ``n_components`` as ``bench_representation.py`` (whose functions
this script uses).

The training curve is measured by warm starts: a fit of the first epoch
count, then ``warm_start=True`` fits of the differences (Adam's state carries
over; the batches' shuffling differs from one long fit's).

Usage::

    python benchmarks/bench_representation_oracle.py           # minutes
    python benchmarks/bench_representation_oracle.py --quick   # a smoke test
    python benchmarks/bench_representation_oracle.py \\
        --ae-params '{"hidden_layer_sizes": [32], "weight_decay": 1e-4}'
"""

import argparse
import datetime
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning

from sklearn_ae import AutoencoderTransformer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import load_average as _load  # noqa: E402
from _machine import machine_description  # noqa: E402
from bench_representation import (  # noqa: E402
    AE_MEDIAN_BAR, DEFAULT_DATA, _mse, _settings, halves, load_panel,
    reconstruction_row, split,
)

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "REPRESENTATION_ORACLE.md"
DEFAULT_EPOCHS = "5,10,15,20,30,40,60,80,100,130,160,200"


def curve(X_train, X_test, k, seed, epochs, options):
    """Held-out error / PCA's after each epoch count in ``epochs``."""
    pca_error = _mse(PCA(n_components=k, random_state=seed).fit(X_train), X_test)
    ae = AutoencoderTransformer(
        n_components=k, random_state=seed,
        **{**options, "early_stopping": False, "max_iter": epochs[0]},
    )
    ratios, done = [], 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for n in epochs:
            if done:
                ae.set_params(warm_start=True, max_iter=n - done)
            ae.fit(X_train)
            done = n
            ratios.append(_mse(ae, X_test) / pca_error)
    return ratios


def write_report(path, rows, epochs, args, command, load_before, started, seconds):
    honest = [r["honest"] for r in rows]
    oracle = [r["oracle"] for r in rows]
    lines = [
        "# Representation panel: the median a stopping rule could reach",
        "",
        "Written by `benchmarks/bench_representation_oracle.py` "
        f"(`{command.strip()}`), started {started} UTC, {seconds / 60:.1f} min.",
        "",
        f"- Machine: {machine_description()}.",
        f"- Load average (1, 5, 15 min) before: {load_before}; after: {_load()} "
        "(a shared machine).",
        f"- Seed: {args.seed}. Panel, split, scaling and `n_components` as "
        "`bench_representation.py`.",
        f"- Network: AutoencoderTransformer with {_settings(args.ae_options)}.",
        "- honest: fitted as the panel fits it (early stopping on its own "
        "validation split). oracle: the same network without early stopping, "
        "on every training row, held-out error after each of "
        f"{', '.join(map(str, epochs))} epochs (warm starts); oracle: the best of "
        "these, the PCA start ('start') and the honest fit ('honest'), "
        "**chosen on the held-out rows**. A stopping rule can beat the oracle "
        "only between the epochs measured or by the luck of another shuffle.",
        "",
        "| set | half | k | honest | oracle | oracle epoch | "
        + " | ".join(f"{n}" for n in epochs) + " |",
        "|---|---|---|---|---|---|" + "---|" * len(epochs),
    ]
    for r in rows:
        lines.append(
            f"| {r['set']} | {r['half']} | {r['k']} | {r['honest']:.3f} | "
            f"{r['oracle']:.3f} | {r['oracle_epoch']} | "
            + " | ".join(f"{v:.3f}" for v in r["curve"]) + " |"
        )
    oracle_median, honest_median = float(np.median(oracle)), float(np.median(honest))
    lines += [
        "",
        f"- {len(rows)} runs. Median ratio to PCA's error: honest "
        f"{honest_median:.3f}, oracle {oracle_median:.3f} (bar {AE_MEDIAN_BAR}).",
        f"- Runs at or below the bar: honest {sum(v <= AE_MEDIAN_BAR for v in honest)}, "
        f"oracle {sum(v <= AE_MEDIAN_BAR for v in oracle)}.",
    ]
    if args.output != "-":
        Path(args.output).write_text("\n".join(lines) + "\n")
    return oracle_median, honest_median


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA),
                        help="folder with adbench/ and embeddings/")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT),
                        help="Markdown file to write ('-': none); --quick writes "
                        "none unless given one")
    parser.add_argument("--quick", action="store_true",
                        help="a few small sets and short curves: a smoke test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", default=DEFAULT_EPOCHS,
                        help="increasing epoch counts at which the held-out "
                        "error is measured")
    parser.add_argument("--sets", default=None,
                        help="comma-separated substrings: only sets whose name has one")
    parser.add_argument("--ae-params", default=None,
                        help="JSON dict of AutoencoderTransformer parameters "
                        "(default: its defaults)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)
    epochs = [int(n) for n in args.epochs.split(",")]
    if epochs != sorted(set(epochs)) or epochs[0] < 1:
        raise SystemExit("--epochs must be increasing positive integers")
    if args.quick:
        epochs = epochs[:2]
        if args.output == str(DEFAULT_OUTPUT):
            args.output = "-"
    args.ae_options = json.loads(args.ae_params) if args.ae_params else {}
    panel = load_panel(args.data, args.quick)
    half = halves([name for name, _ in panel])
    if args.sets:
        panel = [(n, X) for n, X in panel if any(w in n for w in args.sets.split(","))]
    command = "python benchmarks/bench_representation_oracle.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    load_before, start = _load(), time.perf_counter()
    rows = []
    for name, X in panel:
        X_train, X_test = split(X, args.seed, 20_000, 10_000)
        honest = reconstruction_row(
            name, X_train, X_test, args.seed,
            {"max_iter": 5, **args.ae_options} if args.quick else args.ae_options,
        )
        ratios = curve(X_train, X_test, honest["k"], args.seed, epochs, args.ae_options)
        best = int(np.argmin(ratios))
        rows.append({
            "set": name, "half": half[name], "k": honest["k"],
            "honest": honest["ratio"], "curve": ratios,
        })
        # The PCA start (epoch 0) and the honest fit are outcomes too.
        choices = {"start": 1.0, "honest": honest["ratio"], str(epochs[best]): ratios[best]}
        pick = min(choices, key=choices.get)
        rows[-1].update(oracle=choices[pick], oracle_epoch=pick)
        print(f"{name}: honest {honest['ratio']:.3f}, oracle {rows[-1]['oracle']:.3f} "
              f"(epoch {rows[-1]['oracle_epoch']})", flush=True)
        write_report(args.output, rows, epochs, args, command, load_before, started,
                     time.perf_counter() - start)
    return rows


if __name__ == "__main__":
    main()
