"""``xlrun report --by language``: one cell per language, each marked as seen or unseen in
training, with the pools of seen and unseen languages.

**Cells.** A result row belongs to the language of each of its sides: ``de → en`` counts for
``de`` and for ``en``, ``de → de`` for ``de``, and ``de → all`` (the multilingual pool) for
``de``. Within a cell, a run's value for a question is the mean of its rows there (as in every
report), so a question counts once however many of its rows a language has.

**Seen and unseen.** What a run trained on comes from ``batch_languages`` (what its sampler
did, not what its spec asked for): a language is trained on the query side when some batch
had queries in it, on the passage side when some batch had passages in it. Per arm (its runs
together) each language is ``trained`` ``q+p``, ``q``, ``p`` or ``-``, and its ``status`` is
``seen`` (trained on some side) or ``unseen``; without ``--compare`` the status is over all
selected runs that trained (``mixed`` when they disagree). Arms that do not train (``none``)
have no status.

**Pools.** Two more cells: ``[seen]`` holds the rows whose languages are all seen by every
trained arm, ``[unseen]`` the rows with a language no trained arm saw (``de → en`` with ``de``
unseen is an unseen row); a row with a language only some arms trained is in neither (a note
counts them). These are what ``--compare arm`` contrasts when it asks whether an arm helps
the languages it never trained on.

**Nearest training cluster.** For a clustered arm, each language's nearest cluster is the one
at the smallest average distance (the linkage of ``sampling.linkage = "average"``) under the
arm's own similarity source, and ``cluster_distance`` is that average distance (for a seen
language: its own cluster, the average distance to the other members). Distances come from
the source itself for sources that need no model (``uriel:*``, ``script``, ``family``, sums of
them), else from what the runs stored (``embedding``: training languages only); a language
the source has no data for (URIEL without typology) gets none, and a note says so.

**Distance to training** (``xlrun report --regress --term distance_to_training``): each
language's distance to the nearest language the analysed runs trained on, as two
language-level terms of the regression (:class:`TrainingDistance`; ``docs/statistics.md``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy import Connection, func, select

from xlrun.db.models import BatchLanguages
from xlrun.errors import SpecError, UsageError
from xlrun.langsim.distances import distance_matrix, needs_context
from xlrun.report.frames import load_clusters, load_distances, load_run_configs
from xlrun.report.regression import Covariate

SEEN, UNSEEN = "[seen]", "[unseen]"
"""The two pooled cells."""
STATUS_COLUMNS: tuple[str, ...] = ("trained", "status", "nearest_cluster", "cluster_distance")
"""Columns :func:`annotate` adds after a ``language`` cell."""
POOL = "all"


def training_sides(conn: Connection, run_ids: Sequence[int]) -> pl.DataFrame:
    """``run_id, lang, query, passage``: the languages each run trained on, per side (from
    ``batch_languages``; a run without recorded batches has no rows)."""
    t = BatchLanguages.__table__
    rows = conn.execute(select(t.c.run_id, t.c.query_lang, t.c.doc_lang, func.sum(t.c.pairs))
                        .where(t.c.run_id.in_(list(run_ids)))
                        .group_by(t.c.run_id, t.c.query_lang, t.c.doc_lang)).all()
    d = pl.DataFrame([tuple(r) for r in rows], orient="row", schema={
        "run_id": pl.Int64, "query_lang": pl.String, "doc_lang": pl.String, "pairs": pl.Int64})
    d = d.filter(pl.col("pairs") > 0)
    q = d.select("run_id", pl.col("query_lang").alias("lang")).unique().with_columns(
        pl.lit(True).alias("query"))
    p = d.select("run_id", pl.col("doc_lang").alias("lang")).unique().with_columns(
        pl.lit(True).alias("passage"))
    return (q.join(p, on=["run_id", "lang"], how="full", coalesce=True)
            .fill_null(False).sort("run_id", "lang"))


def explode(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` with a ``language`` column: each row once per language of its sides (see the
    module docstring)."""
    by_query = df.with_columns(pl.col("query_lang").alias("language"))
    other = (df.filter((pl.col("doc_lang") != POOL) & (pl.col("doc_lang") != pl.col("query_lang")))
             .with_columns(pl.col("doc_lang").alias("language")))
    return pl.concat([by_query, other])


def _sides(trained: pl.DataFrame, run_ids: Sequence[int]) -> dict[str, str]:
    """language → ``q+p`` / ``q`` / ``p`` over the runs ``run_ids`` (any run's side counts)."""
    part = trained.filter(pl.col("run_id").is_in(list(run_ids)))
    out = {}
    for lang, q, p in part.group_by("lang").agg(pl.col("query").any(), pl.col("passage").any()
                                                ).iter_rows():
        out[lang] = "q+p" if q and p else "q" if q else "p"
    return out


