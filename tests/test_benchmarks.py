"""Smoke tests: every benchmark script runs end to end in --quick mode."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_bench_speed_quick(tmp_path):
    pytest.importorskip("pyod", reason="bench_speed compares against PyOD")
    output = tmp_path / "RESULTS.md"
    # A subprocess: PyOD seeds the global RNGs when it is constructed, which
    # must not leak into the test session.
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_speed.py"), "--quick",
         "--data", str(tmp_path / "no-data"), "--output", str(output)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "not found: skipping the real-data workload" in result.stdout
    report = output.read_text()
    for heading in ("### W1", "### W2", "### W3", "### Inference", "## Targets"):
        assert heading in report
    for method in ("sklearn_ae", "pyod train", "MLPRegressor", "torch loop", "PCA"):
        assert f"| {method}" in report
