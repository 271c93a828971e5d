"""``xlrun report`` (tables, comparisons, regressions, plots) and ``xlrun sql`` (read-only).

The commands import the report code inside their bodies: deferred on purpose, so that the
CLI starts without polars, SciPy or SQLAlchemy (flag choices come from :mod:`.choices` and,
lazily, from the registry of tests).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING

import click

from xlrun.cli.common import LazyChoice, LazyHelpOption, db_option
from xlrun.cli.common import handle_errors as _handle_errors
from xlrun.errors import UsageError
from xlrun.report.choices import BY, FORMATS, LAYOUTS, METRICS

if TYPE_CHECKING:
    from xlrun.report.build import ReportRequest


def _test_names() -> list[str]:
    from xlrun.report.statistics import TESTS

    return TESTS.names()


def _test_help() -> str:
    from xlrun.report.statistics import TESTS

    return " ".join(f"'{name}': {test.summary}." for name, test in TESTS.items())


def _emit(text: str, out: str | None) -> None:
    if out:
        from xlrun.files import write_output

        write_output(out, text.encode("utf-8"), "--out")
    else:
        click.echo(text, nl=False)


@click.command("report")
@click.option("--by", "by", default="language-pair", show_default=True,
              type=click.Choice(list(BY)), help="What a row (cell) of the report is.")
@click.option("--experiment", default=None, help="Experiment name (default: all).")
@click.option("--dataset", default=None, help="Evaluation dataset (default: all).")
@click.option("--setting", default=None, help="mono, cross or multi (default: all).")
@click.option("--split", default=None, help="Evaluation split (default: all).")
@click.option("--metric", default="map", show_default=True,
              help=f"{', '.join(METRICS)}, or a measure the runs stored by its ir_measures "
                   "name ([[eval]] measures), e.g. nDCG@100 or R@1000 (AP, RR@10 and R@100 "
                   "are also read from the ap, mrr_at_10 and recall_at_100 columns).")
@click.option("--where", "where", multiple=True, metavar="KEY=VALUE",
              help="Keep only runs with KEY=VALUE (or KEY!=VALUE); repeatable. KEY is a runs "
                   "column (sampler, language_sampling, clustering, model, seed) or a dotted "
                   "config key (train.lr=2e-5); numbers compare as numbers, 'null' matches a "
                   "missing value. Different keys must all match; the same key repeated keeps "
                   "runs matching any of its values.")
@click.option("--compare", default=None, metavar="KEY",
              help="What the arms are: 'arm' (the whole arm, sampler/language_sampling"
                   "[clustering], e.g. hybrid/size), sampler, language_sampling, clustering, "
                   "model, or a dotted config key such as train.lr.")
@click.option("--baseline", default=None,
              help="Baseline arm value, e.g. hybrid/size with --compare arm (default, said in "
                   "a note: the random-language hybrid arm hybrid/size; else the one arm that "
                   "draws languages by size; else the untrained model none; else the first in "
                   "sorted order).")
@click.option("--format", "fmt", default="table", show_default=True,
              type=click.Choice(list(FORMATS)),
              help="latex: a booktabs table, its caption saying what the numbers and marks "
                   "are, the notes as a footnote.")
@click.option("--layout", default="long", show_default=True, type=click.Choice(list(LAYOUTS)),
              help="wide: the paper table: arms × cells with mean (difference ± interval) and "
                   "marks; --by language-pair: the pair matrix (rows query language, columns "
                   "document language); --regress: estimate ± interval per term.")
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="Write the report to FILE instead of stdout.")
@click.option("--plot", default=None, type=click.Path(dir_okay=False),
              help="Also write a PNG plot (heatmap for language pairs, bars otherwise).")
@click.option("--regress", is_flag=True,
              help="Regression: metric ~ arm × language distance + same_cluster + language "
                   "fixed effects, fitted on language-pair means with random unordered-pair "
                   "effects (pair terms judged against how much unordered pairs differ beyond "
                   "their languages, arm terms against seed and question variance).")
@click.option("--distance-source", default=None,
              help="language_distances.source for --regress (default: the first stored, in "
                   "sorted order; distances stored by other runs of the experiment are used "
                   "when the analysed runs have none).")
@click.option("--term", "terms", multiple=True, type=click.Choice(["distance_to_training"]),
              help="--regress: add a term; distance_to_training = each language's distance "
                   "to the nearest language the runs trained on, on the query side and on the "
                   "document side (language-level terms with random language effects).")
@click.option("--bias", is_flag=True,
              help="Language bias in the multilingual pool: rank distance (mean with interval, "
                   "median, divided by the pool size) and same-language preference per arm.")
@click.option("--exposure", type=click.Choice(["languages", "pairs"]), is_flag=False,
              flag_value="languages", default=None,
              help="What each arm trained on (from batch_languages): 'languages' (the default "
                   "for a bare --exposure) shows each language's share of query and passage "
                   "texts; 'pairs' the most frequent language pairs with their epochs (how "
                   "many times the average parallel id was seen).")
@click.option("--curves", is_flag=True,
              help="Training loss per arm over steps (from train_log): the mean over the arm's "
                   "runs with their SD, min and max; --plot draws the curves with the min–max "
                   "band over seeds.")
@click.option("--html", "html", default=None, type=click.Path(dir_okay=False),
              help="Write one self-contained HTML page to FILE (overview, arms × settings with "
                   "a forest plot, language-pair heatmaps, distance regression, bias, "
                   "exposure, training curves, per-query drill-down; the same filters, "
                   "--compare (default arm), --baseline, --metric and --test). It opens "
                   "offline: every script, style and datum is inside.")
@click.option("--top", default=10, show_default=True, type=click.IntRange(0),
              help="--exposure pairs: pairs shown per arm and batch kind (0 = all).")
@click.option("--test", "test", default="seed", show_default=True,
              type=LazyChoice(_test_names), cls=LazyHelpOption, help_text=_test_help)
@click.option("--permutations", default=10_000, show_default=True, type=click.IntRange(100),
              help="Sign flips of the question-only randomization test (--test query).")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of the sign flips (--test query).")
@db_option
@_handle_errors
def report_command(by: str, experiment: str | None, dataset: str | None, setting: str | None,
                   split: str | None, metric: str, where: tuple[str, ...], compare: str | None,
                   baseline: str | None,
                   fmt: str, layout: str, out: str | None, plot: str | None, regress: bool,
                   distance_source: str | None, bias: bool, exposure: str | None, top: int,
                   test: str, permutations: int, seed: int, db_url: str | None,
                   curves: bool = False, html: str | None = None,
                   terms: tuple[str, ...] = ()) -> None:
    """Per-cell metrics, or arm comparisons with seed-aware tests, from the results database.

    With --compare, each delta gets an interval and a p-value from one model that treats
    seeds (paired across arms) and questions as random (t on Satterthwaite degrees of
    freedom), so an interval excludes 0 exactly when p < 0.05. Translations of a question
    count once. See docs/statistics.md.

    \b
    Examples:
      xlrun report --experiment quickstart --setting cross --compare arm --baseline hybrid/size
      xlrun report --by query-language --where sampler=hybrid --compare language_sampling
      xlrun report --by setting --compare arm --layout wide --format latex --out table.tex
      xlrun report --regress --compare arm --setting cross --plot coefs.png
      xlrun report --exposure --experiment quickstart --baseline hybrid/size
      xlrun report --curves --experiment quickstart --plot loss.png
      xlrun report --html quickstart.html --experiment quickstart --baseline hybrid/size
    """
    from xlrun.files import check_output_file, write_rendered
    from xlrun.report.build import ReportRequest, build_report, plot_report
    from xlrun.report.frames import ReportFilter, engine_for, parse_where
    from xlrun.report.inference import InferenceConfig
    from xlrun.report.render import render

    for option, path in (("--out", out), ("--plot", plot)):
        if path:  # a missing or unwritable path is an error before any work
            check_output_file(path, option)

    req = ReportRequest(
        by=by, filter=ReportFilter(experiment=experiment, dataset=dataset, setting=setting,
                                   split=split, where=parse_where(where)),
        metric=metric, compare=compare, baseline=baseline, regress=regress, bias=bias,
        distance_source=distance_source,
        tests=InferenceConfig(test=test, n_permutations=permutations,  # type: ignore[arg-type]
                              seed=seed), terms=tuple(terms))
    if html is not None:
        views = [flag for flag, on in (("--regress", regress), ("--bias", bias),
                                       ("--exposure", exposure is not None),
                                       ("--curves", curves), ("--plot", plot is not None),
                                       ("--out", out is not None)) if on]
        if views:
            raise UsageError(f"--html writes every view into one page; leave out "
                             f"{', '.join(views)}")
        _write_html(req, db_url, html)
        return
    engine = engine_for(db_url)
    try:
        if curves:
            from xlrun.report.curves import build_curves

            rep = build_curves(engine, req)
        elif exposure is not None:
            from xlrun.report.exposure import build_exposure

            rep = build_exposure(engine, req, exposure, top)
        else:
            rep = build_report(engine, req)
    finally:
        engine.dispose()
    if plot:  # first: a plot that cannot be written fails the command before any output
        if rep.kind == "exposure":
            from xlrun.report.exposure import plot_exposure

            write_rendered(plot, lambda tmp: plot_exposure(rep, tmp), "--plot")
        elif rep.kind == "curves":
            from xlrun.report.curves import plot_curves

            write_rendered(plot, lambda tmp: plot_curves(rep, tmp), "--plot")
        else:
            write_rendered(plot, lambda tmp: plot_report(rep, tmp), "--plot")
    from xlrun.report.layout import layout_table

    table = layout_table(rep, layout)
    meta = rep.meta if layout == "long" else {**rep.meta, "layout": layout,
                                              "legend": table.legend}
    legend = table.legend if layout == "wide" or fmt == "latex" else None
    _emit(render(table.frame, fmt, title=table.title, meta=meta, legend=legend,
                 notes=rep.notes, labels=table.labels), out)
    for note in rep.notes:
        click.echo(f"note: {note}", err=True)
    if plot:
        click.echo(f"wrote {plot}", err=True)


def _write_html(req: ReportRequest, db_url: str | None, path: str) -> None:
    """``--html``: write the page and say where (and how big) it is."""
    from xlrun.report.frames import engine_for

    try:
        from xlrun.report.html import write_page
    except ModuleNotFoundError as exc:  # plotly is an optional dependency (the html extra)
        if exc.name != "plotly":
            raise
        raise UsageError("--html needs plotly: pip install 'xlrun[html]' (or plotly)") from exc
    engine = engine_for(db_url)
    try:
        out = write_page(engine, req, path)
    finally:
        engine.dispose()
    click.echo(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)", err=True)


@click.command("sql")
@click.argument("query")
@click.option("--format", "fmt", default="table", show_default=True,
              type=click.Choice(["table", "csv", "json"]),
              help="csv and json print every value as stored; the table rounds numbers to 4 "
                   "decimals (and says so).")
@click.option("--limit", default=None, type=click.IntRange(0), metavar="N",
              help="Print at most N rows; the query stops reading there.")
@click.option("--timeout", "timeout_s", default=None, metavar="SECONDS",
              type=click.FloatRange(0, min_open=True), help="Cancel the query after SECONDS.")
@click.option("--role", default=None, envvar="XLRUN_SQL_ROLE", metavar="NAME",
              help="Postgres: run the query as this role (SET ROLE), e.g. one made by "
                   "`xlrun db reader-role NAME` (default: $XLRUN_SQL_ROLE).")
@click.option("--db", "db_url", default=None, metavar="URL",
              help="Database URL (default: $XLRUN_SQL_DB, else $XLRUN_DB, else "
                   "sqlite:///xlrun.db). A plain path means SQLite.")
@_handle_errors
def sql_command(query: str, fmt: str, limit: int | None, timeout_s: float | None,
                role: str | None, db_url: str | None) -> None:
    """Run ONE read-only SQL query against the results database and print the rows.

    The query is parsed (sqlglot) and may call only allow-listed functions; rows are
    streamed, so any result size fits in memory. See docs/sql.md.
    """
    from xlrun.report.readonly import open_readonly, unique_columns
    from xlrun.report.sql_output import write_rows

    url = db_url or os.environ.get("XLRUN_SQL_DB") or None
    role_from_env = (click.get_current_context().get_parameter_source("role")
                     == click.core.ParameterSource.ENVIRONMENT)
    try:
        with open_readonly(query, url, role=role or None, timeout_s=timeout_s,
                           role_needs_postgres=not role_from_env) as rows:
            names, renamed = unique_columns(rows.columns)
            written = write_rows(fmt, names, rows.batches, lambda t: click.echo(t, nl=False),
                                 limit=limit)
    except BrokenPipeError:
        _stdout_gone()
        return
    if renamed:
        click.echo("note: repeated column names renamed: "
                   + ", ".join(f"{new} ({old})" for new, old in renamed.items()), err=True)
    if written.rounded:
        click.echo("note: numbers are rounded to 4 decimals in this table; --format csv or "
                   "json prints them as stored", err=True)
    if written.truncated:
        click.echo(f"note: stopped after {limit} rows (--limit); the query has more",
                   err=True)


def _stdout_gone() -> None:
    """The reader of stdout went away (``xlrun sql … | head``): stop quietly, and keep
    Python from complaining when it flushes stdout at exit."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
