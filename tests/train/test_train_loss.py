"""InfoNCE against an explicit-loop reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from xlrun.train.loss import gather_with_grad, info_nce, rank_offset


def reference(q, p, t, symmetric=False, hn=None):
    """Loops and log-sum-exp, written independently of the implementation."""
    n = q.shape[0]
    negs = [] if hn is None else [hn[i, k] for i in range(n) for k in range(hn.shape[1])]
    total = 0.0
    for i in range(n):
        cands = [p[j] for j in range(n)] + negs
        scores = [float(q[i] @ c) / t for c in cands]
        m = max(scores)
        lse = m + math.log(sum(math.exp(s - m) for s in scores))
        total += lse - scores[i]
    loss = total / n
    if symmetric:
        total = 0.0
        for i in range(n):
            scores = [float(p[i] @ q[j]) / t for j in range(n)]
            m = max(scores)
            total += m + math.log(sum(math.exp(s - m) for s in scores)) - scores[i]
        loss = 0.5 * (loss + total / n)
    return loss


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("k", [0, 2])
def test_matches_reference(symmetric, k):
    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(6, 8, generator=g, dtype=torch.float64), dim=-1)
    p = F.normalize(torch.randn(6, 8, generator=g, dtype=torch.float64), dim=-1)
    hn = F.normalize(torch.randn(6, k, 8, generator=g, dtype=torch.float64), dim=-1) if k else None
    got = info_nce(q, p, temperature=0.05, symmetric=symmetric, hard_negatives=hn)
    assert got.item() == pytest.approx(reference(q, p, 0.05, symmetric, hn), rel=1e-5)
    # flat [B*K, D] hard negatives are the same thing
    if k:
        flat = info_nce(q, p, temperature=0.05, symmetric=symmetric,
                        hard_negatives=hn.reshape(-1, 8))
        assert flat.item() == pytest.approx(got.item(), rel=1e-6)


def test_hard_negatives_raise_the_loss_and_gradients_flow():
    g = torch.Generator().manual_seed(1)
    q = torch.randn(4, 8, generator=g, requires_grad=True)
    p = torch.randn(4, 8, generator=g, requires_grad=True)
    hn = torch.randn(4, 3, 8, generator=g, requires_grad=True)
    base = info_nce(q, p, temperature=1.0)
    with_hn = info_nce(q, p, temperature=1.0, hard_negatives=hn)
    assert with_hn.item() > base.item()
    with_hn.backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in (q, p, hn))


def test_gather_is_noop_without_distributed():
    x = torch.randn(3, 4, requires_grad=True)
    assert gather_with_grad(x) is x
    assert rank_offset(3) == 0


def test_shape_mismatch():
    with pytest.raises(ValueError):
        info_nce(torch.randn(3, 4), torch.randn(2, 4))
