"""Sentence-transformers model folders: what a model declares, and writing one.

A sentence-transformers model is a folder (or hub repository) with ``modules.json`` listing
its modules in order. xlrun reads the modules a text embedder is made of, the way
sentence-transformers itself does:

* ``Transformer`` (usually at the root): the Hugging Face model and tokenizer, with
  ``sentence_bert_config.json`` (``max_seq_length``, ``do_lower_case``; sentence-transformers
  ≥ 6 also ``query_length`` / ``document_length``);
* ``Pooling`` (``1_Pooling/config.json``): ``cls``, ``mean``, ``max``, ``lasttoken``,
  ``weightedmean`` or ``mean_sqrt_len_tokens``, and ``include_prompt``;
* ``Dense`` layers (weights and activation) after pooling;
* ``Normalize``;

and ``config_sentence_transformers.json``: the prompts, the default prompt name and the
similarity function. A folder without ``modules.json`` is a plain Hugging Face model
(:attr:`ModelFolder.sentence_transformers` is false) and declares nothing.

:func:`write_folder` writes the same layout, so that ``SentenceTransformer(path)`` loads a
model trained by xlrun and embeds text as xlrun did.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
import transformers
from huggingface_hub import hf_hub_download
from huggingface_hub.utils import EntryNotFoundError, HFValidationError, RepositoryNotFoundError
from safetensors.torch import save_file

from xlrun.errors import UsageError
from xlrun.version import __version__

_log = logging.getLogger(__name__)

POOLING_MODES = ("cls", "mean", "max", "lasttoken", "weightedmean", "mean_sqrt_len_tokens")
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_SBERT_CONFIG_NAMES = ("sentence_bert_config.json", "sentence_roberta_config.json",
                       "sentence_distilbert_config.json", "sentence_camembert_config.json",
                       "sentence_albert_config.json", "sentence_xlm-roberta_config.json",
                       "sentence_xlnet_config.json")
_SUPPORTED_MODULES = ("Transformer", "Pooling", "Dense", "Normalize")
PASSAGE_PROMPT_NAMES = ("document", "passage", "corpus")
"""Prompt names used for passages, in the order sentence-transformers' ``encode_document``
tries them."""


class ModelFormatError(UsageError):
    """A model folder xlrun cannot load faithfully (an unsupported module or setting)."""


@dataclass(frozen=True)
class DenseLayer:
    """One ``Dense`` module: a linear layer (optionally residual) and an activation."""

    path: str
    in_features: int
    out_features: int
    bias: bool = True
    activation: str = "torch.nn.modules.activation.Tanh"
    use_residual: bool = False


@dataclass(frozen=True)
class ModelFolder:
    """What a model folder or hub repository declares about embedding text.

    ``transformer`` and ``subfolder`` say where ``AutoModel`` / ``AutoTokenizer`` load the
    transformer from. Fields a folder does not declare are ``None``.
    """

    name: str
    transformer: str
    subfolder: str = ""
    sentence_transformers: bool = False
    pooling: str | None = None
    include_prompt: bool | None = None
    dense: tuple[DenseLayer, ...] = ()
    normalize: bool = False
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    similarity_fn_name: str | None = None
    max_seq_length: int | None = None
    query_length: int | None = None
    document_length: int | None = None
    do_lower_case: bool = False

    def prompt(self, side: str) -> tuple[str, str] | None:
        """``(prompt name, prompt)`` the model declares for ``side`` (``query``/``passage``).

        Queries use the ``query`` prompt, passages the first of ``document``, ``passage``,
        ``corpus`` the model declares; otherwise the default prompt, if one is named.
        """
        names = ("query",) if side == "query" else PASSAGE_PROMPT_NAMES
        for name in names:
            if name in self.prompts:
                return name, self.prompts[name]
        if self.default_prompt_name:
            return self.default_prompt_name, self.prompts.get(self.default_prompt_name, "")
        return None

    def max_length(self, side: str) -> int | None:
        """The truncation length the model declares for ``side`` (``None``: not declared)."""
        specific = self.query_length if side == "query" else self.document_length
        return specific if specific is not None else self.max_seq_length


class _Source:
    """Reads files of a local folder or a hub repository (``None`` when a file is absent)."""

    def __init__(self, name: str) -> None:
        self.name = name
        path = Path(name).expanduser()
        self.local = path if path.is_dir() else None

    def path(self, rel: str) -> Path | None:
        if self.local is not None:
            p = self.local / rel
            return p if p.is_file() else None
        if Path(self.name).expanduser().exists() or self.name.count("/") > 1 or ":" in self.name:
            return None  # a file path, or not a hub id (e.g. quickstart:tiny)
        try:
            return Path(hf_hub_download(self.name, rel))
        except EntryNotFoundError:  # also: not in the cache when offline
            return None
        except (RepositoryNotFoundError, HFValidationError, OSError) as e:
            # not a hub id, or the hub cannot be reached: loading the transformer says why
            _log.warning("%s: cannot read %s from the hub (%s)", self.name, rel,
                         type(e).__name__)
            return None

    def json(self, rel: str) -> Any:
        p = self.path(rel)
        if p is None:
            return None
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ModelFormatError(f"{self.name}: cannot read {rel}: {e}") from e

    def folder(self, rel: str) -> str:
        """A local folder holding ``rel``'s files (downloaded from the hub if need be)."""
        if self.local is not None:
            return str(self.local / rel)
        config = self.path(f"{rel}/config.json")
        if config is None:
            raise ModelFormatError(f"{self.name}: {rel}/config.json is missing")
        for weights in ("model.safetensors", "pytorch_model.bin"):
            if self.path(f"{rel}/{weights}") is not None:
                break
        return str(config.parent)


