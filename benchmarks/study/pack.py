"""The 4-bit model pack that travels to the GPU machine: rebuild, restrict, make tiny.

A *pack* is a folder as in ``../shared/models/multilingual-e5-small``: ``config.json`` (a
BertModel config), ``weights.safetensors`` (every 2-D weight matrix as Q4_0 — ``<name>.q4``
uint8 nibble pairs, low nibble first, and ``<name>.scale`` fp16 per block of 32 values
along a row, ``w = (nibble - 8) * scale``; everything else fp32) and the tokenizer files
(``tokenizer.json`` + ``tokenizer_config.json`` + ``special_tokens_map.json``).

    python benchmarks/study/pack.py export PACK OUT [--dtype float32]   # → Hugging Face folder
    python benchmarks/study/pack.py restrict PACK OUT TEXTS.txt         # vocabulary of TEXTS only
    python benchmarks/study/pack.py tiny TOKENIZER_DIR OUT              # random 2-layer BERT

``restrict`` keeps the special pieces and every piece the tokenizer uses on the given texts
(one per line, prefixes included), in their original order, and drops the other rows of the
word-embedding matrix (bit-exact: the kept rows' bytes are copied). A Unigram tokenizer picks
each word's best segmentation; removing pieces that no best segmentation of these texts uses
leaves those segmentations, so every one of these texts gets the same pieces, renumbered
(:func:`check_restricted` verifies it for every text). Needs numpy, safetensors and
tokenizers only (the GPU image has them).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
BLOCK = 32


# ----------------------------------------------------------------------------- Q4_0
def dequantize(q4: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """uint8 nibble pairs and fp16 block scales → float32 matrix."""
    rows, half = q4.shape
    nib = np.empty((rows, half * 2), dtype=np.int8)
    nib[:, 0::2] = q4 & 0x0F
    nib[:, 1::2] = q4 >> 4
    vals = (nib - 8).astype(np.float32).reshape(rows, -1, BLOCK)
    return (vals * scale.astype(np.float32)[:, :, None]).reshape(rows, half * 2)


def quantize(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float matrix (columns a multiple of 32) → (q4, scale) in the pack's Q4_0 layout."""
    rows, cols = w.shape
    blocks = w.astype(np.float32).reshape(rows, cols // BLOCK, BLOCK)
    amax = np.abs(blocks).max(-1)
    scale = (amax / 7.0).astype(np.float16)
    s = scale.astype(np.float32)[:, :, None]
    nib = np.clip(np.round(np.divide(blocks, s, out=np.zeros_like(blocks), where=s > 0)) + 8,
                  0, 15).astype(np.uint8).reshape(rows, cols)
    return (nib[:, 0::2] | (nib[:, 1::2] << 4)).astype(np.uint8), scale


def load_pack(pack: str | Path) -> dict[str, np.ndarray]:
    """``{hf_name: float32 array}`` with the Q4 matrices dequantized."""
    from safetensors.numpy import load_file

    packed = load_file(str(Path(pack) / "weights.safetensors"))
    state = {}
    for name, arr in packed.items():
        if name.endswith(".scale"):
            continue
        if name.endswith(".q4"):
            base = name[:-3]
            state[base] = dequantize(arr, packed[base + ".scale"])
        else:
            state[name] = arr.astype(np.float32)
    return state


def export_hf(pack: str | Path, out: str | Path, dtype: str = "float32") -> Path:
    """Write a Hugging Face folder (``model.safetensors``, config, tokenizer) of a pack."""
    from safetensors.numpy import save_file

    pack, out = Path(pack), Path(out)
    np_dtype = np.float16 if dtype == "float16" else np.float32
    state = {k: np.ascontiguousarray(v.astype(np_dtype)) for k, v in load_pack(pack).items()}
    config = json.loads((pack / "config.json").read_text())
    vocab, hidden = state["embeddings.word_embeddings.weight"].shape
    if (vocab, hidden) != (config["vocab_size"], config["hidden_size"]):
        raise SystemExit(f"pack {pack}: embeddings {vocab}×{hidden} do not match config.json")
    config["torch_dtype"] = dtype
    out.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2))
    for name in TOKENIZER_FILES:
        if (pack / name).is_file():
            shutil.copy(pack / name, out / name)
    return out


