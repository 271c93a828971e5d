"""The generated multilingual parallel question–passage corpus of the quickstart.

A seeded generator invents entities (persons, towns, rivers, companies) with pronounceable
names built from a small Latin alphabet and transliterated into Cyrillic and Greek, gives them
attributes (birth year, birthplace, profession, country, population, founding year, length,
lake, product) and renders each (entity, relation) fact as a question and an answer-bearing
passage in every language with the templates of :mod:`xlrun.quickstart.templates`.

Training and evaluation use disjoint entities. The evaluation corpus holds every fact of its
entities as a passage (so passages about the same entity but another relation are hard
negatives) plus facts of distractor entities that no question asks about. Everything is
deterministic for a given seed; nothing is read from disk or the network.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from xlrun.data.types import TrainCorpus, TrainExample
from xlrun.errors import UsageError
from xlrun.evaluate.types import Document, EvalData, Query
from xlrun.languages import normalize
from xlrun.quickstart.templates import (
    CONSONANTS,
    PRODUCTS,
    PROFESSIONS,
    RELATIONS,
    TEMPLATES,
    TRANSLITERATION,
    VOWELS,
)

LANGUAGES: tuple[str, ...] = ("en", "de", "es", "fr", "pt", "ru", "uk", "el")
"""Languages of the generated corpus: Germanic, Romance, Slavic (Cyrillic) and Greek."""

SPLITS: tuple[str, ...] = ("test", "dev")
DATASET_NAME = "quickstart"

# Entities per kind in each split. Facts per entity: person 3, town 3, river 2, company 2.
_TRAIN_ENTITIES = {"person": 50, "town": 50, "river": 50, "company": 50}  # 500 facts
_EVAL_ENTITIES = {"person": 14, "town": 14, "river": 14, "company": 14}  # 140 facts
_EVAL_DISTRACTORS = {"person": 10, "town": 10, "river": 10, "company": 10}  # 100 facts
_EVAL_QUESTIONS = 120
_N_COUNTRIES = 12
_N_LAKES = 16
_N_GIVEN_NAMES = 24
_KINDS = ("person", "town", "river", "company")


@dataclass(frozen=True)
class Entity:
    """One invented entity: a kind, a Latin-script name and its attributes."""

    kind: str
    name: str
    attrs: dict[str, object]


@dataclass(frozen=True)
class Fact:
    """One (entity, relation) fact; ``fid`` is its language-independent id."""

    fid: str
    entity: Entity
    relation: str


# --------------------------------------------------------------------------- names


def transliterate(text: str, lang: str) -> str:
    """Write a Latin-script invented name in the script of ``lang`` (word by word).

    Languages written in Latin script get the name unchanged. Greek uses final sigma.
    """
    table = TRANSLITERATION.get(lang)
    if table is None:
        return text
    words = []
    for word in text.split(" "):
        out = "".join(table.get(ch, ch) for ch in word.lower())
        if lang == "el" and out.endswith("σ"):
            out = out[:-1] + "ς"
        words.append(out[:1].upper() + out[1:])
    return " ".join(words)


def _syllable(rng: random.Random, coda: bool) -> str:
    s = rng.choice(CONSONANTS) + rng.choice(VOWELS)
    if coda and rng.random() < 0.35:
        s += rng.choice("lnrs")
    return s


def _word(rng: random.Random, syllables: tuple[int, int] = (2, 3)) -> str:
    n = rng.randint(*syllables)
    return "".join(_syllable(rng, coda=i == n - 1) for i in range(n)).capitalize()


def _country(names: _Names) -> str:
    """A country name ending in ``-ia`` after a consonant (Kestria, Valdonia)."""
    while True:
        base = _word(names.rng, (2, 2))
        name = (base[:-1] if base[-1] in VOWELS else base) + "ia"
        if name.lower() not in names.used:
            names.used.add(name.lower())
            return name


class _Names:
    """Unique invented names drawn from one seeded stream."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def new(self, syllables: tuple[int, int] = (2, 3), suffix: str = "") -> str:
        while True:
            w = _word(self.rng, syllables) + suffix
            if w.lower() not in self.used:
                self.used.add(w.lower())
                return w


# --------------------------------------------------------------------------- world


@dataclass(frozen=True)
class _World:
    countries: tuple[str, ...]
    lakes: tuple[str, ...]
    given: tuple[str, ...]
    splits: dict[str, list[Entity]]  # "train", "test", "dev", "test_distractors", ...


