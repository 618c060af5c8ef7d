"""Random chunking of training documents, so rank-concat composition is trained, not hoped for.

Published recipe: half of the samples 1 chunk, 1/8 two chunks, 1/16 each for 3 to 8 chunks; chunk lengths
within [min, max] tokens. Documents longer than `max_chunks * max_tokens` get as many chunks as they need.
"""

from __future__ import annotations

import random
from itertools import pairwise

__all__ = ["choose_grad_chunks", "sample_chunk_count", "split_into_chunks"]


def sample_chunk_count(rng: random.Random, max_chunks: int) -> int:
    if max_chunks <= 1:
        return 1
    weights = [8.0, 2.0] + [1.0] * (max_chunks - 2)  # 1/2, 1/8, then 1/16 each (for max_chunks = 8)
    return rng.choices(range(1, max_chunks + 1), weights=weights)[0]


def split_into_chunks(
    ids: list[int], rng: random.Random, max_chunks: int, min_tokens: int, max_tokens: int
) -> list[list[int]]:
    """Cut `ids` at random points into chunks of min..max tokens (fewer chunks if the text is short)."""
    n_tokens = len(ids)
    needed = -(-n_tokens // max_tokens)  # ceil: at least this many chunks
    possible = max(1, n_tokens // min_tokens)  # at most this many
    n = min(max(sample_chunk_count(rng, max_chunks), needed), max(possible, needed))
    if n == 1:
        return [ids]
    # Random cut points with every piece >= min_tokens (when possible) and <= max_tokens.
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, n_tokens), n - 1))
        bounds = [0, *cuts, n_tokens]
        sizes = [b - a for a, b in pairwise(bounds)]
        if min(sizes) >= min(min_tokens, n_tokens // n) and max(sizes) <= max_tokens:
            return [ids[a:b] for a, b in pairwise(bounds)]
    step = -(-n_tokens // n)  # fall back to even pieces
    return [ids[i : i + step] for i in range(0, n_tokens, step)]


def choose_grad_chunks(sizes: list[int], depth: float | None, limit: int, rng: random.Random) -> list[bool]:
    """Which chunks of one document get gradients: all when `limit` is 0 or not exceeded, else `limit` of them.

    The chunk holding the answer (at relative `depth`, when known) is always one, so the writing of the
    answer is trained on every long document; the rest are drawn at random, so the quiet chunks learn too.
    """
    n = len(sizes)
    if limit == 0 or n <= limit:
        return [True] * n
    chosen: set[int] = set()
    if depth is not None:
        position, end = depth * sum(sizes), 0
        for i, size in enumerate(sizes):
            end += size
            if position < end or i == n - 1:
                chosen.add(i)
                break
    chosen.update(rng.sample([i for i in range(n) if i not in chosen], limit - len(chosen)))
    return [i in chosen for i in range(n)]
