"""Peak memory of fitting from a memory-mapped file several times a memory bound.

A ``numpy.memmap`` of ``--factor`` times ``--bound-mb`` (float32) is written
to a temporary folder, then each method trains on it in a fresh subprocess
(so that the peak is that of the fit alone):

- ``partial_fit``: ``AutoencoderTransformer.partial_fit`` over chunks of the
  memmap (each chunk a slice of the file; the script asks the kernel to drop
  the chunk's mapped pages after each call, as a user streaming a file would);
- ``fit``: ``AutoencoderTransformer.fit(memmap)``, one epoch (the estimator
  streams batches from the file instead of loading it);
- ``fit (loaded)``: ``fit(np.array(memmap))``, the file read into memory
  first: the comparison.

Reported per method: the process's resident memory before training
(imports done), its peak resident set (``VmHWM``: includes pages of the
file mapped while they were read, which the kernel can drop at any time),
and the peak of its anonymous memory (``RssAnon``, sampled every 2 ms:
memory the process itself holds, the part a memory bound is about). A
method is "bounded" when its anonymous peak minus the baseline is at most
the bound. The bound has to hold the fit's fixed working set, which does
not grow with the data: the PCA start's blocks of rows (2**22 float64
values, 32 MiB, and its centred copy), the scaling's blocks, a batch, the network. The data: rows of ``--data`` (an ``.npz`` with ``X``, e.g.
``../shared/datasets/adbench/10_cover.npz``) repeated to the size asked
for, else made-up low-rank data.

    python benchmarks/bench_out_of_core.py            # 128 MB bound, 4x
    python benchmarks/bench_out_of_core.py --quick    # smoke run: 96 MB bound, 2x
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "datasets" / "adbench" / "10_cover.npz"


def _status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # MiB
    return float("nan")


class _AnonPeak(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.peak = _status("RssAnon")
        self.running = True

    def run(self):
        while self.running:
            self.peak = max(self.peak, _status("RssAnon"))
            time.sleep(0.002)


def _drop_pages(mm):
    """Ask the kernel to unmap the pages of ``mm`` read so far (they stay in
    the page cache): the process's resident set then holds what it uses."""
    import mmap

    base = mm
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    if base is not None and hasattr(base, "madvise"):
        base.madvise(mmap.MADV_DONTNEED)


def child(args):
    import torch

    torch.set_num_threads(1)
    from sklearn_ae import AutoencoderTransformer

    mm = np.memmap(args.path, dtype=np.float32, mode="r", shape=(args.rows, args.features))
    est = AutoencoderTransformer(
        n_components=4, hidden_layer_sizes=(32,), batch_size=256, max_iter=1,
        early_stopping=False, device="cpu", random_state=0,
    )
    # warm up torch's kernels on a few rows, so the baseline holds them
    AutoencoderTransformer(n_components=2, hidden_layer_sizes=(4,), max_iter=1,
                           device="cpu").fit(np.asarray(mm[:64]))
    baseline_rss, baseline_anon = _status("VmRSS"), _status("RssAnon")
    sampler = _AnonPeak()
    sampler.start()
    start = time.perf_counter()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if args.method == "partial_fit":
            for lo in range(0, args.rows, args.chunk_rows):
                est.partial_fit(mm[lo : lo + args.chunk_rows])
                _drop_pages(mm)
        elif args.method == "fit":
            est.fit(mm)
        else:
            est.fit(np.array(mm))
    seconds = time.perf_counter() - start
    sampler.running = False
    sampler.join()
    mse = float(np.mean((est.inverse_transform(est.transform(mm[:2000])) - mm[:2000]) ** 2))
    print(json.dumps({
        "baseline_rss": baseline_rss, "baseline_anon": baseline_anon,
        "peak_rss": _status("VmHWM"), "peak_anon": sampler.peak,
        "seconds": seconds, "mse": mse,
    }))


