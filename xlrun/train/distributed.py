"""The trainer's multi-GPU plumbing under ``torchrun`` (``WORLD_SIZE > 1``): joining the
process group, putting the model on this rank's GPU with rank 0's weights, averaging
gradients, and agreeing on a flag.

Every rank samples the same global batch and takes its slice; in-batch negatives are gathered
across ranks in :mod:`xlrun.train.loss`; gradients are averaged here with bucketed
all-reduces after the backward passes (so gradient accumulation and GradCache need no DDP
``no_sync`` handling). With one process everything here is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from xlrun.train.encoder import Encoder


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run: ``world`` processes, this one is ``rank``."""

    world: int = 1
    rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes logs and checkpoints."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every rank (no-op with one process)."""
        if self.world > 1:
            dist.barrier()

    def agree(self, flag: bool, device: torch.device) -> bool:
        """Rank 0's ``flag``, on every rank (one process: ``flag`` itself)."""
        if self.world == 1:
            return flag
        t = torch.tensor([int(flag)], device=device)
        dist.broadcast(t, src=0)
        return bool(t.item())


def setup_distributed(encoder: Encoder) -> DistContext:
    """Join the process group when launched by torchrun; move the model to this rank's GPU
    and give every rank rank 0's weights."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        encoder.to(torch.device("cuda", local))
    with torch.no_grad():
        for p in encoder.parameters():
            dist.broadcast(p.data, src=0)
    return DistContext(dist.get_world_size(), dist.get_rank())


def all_reduce_grads(params: Sequence[torch.nn.Parameter], world: int,
                     bucket_elems: int = 2**24) -> None:
    """Average gradients over ranks in flat buckets of about ``bucket_elems`` elements."""
    grads = [p.grad for p in params if p.grad is not None]
    bucket: list[torch.Tensor] = []
    size = 0

    def flush() -> None:
        if not bucket:
            return
        flat = torch.cat([g.reshape(-1) for g in bucket])
        dist.all_reduce(flat)
        flat /= world
        off = 0
        for g in bucket:
            g.copy_(flat[off:off + g.numel()].view_as(g))
            off += g.numel()
        bucket.clear()

    for g in grads:
        bucket.append(g)
        size += g.numel()
        if size >= bucket_elems:
            flush()
            size = 0
    flush()
