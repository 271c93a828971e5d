"""``xlrun langs`` through click's CliRunner."""

from __future__ import annotations

import csv
import io
import json

from click.testing import CliRunner

from xlrun.cli.langs import langs


def _run(*args: str):
    return CliRunner().invoke(langs, list(args))


def test_sources_lists_registry() -> None:
    res = _run("sources", "--format", "json")
    assert res.exit_code == 0, res.output
    names = {r["name"] for r in json.loads(res.output)}
    assert {"uriel", "script", "family", "embedding", "manual"} <= names


def test_distances_formats() -> None:
    res = _run("distances", "--source", "uriel:syntax_knn", "--langs", "ar,de,en,es,hi,vi,zh",
               "--format", "json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["langs"] == ["ar", "de", "en", "es", "hi", "vi", "zh"]
    assert d["values"][1][2] == d["values"][2][1] and d["values"][0][0] == 0
    res = _run("distances", "-s", "script", "-l", "deu,eng,rus", "--format", "csv")
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.output)))
    assert len(rows) == 6
    assert {(r["lang_a"], r["lang_b"]): float(r["distance"]) for r in rows}[("de", "en")] == 0.0
    table = _run("distances", "-s", "script", "-l", "de,en,ru")
    assert table.exit_code == 0 and "ru" in table.output and "1.000" in table.output


def test_clusters_table_json_and_plot(tmp_path) -> None:
    png = tmp_path / "clusters.png"
    res = _run("clusters", "-s", "0.5*uriel:syntax_knn+0.5*script", "-l",
               "ar,de,en,es,fr,hi,ja,ko,pt,zh", "--k", "3", "--plot", str(png))
    assert res.exit_code == 0, res.output
    assert "silhouette" in res.output and png.read_bytes()[:4] == b"\x89PNG"
    res = _run("clusters", "-s", "script", "-l", "de,en,ru,uk", "--threshold", "0.5",
               "--linkage", "complete", "--format", "json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["clusters"] == [["de", "en"], ["ru", "uk"]]
    assert out["silhouette"] == 1.0


def test_unknown_code_exits_2_with_suggestions() -> None:
    res = _run("distances", "-s", "script", "-l", "en,deu,engl")
    assert res.exit_code == 2
    assert "Error:" in res.output and "engl" in res.output
    assert "nearest known codes: en" in res.output


def test_bad_source_and_flags_exit_2() -> None:
    res = _run("distances", "-s", "uriel:nope", "-l", "en,de")
    assert res.exit_code == 2 and "uriel:syntax_knn" in res.output
    res = _run("clusters", "-s", "script", "-l", "en,de")
    assert res.exit_code == 2 and "--k or --threshold" in res.output
    res = _run("distances", "-s", "embedding", "-l", "en,de")
    assert res.exit_code == 2 and "--texts" in res.output
