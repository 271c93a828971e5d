"""What the runs of one worker process share: a warm worker.

Runs of a study share a model and data; loading them again for every run costs more than a
small model's training on a big GPU. A :class:`WarmCache` lives as long as its worker
process (one per lane) and keeps

* **encoders** by their whole ``[model]`` section and device: the tokenizer and the model are
  loaded once; a copy of the freshly loaded weights (the encoder's full ``state_dict``,
  cloned on its device) is restored into the same modules before every later run, with
  the model put back in eval mode and its gradients dropped — exactly the state
  :func:`~xlrun.execute.pipeline.load_encoder` returns in a fresh process;
* **tokenisations**: the encoder's tokenizer is wrapped in a :class:`CachingTokenizer`, which
  remembers each text's token ids (per truncation length) and pads batches itself, so
  evaluation and training texts are tokenised once per process;
* **training corpora** and **evaluation data** (parsed files, candidates, qrels) by their
  section, minus the fields that do not change what is loaded, and by the size and mtime of
  the files they read (an edited file is read again).

Everything is in memory; nothing changes what a run computes (a test compares a run's
``query_results`` executed cold and warm). At most ``max_encoders`` encoders are kept
(least recently used first out).
"""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xlrun.spec.schema import EvalSection, ModelSection, TrainDataSection


def _stamp(path: str) -> list[tuple[str, int, int]]:
    """(name, size, mtime_ns) of a local file or of the files in a local folder; [] otherwise."""
    if not path:
        return []
    p = Path(path)
    try:
        if p.is_file():
            st = p.stat()
            return [(p.name, st.st_size, st.st_mtime_ns)]
        if p.is_dir():
            out = []
            for f in sorted(p.iterdir()):
                if f.is_file():
                    st = f.stat()
                    out.append((f.name, st.st_size, st.st_mtime_ns))
            return out
    except OSError:
        return []
    return []


def _key(section: Any, drop: Sequence[str] = ()) -> str:
    d = {k: v for k, v in dataclasses.asdict(section).items() if k not in drop}
    return json.dumps([d, _stamp(str(d.get("path") or ""))], sort_keys=True, default=str)