# ----------------------------------------------------------------------------- restrict
def used_ids(tokenizer_json: str | Path, texts: Iterable[str], batch: int = 4096) -> set[int]:
    """Ids the tokenizer produces on ``texts`` (special tokens included, no truncation)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    tok.no_truncation()
    tok.no_padding()
    used: set[int] = set()
    buf: list[str] = []
    for t in texts:
        buf.append(t)
        if len(buf) >= batch:
            for e in tok.encode_batch(buf):
                used.update(e.ids)
            buf.clear()
    for e in tok.encode_batch(buf):
        used.update(e.ids)
    return used


def restrict(pack: str | Path, out: str | Path, texts: Sequence[str]) -> dict[str, int]:
    """Write a pack whose vocabulary is the pieces ``texts`` use (plus the special tokens).

    Returns counts: ``kept``, ``vocab_before``.
    """
    from safetensors.numpy import load_file, save_file

    pack, out = Path(pack), Path(out)
    spec = json.loads((pack / "tokenizer.json").read_text(encoding="utf-8"))
    model = spec["model"]
    if model.get("type") != "Unigram":
        raise SystemExit(f"restrict supports Unigram tokenizers, not {model.get('type')}")
    specials = {int(a["id"]) for a in spec.get("added_tokens", [])}
    if model.get("unk_id") is not None:
        specials.add(int(model["unk_id"]))
    keep = sorted(used_ids(pack / "tokenizer.json", texts) | specials)
    new_id = {old: i for i, old in enumerate(keep)}
    model["vocab"] = [model["vocab"][i] for i in keep]
    if model.get("unk_id") is not None:
        model["unk_id"] = new_id[int(model["unk_id"])]
    for a in spec.get("added_tokens", []):
        a["id"] = new_id[int(a["id"])]
    post = spec.get("post_processor") or {}
    for entry in (post.get("special_tokens") or {}).values():
        entry["ids"] = [new_id[int(i)] for i in entry["ids"]]
    for key in ("sep", "cls"):  # RobertaProcessing / BertProcessing: [token, id]
        if isinstance(post.get(key), list):
            post[key] = [post[key][0], new_id[int(post[key][1])]]
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    for name in TOKENIZER_FILES[1:]:
        if (pack / name).is_file():
            shutil.copy(pack / name, out / name)
    packed = load_file(str(pack / "weights.safetensors"))
    rows = np.asarray(keep, dtype=np.int64)
    for suffix in (".q4", ".scale", ""):
        name = "embeddings.word_embeddings.weight" + suffix
        if name in packed:
            packed[name] = np.ascontiguousarray(packed[name][rows])
    save_file(packed, str(out / "weights.safetensors"))
    config = json.loads((pack / "config.json").read_text())
    vocab_before = int(config["vocab_size"])
    config["vocab_size"] = len(keep)
    if config.get("pad_token_id") is not None:
        config["pad_token_id"] = new_id[int(config["pad_token_id"])]
    (out / "config.json").write_text(json.dumps(config, indent=1))
    (out / "kept_ids.json").write_text(json.dumps(keep))
    return {"kept": len(keep), "vocab_before": vocab_before}


def check_restricted(pack: str | Path, restricted: str | Path, texts: Iterable[str]) -> int:
    """Every text's ids under the restricted tokenizer, mapped back, equal the original ids.

    Returns the number of texts checked; raises AssertionError naming the first mismatch.
    """
    from tokenizers import Tokenizer

    keep = json.loads((Path(restricted) / "kept_ids.json").read_text())
    a = Tokenizer.from_file(str(Path(pack) / "tokenizer.json"))
    b = Tokenizer.from_file(str(Path(restricted) / "tokenizer.json"))
    for t in (a, b):
        t.no_truncation()
        t.no_padding()
    lut = np.asarray(keep, dtype=np.int64)
    n = 0
    texts = list(texts)
    for start in range(0, len(texts), 4096):
        chunk = texts[start:start + 4096]
        for text, ea, eb in zip(chunk, a.encode_batch(chunk), b.encode_batch(chunk), strict=True):
            if list(lut[eb.ids]) != ea.ids:
                raise AssertionError(f"tokenisation differs for {text[:60]!r}")
            n += 1
    return n


# ----------------------------------------------------------------------------- tiny
def tiny(tokenizer_dir: str | Path, out: str | Path, layers: int = 2, hidden: int = 64,
         seed: int = 0) -> Path:
    """A random small BERT pack (same format) around an existing tokenizer: for rehearsals."""
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer

    tokenizer_dir, out = Path(tokenizer_dir), Path(out)
    vocab = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json")).get_vocab_size(True)
    rng = np.random.default_rng(seed)
    inter = 4 * hidden

    def mat(r: int, c: int) -> np.ndarray:
        return (rng.standard_normal((r, c)) * 0.05).astype(np.float32)

    state: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": mat(vocab, hidden),
        "embeddings.position_embeddings.weight": mat(512, hidden),
        "embeddings.token_type_embeddings.weight": mat(2, hidden),
        "embeddings.LayerNorm.weight": np.ones(hidden, np.float32),
        "embeddings.LayerNorm.bias": np.zeros(hidden, np.float32),
    }
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for name, (r, c) in {"attention.self.query": (hidden, hidden),
                             "attention.self.key": (hidden, hidden),
                             "attention.self.value": (hidden, hidden),
                             "attention.output.dense": (hidden, hidden),
                             "intermediate.dense": (inter, hidden),
                             "output.dense": (hidden, inter)}.items():
            state[p + name + ".weight"] = mat(r, c)
            state[p + name + ".bias"] = np.zeros(r, np.float32)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            state[p + ln + ".weight"] = np.ones(hidden, np.float32)
            state[p + ln + ".bias"] = np.zeros(hidden, np.float32)
    packed: dict[str, np.ndarray] = {}
    for name, arr in state.items():
        if arr.ndim == 2 and name != "embeddings.position_embeddings.weight" \
                and "token_type" not in name:
            packed[name + ".q4"], packed[name + ".scale"] = quantize(arr)
        else:
            packed[name] = arr
    out.mkdir(parents=True, exist_ok=True)
    save_file(packed, str(out / "weights.safetensors"))
    config = {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": hidden,
              "num_hidden_layers": layers, "num_attention_heads": max(1, hidden // 32),
              "intermediate_size": inter, "vocab_size": vocab, "max_position_embeddings": 512,
              "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
              "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
              "pad_token_id": 1, "initializer_range": 0.02,
              "position_embedding_type": "absolute", "tokenizer_class": "XLMRobertaTokenizer"}
    (out / "config.json").write_text(json.dumps(config, indent=1))
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file():
            shutil.copy(tokenizer_dir / name, out / name)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("pack")
    e.add_argument("out")
    e.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    r = sub.add_parser("restrict")
    r.add_argument("pack")
    r.add_argument("out")
    r.add_argument("texts", help="a text file, one text per line (prefixes included)")
    t = sub.add_parser("tiny")
    t.add_argument("tokenizer_dir")
    t.add_argument("out")
    args = ap.parse_args(argv)
    if args.cmd == "export":
        print(f"model: {export_hf(args.pack, args.out, args.dtype)}")
    elif args.cmd == "restrict":
        texts = Path(args.texts).read_text(encoding="utf-8").split("\n")
        counts = restrict(args.pack, args.out, texts)
        n = check_restricted(args.pack, args.out, texts)
        print(f"kept {counts['kept']} of {counts['vocab_before']} pieces; {n} texts tokenise "
              "identically")
    else:
        print(f"tiny pack: {tiny(args.tokenizer_dir, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
