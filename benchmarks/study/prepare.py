"""Build what travels to the GPU machine with the repository (into ``.device/``, ignored by git).

    python benchmarks/study/prepare.py [--out .device] [--shared ../shared] [--no-wheels]
                                       [--check-sample 32]

``OUT`` then holds (≈ 35 MB; with the repository ≤ 60 MB, checked at the end):

* ``model/`` — the multilingual-e5-small 4-bit pack with its vocabulary restricted to the
  pieces that the study's texts use (every question and sentence of MLQA-R and XQuAD-R, each
  with ``query: `` and with ``passage: ``): every one of those texts is checked to tokenise to
  the same pieces as with the full pack, and the two packs' embeddings of a sample of texts
  are compared (``--check-sample``, 0 to skip); ``benchmarks/study/pack.py export`` rebuilds
  a Hugging Face folder from it on the GPU machine;
* ``data/mlqa-r``, ``data/xquad-r`` — the LAReQA files (``.json.xz``);
* ``uriel/feature_predictions.npz`` — the URIEL rows of the study's languages (what
  ``uriel:syntax_knn`` reads; ``XLRUN_URIEL_DIR`` points xlrun at it, so lang2vec is not
  needed there), checked to give the same distances as the full file;
* ``whl/`` — wheels the GPU image lacks, for its CPython 3.12 (sqlalchemy, alembic, mako:
  the versions installed here);
* ``langsim/<experiment>/`` — the ``embedding`` language distances of the study's clustered
  arms, computed here on the CPU in fp32 with the pack as the GPU machine rebuilds it, at the
  path it rebuilds it to (``--model-path``, part of the cache key), exactly as ``xlrun
  submit`` computes them: the GPU study copies them where its checks and runs look, so its
  parent process never loads the model on the GPU and its clusters are the checked ones;
* ``manifest.json`` — sizes and versions.

``--rehearsal DIR`` builds the CPU rehearsal's inputs instead (see
``tests/study/test_study_rehearsal.py``): a small slice of the real data (or, without
``../shared``, a generated LAReQA-format corpus), a random 2-layer model pack around the
real tokenizer restricted to the slice (or the quickstart tokenizer), the URIEL rows, and
two study specs with two arms × two seeds (plus the untrained reference) per direction, 20 steps of 4 pairs.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import lzma
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pack as packlib  # noqa: E402

PREFIXES = ("query: ", "passage: ")
DATASETS = ("mlqa-r", "xquad-r")
WHEELS = ("sqlalchemy", "alembic", "mako")
LIMIT_MB = 60.0
STUDY_WORK = "/tmp/xlrun-study"
"""``gpu_study.sh``'s default ``XLRUN_STUDY_WORK``: the model is rebuilt in ``<it>/model`` and
the data copied to ``<it>/data`` there, the paths the runs' configs (and keys) hold."""
SPECS = ("experiments/lareqa_study.toml", "experiments/lareqa_study_b.toml")


def study_texts(data_root: Path, prefixes: Sequence[str] = PREFIXES) -> list[str]:
    """Every question and sentence of the LAReQA folders under ``data_root``, with each
    prefix (the texts the study tokenises, in training, clustering and evaluation)."""
    from xlrun.data.lareqa import available_languages, read_language

    texts: list[str] = []
    for ds in DATASETS:
        src = data_root / ds
        if not src.is_dir():
            continue
        for lang in available_languages(src):
            d = read_language(src, lang)
            body = [q.text for q in d.questions] + [s for p in d.paragraphs for s in p.sentences]
            for pre in prefixes:
                texts.extend(pre + t for t in body)
    return texts


def study_languages(data_root: Path) -> list[str]:
    """Languages of the LAReQA folders under ``data_root``."""
    from xlrun.data.lareqa import available_languages

    return sorted({lang for ds in DATASETS if (data_root / ds).is_dir()
                   for lang in available_languages(data_root / ds)})


