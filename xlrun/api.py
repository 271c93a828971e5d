"""The Python API for notebooks: read a results database into DataFrames and reports.

.. code-block:: python

    import xlrun

    res = xlrun.connect("sqlite:///xlrun.db")        # a URL or a path; opened read-only
    res.experiments()                                # one row per experiment
    res.runs(experiment="quickstart", where={"sampler": "hybrid"})
    q = res.query_results(experiment="quickstart", setting="cross")   # one row per query
    rep = res.report(by="setting", experiment="quickstart", compare="arm")
    rep.table        # exactly the columns and numbers of `xlrun report ... --format json`
    rep.notes        # what the report decided (the CLI's `note:` lines)
    rep.wide()       # the paper table (`--layout wide`)
    rep.to_latex()   # booktabs LaTeX (`--format latex --layout wide`)
    rep.plot("cross.png"); rep.to_html("quickstart.html")

Everything is read through the report code the CLI runs, so a number here is the number
``xlrun report`` prints. The database is opened read-only (a SQLite file through a ``mode=ro``
URI, Postgres in read-only transactions): nothing is created, migrated or written. The API
never prints; errors a user can act on are :class:`~xlrun.errors.UsageError` s with the
CLI's messages. DataFrames are polars by default; ``dataframe="pandas"`` (on
:func:`connect` or on a call) gives pandas.

Per-query rows are read without building a Python object per row: the database concatenates
each run × language pair's values into one text, which polars splits (about a thousand rows
cross the driver for a million results; see :func:`xlrun.report.frames.load_query_results`).
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from xlrun.db.engine import check_not_newer, current_revision, explain_db_error, resolve_url
from xlrun.db.queries import EXPERIMENT_COLUMNS, RUN_COLUMNS, experiment_rows, run_rows
from xlrun.errors import UsageError
from xlrun.report.build import Report, ReportRequest, build_report, plot_report
from xlrun.report.frames import (
    METRICS,
    ReportFilter,
    WhereClause,
    apply_where,
    load_report_frame,
    parse_where,
)
from xlrun.report.inference import InferenceConfig
from xlrun.report.layout import layout_table
from xlrun.report.readonly import readonly_engine
from xlrun.report.render import json_frame, render
from xlrun.spec.schema import arm_label

if TYPE_CHECKING:
    import pandas as pd

    Frame = pl.DataFrame | pd.DataFrame
    """A ``polars.DataFrame`` or, with ``dataframe="pandas"``, a ``pandas.DataFrame``."""

DataFrameKind = Literal["polars", "pandas"]

Where = str | Sequence[str] | Mapping[str, Any] | None
"""Run filters as the CLI's ``--where``: ``"sampler=hybrid"``, a list of such strings
(``KEY!=VALUE`` excludes), or a mapping ``{"sampler": "hybrid", "seed": [1, 2]}`` (a list
keeps runs matching any of its values)."""

DEFAULT_COLUMNS: tuple[str, ...] = ("ap", "ndcg_at_10", "mrr_at_10", "recall_at_100")
"""The ``query_results`` columns :meth:`Results.query_results` reads unless told."""


def _where(where: Where) -> tuple[WhereClause, ...]:
    """``where`` as ``--where`` clauses.

    Raises:
        UsageError: a string without ``=`` or a mapping value that is not a scalar or list.
    """
    if where is None:
        return ()
    if isinstance(where, str):
        return parse_where([where])
    if isinstance(where, Mapping):
        items: list[str] = []
        for key, value in where.items():
            values = value if isinstance(value, (list, tuple, set)) else [value]
            for v in values:
                if isinstance(v, (dict, list, tuple, set)):
                    raise UsageError(f"where={{{key!r}: …}}: expected a value or a list of "
                                     f"values, got {v!r}")
                text = "null" if v is None else ("true" if v is True else "false"
                                                 if v is False else str(v))
                items.append(f"{key}={text}")
        return parse_where(items)
    return parse_where(list(where))


def _frame(df: pl.DataFrame, kind: DataFrameKind) -> Frame:
    if kind == "polars":
        return df
    if kind == "pandas":
        return df.to_pandas()
    raise UsageError(f"unknown dataframe kind {kind!r}; allowed: polars, pandas")


def _column(name: str) -> str:
    """A ``query_results`` column, or a ``--metric`` name (``map`` → ``ap``)."""
    return METRICS.get(name, name)


@dataclass(frozen=True)
class ReportResult:
    """A computed report, as ``xlrun report`` computes it.

    Attributes:
        report: the report itself (``frame`` at full precision, ``meta``, ``request``).
    """

    report: Report
    results: Results = field(repr=False)
    dataframe: DataFrameKind = "polars"

    @property
    def kind(self) -> str:
        """``summary``, ``compare``, ``regress``, ``bias`` or ``exposure``."""
        return self.report.kind

    @property
    def title(self) -> str:
        """The one-line title the CLI prints above the table."""
        return self.report.title

    @property
    def notes(self) -> tuple[str, ...]:
        """What the report decided that a reader must know (the CLI's ``note:`` lines)."""
        return self.report.notes

    @property
    def meta(self) -> dict[str, Any]:
        """The ``meta`` object of ``--format json``."""
        return self.report.meta

    @property
    def request(self) -> ReportRequest:
        """What was asked, with the baseline that was used."""
        return self.report.request

    @property
    def table(self) -> Frame:
        """The report's rows with exactly the columns and values of ``--format json``
        (floats rounded to 6 places, p-values to 6 significant digits; the unrounded values
        are in ``report.frame``)."""
        return _frame(json_frame(self.report.frame), self.dataframe)

    def wide(self) -> Frame:
        """The paper table of ``--layout wide`` (entries are text: mean, difference ±
        half-interval, marks; its legend is :meth:`legend`).

        Raises:
            UsageError: a report without a wide form (``by="run"``, exposure pairs).
        """
        return _frame(layout_table(self.report, "wide").frame, self.dataframe)

    def legend(self, layout: str = "wide") -> str | None:
        """What the entries and marks of ``layout``'s table mean."""
        return layout_table(self.report, layout).legend

    def render(self, fmt: str = "table", layout: str = "long") -> str:
        """The text ``xlrun report --format FMT --layout LAYOUT`` prints to stdout."""
        table = layout_table(self.report, layout)
        meta = self.meta if layout == "long" else {**self.meta, "layout": layout,
                                                   "legend": table.legend}
        legend = table.legend if layout == "wide" or fmt == "latex" else None
        return render(table.frame, fmt, title=table.title, meta=meta, legend=legend,
                      notes=self.notes, labels=table.labels)

    def to_latex(self, path: str | os.PathLike[str] | None = None,
                 layout: str = "wide") -> str:
        """A booktabs LaTeX table (caption: title and legend; notes as a footnote); also
        written to ``path`` when given."""
        text = self.render("latex", layout)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def plot(self, path: str | os.PathLike[str]) -> Path:
        """Write the report's plot (``xlrun report --plot``) to ``path`` (PNG); its path.

        Raises:
            UsageError: a report that has no plot (several datasets in one report).
        """
        if self.kind == "exposure":
            from xlrun.report.exposure import plot_exposure

            return Path(plot_exposure(self.report, path))
        return Path(plot_report(self.report, path))

    def to_html(self, path: str | os.PathLike[str]) -> Path:
        """Write the self-contained HTML page of this report's request (``xlrun report
        --html``) to ``path``; its path.

        Raises:
            UsageError: this xlrun has no HTML page writer.
        """
        try:
            from xlrun.report.html import write_page  # type: ignore[import-not-found]
        except ImportError as e:
            raise UsageError("this xlrun cannot write HTML pages (xlrun.report.html is "
                             "missing)") from e
        return Path(write_page(self.results.engine, self.request, Path(path)))

    def _repr_html_(self) -> str:
        """How a notebook shows the report: title, table, notes."""
        table = json_frame(self.report.frame)
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (f"<p><b>{html.escape(self.title)}</b></p>{table._repr_html_()}"
                + (f"<p>notes:</p><ul>{notes}</ul>" if notes else ""))

    def __repr__(self) -> str:
        return self.render("table") + "".join(f"note: {n}\n" for n in self.notes)


class Results:
    """A results database, opened read-only (:func:`connect`).

    Use it as a context manager, or call :meth:`close` when done.
    """

    def __init__(self, engine: Engine, dataframe: DataFrameKind = "polars",
                 url: str | None = None) -> None:
        self.engine = engine
        self.dataframe: DataFrameKind = dataframe
        self._url = url or engine.url.render_as_string(hide_password=True)

    @property
    def url(self) -> str:
        """The database URL, its password hidden."""
        return self._url

    def __repr__(self) -> str:
        return f"xlrun.Results({self.url!r})"

    def __enter__(self) -> Results:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def experiments(self, *, dataframe: DataFrameKind | None = None) -> Frame:
        """One row per experiment: ``experiment, description, created_at, runs, done,
        running, queued, failed``."""
        with self.engine.connect() as conn:
            rows = experiment_rows(conn)
        schema = {"experiment": pl.String, "description": pl.String,
                  "created_at": pl.Datetime("us"), **dict.fromkeys(EXPERIMENT_COLUMNS[3:],
                                                                   pl.Int64)}
        return _frame(pl.DataFrame(rows, schema=schema, orient="row"),
                      dataframe or self.dataframe)

    def runs(self, experiment: str | None = None, *, where: Where = None,
             status: str | Sequence[str] | None = None,
             dataframe: DataFrameKind | None = None) -> Frame:
        """One row per run (any status unless ``status`` says): ``run_id, experiment,
        run_key, status, model, sampler, language_sampling, clustering, arm, seed, device,
        host, started_at, finished_at, attempts, error, config_json``.

        ``arm`` is the whole arm (``hybrid/size``, ``hybrid/clustered[…]``, ``none``: what
        ``compare="arm"`` compares); ``where`` filters like ``--where``.

        Raises:
            UsageError: an unknown experiment, or a ``where`` key no run has.
        """
        with self.engine.connect() as conn:
            rows = run_rows(conn, experiment)
        schema: dict[str, Any] = dict.fromkeys(RUN_COLUMNS, pl.String)
        schema.update(run_id=pl.Int64, seed=pl.Int64, attempts=pl.Int64,
                      started_at=pl.Datetime("us"), finished_at=pl.Datetime("us"))
        df = pl.DataFrame(rows, schema=schema, orient="row")
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            df = df.filter(pl.col("status").is_in(wanted))
        df = apply_where(df, _where(where))
        arms = pl.Series("arm", [arm_label(*r) for r in df.select(
            "sampler", "language_sampling", "clustering").iter_rows()], dtype=pl.String)
        df = df.insert_column(df.columns.index("clustering") + 1, arms)
        return _frame(df, dataframe or self.dataframe)

    def query_results(self, experiment: str | None = None, *, setting: str | None = None,
                      dataset: str | None = None, split: str | None = None,
                      where: Where = None, columns: Sequence[str] | None = None,
                      dataframe: DataFrameKind | None = None) -> Frame:
        """One row per query result of the finished runs: the run's columns (``run_id,
        run_key, seed, model, sampler, language_sampling, clustering, experiment, arm``),
        the result's keys (``dataset, split, setting, query_lang, doc_lang, query_id``) and
        ``columns`` (``query_results`` columns or metric names: ``map`` is ``ap``; default
        :data:`DEFAULT_COLUMNS`).

        Raises:
            UsageError: an unknown experiment or column, a bad ``where``, or no results.
        """
        wanted = [_column(c) for c in (columns if columns is not None else DEFAULT_COLUMNS)]
        filt = ReportFilter(experiment=experiment, dataset=dataset, setting=setting,
                            split=split, where=_where(where))
        with self.engine.connect() as conn:
            df = load_report_frame(conn, filt, wanted, "arm")
        return _frame(df, dataframe or self.dataframe)

    def report(self, by: str = "language-pair", *, experiment: str | None = None,
               dataset: str | None = None, setting: str | None = None,
               split: str | None = None, where: Where = None, metric: str = "map",
               compare: str | None = None, baseline: str | None = None,
               regress: bool = False, distance_source: str | None = None,
               terms: Sequence[str] = (), bias: bool = False, exposure: Literal["languages", "pairs"] | None = None,
               top: int = 10, test: str = "seed", permutations: int = 10_000, seed: int = 0,
               dataframe: DataFrameKind | None = None) -> ReportResult:
        """The report ``xlrun report`` computes for the same options (keyword for flag:
        ``by="setting"`` is ``--by setting``, ``compare="arm"`` is ``--compare arm``,
        ``exposure="languages"`` is ``--exposure languages``, ``terms=["distance_to_training"]``
        is ``--term distance_to_training``, …).

        Raises:
            UsageError: what the CLI would refuse, with its message.
        """
        req = ReportRequest(
            by=by, filter=ReportFilter(experiment=experiment, dataset=dataset, setting=setting,
                                       split=split, where=_where(where)),
            metric=metric, compare=compare, baseline=baseline, regress=regress, bias=bias,
            distance_source=distance_source,
            tests=InferenceConfig(test=test, n_permutations=permutations,  # type: ignore[arg-type]
                                  seed=seed), terms=tuple(terms))
        if exposure is not None:
            from xlrun.report.exposure import build_exposure

            rep = build_exposure(self.engine, req, exposure, top)
        else:
            rep = build_report(self.engine, req)
        return ReportResult(rep, self, dataframe or self.dataframe)


def connect(url: str | os.PathLike[str] | None = None, *,
            dataframe: DataFrameKind = "polars") -> Results:
    """Open a results database read-only.

    Args:
        url: a database URL (``sqlite:///xlrun.db``, ``postgresql+psycopg2://user@host/db``)
            or a SQLite file path; default ``$XLRUN_DB``, else ``sqlite:///xlrun.db``.
        dataframe: ``polars`` (default) or ``pandas``: what the methods return.

    Raises:
        UsageError: a bad URL, no database file, a database that is not xlrun's or was
            written by a newer xlrun.
    """
    if dataframe not in ("polars", "pandas"):
        raise UsageError(f"unknown dataframe kind {dataframe!r}; allowed: polars, pandas")
    resolved = resolve_url(os.fspath(url) if url is not None else None)
    engine = readonly_engine(resolved)
    try:
        check_not_newer(engine)
        if current_revision(engine) is None:
            raise UsageError(f"{engine.url.render_as_string(hide_password=True)} holds no "
                             "xlrun results (no schema revision); run `xlrun submit` into it "
                             "first")
    except DBAPIError as e:
        engine.dispose()
        known = explain_db_error(e, engine)
        if known is None:
            raise
        raise known from e
    except BaseException:
        engine.dispose()
        raise
    return Results(engine, dataframe, make_url(resolved).render_as_string(hide_password=True))


__all__ = ["DEFAULT_COLUMNS", "ReportResult", "Results", "connect"]
