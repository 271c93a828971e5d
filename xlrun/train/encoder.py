"""A text encoder loaded the way sentence-transformers loads it, trainable end to end.

:func:`load_encoder` loads a model by hub id (online) or local folder (offline). A
sentence-transformers model (a folder with ``modules.json``, see :mod:`xlrun.train.st_format`)
brings its pooling, Dense layers, normalisation, prompts, lengths and lower-casing; the
spec's ``[model]`` values override what the model declares; a plain Hugging Face folder
declares nothing and gets xlrun's defaults (mean pooling, no prefixes, 64/256 tokens).
:attr:`Encoder.sources` says where each setting came from.

Text → vector: the side's prefix (prompt) is prepended, the text is tokenized and truncated
to the side's length, the transformer's last hidden states are pooled (``cls``, ``mean``,
``max``, ``lasttoken``, ``weightedmean``, ``mean_sqrt_len_tokens``; with
``include_prompt = false`` the prompt's tokens are left out of the pooling, as in
sentence-transformers), passed through the Dense layers and L2-normalised. Left- and
right-padded batches give the same vectors.

Training calls :meth:`Encoder.embed_tokens` (gradients reach the transformer and the Dense
layers); evaluation calls :meth:`Encoder.encode`, which tokenizes every text once, sorts
by token count so that each batch pads little, runs under bf16 autocast on CUDA and returns
float32 numpy arrays in input order. :meth:`Encoder.save` writes a sentence-transformers
folder.

The Encoder is a ``torch.nn.Module`` whose ``state_dict`` holds the transformer
(``model.*``) and the Dense layers (``dense.<i>.*``), so saving and restoring base weights
with ``state_dict`` / ``load_state_dict`` covers everything that trains.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import importlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from tokenizers.normalizers import Lowercase
from tokenizers.normalizers import Sequence as NormalizerSequence
from transformers import AutoModel, AutoTokenizer

from xlrun.errors import SpecError
from xlrun.spec.schema import ModelSection
from xlrun.train import st_format
from xlrun.train.st_format import ModelFolder, ModelFormatError

Side = Literal["query", "passage"]
Pooling = Literal["mean", "cls", "max", "lasttoken", "weightedmean", "mean_sqrt_len_tokens"]

_TOKENIZE_CHUNK = 4096


def release_accelerator_memory() -> None:
    """Give cached CUDA blocks back after an out-of-memory error (no-op on CPU)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@dataclass(frozen=True)
class EncoderConfig(ModelSection):
    """A ``[model]`` section with every setting resolved: the spec's value, else what the
    model declares, else xlrun's default (the defaults below, :data:`DEFAULTS`); plus
    ``normalize``, which only the model decides. ``name`` and the prompt names are
    :class:`~xlrun.spec.schema.ModelSection`'s (a field added there is a field here too)."""

    pooling: Pooling = "mean"  # type: ignore[assignment]
    query_prefix: str = ""  # type: ignore[assignment]
    passage_prefix: str = ""  # type: ignore[assignment]
    query_max_length: int = 64  # type: ignore[assignment]
    passage_max_length: int = 256  # type: ignore[assignment]
    include_prompt: bool = True  # type: ignore[assignment]
    normalize: bool = True

    def prefix(self, side: Side) -> str:
        """The prefix (prompt) for ``side``."""
        return self.query_prefix if side == "query" else self.passage_prefix

    def max_length(self, side: Side) -> int:
        """The truncation length for ``side``."""
        return self.query_max_length if side == "query" else self.passage_max_length


SELECTORS: tuple[str, ...] = ("name", "query_prompt_name", "passage_prompt_name",
                              "trust_remote_code")
"""``[model]`` fields that choose (a model, a named prompt, whether its code may run) rather
than set an embedding value."""
SETTINGS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(EncoderConfig)
                                  if f.name not in SELECTORS)
"""The resolved settings an encoder reports (:meth:`Encoder.describe`)."""
DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(EncoderConfig)
                            if f.name in SETTINGS and f.name != "normalize"}