def write_uriel(langs: Sequence[str], out: Path) -> Path:
    """The rows of URIEL's ``feature_predictions.npz`` for ``langs`` (all candidate codes),
    checked to give the same ``uriel:syntax_knn`` distances as the full file."""
    import numpy as np

    from xlrun.langsim import uriel

    src = Path(uriel.lang2vec_data_dir()) / "feature_predictions.npz"
    codes = {c for lang in langs for c in uriel.candidate_codes(lang)}
    with np.load(src) as db:
        all_langs = db["langs"].astype(str)
        rows = np.flatnonzero(np.isin(all_langs, sorted(codes)))
        payload = {"feats": db["feats"], "langs": db["langs"][rows],
                   "sources": db["sources"], "data": db["data"][rows]}
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "feature_predictions.npz", **payload)
    full = uriel.cosine_distances(uriel.uriel_features(langs, "syntax_knn"))
    old = os.environ.get("XLRUN_URIEL_DIR")
    os.environ["XLRUN_URIEL_DIR"] = str(out)
    uriel.load_set.cache_clear()
    try:
        small = uriel.cosine_distances(uriel.uriel_features(langs, "syntax_knn"))
    finally:
        if old is None:
            os.environ.pop("XLRUN_URIEL_DIR", None)
        else:
            os.environ["XLRUN_URIEL_DIR"] = old
        uriel.load_set.cache_clear()
    if not np.array_equal(full, small):
        raise SystemExit("the URIEL subset gives other distances than the full file")
    return out / "feature_predictions.npz"


def compare_embeddings(full_pack: Path, small_pack: Path, texts: Sequence[str],
                       work: Path) -> float:
    """Max |difference| between the two packs' embeddings of ``texts`` (fp32, CPU)."""
    import numpy as np

    from xlrun.train.encoder import Encoder, EncoderConfig

    outs = []
    for name, p in (("full", full_pack), ("small", small_pack)):
        hf = packlib.export_hf(p, work / name)
        enc = Encoder.load(EncoderConfig(name=str(hf), query_max_length=64,
                                         passage_max_length=256), "cpu")
        outs.append(enc.encode(list(texts), "passage", batch_size=16))
        del enc
        shutil.rmtree(hf, ignore_errors=True)
    return float(np.abs(outs[0] - outs[1]).max())


def carried_distances(out: Path, model_path: Path, specs: Sequence[Path] | None = None,
                      log: Any = print) -> dict[str, int]:
    """Compute the study's ``embedding`` distances on the CPU into ``out/langsim``.

    The pack in ``out/model`` is rebuilt as a Hugging Face folder at ``model_path`` (where
    ``gpu_study.sh`` rebuilds it: the model's path is part of each distance's cache key and
    of each run's key), the specs are loaded with ``XLRUN_E5`` = ``model_path`` and the data
    of ``out/data``, and checked as ``xlrun submit`` does on the CPU, which computes and caches
    the distances; the cache files go to ``out/langsim/<experiment>/``. Returns the files per
    experiment."""
    import tempfile

    from xlrun.execute.preflight import check_runs
    from xlrun.spec.grid import compile_spec
    from xlrun.spec.load import load_spec

    packlib.export_hf(out / "model", model_path)
    env = {"XLRUN_E5": str(model_path), "XLRUN_MLQAR": str(out / "data" / "mlqa-r"),
           "XLRUN_XQUADR": str(out / "data" / "xquad-r")}
    old = {k: os.environ.get(k) for k in (*env, "XLRUN_OUTPUT")}
    counts: dict[str, int] = {}
    dst = out / "langsim"
    if dst.exists():
        shutil.rmtree(dst)
    with tempfile.TemporaryDirectory(prefix="xlrun-langsim-") as tmp:
        os.environ.update(env, XLRUN_OUTPUT=tmp)
        try:
            for path in specs or [ROOT / s for s in SPECS]:
                spec = load_spec(path)
                name = spec.experiment.name
                runs = [r for r in compile_spec(spec)
                        if r.config.sampling.language_sampling == "clustered"
                        and r.config.train.steps > 0]
                check_runs(runs, experiment=name,
                           output_dir=Path(spec.experiment.output_dir).resolve(), device="cpu",
                           log=log)
                cache = Path(spec.experiment.output_dir).resolve() / name / ".langsim"
                files = sorted(cache.glob("*.json")) if cache.is_dir() else []
                (dst / name).mkdir(parents=True, exist_ok=True)
                for f in files:
                    shutil.copy2(f, dst / name / f.name)
                counts[name] = len(files)
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    (dst / "model_id.txt").write_text(str(model_path))
    return counts


