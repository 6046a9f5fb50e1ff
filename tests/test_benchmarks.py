"""Smoke tests: every benchmark script runs end to end in --quick mode."""

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "benchmarks"


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_vae_quick(tmp_path):
    output = tmp_path / "VAE_RESULTS.md"
    rows = load_script("bench_vae").main(["--quick", "--output", str(output)])
    models = {row["model"] for row in rows}
    assert {"PCA", "FactorAnalysis", "VAETransformer (ELBO)"} <= models
    assert all(np.all(np.isfinite(row["test"])) for row in rows)
    text = output.read_text()
    assert "| breast cancer | 4 | VAETransformer (ELBO) |" in text
    assert "torch" in text


def test_bench_vae_panel_quick(tmp_path):
    output = tmp_path / "panel.md"
    results = load_script("bench_vae").main(["--quick", "--panel", "--output", str(output)])
    assert [row["dataset"] for row in results] == ["breast cancer"] * 2 + ["digits"] * 2
    assert all(np.isfinite(row["VAETransformer"]) for row in results)
    assert all(row["start"] in ("pca", "factor_analysis") for row in results)
    text = output.read_text()
    assert "| breast cancer | 140x20 | 4 |" in text and "Holds on" in text


def test_bench_speed_quick(tmp_path):
    output = tmp_path / "RESULTS.md"
    # A subprocess: PyOD seeds the global RNGs when it is constructed, which
    # must not leak into the test session.
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_speed.py"), "--quick",
         "--data", str(tmp_path / "no-data"), "--output", str(output)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "not found: skipping the real-data workload" in result.stdout
    report = output.read_text()
    for heading in (
        "### W1", "### W2", "### W3", "### Inference", "## Targets",
        "### First fit in a fresh process", "### Grid search",
    ):
        assert heading in report
    assert "- Background load: none (no --background-load)." in report
    # The first-fit row ran in a process that never imported torch._dynamo.
    first_fit = report.split("### First fit in a fresh process")[1].split("###")[0]
    assert "| 1 |" in first_fit and "| no |" in first_fit
    assert "of which full GC s" in first_fit and "MLPRegressor(" in first_fit
    for row in (
        "| AutoencoderTransformer | 1 |", "| AutoencoderTransformer | 2 |",
        "| PCA | 1 |", "| PCA | 2 |", "| first fit (fresh process) |",
        "| grid search, n_jobs=2 |", "Start-up of one fresh worker",
        "sklearn_ae's own share", "Floor for process workers",
    ):
        assert row in report
    # The threading back end finds what the serial search finds.
    threaded = report.split("| AutoencoderTransformer | 2, threading |")[1].split("\n")[0]
    assert threaded.rstrip().endswith("| yes |")
    for method in (
        "sklearn_ae", "sklearn_ae bf16", "pyod train", "MLPRegressor", "torch loop", "PCA",
        "stock skorch",
    ):
        assert f"| {method}" in report


def test_first_fit_row_measures_the_fresh_process_itself():
    """The fresh process reports its own peak RSS, not its parent's (Linux
    carries ``ru_maxrss`` over fork and exec), and, importing sklearn_ae
    (torch first), meets no full garbage collection in its first fit."""
    bench = load_script("bench_speed")
    ballast = np.ones(2**27)  # 1 GiB, touched: this process's peak is above it
    [run] = bench.time_fresh_process(dict(bench.FIRST_FIT, data="random"), 1)
    del ballast
    assert run["rss_source"] == "VmHWM"
    assert 100 < run["max_rss_mib"] < 1024
    assert not run["dynamo"]
    # If this fails after an upgrade of torch or scikit-learn, the import
    # order in sklearn_ae/__init__.py no longer keeps the collection out.
    assert run["first_gc"] == 0.0
    assert run["second"] > 0


def test_bench_speed_background_load_stops_its_processes():
    bench = load_script("bench_speed")
    with bench.BackgroundLoad(2) as load:
        processes = list(load.processes)
        assert len(processes) == 2
        assert all(p.poll() is None for p in processes)  # running
        time.sleep(1)
    assert all(p.poll() is not None for p in processes)  # stopped
    assert len(load.report) == 2  # each said its thread count and rate
    assert "2 background process(es)" in load.describe()
    assert "products/s" in load.describe()
    try:
        with bench.BackgroundLoad(1) as load:
            processes = list(load.processes)
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert all(p.poll() is not None for p in processes)  # stopped on error too


