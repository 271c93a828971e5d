"""``xlrun sql`` cannot write, on Postgres and SQLite, whatever quoting tricks the text uses.

The three statements that wrote on Postgres before (issue 17), a list of further attacks,
and a hypothesis fuzz that builds statements from quoting fragments (dollar quotes, E''
escapes, nested comments, identifiers holding ``$``) followed by ``; COMMIT; DELETE …``:
every outcome is exit 0 or exit 2 with an ``Error:`` line, and no table changes.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, text

from xlrun.cli.report import sql_command
from xlrun.db.engine import get_engine
from xlrun.db.models import Experiment, Run, RunMetric, TrainLog
from xlrun.errors import UsageError

TABLES = ("experiments", "runs", "train_log", "run_metrics")


def _populate(engine: Engine) -> None:
    with engine.begin() as conn:
        exp = conn.execute(insert(Experiment).values(name="e", spec_toml="")
                           .returning(Experiment.id)).scalar_one()
        for seed in (1, 2):
            rid = conn.execute(insert(Run).values(
                experiment_id=exp, run_key=f"k{seed}", status="done",
                config_json=json.dumps({}), model="m", sampler="hybrid", seed=seed)
                .returning(Run.id)).scalar_one()
            conn.execute(insert(TrainLog), [{"run_id": rid, "step": s, "loss": 1.0 / s,
                                             "lr": 1e-5} for s in range(1, 6)])
            conn.execute(insert(RunMetric), [
                {"run_id": rid, "dataset": "d", "split": "test", "setting": "cross",
                 "query_lang": "en", "doc_lang": lang, "metric": "map", "value": 0.5}
                for lang in ("de", "fr", "ru")])


def _state(engine: Engine) -> dict[str, object]:
    with engine.connect() as conn:
        out: dict[str, object] = {t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
                                  for t in TABLES}
        out["statuses"] = sorted(conn.execute(text("SELECT status FROM runs")).scalars())
        out["experiments"] = sorted(conn.execute(text("SELECT name FROM experiments")).scalars())
    return out


@pytest.fixture
def pg(postgres_url: str):
    engine = get_engine(postgres_url)
    _populate(engine)
    yield postgres_url, engine
    engine.dispose()


@pytest.fixture
def lite(sqlite_url: str):
    engine = get_engine(sqlite_url)
    _populate(engine)
    yield sqlite_url, engine
    engine.dispose()


def _sql(url: str, query: str):
    return CliRunner().invoke(sql_command, [query, "--db", url, "--format", "csv"])


ISSUE_ATTACKS = [
    "select 1 as a$b$; commit; delete from run_metrics",
    "select 1 as a$b$; commit; update runs set status='queued'; select 1",
    "select E'\\''; commit; delete from train_log; select 'x'",
]
MORE_ATTACKS = [
    "select 1; commit; delete from run_metrics",
    "select $$;$$; commit; delete from run_metrics",
    "select $a$ $b$ ; $a$; commit; delete from run_metrics",
    "select 1 as x$y; commit; delete from run_metrics; select 1",
    "select 'it''s'; commit; delete from run_metrics",
    "select e'\\\\'; commit; delete from run_metrics",
    "select U&'\\0041'; commit; delete from run_metrics",
    "select /* /* nested */ ; */ 1; commit; delete from run_metrics",
    "select \"a;\"\"b\" from (select 1 as \"a;\"\"b\") t; commit; delete from run_metrics",
    "commit; delete from run_metrics",
    "rollback; delete from run_metrics",
    "set default_transaction_read_only = off",
    "set session characteristics as transaction read write",
    "reset all",
    "begin read write",
    "do $$ begin delete from run_metrics; end $$",
    "call nothing()",
    "copy run_metrics to stdout",
    "with d as (delete from run_metrics returning 1) select count(*) from d",
    "explain analyze delete from run_metrics",
    "select set_config('transaction_read_only', 'off', true), "
    "(select count(*) from run_metrics)",
    "select nextval(pg_get_serial_sequence('runs', 'id'))",
    "table run_metrics; delete from run_metrics",
    "values (1); commit; truncate run_metrics",
    "select 1 -- ; commit; delete from run_metrics\n; delete from run_metrics",
    "select 'a'\n'b'; commit; delete from run_metrics",
    "select x'1f'; commit; delete from run_metrics",
    "select 1 as \"$b$\"; commit; delete from run_metrics",
    "select 1 as a$$; commit; delete from run_metrics",
    "select 1e$b$; commit; delete from run_metrics",
]


@pytest.mark.postgres
@pytest.mark.parametrize("attack", ISSUE_ATTACKS + MORE_ATTACKS)
def test_postgres_attacks_change_nothing(pg, attack: str) -> None:
    url, engine = pg
    before = _state(engine)
    res = _sql(url, attack)
    assert res.exit_code in (0, 2), (attack, res.output)
    if res.exit_code == 2:
        assert res.output.startswith("Error:") and "Traceback" not in res.output
    assert _state(engine) == before, attack


@pytest.mark.postgres
@pytest.mark.parametrize("attack", ISSUE_ATTACKS)
def test_the_issue_statements_are_refused_before_reaching_the_server(pg, attack: str) -> None:
    url, _ = pg
    res = _sql(url, attack)
    assert res.exit_code == 2 and "exactly one statement" in res.output, res.output


@pytest.mark.postgres
def test_postgres_queries_still_work(pg) -> None:
    url, _ = pg
    ok = {
        "select count(*) as n from run_metrics": ["n", "6"],
        "select 1 as a$b$": ["a$b$", "1"],
        "select E'\\';' as s;": ["s", "';"],
        "select $t$ ; commit; $t$ as s": ["s", " ; commit; "],
        "select 'a;b' as s -- trailing; comment": ["s", "a;b"],
        "/* a /* nested */ comment; */ select 2 as n": ["n", "2"],
        "with x as (select 3 as n) select n from x": ["n", "3"],
        "values (4)": ["column1", "4"],
        "show standard_conforming_strings": ["standard_conforming_strings", "on"],
    }
    for query, want in ok.items():
        res = _sql(url, query)
        assert res.exit_code == 0, (query, res.output)
        assert res.stdout.splitlines() == want, (query, res.stdout)


@pytest.mark.parametrize("attack", ISSUE_ATTACKS + MORE_ATTACKS)
def test_sqlite_attacks_change_nothing(lite, attack: str) -> None:
    url, engine = lite
    before = _state(engine)
    res = _sql(url, attack)
    assert res.exit_code in (0, 2), (attack, res.output)
    assert _state(engine) == before, attack


# ----------------------------------------------------------------------------- fuzz
VALID_ITEMS = [
    "1 as a$b$", "1 as x$", "1 as a$$", '2 as "$b$"', '3 as "a;b"', '4 as "a""$q$"',
    "'it''s;'", "E'\\''", "E'\\\\'", "e'a\\'b;'", "E'$b$'", "'$b$'", "'\\'", "$$;$$",
    "$q$ ' ; $q$", "$b$x$b$", "$a$ $b$ ; $a$", "U&'\\0041;'", "x'1f'", "B'01'",
    "/* /* nested */ ; */ 4", "5 -- c; 'x\n", "'a' -- ;\n", "1e3", ".5", "(select 6)",
]
"""Select-list items Postgres accepts, each a quoting trick (identifiers holding ``$``,
E'' escapes, dollar quotes, nested comments, quotes and ``;`` inside strings)."""
FRAGMENTS = [
    "$b$", "$$", "$a$", "a$b$", "x$", "$1", "'", "''", "E'", "e'\\'", "\\'", "\\", "\"",
    '""', "U&'", "/*", "*/", "--", "\n", ";", " ", "(", ")", "1", "'x'", "$b$x$b$",
    "E'\\\\'", '"a$b$"', "`", "[", "]", "x'", "N'", "B'0'",
]
PAYLOADS = ["; commit; delete from run_metrics",
            "; commit; update runs set status='queued'; select 1",
            "; rollback; delete from train_log; select 'x'",
            "; set default_transaction_read_only=off; commit; delete from runs",
            "; commit; drop table train_log"]


@st.composite
def tricky(draw: st.DrawFn) -> str:
    """Mostly a valid first statement built from quoting tricks, then a writing payload (what
    a wrong tokenizer lets through); sometimes random fragments (never a traceback)."""
    if draw(st.integers(0, 3)):
        items = draw(st.lists(st.sampled_from(VALID_ITEMS), min_size=1, max_size=4))
        head = "select " + ", ".join(items)
    else:
        head = draw(st.sampled_from(["select 1 as ", "select ", "select '", "values ("]))
        head += "".join(draw(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=6)))
    tail = draw(st.sampled_from(["", "", "; select 'x'", " -- end"]))
    return head + draw(st.sampled_from(PAYLOADS)) + tail


@pytest.mark.postgres
def test_postgres_fuzz_of_quoting_tricks_never_writes(pg) -> None:
    url, engine = pg
    before = _state(engine)
    tried: list[str] = []

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(tricky())
    def attack(sql: str) -> None:
        tried.append(sql)
        res = _sql(url, sql)
        assert res.exit_code in (0, 2), (sql, res.output)
        assert "Traceback" not in res.output

    attack()
    assert len(tried) >= 100
    assert _state(engine) == before


@pytest.mark.postgres
def test_tokenizer_agrees_with_the_server_on_statement_count(pg) -> None:
    """Where Postgres parses a text (PQprepare), our tokenizer finds one statement exactly
    when the server does: the client-side check is no weaker than the server's."""
    from xlrun.report.readonly import _libpq_prepare, split_statement

    _url, engine = pg
    funcs = _libpq_prepare()
    if funcs is None:
        pytest.skip("psycopg2's libpq is not reachable")
    prepare, status, message, clear = funcs
    raw = engine.raw_connection()
    conn = raw.driver_connection
    conn.autocommit = True
    disagree = []

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(tricky())
    def compare(sql: str) -> None:
        res = prepare(conn.pgconn_ptr, b"", sql.encode(), 0, None)
        server_one = status(res) == 1
        clear(res)
        try:
            split_statement(sql, "postgresql")
            ours_one = True
        except UsageError:
            ours_one = False
        if server_one and not ours_one:
            return  # we refuse something the server would have run: safe
        if ours_one and not server_one:
            # the server refused it: a syntax error is fine, several statements is not
            res = prepare(conn.pgconn_ptr, b"", sql.encode(), 0, None)
            msg = message(res) or b""
            clear(res)
            if b"multiple commands" in msg:
                disagree.append(sql)

    try:
        compare()
    finally:
        raw.invalidate()
    assert not disagree, disagree[:5]