Distance = Callable[[str, Sequence[str]], "list[float] | None"]


def distance_fn(source: str, langs: Sequence[str], stored: pl.DataFrame | None = None
                ) -> Distance:
    """``fn(lang, others)`` → the distances from ``lang`` to ``others`` under ``source``, for
    languages among ``langs`` (``None`` when the source has no data for one of them). A
    source that needs no model is computed once over ``langs``; an ``embedding`` source is
    read from ``stored`` (``query_lang, doc_lang, distance``)."""
    if not needs_context(source):
        usable = []
        for lang in dict.fromkeys(langs):
            with contextlib.suppress(UsageError):  # no data for it (URIEL without typology)
                distance_matrix(source, [lang])
                usable.append(lang)
        dm = distance_matrix(source, usable) if usable else None

        def computed(lang: str, others: Sequence[str]) -> list[float] | None:
            if dm is None or lang not in dm.langs or any(o not in dm.langs for o in others):
                return None
            return [dm.get(lang, o) for o in others]
        return computed
    table = {(a, b): d for a, b, d in stored.iter_rows()} if stored is not None else {}

    def from_table(lang: str, others: Sequence[str]) -> list[float] | None:
        vals = [0.0 if o == lang else table.get((lang, o)) for o in others]
        return None if any(v is None for v in vals) else [float(v) for v in vals]  # type: ignore[arg-type]
    return from_table


def _label(members: Sequence[str]) -> str:
    shown = " ".join(members[:4])
    return f"[{shown}{' …' if len(members) > 4 else ''}]" + (
        f" ({len(members)})" if len(members) > 4 else "")


def nearest_clusters(langs: Sequence[str], clusters: Sequence[Sequence[str]],
                     distance: Distance) -> dict[str, tuple[str, float | None]]:
    """language → (its nearest cluster's label, the average distance to its members); a
    language in a cluster gets that cluster (average distance to the other members)."""
    out: dict[str, tuple[str, float | None]] = {}
    for lang in langs:
        own = next((c for c in clusters if lang in c), None)
        if own is not None:
            others = [m for m in own if m != lang]
            d = distance(lang, others) if others else [0.0]
            out[lang] = (_label(own), None if d is None else sum(d) / len(d))
            continue
        best: tuple[str, float | None] = ("", None)
        for c in clusters:
            d = distance(lang, c)
            if d is None:
                best = ("", None)
                break
            mean = sum(d) / len(d)
            if best[1] is None or mean < best[1]:
                best = (_label(c), mean)
        out[lang] = best
    return out


