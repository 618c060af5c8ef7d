"""DocumentInternalizer: caching across calls and processes, update, fallback, batching, routing, errors.

Plumbing tests run on the tiny random Llama (instant); tests whose answers or numerics matter run on the real
SmolLM2 with `random_checkpoint_dir` (non-trivial adapters that do not depend on a trained checkpoint).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from d2l_rag.config import GenerationConfig, InternalizerConfig
from d2l_rag.context_window import fit_context
from d2l_rag.document_input import read_text_files
from d2l_rag.errors import InvalidInputError, UnknownDocumentError
from d2l_rag.internalizer import DocumentInternalizer
from d2l_rag.model import FrozenLM, LoadedHypernetwork, load_checkpoint, save_checkpoint
from d2l_rag.routing import CallableRouter
from d2l_rag.testing import tiny_llama

FACT = "The code name of the project is Bluefin."
FACT_QUESTION = "What is the code name of the project?"
FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "
SHORT_ANSWERS = InternalizerConfig(generation=GenerationConfig(max_new_tokens=24))


def prose(topic: str, sentences: int = 40) -> str:
    """Distinct, adapter-worthy text about `topic` (several chunks at 256 tokens per chunk)."""
    return " ".join(f"Note {i} about {topic}: item {i * 7 % 13} was checked on day {i}." for i in range(sentences))


@pytest.fixture
def tiny(tiny_lm: FrozenLM, tiny_hypernet: LoadedHypernetwork, tmp_path: Path) -> DocumentInternalizer:
    return DocumentInternalizer(model=tiny_lm, checkpoint=tiny_hypernet, cache_dir=tmp_path / "cache")


@pytest.fixture
def real(default_lm: FrozenLM, random_checkpoint_dir: Path, tmp_path: Path) -> DocumentInternalizer:
    return DocumentInternalizer(
        model=default_lm, checkpoint=random_checkpoint_dir, cache_dir=tmp_path / "cache", config=SHORT_ANSWERS
    )


@pytest.fixture
def steering(default_lm: FrozenLM, random_checkpoint_dir: Path, tmp_path: Path) -> DocumentInternalizer:
    """Like `real`, with the random deltas scaled up 20x so that they visibly change greedy answers."""
    loaded = load_checkpoint(random_checkpoint_dir, default_lm)
    with torch.no_grad():
        loaded.network.out_scale.mul_(20.0)
    hypernet = LoadedHypernetwork(loaded.network, loaded.config, f"{loaded.id}-x20")
    return DocumentInternalizer(
        model=default_lm, checkpoint=hypernet, cache_dir=tmp_path / "cache", config=SHORT_ANSWERS
    )


def assert_same_adapter(left, right) -> None:
    assert left.target_modules == right.target_modules
    for name in left.target_modules:
        assert torch.equal(left.weights[name][0], right.weights[name][0])
        assert torch.equal(left.weights[name][1], right.weights[name][1])


# -- the cache --------------------------------------------------------------------------------------------------
@pytest.mark.real_model
def test_same_text_is_encoded_once(real: DocumentInternalizer) -> None:
    text = prose("the harbour")
    info = real.add("harbour", text)
    assert info.internalized and info.chunks >= 2
    assert real.chunks_encoded == info.chunks
    first = real.adapter("harbour")
    real.add("harbour", text)  # same id, same text
    real.add("copy", text)  # another id, same text: content-addressed
    real.collection("elsewhere").add("harbour", text)
    assert real.chunks_encoded == info.chunks
    assert_same_adapter(real.adapter("copy"), first)
    assert first.rank == info.chunks * 4  # random checkpoint: rank 4 per chunk


def test_a_second_process_reuses_the_cached_adapter(tiny_lm, tiny_hypernet, tmp_path: Path) -> None:
    checkpoint = save_checkpoint(tiny_hypernet.network, tiny_lm, tmp_path / "checkpoint")
    cache_dir = tmp_path / "cache"
    first = DocumentInternalizer(model=tiny_lm, checkpoint=checkpoint, cache_dir=cache_dir)
    info = first.add("doc", prose("the mill", 12))
    assert first.chunks_encoded == info.chunks > 0
    first.close()
    script = textwrap.dedent(
        f"""
        from d2l_rag.internalizer import DocumentInternalizer
        from d2l_rag.testing import tiny_llama
        di = DocumentInternalizer(
            model=tiny_llama(seed=0), checkpoint={str(checkpoint)!r}, cache_dir={str(cache_dir)!r}
        )
        adapter = di.adapter("doc")
        print(di.chunks_encoded, adapter.rank, adapter.chunk_count)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    encoded, rank, chunk_count = map(int, done.stdout.split())
    assert encoded == 0
    assert chunk_count == info.chunks
    assert rank == info.chunks * tiny_hypernet.config.hypernet.rank


