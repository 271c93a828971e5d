"""Imports that never destroy and never trust, exports that refuse (issue 24, items 3, 5, 8
and the smaller import items; issue 26: ``db export --with-retrieved``)."""

from __future__ import annotations

import contextlib
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner
from sqlalchemy import text
from test_db_transfer import SPEC, populate
from test_db_transfer_verify import _manifest, _read, _rewrite, _save_manifest

from xlrun.cli.main import main
from xlrun.db import store
from xlrun.db.engine import get_engine
from xlrun.db.transfer import export_database, import_database, table_counts
from xlrun.errors import UsageError
from xlrun.spec.grid import compile_spec
from xlrun.spec.load import parse_spec


def _import(folder: Path, url: str, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, ["db", "import", str(folder), "--db", url, *args])
    return res.exit_code, res.output


def _refused(code: int, out: str) -> bool:
    lines = out.strip().splitlines()
    return code == 2 and len(lines) == 1 and lines[0].startswith("Error:")


def _scalar(url: str, sql: str) -> object:
    engine = get_engine(url)
    with engine.connect() as conn:
        value = conn.execute(text(sql)).scalar()
    engine.dispose()
    return value


def _row(url: str, sql: str) -> tuple[object, ...]:
    engine = get_engine(url)
    with engine.connect() as conn:
        row = tuple(float(v) for v in conn.execute(text(sql)).one())
    engine.dispose()
    return row


def _edit_column(folder: Path, name: str, column: str,
                 fn: Callable[[list[object]], list[object]], kind: pa.DataType | None = None
                 ) -> None:
    table = _read(folder, name)
    values = fn(table[column].to_pylist())
    array = pa.array(values, type=kind or table.schema.field(column).type)
    _rewrite(folder, name, table.set_column(table.schema.get_field_index(column), column,
                                            array))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pristine")
    src = get_engine(f"sqlite:///{folder / 'src.db'}")
    populate(src, "exp", seed=2)
    export_database(src, folder / "x")
    src.dispose()
    return folder / "x"


@pytest.fixture
def export(pristine: Path, tmp_path: Path) -> Path:
    """A fresh copy of one export (4 done runs) to tamper with."""
    shutil.copytree(pristine, tmp_path / "x")
    return tmp_path / "x"


# ----------------------------------------------------------------------------- item 3
def test_a_done_run_is_never_replaced_by_a_different_export(db_url: str, tmp_path: Path
                                                            ) -> None:
    """The issue's case: the same run keys done in two databases with other results, and
    one extra train_log row in the export: a conflict naming the run; nothing written."""
    dst = get_engine(db_url)
    populate(dst, "exp", seed=1)
    src = get_engine(f"sqlite:///{tmp_path / 'other.db'}")
    ids = populate(src, "exp", seed=9)
    store.write_train_log(src, ids[0], [{"step": 4, "loss": 0.1, "lr": 1e-5}])
    export_database(src, tmp_path / "x")
    before = table_counts(dst)
    retrieved = _scalar(db_url, "SELECT COUNT(*) FROM retrieved")
    means = _scalar(db_url, "SELECT SUM(value) FROM run_metrics")
    code, out = _import(tmp_path / "x", db_url)
    assert _refused(code, out) and "differ" in out and "--replace" in out, out
    key = _scalar(db_url, f"SELECT run_key FROM runs WHERE id = {ids[0]}")
    assert f"exp/{key}" in out and "train_log" in out
    assert table_counts(dst) == before
    assert _scalar(db_url, "SELECT COUNT(*) FROM retrieved") == retrieved
    assert _scalar(db_url, "SELECT SUM(value) FROM run_metrics") == means
    # an explicit --replace takes the export's results and keeps the retrieved rows here
    code, out = _import(tmp_path / "x", db_url, "--replace")
    assert code == 0 and "4 overwritten" in out, out
    assert _scalar(db_url, "SELECT COUNT(*) FROM retrieved") == retrieved
    assert _scalar(db_url, "SELECT COUNT(*) FROM train_log") == before["train_log"] + 1
    assert _scalar(db_url, "SELECT SUM(value) FROM run_metrics") != means


