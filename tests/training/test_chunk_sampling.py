from __future__ import annotations

import random
from collections import Counter

import pytest

from d2l_rag.training.chunk_sampling import choose_grad_chunks, split_into_chunks


@pytest.mark.parametrize("n_tokens", [30, 500, 5000, 40_000])
def test_chunks_cover_the_document_in_order_within_the_size_limit(n_tokens):
    ids = list(range(n_tokens))
    rng = random.Random(n_tokens)
    for _ in range(20):
        pieces = split_into_chunks(ids, rng, max_chunks=8, min_tokens=25, max_tokens=1024)
        assert [t for p in pieces for t in p] == ids
        assert max(map(len, pieces)) <= 1024 and len(pieces) >= -(-n_tokens // 1024)


def test_grad_chunks_all_when_under_the_limit_or_unlimited():
    rng = random.Random(0)
    assert choose_grad_chunks([100] * 3, 0.5, limit=4, rng=rng) == [True] * 3
    assert choose_grad_chunks([100] * 30, 0.5, limit=0, rng=rng) == [True] * 30


@pytest.mark.parametrize(("depth", "answer_chunk"), [(0.0, 0), (0.26, 2), (0.999, 9), (None, None)])
def test_grad_chunks_hold_the_answer_and_are_otherwise_spread(depth, answer_chunk):
    rng = random.Random(1)
    seen: Counter[int] = Counter()
    for _ in range(200):
        flags = choose_grad_chunks([100] * 10, depth, limit=3, rng=rng)
        assert sum(flags) == 3
        if answer_chunk is not None:
            assert flags[answer_chunk]
        seen.update(i for i, f in enumerate(flags) if f)
    assert set(seen) == set(range(10))  # every chunk gets gradients some of the time
