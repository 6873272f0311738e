"""How much two rankings agree: rank-biased overlap and overlap@k, on the docids of two top-k lists."""
from __future__ import annotations

from typing import Sequence

RBO_P = 0.9


def overlap_at(first: Sequence[str], second: Sequence[str], k: int) -> float | None:
    """|top-k(first) ∩ top-k(second)| / k; None when either list is empty."""
    if not first or not second:
        return None
    return len(set(first[:k]) & set(second[:k])) / k


def rbo(first: Sequence[str], second: Sequence[str], p: float = RBO_P) -> float | None:
    """Extrapolated rank-biased overlap (Webber, Moffat and Zobel 2010, equation 32, lists of uneven length) of two
    rankings without repeated ids; 1 for identical lists, 0 for disjoint ones, None when either list is empty."""
    if not first or not second:
        return None
    short, long_ = (first, second) if len(first) <= len(second) else (second, first)
    s, length = len(short), len(long_)
    seen_short, seen_long = set(), set()
    overlap = 0  # X_d: the size of the intersection of the two prefixes of depth d
    weighted = 0.0
    overlap_at_s = 0
    for depth in range(1, length + 1):
        item_long = long_[depth - 1]
        if depth <= s:
            item_short = short[depth - 1]
            if item_short == item_long:
                overlap += 1
            else:
                overlap += (item_short in seen_long) + (item_long in seen_short)
            seen_short.add(item_short)
        elif item_long in seen_short:
            overlap += 1
        seen_long.add(item_long)
        if depth == s:
            overlap_at_s = overlap
        weighted += overlap / depth * p ** depth
        if depth > s:
            weighted += overlap_at_s * (depth - s) / (s * depth) * p ** depth
    return (1 - p) / p * weighted + ((overlap - overlap_at_s) / length + overlap_at_s / s) * p ** length
