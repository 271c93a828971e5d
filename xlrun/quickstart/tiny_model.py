"""A tiny BERT encoder and tokenizer, built on the fly for the offline quickstart.

The tokenizer is a WordPiece model trained with the ``tokenizers`` library on the texts of
the generated training corpus (all languages and scripts); the encoder is a randomly
initialised 2-layer BERT. Both are saved in Hugging Face format, so
``AutoTokenizer.from_pretrained(folder)`` and ``AutoModel.from_pretrained(folder)`` load them
without network access. Builds are deterministic and identified by a fingerprint of their
recipe; a folder holding the same fingerprint is reused, and a build is written to a
temporary sibling folder and renamed into place, so that parallel workers can race safely.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import uuid
from collections import Counter
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

from xlrun.errors import UsageError
from xlrun.quickstart.corpus import train_corpus, transliterate
from xlrun.quickstart.templates import CONSONANTS, TRANSLITERATION, VOWELS

RECIPE_VERSION = 1
MODEL_PREFIX = "quickstart:"
MODELS = ("tiny",)
FINGERPRINT_FILE = "xlrun_fingerprint.txt"
_INIT_LOCK = threading.Lock()  # model init seeds torch's global RNG

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
VOCAB_SIZE = 3000
MAX_POSITIONS = 128
BERT_CONFIG = {
    "hidden_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 256,
    "max_position_embeddings": MAX_POSITIONS,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "type_vocab_size": 2,
}


def _tokenizer_texts(seed: int) -> list[str]:
    """Training texts for the tokenizer: questions and passages of the training split."""
    texts = []
    for ex in train_corpus(seed).examples:
        texts += [ex.query, ex.passage]
    return texts


def _alphabet() -> list[str]:
    """Every character invented names can use, in every script (so no name hits [UNK])."""
    chars = set(CONSONANTS + VOWELS + (CONSONANTS + VOWELS).upper())
    for table in TRANSLITERATION.values():
        for out in table.values():
            chars |= set(out) | set(out.upper())
    chars |= set("ς0123456789")
    return sorted(chars)


def fingerprint(seed: int = 0) -> str:
    """A hash of everything that determines the built files (recipe, sizes, texts)."""
    h = hashlib.sha256()
    meta = {"version": RECIPE_VERSION, "seed": seed, "vocab": VOCAB_SIZE, "bert": BERT_CONFIG,
            "special": SPECIAL_TOKENS}
    h.update(json.dumps(meta, sort_keys=True).encode())
    for text in _tokenizer_texts(seed):
        h.update(text.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def _normalizer() -> normalizers.Normalizer:

    return normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])


def _syllables() -> list[str]:
    """Consonant–vowel syllables of invented names, in every script (lowercase)."""
    out = set()
    for c in CONSONANTS:
        for v in VOWELS:
            out.add(c + v)
            for lang in TRANSLITERATION:
                out.add(transliterate(c + v, lang).lower())
    return sorted(out)


def build_vocab(seed: int = 0) -> list[str]:
    """The WordPiece vocabulary, learned deterministically from the training texts.

    Special tokens; every character (alone and as a ``##`` continuation); the consonant–vowel
    syllables names are made of, in each script (so unseen names split into syllables);
    then the most frequent words of the training texts (count ≥ 2, ties by spelling) up to
    ``VOCAB_SIZE``. (The ``tokenizers`` WordPiece trainer breaks ties between equally
    frequent merges in hash-map order, which differs between processes; this does not.)
    """
    norm, pre = _normalizer(), pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in _tokenizer_texts(seed):
        counts.update(w for w, _ in pre.pre_tokenize_str(norm.normalize_str(text)))
    chars = sorted({c for w in counts for c in w} | {c.lower() for c in _alphabet()})
    vocab: list[str] = list(SPECIAL_TOKENS)
    for piece in chars + ["##" + c for c in chars] + _syllables() + ["##" + s for s in _syllables()]:
        if piece not in vocab:
            vocab.append(piece)
    seen = set(vocab)
    for word, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(vocab) >= VOCAB_SIZE or n < 2:
            break
        if word not in seen:
            vocab.append(word)
            seen.add(word)
    return vocab


def _train_tokenizer(seed: int) -> Tokenizer:

    vocab = {piece: i for i, piece in enumerate(build_vocab(seed))}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = _normalizer()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return tok


def _write(folder: Path, seed: int, fp: str) -> None:
    """Train the tokenizer, initialise the model and save both into ``folder``."""
    tok = _train_tokenizer(seed)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=MAX_POSITIONS,
    )
    hf_tok.save_pretrained(folder)
    _set_tokenizer_class(folder)
    config = BertConfig(vocab_size=tok.get_vocab_size(), pad_token_id=tok.token_to_id("[PAD]"),
                        **BERT_CONFIG)
    with _INIT_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(config, add_pooling_layer=False)
    model.save_pretrained(folder)
    (folder / FINGERPRINT_FILE).write_text(fp + "\n", encoding="utf-8")


def _set_tokenizer_class(folder: Path) -> None:
    """Name the generic fast tokenizer class, which every transformers version resolves."""
    path = folder / "tokenizer_config.json"
    cfg = json.loads(path.read_text(encoding="utf-8"))
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _read_fingerprint(folder: Path) -> str | None:
    try:
        return (folder / FINGERPRINT_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return None


def build_tiny_model(out_dir: str | Path, seed: int = 0) -> Path:
    """Build the tiny encoder and tokenizer into ``out_dir`` (reused when already built).

    The build goes to a temporary sibling folder that is renamed into place; a folder with
    another fingerprint is replaced. Safe when several processes build at the same time.

    Returns:
        ``out_dir``, ready for ``AutoModel``/``AutoTokenizer.from_pretrained``.
    """
    out = Path(out_dir)
    fp = fingerprint(seed)
    if _read_fingerprint(out) == fp:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _write(tmp, seed, fp)
        for _ in range(3):
            try:
                os.rename(tmp, out)
                return out
            except OSError:
                if _read_fingerprint(out) == fp:  # another worker won the race
                    return out
                if out.exists():  # stale build of another recipe: move it away, retry
                    old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
                    try:
                        os.rename(out, old)
                        shutil.rmtree(old, ignore_errors=True)
                    except OSError:
                        pass
        if _read_fingerprint(out) == fp:
            return out
        raise OSError(f"could not move the tiny model build into {out}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_tiny_model(cache_dir: str | Path, seed: int = 0) -> Path:
    """The folder of the tiny quickstart model under ``cache_dir``, built on first use."""
    return build_tiny_model(Path(cache_dir) / "quickstart-tiny", seed=seed)


def resolve_model_name(name: str, cache_dir: str | Path) -> str:
    """A local folder for ``quickstart:*`` model names; any other name unchanged.

    Raises:
        UsageError: a ``quickstart:`` name other than the known ones.
    """
    if not name.startswith(MODEL_PREFIX):
        return name
    which = name[len(MODEL_PREFIX):]
    if which not in MODELS:
        allowed = ", ".join(MODEL_PREFIX + m for m in MODELS)
        raise UsageError(f"unknown quickstart model {name!r}; allowed: {allowed}")
    return str(ensure_tiny_model(cache_dir))