def test_layerwise_pretraining_quick(tmp_path):
    out = tmp_path / "table.md"
    threads = torch.get_num_threads()
    text = load_script("layerwise_pretraining").main(["--quick", "--out", str(out)])
    assert torch.get_num_threads() == threads  # no global state left behind
    assert out.read_text() == text
    rows = [line for line in text.splitlines() if line.startswith("| digits |")]
    assert len(rows) == 2  # relu and tanh
    assert "nan" not in text


def test_bench_outliers_quick(tmp_path, capsys):
    bench = load_script("bench_outliers")
    output = tmp_path / "results.md"
    assert bench.main(["--quick", "--output", str(output)]) == 0
    text = output.read_text()
    assert "| **mean ROC-AUC** |" in text
    assert "AEOutlierDetector" in text and "IsolationForest" in text
    assert "fit+score seconds" in text
    assert "out-of-fold mean ROC-AUC" in text
    # The defaults are the hedged selection's choice here (the only hedged
    # candidate of --quick), so they get that selection's out-of-fold figure.
    assert "**Shipped defaults** (`recon+isolation/2`): out-of-fold mean ROC-AUC" in text
    assert "chosen per fold among the hedged candidates" in text
    assert "chosen in folds (hedged)" in text and "hedged: out-of-fold" in text
    assert "## Large size: 20,000 x 100 float32" in text and "peak memory / input" in text


def test_bench_outliers_quick_without_data_uses_synthetic_sets(tmp_path):
    bench = load_script("bench_outliers")
    output = tmp_path / "results.md"
    assert bench.main(["--quick", "--data", str(tmp_path), "--output", str(output)]) == 0
    assert "synthetic" in output.read_text()


def test_bench_representation_quick(tmp_path):
    output = tmp_path / "REPRESENTATION_RESULTS.md"
    recon, likelihood = load_script("bench_representation").main(
        ["--quick", "--output", str(output)]
    )
    names = {row["set"] for row in recon}
    assert "breast cancer" in names
    assert all(np.isfinite(row["pca"]) and np.isfinite(row["ae"]) for row in recon)
    assert {row["k"] for row in likelihood} == {4}
    text = output.read_text()
    assert "| breast cancer | " in text
    assert "Half A:" in text and "Half B:" in text
    assert "Load average" in text


def test_bench_representation_without_data_uses_synthetic_sets(tmp_path):
    output = tmp_path / "REPRESENTATION_RESULTS.md"
    recon, _ = load_script("bench_representation").main(
        ["--quick", "--data", str(tmp_path / "none"), "--output", str(output),
         "--skip-likelihood"]
    )
    assert {row["set"] for row in recon} == {"breast cancer", "synthetic 400x12"}


def test_bench_representation_unseen_panel_quick(tmp_path):
    output = tmp_path / "REPRESENTATION_UNSEEN.md"
    recon, likelihood = load_script("bench_representation").main(
        ["--quick", "--panel", "unseen", "--output", str(output)]
    )
    assert {row["set"] for row in recon} == {"iris", "wine"}
    assert all(np.isfinite(row["ratio"]) for row in recon)
    assert {row["set"] for row in likelihood} == {"wine"}  # iris: 4 columns, k=4
    text = output.read_text()
    assert "no default was chosen on" in text and "| iris | - | 0 |" in text
    assert "Half A:" not in text


def test_bench_representation_oracle_quick(tmp_path):
    output = tmp_path / "REPRESENTATION_ORACLE.md"
    rows = load_script("bench_representation_oracle").main(
        ["--quick", "--data", str(tmp_path / "none"), "--output", str(output)]
    )
    assert {row["set"] for row in rows} == {"breast cancer", "synthetic 400x12"}
    for row in rows:
        assert len(row["curve"]) == 2 and all(np.isfinite(row["curve"]))
        # the oracle picks the best of the curve, the PCA start and the honest fit
        assert row["oracle"] == min(1.0, row["honest"], *row["curve"])
    text = output.read_text()
    assert "| breast cancer | " in text and "Median ratio to PCA's error" in text


