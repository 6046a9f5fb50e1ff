"""Fit time of this checkout against an earlier revision, side by side.

Issue 10 asks that starting the networks from their linear models (PCA)
costs little: ``bench_speed.py``'s W1 and W2 fit times stay within 10% of
those of the revision before it (``4f4fe81``). This script times the same
``AutoencoderTransformer`` fit as ``bench_speed.py``'s ``sklearn_ae`` row
(same data, network, batch size, epochs, ``early_stopping=False``, one
torch thread) with the package of both revisions:

- the older revision's ``sklearn_ae`` is unpacked from git (``git archive``)
  into a temporary folder;
- one worker process per revision imports its own ``sklearn_ae`` (checked
  by its path), makes the data once and warms up with a one-epoch fit;
- the timed fits alternate between the two workers (the order flips every
  repeat), so both see the same load; medians and the ratio of medians of
  wall time and of the worker's CPU time are reported.

Writes ``benchmarks/REVISION_RESULTS.md`` (not with ``--quick``).

Usage::

    python benchmarks/bench_revisions.py                 # W1, W2 against 4f4fe81
    python benchmarks/bench_revisions.py --ref HEAD~5 --repeats 9
    python benchmarks/bench_revisions.py --quick         # smoke test (HEAD, tiny)
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import datetime, timezone
from io import BytesIO
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import bench_speed  # noqa: E402  (data and workloads)
from _machine import cpu_model, load_average as _load  # noqa: E402

DEFAULT_REF = "4f4fe81"
DEFAULT_OUTPUT = HERE / "REVISION_RESULTS.md"

# The worker: imports the sklearn_ae found first on sys.path (its tree),
# then answers one line per workload name with one timed fit, as JSON.
WORKER = r"""
import json, sys, time, warnings
tree, bench_dir, quick = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
sys.path.insert(0, tree)
sys.path.insert(1, bench_dir)
import torch
torch.set_num_threads(1)
import sklearn_ae
from pathlib import Path
if not Path(sklearn_ae.__file__).resolve().is_relative_to(Path(tree).resolve()):
    raise SystemExit(f"sklearn_ae imported from {sklearn_ae.__file__}, not from {tree}")
from sklearn_ae import AutoencoderTransformer
import bench_speed
workloads = bench_speed.QUICK_WORKLOADS if quick else bench_speed.WORKLOADS
data = {}
def fit(X, spec, seed=0):
    est = AutoencoderTransformer(
        n_components=spec["latent"], hidden_layer_sizes=spec["hidden"],
        learning_rate=bench_speed.LEARNING_RATE, batch_size=spec["batch_size"],
        max_iter=spec["epochs"], early_stopping=False, random_state=seed,
        device="cpu", n_jobs=1,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wall, cpu = time.perf_counter(), time.process_time()
        est.fit(X)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if est.n_iter_ != spec["epochs"]:
        raise SystemExit(f"ran {est.n_iter_} epochs, not {spec['epochs']}")
    return wall, cpu
print(json.dumps({"ready": str(Path(sklearn_ae.__file__).resolve().parent)}), flush=True)
for line in sys.stdin:
    name = line.strip()
    if name not in data:
        spec = workloads[name]
        data[name] = bench_speed.make_data(spec["n_samples"], spec["n_features"])
        fit(data[name][:512], dict(spec, epochs=1))  # warm-up
    wall, cpu = fit(data[name], workloads[name])
    print(json.dumps({"wall": wall, "cpu": cpu}), flush=True)
"""


def unpack_revision(ref, folder):
    """Unpack ``sklearn_ae/`` of git revision ``ref`` into ``folder``."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", ref],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", commit, "sklearn_ae"],
            check=True, capture_output=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        raise SystemExit(
            f"cannot read revision {ref!r} from git in {REPO}: "
            f"{detail.decode(errors='replace').strip() or exc}"
        ) from exc
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return commit