# ----------------------------------------------------------------------------- tokenizer
class CachingTokenizer:
    """A tokenizer wrapper that remembers each text's encoding and pads batches itself.

    Serves the two calls xlrun makes on every batch — ``tok(texts, padding=True,
    truncation=True, max_length=m, return_tensors="pt")`` (evaluation) and ``tok(texts,
    truncation=True, max_length=m)`` (training) — from per-text encodings computed once with
    the wrapped tokenizer; the result has the same keys and values as the wrapped tokenizer's
    (right padding with its pad ids). Any other call, and every attribute, goes to the
    wrapped tokenizer.
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tok = tokenizer
        self._cache: dict[tuple[int, str], dict[str, np.ndarray]] = {}
        self.hits = 0
        self.misses = 0

    @property
    def wrapped(self) -> Any:
        """The real tokenizer."""
        return self._tok

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tok, name)

    def __len__(self) -> int:
        return len(self._tok)

    def _servable(self, texts: Any, kwargs: dict[str, Any]) -> bool:
        if not isinstance(texts, list | tuple) or not all(isinstance(t, str) for t in texts):
            return False
        if not kwargs.get("truncation") or "max_length" not in kwargs:
            return False
        if set(kwargs) - {"padding", "truncation", "max_length", "return_tensors"}:
            return False
        if kwargs.get("padding") not in (None, False, True, "longest"):
            return False
        if kwargs.get("return_tensors") not in (None, "pt"):
            return False
        return getattr(self._tok, "padding_side", "right") == "right"

    def _encodings(self, texts: Sequence[str], max_length: int) -> list[dict[str, np.ndarray]]:
        keys = [(max_length, t) for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self._cache))
        if missing:
            self.misses += len(missing)
            enc = self._tok([t for _, t in missing], truncation=True, max_length=max_length)
            names = [n for n in enc if n in ("input_ids", "attention_mask", "token_type_ids")]
            for i, k in enumerate(missing):
                self._cache[k] = {n: np.asarray(enc[n][i], dtype=np.int64) for n in names}
        self.hits += len(keys) - len(missing)
        return [self._cache[k] for k in keys]

    def __call__(self, texts: Any = None, *args: Any, **kwargs: Any) -> Any:
        if args or not self._servable(texts, kwargs):
            return self._tok(texts, *args, **kwargs)
        encs = self._encodings(texts, int(kwargs["max_length"]))
        names = list(encs[0]) if encs else ["input_ids", "attention_mask"]
        if not kwargs.get("padding"):
            return {n: [e[n].tolist() for e in encs] for n in names}
        pad = {"input_ids": getattr(self._tok, "pad_token_id", None) or 0,
               "attention_mask": 0,
               "token_type_ids": getattr(self._tok, "pad_token_type_id", 0) or 0}
        longest = max((len(e["input_ids"]) for e in encs), default=0)
        out: dict[str, Any] = {}
        for n in names:
            arr = np.full((len(encs), longest), pad[n], dtype=np.int64)
            for i, e in enumerate(encs):
                arr[i, :len(e[n])] = e[n]
            out[n] = arr
        if kwargs.get("return_tensors") == "pt":
            out = {n: torch.from_numpy(a) for n, a in out.items()}
        else:
            out = {n: a.tolist() for n, a in out.items()}
        return out


# ----------------------------------------------------------------------------- the cache
@dataclasses.dataclass
class _EncoderEntry:
    encoder: Any
    snapshot: dict[str, Any]
    uses: int = 0


class WarmCache:
    """Encoders, tokenisations, corpora and evaluation data shared by a worker's runs."""

    def __init__(self, max_encoders: int = 2) -> None:
        self.max_encoders = max(1, max_encoders)
        self._encoders: OrderedDict[str, _EncoderEntry] = OrderedDict()
        self._corpora: dict[str, Any] = {}
        self._eval: dict[str, Any] = {}
        self.stats: dict[str, int] = {"encoder_loads": 0, "encoder_restores": 0,
                                      "corpus_loads": 0, "corpus_hits": 0,
                                      "eval_loads": 0, "eval_hits": 0}

    # -- encoders
    def encoder(self, model: ModelSection, device: str, cache_dir: Path,
                load: Callable[[ModelSection, str, Path], Any]) -> Any:
        """The run's encoder in its freshly loaded state (loaded once, restored after)."""
        key = json.dumps([dataclasses.asdict(model), str(device), str(cache_dir)],
                         sort_keys=True)
        entry = self._encoders.get(key)
        if entry is None:
            encoder = load(model, device, cache_dir)
            tok = getattr(encoder, "tokenizer", None)
            if tok is not None and not isinstance(tok, CachingTokenizer):
                encoder.tokenizer = CachingTokenizer(tok)
            with torch.no_grad():
                snapshot = {k: v.detach().clone() for k, v in encoder.state_dict().items()}
            entry = _EncoderEntry(encoder, snapshot)
            self._encoders[key] = entry
            while len(self._encoders) > self.max_encoders:
                self._encoders.popitem(last=False)
            self.stats["encoder_loads"] += 1
        else:
            self._encoders.move_to_end(key)
            enc = entry.encoder
            with torch.no_grad():
                enc.load_state_dict(entry.snapshot)
            enc.zero_grad(set_to_none=True)
            enc.eval()
            self.stats["encoder_restores"] += 1
        entry.uses += 1
        return entry.encoder

    # -- data
    def train_corpus(self, section: TrainDataSection, load: Callable[[TrainDataSection], Any]
                     ) -> Any:
        """The parsed training corpus of ``section`` (loaded once per content)."""
        key = _key(section)
        if key not in self._corpora:
            self._corpora[key] = load(section)
            self.stats["corpus_loads"] += 1
        else:
            self.stats["corpus_hits"] += 1
        return self._corpora[key]

    def eval_data(self, section: EvalSection, load: Callable[[EvalSection], Any]) -> Any:
        """The loaded evaluation data of ``section``; ``top_k``, ``batch_size`` and ``settings``
        do not change what is loaded, so sections that differ only there share it."""
        key = _key(section, drop=("top_k", "batch_size", "settings"))
        if key not in self._eval:
            self._eval[key] = load(section)
            self.stats["eval_loads"] += 1
        else:
            self.stats["eval_hits"] += 1
        return self._eval[key]

    def clear(self) -> None:
        """Forget everything."""
        self._encoders.clear()
        self._corpora.clear()
        self._eval.clear()

