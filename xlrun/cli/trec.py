"""``xlrun export-trec`` and ``xlrun import-run``: TREC runs and qrels out, external runs in.

The commands import the library inside their bodies (deferred on purpose, like every
command: the CLI starts without polars, PyTorch or SQLAlchemy).
"""

from __future__ import annotations

import click

from xlrun.cli.common import db_option, handle_errors


@click.command("export-trec")
@click.argument("run_ids", nargs=-1, required=True, type=int)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the files (created when missing).")
@click.option("--top-k", default=100, show_default=True, type=click.IntRange(1),
              help="Documents per query in the run files: from the stored top-k lists when "
                   "the run kept that many, else its model ranks the dataset again.")
@click.option("--dataset", default=None, help="Only this evaluation dataset (default: all).")
@click.option("--split", default=None, help="Only this split (default: all).")
@click.option("--data-path", default=None,
              help="Where the evaluation data is now (default: the run's [[eval]] path).")
@click.option("--topics", is_flag=True,
              help="Also write <dataset>.<split>.topics.tsv: each query's id and text, the "
                   "input of a system whose run `xlrun import-run` reads back.")
@click.option("--device", default="auto", show_default=True,
              help="Where a model ranks again (auto, cpu, cuda, cuda:N).")
@db_option
@handle_errors
def export_trec_command(run_ids: tuple[int, ...], out_dir: str, top_k: int,
                        dataset: str | None, split: str | None, data_path: str | None,
                        topics: bool, device: str, db_url: str | None) -> None:
    """Write RUN_IDS' rankings as TREC run files and the matching qrels.

    Query ids are <setting>/<query_lang>/<doc_lang>/<query_id> (e.g. cross/de/en/q17), unique
    across languages and settings; one run file per run and dataset
    (run<ID>.<dataset>.<split>.run) and one qrels file per dataset (<dataset>.<split>.qrels),
    scores at full precision. trec_eval or ir_measures on them gives the run's stored
    measures for every cutoff up to --top-k.

    \b
    Example:
      xlrun export-trec 3 4 --out trec/ --top-k 100
      ir_measures trec/xquad-r.test.qrels trec/run3.xquad-r.test.run nDCG@10 RR@10 R@100
    """
    from xlrun.db.engine import get_engine
    from xlrun.formats.trec_export import export_trec

    engine = get_engine(db_url, create=False)
    try:
        result = export_trec(engine, run_ids, out_dir, top_k, dataset, split, data_path,
                             topics, device, log=lambda msg: click.echo(msg, err=True))
    finally:
        engine.dispose()
    for f in result.files:
        click.echo(f"wrote {f.path} ({f.lines} {'queries' if f.kind == 'topics' else 'lines'})")
    for note in result.notes:
        click.echo(f"note: {note}", err=True)


@click.command("import-run")
@click.argument("run_file", type=click.Path(dir_okay=False))
@click.option("--name", required=True,
              help="The arm label of the imported run, e.g. bm25 (`xlrun report --compare arm "
                   "--baseline bm25`).")
@click.option("--experiment", default="baselines", show_default=True,
              help="Experiment the run joins (the one whose arms it is compared with).")
@click.option("--like", "like", default=None, type=int, metavar="RUN_ID",
              help="Evaluate exactly as this run did: its [[eval]] section for --dataset "
                   "(data folder, split, languages, settings, query sample, measures), so "
                   "every query pairs with that run's.")
@click.option("--dataset", default=None, help="Evaluation dataset (xquad-r, miracl, local, …).")
@click.option("--data-path", default="", help="Local path (or URL) of the dataset.")
@click.option("--split", default="", help="Split (default: the dataset's).")
@click.option("--revision", default="", help="Hub revision of mldr/miracl data.")
@click.option("--langs", default="", help="Comma-separated languages (default: all).")
@click.option("--settings", default="mono,cross,multi", show_default=True)
@click.option("--max-queries-per-language", default=0, type=click.IntRange(0),
              help="Keep this many queries per language, chosen as xlrun's runs choose them "
                   "(0 = all).")