def _entities(kind: str, n: int, names: _Names, rng: random.Random,
              world_countries: tuple[str, ...], lakes: tuple[str, ...],
              given: tuple[str, ...], towns: list[str]) -> list[Entity]:
    out = []
    for _ in range(n):
        if kind == "person":
            name = f"{rng.choice(given)} {names.new((2, 3))}"
            attrs = {"year": rng.randint(1780, 1990), "town": rng.choice(towns),
                     "prof": rng.randrange(len(PROFESSIONS["en"]))}
        elif kind == "town":
            name = names.new((2, 3))
            attrs = {"country": rng.choice(world_countries),
                     "num": rng.randint(12, 2500) * 100, "year": rng.randint(900, 1900)}
        elif kind == "river":
            name = names.new((2, 3))
            attrs = {"num": rng.randint(20, 1800), "lake": rng.choice(lakes)}
        else:
            name = names.new((2, 3))
            attrs = {"year": rng.randint(1850, 2015),
                     "product": rng.randrange(len(PRODUCTS["en"]))}
        out.append(Entity(kind, name, attrs))
    return out


def _build_world(seed: int) -> _World:
    rng = random.Random(f"xlrun-quickstart-{seed}")
    names = _Names(rng)
    countries = tuple(_country(names) for _ in range(_N_COUNTRIES))
    lakes = tuple(names.new((2, 3)) for _ in range(_N_LAKES))
    given = tuple(names.new((2, 2)) for _ in range(_N_GIVEN_NAMES))
    splits: dict[str, list[Entity]] = {}
    plan = [("train", _TRAIN_ENTITIES)]
    for split in SPLITS:
        plan += [(split, _EVAL_ENTITIES), (f"{split}_distractors", _EVAL_DISTRACTORS)]
    for split, counts in plan:
        # towns first: persons of the same split are born in one of them
        towns = _entities("town", counts["town"], names, rng, countries, lakes, given, [])
        town_names = [t.name for t in towns]
        ents = list(towns)
        for kind in ("person", "river", "company"):
            ents += _entities(kind, counts[kind], names, rng, countries, lakes, given, town_names)
        splits[split] = ents
    return _World(countries, lakes, given, splits)


def _facts(entities: list[Entity], prefix: str, shuffle_seed: str | None = None) -> list[Fact]:
    pairs = [(ent, rel) for ent in entities for rel, kind in RELATIONS.items() if kind == ent.kind]
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(pairs)
    return [Fact(f"{prefix}{i}", ent, rel) for i, (ent, rel) in enumerate(pairs)]


def render(fact: Fact, lang: str) -> tuple[str, str]:
    """The (question, passage) of ``fact`` in ``lang``."""
    q_tpl, p_tpl = TEMPLATES[lang][fact.relation]
    a = fact.entity.attrs
    slot = {"person": "name", "town": "town", "river": "river", "company": "co"}[fact.entity.kind]
    values: dict[str, object] = {slot: transliterate(fact.entity.name, lang)}
    if "town" in a:
        values["town"] = transliterate(str(a["town"]), lang)
    if "country" in a:
        values["country"] = transliterate(str(a["country"]), lang)
    if "lake" in a:
        values["lake"] = transliterate(str(a["lake"]), lang)
    if "prof" in a:
        values["prof"] = PROFESSIONS[lang][int(a["prof"])]  # type: ignore[arg-type]
    if "product" in a:
        values["product"] = PRODUCTS[lang][int(a["product"])]  # type: ignore[arg-type]
    values["year"] = a.get("year", "")
    values["num"] = a.get("num", "")
    return q_tpl.format(**values), p_tpl.format(**values)


# --------------------------------------------------------------------------- public API


def _check_languages(languages: list[str] | None) -> list[str]:
    if not languages:
        return list(LANGUAGES)
    out = []
    for i, code in enumerate(languages):
        iso = normalize(code, f"languages[{i}]")
        if iso not in LANGUAGES:
            raise UsageError(f"the quickstart corpus has no language {code!r}; "
                             f"available: {', '.join(LANGUAGES)}")
        if iso not in out:
            out.append(iso)
    return out


def split_entities(split: str, seed: int = 0) -> list[Entity]:
    """The entities of ``split``: ``train``, ``test``, ``dev``, or ``test_distractors`` /
    ``dev_distractors`` (entities whose facts are in an evaluation corpus but never asked)."""
    splits = _build_world(seed).splits
    if split not in splits:
        raise UsageError(f"unknown quickstart split {split!r}; allowed: {', '.join(splits)}")
    return list(splits[split])


def train_facts(seed: int = 0) -> list[Fact]:
    """The facts of the training split (one parallel id each)."""
    return _facts(_build_world(seed).splits["train"], "t", f"xlrun-quickstart-train-{seed}")