@pytest.mark.real_model
def test_update_encodes_only_the_new_chunks(real: DocumentInternalizer) -> None:
    head, tail = prose("the orchard", 20), prose("the vineyard", 10)
    before = real.add("farm", head)
    encoded = real.chunks_encoded
    after = real.update("farm", tail)
    assert real.text("farm") == head + tail
    new_chunks = len(real.builder.chunks(tail))
    assert real.chunks_encoded - encoded == new_chunks
    assert after.chunks == before.chunks + new_chunks
    # Parts are chunked separately: the reference encodes each part on its own, chunk by chunk, and concatenates.
    reference = real.builder.document([real.builder.encode_text(head), real.builder.encode_text(tail)], "farm")
    adapter = real.adapter("farm")
    assert adapter.rank == reference.rank == after.chunks * 4
    assert_same_adapter(adapter, reference)


def test_long_documents_compose_at_most_the_configured_chunks(tiny_lm, tiny_hypernet, tmp_path) -> None:
    def internalizer(cap: int | None) -> DocumentInternalizer:
        config = InternalizerConfig(max_composed_chunks=cap)
        return DocumentInternalizer(model=tiny_lm, checkpoint=tiny_hypernet, cache_dir=tmp_path / "c", config=config)

    rank = tiny_hypernet.config.hypernet.rank
    capped = internalizer(2)
    info = capped.add("log", prose("the harbour", 30), title="Harbour log")
    adapter = capped.adapter("log")
    assert info.chunks > 2 and adapter.rank == 2 * rank
    assert adapter.metadata == {"chunks_composed": f"2 of {info.chunks}", "title": "Harbour log"}
    every = internalizer(0)  # same cache: nothing is encoded again, only the composition differs
    assert every.adapter("log").rank == info.chunks * rank and every.chunks_encoded == 0
    assert internalizer(None).adapter("log").rank == info.chunks * rank  # the tiny checkpoint declares no limit


def test_a_document_added_without_checkpoint_gets_an_adapter_once_one_exists(tiny_lm, tiny_hypernet, tmp_path):
    plain = DocumentInternalizer(model=tiny_lm, use_checkpoint=False, cache_dir=tmp_path)
    assert not plain.add("doc", prose("the dam", 5)).internalized
    assert "use_checkpoint=False" in plain.document("doc").fallback_reason
    with pytest.raises(InvalidInputError, match="has no adapter"):
        plain.adapter("doc")
    plain.close()
    with_adapters = DocumentInternalizer(model=tiny_lm, checkpoint=tiny_hypernet, cache_dir=tmp_path)
    assert with_adapters.document("doc").internalized
    assert with_adapters.adapter("doc").chunk_count == with_adapters.document("doc").chunks
    assert with_adapters.chunks_encoded == with_adapters.document("doc").chunks


# -- fallback ---------------------------------------------------------------------------------------------------
@pytest.mark.real_model
def test_fallback_answers_a_planted_fact_in_context(default_lm, tmp_path: Path) -> None:
    internalizer = DocumentInternalizer(
        model=default_lm, use_checkpoint=False, cache_dir=tmp_path, config=SHORT_ANSWERS
    )
    internalizer.add("project", FACT + " The team meets on Mondays.")
    answer = internalizer.ask(FACT_QUESTION, doc_id="project")
    assert answer.mode == "in_context"
    assert "bluefin" in answer.text.lower()
    assert answer.fallback_reason == "project: adapters disabled (use_checkpoint=False)"
    assert answer.context == "full"
    assert answer.adapter_rank == 0


@pytest.mark.real_model
def test_opted_out_document_falls_back_even_with_a_checkpoint(real: DocumentInternalizer) -> None:
    real.add("project", FACT, internalize=False)
    answer = real.ask(FACT_QUESTION, doc_id="project")
    assert answer.mode == "in_context"
    assert "internalize=False" in answer.fallback_reason
    assert "bluefin" in answer.text.lower()
    assert real.chunks_encoded == 0