class LanguageStatus:
    """Seen/unseen marks of a ``--by language`` report (see the module docstring)."""

    def __init__(self, conn: Connection, df: pl.DataFrame, compare: bool) -> None:
        self.notes: list[str] = []
        run_ids = df["run_id"].unique().sort().to_list()
        trained = training_sides(conn, run_ids)
        trained_runs = set(trained["run_id"].unique().to_list())
        langs = sorted(set(df["query_lang"].to_list())
                       | (set(df["doc_lang"].to_list()) - {POOL}))
        groups: dict[str, list[int]] = {}
        arm_of = dict(df.select("run_id", "arm").unique().iter_rows()) if compare else {}
        for rid in run_ids:
            groups.setdefault(arm_of.get(rid, ""), []).append(rid)
        self.rows: list[dict[str, Any]] = []
        seen_by: list[set[str]] = []
        for arm, ids in sorted(groups.items()):
            mine = [r for r in ids if r in trained_runs]
            if not mine:
                continue
            sides = _sides(trained, mine)
            seen_by.append(set(sides))
            near = self._clusters(conn, df, mine, langs)
            for lang in langs:
                cluster, dist = near.get(lang, (None, None))
                self.rows.append({"arm": arm, "language": lang,
                                  "trained": sides.get(lang, "-"),
                                  "status": "seen" if lang in sides else "unseen",
                                  "nearest_cluster": cluster or None,
                                  "cluster_distance": dist})
        if not compare and len({frozenset(s) for s in seen_by}) > 1:
            self.notes.append("the selected runs trained on different languages: a language "
                              "trained by some of them only is 'mixed' (use --compare arm)")
        self.seen = set.intersection(*seen_by) if seen_by else set()
        self.unseen = set(langs) - set.union(*seen_by) if seen_by else set()
        self.trained_any = bool(seen_by)
        if not seen_by:
            self.notes.append("no selected run recorded training batches (untrained runs, or "
                              "runs older than batch_languages): every language is unmarked")

    def _clusters(self, conn: Connection, df: pl.DataFrame, run_ids: list[int],
                  langs: list[str]) -> dict[str, tuple[str, float | None]]:
        stored = load_clusters(conn, run_ids)
        if stored.height == 0 or set(stored["run_id"].to_list()) != set(run_ids):
            return {}  # not clustered (or runs of clustered and other arms pooled)
        per_run = {rid: sorted(sorted(g["lang"].to_list()) for _, g in
                               part.group_by("cluster"))
                   for (rid,), part in stored.group_by("run_id")}
        rid = min(per_run)
        clusters = per_run[rid]
        if any(c != clusters for c in per_run.values()):
            self.notes.append(f"runs {', '.join(map(str, sorted(per_run)))} trained with "
                              f"different clusters: nearest clusters are those of run {rid}")
        source = _similarity(conn, rid)
        if source is None or source == "manual":
            return {lang: (_label(c), None) for c in clusters for lang in c}
        frame = pl.DataFrame(schema={"query_lang": pl.String, "doc_lang": pl.String,
                                     "distance": pl.Float64})
        if needs_context(source):  # a model's distances: only what the runs stored
            with contextlib.suppress(UsageError):  # none stored: no distances
                frame = load_distances(conn, [rid], source).frame
        universe = sorted({*langs, *(m for c in clusters for m in c)})
        near = nearest_clusters(langs, clusters, distance_fn(source, universe, frame))
        missing = [lang for lang, (_, d) in near.items() if d is None]
        if missing:
            self.notes.append(f"no {source} distance for {len(missing)} language(s) "
                              f"({', '.join(missing[:8])}{', …' if len(missing) > 8 else ''}): "
                              "their nearest cluster is left empty (URIEL has no typology for "
                              "them, or an embedding source stored distances of the training "
                              "languages only)")
        return near

    def frame(self, compare: bool) -> pl.DataFrame:
        """``[arm,] language`` and :data:`STATUS_COLUMNS` (one row per cell)."""
        schema = {"arm": pl.String, "language": pl.String, "trained": pl.String,
                  "status": pl.String, "nearest_cluster": pl.String,
                  "cluster_distance": pl.Float64}
        rows = pl.DataFrame(self.rows, schema=schema, orient="row")
        if not compare:
            rows = rows.group_by("language").agg(
                pl.col("trained").unique().sort(),
                pl.col("status").unique(),
                pl.col("nearest_cluster").first(), pl.col("cluster_distance").first())
            rows = rows.with_columns(
                pl.when(pl.col("trained").list.len() == 1).then(pl.col("trained").list.first())
                .otherwise(pl.lit("mixed")).alias("trained"),
                pl.when(pl.col("status").list.len() == 1).then(pl.col("status").list.first())
                .otherwise(pl.lit("mixed")).alias("status"))
        pools = [{"language": SEEN, "status": "seen"}, {"language": UNSEEN, "status": "unseen"}]
        extra = [{**p, "arm": a} for a in (rows["arm"].unique().to_list() if compare else [None])
                 for p in pools] if self.trained_any else []
        if extra:
            rows = pl.concat([rows, pl.DataFrame(extra, schema={
                k: schema[k] for k in ("language", "status", "arm")}, orient="row")
                .select([c for c in rows.columns if c in ("arm", "language", "status")])],
                how="diagonal")
        return rows if compare else rows.drop("arm", strict=False)

    def pools(self, df: pl.DataFrame) -> pl.DataFrame:
        """The rows of the two pooled cells (``language`` = ``[seen]`` / ``[unseen]``)."""
        if not self.trained_any:
            return df.clear().with_columns(pl.lit(None, pl.String).alias("language"))
        langs = [pl.col("query_lang"), pl.col("doc_lang")]
        unseen = pl.any_horizontal(*[c.is_in(sorted(self.unseen)) for c in langs])
        seen = pl.all_horizontal(*[c.is_in(sorted(self.seen)) | (c == POOL) for c in langs])
        mixed = df.filter(~unseen & ~seen).height
        if mixed:
            self.notes.append(f"{mixed} result row(s) have a language that only some arms "
                              f"trained on: they are in neither {SEEN} nor {UNSEEN}")
        return pl.concat([df.filter(seen).with_columns(pl.lit(SEEN).alias("language")),
                          df.filter(unseen).with_columns(pl.lit(UNSEEN).alias("language"))])


def _similarity(conn: Connection, run_id: int) -> str | None:
    cfg = json.loads(load_run_configs(conn, [run_id])[run_id])
    return cfg.get("sampling", {}).get("similarity")