def test_tokenizer_units() -> None:
    from xlrun.report.readonly import check_read_only, split_statement, tokenize

    kinds = [(t.kind, t.text) for t in tokenize("select 1 as a$b$; x", "postgresql")]
    assert ("word", "a$b$") in kinds and ("semicolon", ";") in kinds
    assert [t.kind for t in tokenize("E'\\';'", "postgresql")] == ["string"]
    assert [t.kind for t in tokenize("$q$ ' ; $q$", "postgresql")] == ["string"]
    # SQLite has no dollar quotes or backslash escapes
    assert [t.kind for t in tokenize("'\\'", "sqlite")] == ["string"]
    assert check_read_only("select 1;  -- done", "sqlite") == "select 1"
    for bad in ("select 'open", "select /* open", "select $x$ open"):
        with pytest.raises(UsageError, match="unterminated"):
            split_statement(bad, "postgresql")
    for refused in ("COMMIT", "set x = 1", "  ( begin"):
        with pytest.raises(UsageError, match="read-only"):
            check_read_only(refused, "postgresql")


@pytest.fixture(params=["psycopg2", "psycopg", "pg8000"])
def pg_driver(request, pg):
    """The populated Postgres database reached through each driver xlrun supports there."""
    url, engine = pg
    if request.param != "psycopg2":
        pytest.importorskip(request.param)
        url = url.replace("postgresql+psycopg2://", f"postgresql+{request.param}://", 1)
    return url, engine