"""What a setting is when neither the spec nor the model says (the values xlrun always used)."""


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; anything else is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class ShapeCounter:
    """The distinct ``(rows, width)`` input shapes an encoder feeds its model.

    Every new shape costs an accelerator something once per process (kernel selection,
    cuDNN attention plans, allocator blocks), so a run's stage timings count them:
    :meth:`take` returns the distinct shapes since the last call and how many of them this
    process had never fed before.
    """

    def __init__(self) -> None:
        self.seen: set[tuple[int, int]] = set()
        self._window: set[tuple[int, int]] = set()
        self._new = 0

    def add(self, rows: int, width: int) -> None:
        """Count one batch of ``rows`` sequences padded to ``width`` tokens."""
        shape = (int(rows), int(width))
        self._window.add(shape)
        if shape not in self.seen:
            self.seen.add(shape)
            self._new += 1

    def take(self) -> tuple[int, int]:
        """``(distinct shapes, new to this process)`` since the last call; starts a new window."""
        out = (len(self._window), self._new)
        self._window, self._new = set(), 0
        return out


PAD_MULTIPLE_CUDA = 32
"""Batches on an accelerator pad to a multiple of this many tokens (capped at the longest
truncation length), so a run feeds the model a few widths instead of one per longest text."""


def padded_width(longest: int, multiple: int, cap: int) -> int:
    """The width a batch whose longest sequence has ``longest`` tokens is padded to:
    ``longest`` rounded up to a multiple of ``multiple`` (1 or less: not rounded), but never
    above ``cap`` unless ``longest`` itself is."""
    if multiple <= 1 or longest <= 0:
        return max(1, longest)
    width = -(-longest // multiple) * multiple
    return max(longest, min(width, cap))


def length_order(lengths: Sequence[int] | np.ndarray) -> np.ndarray:
    """Indices by decreasing length (ties keep input order): the order :meth:`Encoder.encode`
    batches texts in, given their token counts."""
    return np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")


# --------------------------------------------------------------------------- resolution
def resolve_config(folder: ModelFolder, spec: ModelSection | None = None,
                   tokenizer_limit: int | None = None) -> tuple[EncoderConfig, dict[str, str]]:
    """The encoder settings for ``folder`` with the spec's ``[model]`` values on top.

    Returns the config and, per setting, where it came from: ``spec``, ``model …`` or
    ``default``. ``tokenizer_limit`` is the tokenizer's own length limit, used (as
    sentence-transformers does) for a sentence-transformers model that declares no length.

    Raises:
        SpecError: ``query_prompt_name`` / ``passage_prompt_name`` names a prompt the model
            does not declare.
        ModelFormatError: the model ranks by a similarity xlrun cannot reproduce.
    """
    sources: dict[str, str] = {}
    values: dict[str, Any] = {}

    def spec_value(key: str) -> Any:
        return getattr(spec, key, None) if spec is not None else None

    for key, declared in (("pooling", folder.pooling), ("include_prompt", folder.include_prompt)):
        if spec_value(key) is not None:
            values[key], sources[key] = spec_value(key), "spec"
        elif declared is not None:
            values[key], sources[key] = declared, "model"
        else:
            values[key], sources[key] = DEFAULTS[key], "default"
    for side in ("query", "passage"):
        key, prompt_name = f"{side}_prefix", spec_value(f"{side}_prompt_name")
        found = folder.prompt(side)
        if spec_value(key) is not None:
            values[key], sources[key] = spec_value(key), "spec"
        elif prompt_name is not None:
            if prompt_name not in folder.prompts:
                raise SpecError(f"model.{side}_prompt_name", "the model declares no such prompt",
                                value=prompt_name,
                                allowed=sorted(folder.prompts) or "none (the model has no prompts)")
            values[key] = folder.prompts[prompt_name]
            sources[key] = f"spec (the model's prompt {prompt_name!r})"
        elif found is not None:
            values[key], sources[key] = found[1], f"model (prompt {found[0]!r})"
        else:
            values[key], sources[key] = DEFAULTS[key], "default"
        key = f"{side}_max_length"
        if spec_value(key) is not None:
            values[key], sources[key] = spec_value(key), "spec"
        elif folder.max_length(side) is not None:
            values[key], sources[key] = folder.max_length(side), "model"
        elif folder.sentence_transformers and tokenizer_limit:
            values[key], sources[key] = tokenizer_limit, "model (tokenizer limit)"
        else:
            values[key], sources[key] = DEFAULTS[key], "default"
    if folder.sentence_transformers:
        sim = folder.similarity_fn_name or "cosine"
        if not folder.normalize and sim not in ("cosine", "dot"):
            raise ModelFormatError(f"{folder.name}: the model ranks by {sim!r} similarity of "
                                   "unnormalised vectors; xlrun ranks by cosine or dot product")
        values["normalize"] = folder.normalize or sim == "cosine"
        sources["normalize"] = ("model (Normalize module)" if folder.normalize
                                else f"model (similarity {sim!r})")
    else:
        values["normalize"], sources["normalize"] = True, "default"
    return EncoderConfig(name=folder.name, trust_remote_code=bool(spec_value("trust_remote_code")),
                         **values), sources


# --------------------------------------------------------------------------- modules
def _activation(path: str) -> torch.nn.Module:
    """An activation module from its dotted class name (``torch.*`` classes only)."""
    module_name, _, cls_name = path.rpartition(".")
    if not path.startswith("torch.") or not module_name:
        raise ModelFormatError(f"activation function {path!r} is not a torch.nn class")
    cls = getattr(importlib.import_module(module_name), cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ModelFormatError(f"activation function {path!r} is not a torch.nn class")
    return cls()


class Dense(torch.nn.Module):
    """A sentence-transformers ``Dense`` layer: activation(linear(x)) (+ x with a residual).

    Parameter names match sentence-transformers' (``linear.weight``, ``linear.bias``,
    ``residual.weight``), so its weight files load and save as they are.
    """

    def __init__(self, spec: st_format.DenseLayer) -> None:
        super().__init__()
        self.spec = spec
        self.linear = torch.nn.Linear(spec.in_features, spec.out_features, bias=spec.bias)
        self.activation_function = _activation(spec.activation)
        if spec.use_residual and spec.in_features != spec.out_features:
            self.residual = torch.nn.Linear(spec.in_features, spec.out_features, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's output for sentence embeddings ``x``."""
        out = self.activation_function(self.linear(x))
        if self.spec.use_residual:
            out = out + (self.residual(x) if hasattr(self, "residual") else x)
        return out

    @classmethod
    def from_folder(cls, spec: st_format.DenseLayer) -> Dense:
        """The layer with its weights from ``spec.path``."""
        layer = cls(spec)
        folder = Path(spec.path)
        if (folder / "model.safetensors").is_file():
            state = load_file(str(folder / "model.safetensors"))
        elif (folder / "pytorch_model.bin").is_file():
            state = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
        else:
            raise ModelFormatError(f"{folder}: no model.safetensors or pytorch_model.bin")
        try:
            layer.load_state_dict(state)
        except RuntimeError as e:
            raise ModelFormatError(f"{folder}: the Dense weights do not fit its config: {e}") from e
        return layer


def pool_tokens(hidden: torch.Tensor, mask: torch.Tensor, mode: str,
                prompt_length: int = 0) -> torch.Tensor:
    """Pool token states ``hidden`` (batch, tokens, dim) over ``mask`` as sentence-transformers does.

    Works with left and right padding. ``prompt_length`` > 0 leaves the first
    ``prompt_length`` real tokens of each row out (``include_prompt = false``);
    ``weightedmean`` keeps the remaining tokens' original position weights.
    """
    original = mask
    lead = original.to(torch.int32).argmax(dim=1)  # left padding before the first real token
    if prompt_length:
        positions = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0)
        mask = mask.masked_fill(positions < (lead + prompt_length).unsqueeze(1), 0)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    m = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "cls":
        return hidden[rows, mask.to(torch.int32).argmax(dim=1)]
    if mode == "max":
        return hidden.masked_fill(m == 0, float("-inf")).max(dim=1).values
    if mode in ("mean", "mean_sqrt_len_tokens"):
        total = (hidden * m).sum(dim=1)
        count = m.sum(dim=1).clamp(min=1e-9)
        return total / (count if mode == "mean" else count.sqrt())
    if mode == "weightedmean":
        weights = torch.arange(1, hidden.shape[1] + 1, device=hidden.device,
                               dtype=hidden.dtype).view(1, -1, 1) - lead.view(-1, 1, 1)
        wm = m * weights
        return (hidden * wm).sum(dim=1) / wm.sum(dim=1).clamp(min=1e-9)
    if mode == "lasttoken":
        seq_len = hidden.shape[1]
        values, idx = mask.flip(1).max(dim=1)
        idx = torch.where(values == 0, seq_len - 1, idx)
        return (hidden * m)[rows, seq_len - idx - 1]
    raise ValueError(f"unknown pooling {mode!r}")


def _load_kwargs(folder: ModelFolder, trust_remote_code: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"subfolder": folder.subfolder} if folder.subfolder else {}
    if trust_remote_code:
        kwargs["trust_remote_code"] = True
    return kwargs


@contextlib.contextmanager
def _remote_code_hint(name: str, trust_remote_code: bool) -> Iterator[None]:
    """Turn transformers' refusal to run a model's own code into an error naming the spec key."""
    try:
        yield
    except ValueError as e:
        if trust_remote_code or "trust_remote_code" not in str(e):
            raise
        raise ModelFormatError(
            f"{name}: the model ships its own modelling code (its config has an auto_map), "
            "which xlrun runs only when asked: set `trust_remote_code = true` in [model] "
            "(xlrun evaluate: --trust-remote-code) if you trust that code") from e


def _load_transformer(folder: ModelFolder, trust_remote_code: bool = False) -> torch.nn.Module:

    kwargs = _load_kwargs(folder, trust_remote_code)
    with _remote_code_hint(folder.name, trust_remote_code):
        try:
            model = AutoModel.from_pretrained(folder.transformer, add_pooling_layer=False,
                                              **kwargs)
        except TypeError:
            model = AutoModel.from_pretrained(folder.transformer, **kwargs)
    # fp32 master weights whatever the checkpoint's dtype: CUDA runs autocast to bf16, and
    # an fp16 checkpoint trained in fp16 would lose its small updates
    return model.float()


def _load_tokenizer(folder: ModelFolder, trust_remote_code: bool = False) -> Any:

    with _remote_code_hint(folder.name, trust_remote_code):
        tokenizer = AutoTokenizer.from_pretrained(folder.transformer,
                                                  **_load_kwargs(folder, trust_remote_code))
    if folder.do_lower_case:
        _lowercase(tokenizer)
    return tokenizer


def _lowercase(tokenizer: Any) -> None:
    """Make a fast tokenizer lower-case its input, as sentence-transformers does for
    ``do_lower_case`` (unless its normalizer already lower-cases)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        with contextlib.suppress(AttributeError):
            tokenizer.do_lower_case = True
        return
    norm = backend.normalizer
    if isinstance(norm, Lowercase) or (isinstance(norm, NormalizerSequence)
                                       and any(isinstance(n, Lowercase) for n in norm)):
        return
    parts = [Lowercase()]
    if isinstance(norm, NormalizerSequence):
        parts += list(norm)
    elif norm is not None:
        parts.append(norm)
    backend.normalizer = NormalizerSequence(parts)


def _tokenizer_limit(tokenizer: Any, model: torch.nn.Module) -> int | None:
    """The tokenizer's ``model_max_length`` capped at the model's positions (as in
    sentence-transformers); ``None`` when neither says."""
    limit = getattr(tokenizer, "model_max_length", None)
    limit = int(limit) if isinstance(limit, int) and limit < 10**9 else None
    positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        limit = min(limit, positions) if limit else positions
    return limit


# --------------------------------------------------------------------------- the encoder
class Encoder(torch.nn.Module):
    """A bi-encoder sharing one transformer (and its Dense layers) between queries and passages.

    Attributes:
        config: the resolved settings (:class:`EncoderConfig`).
        model: the Hugging Face transformer.
        dense: the Dense layers after pooling (empty for most models).
        tokenizer: the Hugging Face tokenizer.
        folder: what the model folder declared (:class:`~xlrun.train.st_format.ModelFolder`).
        sources: per setting, where it came from (``spec``, ``model …``, ``default``).
    """

    def __init__(self, config: EncoderConfig, model: torch.nn.Module, tokenizer: object,
                 device: torch.device | str = "cpu", dense: Sequence[Dense] = (),
                 folder: ModelFolder | None = None, sources: dict[str, str] | None = None,
                 tokenizer_limit: int | None = None) -> None:
        super().__init__()
        self.config = config
        self.model = model
        self.dense = torch.nn.ModuleList(dense)
        self.tokenizer = tokenizer
        self.folder = folder or ModelFolder(name=config.name, transformer=config.name)
        self.sources = dict(sources or {})
        self.tokenizer_limit = tokenizer_limit
        self._prompt_lengths: dict[str, int] = {}
        self._full_precision = False
        self.pad_to_multiple_of: int | None = None
        self.shapes = ShapeCounter()
        self.to(torch.device(device) if isinstance(device, str) else device)

    @classmethod
    def load(cls, config: EncoderConfig, device: str | torch.device = "auto") -> Encoder:
        """Load ``config.name`` with every field of ``config`` taken as given.

        The model's Dense layers still load (they are weights, not settings); use
        :func:`load_encoder` to take pooling, prompts and lengths from the model.
        """
        spec = ModelSection(**{f.name: getattr(config, f.name)
                               for f in dataclasses.fields(ModelSection)})
        enc = load_encoder(spec, device)
        if enc.config.normalize != config.normalize:
            enc.config = dataclasses.replace(enc.config, normalize=config.normalize)
            enc.sources["normalize"] = "spec"
        return enc

    def configure(self, spec: ModelSection) -> None:
        """Re-resolve the settings for another run's ``[model]`` section (same weights).

        For a worker that keeps one loaded model for several runs: restore the base weights
        with ``load_state_dict``, then call this with the run's section.
        """
        self.config, self.sources = resolve_config(self.folder, spec, self.tokenizer_limit)
        self._prompt_lengths.clear()

    @property
    def device(self) -> torch.device:
        """Where the parameters live."""
        return next(self.model.parameters()).device

    @property
    def embedding_dim(self) -> int:
        """The length of the vectors :meth:`encode` returns."""
        if len(self.dense):
            return int(self.dense[-1].spec.out_features)
        return int(getattr(self.model.config, "hidden_size", 0))

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on CUDA, nothing on CPU (fp32) or inside :meth:`full_precision`."""
        if self.device.type == "cuda" and not self._full_precision:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def full_precision(self) -> Iterator[None]:
        """fp32 forward passes on every device inside the block (no bf16 autocast).

        For results that must not depend on the device, such as the ``embedding`` language
        similarity: its clusters decide which languages meet, and a spec must give the same
        clusters when it is checked on a CPU and trained on a GPU.
        """
        before, self._full_precision = self._full_precision, True
        try:
            yield
        finally:
            self._full_precision = before

    # ------------------------------------------------------------------ tokens
    def token_ids(self, texts: Sequence[str], side: Side) -> list[np.ndarray]:
        """Prefixed, truncated token ids of each text (special tokens included), tokenized once."""
        prefix = self.config.prefix(side)
        out: list[np.ndarray] = []
        for s in range(0, len(texts), _TOKENIZE_CHUNK):
            enc = self.tokenizer([prefix + t for t in texts[s:s + _TOKENIZE_CHUNK]],
                                 truncation=True, max_length=self.config.max_length(side))
            out.extend(np.asarray(ids, dtype=np.int32) for ids in enc["input_ids"])
        return out

    @property
    def pad_multiple(self) -> int:
        """Batches pad to a multiple of this many tokens: ``pad_to_multiple_of`` when set, else
        :data:`PAD_MULTIPLE_CUDA` on CUDA (few shapes) and 1 on the CPU (where every pad token
        costs compute and a new shape costs nothing)."""
        if self.pad_to_multiple_of is not None:
            return max(1, int(self.pad_to_multiple_of))
        return PAD_MULTIPLE_CUDA if self.device.type == "cuda" else 1

    def collate(self, seqs: Sequence[Sequence[int] | np.ndarray]) -> dict[str, torch.Tensor]:
        """``input_ids`` and ``attention_mask`` padded on the tokenizer's side, on the device.

        The width is the longest sequence rounded up to :attr:`pad_multiple` (at most the
        longest truncation length); the attention mask hides the padding, so the vectors do
        not depend on it. Each batch's shape is counted in :attr:`shapes`.
        """
        n = len(seqs)
        cap = max(int(self.config.query_max_length), int(self.config.passage_max_length))
        longest = padded_width(max((len(s) for s in seqs), default=1), self.pad_multiple, cap)
        self.shapes.add(n, longest)
        pad = getattr(self.tokenizer, "pad_token_id", None)
        ids = np.full((n, longest), int(pad) if pad is not None else 0, dtype=np.int64)
        mask = np.zeros((n, longest), dtype=np.int64)
        left = getattr(self.tokenizer, "padding_side", "right") == "left"
        for i, s in enumerate(seqs):
            span = slice(longest - len(s), longest) if left else slice(0, len(s))
            ids[i, span] = s
            mask[i, span] = 1
        out = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        if self.device.type == "cuda":
            out = {k: v.pin_memory() for k, v in out.items()}
        return {k: v.to(self.device, non_blocking=True) for k, v in out.items()}

    def tokenize(self, texts: Sequence[str], side: Side) -> dict[str, torch.Tensor]:
        """Prefix, tokenize, pad to the longest, move to the model's device."""
        return self.collate(self.token_ids(texts, side))

    def prompt_length(self, side: Side) -> int:
        """Tokens of the side's prompt left out of pooling (0 unless ``include_prompt`` is
        false): the prompt's length without a trailing special token, as in sentence-transformers."""
        prefix = self.config.prefix(side)
        if self.config.include_prompt or not prefix:
            return 0
        if prefix not in self._prompt_lengths:
            ids = list(self.tokenizer(prefix)["input_ids"])
            special = set(getattr(self.tokenizer, "all_special_ids", []) or [])
            self._prompt_lengths[prefix] = len(ids) - (1 if ids and ids[-1] in special else 0)
        return self._prompt_lengths[prefix]

    # ------------------------------------------------------------------ vectors
    def pool(self, hidden: torch.Tensor, mask: torch.Tensor, side: Side = "passage") -> torch.Tensor:
        """Sentence embeddings from token states: pooling, Dense layers, normalisation (fp32)."""
        out = pool_tokens(hidden.float(), mask, self.config.pooling, self.prompt_length(side))
        for layer in self.dense:
            out = layer(out)
        return F.normalize(out, dim=-1) if self.config.normalize else out

    def embed_tokens(self, batch: dict[str, torch.Tensor], side: Side = "passage") -> torch.Tensor:
        """Embeddings of an already tokenized batch of ``side`` texts (gradients flow)."""
        with self.autocast():
            hidden = self.model(input_ids=batch["input_ids"],
                                attention_mask=batch["attention_mask"]).last_hidden_state
        return self.pool(hidden, batch["attention_mask"], side)

    def embed(self, texts: Sequence[str], side: Side) -> torch.Tensor:
        """Embeddings of ``texts`` (gradients flow when enabled)."""
        return self.embed_tokens(self.tokenize(texts, side), side)

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], side: Side, batch_size: int = 64,
               progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Encode many texts: token-length-sorted batches, no gradients, float32 in input order.

        Every text is tokenized once; batches take texts in order of decreasing token count,
        so a batch pads only to its own longest text. A batch that runs out of accelerator
        memory is retried at half the size (down to one text); after that, batches are sized
        by the padded token count that fitted, so shorter texts further down get larger
        batches again (never above ``batch_size``). The vectors do not depend on how the
        texts were batched.

        Args:
            texts: the texts, without prefixes.
            side: ``query`` or ``passage`` (chooses prefix and truncation length).
            batch_size: texts per forward pass at most.
            progress: called with the number of texts finished after each batch.
        """
        was_training = self.training
        self.eval()
        n = len(texts)
        ids = self.token_ids(list(texts), side)
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=n)
        order = length_order(lengths)
        out = np.empty((n, self.embedding_dim), dtype=np.float32)
        budget: int | None = None  # padded tokens per batch known to fit, after an OOM
        start = 0
        try:
            while start < n:
                longest = max(1, int(lengths[order[start]]))
                size = batch_size if budget is None else max(1, min(batch_size, budget // longest))
                while True:
                    idx = order[start:start + size]
                    try:
                        batch = self.collate([ids[i] for i in idx])
                        vecs = self.embed_tokens(batch, side).float().cpu().numpy()
                        break
                    except torch.OutOfMemoryError:
                        if size == 1:
                            raise
                        release_accelerator_memory()
                        size //= 2
                        budget = size * longest
                if vecs.shape[1] != out.shape[1]:
                    out = np.empty((n, vecs.shape[1]), dtype=np.float32)
                out[idx] = vecs
                start += len(idx)
                if progress is not None:
                    progress(len(idx))
        finally:
            self.train(was_training)
        return out

    # ------------------------------------------------------------------ provenance, saving
    def describe(self) -> dict[str, Any]:
        """What the encoder does and where each setting came from (JSON-ready)."""
        cfg = dataclasses.asdict(self.config)
        settings = {k: {"value": cfg[k], "from": self.sources.get(k, "spec")} for k in SETTINGS}
        f = self.folder
        return {
            "format": "sentence-transformers" if f.sentence_transformers else "transformers",
            "settings": settings,
            "dense": [f"{d.spec.in_features}→{d.spec.out_features} "
                      f"{d.spec.activation.rsplit('.', 1)[-1]}" for d in self.dense],
            "lowercase": f.do_lower_case,
            "similarity": f.similarity_fn_name or "cosine",
            "prompts": dict(f.prompts),
            "trust_remote_code": self.config.trust_remote_code,
        }

    def save(self, path: str | Path) -> Path:
        """Save as a sentence-transformers folder (also a Hugging Face model folder).

        ``SentenceTransformer(path)`` loads it and embeds as this encoder does
        (``encode_query`` / ``encode_document``; per-side lengths need
        sentence-transformers ≥ 6); :func:`load_encoder` reads it back with the same settings.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        c = self.config
        st_format.write_folder(
            path, hidden_size=int(self.model.config.hidden_size), pooling=c.pooling,
            include_prompt=c.include_prompt,
            dense=[(d.spec, d.state_dict()) for d in self.dense], normalize=c.normalize,
            prompts={"query": c.query_prefix, "document": c.passage_prefix},
            query_length=c.query_max_length, document_length=c.passage_max_length,
            do_lower_case=self.folder.do_lower_case)
        return path


def load_encoder(model: ModelSection | str, device: str | torch.device = "auto") -> Encoder:
    """Load a model the way sentence-transformers does, with the spec's values on top.

    Args:
        model: the ``[model]`` section (its set values override what the model declares),
            or just a model name (hub id or local folder).
        device: ``auto``, ``cpu``, ``cuda:0``, …

    Raises:
        ModelFormatError: a sentence-transformers model xlrun cannot reproduce faithfully.
    """
    spec = ModelSection(name=model) if isinstance(model, str) else model
    dev = resolve_device(device) if isinstance(device, str) else device
    folder = st_format.read_folder(spec.name)
    tokenizer = _load_tokenizer(folder, spec.trust_remote_code)
    transformer = _load_transformer(folder, spec.trust_remote_code)
    limit = _tokenizer_limit(tokenizer, transformer)
    config, sources = resolve_config(folder, spec, limit)
    dense = [Dense.from_folder(d) for d in folder.dense]
    if dense and dense[0].spec.in_features != int(transformer.config.hidden_size):
        raise ModelFormatError(f"{spec.name}: the first Dense layer takes {dense[0].spec.in_features} "
                               f"features, the transformer gives {transformer.config.hidden_size}")
    return Encoder(config, transformer, tokenizer, dev, dense=dense, folder=folder,
                   sources=sources, tokenizer_limit=limit)
