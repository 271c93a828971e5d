"""`xlrun db import` verifies an export before writing (issue 17, items 2 and 6): partial,
damaged and inconsistent exports are refused with a one-line error naming the file and the
mismatch, exit code 2, and the database unchanged; a done run already in the database is
never replaced without ``--replace`` (issue 24, item 3)."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from sqlalchemy import text
from test_db_transfer import populate

from xlrun.cli.main import main
from xlrun.db.engine import get_engine
from xlrun.db.transfer import FORMAT_VERSION, export_database, import_database, table_counts
from xlrun.errors import UsageError


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("export")
    src = get_engine(f"sqlite:///{folder / 'src.db'}")
    populate(src, "exp")
    export_database(src, folder / "x")
    src.dispose()
    return folder / "x"


def _copy(export: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "x"
    shutil.copytree(export, dst)
    return dst


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _save_manifest(folder: Path, m: object) -> None:
    (folder / "manifest.json").write_text(json.dumps(m))


def _rewrite(folder: Path, name: str, table: pa.Table, fix_manifest: bool = True) -> None:
    """Replace one file; with ``fix_manifest`` also its row count and checksum (a tamperer
    who covers their tracks, or an exporter bug) but not the per-run counts."""
    path = folder / f"{name}.parquet"
    pq.write_table(table, path)
    if fix_manifest:
        m = _manifest(folder)
        m["rows"][name] = table.num_rows
        m["sha256"][name] = hashlib.sha256(path.read_bytes()).hexdigest()
        _save_manifest(folder, m)


def _read(folder: Path, name: str) -> pa.Table:
    return pq.read_table(folder / f"{name}.parquet")


def t_half_rows_manifest_unchanged(f: Path) -> None:
    qr = _read(f, "query_results")
    pq.write_table(qr.slice(0, qr.num_rows // 2), f / "query_results.parquet")


def t_half_rows_counts_fixed(f: Path) -> None:
    qr = _read(f, "query_results")
    _rewrite(f, "query_results", qr.slice(0, qr.num_rows // 2))


def t_one_run_missing(f: Path) -> None:
    qr = _read(f, "query_results")
    _rewrite(f, "query_results", qr.filter(pc.not_equal(qr["run_id"], 2)))


def t_checksum(f: Path) -> None:
    qr = _read(f, "query_results")
    ap = pc.fill_null(qr["ap"], 0.5)
    _rewrite(f, "query_results", qr.set_column(qr.schema.get_field_index("ap"), "ap", ap),
             fix_manifest=False)
    m = _manifest(f)
    m["rows"]["query_results"] = qr.num_rows
    _save_manifest(f, m)


def t_outside_folder(f: Path) -> None:
    shutil.copy(f / "runs.parquet", f.parent / "elsewhere.parquet")
    m = _manifest(f)
    m["files"]["runs"] = "../elsewhere.parquet"
    _save_manifest(f, m)


def t_absolute_path(f: Path) -> None:
    m = _manifest(f)
    m["files"]["runs"] = str((f / "runs.parquet").resolve())
    _save_manifest(f, m)


def t_missing_file(f: Path) -> None:
    (f / "run_metrics.parquet").unlink()


def t_truncated_parquet(f: Path) -> None:
    p = f / "train_log.parquet"
    p.write_bytes(p.read_bytes()[:100])


def t_not_json(f: Path) -> None:
    (f / "manifest.json").write_text("{not json")


def t_manifest_list(f: Path) -> None:
    _save_manifest(f, [1, 2])


def t_bad_version(f: Path) -> None:
    m = _manifest(f)
    m["format_version"] = "abc"
    _save_manifest(f, m)


def t_newer_version(f: Path) -> None:
    m = _manifest(f)
    m["format_version"] = FORMAT_VERSION + 1
    _save_manifest(f, m)


def t_rows_not_a_table(f: Path) -> None:
    m = _manifest(f)
    m["rows"] = 5
    _save_manifest(f, m)


def t_orphan_rows(f: Path) -> None:
    rm = _read(f, "run_metrics")
    _rewrite(f, "run_metrics", rm.set_column(rm.schema.get_field_index("run_id"), "run_id",
                                             pa.array([99] * rm.num_rows, pa.int64())))


def t_orphan_run(f: Path) -> None:
    runs = _read(f, "runs")
    _rewrite(f, "runs", runs.set_column(runs.schema.get_field_index("experiment_id"),
                                        "experiment_id", pa.array([7] * runs.num_rows)))


def t_duplicate_run(f: Path) -> None:
    runs = _read(f, "runs")
    _rewrite(f, "runs", pa.concat_tables([runs, runs.slice(0, 1)]))


def t_wrong_type(f: Path) -> None:
    tl = _read(f, "train_log")
    _rewrite(f, "train_log", tl.set_column(tl.schema.get_field_index("loss"), "loss",
                                           pc.cast(tl["loss"], pa.string())))


def t_null_key(f: Path) -> None:
    runs = _read(f, "runs")
    _rewrite(f, "runs", runs.set_column(runs.schema.get_field_index("run_key"), "run_key",
                                        pa.array([None] * runs.num_rows, pa.string())))


def t_unknown_column(f: Path) -> None:
    tl = _read(f, "train_log")
    _rewrite(f, "train_log", tl.append_column("extra", pa.array([1] * tl.num_rows)))


TAMPER: dict[str, tuple[Callable[[Path], None], str]] = {
    "half of query_results, manifest unchanged": (t_half_rows_manifest_unchanged,
                                                  "query_results.parquet: holds"),
    "half of query_results, row count fixed": (t_half_rows_counts_fixed,
                                               "the manifest says"),
    "one run's rows missing": (t_one_run_missing, "run 2"),
    "changed values": (t_checksum, "SHA-256"),
    "file outside the folder": (t_outside_folder, "points outside the export folder"),
    "absolute file path": (t_absolute_path, "relative file name"),
    "missing file": (t_missing_file, "lacks run_metrics.parquet"),
    "truncated parquet": (t_truncated_parquet, "train_log.parquet"),
    "manifest not JSON": (t_not_json, "not valid JSON"),
    "manifest not an object": (t_manifest_list, "expected a JSON object"),
    "format_version not a number": (t_bad_version, "format_version"),
    "newer format": (t_newer_version, "upgrade xlrun"),
    "rows not a table": (t_rows_not_a_table, "'rows' has the wrong type"),
    "rows of a run not exported": (t_orphan_rows, "runs.parquet lacks"),
    "runs of an experiment not exported": (t_orphan_run, "experiments.parquet lacks"),
    "duplicate run": (t_duplicate_run, "repeat the key"),
    "wrong column type": (t_wrong_type, "column loss"),
    "empty key column": (t_null_key, "run_key"),
    "unknown column": (t_unknown_column, "extra"),
}


@pytest.mark.parametrize("kind", sorted(TAMPER))
def test_tampered_exports_are_refused(kind: str, export: Path, tmp_path: Path) -> None:
    tamper, needle = TAMPER[kind]
    folder = _copy(export, tmp_path)
    tamper(folder)
    url = f"sqlite:///{tmp_path / 'dst.db'}"
    dst = get_engine(url)
    populate(dst, "other", seed=3, finish=1)
    before = table_counts(dst)
    res = CliRunner().invoke(main, ["db", "import", str(folder), "--db", url])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), res.output
    assert needle in res.output, res.output
    assert table_counts(dst) == before


@pytest.mark.postgres
def test_partial_export_refused_on_postgres(export: Path, tmp_path: Path,
                                            postgres_url: str) -> None:
    folder = _copy(export, tmp_path)
    t_one_run_missing(folder)
    dst = get_engine(postgres_url)
    with pytest.raises(UsageError, match=r"query_results.parquet: run 2 \(\w+\) has 0 rows"):
        import_database(dst, folder)
    assert sum(table_counts(dst).values()) == 0


def test_incomplete_done_run_is_a_conflict_and_replace_repairs_it(export: Path,
                                                                   db_url: str) -> None:
    """A done run here with fewer rows than the export's (an incomplete import by an older
    xlrun) is not silently replaced any more: a conflict naming the run, nothing written;
    ``--replace`` repairs it."""
    dst = get_engine(db_url)
    first = import_database(dst, export)
    full = table_counts(dst)
    with dst.begin() as conn:
        conn.execute(text("DELETE FROM query_results WHERE run_id = 2 AND query_lang = 'de'"))
        conn.execute(text("DELETE FROM run_metrics WHERE run_id = 2"))
        key = conn.execute(text("SELECT run_key FROM runs WHERE id = 2")).scalar_one()
    partial = table_counts(dst)
    res = CliRunner().invoke(main, ["db", "import", str(export), "--db", db_url])
    assert res.exit_code == 2 and key in res.output and "--replace" in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1
    assert table_counts(dst) == partial
    again = import_database(dst, export, replace=True)
    assert (first.runs_new, again.runs_overwritten, again.runs_skipped) == (4, 1, 3)
    assert table_counts(dst) == full
    res = CliRunner().invoke(main, ["db", "import", str(export), "--db", db_url])
    assert res.exit_code == 0 and "4 already present" in res.output, res.output


def test_older_exports_without_checksums_import_only_when_allowed(export: Path,
                                                                  tmp_path: Path) -> None:
    folder = _copy(export, tmp_path)
    m = _manifest(folder)
    m["format_version"] = 2
    del m["sha256"], m["run_rows"]
    _save_manifest(folder, m)
    url = f"sqlite:///{tmp_path / 'dst.db'}"
    dst = get_engine(url)
    res = CliRunner().invoke(main, ["db", "import", str(folder), "--db", url])
    assert res.exit_code == 2 and "--allow-unverified" in res.output, res.output
    assert table_counts(dst)["runs"] == 0
    res = CliRunner().invoke(main, ["db", "import", str(folder), "--db", url,
                                    "--allow-unverified"])
    assert res.exit_code == 0 and "4 new run(s)" in res.output, res.output
    pilot = Path(__file__).resolve().parents[2] / "docs" / "pilot_cpu" / "export"
    if pilot.is_dir():
        assert import_database(dst, pilot, allow_unverified=True).runs_new == 2