def download_wheels(out: Path) -> list[Path]:
    """The wheels of :data:`WHEELS` at the versions installed here, for CPython 3.12."""
    out.mkdir(parents=True, exist_ok=True)
    pins = [f"{n}=={importlib.metadata.version(n)}" for n in WHEELS]
    have = {p.name.split("-")[0].lower() + "==" + p.name.split("-")[1] for p in out.glob("*.whl")}
    if {p.lower() for p in pins} - have:
        for p in out.glob("*.whl"):
            p.unlink()
        plats = [a for p in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64",
                             "manylinux_2_17_x86_64", "manylinux2014_x86_64",
                             "manylinux1_x86_64") for a in ("--platform", p)]
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--only-binary=:all:", "--python-version", "3.12",
                        "--implementation", "cp", *plats, "-d", str(out), *pins], check=True)
    return sorted(out.glob("*.whl"))


def tree_bytes(paths: Iterable[Path]) -> int:
    """Bytes of the files under ``paths``."""
    total = 0
    for p in paths:
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return total


def repo_bytes() -> int:
    """Bytes of what the device tool sends of the repository itself (tracked and untracked,
    not ignored)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    return tree_bytes(ROOT / f for f in files if f)


def prepare(out: Path, shared: Path, wheels: bool = True, check_sample: int = 32,
            model_path: str | Path = f"{STUDY_WORK}/model") -> dict:
    """Build ``out`` for the study (see the module docstring); the manifest."""
    pack_src = shared / "models" / "multilingual-e5-small"
    data_src = shared / "data"
    for p in (pack_src, data_src / "mlqa-r", data_src / "xquad-r"):
        if not p.exists():
            raise SystemExit(f"missing {p} (set --shared)")
    out.mkdir(parents=True, exist_ok=True)
    if (out / "data").exists():
        shutil.rmtree(out / "data")
    for ds in DATASETS:
        shutil.copytree(data_src / ds, out / "data" / ds)
    texts = study_texts(out / "data")
    if (out / "model").exists():
        shutil.rmtree(out / "model")
    counts = packlib.restrict(pack_src, out / "model", texts)
    n_checked = packlib.check_restricted(pack_src, out / "model", texts)
    print(f"model: kept {counts['kept']} of {counts['vocab_before']} pieces; all {n_checked} "
          "study texts tokenise identically", flush=True)
    diff = None
    if check_sample:
        step = max(1, len(texts) // check_sample)
        diff = compare_embeddings(pack_src, out / "model", texts[::step][:check_sample],
                                  out / ".check")
        shutil.rmtree(out / ".check", ignore_errors=True)
        print(f"model: embeddings of {check_sample} sampled texts differ by at most {diff:g}")
        if diff > 0:
            raise SystemExit("the restricted pack embeds texts differently")
    write_uriel(study_languages(out / "data"), out / "uriel")
    distances = carried_distances(out, Path(model_path))
    print(f"langsim: embedding distances carried for {distances} (model path {model_path})",
          flush=True)
    wheel_files = [p.name for p in download_wheels(out / "whl")] if wheels else []
    parts = {p.name: tree_bytes([p]) for p in sorted(out.iterdir()) if not p.name.startswith(".")}
    total = repo_bytes() + sum(parts.values())
    manifest = {"vocab_kept": counts["kept"], "vocab_before": counts["vocab_before"],
                "texts_checked": n_checked, "embedding_max_diff": diff,
                "langsim": distances, "model_path": str(model_path),
                "wheels": wheel_files, "bytes": parts, "repo_bytes": repo_bytes(),
                "total_mb": round(total / 2**20, 2)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    for k, v in parts.items():
        print(f"  {k:8} {v / 2**20:6.1f} MiB")
    print(f"  repo     {manifest['repo_bytes'] / 2**20:6.1f} MiB\n  total    {total / 2**20:6.1f} MiB"
          f" (limit {LIMIT_MB:.0f})")
    if total / 2**20 > LIMIT_MB:
        raise SystemExit(f"what travels is {total / 2**20:.1f} MiB, over {LIMIT_MB:.0f}")
    return manifest


# ----------------------------------------------------------------------------- rehearsal
def _slice_lareqa(src: Path, dst: Path, paragraphs: int) -> None:
    """The first ``paragraphs`` paragraphs (with their questions) of each language file."""
    from xlrun.data.lareqa import available_languages, language_file

    dst.mkdir(parents=True, exist_ok=True)
    for lang in available_languages(src):
        path = language_file(src, lang)
        opener = lzma.open if path.name.endswith(".xz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            obj = json.load(f)
        kept, n = [], 0
        for article in obj["data"]:
            pars = article["paragraphs"][:max(0, paragraphs - n)]
            if pars:
                kept.append(dict(article, paragraphs=pars))
                n += len(pars)
            if n >= paragraphs:
                break
        (dst / f"{lang}.json").write_text(json.dumps({"data": kept}, ensure_ascii=False),
                                          encoding="utf-8")


def _generated_lareqa(dst: Path, languages: Sequence[str], seed: int) -> None:
    """A LAReQA-format corpus from xlrun's generated quickstart corpus (no real data)."""
    from xlrun.data.train_sources import load_train_corpus
    from xlrun.spec.schema import TrainDataSection

    corpus = load_train_corpus(TrainDataSection(source="quickstart", languages=list(languages)))
    dst.mkdir(parents=True, exist_ok=True)
    for lang in languages:
        ids = corpus.ids(lang)[seed * 40:(seed + 1) * 40]
        paragraphs = []
        for i in range(0, len(ids), 4):
            group = [corpus.get(lang, pid) for pid in ids[i:i + 4]]
            sentences = [ex.passage for ex in group]
            breaks, pos, context = [], 0, ""
            for s in sentences:
                breaks.append([pos, pos + len(s)])
                context += s + " "
                pos += len(s) + 1
            qas = [{"id": ex.parallel_id, "question": ex.query,
                    "answers": [{"answer_start": breaks[j][0], "text": sentences[j]}]}
                   for j, ex in enumerate(group)]
            paragraphs.append({"context": context, "sentences": sentences,
                               "sentence_breaks": breaks, "qas": qas})
        (dst / f"{lang}.json").write_text(json.dumps({"data": [{"paragraphs": paragraphs}]},
                                                     ensure_ascii=False), encoding="utf-8")


