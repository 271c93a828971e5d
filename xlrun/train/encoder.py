"""A Hugging Face encoder with pooling, query/passage prefixes and fast batched encoding.

Any model that ``AutoModel``/``AutoTokenizer`` can load works, by hub id (online) or local
path (offline). Training calls :meth:`Encoder.embed` (gradients flow); evaluation calls
:meth:`Encoder.encode`, which sorts texts by length so that each batch pads little, runs
under bf16 autocast on CUDA and returns L2-normalised float32 numpy arrays in input order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

Side = Literal["query", "passage"]


def release_accelerator_memory() -> None:
    """Give cached CUDA blocks back after an out-of-memory error (no-op on CPU)."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@dataclass(frozen=True)
class EncoderConfig:
    """How to turn texts into vectors."""

    name: str
    pooling: Literal["mean", "cls"] = "mean"
    query_prefix: str = ""
    passage_prefix: str = ""
    query_max_length: int = 64
    passage_max_length: int = 256
    normalize: bool = True

    def prefix(self, side: Side) -> str:
        """The prefix for ``side``."""
        return self.query_prefix if side == "query" else self.passage_prefix

    def max_length(self, side: Side) -> int:
        """The truncation length for ``side``."""
        return self.query_max_length if side == "query" else self.passage_max_length


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; anything else is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _load_model(name: str):  # noqa: ANN202 - transformers types
    from transformers import AutoModel

    try:
        model = AutoModel.from_pretrained(name, add_pooling_layer=False)
    except TypeError:
        model = AutoModel.from_pretrained(name)
    # fp32 master weights whatever the checkpoint's dtype: CUDA runs autocast to bf16, and
    # an fp16 checkpoint trained in fp16 would lose its small updates
    return model.float()


class Encoder(torch.nn.Module):
    """A bi-encoder sharing one transformer between queries and passages."""

    def __init__(self, config: EncoderConfig, model: torch.nn.Module, tokenizer: object,
                 device: torch.device | str = "cpu") -> None:
        super().__init__()
        self.config = config
        self.model = model
        self.tokenizer = tokenizer
        self.to(torch.device(device) if isinstance(device, str) else device)

    @classmethod
    def load(cls, config: EncoderConfig, device: str | torch.device = "auto") -> Encoder:
        """Load model and tokenizer from a hub id or a local folder."""
        from transformers import AutoTokenizer

        dev = resolve_device(device) if isinstance(device, str) else device
        tokenizer = AutoTokenizer.from_pretrained(config.name)
        model = _load_model(config.name)
        return cls(config, model, tokenizer, dev)

    @property
    def device(self) -> torch.device:
        """Where the parameters live."""
        return next(self.model.parameters()).device

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on CUDA, nothing on CPU (fp32)."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def tokenize(self, texts: Sequence[str], side: Side) -> dict[str, torch.Tensor]:
        """Prefix, tokenize, pad to the longest, move to the model's device."""
        prefix = self.config.prefix(side)
        batch = self.tokenizer(
            [prefix + t for t in texts], padding=True, truncation=True,
            max_length=self.config.max_length(side), return_tensors="pt",
        )
        batch.pop("token_type_ids", None)
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean over the attention mask, or the first token."""
        if self.config.pooling == "cls":
            out = hidden[:, 0]
        else:
            m = mask.unsqueeze(-1).to(hidden.dtype)
            out = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        out = out.float()
        return F.normalize(out, dim=-1) if self.config.normalize else out

    def embed_tokens(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Embeddings of an already tokenized batch (gradients flow)."""
        with self.autocast():
            hidden = self.model(**batch).last_hidden_state
        return self.pool(hidden, batch["attention_mask"])

    def embed(self, texts: Sequence[str], side: Side) -> torch.Tensor:
        """Embeddings of ``texts`` (gradients flow when enabled)."""
        return self.embed_tokens(self.tokenize(texts, side))

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], side: Side, batch_size: int = 64,
               progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Encode many texts: length-sorted batches, no gradients, float32 output in input order.

        A batch that runs out of accelerator memory is retried at half the size (down to one
        text); after that, batches are sized by the padded length that fitted, so shorter
        texts further down the length order get larger batches again (never above
        ``batch_size``). The vectors do not depend on how the texts were batched.

        Args:
            texts: the texts, without prefixes.
            side: ``query`` or ``passage`` (chooses prefix and truncation length).
            batch_size: texts per forward pass at most.
            progress: called with the number of texts finished after each batch.
        """
        was_training = self.model.training
        self.model.eval()
        n = len(texts)
        dim = int(getattr(self.model.config, "hidden_size", 0)) or None
        order = np.argsort([-len(t) for t in texts], kind="stable")
        # characters stand in for tokens; past the truncation length every text costs the same
        char_cap = 16 * self.config.max_length(side)
        out: np.ndarray | None = np.empty((n, dim), dtype=np.float32) if dim else None
        budget: int | None = None  # padded characters per batch known to fit, after an OOM
        start = 0
        try:
            while start < n:
                longest = max(1, min(len(texts[order[start]]), char_cap))
                size = batch_size if budget is None else max(1, min(batch_size, budget // longest))
                while True:
                    idx = order[start:start + size]
                    try:
                        vecs = self.embed([texts[i] for i in idx], side).float().cpu().numpy()
                        break
                    except torch.OutOfMemoryError:
                        if size == 1:
                            raise
                        release_accelerator_memory()
                        size //= 2
                        budget = size * longest
                if out is None:
                    out = np.empty((n, vecs.shape[1]), dtype=np.float32)
                out[idx] = vecs
                start += len(idx)
                if progress is not None:
                    progress(len(idx))
        finally:
            self.model.train(was_training)
        if out is None:
            out = np.zeros((0, dim or 0), dtype=np.float32)
        return out

    def save(self, path: str | Path) -> Path:
        """Save model and tokenizer in Hugging Face format."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        return path