class Worker:
    """One process with one revision's sklearn_ae, timing fits on request."""

    def __init__(self, label, tree, quick):
        self.label = label
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tree), str(HERE), "1" if quick else "0"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )
        self.path = self._read()["ready"]

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the {self.label} worker stopped (exit {self.proc.wait()})")
        return json.loads(line)

    def time_fit(self, workload):
        self.proc.stdin.write(workload + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def run(args):
    workloads = args.workloads.split(",")
    unknown = [w for w in workloads if w not in bench_speed.WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workloads {unknown}; choose from W1, W2, W3")
    results = {w: {"ref": [], "this": []} for w in workloads}
    with tempfile.TemporaryDirectory() as folder:
        commit = unpack_revision(args.ref, folder)
        workers = {"ref": Worker(f"{args.ref}", folder, args.quick),
                   "this": Worker("this checkout", REPO, args.quick)}
        try:
            for workload in workloads:
                for repeat in range(args.repeats):
                    order = ("ref", "this") if repeat % 2 == 0 else ("this", "ref")
                    for side in order:
                        results[workload][side].append(workers[side].time_fit(workload))
                    print(f"[bench_revisions] {workload} repeat {repeat + 1}/{args.repeats}: "
                          + ", ".join(f"{s} {results[workload][s][-1]['wall']:.3f} s"
                                      for s in ("ref", "this")), flush=True)
            paths = {side: w.path for side, w in workers.items()}
        finally:
            for worker in workers.values():
                worker.close()
    return commit, results, paths


def summarise(results):
    rows = []
    for workload, sides in results.items():
        med = {(side, key): statistics.median(r[key] for r in sides[side])
               for side in sides for key in ("wall", "cpu")}
        rows.append({
            "workload": workload,
            "ref_wall": med["ref", "wall"], "this_wall": med["this", "wall"],
            "ref_cpu": med["ref", "cpu"], "this_cpu": med["this", "cpu"],
            "wall_ratio": med["this", "wall"] / med["ref", "wall"],
            "cpu_ratio": med["this", "cpu"] / med["ref", "cpu"],
            # The fastest fit of each side: on a shared machine other
            # processes only ever add time, so the minimum is the steadier
            # estimate of a fit's own cost.
            "min_ratio": min(r["wall"] for r in sides["this"])
            / min(r["wall"] for r in sides["ref"]),
            "repeats": {side: [round(r["wall"], 3) for r in sides[side]] for side in sides},
        })
    return rows


def write_report(path, args, commit, rows, load_before, load_after, started, seconds):
    spec = bench_speed.QUICK_WORKLOADS if args.quick else bench_speed.WORKLOADS
    lines = [
        "# Fit time against an earlier revision",
        "",
        f"Written by `benchmarks/bench_revisions.py` (`python benchmarks/bench_revisions.py "
        f"{' '.join(args.argv)}`), started {started:%Y-%m-%d %H:%M} UTC, {seconds / 60:.1f} min.",
        "",
        f"- Revisions: `{commit}` (`--ref {args.ref}`) against this checkout "
        f"(`{_head()}`{', with uncommitted changes' if _dirty() else ''}).",
        f"- Machine: {cpu_model()}, "
        f"{os.cpu_count()} logical CPUs; "
        f"Python {sys.version.split()[0]}.",
        f"- Load average (1, 5, 15 min) before: {load_before}; after: {load_after} "
        "(a shared machine: the two revisions alternate, so both see the same load).",
        "- The fit of `bench_speed.py`'s `sklearn_ae` row: `AutoencoderTransformer` with the "
        "workload's network, batch size and epochs, `learning_rate=1e-3`, "
        "`early_stopping=False`, `n_jobs=1`, `device='cpu'`, one torch thread "
        "(`OMP_NUM_THREADS=1`), after a one-epoch warm-up fit in the same worker process. "
        "One worker process per revision; timed fits alternate between them, the order "
        "flipping every repeat. Times are medians; CPU time is the worker's process time "
        "during the fit; 'fastest fits' is the ratio of each side's fastest fit (other "
        "processes only add time, so it is the steadier figure on a busy machine).",
        "",
        "| workload | rows x features, hidden, latent, batch, epochs | repeats | "
        f"`{commit}` wall s | this wall s | this / `{commit}` (wall) | "
        f"`{commit}` CPU s | this CPU s | this / `{commit}` (CPU) | "
        f"this / `{commit}`, fastest fits | wall s, `{commit}` | wall s, this |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        s = spec[row["workload"]]
        shape = (f"{s['n_samples']:,} x {s['n_features']}, {s['hidden']}, {s['latent']}, "
                 f"{s['batch_size']}, {s['epochs']}")
        lines.append(
            f"| {row['workload']} | {shape} | {len(row['repeats']['ref'])} | "
            f"{row['ref_wall']:.3f} | {row['this_wall']:.3f} | {row['wall_ratio']:.3f} | "
            f"{row['ref_cpu']:.3f} | {row['this_cpu']:.3f} | {row['cpu_ratio']:.3f} | "
            f"{row['min_ratio']:.3f} | "
            f"{', '.join(map(str, row['repeats']['ref']))} | "
            f"{', '.join(map(str, row['repeats']['this']))} |"
        )
    Path(path).write_text("\n".join(lines) + "\n")


def _git(*cmd):
    try:
        return subprocess.run(["git", "-C", str(REPO), *cmd], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _head():
    return _git("rev-parse", "--short", "HEAD") or "not a git checkout"


def _dirty():
    return bool(_git("status", "--porcelain", "--untracked-files=no", "sklearn_ae"))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", default=None,
                        help=f"git revision to compare with (default {DEFAULT_REF}; "
                        "HEAD with --quick)")
    parser.add_argument("--workloads", default="W1,W2",
                        help="comma-separated subset of bench_speed.py's W1, W2, W3")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed fits per revision and workload (default 7; 1 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny workloads, one repeat, no report (a smoke test)")
    parser.add_argument("--output", default=None,
                        help="Markdown report (default benchmarks/REVISION_RESULTS.md; "
                        "none with --quick unless given)")
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    if args.ref is None:
        args.ref = "HEAD" if args.quick else DEFAULT_REF
    if args.repeats is None:
        args.repeats = 1 if args.quick else 7
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.output is None and not args.quick:
        args.output = str(DEFAULT_OUTPUT)
    return args


def main(argv=None):
    args = parse_args(argv)
    started, load_before, t0 = datetime.now(timezone.utc), _load(), time.perf_counter()
    commit, results, paths = run(args)
    rows = summarise(results)
    for row in rows:
        print(f"{row['workload']}: {commit} {row['ref_wall']:.3f} s, this {row['this_wall']:.3f} s "
              f"(this / {commit}: wall {row['wall_ratio']:.3f}, CPU {row['cpu_ratio']:.3f}, "
              f"fastest fits {row['min_ratio']:.3f})")
    if args.output:
        write_report(args.output, args, commit, rows, load_before, _load(), started,
                     time.perf_counter() - t0)
        print(f"wrote {args.output}")
    return rows, paths


if __name__ == "__main__":
    main()