def test_bench_out_of_core_quick(tmp_path):
    output = tmp_path / "OUT_OF_CORE_RESULTS.md"
    rows = load_script("bench_out_of_core").main(
        ["--quick", "--data", str(tmp_path / "no-data"), "--out", str(output)]
    )
    assert [r["method"] for r in rows] == ["partial_fit", "fit"]
    # The memmap (192 MiB) is never loaded: anonymous memory grows by less
    # than the 96 MiB bound in either method.
    assert all(r["bounded"] for r in rows), rows
    assert all(np.isfinite(r["mse"]) for r in rows)
    text = output.read_text()
    assert "made-up low-rank data" in text and "| partial_fit |" in text


def test_bench_revisions_quick(tmp_path):
    # Each side must import its own tree: the older one from the unpacked
    # revision, this one from the checkout (not from an installed copy).
    if subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"],
                      capture_output=True).returncode != 0:
        import pytest

        pytest.skip("not a git checkout: no revision to unpack")
    output = tmp_path / "REVISION_RESULTS.md"
    rows, paths = load_script("bench_revisions").main(
        ["--quick", "--workloads", "W1", "--output", str(output)]
    )
    assert Path(paths["this"]) == REPO / "sklearn_ae"
    assert not Path(paths["ref"]).is_relative_to(REPO)
    (row,) = rows
    assert row["workload"] == "W1"
    assert row["wall_ratio"] > 0 and row["cpu_ratio"] > 0 and row["min_ratio"] > 0
    text = output.read_text()
    assert "| W1 | 2,000 x 20, (16, 8), 4, 256, 2 | 1 |" in text


def test_bench_outliers_unseen_quick(tmp_path):
    output = tmp_path / "OUTLIER_UNSEEN_RESULTS.md"
    summary = load_script("bench_outliers_unseen").main(["--quick", "--output", str(output)])
    for group in ("independent", "family"):
        aucs = summary[group]
        assert {"AEOutlierDetector", "reconstruction only", "IsolationForest", "PCA"} <= set(aucs)
        assert all(0 <= auc <= 1 for auc in aucs.values())
    assert summary["time_ratio"] > 0
    text = output.read_text()
    assert "| WDBC | `load_breast_cancer`" in text and "| 367 | 30 | 10 | 2.72% |" in text
    assert "| optdigits (= digits 0 vs rest) | `load_digits`" in text
    assert "| 1,667 | 64 | 48 | 2.88% |" in text
    assert "| **family mean (2 digits)** |" in text and "**mean of 2 sets**" in text
    assert "not used to choose any setting's value" in text and "--quick" in text
    assert "equal to `bench_outliers.py`'s `recon+isolation/2` candidate" in text


def test_bench_outliers_unseen_draws_keep_every_inlier():
    bench = load_script("bench_outliers_unseen")
    X0, y0 = bench.digit_vs_rest(3, 0)
    X1, y1 = bench.digit_vs_rest(3, 1)
    assert np.array_equal(X0[y0 == 0], X1[y1 == 0])  # the same inliers
    assert y0.sum() == y1.sum() == 48
    assert not np.array_equal(X0[y0 == 1], X1[y1 == 1])  # other outlier rows
    X, y = bench.wdbc(0)
    assert (len(y), int(y.sum())) == (367, 10)


def test_bench_outlier_shapes_quick(tmp_path):
    output = tmp_path / "shapes.md"
    rows = load_script("bench_outlier_shapes").main(["--quick", "--output", str(output)])
    assert [row["set"] for row in rows] == ["Hepatitis", "WDBC", "yeast"]
    assert all(row["AEOutlierDetector"] > 0 and row["IsolationForest"] > 0 for row in rows)
    # the protocol's 70/30 split, each part capped
    assert (rows[1]["fit rows"], rows[1]["score rows"]) == (256, 111)
    text = output.read_text()
    assert "| WDBC | 367 x 30 | 256 | 111 |" in text and "seconds summed over the 3 shapes" in text
