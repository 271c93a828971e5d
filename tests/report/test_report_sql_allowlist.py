"""``xlrun sql`` parses each query with sqlglot and lets it call only allow-listed functions
(issue 24 item 1); text it cannot parse is "could not parse", not "refused" (issue 26).

These tests need no server: the checks run before anything is opened, and the SQLite cases
run through the CLI. The Postgres attacks through side-effecting functions are in
``test_report_sql_functions.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from xlrun.cli.report import sql_command
from xlrun.db.engine import get_engine
from xlrun.errors import UsageError
from xlrun.report.allowlist import ALLOWED, ALLOWED_FUNCTIONS
from xlrun.report.readonly import check_read_only

DOCS = Path(__file__).resolve().parents[2] / "docs" / "sql.md"


def _doc_queries() -> list[str]:
    """The SQL blocks of docs/sql.md and every `xlrun sql "…"` of the README and
    docs/results.md."""
    out = re.findall(r"```sql\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    for path in (DOCS.parents[1] / "README.md", DOCS.parent / "results.md"):
        if path.exists():
            out += re.findall(r'xlrun sql "(.*?)"', path.read_text(encoding="utf-8"), re.S)
    return out


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_every_query_in_the_docs_is_accepted(dialect: str) -> None:
    queries = _doc_queries()
    assert len(queries) >= 20
    for q in queries:
        check_read_only(q, dialect)


ACCEPTED = [
    "SELECT 2e-5 AS lr, 0.123456789 AS x",
    "select count(*), avg(ap), stddev_samp(ap) from query_results group by run_id",
    "select row_number() over (partition by run_id order by ap desc) as r from query_results",
    "select percentile_cont(0.5) within group (order by ap) from query_results",
    "select count(*) filter (where ap > 0.5) from query_results",
    "select json_extract(config_json, '$.train.lr') from runs",
    "select config_json::jsonb -> 'train' ->> 'lr' from runs",
    "select cast(seed as text), seed::numeric(10, 2), round(ap::numeric, 3) from runs, "
    "query_results",
    "select date_trunc('day', created_at), extract(epoch from now()) from runs",
    "with recursive c(x) as (select 1 union all select x + 1 from c where x < 5) "
    "select sum(x) from c",
    "select * from (values (1, 'a'), (2, 'b')) as t(n, s)",
    "select coalesce(clustering, '-'), nullif(seed, 0), greatest(1, 2) from runs",
    "select lower(model), upper(model), substr(model, 1, 3), length(model) from runs",
    "select * from generate_series(1, 3) as g(x)",
    "select pg_catalog.lower('A')",
    'select "lower"(\'A\')',
    "(select 1) union all (select 2) order by 1",
    "explain select * from runs",
    "explain (analyze, format json) select 1",
    "table runs",
    "values (1)",
]


@pytest.mark.parametrize("query", ACCEPTED)
def test_reading_queries_are_accepted(query: str) -> None:
    check_read_only(query, "postgresql")


FUNCTIONS_REFUSED = [
    "select dblink_exec('dbname=x', 'delete from run_metrics')",
    "select * from dblink('dbname=x', 'delete from runs returning 1') as t(x int)",
    "select lo_export(1, '/tmp/x')",
    "select lo_import('/etc/passwd')",
    "select lo_create(0)",
    "select pg_file_write('x', 'y', false)",
    "select pg_create_physical_replication_slot('s')",
    "select pg_terminate_backend(123)",
    "select pg_cancel_backend(123)",
    "select pg_read_file('PG_VERSION')",
    "select pg_ls_dir('.')",
    "select set_config('role', 'postgres', false)",
    "select nextval('runs_id_seq')",
    "select setval('runs_id_seq', 1)",
    "select pg_advisory_lock(1)",
    "select txid_current()",
    "select pg_notify('c', 'x')",
    "select query_to_xml('delete from run_metrics returning 1', true, false, '')",
    "select pg_sleep(100)",
    "select pg_reload_conf()",
    "select count(*) from runs where dblink_exec('x', 'y') = 'OK'",
    "select (select dblink_exec('x', 'y'))",
    "with x as (select dblink_exec('x', 'y') as r) select * from x",
    "select public.dblink_exec('x', 'y')",
    "select public.lower('x')",  # a look-alike in a schema of its own
    'select "dblink_exec"(\'x\', \'y\')',
    "select pg_catalog.pg_terminate_backend(1)",
    "select dblink_exec /* c */ ('x', 'y')",
    "select DBLINK_EXEC('x', 'y')",
    "select 1 from runs r where r.id in (select lo_unlink(1))",
    "explain analyze select dblink_exec('x', 'y')",
    "select xmltable('/a' passing '<a/>' columns x int)",
    "select current_setting('data_directory')",
    "select load_extension('x')",
    "select writefile('/tmp/x', 'y')",
]


@pytest.mark.parametrize("query", FUNCTIONS_REFUSED)
@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_functions_off_the_allow_list_are_refused(query: str, dialect: str) -> None:
    with pytest.raises(UsageError) as e:
        check_read_only(query, dialect)
    msg = str(e.value)
    assert "allow-list" in msg or "schema of its own" in msg or "could not parse" in msg, msg


STATEMENTS_REFUSED = {
    "with d as (delete from run_metrics returning 1) select count(*) from d": "DELETE",
    "with u as (update runs set seed = 1 returning 1) select * from u": "UPDATE",
    "select * into stolen from runs": "INTO",
    "select * from runs for update": "FOR UPDATE",
    "explain analyze delete from run_metrics": "EXPLAIN DELETE",
    "copy run_metrics to '/tmp/x'": "read-only",
    "delete from runs": "read-only",
    "set role postgres": "read-only",
}


@pytest.mark.parametrize("query, needle", STATEMENTS_REFUSED.items())
def test_statements_that_write_are_refused(query: str, needle: str) -> None:
    with pytest.raises(UsageError, match="read-only") as e:
        check_read_only(query, "postgresql")
    assert needle in str(e.value)


UNPARSEABLE = ["SELEC 1", "select from where", "select (1", "select 'open", "select 1 +",
               "frobnicate the table", "select /* open", "select $x$ open"]


@pytest.mark.parametrize("query", UNPARSEABLE)
@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_unparseable_text_says_could_not_parse(query: str, dialect: str) -> None:
    if dialect == "sqlite" and "$x$" in query:
        pytest.skip("SQLite has no dollar quotes")
    with pytest.raises(UsageError, match="could not parse") as e:
        check_read_only(query, dialect)
    assert "refused" not in str(e.value)


def test_the_quoting_of_both_tokenizers_must_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """A call hidden in what one tokenizer takes for a string is refused: where sqlglot
    would read other words than the server's tokenizer, the query is not run."""
    from xlrun.report import allowlist

    # make sqlglot's words differ from ours, as a lexer bug would
    real = allowlist.sqlglot_words
    monkeypatch.setattr(allowlist, "sqlglot_words", lambda toks: real(toks)[:-1])
    with pytest.raises(UsageError, match="could not parse.*quoting"):
        check_read_only("select 1 as x", "postgresql")


