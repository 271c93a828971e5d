"""Evaluation data that cannot be scored is an error, at submit and at run time (issue 24,
smaller items: qrels with text relevance or a repeated header gave a traceback; an empty
corpus or empty qrels gave a ``done`` run with 0 results)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from xlrun.cli import main

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "local_eval"
SPEC = """
[experiment]
name = "data"
output_dir = "out"
[model]
name = "quickstart:tiny"
[train]
steps = 0
[[eval]]
dataset = "local"
path = "data"
"""


def _data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    shutil.copytree(FIX, folder)
    return folder


def _append(name: str, line: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        with open(folder / name, "a", encoding="utf-8") as f:
            f.write(line)
    return edit


def _empty(name: str, keep_header: bool = False) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        first = (folder / name).read_text().splitlines()[0] + "\n" if keep_header else ""
        (folder / name).write_text(first)
    return edit


def _no_matching_ids(folder: Path) -> None:
    lines = (folder / "qrels.tsv").read_text().splitlines()
    rows = [line.split("\t") for line in lines[1:]]
    (folder / "qrels.tsv").write_text("\n".join([lines[0]] + [
        "\t".join([r[0], f"nope-{i}", *r[2:]]) for i, r in enumerate(rows)]) + "\n")


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "text relevance": (_append("qrels.tsv", "p2\ten-panda\thigh\t\n"),
                       "relevance 'high' is not a number"),
    "nan relevance": (_append("qrels.tsv", "p2\ten-panda\tnan\t\n"), "is not a number"),
    "repeated header": (_append("qrels.tsv", "query_id\tdoc_id\trelevance\tquery_lang\n"),
                        "header row again"),
    "a row without ids": (_append("qrels.tsv", "\t\t1\t\n"), "needs a query_id and a doc_id"),
    "empty corpus": (_empty("corpus.jsonl"), "no documents"),
    "empty queries": (_empty("queries.jsonl"), "holds no queries"),
    "empty qrels": (_empty("qrels.tsv", keep_header=True), "no query has a relevant document"),
    "qrels ids that match nothing": (_no_matching_ids, "no query has a relevant document"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_unusable_data_is_refused_at_submit(tmp_path: Path, case: str) -> None:
    edit, needle = CASES[case]
    edit(_data(tmp_path))
    (tmp_path / "s.toml").write_text(SPEC)
    res = CliRunner().invoke(main, ["submit", str(tmp_path / "s.toml"), "--db",
                                    f"sqlite:///{tmp_path / 'x.db'}", "--no-run"])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1 and needle in lines[0], res.output
    assert not (tmp_path / "x.db").exists()


def test_data_emptied_after_submit_fails_the_run_instead_of_a_done_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # output_dir "out" is relative to the working folder
    folder = _data(tmp_path)
    (tmp_path / "s.toml").write_text(SPEC)
    url = f"sqlite:///{tmp_path / 'x.db'}"
    res = CliRunner().invoke(main, ["submit", str(tmp_path / "s.toml"), "--db", url,
                                    "--no-run"])
    assert res.exit_code == 0, res.output
    _empty("qrels.tsv", keep_header=True)(folder)
    res = CliRunner().invoke(main, ["worker", "--db", url, "--device", "cpu"])
    assert res.exit_code == 1, res.output
    engine = create_engine(url)
    with engine.connect() as conn:
        status, error = conn.execute(text("SELECT status, error FROM runs")).one()
        n = conn.execute(text("SELECT COUNT(*) FROM query_results")).scalar_one()
    engine.dispose()
    assert status == "failed" and n == 0
    assert "no query has a relevant document" in error and "Traceback" not in error
