"""The embedded SmolLM2-135M-Instruct GGUF: loads, is fingerprinted stably, answers from context.

Loaded once per session by the `default_lm` fixture (~18 s on CPU: see the setup time in --durations).
"""

from __future__ import annotations

import time

import pytest
import torch

from d2l_rag.adapters import AdapterBuilder, stack_for_batch
from d2l_rag.config import HypernetConfig
from d2l_rag.generation import Generator
from d2l_rag.model import LoadedHypernetwork, apply_lora, chunk_ids, encode_chunks, fingerprint_of, pad_chunks
from d2l_rag.model.chunking import tokenize_document

pytestmark = pytest.mark.real_model

# Measured once with transformers 5.23 / tokenizers from the GGUF; weights do not enter the fingerprint.
EXPECTED_FINGERPRINT = "8d655f12743a919c"
QUESTION = "What is the access code for the Tessary vault?"
CONTEXT = "The access code for the Tessary vault is KX-4821-Q."


def test_default_model_loads_frozen(default_lm):
    from transformers import LlamaForCausalLM

    lm = default_lm
    assert isinstance(lm.model, LlamaForCausalLM)
    assert lm.num_layers == len(lm.model.model.layers) == 30
    assert lm.model.config.hidden_size == 576 and lm.model.config.intermediate_size == 1536
    assert lm.context_window == 8192
    assert lm.dtype == torch.float32 and lm.device.type == "cpu"
    assert not lm.model.training and not any(p.requires_grad for p in lm.model.parameters())
    assert lm.tokenizer.pad_token is not None


def test_fingerprint_is_stable(default_lm):
    lm = default_lm
    assert lm.fingerprint.id == EXPECTED_FINGERPRINT
    assert lm.fingerprint.architecture == "LlamaForCausalLM"
    assert (lm.fingerprint.num_layers, lm.fingerprint.hidden_size, lm.fingerprint.vocab_size) == (30, 576, 49152)
    assert fingerprint_of(lm.model, lm.tokenizer).id == EXPECTED_FINGERPRINT


def test_answers_from_context(default_lm):
    lm = default_lm
    generator = Generator(lm)
    answer = generator.answer(QUESTION, context=CONTEXT)
    print(f"in context: {answer.text!r} ({answer.seconds:.2f} s)")
    assert "4821" in answer.text
    assert "KX-4821-Q" in answer.text.replace(" ", "")
    bare = generator.answer(QUESTION)
    print(f"no context: {bare.text!r}")
    assert "4821" not in bare.text  # the code came from the context, not from the weights


def test_fresh_hypernetwork_on_a_1024_token_chunk(default_lm):
    import pydoc_data.topics

    lm = default_lm
    prose = "\n\n".join(pydoc_data.topics.topics.values())
    chunk = chunk_ids(tokenize_document(lm.tokenizer, prose), 1024)[0]
    assert len(chunk) == 1024
    hypernet = LoadedHypernetwork.fresh(lm, HypernetConfig())
    ids, mask = pad_chunks([chunk], lm.tokenizer.pad_token_id, lm.device)
    start = time.perf_counter()
    acts = encode_chunks(lm.model, ids, mask)
    encoded = time.perf_counter()
    with torch.no_grad():
        a, b = hypernet.network(acts, mask)["mlp.down_proj"]
    done = time.perf_counter()
    print(
        f"1024-token chunk: encode {encoded - start:.2f} s, hypernetwork {done - encoded:.2f} s; "
        f"hypernetwork parameters {hypernet.network.num_parameters():,}"
    )
    assert acts.shape == (30, 1, 1024, 576)
    assert a.shape == (1, 30, 8, 1536) and b.shape == (1, 30, 576, 8)
    assert torch.isfinite(a).all()
    assert torch.count_nonzero(b) == 0


def test_fresh_adapter_is_an_exact_no_op_on_the_real_model(default_lm):
    lm = default_lm
    hypernet = LoadedHypernetwork.fresh(lm, HypernetConfig(chunk_tokens=256))
    adapter = AdapterBuilder(lm, hypernet).build(CONTEXT * 2, doc_id="vault")
    assert adapter.rank == 8 and adapter.base_fingerprint == EXPECTED_FINGERPRINT
    ids = torch.tensor([Generator(lm).prompt_ids(QUESTION)])
    with torch.no_grad():
        base = lm.model(input_ids=ids).logits
        with apply_lora(lm.model, stack_for_batch([adapter.weights]), scale=adapter.scale):
            adapted = lm.model(input_ids=ids).logits
    assert torch.equal(adapted, base)
