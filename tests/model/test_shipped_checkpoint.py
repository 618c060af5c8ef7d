"""The checkpoint shipped in the package: it fits the default model and internalizes a needle on this CPU."""

from __future__ import annotations

import random

import pytest

from d2l_rag.adapters import AdapterBuilder
from d2l_rag.default_checkpoint import SHIPPED_CHECKPOINTS, find_checkpoint
from d2l_rag.generation import Generator
from d2l_rag.model import FrozenLM, load_checkpoint
from d2l_rag.model.checkpoint import read_checkpoint_config
from d2l_rag.training.evaluate import magic_number_correct
from d2l_rag.training.needle import make_needle_example
from d2l_rag.training.pool import token_counter

pytestmark = pytest.mark.real_model

SHIPPED = SHIPPED_CHECKPOINTS / "smollm2-135m-instruct"


def test_shipped_checkpoint_is_small_and_records_its_base_model():
    config = read_checkpoint_config(SHIPPED)
    assert (SHIPPED / "hypernetwork.safetensors").stat().st_size <= 48 * 2**20
    assert config.hypernet.chunk_tokens == 1024
    assert config.base.architecture == "LlamaForCausalLM" and config.base.num_layers == 30


def test_shipped_checkpoint_is_the_default_for_the_default_model(default_lm: FrozenLM):
    assert find_checkpoint(default_lm) == SHIPPED
    assert read_checkpoint_config(SHIPPED).base == default_lm.fingerprint


def test_needle_is_answered_from_the_adapter_alone(default_lm: FrozenLM):
    hypernet = load_checkpoint(SHIPPED, default_lm)
    builder = AdapterBuilder(default_lm, hypernet)
    generator = Generator(default_lm)
    rng = random.Random(7)
    examples = [
        make_needle_example(rng, 300, token_counter(default_lm), depth_bin=d, split="heldout") for d in (1, 5, 9)
    ]
    answers = generator.answer_batch(
        [ex.question for ex in examples], adapters=[builder.build(ex.document) for ex in examples]
    )
    bare = generator.answer_batch([ex.question for ex in examples])
    assert all(magic_number_correct(a.text, ex.answer) for a, ex in zip(answers, examples, strict=True)), [
        (ex.answer, a.text) for a, ex in zip(answers, examples, strict=True)
    ]
    assert not any(magic_number_correct(a.text, ex.answer) for a, ex in zip(bare, examples, strict=True))


def test_long_needle_is_answered_from_its_most_salient_chunks(default_lm: FrozenLM):
    """12 chunks: beyond what the checkpoint composes (it declares 4), so the 4 loudest chunks are kept."""
    hypernet = load_checkpoint(SHIPPED, default_lm)
    assert hypernet.config.max_composed_chunks == 4
    example = make_needle_example(random.Random(11), 12_000, token_counter(default_lm), depth_bin=6, split="heldout")
    adapter = AdapterBuilder(default_lm, hypernet, batch_chunks=8).build(example.document)
    assert adapter.metadata["chunks_composed"] == f"4 of {adapter.chunk_count}" and adapter.chunk_count >= 12
    answer = Generator(default_lm).answer_batch([example.question], adapters=[adapter])[0].text
    assert magic_number_correct(answer, example.answer), (example.answer, answer)