def by_language(conn: Connection, df: pl.DataFrame, compare: bool
                ) -> tuple[pl.DataFrame, Callable[[pl.DataFrame], pl.DataFrame], list[str]]:
    """The rows of a ``--by language`` report (each row under its languages, plus the two
    pools), a function that adds the marks to the computed frame, and notes."""
    status = LanguageStatus(conn, df, compare)
    rows = pl.concat([explode(df), status.pools(df)], how="vertical_relaxed")
    marks = status.frame(compare)

    def annotate(frame: pl.DataFrame) -> pl.DataFrame:
        if "language" not in frame.columns:
            return frame
        keys = ["arm", "language"] if compare and "arm" in frame.columns else ["language"]
        m = marks if keys == ["arm", "language"] else marks.drop("arm", strict=False).unique(
            "language", keep="first")
        out = frame.join(m, on=keys, how="left")
        at = out.columns.index("language") + 1
        cols = [c for c in out.columns if c not in STATUS_COLUMNS]
        return out.select([*cols[:at], *[c for c in STATUS_COLUMNS if c in out.columns],
                           *cols[at:]])

    return rows, annotate, status.notes


TRAINING_TERMS: tuple[str, ...] = ("distance_to_training",)
"""Extra terms ``xlrun report --regress --term`` accepts."""


def _registered(source: str) -> bool:
    """Whether ``source`` is a distance source xlrun can compute (no model needed)."""
    try:
        return not needs_context(source)
    except (SpecError, UsageError):  # e.g. distances written by another tool
        return False


@dataclass(frozen=True)
class TrainingDistance:
    """``distance_to_training`` for ``--regress``: each language's distance to the nearest
    language the analysed runs trained on (0 for a trained language), under the regression's
    distance source; ``distances`` the pair distances the regression uses (the stored ones,
    and those the source computes for evaluated pairs the runs did not store)."""

    values: dict[str, float]
    trained: tuple[str, ...]
    distances: pl.DataFrame
    notes: tuple[str, ...] = ()

    def covariates(self, pairs: Sequence[tuple[str, str]]) -> tuple[Covariate, ...]:
        """The query-side and document-side terms, with their arm interactions."""
        q = np.array([self.values[x] for x, _ in pairs], dtype=np.float64)
        d = np.array([self.values[y] for _, y in pairs], dtype=np.float64)
        return (Covariate("distance_to_training[query]", "query_lang", q, by_arm=True),
                Covariate("distance_to_training[doc]", "doc_lang", d, by_arm=True))


def training_distance(conn: Connection, df: pl.DataFrame, source: str,
                      stored: pl.DataFrame) -> TrainingDistance:
    """Each evaluated language's distance to the nearest trained language (see
    :class:`TrainingDistance`). The trained languages are those of every analysed run that
    recorded training batches (either side), together; distances are the stored ones
    (``query_lang, doc_lang, distance``, symmetric), else computed from ``source`` when it
    needs no model.

    Raises:
        UsageError: no analysed run recorded training batches.
    """
    trained_rows = training_sides(conn, df["run_id"].unique().to_list())
    trained = tuple(sorted(set(trained_rows["lang"].to_list())))
    if not trained:
        raise UsageError("--term distance_to_training needs trained runs: no analysed run "
                         "recorded training batches (batch_languages)")
    notes: list[str] = []
    per_run = {frozenset(g["lang"].to_list()) for _, g in trained_rows.group_by("run_id")}
    if len(per_run) > 1:
        notes.append("the analysed runs trained on different languages: distance_to_training "
                     f"is the distance to the nearest of all of them ({', '.join(trained)})")
    pairs = df.filter(pl.col("doc_lang") != POOL).select("query_lang", "doc_lang").unique()
    langs = sorted({*pairs["query_lang"].to_list(), *pairs["doc_lang"].to_list()})
    table = {(a, b): d for a, b, d in stored.iter_rows()}
    compute = (distance_fn(source, sorted({*langs, *trained})) if _registered(source)
               else None)

    def dist(a: str, b: str) -> float | None:
        if a == b:
            return 0.0
        if (a, b) in table:
            return float(table[(a, b)])
        got = compute(a, [b]) if compute is not None else None
        return None if got is None else float(got[0])

    values: dict[str, float] = {}
    for lang in langs:
        ds = [dist(lang, t) for t in trained]
        if any(d is None for d in ds):
            continue
        values[lang] = min(float(d) for d in ds)  # type: ignore[arg-type]
    missing = [lang for lang in langs if lang not in values]
    if missing:
        notes.append(f"no {source} distance from {', '.join(missing[:8])}"
                     f"{', …' if len(missing) > 8 else ''} to the trained languages: their "
                     "pairs are left out of the regression")
    filled = []
    for x, y in pairs.iter_rows():
        if (x, y) not in table and x in values and y in values:
            d = dist(x, y)
            if d is not None:
                filled.append((x, y, d))
    frame = stored
    if filled:
        frame = pl.concat([stored, pl.DataFrame(filled, schema=stored.schema, orient="row")])
        notes.append(f"{len(filled)} evaluated language pair(s) had no stored {source} "
                     "distance (runs store those of their training languages): computed from "
                     "the source")
    return TrainingDistance(values, trained, frame, tuple(notes))
