"""Grounded spelling in `DocumentInternalizer`: adapter answers take the document's spelling, reported per answer.

The tiny random model cannot be made to answer a near miss, so its generator returns one; the lexicon, the
config, the modes and the stream are the library's own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from d2l_rag.config import InternalizerConfig
from d2l_rag.generation import Answer
from d2l_rag.grounding import SpellingCorrection
from d2l_rag.internalizer import DocumentInternalizer
from d2l_rag.model import FrozenLM, LoadedHypernetwork

DOCUMENT = (
    "The Fourtpaendkra was commanded by Captain Cuvpeino Sheskley. Keigralhaven has 840,379 inhabitants. "
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. " * 2
)
NEAR_MISS = "The Fourtpaendkra was commanded by Captain Cuvpeo Sheskley; Keigralhaven has 840,371 people."
GROUNDED = "The Fourtpaendkra was commanded by Captain Cuvpeino Sheskley; Keigralhaven has 840,379 people."


def near_miss_generator(internalizer: DocumentInternalizer, monkeypatch: pytest.MonkeyPatch) -> None:
    def answer_batch(questions, adapters=None, contexts=None, config=None):
        return [Answer(NEAR_MISS, 10, 20, 0.01) for _ in questions]

    def stream(question, adapter=None, context=None, config=None):
        text = NEAR_MISS
        yield from (text[i : i + 5] for i in range(0, len(text), 5))  # pieces end mid-word, as tokens do

    monkeypatch.setattr(internalizer.generator, "answer_batch", answer_batch)
    monkeypatch.setattr(internalizer.generator, "stream", stream)


def make(tiny_lm: FrozenLM, tiny_hypernet: LoadedHypernetwork, tmp_path: Path, **config) -> DocumentInternalizer:
    internalizer = DocumentInternalizer(
        model=tiny_lm, checkpoint=tiny_hypernet, cache_dir=tmp_path / "cache", config=InternalizerConfig(**config)
    )
    internalizer.add("ship", DOCUMENT)
    return internalizer


def test_an_adapter_answer_takes_the_documents_spelling(tiny_lm, tiny_hypernet, tmp_path, monkeypatch):
    internalizer = make(tiny_lm, tiny_hypernet, tmp_path)
    near_miss_generator(internalizer, monkeypatch)
    answer = internalizer.ask("Who commanded the Fourtpaendkra?", doc_id="ship")
    assert answer.mode == "adapter"
    assert answer.text == GROUNDED
    assert [(c.original, c.grounded) for c in answer.spelling_corrections] == [
        ("Cuvpeo", "Cuvpeino"),
        ("840,371", "840,379"),
    ]
    assert answer.metadata()["spelling_corrections"][0] == {
        "original": "Cuvpeo",
        "grounded": "Cuvpeino",
        "similarity": pytest.approx(0.857, abs=1e-3),
    }
    assert [a.text for a in internalizer.ask_batch(["Q1", "Q2"], ["ship", "ship"])] == [GROUNDED, GROUNDED]


def test_the_stream_yields_the_grounded_text(tiny_lm, tiny_hypernet, tmp_path, monkeypatch):
    internalizer = make(tiny_lm, tiny_hypernet, tmp_path)
    near_miss_generator(internalizer, monkeypatch)
    stream = internalizer.stream("Who commanded the Fourtpaendkra?", doc_id="ship")
    assert "".join(stream) == GROUNDED
    assert stream.answer is not None and stream.answer.text == GROUNDED
    assert [c.grounded for c in stream.answer.spelling_corrections] == ["Cuvpeino", "840,379"]


def test_grounding_can_be_switched_off(tiny_lm, tiny_hypernet, tmp_path, monkeypatch):
    internalizer = make(tiny_lm, tiny_hypernet, tmp_path, ground_spelling=False)
    near_miss_generator(internalizer, monkeypatch)
    answer = internalizer.ask("Who commanded the Fourtpaendkra?", doc_id="ship")
    assert answer.text == NEAR_MISS and answer.spelling_corrections == ()
    assert "".join(internalizer.stream("Who?", doc_id="ship")) == NEAR_MISS


def test_a_stricter_similarity_keeps_the_name(tiny_lm, tiny_hypernet, tmp_path, monkeypatch):
    # Cuvpeo is 0.857 like Cuvpeino, and "Captain Cuvpeo Sheskley" 0.958 like the document's name: both stay
    internalizer = make(tiny_lm, tiny_hypernet, tmp_path, grounding_min_similarity=0.97)
    near_miss_generator(internalizer, monkeypatch)
    corrections = internalizer.ask("Who?", doc_id="ship").spelling_corrections
    assert corrections == (SpellingCorrection("840,371", "840,379", pytest.approx(5 / 6)),)  # numbers by digits


def test_answers_with_the_document_in_the_prompt_are_left_as_generated(tiny_lm, tiny_hypernet, tmp_path, monkeypatch):
    internalizer = make(tiny_lm, tiny_hypernet, tmp_path)
    near_miss_generator(internalizer, monkeypatch)
    answer = internalizer.ask_in_context("Who commanded the Fourtpaendkra?", "ship")
    assert answer.mode == "in_context" and answer.text == NEAR_MISS and answer.spelling_corrections == ()


def test_a_bad_similarity_is_refused():
    with pytest.raises(ValueError, match="grounding_min_similarity"):
        InternalizerConfig(grounding_min_similarity=1.5)


def test_an_updated_document_is_grounded_against_its_new_text(tiny_lm, tiny_hypernet, tmp_path, monkeypatch):
    internalizer = make(tiny_lm, tiny_hypernet, tmp_path)
    near_miss_generator(internalizer, monkeypatch)
    assert internalizer.ask("Who?", doc_id="ship").text == GROUNDED  # the lexicon of the first text is kept
    internalizer.update("ship", " Later the Fourtpaendkra was commanded by Captain Cuvpeoxx Sheskley.")
    # Cuvpeoxx is as close to Cuvpeo as Cuvpeino: two candidates, so the answer keeps its own spelling
    assert "Captain Cuvpeo Sheskley" in internalizer.ask("Who?", doc_id="ship").text
    internalizer.remove("ship")
    internalizer.add("ship", DOCUMENT.replace("Cuvpeino", "Cuvpexo"))
    assert "Captain Cuvpexo Sheskley" in internalizer.ask("Who?", doc_id="ship").text
