"""Token chunking and document tokenization."""

from __future__ import annotations

import pytest
import torch

from d2l_rag.errors import InvalidInputError
from d2l_rag.model import chunk_ids, encode_chunks, pad_chunks, tokenize_document


@pytest.mark.parametrize(
    ("n", "size", "sizes"),
    [(10, 4, [4, 4, 2]), (8, 4, [4, 4]), (3, 64, [3]), (1, 1, [1]), (0, 5, [])],
)
def test_chunk_sizes(n, size, sizes):
    ids = list(range(n))
    chunks = chunk_ids(ids, size)
    assert [len(c) for c in chunks] == sizes
    assert [t for c in chunks for t in c] == ids  # consecutive, in order, nothing lost


@pytest.mark.parametrize("size", [0, -3])
def test_chunk_size_must_be_positive(size):
    with pytest.raises(InvalidInputError, match=f"chunk_tokens must be > 0, got {size}"):
        chunk_ids([1, 2, 3], size)


def test_tokenize_document_has_no_special_tokens(tiny_lm):
    ids = tokenize_document(tiny_lm.tokenizer, "Hi there.")
    assert tiny_lm.tokenizer.decode(ids) == "Hi there."
    assert len(ids) == 9
    assert not set(ids) & set(tiny_lm.tokenizer.all_special_ids)


@pytest.mark.parametrize("text", ["", "   ", "\n\t \n"])
def test_tokenize_document_rejects_empty_text(tiny_lm, text):
    with pytest.raises(InvalidInputError, match="empty or whitespace only"):
        tokenize_document(tiny_lm.tokenizer, text)


@pytest.mark.parametrize(("value", "kind"), [(None, "NoneType"), (b"bytes", "bytes"), (["a"], "list"), (3, "int")])
def test_tokenize_document_rejects_non_str(tiny_lm, value, kind):
    with pytest.raises(InvalidInputError, match=f"document text must be str, got {kind}"):
        tokenize_document(tiny_lm.tokenizer, value)


def test_pad_chunks_right_pads_with_a_mask(tiny_lm):
    pad = tiny_lm.tokenizer.pad_token_id
    ids, mask = pad_chunks([[7, 8, 9], [5]], pad, tiny_lm.device)
    assert ids.tolist() == [[7, 8, 9], [5, pad, pad]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    with pytest.raises(ValueError, match="at least one token"):
        pad_chunks([[1], []], pad, tiny_lm.device)


def test_encode_chunks_returns_every_layer(tiny_lm):
    ids, mask = pad_chunks([[7, 8, 9], [5]], tiny_lm.tokenizer.pad_token_id, tiny_lm.device)
    acts = encode_chunks(tiny_lm.model, ids, mask)
    assert acts.shape == (2, 2, 3, 64)  # (layers, N, T, hidden)
    out = tiny_lm.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    for layer in range(2):  # hidden_states[0] is the embedding output, which the encoder drops
        assert torch.equal(acts[layer], out.hidden_states[layer + 1])