@pytest.mark.real_model
def test_long_fallback_document_uses_the_passages_most_like_the_question(default_lm, tmp_path: Path) -> None:
    internalizer = DocumentInternalizer(
        model=default_lm, use_checkpoint=False, cache_dir=tmp_path, config=SHORT_ANSWERS
    )
    haystack = "\n\n".join(FILLER * 8 for _ in range(40))
    text = haystack + "\n\n" + FACT + "\n\n" + haystack
    info = internalizer.add("haystack", text)
    assert info.tokens > default_lm.context_window  # does not fit: passages it is
    answer = internalizer.ask(FACT_QUESTION, doc_id="haystack")
    assert answer.mode == "in_context"
    assert answer.context == "passages"
    assert answer.prompt_tokens < 2000
    assert "bluefin" in answer.text.lower()


def test_fit_context_keeps_whole_text_when_it_fits_and_ranked_passages_otherwise() -> None:
    from d2l_rag.generation import Generator

    generator = Generator(tiny_llama(window=1024), GenerationConfig(max_new_tokens=16))
    short = FACT
    assert fit_context(generator, FACT_QUESTION, short, 4) == (short, "full")
    paragraphs = [f"Paragraph {i}. " + FILLER for i in range(30)]
    paragraphs.insert(17, FACT)
    context, kind = fit_context(generator, FACT_QUESTION, "\n\n".join(paragraphs), 4)
    assert kind == "passages"
    assert FACT in context
    assert len(context) < 1024  # character tokenizer: the whole prompt must fit the 1024-token window


# -- questions --------------------------------------------------------------------------------------------------
@pytest.mark.real_model
def test_ask_batch_equals_asking_one_by_one(steering: DocumentInternalizer) -> None:
    real = steering
    real.add("orchard", prose("the orchard", 20))
    real.add("vineyard", prose("the vineyard", 10))
    real.add("project", FACT, internalize=False)
    questions = ["What was checked in the orchard?", "What was checked on day 3?", FACT_QUESTION]
    ids = ["orchard", "vineyard", "project"]
    batch = real.ask_batch(questions, ids)
    alone = [real.ask(q, doc_id=d) for q, d in zip(questions, ids, strict=True)]
    assert [a.text for a in batch] == [a.text for a in alone]
    assert [a.mode for a in batch] == ["adapter", "adapter", "in_context"]
    assert [a.doc_ids for a in batch] == [(d,) for d in ids]
    assert [a.adapter_rank for a in batch] == [a.adapter_rank for a in alone]
    assert all(a.text for a in batch)
    bare = real.generator.answer(questions[0]).text
    assert batch[0].text != bare  # the (random) adapter really steers its row


@pytest.mark.real_model
def test_stream_and_aask_agree_with_ask(real: DocumentInternalizer) -> None:
    real.add("orchard", prose("the orchard"))
    asked = real.ask("What was checked?", doc_id="orchard")
    stream = real.stream("What was checked?", doc_id="orchard")
    pieces = list(stream)
    assert len(pieces) > 1
    assert "".join(pieces).strip() == asked.text
    assert stream.answer is not None and stream.answer.text == asked.text and stream.answer.mode == "adapter"
    answered = asyncio.run(real.aask("What was checked?", doc_id="orchard"))
    assert answered.text == asked.text and answered.mode == "adapter"
    batch = asyncio.run(real.aask_batch(["What was checked?"], ["orchard"]))
    assert batch[0].text == asked.text


@pytest.mark.real_model
def test_several_documents_compose_their_adapters(real: DocumentInternalizer) -> None:
    terse = real.with_generation(GenerationConfig(max_new_tokens=4))
    a, b = terse.add("orchard", prose("the orchard")), terse.add("vineyard", prose("the vineyard", 20))
    answer = terse.ask("What was checked?", doc_ids=["orchard", "vineyard"])
    assert answer.mode == "adapter"
    assert answer.doc_ids == ("orchard", "vineyard")
    assert (
        answer.adapter_rank
        == terse.adapter("orchard").rank + terse.adapter("vineyard").rank
        == (a.chunks + b.chunks) * 4
    )
    terse.add("project", FACT, internalize=False)
    hybrid = terse.ask(FACT_QUESTION, doc_ids=["orchard", "project"])
    assert hybrid.mode == "hybrid" and hybrid.adapter_rank == a.chunks * 4 and hybrid.context == "full"