def train_corpus(seed: int = 0, languages: list[str] | None = None) -> TrainCorpus:
    """The training corpus: every training fact in every language, parallel ids shared.

    Args:
        seed: world seed (entities, attributes, names).
        languages: subset of :data:`LANGUAGES` (default: all).
    """
    langs = _check_languages(languages)
    examples = []
    for fact in train_facts(seed):
        for lang in langs:
            q, p = render(fact, lang)
            examples.append(TrainExample(parallel_id=fact.fid, lang=lang, query=q, passage=p))
    return TrainCorpus.from_examples(examples, name=f"{DATASET_NAME}-train")


def eval_data(languages: list[str] | None = None, seed: int = 0, split: str = "test",
              max_queries_per_language: int = 0) -> EvalData:
    """The parallel evaluation set: questions about entities never seen in training.

    Query ids (``q0``…) are shared by a question's translations; document ids are
    ``"{lang}:{n}"`` with ``n`` shared by a passage's translations. Each question has exactly
    one relevant passage per language; the corpus also holds the other facts of the same
    entities and facts of distractor entities.

    Args:
        languages: subset of :data:`LANGUAGES` (default: all).
        seed: world seed; must match the training seed for the splits to be disjoint.
        split: ``test`` or ``dev`` (disjoint entity sets).
        max_queries_per_language: keep only the first N questions (0 = all); the passage
            pool is unchanged.
    """
    if split not in SPLITS:
        raise UsageError(f"unknown quickstart split {split!r}; allowed: {', '.join(SPLITS)}")
    langs = _check_languages(languages)
    world = _build_world(seed)
    rng = random.Random(f"xlrun-quickstart-{split}-{seed}")
    asked_pool = _facts(world.splits[split], "")
    distractors = _facts(world.splits[f"{split}_distractors"], "")
    asked = rng.sample(asked_pool, k=min(_EVAL_QUESTIONS, len(asked_pool)))
    if max_queries_per_language > 0:
        asked = asked[:max_queries_per_language]
    passages = asked_pool + distractors
    rng.shuffle(passages)
    doc_index = {id(f): n for n, f in enumerate(passages)}

    queries: dict[str, list[Query]] = {lang: [] for lang in langs}
    corpus: dict[str, list[Document]] = {lang: [] for lang in langs}
    qrels: dict[tuple[str, str], frozenset[str]] = {}
    for lang in langs:
        for n, fact in enumerate(passages):
            corpus[lang].append(Document(id=f"{lang}:{n}", lang=lang, text=render(fact, lang)[1]))
        for i, fact in enumerate(asked):
            qid = f"q{i}"
            queries[lang].append(Query(id=qid, lang=lang, text=render(fact, lang)[0]))
            n = doc_index[id(fact)]
            qrels[(lang, qid)] = frozenset(f"{other}:{n}" for other in langs)
    return EvalData(dataset=DATASET_NAME, split=split, queries=queries, corpus=corpus,
                    qrels=qrels, parallel=True,
                    meta={"seed": seed, "generated": True, "languages": langs})


def write_local(out_dir: str | Path, seed: int = 0, split: str = "test") -> Path:
    """Write the quickstart data as files, in the generic ``local`` dataset layout.

    Creates ``queries.jsonl`` (id, lang, text), ``corpus.jsonl`` (id, lang, text),
    ``qrels.tsv`` (query_lang, query_id, doc_id, relevance; tab-separated, with header) for
    the evaluation split and ``train.jsonl`` (query, passage, lang, parallel_id).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = eval_data(seed=seed, split=split)

    def dump(name: str, rows: list[dict[str, str]]) -> None:
        with open(out / name, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")

    dump("queries.jsonl", [{"id": q.id, "lang": q.lang, "text": q.text}
                           for qs in data.queries.values() for q in qs])
    dump("corpus.jsonl", [{"id": d.id, "lang": d.lang, "text": d.text}
                          for ds in data.corpus.values() for d in ds])
    with open(out / "qrels.tsv", "w", encoding="utf-8") as f:
        f.write("query_lang\tquery_id\tdoc_id\trelevance\n")
        for (lang, qid), docs in data.qrels.items():
            for doc in sorted(docs):
                f.write(f"{lang}\t{qid}\t{doc}\t1\n")
    dump("train.jsonl", [{"query": ex.query, "passage": ex.passage, "lang": ex.lang,
                          "parallel_id": ex.parallel_id} for ex in train_corpus(seed).examples])
    return out