def _rehearsal_spec(real: Path, dst: Path, data_dir: str, *, train: str, evaluate: str,
                    k: int, min_cluster_size: int = 0) -> None:
    """A study spec cut down to the untrained reference + hybrid/size + hybrid/clustered
    (URIEL syntax) × seeds 1, 2; 20 steps of 4 pairs; same experiment name and eval setup
    (``min_cluster_size``, when given, replaces or adds the spec's)."""
    import re

    text = real.read_text()
    text = text[:text.index("[grid]")]
    text = re.sub(r'(?m)^path = "\$\{XLRUN_MLQAR[^\n]*$', f'path = "{data_dir}/mlqa-r"', text)
    text = re.sub(r'(?m)^path = "\$\{XLRUN_XQUADR[^\n]*$', f'path = "{data_dir}/xquad-r"', text)
    text = re.sub(r"(?m)^steps = \d+", "steps = 20", text)
    text = re.sub(r"(?m)^batch_size = 64", "batch_size = 4", text)
    text = re.sub(r"(?m)^n_clusters = \d+[^\n]*$", f"n_clusters = {k}", text)
    if min_cluster_size:
        text = re.sub(r"(?m)^min_cluster_size = \d+[^\n]*\n", "", text)
        text = text.replace(f"n_clusters = {k}\n",
                            f"n_clusters = {k}\nmin_cluster_size = {min_cluster_size}\n", 1)
    text = re.sub(r"(?m)^query_max_length = \d+", "query_max_length = 32", text)
    text = re.sub(r"(?m)^passage_max_length = \d+", "passage_max_length = 64", text)
    # a 12-paragraph slice of unbalanced MLQA-R cannot be exposure-matched within the study's
    # 0.5 points; the rehearsal tests the machinery, so it accepts more
    text = re.sub(r'(?m)^exposure = "matched"[^\n]*$',
                  'exposure = "matched"\nexposure_tolerance = 0.05', text)
    text += ('[grid]\n"train.steps" = [0, 20, 20]\n'
             '"sampling.language_sampling" = ["size", "size", "clustered"]\n'
             'zip = [["train.steps", "sampling.language_sampling"]]\nseeds = [1, 2]\n')
    dst.write_text(f"# CPU rehearsal of {real.name} (generated; train {train}, "
                   f"evaluate {evaluate})\n" + text)


