"""The training loop: contrastive fine-tuning of an :class:`~xlrun.train.encoder.Encoder`.

One *optimizer step* consumes ``train.grad_accum`` sampled batches; each batch has
``train.batch_size`` pairs per device (its in-batch negatives are the whole global batch) and
its own language choice. ``Batch.step`` counts sampled batches, so with ``grad_accum = 1`` it
equals the optimizer step. ``train.steps`` counts optimizer steps.

* AdamW (fused on CUDA; no weight decay on biases and norms), linear warmup
  (``warmup_ratio``) then linear decay, gradient clipping (``max_grad_norm``, 0 = off).
* bf16 autocast on CUDA (through :meth:`Encoder.autocast`), fp32 on CPU.
* Texts are tokenized once per (side, language, parallel id) and cached; each forward pass
  pads to its own longest sequence (on the tokenizer's padding side); host tensors are
  pinned and copied ``non_blocking``.
  On CUDA the queries, passages and hard negatives of a batch go through ONE forward pass
  (and one backward) under one autocast context, each group pooled with its own side's
  prompt: half the kernel launches, which bound a small encoder's step; on CPU, where padding
  costs compute, they keep separate passes.
* The model's Dense layers (sentence-transformers models such as LaBSE) train along with
  the transformer and are checkpointed with it.
* GradCache (``grad_cache_chunk > 0``): embeddings of the whole batch are computed chunk by
  chunk without gradients, the loss is back-propagated to those embeddings only, then every
  chunk is re-encoded with gradients (same dropout masks: the RNG state of each chunk is
  replayed) and receives its cached embedding gradient. Memory is bounded by one chunk, the
  gradients equal those of the plain path.
* Hard negatives (``hard_negatives = K``): for each pair, K passages in the pair's passage
  language appended to every query's candidates. Where the pair's passage-language example
  carries mined negatives (``train_data.negatives``: mMARCO's triples), up to K of them are
  drawn first; the rest are drawn at random (seeded by ``(seed, batch)``) from parallel ids
  outside the batch: same-language random negatives (harder than the in-batch ones of a
  cross-lingual batch).
* No host sync in the hot loop on CUDA: the loss is accumulated on the device and read every
  ``log_every`` steps, which is also when NaN/inf is checked (the first bad step is tracked
  on the device, so :class:`~xlrun.errors.TrainingDiverged` names the exact step). On CPU the
  check runs every step.
* Checkpoints every ``checkpoint_every`` steps into ``hooks.checkpoint_dir`` (and when
  ``hooks.should_stop()`` ends training early); a later call with the same directory resumes
  from the newest checkpoint and reproduces the batches and weights of an uninterrupted run.
* Multi-GPU under ``torchrun`` (``WORLD_SIZE > 1``): every rank samples the same global batch
  (``batch_size × world``), takes its slice, negatives are gathered across ranks (see
  :mod:`xlrun.train.loss`) and gradients are averaged with bucketed all-reduces after the
  backward passes (:mod:`xlrun.train.distributed`).

:class:`Trainer` is the loop (state on the object, one method per phase); :func:`train` runs
it.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from xlrun.data.types import TrainCorpus, normalize_text
from xlrun.errors import SpecError, TrainingDiverged
from xlrun.spec.schema import RunConfig, TrainSection
from xlrun.train.checkpoint import (
    CorruptCheckpoint,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from xlrun.train.checkpoint import set_rng_state as restore_rng_state
from xlrun.train.distributed import all_reduce_grads, setup_distributed
from xlrun.train.encoder import Encoder, Side
from xlrun.train.loss import info_nce
from xlrun.train.samplers import Batch, BatchSampler, PairRef, make_sampler
from xlrun.train.schedule import linear_warmup_decay


class TrainListener(Protocol):
    """Told how training goes, on rank 0 (an experiment tracker: :mod:`xlrun.tracking`).

    Called inside the training loop: a listener returns at once and never raises (the
    trackers' session queues the call for a background thread).
    """

    def on_train_begin(self, step: int, total: int) -> None:
        """Training starts at ``step`` (after a resume) of ``total`` optimizer steps."""

    def on_log(self, step: int, loss: float, lr: float, examples_per_s: float) -> None:
        """A logged step, as :attr:`TrainHooks.on_log` gets it."""

    def on_train_end(self, summary: TrainSummary) -> None:
        """Training ended (also when stopped early)."""


@dataclass
class TrainHooks:
    """Callbacks from the trainer to its caller (the trainer never touches the DB).

    Attributes:
        on_log: ``(step, loss, lr, examples_per_s)`` every ``log_every`` steps (mean loss
            over the window, learning rate of the last step, global pairs per second).
        on_batch: every sampled batch, in order (e.g. to record ``batch_languages``).
        on_plan: once, before training, the sampler's plan as ``sampling_plan`` rows
            (:meth:`~xlrun.train.samplers.BatchSampler.plan_rows`).
        progress: ``(step, total)`` after every optimizer step.
        checkpoint_dir: where checkpoints go and where training resumes from.
        should_stop: polled after every step (every ``log_every`` steps under DDP); when it
            returns True a checkpoint is written (if there is a directory) and training ends.
        listeners: told of the start, every logged step and the end (:class:`TrainListener`).
    """

    on_log: Callable[[int, float, float, float], None] | None = None
    on_batch: Callable[[Batch], None] | None = None
    on_plan: Callable[[list[dict[str, Any]]], None] | None = None
    progress: Callable[[int, int], None] | None = None
    checkpoint_dir: Path | None = None
    should_stop: Callable[[], bool] | None = None
    listeners: Sequence[TrainListener] = ()


@dataclass(frozen=True)
class TrainSummary:
    """What a training run did."""

    steps: int
    final_loss: float | None
    seconds: float
    examples_per_s: float
    checkpoint: Path | None = None
    resumed_from: int = 0


# --------------------------------------------------------------------------- batches → tensors
class _Tokens:
    """Tokenizes each (side, language, parallel id) once and collates padded device tensors."""

    def __init__(self, encoder: Encoder, corpus: TrainCorpus) -> None:
        self.encoder = encoder
        self.corpus = corpus
        self.cache: dict[tuple[str, ...], np.ndarray] = {}

    def ids(self, refs: Sequence[tuple[str, ...]], side: Side) -> list[np.ndarray]:
        """Token ids for ``(lang, parallel_id)`` refs on ``side`` (cached); a ref
        ``(lang, parallel_id, j)`` is that example's ``j``-th mined negative."""
        keys = [(side, *ref) for ref in refs]
        missing = list(dict.fromkeys(k for k in keys if k not in self.cache))
        if missing:
            texts = []
            for key in missing:
                ex = self.corpus.get(key[1], key[2])
                texts.append(ex.negatives[int(key[3])] if len(key) > 3
                             else ex.query if side == "query" else ex.passage)
            for k, ids in zip(missing, self.encoder.token_ids(texts, side), strict=True):
                self.cache[k] = ids
        return [self.cache[k] for k in keys]

    def collate(self, seqs: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        """``input_ids`` and ``attention_mask`` on the encoder's device, padded on the
        tokenizer's side."""
        return self.encoder.collate(seqs)


def draw_hard_negatives(corpus: TrainCorpus, batch: Batch, k: int, seed: int
                        ) -> list[list[tuple[str, ...]]]:
    """``k`` same-language passages per pair: first the pair's own mined negatives (those of
    its passage-language example, up to ``k``, drawn without replacement), then random
    passages from parallel ids outside the batch. A negative whose text repeats a passage of
    the batch in that language is never used (it would push a query away from its own
    answer).

    Returns, per pair, ``k`` refs: ``(doc_lang, parallel_id)`` for a corpus passage,
    ``(doc_lang, parallel_id, j)`` for that example's ``j``-th mined negative. Seeded by
    ``(seed, batch.step)``; a corpus without mined negatives draws exactly as before they
    existed.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x4E4547, batch.step]))
    in_batch = {it.parallel_id for it in batch.items}
    positives = {(it.doc_lang, normalize_text(corpus.get(it.doc_lang, it.parallel_id).passage))
                 for it in batch.items}

    def usable(lang: str, pid: str) -> bool:
        return pid not in in_batch and (
            lang, normalize_text(corpus.get(lang, pid).passage)) not in positives

    pools: dict[str, list[str]] = {}
    filtered: dict[str, list[str]] = {}
    out = []
    for it in batch.items:
        lang = it.doc_lang
        pool = pools.get(lang)
        if pool is None:
            pool = pools[lang] = corpus.ids(lang)
        chosen: list[tuple[str, ...]] = []
        mined = corpus.get(lang, it.parallel_id).negatives
        if mined:
            ok = [j for j, text in enumerate(mined)
                  if (lang, normalize_text(text)) not in positives]
            picks = rng.permutation(len(ok))[:k] if ok else []
            chosen += [(lang, it.parallel_id, str(ok[int(j)])) for j in picks]
        tries = 0
        while len(chosen) < k and tries < 64 * k:  # rejection sampling: cheap on big pools
            tries += 1
            pid = pool[int(rng.integers(len(pool)))]
            if usable(lang, pid):
                chosen.append((lang, pid))
        if len(chosen) < k:  # mostly unusable pool: draw from the usable part directly
            if lang not in filtered:
                filtered[lang] = [pid for pid in pool if usable(lang, pid)]
            rest = filtered[lang]
            if not rest:
                raise SpecError("train.hard_negatives",
                                f"no passage in {lang!r} outside the batch (with a text unlike "
                                "the batch's passages) to use as a negative", value=k)
            chosen += [(lang, rest[int(j)]) for j in rng.integers(len(rest), size=k - len(chosen))]
        out.append(chosen)
    return out


def _rng_snapshot(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _rng_restore(state: tuple[torch.Tensor, torch.Tensor | None], device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


# --------------------------------------------------------------------------- the step
SIDES: tuple[Side, ...] = ("query", "passage", "passage")
"""The side of each token group of a step: queries, passages, hard negatives."""


class ContrastiveStep:
    """Forward + loss + backward of one batch (plain or GradCache); no optimizer logic.

    Public so that the throughput benchmark and tests can drive single steps.
    """

    def __init__(self, encoder: Encoder, corpus: TrainCorpus, train: TrainSection,
                 forward_model: torch.nn.Module | None = None, joint: bool | None = None) -> None:
        self.encoder = encoder
        self.model = forward_model if forward_model is not None else encoder.model
        self.train_cfg = train
        self.tokens = _Tokens(encoder, corpus)
        self.corpus = corpus
        # queries, passages and negatives in ONE forward pass (padded to the longest): half
        # the kernel launches, which is what bounds a small model's step on a GPU; on CPU the
        # padding costs real compute, so there they keep separate passes
        self.joint = encoder.device.type == "cuda" if joint is None else joint

    def embed(self, batch: dict[str, torch.Tensor], side: Side = "passage") -> torch.Tensor:
        """Sentence embeddings of a collated batch of ``side`` texts (pooling, Dense layers,
        normalisation: :meth:`Encoder.pool`)."""
        with self.encoder.autocast():
            hidden = self.model(input_ids=batch["input_ids"],
                                attention_mask=batch["attention_mask"]).last_hidden_state
        return self.encoder.pool(hidden, batch["attention_mask"], side)

    def sequences(self, items: Sequence[PairRef],
                  negatives: Sequence[Sequence[tuple[str, ...]]] | None
                  ) -> list[list[np.ndarray]]:
        """Token ids of queries, passages and (flattened) hard negatives (``SIDES`` order)."""
        q = self.tokens.ids([(it.query_lang, it.parallel_id) for it in items], "query")
        p = self.tokens.ids([(it.doc_lang, it.parallel_id) for it in items], "passage")
        groups = [q, p]
        if negatives:
            groups.append(self.tokens.ids([r for per in negatives for r in per], "passage"))
        return groups

    def _loss(self, embs: list[torch.Tensor], n: int) -> torch.Tensor:
        t = self.train_cfg
        hn = embs[2].reshape(n, -1, embs[2].shape[-1]) if len(embs) > 2 else None
        return info_nce(embs[0], embs[1], temperature=t.temperature, symmetric=t.symmetric,
                        hard_negatives=hn)

    def __call__(self, items: Sequence[PairRef],
                 negatives: Sequence[Sequence[tuple[str, ...]]] | None = None,
                 scale: float = 1.0) -> torch.Tensor:
        """Accumulate gradients of ``scale * loss`` into the model; returns the detached loss."""
        groups = self.sequences(items, negatives)
        chunk = self.train_cfg.grad_cache_chunk
        if chunk <= 0 or chunk >= max(len(g) for g in groups):
            if self.joint:
                flat = self.tokens.collate([s for g in groups for s in g])
                sizes = [len(g) for g in groups]
                with self.encoder.autocast():
                    hidden = self.model(input_ids=flat["input_ids"],
                                        attention_mask=flat["attention_mask"]).last_hidden_state
                embs = [self.encoder.pool(h, m, SIDES[i]) for i, (h, m) in enumerate(
                    zip(hidden.split(sizes), flat["attention_mask"].split(sizes), strict=True))]
            else:
                embs = [self.embed(self.tokens.collate(g), SIDES[i])
                        for i, g in enumerate(groups)]
            loss = self._loss(embs, len(items))
            (loss * scale).backward()
            return loss.detach()
        return self._grad_cache(groups, len(items), chunk, scale)

    def _grad_cache(self, groups: list[list[np.ndarray]], n: int, chunk: int,
                    scale: float) -> torch.Tensor:
        dev = self.encoder.device
        plans = []  # (collated chunk, side, rng state)
        cached: list[torch.Tensor] = []
        with torch.no_grad():
            for i, seqs in enumerate(groups):
                parts = []
                for s in range(0, len(seqs), chunk):
                    col = self.tokens.collate(seqs[s:s + chunk])
                    state = _rng_snapshot(dev)
                    parts.append(self.embed(col, SIDES[i]))
                    plans.append((col, SIDES[i], state))
                cached.append(torch.cat(parts).detach().requires_grad_())
        loss = self._loss(cached, n)
        (loss * scale).backward()
        grads = [c.grad for c in cached]
        flat_grads = [g for grad, seqs in zip(grads, groups, strict=True)
                      for g in grad.split([len(seqs[s:s + chunk])
                                           for s in range(0, len(seqs), chunk)])]
        after = _rng_snapshot(dev)
        for (col, side, state), g in zip(plans, flat_grads, strict=True):
            _rng_restore(state, dev)
            emb = self.embed(col, side)
            emb.backward(g)
        _rng_restore(after, dev)
        return loss.detach()


# --------------------------------------------------------------------------- optimizer
def make_optimizer(model: torch.nn.Module, train: TrainSection) -> torch.optim.Optimizer:
    """AdamW; no decay on 1-D parameters (biases, norms); fused on CUDA."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": train.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    on_cuda = next(model.parameters()).device.type == "cuda"
    kwargs: dict[str, Any] = {"fused": True} if on_cuda else {}
    return torch.optim.AdamW(groups, lr=train.lr, **kwargs)


def seed_all(seed: int) -> None:
    """Seed Python's, numpy's and PyTorch's global generators (dropout draws from PyTorch's)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- the loop
class Trainer:
    """One training run: ``encoder`` fine-tuned in place on ``corpus`` as ``run`` says.

    The state of the loop lives on the object; each phase is a method: set-up (in
    ``__init__``: process group, seeds, sampler, optimizer, schedule, then :meth:`resume`),
    :meth:`optimizer_step` (the ``grad_accum`` batches of one step and the update),
    :meth:`log_window`, :meth:`checkpoint`, :meth:`stop_requested`, and :meth:`run`, the loop
    that calls them and returns the :class:`TrainSummary`.

    Raises:
        SpecError: the sampling spec does not fit the data (see :mod:`xlrun.train.samplers`).
        CorruptCheckpoint: the newest checkpoint does not fit this run.
    """

    def __init__(self, run: RunConfig, corpus: TrainCorpus, encoder: Encoder,
                 clusters: list[list[str]] | None = None,
                 hooks: TrainHooks | None = None) -> None:
        self.cfg = t = run.train
        self.corpus, self.encoder = corpus, encoder
        self.hooks = hooks or TrainHooks()
        self.dist = setup_distributed(encoder)
        seed_all(t.seed)
        self.sampler: BatchSampler = make_sampler(
            run.sampling, corpus, t.batch_size * self.dist.world, t.seed, clusters,
            total_batches=t.steps * t.grad_accum)
        if self.dist.main and self.hooks.on_plan is not None:
            self.hooks.on_plan(self.sampler.plan_rows())
        encoder.train()
        self.device = encoder.device
        # the transformer's parameters, then the Dense layers' (which train along)
        self.params = [p for p in encoder.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(encoder, t)
        self.scheduler = linear_warmup_decay(self.optimizer, t.steps, t.warmup_ratio)
        self.stepper = ContrastiveStep(encoder, corpus, t)
        self.ckpt_dir = Path(self.hooks.checkpoint_dir) if self.hooks.checkpoint_dir else None
        self.step = 0
        self.resumed_from = self.resume()
        # CUDA: no host sync in the hot loop; the loss is read every log_every steps
        self.sync_every = max(1, t.log_every) if self.device.type == "cuda" else 1
        self._slice = slice(self.dist.rank * t.batch_size, (self.dist.rank + 1) * t.batch_size)
        self._loss_sum = torch.zeros((), device=self.device)
        self._bad_step = torch.full((), -1, dtype=torch.long, device=self.device)
        self._window_steps, self._window_t0 = 0, time.perf_counter()
        self.final_loss: float | None = None
        self.saved: Path | None = None

    def resume(self) -> int:
        """Restore the newest checkpoint in the checkpoint folder (if any); the step it was
        written at (0 without one)."""
        last = latest_checkpoint(self.ckpt_dir)
        if last is None:
            return 0
        # on the CPU: model and optimizer states are copied to their parameters' device by
        # load_state_dict, and the RNG states must stay CPU byte tensors
        state = load_checkpoint(last, map_location="cpu")
        try:
            self.encoder.model.load_state_dict(state["model"])
            if "dense" in state:
                self.encoder.dense.load_state_dict(state["dense"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.sampler.load_state_dict(state["sampler"])
            self.step = int(state["step"])
            restore_rng_state(state["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise CorruptCheckpoint(last, f"it does not fit this run: {type(e).__name__}: "
                                    f"{str(e).strip()[:200]}") from e
        return self.step

    def optimizer_step(self) -> float:
        """Sample ``grad_accum`` batches, accumulate their gradients (this rank's slice),
        average them over ranks, clip and update; returns the step's learning rate. The loss
        is added to the window on the device; a non-finite one marks the step."""
        t, hooks = self.cfg, self.hooks
        step_loss = torch.zeros((), device=self.device)
        for _ in range(t.grad_accum):
            batch = self.sampler.next_batch()
            if self.dist.main and hooks.on_batch is not None:
                hooks.on_batch(batch)
            negs = (draw_hard_negatives(self.corpus, batch, t.hard_negatives, t.seed)
                    if t.hard_negatives > 0 else None)
            step_loss += self.stepper(batch.items[self._slice],
                                      negs[self._slice] if negs else None,
                                      scale=1.0 / t.grad_accum)
        step_loss /= t.grad_accum
        if self.dist.world > 1:
            all_reduce_grads(self.params, self.dist.world)
        if t.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.params, t.max_grad_norm)
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self._bad_step = torch.where((self._bad_step < 0) & ~torch.isfinite(step_loss),
                                     torch.full_like(self._bad_step, self.step), self._bad_step)
        self._loss_sum += step_loss
        self.step += 1
        self._window_steps += 1
        return lr

    def check_finite(self) -> None:
        """Raise :class:`TrainingDiverged` naming the first step whose loss was NaN or
        infinite (a host sync)."""
        b = int(self._bad_step.item())
        if b >= 0:
            raise TrainingDiverged(f"training diverged: the loss became NaN or infinite at "
                                   f"step {b + 1} of {self.cfg.steps}")

    def log_window(self, lr: float) -> None:
        """Close the logging window: its mean loss and the global pairs per second to
        ``hooks.on_log`` (rank 0)."""
        t = self.cfg
        mean = float(self._loss_sum.item()) / self._window_steps
        self.dist.barrier()
        now = time.perf_counter()
        rate = (self._window_steps * t.grad_accum * t.batch_size * self.dist.world
                / max(now - self._window_t0, 1e-9))
        self.final_loss = mean
        if self.hooks.on_log is not None and self.dist.main:
            self.hooks.on_log(self.step, mean, lr, rate)
        self.tell("on_log", self.step, mean, lr, rate)
        self._loss_sum.zero_()
        self._window_steps, self._window_t0 = 0, now

    def checkpoint(self) -> Path | None:
        """Write a checkpoint (rank 0) and wait for every rank; the newest checkpoint
        (``None`` without a checkpoint folder)."""
        if self.ckpt_dir is None:
            return None
        path = None
        if self.dist.main:
            weights = {"model": self.encoder.model.state_dict()}
            if len(self.encoder.dense):
                weights["dense"] = self.encoder.dense.state_dict()
            path = save_checkpoint(self.ckpt_dir, self.step, {
                **weights, "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "sampler": self.sampler.state_dict()})
        self.dist.barrier()
        return path or latest_checkpoint(self.ckpt_dir)

    def tell(self, event: str, *args: Any) -> None:
        """Call ``event`` (a :class:`TrainListener` method) on every listener (rank 0)."""
        if self.dist.main:
            for listener in self.hooks.listeners:
                getattr(listener, event)(*args)

    def stop_requested(self) -> bool:
        """``hooks.should_stop()`` (asked on rank 0, every ``sync_every`` steps under DDP, the
        answer shared by all ranks)."""
        if self.hooks.should_stop is None:
            return False
        if self.dist.world > 1 and self.step % self.sync_every:
            return False
        stop = bool(self.hooks.should_stop()) if self.dist.main else False
        return self.dist.agree(stop, self.device)

    def run(self) -> TrainSummary:
        """Train to ``train.steps`` (or until a stop is requested, after a checkpoint).

        Raises:
            TrainingDiverged: the loss became NaN or infinite (the message names the step).
        """
        t, hooks = self.cfg, self.hooks
        t0 = time.perf_counter()
        start_step = self.step
        self.tell("on_train_begin", self.step, t.steps)
        while self.step < t.steps:
            lr = self.optimizer_step()
            step = self.step
            if step % self.sync_every == 0 or step == t.steps:
                self.check_finite()
            if hooks.progress is not None and self.dist.main:
                hooks.progress(step, t.steps)
            if step % max(1, t.log_every) == 0 or step == t.steps:
                self.log_window(lr)
            checkpointed = t.checkpoint_every > 0 and step % t.checkpoint_every == 0
            if checkpointed and step < t.steps:
                self.check_finite()
                self.saved = self.checkpoint() or self.saved
            if self.stop_requested() and step < t.steps:
                self.check_finite()
                if not checkpointed:
                    self.saved = self.checkpoint() or self.saved
                break
        self.check_finite()
        if self._window_steps:  # steps after the last log (training stopped early)
            self.final_loss = float(self._loss_sum.item()) / self._window_steps
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - t0
        done = self.step - start_step
        rate = done * t.grad_accum * t.batch_size * self.dist.world / max(seconds, 1e-9)
        if self.final_loss is not None and not math.isfinite(self.final_loss):
            raise TrainingDiverged(f"training diverged: non-finite loss at step {self.step}")
        summary = TrainSummary(steps=self.step, final_loss=self.final_loss, seconds=seconds,
                               examples_per_s=rate, checkpoint=self.saved,
                               resumed_from=self.resumed_from)
        self.tell("on_train_end", summary)
        return summary


def train(run: RunConfig, corpus: TrainCorpus, encoder: Encoder,
          clusters: list[list[str]] | None = None,
          hooks: TrainHooks | None = None) -> TrainSummary:
    """Fine-tune ``encoder`` in place on ``corpus`` as ``run`` says (:class:`Trainer`).

    Args:
        run: the resolved run (``train`` and ``sampling`` sections are used).
        corpus: the training examples.
        encoder: the model to train (its device decides CPU/CUDA).
        clusters: language clusters for clustered sampling (default: ``sampling.clusters``).
        hooks: callbacks and the checkpoint directory.

    Raises:
        SpecError: the sampling spec does not fit the data (see :mod:`xlrun.train.samplers`).
        TrainingDiverged: the loss became NaN or infinite (the message names the step).
    """
    if run.train.steps <= 0:
        return TrainSummary(steps=0, final_loss=None, seconds=0.0, examples_per_s=0.0)
    return Trainer(run, corpus, encoder, clusters, hooks).run()
