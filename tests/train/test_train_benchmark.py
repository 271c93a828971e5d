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


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_sentence_transformers_side_without_datasets_or_accelerate(tmp_path, monkeypatch):
    """The GPU image has sentence-transformers but not datasets/accelerate (which its trainer
    needs): the benchmark then times its modules and loss in a plain loop, and says so."""
    mod = _load("xlrun_train_throughput_loop", BENCH)
    monkeypatch.setattr(mod, "_st_trainer", lambda: None)
    report = mod.main(["--device", "cpu", "--tiny", "--steps", "2", "--warmup", "1"])
    st = report["results"][1]
    assert st["side"] == "sentence-transformers" and st["steps"] == 2 and st["pairs_per_s"] > 0
    assert st["how"].startswith("plain loop")
    assert report["ratio_pairs_per_s"] > 0


def test_random_architecture_for_encoding_needs_no_download(tmp_path, monkeypatch):
    """``encode_throughput.py --random`` builds the architecture offline with a tokenizer whose
    every word is one token, loadable by xlrun's encoder (a small stand-in architecture)."""
    mod = _load("xlrun_encode_throughput", BENCH.with_name("encode_throughput.py"))
    monkeypatch.setitem(mod.RANDOM_ARCHS, "toy", {
        "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 64, "max_position_embeddings": 1026})
    rows = mod.main(["--random", "toy", "--device", "cpu", "--lengths", "600", "--n-docs", "4",
                     "--max-batch", "4"])
    assert {r["impl"] for r in rows} == {"xlrun", "sentence-transformers"}
    assert all(r["length"] == 600 and r["docs_per_s"] > 0 for r in rows)
    # one word = one token: a 600-word document fills the 600-token window
    folder = mod.build_random_model(tmp_path / "m", "toy")
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(folder)(" ".join(["river"] * 10))["input_ids"]
    assert len(ids) == 12
