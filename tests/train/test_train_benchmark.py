"""The throughput benchmark keeps working in its CPU smoke mode."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "train_throughput.py"


@pytest.mark.slow
def test_tiny_cpu_benchmark_runs(tmp_path):
    spec = importlib.util.spec_from_file_location("xlrun_train_throughput", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    report = mod.main(["--device", "cpu", "--tiny", "--skip-st", "--steps", "2",
                       "--json", str(tmp_path / "r.json")])
    (res,) = report["results"]
    assert res["side"] == "xlrun" and res["steps"] == 2 and res["pairs_per_s"] > 0
    assert (tmp_path / "r.json").exists()


def test_flop_formula():
    spec = importlib.util.spec_from_file_location("xlrun_train_throughput_f", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    class Cfg:
        hidden_size, intermediate_size, num_hidden_layers = 2, 8, 1

    # per layer: 2*s*(4*4 + 2*2*8) + 4*s*s*2 ; s=1 → 96 + 8 = 104 ; s=2 → 192 + 32 = 224
    assert mod.train_flops_per_pair(Cfg, 1, 2) == 3 * (104 + 224)
