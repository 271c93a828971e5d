"""Contrastive loss: InfoNCE with in-batch negatives, optional symmetric term and hard negatives.

For query ``i`` the candidates are every passage of the (global) batch followed by every hard
negative of the batch; the positive is passage ``i``. With ``symmetric`` the passage→query
term (passage ``i`` against every query of the batch) is added and the two are averaged.
Scores are dot products divided by ``temperature`` (embeddings are L2-normalised by the
encoder, so these are cosine similarities).

Under ``torch.distributed`` the embeddings of every rank are gathered so each query sees the
passages of the whole global batch. :func:`gather_with_grad` keeps the gradient of the local
shard exact: its backward all-reduces the incoming gradient, so the local embeddings receive
the contributions of every rank's loss terms. Without an initialised process group (or with
one process) gathering is a no-op.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F


def _dist_active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward returns the all-reduced gradient of the local slice."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        world, rank = dist.get_world_size(), dist.get_rank()
        ctx.rank, ctx.n = rank, x.shape[0]
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, 0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every rank (rank order); identity without distributed training.

    Every rank must pass a tensor of the same shape.
    """
    if not _dist_active():
        return x
    return _GatherWithGrad.apply(x)


def rank_offset(n_local: int) -> int:
    """Index of this rank's first row in a gathered tensor."""
    return dist.get_rank() * n_local if _dist_active() else 0


def info_nce(queries: torch.Tensor, passages: torch.Tensor, *, temperature: float = 0.05,
             symmetric: bool = False, hard_negatives: torch.Tensor | None = None,
             gather: bool = True) -> torch.Tensor:
    """InfoNCE over in-batch negatives (mean over this rank's queries).

    Args:
        queries: ``[B, D]`` query embeddings (this rank's shard).
        passages: ``[B, D]`` positive passages, row ``i`` answers query ``i``.
        temperature: scores are ``q · p / temperature``.
        symmetric: also score each passage against every query and average both terms.
        hard_negatives: ``[B, K, D]`` or ``[B*K, D]`` extra passages, appended to the
            candidates of every query (not to the symmetric term's candidates).
        gather: gather candidates across ranks under ``torch.distributed``.
    """
    if queries.shape != passages.shape or queries.dim() != 2:
        raise ValueError(f"queries {tuple(queries.shape)} and passages "
                         f"{tuple(passages.shape)} must both be [B, D]")
    n = queries.shape[0]
    q32, p32 = queries.float(), passages.float()
    all_p = gather_with_grad(p32) if gather else p32
    offset = rank_offset(n) if gather else 0
    cands = all_p
    if hard_negatives is not None and hard_negatives.numel():
        hn = hard_negatives.float().reshape(-1, queries.shape[1])
        cands = torch.cat([all_p, gather_with_grad(hn) if gather else hn], 0)
    labels = torch.arange(offset, offset + n, device=queries.device)
    loss = F.cross_entropy(q32 @ cands.T / temperature, labels)
    if symmetric:
        all_q = gather_with_grad(q32) if gather else q32
        loss = 0.5 * (loss + F.cross_entropy(p32 @ all_q.T / temperature, labels))
    return loss
