from __future__ import annotations

import pytest

from d2l_rag.model.chunking import tokenize_document
from d2l_rag.testing import tiny_llama
from d2l_rag.training.config import DataMix, TrainConfig
from d2l_rag.training.pool import build_pool


@pytest.fixture(scope="module")
def lm():
    return tiny_llama(seed=2)


def _config(**update) -> TrainConfig:
    base = {"pool_size": 24, "teacher_batch": 8, "answer_tokens": 4, "min_doc_tokens": 40, "max_doc_tokens": 3000}
    return TrainConfig(**{**base, **update})


def test_pool_tokenizes_every_document_like_the_library_and_is_deterministic(lm):
    cfg = _config(mix=DataMix(needle=1, negative=1, facts=1, prose=0))
    items = build_pool(lm, cfg, seed=5)
    assert items and {i.example.kind for i in items} == {"needle", "negative", "facts"}
    for item in items:
        assert item.doc_ids == tokenize_document(lm.tokenizer, item.example.document)
        assert 0 < len(item.answer) <= 4
    again = build_pool(lm, cfg, seed=5)
    assert [i.doc_ids for i in again] == [i.doc_ids for i in items]


def test_teacher_reads_long_haystacks_shortened_and_facts_stay_within_its_window(lm):
    cfg = _config(mix=DataMix(needle=1, negative=1, facts=1, prose=0), teacher_max_doc_tokens=300)
    items = build_pool(lm, cfg, seed=6)
    shortened = [i for i in items if i.example.teacher_document is not None]
    assert shortened, "log-uniform lengths up to 3000 tokens must give some haystacks over 300"
    for item in items:
        assert len(item.teacher_prompt) < 300 * 1.1 + 60  # document (or its short version) + chat markup
        if item.example.kind == "facts":
            assert item.example.teacher_document is None and len(item.doc_ids) <= 300 * 1.1
    assert max(len(i.doc_ids) for i in shortened) > 1000