def test_reimporting_a_database_s_own_export_is_no_conflict(db_url: str,
                                                            tmp_path: Path) -> None:
    """An export rounds metrics to 4 decimals: the exact values here are the same results."""
    dst = get_engine(db_url)
    populate(dst, "exp", seed=4)
    export_database(dst, tmp_path / "own")
    counts = table_counts(dst)
    s = import_database(dst, tmp_path / "own")
    assert (s.runs_new, s.runs_skipped, s.runs_overwritten) == (0, 4, 0)
    assert table_counts(dst) == counts


# ----------------------------------------------------------------------------- item 5
TAMPERS: dict[str, tuple[Callable[[Path], None], str]] = {
    "experiment name escaping output_dir": (lambda f: _edit_column(
        f, "experiments", "name", lambda v: ["../../../../tmp/escaped"] * len(v)),
        "folder name"),
    "experiment name with a terminal escape": (lambda f: _edit_column(
        f, "experiments", "name", lambda v: ["exp\x1b]0;pwned\x07"] * len(v)), "control"),
    "experiment name with a bidi override": (lambda f: _edit_column(
        f, "experiments", "name", lambda v: ["exp\u202egnp"] * len(v)), "invisible"),
    "run key escaping output_dir": (lambda f: _edit_column(
        f, "runs", "run_key", lambda v: ["../../x0", *v[1:]]), "folder name of its own"),
    "run key with a slash": (lambda f: _edit_column(
        f, "runs", "run_key", lambda v: ["a/b", *v[1:]]), "folder name of its own"),
    "model with a terminal escape": (lambda f: _edit_column(
        f, "runs", "model", lambda v: ["\x1b[2J\x1b[31mmodel", *v[1:]]), "control"),
    "unknown status": (lambda f: _edit_column(
        f, "runs", "status", lambda v: ["hacked", *v[1:]]), "status"),
    "config with an unknown key": (lambda f: _edit_column(
        f, "runs", "config_json", lambda v: [json.dumps({**json.loads(v[0]), "shell": "rm"}),
                                             *v[1:]]), "keys this xlrun does not know"),
    "config with a wrong type": (lambda f: _edit_column(
        f, "runs", "config_json", lambda v: [json.dumps({**json.loads(v[0]), "train": {
            **json.loads(v[0])["train"], "lr": "fast"}}), *v[1:]]), "train.lr"),
    "config with an unknown pooling": (lambda f: _edit_column(
        f, "runs", "config_json", lambda v: [json.dumps({**json.loads(v[0]), "model": {
            **json.loads(v[0])["model"], "pooling": "exec"}}), *v[1:]]), "model.pooling"),
    "config not JSON": (lambda f: _edit_column(
        f, "runs", "config_json", lambda v: ["{not json", *v[1:]]), "not valid JSON"),
    "config nested deeply": (lambda f: _edit_column(
        f, "runs", "config_json", lambda v: ["[" * 100 + "]" * 100, *v[1:]]), "JSON object"),
    "integer out of range (train_log.step)": (lambda f: _edit_column(
        f, "train_log", "step", lambda v: [2**40, *v[1:]]), "32-bit"),
    "integer out of range (runs.seed)": (lambda f: _edit_column(
        f, "runs", "seed", lambda v: [-(2**33), *v[1:]]), "32-bit"),
    "NaN metric": (lambda f: _edit_column(
        f, "run_metrics", "value", lambda v: [math.nan, *v[1:]]), "not finite"),
    "infinite metric": (lambda f: _edit_column(
        f, "query_results", "ap", lambda v: [math.inf, *v[1:]]), "not finite"),
    "infinite loss": (lambda f: _edit_column(
        f, "train_log", "loss", lambda v: [-math.inf, *v[1:]]), "not finite"),
    "a string longer than its column": (lambda f: _edit_column(
        f, "runs", "sampler", lambda v: ["x" * 65, *v[1:]]), "more than its 64"),
    "format_version 2 declared on edited values": (lambda f: (
        _edit_column(f, "run_metrics", "value", lambda v: [0.999] * len(v)),
        _save_manifest(f, {**_manifest(f), "format_version": 2})), "--allow-unverified"),
    "one sha256 entry deleted and its file edited": (lambda f: (
        _edit_column(f, "run_metrics", "value", lambda v: [0.999] * len(v)),
        _save_manifest(f, {**_manifest(f), "sha256": {
            k: v for k, v in _manifest(f)["sha256"].items() if k != "run_metrics"}})),
        "--allow-unverified"),
    "manifest nested deeply": (lambda f: _save_manifest(
        f, {**_manifest(f), "x": json.loads("[" * 40 + "]" * 40)}), "nested"),
    "manifest nested beyond the parser": (lambda f: (f / "manifest.json").write_text(
        json.dumps(_manifest(f))[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}"),
        "nested"),
}


ON_POSTGRES = ("integer out of range (train_log.step)", "integer out of range (runs.seed)",
               "NaN metric", "infinite metric", "experiment name with a terminal escape")
"""The cases that reached Postgres before (a DataError traceback, 'Infinity' stored)."""


@pytest.mark.parametrize(("kind", "backend"), [*((k, "sqlite") for k in sorted(TAMPERS)), *(
    pytest.param(k, "postgres", marks=pytest.mark.postgres) for k in ON_POSTGRES)])
def test_imports_are_validated_like_a_submitted_spec(kind: str, backend: str, export: Path,
                                                     request: pytest.FixtureRequest) -> None:
    tamper, needle = TAMPERS[kind]
    tamper(export)
    db_url = request.getfixturevalue(f"{backend}_url")
    dst = get_engine(db_url)
    before = table_counts(dst)
    code, out = _import(export, db_url)
    assert _refused(code, out) and needle in out, out
    assert "\x1b" not in out and "\u202e" not in out
    assert table_counts(dst) == before


def test_allow_unverified_still_checks_the_checksums_it_has(export: Path, tmp_path: Path
                                                            ) -> None:
    _edit_column(export, "run_metrics", "value", lambda v: [0.999] * len(v))
    m = _manifest(export)
    m["sha256"]["run_metrics"] = "0" * 64  # edited, and its checksum no longer fits
    _save_manifest(export, {**m, "format_version": 2})
    code, out = _import(export, f"sqlite:///{tmp_path / 'd.db'}", "--allow-unverified")
    assert _refused(code, out) and "SHA-256" in out, out


def test_unfinished_runs_are_imported_inert_and_never_run_their_imported_config(
        tmp_path: Path) -> None:
    """A queued run of the export with another machine's output_dir, remote code and model
    comes in as failed without the output_dir; submitting the spec here requeues it with
    the config compiled here."""
    src = get_engine(f"sqlite:///{tmp_path / 'src.db'}")
    populate(src, "exp", finish=1)
    export_database(src, tmp_path / "x")

    def evil(values: list[object]) -> list[object]:
        out = []
        for v in values:
            c = json.loads(str(v))
            c["output_dir"] = str(tmp_path / "elsewhere")
            c["model"] = {**c["model"], "name": "evil/model", "trust_remote_code": True}
            out.append(json.dumps(c))
        return out

    _edit_column(tmp_path / "x", "runs", "config_json", evil)
    url = f"sqlite:///{tmp_path / 'dst.db'}"
    code, out = _import(tmp_path / "x", url)
    assert code == 0 and "3 unfinished there, imported as failed" in out, out
    dst = get_engine(url)
    with dst.connect() as conn:
        rows = conn.execute(text("SELECT status, config_json, error FROM runs ORDER BY id")
                            ).all()
    assert [r.status for r in rows] == ["done", "failed", "failed", "failed"]
    assert all("output_dir" not in json.loads(r.config_json) for r in rows[1:])
    assert all("submit its spec here" in r.error for r in rows[1:])
    assert store.claim_run(dst, "worker") is None  # no worker has anything to claim
    assert not (tmp_path / "elsewhere").exists()
    text_ = SPEC.format(name="exp", steps=5)
    result = store.submit_runs(dst, "exp", text_, compile_spec(parse_spec(text_)),
                               output_dir=str(tmp_path / "here"))
    assert result.requeued == 3
    with dst.connect() as conn:
        configs = [json.loads(c) for c in conn.execute(text(
            "SELECT config_json FROM runs WHERE status = 'queued'")).scalars()]
    assert len(configs) == 3
    for c in configs:
        assert c["model"]["name"] == "quickstart:tiny" and not c["model"].get("trust_remote_code")
        assert c["output_dir"] == str(tmp_path / "here")


@pytest.mark.postgres
def test_ids_near_2_31_are_remapped_and_later_submits_work(export: Path,
                                                          postgres_url: str) -> None:
    big = 2**31 - 5
    for name, column in (("experiments", "id"), ("runs", "experiment_id")):
        _edit_column(export, name, column, lambda v: [big] * len(v))
    runs = _read(export, "runs")
    old_ids = runs["id"].to_pylist()
    mapping = {old: big - i for i, old in enumerate(old_ids)}
    _edit_column(export, "runs", "id", lambda v: [mapping[x] for x in v])
    m = _manifest(export)
    m["run_rows"] = {str(mapping[int(k)]): v for k, v in m["run_rows"].items()}
    _save_manifest(export, m)
    for name in ("train_log", "batch_languages", "query_results", "run_metrics",
                 "language_clusters", "language_distances", "sampling_plan"):
        if _read(export, name).num_rows:
            _edit_column(export, name, "run_id", lambda v: [mapping[x] for x in v])
    dst = get_engine(postgres_url)
    s = import_database(dst, export)
    assert s.runs_new == 4
    with dst.connect() as conn:
        assert conn.execute(text("SELECT MAX(id) FROM runs")).scalar_one() < 100
        assert conn.execute(text("SELECT MAX(id) FROM experiments")).scalar_one() < 100
    new = populate(dst, "later", finish=0)  # later submits get ids as before
    assert len(new) == 4 and max(new) < 100


def test_concurrent_imports_skip_instead_of_failing(export: Path, db_url: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Two imports of one export at the same moment: both inside their transaction before
    either inserts (a barrier in the first insert); the second must wait and skip."""
    import threading

    from xlrun.db import transfer

    get_engine(db_url).dispose()  # migrated before the race
    barrier = threading.Barrier(2)
    real = transfer._insert_frame
    first: set[int] = set()

    def insert(conn: object, table: object, frame: object) -> int:
        if threading.get_ident() not in first:
            first.add(threading.get_ident())
            # both threads here at once is the race of the issue; a broken barrier means the
            # other import waits for this one's lock (no race can be set up)
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=3)
        return real(conn, table, frame)

    monkeypatch.setattr(transfer, "_insert_frame", insert)
    results: list[object] = []

    def one() -> None:
        engine = get_engine(db_url)
        try:
            results.append(transfer.import_database(engine, export))
        except Exception as e:  # noqa: BLE001 - the outcome under test
            results.append(e)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(r.runs_new for r in results) == [0, 4]  # type: ignore[union-attr]
    assert sorted(r.runs_skipped for r in results) == [0, 4]  # type: ignore[union-attr]
    assert _scalar(db_url, "SELECT COUNT(*) FROM runs") == 4


# ----------------------------------------------------------------------------- item 8
def test_export_refuses_a_non_empty_or_symlinked_target(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'src.db'}"
    populate(get_engine(url), "exp", finish=1)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    full = tmp_path / "full"
    full.mkdir()
    (full / "runs.parquet").symlink_to(victim)  # the case: a link inside DIR
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    for target, needle in ((full, "not empty"), (tmp_path / "link", "symbolic link")):
        res = CliRunner().invoke(main, ["db", "export", str(target), "--db", url])
        assert _refused(res.exit_code, res.output) and needle in res.output, res.output
    res = CliRunner().invoke(main, ["db", "export", str(victim), "--db", url])
    assert res.exit_code == 2 and "is a file" in res.output  # click's own check
    assert victim.read_text() == "precious" and list((tmp_path / "elsewhere").iterdir()) == []
    # a second export into the first one's folder is refused, the first stays whole
    res = CliRunner().invoke(main, ["db", "export", str(tmp_path / "a"), "--db", url])
    assert res.exit_code == 0, res.output
    before = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()}
    res = CliRunner().invoke(main, ["db", "export", str(tmp_path / "a"), "--db", url])
    assert _refused(res.exit_code, res.output)
    assert {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()} == before
    (tmp_path / "empty").mkdir()  # an empty folder is fine
    res = CliRunner().invoke(main, ["db", "export", str(tmp_path / "empty"), "--db", url])
    assert res.exit_code == 0 and (tmp_path / "empty" / "manifest.json").is_file()


def test_a_failed_export_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    import errno

    import pyarrow.parquet as pq

    url = f"sqlite:///{tmp_path / 'src.db'}"
    populate(get_engine(url), "exp", finish=1)
    real = pq.write_table
    calls = []

    def full(table: pa.Table, path: object, **kw: object) -> None:
        calls.append(path)
        if len(calls) == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(table, path, **kw)

    monkeypatch.setattr(pq, "write_table", full)
    before = sorted(p.name for p in tmp_path.iterdir())
    res = CliRunner().invoke(main, ["db", "export", str(tmp_path / "out"), "--db", url])
    assert _refused(res.exit_code, res.output) and "No space left" in res.output, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_export_masks_passwords_in_free_text(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'src.db'}"
    engine = get_engine(url)
    populate(engine, "exp", finish=1)
    with engine.begin() as conn:
        conn.execute(text("UPDATE runs SET error = 'cannot reach postgresql://u:Sekr3tPw@h/x "
                          "(host=h password=Sekr3tPw)'"))
    export_database(engine, tmp_path / "x")
    data = b"".join(p.read_bytes() for p in (tmp_path / "x").iterdir())
    errors = _read(tmp_path / "x", "runs")["error"].to_pylist()
    assert all("***" in e for e in errors) and b"Sekr3tPw" not in data


# ----------------------------------------------------------------------------- issue 26
def test_with_retrieved_round_trip(db_url: str, tmp_path: Path) -> None:
    src = get_engine(f"sqlite:///{tmp_path / 'src.db'}")
    populate(src, "exp")
    res = CliRunner().invoke(main, ["db", "export", str(tmp_path / "r"), "--db",
                                    f"sqlite:///{tmp_path / 'src.db'}", "--with-retrieved"])
    assert res.exit_code == 0 and "retrieved" in res.output, res.output
    m = _manifest(tmp_path / "r")
    assert m["omitted_tables"] == [] and "retrieved" in m["sha256"]
    assert all("retrieved" in counts for counts in m["run_rows"].values())
    top_k = "SELECT COUNT(*), SUM(score) FROM retrieved"
    want = _row(f"sqlite:///{tmp_path / 'src.db'}", top_k)
    # into a database that already holds the runs without their top-k lists
    export_database(src, tmp_path / "plain")
    dst = get_engine(db_url)
    import_database(dst, tmp_path / "plain")
    assert _scalar(db_url, "SELECT COUNT(*) FROM retrieved") == 0
    s = import_database(dst, tmp_path / "r")
    assert (s.runs_new, s.retrieved_added, s.runs_skipped) == (0, 4, 4)
    assert _row(db_url, top_k) == want
    assert import_database(dst, tmp_path / "r").retrieved_added == 0  # idempotent
    fresh = get_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert import_database(fresh, tmp_path / "r").rows["retrieved"] == want[0]
    # a tampered top-k list is refused like any other table
    _edit_column(tmp_path / "r", "retrieved", "score", lambda v: [math.nan, *v[1:]])
    with pytest.raises(UsageError, match="not finite"):
        import_database(get_engine(f"sqlite:///{tmp_path / 'f2.db'}"), tmp_path / "r")


def test_plain_exports_leave_retrieved_out(tmp_path: Path) -> None:
    src = get_engine(f"sqlite:///{tmp_path / 'src.db'}")
    populate(src, "exp", finish=1)
    export_database(src, tmp_path / "x")
    assert not (tmp_path / "x" / "retrieved.parquet").exists()
    assert _manifest(tmp_path / "x")["omitted_tables"] == ["retrieved"]
    table = _read(tmp_path / "x", "runs")
    assert pc.sum(pc.equal(table["status"], "done")).as_py() == 1


def test_export_to_an_unwritable_place(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'src.db'}"
    populate(get_engine(url), "exp", finish=1)
    targets = [tmp_path / "a_file" / "x"]
    (tmp_path / "a_file").write_text("x")
    if Path("/sys").is_dir():
        targets.append(Path("/sys/xlrun-export"))
    for target in targets:
        res = CliRunner().invoke(main, ["db", "export", str(target), "--db", url])
        assert _refused(res.exit_code, res.output) and "cannot write" in res.output, \
            res.output
    res = CliRunner().invoke(main, ["db", "export", str(tmp_path / "new" / "deeper" / "x"),
                                    "--db", url])
    assert res.exit_code == 0 and (tmp_path / "new" / "deeper" / "x" / "manifest.json"
                                   ).is_file()  # missing parents are created
