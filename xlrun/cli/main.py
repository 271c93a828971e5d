"""``xlrun`` commands: submit, status, show, evaluate, db (plus langs, report, sql, worker,
db export/import from their own modules, registered at the end of this one).

Every command imports the library it calls inside its body: deferred on purpose, so that
``xlrun --help`` and the light commands start without PyTorch, polars or SQLAlchemy.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, get_args

import click

from xlrun import __version__
from xlrun.cli.common import (
    LazyChoice,
    db_option,
    handle_errors,
    print_table,
    sigterm_as_interrupt,
)
from xlrun.cli.langs import langs as langs_group
from xlrun.cli.report import report_command, sql_command
from xlrun.cli.track import track
from xlrun.cli.transfer import db_export, db_import
from xlrun.cli.trec import export_trec_command, import_run_command
from xlrun.cli.worker import worker

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from xlrun.execute.submission import Submission


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="xlrun")
def main() -> None:
    """xlrun: declarative experiments for multilingual dense retrievers.

    Write a TOML spec, `xlrun submit` it, then `xlrun status`, `xlrun report` or plain SQL.
    """


# ----------------------------------------------------------------------------- submit
_SHOWN = {"train.seed", "model.name", "sampling.strategy", "sampling.language_sampling"}


def _executor_names() -> list[str]:
    from xlrun.execute.executors import EXECUTORS

    return EXECUTORS.names()


def _pooling_names() -> tuple[str, ...]:
    from xlrun.spec.schema import Pooling

    return get_args(Pooling)


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@db_option
@click.option("--dry-run", is_flag=True,
              help="Print the run table; enqueue nothing, touch no database (an embedding "
                   "similarity's distance cache is written, and named, for the runs).")
@click.option("--device", default="auto", show_default=True,
              help="auto, cpu, cuda or cuda:N.")
@click.option("--only", "only", multiple=True, metavar="RUN_KEY",
              help="Submit and run only these run keys (repeatable).")
@click.option("--no-run", is_flag=True, help="Only enqueue; workers run the runs later.")
@click.option("--executor", type=LazyChoice(_executor_names), default=None,
              help="Where runs execute (default: [executor] kind in the spec, else local).")
@click.option("--partition", default=None, help="SLURM partition (overrides [executor]).")
@click.option("--gpus", default=None, type=int, help="GPUs per SLURM job (overrides [executor]).")
@click.option("--time-limit", default=None, type=int,
              help="SLURM time limit in minutes (overrides [executor]).")
@click.option("--yes", "yes", is_flag=True,
              help="Submit a grid larger than 1000 runs (or set experiment.max_runs).")
@handle_errors
def submit(spec: Path, db_url: str | None, dry_run: bool, device: str, only: tuple[str, ...],
           no_run: bool, executor: str | None, partition: str | None, gpus: int | None,
           time_limit: int | None, yes: bool = False) -> None:
    """Compile SPEC into runs, enqueue the new ones and execute them.

    Resubmitting a spec skips finished runs and resumes unfinished ones: a run's key is a
    hash of its fully resolved config. The data the runs use is read and checked first.
    """
    from xlrun.db.engine import get_engine
    from xlrun.execute import submission
    from xlrun.execute.progress import NullProgress, RichProgress
    from xlrun.spec.load import load_spec

    parsed = load_spec(spec)
    # read the data and build every arm's sampler now: bad data, and clusters that cannot be
    # exposure-matched, are errors before anything is written
    with RichProgress() as checks:  # a bar while an embedding similarity encodes
        sub = submission.prepare(parsed, only=only, confirmed=yes or dry_run, device=device,
                                 log=lambda msg: click.echo(msg, err=True), progress=checks)
    if dry_run:
        _print_dry_run(sub)
        return
    engine = get_engine(db_url)
    result = submission.enqueue(engine, sub)
    click.echo(f"experiment {parsed.experiment.name!r}: {len(sub.runs)} runs — {result.new} new, "
               f"{result.requeued} requeued, {result.done} already done, "
               f"{result.running} running elsewhere")
    if no_run:
        return
    runner = submission.executor_for(engine, sub, executor=executor, device=device,
                                     partition=partition, gpus_per_node=gpus,
                                     time_limit_min=time_limit)
    if not runner.runs_here:
        click.echo(runner.dispatch(engine, result.run_ids, NullProgress()).message)
        return
    sigterm_as_interrupt()
    with RichProgress() as progress:
        try:
            done = runner.dispatch(engine, result.run_ids, progress)
        except KeyboardInterrupt:
            click.echo("interrupted: the current run is back in the queue; resubmit to resume",
                       err=True)
            sys.exit(130)
    click.echo(done.message)
    if done.failed:
        for o in done.failed:
            click.echo(f"  run {o.run_id} failed: {(o.error or '').strip().splitlines()[-1]}",
                       err=True)
        sys.exit(1)


def _dry_run_writes(sub: Submission) -> list[str]:
    """What a dry run wrote for the runs to reuse (a built model's folder, an embedding
    similarity's distance cache), one line each; empty when it wrote nothing."""
    out = sub.output_dir
    lines: list[str] = []
    for path in sub.written:
        rel = path.relative_to(out) if path.is_relative_to(out) else path
        if rel.parts[:1] == (".models",) and len(rel.parts) > 2:  # a built model: its folder
            line = f"  built model: {out / Path(*rel.parts[:2])}"
        else:
            line = f"  embedding-similarity cache: {path}"
        if line not in lines:
            lines.append(line)
    return lines


def _print_dry_run(sub: Submission) -> None:
    """The run table of ``submit --dry-run`` and each clustered arm's expected shares."""
    rows = [[r.run_key, r.config.model.name if len(r.config.model.name) < 40
             else "…" + r.config.model.name[-39:], r.config.sampler,
             r.config.language_sampling or "-", r.config.clustering or "-", r.seed,
             ", ".join(f"{k}={v}" for k, v in r.overrides if k not in _SHOWN) or "-"]
            for r in sub.runs]
    written = _dry_run_writes(sub)
    print_table(f"{sub.spec.experiment.name}: {len(sub.runs)} runs (dry run, "
                + ("nothing enqueued, no database touched; wrote the files below for the runs)"
                   if written else "nothing written)"),
                ["run_key", "model", "sampler", "language_sampling", "clustering", "seed",
                 "grid values"], rows)
    for arm in sub.plans:
        clusters = "  ".join("[" + " ".join(c) + "]" for c in arm.clusters)
        print_table(f"{arm.arm}: expected share of training texts (%), random arm vs this "
                    f"arm; clusters {clusters}",
                    ["lang", "query random", "query arm", "passage random", "passage arm"],
                    arm.rows())
        for note in arm.plan.notes:
            click.echo(f"note: {note}")
    if written:
        click.echo("wrote (the runs reuse them instead of computing them again):")
        click.echo("\n".join(written))


# ----------------------------------------------------------------------------- status
@main.command()
@db_option
@click.option("--experiment", default=None, help="Only this experiment.")
@click.option("--metric", default=None,
              help="Metric column (default: the experiment's main metric, map).")
@handle_errors
def status(db_url: str | None, experiment: str | None, metric: str | None) -> None:
    """A table of runs: status, sampler, language sampling, seed, duration, main metric."""
    from xlrun.db.engine import get_engine
    from xlrun.db.queries import run_overview

    engine = get_engine(db_url, create=False)
    table = run_overview(engine, experiment, metric)
    if not table.rows:
        click.echo("no runs" + (f" in experiment {experiment!r}" if experiment else ""))
        return
    print_table(table.title, table.columns, table.rows)
    if table.footer:
        click.echo(table.footer)


# ----------------------------------------------------------------------------- show
@main.command()
@click.argument("run_id", type=int)
@db_option
@handle_errors
def show(run_id: int, db_url: str | None) -> None:
    """One run: resolved config, training summary, metrics."""
    from xlrun.db.engine import get_engine
    from xlrun.db.queries import missing, run_details

    engine = get_engine(db_url, create=False)
    d = run_details(engine, run_id)
    r = d.run
    click.echo(_shown(f"run {r['id']} ({r['experiment']}, key {r['run_key']}): {r['status']}"))
    for k in ("model", "sampler", "language_sampling", "clustering", "seed", "device", "host",
              "worker", "started_at", "finished_at", "attempts"):
        click.echo(_shown(f"  {k:18} {missing(r[k])}"))  # '-' as in `xlrun status`, never None
    if r["error"]:
        click.echo(_shown("error:\n  " + r["error"].strip().replace("\n", "\n  ")))
    config = json.loads(r["config_json"])
    config.pop("model_resolved", None)  # shown below
    click.echo("config:")
    click.echo(_shown("  " + json.dumps(config, indent=2, sort_keys=True).replace("\n", "\n  ")))
    if d.model_rows:
        print_table(f"model as loaded ({d.model_format}): each setting from the spec, the "
                    "model or xlrun's default", ["setting", "value", "from"], d.model_rows)
    if d.training:
        t = d.training
        from xlrun.cli.sparkline import sparkline

        click.echo(f"training: {t['rows']} logged rows (steps {t['first_step']}–{t['steps']}), "
                   f"loss {t['first_loss']:.4f} → {t['last_loss']:.4f} "
                   f"{sparkline(t['losses'])}, {t['examples_per_s'] or 0:.1f} examples/s")
    if d.clusters:
        click.echo("language clusters: " + "; ".join(" ".join(c) for c in d.clusters))
    if r.get("timings_json"):
        t = json.loads(r["timings_json"])
        parts = [f"{k} {v:.1f}s" for k, v in t.items()
                 if isinstance(v, int | float) and k != "total" and v >= 0.05]
        click.echo(f"time: {t.get('total', 0):.1f}s — " + ", ".join(parts))
    if d.metrics:
        print_table("metrics (mean over queries)", d.metric_columns, d.metrics)


def _shown(text: str) -> str:
    """Stored text as ``show`` prints it: passwords masked, control characters escaped."""
    from xlrun.cli.common import printable
    from xlrun.secrets import mask

    return printable(mask(text))


# ----------------------------------------------------------------------------- evaluate
@main.command()
@click.argument("model")
@click.option("--dataset", required=True, help="Evaluation dataset (xquad-r, mlqa-r, mldr, …).")
@click.option("--data-path", default="", help="Local path (or URL) of the dataset.")
@click.option("--split", default="", help="Split to evaluate (default: test; dev for miracl).")
@click.option("--revision", default="", help="Hub revision of mldr/miracl data (default: main).")
@click.option("--langs", default="", help="Comma-separated languages (default: all).")
@click.option("--settings", default="mono,cross,multi", show_default=True)
@click.option("--pooling", type=LazyChoice(_pooling_names), default=None,
              help="Default: the model's (sentence-transformers), else mean.")
@click.option("--query-prefix", default=None,
              help='e.g. "query: " (default: the model\'s query prompt, else none).')
@click.option("--passage-prefix", default=None,
              help='e.g. "passage: " (default: the model\'s document prompt, else none).')
@click.option("--max-length", default=None, type=int,
              help="Tokens per text (default: the model's lengths, else 512).")
@click.option("--trust-remote-code", is_flag=True,
              help="Let a model that ships its own modelling code run it (only if you trust it).")
@click.option("--top-k", default=100, show_default=True, type=int)
@click.option("--measures", default="",
              help='Comma-separated ir_measures names stored per query, e.g. "nDCG@10,R@1000".')
@click.option("--batch-size", default=128, show_default=True, type=int)
@click.option("--experiment", default="baselines", show_default=True,
              help="Experiment the run is stored under.")
@click.option("--device", default="auto", show_default=True)
@click.option("--mteb-results", "mteb_results", default=None, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Also write MTEB result files (DIR/results/<model>/<revision>/*.json).")
@click.option("--report-to", "report_to", default="", metavar="TRACKERS",
              help="Comma-separated trackers for the measures: tensorboard, mlflow, wandb, "
                   "mteb (options from MLFLOW_TRACKING_URI, WANDB_PROJECT, WANDB_MODE).")
@db_option
@handle_errors
def evaluate(model: str, dataset: str, data_path: str, split: str, revision: str, langs: str,
             settings: str, pooling: str | None, query_prefix: str | None,
             passage_prefix: str | None, max_length: int | None, trust_remote_code: bool,
             top_k: int, batch_size: int, experiment: str, device: str,
             db_url: str | None, mteb_results: Path | None = None, report_to: str = "",
             measures: str = "") -> None:
    """Evaluate MODEL (hub id or local path) zero-shot, store it as a run (sampler none) and
    print its measures per setting and language."""
    from xlrun.db.engine import get_engine
    from xlrun.evaluate.tasks import DATASETS
    from xlrun.execute import submission
    from xlrun.execute.progress import RichProgress
    from xlrun.spec.load import parse_spec
    from xlrun.spec.toml_writer import dumps
    from xlrun.train.st_format import is_sentence_transformers

    eval_table: dict[str, object] = {
        "dataset": dataset, "path": data_path,
        "split": split or DATASETS.get(dataset, "eval[0].dataset").default_split,
        "languages": [x for x in langs.split(",") if x],
        "settings": [x for x in settings.split(",") if x], "top_k": top_k,
        "batch_size": batch_size}
    if revision:  # only when given: an unset key leaves run keys as they were
        eval_table["revision"] = revision
    if measures:
        eval_table["measures"] = [m.strip() for m in measures.split(",") if m.strip()]
    if max_length is None and not is_sentence_transformers(model):
        max_length = 512  # a plain Hugging Face model declares no lengths
    model_table = {"name": model, "pooling": pooling, "query_prefix": query_prefix,
                   "passage_prefix": passage_prefix, "query_max_length": max_length,
                   "passage_max_length": max_length,
                   "trust_remote_code": trust_remote_code or None}
    spec_dict = {
        "experiment": {"name": experiment},
        "model": {k: v for k, v in model_table.items() if v is not None},
        "train": {"steps": 0},
        "eval": [eval_table],
    }
    tracking = _tracking_table(report_to, mteb_results)
    if tracking:
        spec_dict["tracking"] = tracking
    sub = submission.prepare(parse_spec(dumps(spec_dict), base_dir=Path.cwd()))
    engine = get_engine(db_url)
    result = submission.enqueue(engine, sub)
    with RichProgress() as progress:
        done = submission.execute(engine, sub, result.run_ids, executor="local", device=device,
                                  progress=progress)
    for o in done.outcomes:  # the executor has logged "run N: done in …s" once already
        if o.error:
            click.echo(o.error, err=True)
    if not done.outcomes:
        click.echo(f"already evaluated: run {result.run_ids[0]} (see `xlrun show "
                   f"{result.run_ids[0]}`)")
    if done.failed:
        sys.exit(1)
    _print_measures(engine, result.run_ids[0])


def _tracking_table(report_to: str, mteb_results: Path | None) -> dict[str, object]:
    """``[tracking]`` of ``xlrun evaluate``'s spec from ``--report-to`` and
    ``--mteb-results`` (empty: neither given)."""
    from xlrun.tracking import TRACKERS

    names = [x.strip() for x in report_to.split(",") if x.strip()]
    for name in names:
        if name not in TRACKERS:
            raise click.BadParameter(f"unknown tracker {name!r}; allowed: "
                                     f"{', '.join(TRACKERS.names())}", param_hint="--report-to")
    if mteb_results is not None and "mteb" not in names:
        names.append("mteb")
    table: dict[str, object] = {"report_to": list(dict.fromkeys(names))} if names else {}
    if mteb_results is not None:
        table["mteb"] = {"dir": str(mteb_results.expanduser().resolve())}
    return table


def _print_measures(engine: Engine, run_id: int) -> None:
    """A run's measures per setting and query language (4 decimals; ``xlrun sql`` gives
    them as stored)."""
    from xlrun.db.run_results import measures_table

    t = measures_table(engine, run_id)
    if not t.rows:
        click.echo(f"run {run_id} has no measures")
        return
    print_table(t.title, t.columns, [[f"{v:.4f}" if isinstance(v, float) else v for v in r]
                                     for r in t.rows])
    for note in t.notes:
        click.echo(f"note: {note}")


# ----------------------------------------------------------------------------- db
@main.group()
def db() -> None:
    """Database schema: migrate and inspect."""


@db.command("upgrade")
@db_option
@click.option("--revision", default="head", show_default=True)
@handle_errors
def db_upgrade(db_url: str | None, revision: str) -> None:
    """Apply migrations up to REVISION."""
    from xlrun.db.engine import current_revision, get_engine, upgrade

    engine = get_engine(db_url, migrate=False)
    upgrade(engine, revision)
    click.echo(_shown(f"{engine.url.render_as_string(hide_password=True)} is at revision "
                      f"{current_revision(engine)}"))


@db.command("current")
@db_option
@handle_errors
def db_current(db_url: str | None) -> None:
    """Print the database's revision and the newest one."""
    from xlrun.db.engine import current_revision, get_engine, head_revision

    engine = get_engine(db_url, migrate=False, create=False)
    cur = current_revision(engine)
    head = head_revision()
    click.echo(f"current: {cur or '(empty database)'}\nhead:    {head}"
               + ("" if cur == head else "\nrun `xlrun db upgrade` (submit, worker, evaluate and "
                                         "db import migrate too; read commands never do)"))



@db.command("reader-role")
@click.argument("name")
@db_option
@click.option("--login", is_flag=True,
              help="Let the role log in (set its password outside xlrun, e.g. psql's "
                   "\\password NAME); without it, use it through `xlrun sql --role NAME`.")
@click.option("--revoke-public", is_flag=True,
              help="Also take from PUBLIC (every role of this database): CREATE on the "
                   "schema, TEMPORARY on the database, EXECUTE on dblink's and adminpack's "
                   "functions.")
@handle_errors
def db_reader_role(name: str, db_url: str | None, login: bool, revoke_public: bool) -> None:
    """Create a Postgres role NAME that may only read xlrun's tables and views.

    The role gets SELECT on xlrun's tables and views, CONNECT and USAGE on the schema, and
    nothing else (no attribute, no CREATE, no other role). `xlrun sql --role NAME` runs
    queries as it (SET ROLE); with --login, point XLRUN_SQL_DB at a URL that logs in as it
    for a guarantee that needs no trust in xlrun. Running it again re-grants (e.g. after
    `xlrun db upgrade` added tables). See docs/sql.md.
    """
    from xlrun.db.engine import get_engine
    from xlrun.db.roles import check_role_name, create_reader_role, require_postgres

    check_role_name(name)
    engine = get_engine(require_postgres(db_url), migrate=False)
    try:
        role = create_reader_role(engine, name, login=login, revoke_public=revoke_public)
    finally:
        engine.dispose()
    click.echo(f"role {role.name} {'created' if role.created else 'updated'} "
               f"({'LOGIN' if role.login else 'NOLOGIN'}): SELECT on {len(role.relations)} "
               f"xlrun tables and views in schema {role.schema}, nothing else")
    for r in role.revoked:
        click.echo(f"revoked from PUBLIC: {r}")
    for note in role.public_notes:
        click.echo(f"note: through PUBLIC's defaults {note}; --revoke-public takes it from "
                   "PUBLIC", err=True)
    if role.login:
        click.echo(f"set its password (psql: \\password {role.name}), then: "
                   f"export XLRUN_SQL_DB=postgresql://{role.name}@HOST/DATABASE")
    click.echo(f"use it: xlrun sql --role {role.name} \"SELECT …\"  "
               f"(or export XLRUN_SQL_ROLE={role.name})")

main.add_command(langs_group)
main.add_command(report_command)
main.add_command(sql_command)
main.add_command(worker)
main.add_command(track)
main.add_command(export_trec_command)
main.add_command(import_run_command)
db.add_command(db_export)
db.add_command(db_import)