@click.option("--measures", default=None,
              help='Comma-separated ir_measures names stored per query, e.g. "nDCG@10,R@100" '
                   "(default: none, or --like's).")
@click.option("--top-k", default=None, type=click.IntRange(0),
              help="Documents per query kept in `retrieved` (default 100, or --like's).")
@db_option
@handle_errors
def import_run_command(run_file: str, name: str, experiment: str, like: int | None,
                       dataset: str | None, data_path: str, split: str, revision: str,
                       langs: str, settings: str, max_queries_per_language: int,
                       measures: str | None, top_k: int | None, db_url: str | None) -> None:
    """Evaluate RUN_FILE (a TREC run made elsewhere) and store it as a run of its own.

    The run's query ids must be xlrun's (<setting>/<query_lang>/<doc_lang>/<query_id>;
    `xlrun export-trec RUN_ID --topics` writes the queries under them) and its document ids
    the dataset's as xlrun loads them. Documents are ranked as trec_eval ranks them (score,
    then docno, descending); a query the file lacks retrieved nothing.

    \b
    Example:
      xlrun import-run bm25.run --like 3 --name bm25 --experiment lareqa-a
      xlrun report --experiment lareqa-a --compare arm --baseline bm25 --by setting
    """
    from xlrun.db.engine import get_engine
    from xlrun.formats.trec_import import like_section, prepare_import, store_import

    if like is not None:
        reader = get_engine(db_url, create=False)
        try:
            table = like_section(reader, like, dataset or None)
        finally:
            reader.dispose()
    elif not dataset:
        raise click.UsageError("give --dataset (with its options) or --like RUN_ID")
    else:
        from xlrun.evaluate.tasks import DATASETS

        table = {"dataset": dataset, "path": data_path,
                 "split": split or DATASETS.get(dataset, "--dataset").default_split,
                 "languages": [x for x in langs.split(",") if x],
                 "settings": [x for x in settings.split(",") if x],
                 "max_queries_per_language": max_queries_per_language,
                 "top_k": 100 if top_k is None else top_k}
        if revision:
            table["revision"] = revision
    prepared = prepare_import(run_file, name=name, experiment=experiment, table=table,
                              measures=None if measures is None
                              else [m for m in measures.split(",") if m.strip()],
                              top_k=top_k)
    engine = get_engine(db_url)
    try:
        s = store_import(engine, prepared)
    finally:
        engine.dispose()
    cov = prepared.coverage
    where = f"{prepared.section.dataset}/{prepared.section.split}"
    if not s.new:
        click.echo(f"already imported: run {s.run_id} of experiment {experiment!r} "
                   f"(see `xlrun show {s.run_id}`)")
        return
    click.echo(f"imported {name} as run {s.run_id} of experiment {experiment!r}: "
               f"{cov.evaluated} queries of {where} in {', '.join(prepared.section.settings)}")
    means = prepared.output.run_metrics.to_pydict()
    for setting, metric, q, d, value in zip(means["setting"], means["metric"],
                                            means["query_lang"], means["doc_lang"],
                                            means["value"], strict=True):
        if metric in ("map", "ndcg@10") and q == d == "all":
            click.echo(f"  {setting:6} {metric:8} {value:.4f}")
    if cov.without_results:
        click.echo(f"note: {cov.without_results} evaluated queries have no line in the run "
                   "file: scored as retrieving nothing (0)", err=True)
    if cov.ignored:
        click.echo(f"note: {cov.ignored} queries of the run are outside the evaluated "
                   f"settings and languages and were ignored (e.g. "
                   f"{', '.join(cov.ignored_examples)})", err=True)
    if s.same_arm:
        click.echo(f"note: arm {name!r} now has {s.same_arm + 1} runs in {experiment!r}; "
                   "reports treat them as its seeds", err=True)
