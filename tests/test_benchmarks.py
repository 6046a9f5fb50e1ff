"""Smoke tests: each benchmark script runs end to end in its --quick mode."""

import importlib.util
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_layerwise_pretraining_quick(tmp_path):
    out = tmp_path / "table.md"
    threads = torch.get_num_threads()
    text = load_script("layerwise_pretraining").main(["--quick", "--out", str(out)])
    assert torch.get_num_threads() == threads  # no global state left behind
    assert out.read_text() == text
    rows = [line for line in text.splitlines() if line.startswith("| digits |")]
    assert len(rows) == 2  # relu and tanh
    assert "nan" not in text