def _module_kind(entry: dict[str, Any], where: str) -> str:
    kind = str(entry.get("type", "")).rsplit(".", 1)[-1]
    if kind not in _SUPPORTED_MODULES:
        raise ModelFormatError(
            f"{where}: module {entry.get('type')!r} ({entry.get('path') or 'the root'}) is not "
            f"supported; xlrun loads models made of {', '.join(_SUPPORTED_MODULES)}")
    return kind


def _pooling(cfg: dict[str, Any], where: str) -> tuple[str, bool]:
    mode = cfg.get("pooling_mode")
    if mode is None:
        modes = [m for key, m in _LEGACY_POOLING_KEYS.items() if cfg.get(key)]
        mode = modes if len(modes) != 1 else modes[0]
        if not modes:
            mode = "mean"
    if isinstance(mode, list) and len(mode) == 1:
        mode = mode[0]
    if not isinstance(mode, str) or mode not in POOLING_MODES:
        raise ModelFormatError(f"{where}: pooling {mode!r} is not supported; xlrun pools with one "
                               f"of {', '.join(POOLING_MODES)}")
    return mode, bool(cfg.get("include_prompt", True))


def _sbert_config(src: _Source, subfolder: str, where: str) -> dict[str, Any]:
    prefix = f"{subfolder}/" if subfolder else ""
    cfg: dict[str, Any] = {}
    for name in _SBERT_CONFIG_NAMES:
        found = src.json(prefix + name)
        if found:
            cfg = found
            break
    task = cfg.get("transformer_task", "feature-extraction")
    if task != "feature-extraction":
        raise ModelFormatError(f"{where}: transformer_task {task!r} is not supported "
                               "(xlrun embeds with 'feature-extraction' models)")
    modalities = cfg.get("modality_config") or {"text": {}}
    if set(modalities) != {"text"}:
        raise ModelFormatError(f"{where}: the Transformer module takes {sorted(modalities)} "
                               "inputs; xlrun embeds plain text only")
    if cfg.get("processing_kwargs") or cfg.get("query_expansion"):
        key = "processing_kwargs" if cfg.get("processing_kwargs") else "query_expansion"
        raise ModelFormatError(f"{where}: sentence_bert_config.json sets {key}, which xlrun "
                               "does not support")
    return cfg


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def read_folder(name: str) -> ModelFolder:
    """What the model ``name`` (local folder or hub id) declares.

    Raises:
        ModelFormatError: a sentence-transformers model with modules xlrun cannot reproduce
            (anything but Transformer → Pooling → Dense … → Normalize), several pooling modes,
            or a non-text Transformer.
    """
    src = _Source(name)
    modules = src.json("modules.json")
    if not modules:
        return ModelFolder(name=name, transformer=name)
    if not isinstance(modules, list):
        raise ModelFormatError(f"{name}: modules.json is not a list of modules")
    modules = sorted(modules, key=lambda m: int(m.get("idx", 0)))
    kinds = [_module_kind(m, name) for m in modules]
    valid = kinds[:2] == ["Transformer", "Pooling"] and all(k in ("Dense", "Normalize")
                                                              for k in kinds[2:])
    if valid and "Normalize" in kinds:
        valid = kinds.index("Normalize") == len(kinds) - 1  # once, and last
    if not valid:
        raise ModelFormatError(f"{name}: modules {kinds} are not in the order xlrun reproduces "
                               "(Transformer, Pooling, Dense…, Normalize)")
    subfolder = str(modules[0].get("path") or "")
    sbert = _sbert_config(src, subfolder, name)
    pool_dir = str(modules[1].get("path") or "")
    pool_cfg = src.json(f"{pool_dir}/config.json" if pool_dir else "config.json") or {}
    pooling, include_prompt = _pooling(pool_cfg, f"{name}/{pool_dir}")
    dense = []
    for m in modules[2:]:
        if _module_kind(m, name) != "Dense":
            continue
        rel = str(m.get("path") or "")
        cfg = src.json(f"{rel}/config.json")
        if not cfg:
            raise ModelFormatError(f"{name}: {rel}/config.json is missing")
        for key in ("module_input_name", "module_output_name"):
            if cfg.get(key, "sentence_embedding") != "sentence_embedding":
                raise ModelFormatError(f"{name}/{rel}: a Dense layer on {cfg[key]!r} is not "
                                       "supported (xlrun applies Dense to the sentence embedding)")
        activation = cfg.get("activation_function") or "torch.nn.modules.linear.Identity"
        dense.append(DenseLayer(path=src.folder(rel), in_features=int(cfg["in_features"]),
                                out_features=int(cfg["out_features"]),
                                bias=bool(cfg.get("bias", True)), activation=str(activation),
                                use_residual=bool(cfg.get("use_residual", False))))
    st_cfg = src.json("config_sentence_transformers.json") or {}
    prompts = {str(k): str(v) for k, v in (st_cfg.get("prompts") or {}).items() if v is not None}
    default_prompt = st_cfg.get("default_prompt_name") or None
    if default_prompt is not None and default_prompt not in prompts:
        raise ModelFormatError(f"{name}: default_prompt_name {default_prompt!r} is not one of "
                               f"the prompts {sorted(prompts)}")
    return ModelFolder(
        name=name,
        transformer=name,
        subfolder=subfolder,
        sentence_transformers=True,
        pooling=pooling,
        include_prompt=include_prompt,
        dense=tuple(dense),
        normalize="Normalize" in kinds,
        prompts=prompts,
        default_prompt_name=default_prompt,
        similarity_fn_name=st_cfg.get("similarity_fn_name") or None,
        max_seq_length=_int_or_none(sbert.get("max_seq_length")),
        query_length=_int_or_none(sbert.get("query_length")),
        document_length=_int_or_none(sbert.get("document_length")),
        do_lower_case=bool(sbert.get("do_lower_case", False)),
    )


