"""A one-line chart of a series in block characters (``xlrun show``'s training loss)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

BLOCKS = "▁▂▃▄▅▆▇█"
"""The eight heights, lowest first."""


def sparkline(values: Sequence[float], width: int = 40) -> str:
    """``values`` as at most ``width`` block characters, lowest value ``▁``, highest ``█``.

    Longer series are cut into ``width`` consecutive buckets drawn at their mean; values that
    are not finite are left out of the scale and drawn as a space. A constant series is a
    row of ``▄``; an empty one is ``""``.
    """
    vals = [float(v) for v in values]
    if not vals or width < 1:
        return ""
    if len(vals) > width:
        edges = [round(i * len(vals) / width) for i in range(width + 1)]
        buckets = [[v for v in vals[a:b] if math.isfinite(v)]
                   for a, b in itertools.pairwise(edges)]
        vals = [sum(b) / len(b) if b else math.nan for b in buckets]
    finite = [v for v in vals if math.isfinite(v)]
    if not finite:
        return " " * len(vals)
    lo, hi = min(finite), max(finite)
    if hi == lo:
        return "".join(BLOCKS[3] if math.isfinite(v) else " " for v in vals)
    top = len(BLOCKS) - 1
    return "".join(BLOCKS[round((v - lo) / (hi - lo) * top)] if math.isfinite(v) else " "
                   for v in vals)
