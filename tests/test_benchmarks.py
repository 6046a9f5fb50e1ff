"""Smoke tests: every benchmark script runs end to end in --quick mode."""

import importlib.util
from pathlib import Path

import numpy as np

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


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