LAYER_3_BYPASS = [  # turn the session's read-only default off, then write in a new transaction
    "select 1; commit; set default_transaction_read_only = off; "
    "set session characteristics as transaction read write; commit; delete from run_metrics",
    "select 1; rollback; set default_transaction_read_only = off; "
    "set session characteristics as transaction read write; commit; "
    "update runs set status = 'queued'",
]


@pytest.mark.postgres
@pytest.mark.parametrize("attack", LAYER_3_BYPASS + ISSUE_ATTACKS + MORE_ATTACKS[:10])
def test_the_server_refuses_several_statements_without_the_tokenizer(
        pg_driver, attack: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Layer 2 on its own, per driver: with the client-side tokenizer switched off, the
    server still runs no second statement (psycopg2: PQprepare; pg8000: prepare_statement;
    psycopg 3: a server-side prepared statement) and the database does not change."""
    from xlrun.report import readonly

    url, engine = pg_driver
    monkeypatch.setattr(readonly, "check_read_only", lambda sql, *a, **k: sql)
    before = _state(engine)
    res = _sql(url, attack)
    assert _state(engine) == before, attack
    if ";" in attack.rstrip().rstrip(";") and "--" not in attack:
        assert res.exit_code == 2, (attack, res.output)
    assert "Traceback" not in res.output


@pytest.mark.postgres
def test_every_driver_reads(pg_driver) -> None:
    url, _ = pg_driver
    res = _sql(url, "select status, count(*) as n from runs group by status")
    assert res.exit_code == 0, res.output
    assert "done,2" in res.output
