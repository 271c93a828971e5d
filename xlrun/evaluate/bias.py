"""Language bias in the multilingual pool (setting ``multi``).

- **Rank distance**: a query's relevant candidates are parallel (the same answer in each
  language); the spread ``max rank − min rank`` among them is 0 for a model that ranks all
  translations together, and grows when it prefers some languages. Lower = less biased.
- **Same-language preference**: the share of the top k that is in the query's language,
  next to the share expected by chance (the fraction of the pool in that language).
"""

from __future__ import annotations

import numpy as np


def rank_distance(ranks: np.ndarray) -> np.ndarray:
    """``max − min`` of each row's finite ranks (0 with one relevant doc, NaN with none)."""
    r = np.asarray(ranks, dtype=np.float64)
    finite = np.isfinite(r)
    hi = np.where(finite, r, -np.inf).max(axis=1)
    lo = np.where(finite, r, np.inf).min(axis=1)
    out = hi - lo
    out[~finite.any(axis=1)] = np.nan
    return out


def same_language_share(top_langs: np.ndarray, query_langs: np.ndarray, k: int = 10) -> np.ndarray:
    """Share of the first ``k`` retrieved documents whose language equals the query's.

    Args:
        top_langs: ``(n, >=k)`` language codes (or ids) of the ranked documents.
        query_langs: ``(n,)`` the query languages, same encoding.
    """
    top = np.asarray(top_langs)[:, :k]
    if top.shape[1] == 0:
        return np.full(len(top), np.nan)
    return (top == np.asarray(query_langs)[:, None]).mean(axis=1)


def expected_same_language(pool_langs: np.ndarray, lang: object) -> float:
    """Fraction of the pool's documents in ``lang`` (the chance level of the share above)."""
    pool = np.asarray(pool_langs)
    return float((pool == lang).mean()) if len(pool) else float("nan")