@pytest.mark.real_model
def test_router_picks_the_document_by_content(real: DocumentInternalizer) -> None:
    terse = real.with_generation(GenerationConfig(max_new_tokens=2))
    terse.add("lighthouse", "The Skerry lighthouse keeper is Agnes Moll. The lamp was electrified in 1931. " * 3)
    terse.add("bakery", "Hollin's bakery sells rye loaves and cardamom buns every morning at dawn. " * 3)
    terse.add("railway", "The narrow gauge railway to Brackwater opened with two steam locomotives. " * 3)
    for question, expected in [
        ("Who keeps the lighthouse?", "lighthouse"),
        ("Which buns does the bakery sell?", "bakery"),
        ("When did the railway to Brackwater open?", "railway"),
    ]:
        answer = terse.ask(question)
        assert answer.doc_ids == (expected,) and answer.routed and answer.mode == "adapter"
    assert not terse.ask("Who keeps the lighthouse?", doc_id="bakery").routed


def test_a_custom_router_is_used(tiny_lm, tiny_hypernet, tmp_path) -> None:
    seen = []

    def pick_last(question, documents, k):
        seen.append((question, sorted(documents)))
        return [sorted(documents)[-1]]

    internalizer = DocumentInternalizer(
        model=tiny_lm,
        checkpoint=tiny_hypernet,
        cache_dir=tmp_path,
        router=CallableRouter(pick_last),
        config=InternalizerConfig(generation=GenerationConfig(max_new_tokens=2)),
    )
    internalizer.add("a", prose("a", 3))
    internalizer.add("b", prose("b", 3))
    assert internalizer.ask("anything?").doc_ids == ("b",)
    assert seen == [("anything?", ["a", "b"])]


# -- documents and errors ---------------------------------------------------------------------------------------
def test_clear_errors(tiny: DocumentInternalizer) -> None:
    with pytest.raises(InvalidInputError, match="no documents in collection 'default'"):
        tiny.ask("Anyone there?")
    with pytest.raises(UnknownDocumentError, match="unknown document 'nope'") as caught:
        tiny.ask("Anyone there?", doc_id="nope")
    assert isinstance(caught.value, KeyError)
    for bad in ("", "   \n", b"bytes", None):
        with pytest.raises(InvalidInputError):
            tiny.add("doc", bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="doc_id"):
        tiny.add("", "text")
    tiny.add("doc", prose("a", 3))
    with pytest.raises(UnknownDocumentError, match="known: 'doc'"):
        tiny.adapter("dco")
    with pytest.raises(UnknownDocumentError):
        tiny.update("nope", "more")
    with pytest.raises(InvalidInputError, match="different text"):
        tiny.add("doc", prose("b", 3))
    with pytest.raises(InvalidInputError, match="not both"):
        tiny.ask("q?", doc_id="doc", doc_ids=["doc"])
    with pytest.raises(InvalidInputError, match="empty"):
        tiny.ask("q?", doc_ids=[])
    with pytest.raises(InvalidInputError, match="question is empty"):
        tiny.ask("  ", doc_id="doc")
    with pytest.raises(InvalidInputError, match="2 questions but 1"):
        tiny.ask_batch(["q?", "r?"], ["doc"])
    with pytest.raises(InvalidInputError, match="lists"):
        tiny.ask_batch(["q?"], "doc")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="collection name"):
        tiny.collection("a:b")
    assert tiny.ask_batch([]) == []


def test_overwrite_replaces_and_same_text_keeps_metadata(tiny: DocumentInternalizer) -> None:
    tiny.add("doc", prose("a", 3), {"source": "a.txt"}, title="Doc A")
    tiny.add("doc", prose("a", 3))
    assert tiny.document("doc").title == "Doc A" and tiny.document("doc").metadata == {"source": "a.txt"}
    tiny.add("doc", prose("b", 3), title="Doc B", overwrite=True)
    assert tiny.text("doc") == prose("b", 3) and tiny.document("doc").title == "Doc B"


