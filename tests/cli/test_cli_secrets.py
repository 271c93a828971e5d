"""No secret in any output (issue 24, item 6): a run made against a Postgres URL that carries
its password as ``?password=``, with a secret in the environment, is driven through every
command; the password and the secret appear in no output, no stored row, no exported file
and no SLURM job file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from xlrun.cli import main

PASSWORD = "Pw-9917-s3cr3t"
AWS = "aws-S3CRET-value-5531"

SPEC = """
[experiment]
name = "secrets"
output_dir = "{out}"
[model]
name = "quickstart:tiny"
{model}
[train_data]
source = "quickstart"
[train]
steps = 2
batch_size = 4
[[eval]]
dataset = "quickstart"
languages = ["en", "de"]
max_queries_per_language = 5
"""


def _with_query_password(url: str) -> str:
    u = make_url(url).set(password=None)
    return u.update_query_dict({"password": PASSWORD}).render_as_string(hide_password=False)


def _database_text(url: str) -> str:
    """Every value of every table of the database, as text."""
    engine = create_engine(url.split("?")[0])
    out = []
    with engine.connect() as conn:
        for table in inspect(engine).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                out.append(" ".join(map(str, row)))
    engine.dispose()
    return "\n".join(out)


def _files_text(folder: Path) -> str:
    return "\n".join(p.read_bytes().decode("latin-1") for p in folder.rglob("*") if p.is_file())


@pytest.mark.postgres
@pytest.mark.slow
def test_no_secret_in_any_output(postgres_url: str, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    url = _with_query_password(postgres_url)
    assert PASSWORD in url and make_url(url).password is None  # the form 8 of 9 commands leaked
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS)
    monkeypatch.setenv("XLRUN_DB", url)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    outputs: list[str] = []

    def run(*args: str, code: int | None = 0) -> str:
        res = runner.invoke(main, list(args))
        outputs.append(res.output + (repr(res.exception) if res.exception else ""))
        if code is not None:
            assert res.exit_code == code, (args, res.output)
        return res.output

    spec = tmp_path / "s.toml"
    out_dir = tmp_path / "out"
    # ${VAR} of a secret is refused, whatever the spec's [env] says
    for model in ('query_prefix = "${AWS_SECRET_ACCESS_KEY}"',
                  'query_prefix = "${XLRUN_DB}"'):
        spec.write_text(SPEC.format(out=out_dir, model=model))
        assert "looks like a secret" in run("submit", str(spec), "--no-run", code=2)
    spec.write_text("[env]\nallow = [\"AWS_SECRET_ACCESS_KEY\"]\n" + SPEC.format(out=out_dir,
                                                                                model=""))
    assert "looks like a secret" in run("submit", str(spec), "--dry-run", code=2)

    # the run, made by a SLURM job (submitit's local executor) against XLRUN_DB
    spec.write_text(SPEC.format(out=out_dir, model=""))
    run("submit", str(spec), "--no-run")
    pytest.importorskip("submitit")
    from xlrun.db.engine import get_engine
    from xlrun.db.store import get_run
    from xlrun.execute.executors.slurm import SlurmExecutor

    ex = SlurmExecutor(db_url=url, folder=tmp_path / "jobs", cluster="local", device="cpu")
    assert not any(PASSWORD in part for part in ex.command(1))
    engine = get_engine(url)
    (job,) = ex.submit(engine, [1])
    job.result()
    assert get_run(engine, 1)["status"] == "done"
    engine.dispose()

    run("status")
    run("show", "1")
    run("report", "--experiment", "secrets")
    run("sql", "SELECT id, status, error FROM runs")
    run("db", "current")
    run("db", "upgrade")
    run("db", "export", str(tmp_path / "export"))
    run("db", "import", str(tmp_path / "export"), "--db", str(tmp_path / "copy.db"))
    # failures that quote the URL: unreachable, mistyped, libpq key-value, a bad port
    bad = make_url(url).set(port=1).render_as_string(hide_password=False)
    assert "cannot reach" in run("status", "--db", bad, code=1)
    assert "not a database URL" in run(
        "status", "--db", f"postgresql+psycopg2//u:{PASSWORD}@localhost/x", code=2)
    assert "not a database URL" in run(
        "status", "--db", f"host=localhost dbname=x password={PASSWORD}", code=2)
    assert "port" in run("status", "--db", f"postgresql://u:{PASSWORD}@h:abc/x", code=2)
    assert "not a database URL" in run(
        "status", "--db", f"postgresql://u:{PASSWORD}@h:99999/x", code=2)
    monkeypatch.delenv("XLRUN_DB")
    with pytest.raises(Exception, match="XLRUN_DB"):
        SlurmExecutor(db_url=url, folder=tmp_path / "jobs2", cluster="local").submit(None, [1])

    everything = "\n".join([*outputs, _database_text(postgres_url), _files_text(tmp_path)])
    assert "secrets" in everything and "done" in everything  # the outputs are real
    assert (tmp_path / "jobs").is_dir() and any((tmp_path / "jobs").rglob("*.pkl"))
    for secret in (PASSWORD, AWS):
        assert secret not in everything, secret
    assert not [p for p in tmp_path.iterdir() if PASSWORD in p.name]
    assert os.environ.get("XLRUN_DB") is None
