"""``xlrun langs``: language distances, clusters and the known similarity sources.

The commands import the language-similarity code inside their bodies: deferred on purpose,
so that the CLI starts without numpy, SciPy or PyTorch."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from xlrun.cli.common import handle_errors, print_table
from xlrun.errors import UsageError

F = TypeVar("F", bound=Callable[..., Any])

FORMATS = ["table", "csv", "json"]


def _csv(columns: list[str], rows: list[list[Any]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    w.writerows(rows)
    click.echo(buf.getvalue(), nl=False)


def _split_langs(value: str) -> list[str]:
    langs = [x.strip() for x in value.replace(" ", ",").split(",") if x.strip()]
    if not langs:
        raise UsageError("--langs names no language (e.g. --langs ar,de,en)")
    return langs


def _context(model: str | None, texts: Path | None, cache_dir: Path | None,
             max_texts: int, device: str) -> Any:
    """The embedding context from ``--model``/``--texts`` (None when neither is given)."""
    if model is None and texts is None:
        return None
    if model is None or texts is None:
        raise UsageError("the embedding source needs both --model and --texts")
    from xlrun.langsim.embedding import SimilarityContext, read_parallel_jsonl

    parallel = read_parallel_jsonl(texts)
    state: dict[str, Any] = {}

    def encode(batch: list[str]) -> Any:
        if "encoder" not in state:  # load the model only when an embedding source needs it
            from xlrun.train.encoder import load_encoder

            state["encoder"] = load_encoder(model, device=device)
        with state["encoder"].full_precision():  # the same distances on every device
            return state["encoder"].encode(batch, "passage")

    return SimilarityContext(encode=encode, texts=parallel, model_id=model,
                             cache_dir=cache_dir, max_texts=max_texts)


def _common(fn: F) -> F:
    opts = [
        click.option("--source", "-s", default="uriel:syntax_knn", show_default=True,
                     help="Distance source, or a weighted sum such as "
                          "'0.5*uriel:syntax_knn+0.5*script' (see `xlrun langs sources`)."),
        click.option("--langs", "-l", "langs_", required=True,
                     help="Comma-separated ISO 639-1 or 639-3 codes, e.g. ar,de,en,es,hi,vi,zh."),
        click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                     show_default=True, help="Output format."),
        click.option("--model", default=None, metavar="PATH",
                     help="Model (hub id or folder) for the embedding source."),
        click.option("--texts", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     default=None, metavar="FILE.jsonl",
                     help="Parallel texts for the embedding source: JSON lines with lang, "
                          "parallel_id, text."),
        click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
                     default=None, help="Cache folder for embedding distances."),
        click.option("--max-texts", type=int, default=512, show_default=True,
                     help="Parallel texts per language used by the embedding source (0 = all)."),
        click.option("--device", default="auto", show_default=True,
                     help="auto, cpu, cuda or cuda:N (embedding source)."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


@click.group("langs")
def langs() -> None:
    """Language similarity: distances between languages, clusters, known sources."""


@langs.command("sources")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@handle_errors
def sources_cmd(fmt: str) -> None:
    """List the distance sources (combine them as '0.5*uriel:syntax_knn+0.5*script')."""
    from xlrun.langsim.distance_sources import DISTANCE_SOURCES

    rows = [[name, ", ".join(src.usages()), src.description]
            for name, src in DISTANCE_SOURCES.items()]
    if fmt == "json":
        click.echo(json.dumps([dict(zip(["name", "usage", "description"], r, strict=True))
                               for r in rows], indent=2))
    elif fmt == "csv":
        _csv(["name", "usage", "description"], rows)
    else:
        print_table("language-similarity sources", ["name", "usage", "description"], rows)


@langs.command("distances")
@_common
@handle_errors
def distances_cmd(source: str, langs_: str, fmt: str, model: str | None, texts: Path | None,
                  cache_dir: Path | None, max_texts: int, device: str) -> None:
    """Pairwise distances between languages under a source."""
    from xlrun.langsim.distances import distance_matrix

    dm = distance_matrix(source, _split_langs(langs_),
                         context=_context(model, texts, cache_dir, max_texts, device))
    if fmt == "json":
        click.echo(json.dumps(dm.to_dict(), indent=2))
    elif fmt == "csv":
        _csv(["lang_a", "lang_b", "distance"],
             [[r["lang_a"], r["lang_b"], f"{r['distance']:.6g}"] for r in dm.rows()])
    else:
        rows = [[a] + [f"{dm.values[i, j]:.3f}" for j in range(len(dm.langs))]
                for i, a in enumerate(dm.langs)]
        print_table(f"distances: {dm.source}", ["", *list(dm.langs)], rows)


@langs.command("clusters")
@_common
@click.option("--k", "k", type=int, default=None, help="Number of clusters.")
@click.option("--threshold", type=float, default=None,
              help="Cut the dendrogram at this distance instead of --k.")
@click.option("--linkage", type=click.Choice(["average", "complete", "ward"]),
              default="average", show_default=True)
@click.option("--min-size", type=click.IntRange(0), default=0, show_default=True,
              help="Clusters with fewer languages join their nearest cluster "
                   "(sampling.min_cluster_size).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="PNG", help="Write a dendrogram + heatmap figure here.")
@handle_errors
def clusters_cmd(source: str, langs_: str, fmt: str, model: str | None, texts: Path | None,
                 cache_dir: Path | None, max_texts: int, device: str, k: int | None,
                 threshold: float | None, linkage: str, min_size: int, plot: Path | None) -> None:
    """Agglomerative clusters of languages (give --k or --threshold), with silhouette."""
    from xlrun.langsim.cluster import cluster, merge_small_clusters
    from xlrun.langsim.distances import distance_matrix

    if (k is None) == (threshold is None):
        raise UsageError("give exactly one of --k or --threshold")
    if plot is not None:
        from xlrun.files import check_output_file

        check_output_file(plot, "--plot")
    dm = distance_matrix(source, _split_langs(langs_),
                         context=_context(model, texts, cache_dir, max_texts, device))
    result = merge_small_clusters(cluster(dm, k=k, threshold=threshold, method=linkage), dm,
                                  min_size)
    sil = "n/a" if result.silhouette is None else f"{result.silhouette:.4f}"
    if fmt == "json":
        click.echo(json.dumps({"source": dm.source, "linkage": linkage,
                               "clusters": result.clusters, "labels": result.labels,
                               "silhouette": result.silhouette}, indent=2))
    elif fmt == "csv":
        _csv(["lang", "cluster"], [[r["lang"], r["cluster"]] for r in result.rows()])
    else:
        print_table(f"clusters: {dm.source} ({linkage})", ["cluster", "size", "languages"],
                     [[i, len(c), ", ".join(c)] for i, c in enumerate(result.clusters)])
        click.echo(f"silhouette: {sil}")
    if plot is not None:
        from xlrun.files import write_rendered
        from xlrun.langsim.plots import plot_clustering

        path = write_rendered(plot, lambda tmp: plot_clustering(dm, result, tmp), "--plot")
        click.echo(f"wrote {path}", err=fmt != "table")


def _dataset_languages(name: str) -> list[str]:
    """The languages a dataset is known to have without reading it (tatoeba: LASER's 112 and
    English; belebele: its 122 variants; the others: their language lists)."""
    from xlrun.evaluate.tasks import DATASETS

    dataset = DATASETS.get(name, "--dataset")
    langs = dataset.languages or getattr(dataset, "release_languages", None)
    if not langs:
        raise UsageError(f"dataset {name!r} has no fixed language list (it depends on its "
                         "files); give --langs")
    return list(langs)


@langs.command("coverage")
@click.option("--langs", "-l", "langs_", default=None,
              help="Comma-separated language codes (any form xlrun accepts: de, deu, deu_Latn).")
@click.option("--dataset", default=None,
              help="Instead of --langs: the languages of an evaluation dataset (tatoeba, "
                   "belebele, xquad-r, mlqa-r, miracl, mldr).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@handle_errors
def coverage_cmd(langs_: str | None, dataset: str | None, fmt: str) -> None:
    """Which distance sources know each language: URIEL typology observed, only predicted
    (k-nearest-neighbour imputation) or none; family tree; coordinates; script and family."""
    from xlrun.langsim.coverage import COLUMNS, coverage, summary

    if (langs_ is None) == (dataset is None):
        raise UsageError("give exactly one of --langs or --dataset")
    codes = _split_langs(langs_) if langs_ is not None else _dataset_languages(str(dataset))
    rows = coverage(codes)
    totals = summary(rows)
    if fmt == "json":
        click.echo(json.dumps({"languages": [dict(zip(COLUMNS, r.row(), strict=True))
                                             for r in rows], "summary": totals}, indent=2))
    elif fmt == "csv":
        _csv(list(COLUMNS), [r.row() for r in rows])
    else:
        print_table(f"coverage of {len(rows)} languages", list(COLUMNS), [r.row() for r in rows])
        print_table("languages per source and status", ["source", "languages"],
                    [[src, ", ".join(f"{k} {v}" for k, v in sorted(st.items()))]
                     for src, st in totals.items()])
