"""Smoke tests: every benchmark script runs end to end in --quick mode."""

import importlib.util
import subprocess
import sys
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


def test_bench_speed_quick(tmp_path):
    output = tmp_path / "RESULTS.md"
    # A subprocess: PyOD seeds the global RNGs when it is constructed, which
    # must not leak into the test session.
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_speed.py"), "--quick",
         "--data", str(tmp_path / "no-data"), "--output", str(output)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "not found: skipping the real-data workload" in result.stdout
    report = output.read_text()
    for heading in ("### W1", "### W2", "### W3", "### Inference", "## Targets"):
        assert heading in report
    for method in (
        "sklearn_ae", "sklearn_ae bf16", "pyod train", "MLPRegressor", "torch loop", "PCA",
        "stock skorch",
    ):
        assert f"| {method}" in report


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


def test_bench_outliers_quick_without_data_uses_synthetic_sets(tmp_path):
    bench = load_script("bench_outliers")
    output = tmp_path / "results.md"
    assert bench.main(["--quick", "--data", str(tmp_path), "--output", str(output)]) == 0
    assert "synthetic" in output.read_text()