def rehearsal(out: Path, shared: Path | None, paragraphs: int = 12) -> dict:
    """Inputs of the CPU rehearsal (see the module docstring): ``out`` laid out like
    ``.device`` plus ``specs/``; returns what was used."""
    out.mkdir(parents=True, exist_ok=True)
    real = shared is not None and (shared / "data" / "mlqa-r").is_dir() and \
        (shared / "models" / "multilingual-e5-small").is_dir()
    if real:
        for ds in DATASETS:
            _slice_lareqa(shared / "data" / ds, out / "data" / ds, paragraphs)
        texts = study_texts(out / "data")
        packlib.restrict(shared / "models" / "multilingual-e5-small", out / "tokenizer", texts)
        packlib.check_restricted(shared / "models" / "multilingual-e5-small",
                                 out / "tokenizer", texts)
        tok_dir = out / "tokenizer"
    else:
        # clusterings that leave cross-lingual pairs: at least 2 languages per cluster
        _generated_lareqa(out / "data" / "mlqa-r", ("de", "en", "es", "ru"), 0)
        _generated_lareqa(out / "data" / "xquad-r", ("de", "el", "en", "es", "ru", "uk"), 1)
        from xlrun.quickstart.tiny_model import resolve_model_name

        tok_dir = Path(resolve_model_name("quickstart:tiny", out / ".quickstart"))
    packlib.tiny(tok_dir, out / "model")
    for p in (tok_dir / "weights.safetensors", tok_dir / "model.safetensors"):
        p.unlink(missing_ok=True)  # only its tokenizer is used
    write_uriel(study_languages(out / "data"), out / "uriel")
    specs = out / "specs"
    specs.mkdir(exist_ok=True)
    data_dir = os.path.relpath(out / "data", specs)
    langs = {ds: len(list((out / "data" / ds).glob("*.json*"))) for ds in DATASETS}
    # the real slice keeps the study's k (7 and 11 languages); the generated corpus has 4 and
    # 6, where k = 2 / 3 with clusters of 2 or more leaves every language a partner
    _rehearsal_spec(ROOT / "experiments" / "lareqa_study.toml", specs / "lareqa_study.toml",
                    data_dir, train="mlqa-r", evaluate="xquad-r",
                    k=3 if real else 2, min_cluster_size=0 if real else 2)
    _rehearsal_spec(ROOT / "experiments" / "lareqa_study_b.toml",
                    specs / "lareqa_study_b.toml", data_dir, train="xquad-r",
                    evaluate="mlqa-r", k=4 if real else 3, min_cluster_size=0 if real else 2)
    return {"real_data": real, "languages": langs}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / ".device")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--no-wheels", action="store_true")
    ap.add_argument("--check-sample", type=int, default=32)
    ap.add_argument("--model-path", default=f"{STUDY_WORK}/model",
                    help="where gpu_study.sh rebuilds the model (its XLRUN_STUDY_WORK/model)")
    ap.add_argument("--rehearsal", type=Path, metavar="DIR",
                    help="build the CPU rehearsal's inputs in DIR instead")
    args = ap.parse_args(argv)
    if args.rehearsal:
        print(json.dumps(rehearsal(args.rehearsal, args.shared if args.shared.is_dir()
                                   else None)))
        return 0
    prepare(args.out, args.shared, wheels=not args.no_wheels, check_sample=args.check_sample,
            model_path=args.model_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
