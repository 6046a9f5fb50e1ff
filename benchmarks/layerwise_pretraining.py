"""Does greedy layer-wise pretraining help a deep autoencoder?

For each data set, a deep fully connected autoencoder is trained three ways
with the same seeds:

- ``scratch``: no pretraining, ``--epochs`` epochs;
- ``pretrained``: each layer pair pretrained for ``--pretrain-epochs`` epochs,
  then the same ``--epochs`` epochs of fine-tuning;
- ``scratch+``: no pretraining, but as many extra epochs as the pretraining
  ran shallow-autoencoder epochs (an equal count of epochs; shallow epochs are
  cheaper, so this favours ``scratch+`` in time).

It reports the held-out mean squared reconstruction error (standardized
units, 70/30 split) and the fit time, as mean +- std over seeds, and writes a
markdown table (``--out``) with the machine and date.

Run ``python benchmarks/layerwise_pretraining.py`` (a few minutes on two CPU
cores) or ``--quick`` for a smoke run on digits.
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
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from sklearn_ae import AutoencoderTransformer

REPO = Path(__file__).resolve().parent.parent
ADBENCH = ("6_cardio", "30_satellite", "24_mnist")


def load_datasets(data_dir, quick):
    """Yield ``(name, X)``: digits always, ADBench sets when the folder has them."""
    yield "digits", load_digits().data
    if quick:
        return
    folder = Path(data_dir) / "adbench"
    if not folder.is_dir():
        print(f"note: {folder} not found; ADBench data sets skipped", file=sys.stderr)
        return
    for name in ADBENCH:
        path = folder / f"{name}.npz"
        if path.exists():
            yield name, np.load(path)["X"].astype(np.float64)
        else:
            print(f"note: {path} not found; skipped", file=sys.stderr)


def run_once(X_train, X_test, *, activation, pretrain, epochs, pretrain_epochs, seed):
    n_layers = 4  # (128, 64, 32) hidden layers and the code layer
    ae = AutoencoderTransformer(
        n_components=8,
        hidden_layer_sizes=(128, 64, 32),
        activation=activation,
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=10**6,
        layerwise_pretraining=pretrain is True,
        pretraining_max_iter=pretrain_epochs,
        random_state=seed,
        device="cpu",
    )
    if pretrain == "more":
        ae.set_params(max_iter=epochs + n_layers * pretrain_epochs)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ae.fit(X_train)
    seconds = time.perf_counter() - start
    # error in standardized units, so that data sets compare
    X_test_std = (X_test - ae.mean_) / ae.scale_
    X_rec = (ae.inverse_transform(ae.transform(X_test)) - ae.mean_) / ae.scale_
    return float(np.mean((X_test_std - X_rec) ** 2)), seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "datasets"))
    parser.add_argument("--quick", action="store_true", help="smoke run: digits, tiny budgets")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--pretrain-epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "layerwise_pretraining.md"))
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.pretrain_epochs = 1, 2, 1
    threads_before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args, argv)
    finally:
        torch.set_num_threads(threads_before)


def _run(args, argv):
    # The first fit in a process pays one-off imports; keep them out of the timings.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        AutoencoderTransformer(max_iter=1, device="cpu").fit(np.random.rand(8, 4))

    conditions = [("scratch", False), ("pretrained", True), ("scratch+", "more")]
    lines = [
        "# Greedy layer-wise pretraining",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__}, {args.threads} torch thread(s); "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
        f"Command: `python benchmarks/layerwise_pretraining.py "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}`",
        "",
        "Deep autoencoder (128, 64, 32) -> 8 codes, Adam lr 1e-3, batch 256, "
        f"{args.epochs} epochs ({args.pretrain_epochs} per layer of pretraining; "
        f"scratch+ gets {4 * args.pretrain_epochs} extra epochs). Held-out MSE in "
        f"standardized units, mean +- std over {args.seeds} seed(s); time is the "
        "whole fit.",
        "",
        "| data | activation | " + " | ".join(
            f"{name} MSE | {name} s" for name, _ in conditions
        ) + " |",
        "|---|---|" + "---|---|" * len(conditions),
    ]
    for name, X in load_datasets(args.data, args.quick):
        X_train, X_test = train_test_split(X, test_size=0.3, random_state=0)
        for activation in ("relu", "tanh"):
            cells = []
            for _, pretrain in conditions:
                runs = [
                    run_once(
                        X_train, X_test, activation=activation, pretrain=pretrain,
                        epochs=args.epochs, pretrain_epochs=args.pretrain_epochs,
                        seed=seed,
                    )
                    for seed in range(args.seeds)
                ]
                errors, seconds = np.array(runs).T
                cells += [f"{errors.mean():.4f} +- {errors.std():.4f}", f"{seconds.mean():.1f}"]
            lines.append(f"| {name} | {activation} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")
    return text


if __name__ == "__main__":
    main()
