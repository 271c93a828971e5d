"""Fuzz of the spec loader (issue 17): mutated quickstart specs go through ``xlrun submit``.

Every outcome is either a valid compile (exit 0, runs enqueued) or a one-line ``Error:`` with
exit code 2 and nothing written (no database, no file in the working folder) — never a
traceback. Mutations: a value replaced by an odd one (nan, inf, huge or negative numbers,
empty or path-like strings, wrong types, nested lists), a key deleted or added, a grid axis
added or emptied, and text-level damage (a stray quote, bracket, byte-order mark, NUL,
``${VAR}``, invalid UTF-8).
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xlrun.cli import main
from xlrun.spec.load import grid_keys

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = tomllib.loads((REPO / "experiments" / "quickstart.toml").read_text())
# keep each valid outcome small: 1 arm x 1 seed and few steps (nothing runs: --no-run)
QUICKSTART["grid"] = {"seeds": [1]}
QUICKSTART["experiment"]["output_dir"] = "out"

ODD_VALUES: list[Any] = [
    0, -1, 1, 2, 3, 7, 2**31, -(2**31), 2**63 - 1, 10**6, 0.0, -0.0, 0.5, 1.5, -1.5, 1e-300,
    1e308, math.inf, -math.inf, math.nan, True, False, "", " ", "x", "../..", "../../escaped",
    "/", "a/b", "..", "\u00e9t\u00e9", "x" * 300, "hybrid", "clustered", "manual", "script",
    "size", "uniform", "within", "across", "mono", "multi", "quickstart", "jsonl", "lareqa",
    "${XLRUN_FUZZ_UNSET}", "${XLRUN_FUZZ_UNSET:-x}", [], [[]], [1, 2], ["en", "de"], ["xx"],
    [["en", "de"], ["ja", "zh"]], [["en"], ["en"]], ["mono", "mono"], [math.nan], {"a": 1},
]
SECTIONS = ["experiment", "model", "train_data", "sampling", "train", "executor"]


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def to_toml(doc: dict[str, Any]) -> str:
    """TOML text of a spec dict (tables, arrays of tables, inline tables)."""
    lines: list[str] = []
    for name, table in doc.items():
        if isinstance(table, list) and table and all(isinstance(t, dict) for t in table):
            for t in table:
                lines.append(f"[[{name}]]")
                lines += [f"{json.dumps(k)} = {_value(v)}" for k, v in t.items()]
        elif isinstance(table, dict):
            lines.append(f"[{name}]")
            lines += [f"{json.dumps(k)} = {_value(v)}" for k, v in table.items()]
        else:
            lines.insert(0, f"{json.dumps(name)} = {_value(table)}")
    return "\n".join(lines) + "\n"


@st.composite
def mutated_spec(draw: st.DrawFn) -> bytes:
    doc = json.loads(json.dumps(QUICKSTART))  # a deep copy
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["replace", "replace", "delete", "add", "grid", "eval"]))
        if kind in ("replace", "delete"):
            section = draw(st.sampled_from(SECTIONS))
            table = doc.setdefault(section, {})
            if not table:
                continue
            key = draw(st.sampled_from(sorted(table)))
            if kind == "delete":
                del table[key]
            else:
                table[key] = draw(st.sampled_from(ODD_VALUES))
        elif kind == "add":
            section = draw(st.sampled_from(SECTIONS))
            key = draw(st.sampled_from(["seed", "clusters", "n_clusters", "languages", "path",
                                        "name", "max_runs", "lr", "temperature", "bogus",
                                        "max_grad_norm", "distance_threshold", "similarity"]))
            doc.setdefault(section, {})[key] = draw(st.sampled_from(ODD_VALUES))
        elif kind == "grid":
            key = draw(st.sampled_from([*grid_keys(), "eval.0.top_k", "eval.9.top_k", "seeds",
                                        "zip", "train.nope"]))
            doc["grid"][key] = draw(st.sampled_from([[], [1, 2], [0], [-1], [math.nan],
                                                     ["a"], [[1]], ["size", "clustered"],
                                                     list(range(3)), 5]))
        else:
            e = doc["eval"][0]
            key = draw(st.sampled_from(["top_k", "settings", "languages", "split", "path",
                                        "dataset", "batch_size", "revision", "dedupe"]))
            e[key] = draw(st.sampled_from(ODD_VALUES))
    text = to_toml(doc).encode()
    if draw(st.booleans()):  # text-level damage, half of the cases
        at = draw(st.integers(0, len(text)))
        junk = draw(st.sampled_from([b'"', b"[", b"]", b"=", b"\n[x]\n", b"\xef\xbb\xbf",
                                     b"\x00", b"\xff\xfe", b"${A}", b"\\", b"'''", b"#"]))
        text = text[:at] + junk + text[at:]
    return text


def _finite(obj: Any, where: str = "config") -> None:
    if isinstance(obj, float):
        assert math.isfinite(obj), where
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _finite(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _finite(v, f"{where}[{i}]")


def _assert_meaningful(db: Path) -> None:
    """What a valid compile enqueued means something: finite numbers, non-negative seeds, an
    experiment name usable as a folder, manual clusters within the quickstart's languages."""
    import sqlite3

    from xlrun.quickstart.corpus import LANGUAGES

    with sqlite3.connect(db) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM experiments")]
        configs = [json.loads(r[0]) for r in conn.execute("SELECT config_json FROM runs")]
    for name in names:
        assert name.strip() and "/" not in name and name not in (".", "..") and len(name) <= 200
    for cfg in configs:
        _finite(cfg)
        assert cfg["train"]["seed"] >= 0
        for cluster in cfg["sampling"]["clusters"]:
            assert set(cluster) <= set(LANGUAGES), cluster


@pytest.mark.slow
def test_mutated_quickstart_specs_compile_or_fail_cleanly(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    monkeypatch.chdir(sandbox)
    monkeypatch.delenv("XLRUN_FUZZ_UNSET", raising=False)
    outcomes = {"compiled": 0, "refused": 0}
    n = [0]

    @settings(max_examples=200, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(mutated_spec())
    def submit(text: bytes) -> None:
        n[0] += 1
        spec = tmp_path / "spec.toml"
        spec.write_bytes(text)
        db = tmp_path / f"db{n[0]}.db"
        res = CliRunner().invoke(main, ["submit", str(spec), "--db", f"sqlite:///{db}",
                                        "--no-run"])
        if res.exit_code == 0:
            outcomes["compiled"] += 1
            assert "new" in res.output
            _assert_meaningful(db)
        else:
            assert res.exit_code == 2 and isinstance(res.exception, SystemExit), (
                text.decode("utf-8", "replace"), res.output, res.exc_info)
            lines = res.output.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
            assert not db.exists(), res.output
            outcomes["refused"] += 1
        assert list(sandbox.iterdir()) == [], res.output

    submit()
    assert outcomes["compiled"] >= 10 and outcomes["refused"] >= 50, outcomes
