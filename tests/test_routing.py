"""Routing a question to the document that holds the answer, and splitting text into passages."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping

import pytest

from d2l_rag.routing import BM25Index, BM25Router, CallableRouter, Router
from d2l_rag.text_chunks import split_passages

DOCS = {
    "town": (
        "Quillhaven. Quillhaven is a fictional fishing town on the Marrow coast. Its lighthouse was built in 1871 by "
        "the engineer Odessa Brambleworth, and the town holds a lantern festival every autumn."
    ),
    "company": (
        "Zentrovia Dynamics. Zentrovia Dynamics is a fictional maker of industrial gyroscopes, headquartered in a "
        "converted grain mill. Its chief executive is Tobias Fennimore and its flagship product is the GX-40."
    ),
    "exceptions": (
        "Python exceptions. An exception is raised when an error occurs; a try statement catches it with an except "
        "clause, a finally clause always runs, and raise re-raises or chains exceptions."
    ),
    "gardening": (
        "Gardening basics. Tomatoes need full sun and deep watering; mulch keeps the soil moist, and pruning the "
        "suckers helps the plants put energy into fruit. Compost improves clay soil."
    ),
}


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Who built the lighthouse in Quillhaven?", "town"),
        ("Who is the chief executive of Zentrovia Dynamics?", "company"),
        ("How do I catch an exception with an except clause?", "exceptions"),
        ("How much sun do tomatoes need?", "gardening"),
    ],
)
def test_bm25_router_sends_question_to_document_with_the_fact(question: str, expected: str) -> None:
    assert BM25Router().route(question, DOCS) == [expected]


def test_bm25_router_k_handling() -> None:
    router = BM25Router()
    top2 = router.route("Who built the lighthouse in Quillhaven?", DOCS, k=2)
    assert len(top2) == 2 and top2[0] == "town" and len(set(top2)) == 2
    everything = router.route("Who built the lighthouse in Quillhaven?", DOCS, k=10)
    assert sorted(everything) == sorted(DOCS) and everything[0] == "town"
    with pytest.raises(ValueError, match="k must be >= 1"):
        router.route("anything", DOCS, k=0)


def test_bm25_router_no_overlap_returns_k_ids_in_stable_order() -> None:
    router = BM25Router()
    # Only stopwords and unknown words: every score is zero, so ties keep the mapping's order.
    assert router.route("xylophone qwerty", DOCS, k=3) == ["town", "company", "exceptions"]
    assert router.route("what is it?", DOCS, k=2) == ["town", "company"]
    assert router.route("", DOCS, k=1) == ["town"]


def test_bm25_router_breaks_ties_by_mapping_order() -> None:
    twins = {"b": "the red fox jumps", "a": "the red fox jumps", "c": "blue whales sing"}
    assert BM25Router().route("red fox", twins, k=3) == ["b", "a", "c"]


def test_bm25_router_empty_mapping_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no documents to route to"):
        BM25Router().route("Who built the lighthouse?", {})


def test_bm25_router_rebuilds_index_when_documents_change() -> None:
    router = BM25Router()
    docs = dict(DOCS)
    assert router.route("Who is the chief executive of Zentrovia Dynamics?", docs) == ["company"]
    cached = router._cache
    assert router.route("How much sun do tomatoes need?", docs) == ["gardening"]
    assert router._cache is cached  # same documents: index reused

    docs["company"] = "Zentrovia Dynamics was sold; see the new owners."
    docs["acquirer"] = "Its new chief executive at Zentrovia Dynamics is Mirela Quonset, appointed chief executive."
    assert router.route("Who is the chief executive of Zentrovia Dynamics?", docs) == ["acquirer"]
    assert router._cache is not cached
    del docs["acquirer"]
    assert "acquirer" not in router.route("Who is the chief executive of Zentrovia Dynamics?", docs, k=10)


def test_routers_satisfy_router_protocol() -> None:
    assert isinstance(BM25Router(), Router)
    assert isinstance(CallableRouter(lambda q, d, k: list(d)[:k]), Router)


def test_callable_router_passes_through_valid_ids() -> None:
    calls: list[tuple[str, int]] = []

    def pick_last(question: str, documents: Mapping[str, str], k: int) -> list[str]:
        calls.append((question, k))
        return [*list(reversed(documents))[:k], "gardening"]  # a duplicate beyond k is dropped

    router = CallableRouter(pick_last)
    assert router.route("q", DOCS, k=2) == ["gardening", "exceptions"]
    assert calls == [("q", 2)]


def test_callable_router_rejects_unknown_ids() -> None:
    router = CallableRouter(lambda q, d, k: ["town", "atlantis"])
    with pytest.raises(ValueError, match=r"unknown doc ids \['atlantis'\].*'town'"):
        router.route("q", DOCS)


@pytest.mark.parametrize("returned", [[], "town", None])
def test_callable_router_rejects_empty_or_non_list_answers(returned: object) -> None:
    with pytest.raises(ValueError, match="routing function returned"):
        CallableRouter(lambda q, d, k: returned).route("q", DOCS)  # type: ignore[arg-type,return-value]


def test_callable_router_checks_arguments() -> None:
    with pytest.raises(ValueError, match="needs a callable"):
        CallableRouter("not a function")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no documents to route to"):
        CallableRouter(lambda q, d, k: []).route("q", {})


def test_bm25_index_rejects_empty_corpus() -> None:
    with pytest.raises(ValueError, match="0 texts"):
        BM25Index([])


# --- split_passages ---------------------------------------------------------------------------------------------


def _covered(text: str, passages: list[str]) -> None:
    """Every passage is a slice of `text` (in order), and together they cover all non-whitespace characters."""
    covered = [ch.isspace() for ch in text]
    search_from = 0
    for passage in passages:
        start = text.find(passage, search_from)
        assert start >= 0, f"passage not found in order: {passage[:40]!r}"
        for i in range(start, start + len(passage)):
            covered[i] = True
        search_from = start + 1
    assert all(covered), "some characters are in no passage"


def _prose(n_paragraphs: int) -> str:
    paragraphs = []
    for p in range(n_paragraphs):
        sentences = [f"Paragraph {p} sentence {s} talks about topic {p * 7 + s} at some length." for s in range(6)]
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


@pytest.mark.parametrize(("max_chars", "overlap"), [(1200, 150), (300, 60), (100, 0), (50, 20)])
def test_split_passages_cover_text_and_respect_max_chars(max_chars: int, overlap: int) -> None:
    unbroken = "".join(hashlib.sha256(bytes([i])).hexdigest() for i in range(3))  # 192 chars, no space
    text = _prose(12) + "\nA line.\nAnother line.\n" + unbroken + " end"
    passages = split_passages(text, max_chars=max_chars, overlap_chars=overlap)
    assert passages and all(0 < len(p) <= max_chars for p in passages)
    _covered(text, passages)


def test_split_passages_prefers_paragraph_then_sentence_boundaries() -> None:
    text = _prose(4)  # paragraphs of ~360 chars
    passages = split_passages(text, max_chars=400, overlap_chars=0)
    assert passages == text.split("\n\n")  # one paragraph each, cut exactly at the blank lines
    halves = split_passages(text, max_chars=200, overlap_chars=0)
    assert all(p.endswith(".") for p in halves)  # cut after sentences, never inside one


def test_split_passages_overlap_repeats_the_tail() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(40))
    passages = split_passages(text, max_chars=200, overlap_chars=60)
    assert len(passages) > 3
    for first, second in itertools.pairwise(passages):
        overlap = second[: second.index(".") + 1]  # its first sentence ...
        assert overlap in first and not first.startswith(overlap)  # ... is from the tail of the previous passage
        assert len(first) - first.index(overlap) <= 60
    no_overlap = split_passages(text, max_chars=200, overlap_chars=0)
    assert len(no_overlap) < len(passages)


def test_split_passages_edge_cases() -> None:
    assert split_passages("") == []
    assert split_passages(" \n\n \t") == []
    assert split_passages("  short text \n") == ["short text"]
    assert split_passages("a" * 25, max_chars=10, overlap_chars=0) == ["a" * 10, "a" * 10, "a" * 5]
    with pytest.raises(ValueError, match="overlap_chars"):
        split_passages("text", max_chars=100, overlap_chars=100)
    with pytest.raises(ValueError, match="max_chars"):
        split_passages("text", max_chars=0)