def test_the_list_is_documented() -> None:
    """docs/sql.md names every allowed function."""
    text = DOCS.read_text(encoding="utf-8")
    missing = [f for f in sorted(ALLOWED) if f"`{f}`" not in text]
    assert not missing, missing
    assert set(ALLOWED_FUNCTIONS) >= {"aggregates", "window", "math", "string", "date/time",
                                      "JSON accessors", "casts and types"}


# ----------------------------------------------------------------------------- CLI
@pytest.fixture
def lite(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    get_engine(url).dispose()
    return url


def _sql(url: str, query: str, *args: str):
    return CliRunner().invoke(sql_command, [query, "--db", url, *args])


def test_cli_says_could_not_parse_for_a_typo(lite: str) -> None:
    res = _sql(lite, "SELEC 1")
    assert res.exit_code == 2
    assert res.output.startswith("Error: could not parse") and "refused" not in res.output


@pytest.mark.parametrize("query", ["select load_extension('/tmp/x.so')",
                                   "select writefile('/tmp/x', 'y')",
                                   "select randomblob(1000000000)",
                                   "select * from pragma_table_info('runs')"])
def test_cli_refuses_sqlite_functions_off_the_list(lite: str, query: str) -> None:
    res = _sql(lite, query)
    assert res.exit_code == 2 and "allow-list" in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1