def test_collections_are_isolated(tiny: DocumentInternalizer) -> None:
    alice, bob = tiny.collection("alice"), tiny.collection("bob")
    alice.add("notes", prose("alice", 3))
    bob.add("notes", prose("bob", 3))
    bob.add("extra", prose("extra", 3))
    assert alice.text("notes") == prose("alice", 3) and bob.text("notes") == prose("bob", 3)
    assert [d.doc_id for d in alice.documents()] == ["notes"]
    assert [d.doc_id for d in bob.documents()] == ["extra", "notes"]
    assert tiny.documents() == []
    with pytest.raises(UnknownDocumentError, match="collection 'alice'"):
        alice.text("extra")
    assert sorted(tiny.cache.collections()) == ["alice", "bob"]
    assert tiny.chunks_encoded == alice.chunks_encoded == bob.chunks_encoded > 0  # one counter for all views


def test_remove_forgets_the_document_and_its_unshared_text(tiny: DocumentInternalizer) -> None:
    shared, own = prose("shared", 3), prose("own", 3)
    tiny.add("keep", shared)
    tiny.add("twin", shared)
    tiny.add("gone", own)
    own_sha = tiny.cache.get_record("default", "gone")["parts"][0]
    own_key = tiny._key(own_sha)
    assert tiny.cache.get_adapter(own_key) is not None
    tiny.remove("twin")
    tiny.remove("gone")
    assert [d.doc_id for d in tiny.documents()] == ["keep"]
    assert tiny.text("keep") == shared  # still referenced by "keep"
    assert tiny.cache.get_text(own_sha) is None and tiny.cache.get_adapter(own_key) is None
    with pytest.raises(UnknownDocumentError):
        tiny.remove("gone")
    tiny.add("gone", own)  # can be added again
    assert tiny.text("gone") == own


def test_too_short_documents_are_answered_in_context(tiny_lm, tiny_hypernet, tmp_path) -> None:
    config = InternalizerConfig(min_adapter_tokens=50)
    internalizer = DocumentInternalizer(model=tiny_lm, checkpoint=tiny_hypernet, cache_dir=tmp_path, config=config)
    info = internalizer.add("short", "Tiny.")
    assert not info.internalized and "too short" in info.fallback_reason
    assert internalizer.chunks_encoded == 0
    more = " " + prose("growth", 3)
    grown = internalizer.update("short", more)  # long enough now: every part is encoded, the first one too
    assert grown.internalized and internalizer.chunks_encoded == grown.chunks == 1 + len(
        internalizer.builder.chunks(more)
    )


def test_add_many_reports_progress_over_all_chunks(tiny: DocumentInternalizer) -> None:
    calls = []
    docs = {"a": prose("a", 12), "b": prose("b", 3), "c": prose("c", 20)}
    infos = tiny.add_many(docs, progress=lambda done, total: calls.append((done, total)))
    total = sum(i.chunks for i in infos)
    assert calls[-1] == (total, total)
    assert all(t == total for _, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    with pytest.raises(InvalidInputError):  # checked before anything is encoded
        tiny.add_many({"d": prose("d", 3), "e": ""}, progress=False)
    assert "d" not in [d.doc_id for d in tiny.documents()]


def test_add_files_walks_directories(tiny: DocumentInternalizer, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text(prose("a", 3))
    (root / "sub" / "b.md").write_text(prose("b", 3))
    (root / "skip.bin").write_bytes(b"\x00\x01")
    infos = tiny.add_files(root, progress=False)
    assert [i.doc_id for i in infos] == ["a.txt", "sub/b.md"]
    assert tiny.text("sub/b.md") == prose("b", 3)
    (root / "bad.txt").write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(InvalidInputError, match="not valid UTF-8"):
        read_text_files(root)
    with pytest.raises(InvalidInputError, match="does not exist"):
        read_text_files(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="holds no"):
        read_text_files(tmp_path / "empty")


def test_info_describes_model_checkpoint_and_cache(tiny: DocumentInternalizer) -> None:
    tiny.add("doc", prose("a", 3))
    info = tiny.info()
    assert info["model"] == tiny.lm.name and info["hypernetwork"] == tiny.hypernet.id
    assert info["documents"] == 1 and info["cached_adapters"] == 1 and info["cache_bytes"] > 0
    assert info["chunk_tokens"] == tiny.chunk_tokens == 64