def is_sentence_transformers(name: str) -> bool:
    """Whether ``name`` (local folder or hub id) is a sentence-transformers model."""
    return _Source(name).path("modules.json") is not None


def _versions() -> dict[str, str]:
    out = {"transformers": transformers.__version__, "pytorch": torch.__version__,
           "xlrun": __version__}
    with contextlib.suppress(metadata.PackageNotFoundError):
        out["sentence_transformers"] = metadata.version("sentence-transformers")
    return out


def write_folder(path: Path, *, hidden_size: int, pooling: str, include_prompt: bool,
                 dense: list[tuple[DenseLayer, dict[str, Any]]], normalize: bool,
                 prompts: dict[str, str], query_length: int, document_length: int,
                 do_lower_case: bool) -> None:
    """Write the sentence-transformers files next to a saved Hugging Face model in ``path``.

    ``dense`` pairs each layer's description with its ``state_dict`` (``linear.weight``,
    ``linear.bias``, ``residual.weight``). The per-side lengths are written as
    ``query_length`` / ``document_length`` (read by sentence-transformers ≥ 6), with
    ``max_seq_length`` the longer of the two.
    """
    def dump(rel: str, obj: Any) -> None:
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", encoding="utf-8")

    modules: list[dict[str, Any]] = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    sbert: dict[str, Any] = {"max_seq_length": max(query_length, document_length),
                             "do_lower_case": do_lower_case}
    if query_length != document_length:
        sbert.update(query_length=query_length, document_length=document_length)
    dump("sentence_bert_config.json", sbert)
    dump("1_Pooling/config.json", {"embedding_dimension": hidden_size, "pooling_mode": pooling,
                                   "include_prompt": include_prompt})
    for layer, state in dense:
        i = len(modules)
        rel = f"{i}_Dense"
        modules.append({"idx": i, "name": str(i), "path": rel,
                        "type": "sentence_transformers.models.Dense"})
        cfg: dict[str, Any] = {"in_features": layer.in_features, "out_features": layer.out_features,
                               "bias": layer.bias, "activation_function": layer.activation}
        if layer.use_residual:
            cfg["use_residual"] = True
        dump(f"{rel}/config.json", cfg)
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()},
                  str(path / rel / "model.safetensors"))
    if normalize:
        i = len(modules)
        modules.append({"idx": i, "name": str(i), "path": f"{i}_Normalize",
                        "type": "sentence_transformers.models.Normalize"})
        (path / f"{i}_Normalize").mkdir(parents=True, exist_ok=True)
    dump("modules.json", modules)
    dump("config_sentence_transformers.json", {
        "__version__": _versions(),
        "model_type": "SentenceTransformer",
        "prompts": prompts,
        "default_prompt_name": None,
        "similarity_fn_name": "cosine" if normalize else "dot",
    })