def make_memmap(path, n_rows, n_features, data):
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=(n_rows, n_features))
    if data is not None:
        source = data[:, :n_features].astype(np.float32)
        for lo in range(0, n_rows, len(source)):
            hi = min(n_rows, lo + len(source))
            mm[lo:hi] = source[: hi - lo]
    else:
        rng = np.random.RandomState(0)
        basis = rng.normal(size=(8, n_features)).astype(np.float32)
        for lo in range(0, n_rows, 65536):
            hi = min(n_rows, lo + 65536)
            codes = rng.normal(size=(hi - lo, 8)).astype(np.float32)
            mm[lo:hi] = codes @ basis + 0.1 * rng.normal(size=(hi - lo, n_features))
    mm.flush()
    del mm


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--bound-mb", type=float, default=128.0)
    parser.add_argument("--factor", type=float, default=4.0)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", choices=["partial_fit", "fit", "fit (loaded)"])
    parser.add_argument("--path")
    parser.add_argument("--rows", type=int)
    parser.add_argument("--features", type=int)
    parser.add_argument("--chunk-rows", type=int)
    args = parser.parse_args(argv)
    if args.child:
        args.method = args.child
        return child(args)

    bound = 96.0 if args.quick else args.bound_mb
    factor = 2.0 if args.quick else args.factor
    data = None
    if args.data is not None and Path(args.data).exists():
        data = np.load(args.data)["X"]
        source = f"rows of {Path(args.data).name} repeated"
    else:
        source = "made-up low-rank data (no --data file)"
    n_features = data.shape[1] if data is not None else 64
    n_rows = int(factor * bound * 2**20 / (4 * n_features))
    chunk_rows = max(256, int(bound * 2**20 / 8 / (4 * n_features)))  # 1/8 of the bound
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "X.f32")
        make_memmap(path, n_rows, n_features, data)
        size_mb = os.path.getsize(path) / 2**20
        methods = ["partial_fit", "fit"] + ([] if args.quick else ["fit (loaded)"])
        for method in methods:
            out = subprocess.run(
                [sys.executable, __file__, "--child", method, "--path", path,
                 "--rows", str(n_rows), "--features", str(n_features),
                 "--chunk-rows", str(chunk_rows)],
                check=True, capture_output=True, text=True,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            result["method"] = method
            result["bounded"] = result["peak_anon"] - result["baseline_anon"] <= bound
            rows.append(result)
            print(json.dumps(result), flush=True)
    load = os.getloadavg()
    lines = [
        "# Out-of-core fitting: peak memory",
        "",
        f"Written by `benchmarks/bench_out_of_core.py{' --quick' if args.quick else ''}` "
        f"on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; torch at 1 thread.",
        "",
        f"Memory bound {bound:g} MiB; memmap {n_rows} x {n_features} float32 = "
        f"{size_mb:.0f} MiB ({size_mb / bound:.1f}x the bound), {source}; "
        f"AutoencoderTransformer(n_components=4, hidden_layer_sizes=(32,)), one pass; "
        f"partial_fit chunks of {chunk_rows} rows. MiB; anon = anonymous memory "
        "(what the process holds), RSS peak includes mapped file pages (page cache, "
        "droppable). Bounded: anon peak - baseline <= bound. fit's shuffled order "
        f"of an epoch is one int64 per row ({8 * n_rows / 2**20:.0f} MiB here): "
        "it grows with the number of rows, at 8 bytes a row; partial_fit's is a chunk's.",
        "",
        "| method | baseline RSS | peak RSS (VmHWM) | baseline anon | peak anon | anon growth | bounded | seconds | MSE (first 2000 rows) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['baseline_rss']:.0f} | {r['peak_rss']:.0f} | "
            f"{r['baseline_anon']:.0f} | {r['peak_anon']:.0f} | "
            f"{r['peak_anon'] - r['baseline_anon']:.0f} | {'yes' if r['bounded'] else 'no'} | "
            f"{r['seconds']:.1f} | {r['mse']:.4g} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return rows


if __name__ == "__main__":
    main()
