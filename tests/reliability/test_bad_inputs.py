"""Bad inputs across the public API: each is a documented `D2LError` subclass with a message that says what to do.

Decisions (see RELIABILITY.md): a document over `InternalizerConfig.max_document_chars` (default 1,000,000) is
refused before any tokenizing; a question that does not fit the model window with `max_new_tokens` is an error,
never silently truncated; texts must be `str` of valid Unicode without NUL; questions must be non-blank `str`
of valid Unicode. A hypothesis property test then throws arbitrary text at `add`/`ask`.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from d2l_rag.answer import InternalizedAnswer
from d2l_rag.errors import InvalidInputError, UnknownDocumentError

TEXT = "The code name of the project is Bluefin. The budget is 42 coins."
QUESTION = "What is the code name of the project?"
HYPOTHESIS_EXAMPLES = 150


@pytest.fixture()
def internalizer(tmp_path, make_internalizer):
    return make_internalizer(tmp_path / "cache", generation=_short())


def _short():
    from d2l_rag.config import GenerationConfig

    return GenerationConfig(max_new_tokens=4)


BAD_TEXTS = {
    "empty": ("", "empty or whitespace"),
    "whitespace": (" \n\t\r\u3000 ", "empty or whitespace"),
    "NUL": ("abc\x00def", "NUL"),
    "bytes": (b"The code name is Bluefin.", "bytes; decode it"),
    "invalid UTF-8 bytes": (b"\xff\xfe\xfa", "bytes; decode it"),
    "lone surrogate": ("The code name is \ud800.", "surrogate"),
    "None": (None, "must be str, got NoneType"),
    "int": (42, "must be str, got int"),
    "list": (["a", "b"], "must be str, got list"),
}


@pytest.mark.parametrize("name", list(BAD_TEXTS))
def test_bad_document_text(internalizer, name):
    text, message = BAD_TEXTS[name]
    with pytest.raises(InvalidInputError, match=message):
        internalizer.add("doc", text)
    internalizer.add("doc", TEXT)
    with pytest.raises(InvalidInputError, match=message):
        internalizer.update("doc", text)
    with pytest.raises(InvalidInputError, match=message):
        internalizer.add_many({"other": TEXT, "bad": text})
    assert [d.doc_id for d in internalizer.documents()] == ["doc"]  # add_many checks everything first
    assert internalizer.text("doc") == TEXT


@pytest.mark.parametrize("doc_id", ["", "   ", "a\x00b", None, 7, b"doc", ("a",)])
def test_bad_document_id(internalizer, doc_id):
    with pytest.raises(InvalidInputError, match="doc_id"):
        internalizer.add(doc_id, TEXT)
    internalizer.add("doc", TEXT)
    if doc_id is not None:  # ask(doc_id=None) means "let the router choose"
        with pytest.raises(InvalidInputError, match="doc_id"):
            internalizer.ask(QUESTION, doc_id=doc_id)


BAD_QUESTIONS = {
    "empty": ("", "empty or whitespace"),
    "whitespace": ("  \n", "empty or whitespace"),
    "lone surrogate": ("What is \udfff?", "surrogate"),
    "None": (None, "question must be str"),
    "bytes": (b"What?", "question must be str"),
    "int": (3, "question must be str"),
}


@pytest.mark.parametrize("name", list(BAD_QUESTIONS))
def test_bad_question(internalizer, name):
    question, message = BAD_QUESTIONS[name]
    internalizer.add("doc", TEXT)
    internalizer.add("ctx", TEXT + " In context.", internalize=False)
    for call in (
        lambda: internalizer.ask(question, doc_id="doc"),
        lambda: internalizer.ask(question, doc_id="ctx"),
        lambda: internalizer.ask(question),  # routed
        lambda: list(internalizer.stream(question, doc_id="doc")),
        lambda: internalizer.ask_batch([QUESTION, question], doc_id=["doc", "ctx"]),
    ):
        with pytest.raises(InvalidInputError, match=message):
            call()


def test_question_longer_than_the_window_is_an_error(internalizer):
    """Decision: an error naming the window, not a silent truncation (the question's end is usually the question)."""
    internalizer.add("doc", TEXT)
    internalizer.add("ctx", TEXT + " In context.", internalize=False)
    window = internalizer.lm.context_window
    long_question = "why " * window
    for call in (
        lambda: internalizer.ask(long_question, doc_id="doc"),
        lambda: internalizer.ask(long_question, doc_id="ctx"),
        lambda: list(internalizer.stream(long_question, doc_id="doc")),
        lambda: internalizer.ask_batch([QUESTION, long_question], doc_id=["doc", "doc"]),
    ):
        with pytest.raises(InvalidInputError, match=f"model window of {window}"):
            call()
    fits = "x" * (window - 100)  # just fits next to max_new_tokens and the chat markup
    assert isinstance(internalizer.ask(fits, doc_id="doc"), InternalizedAnswer)


def test_ten_million_character_document_is_refused_with_the_stated_limit(
    tmp_path, internalizer, make_internalizer, monkeypatch
):
    huge = "The grass is green. " * 500_000
    assert len(huge) == 10_000_000
    tokenized: list[int] = []  # characters of each text handed to the tokenizer
    tokenizer_type = type(internalizer.lm.tokenizer)
    original = tokenizer_type.__call__

    def counting(self, text=None, *args, **kwargs):
        tokenized.append(sum(map(len, text)) if isinstance(text, list) else len(text or ""))
        return original(self, text, *args, **kwargs)

    monkeypatch.setattr(tokenizer_type, "__call__", counting)
    with pytest.raises(InvalidInputError, match=r"10,000,000 characters.*1,000,000.*max_document_chars"):
        internalizer.add("huge", huge)
    path = tmp_path / "huge.txt"
    path.write_text(huge)
    with pytest.raises(InvalidInputError, match="max_document_chars"):
        internalizer.add_files(path, progress=False)
    monkeypatch.undo()
    assert max(tokenized, default=0) < 1_000_000, "refused before tokenizing the document"
    assert internalizer.documents() == []
    small = make_internalizer(tmp_path / "small-cache", max_document_chars=200, generation=_short())
    small.add("doc", "x" * 150)
    with pytest.raises(InvalidInputError, match="max_document_chars"):
        small.update("doc", "y" * 51)  # the limit is on the whole document
    small.update("doc", "y" * 50)
    assert small.document("doc").chars == 200
    with pytest.raises(InvalidInputError, match="201 characters"):
        small.add("big", "z" * 201)


def test_bad_files(tmp_path, internalizer):
    files = {
        "binary.txt": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        "latin1.txt": ("Caf\xe9 cr\xe8me".encode("latin-1"), "not valid UTF-8"),
        "empty.txt": (b"", "empty or whitespace"),
        "blank.md": (b" \n\n ", "empty or whitespace"),
    }
    for name, (raw, message) in files.items():
        path = tmp_path / name
        path.write_bytes(raw)
        with pytest.raises(InvalidInputError, match=message):
            internalizer.add_files(path, progress=False)
    with pytest.raises(InvalidInputError, match="does not exist"):
        internalizer.add_files(tmp_path / "missing.txt", progress=False)
    assert internalizer.documents() == []


def test_unknown_document_ids(internalizer):
    internalizer.add("doc", TEXT)
    for call in (
        lambda: internalizer.ask(QUESTION, doc_id="nope"),
        lambda: internalizer.ask(QUESTION, doc_ids=["doc", "nope"]),
        lambda: internalizer.text("nope"),
        lambda: internalizer.adapter("nope"),
        lambda: internalizer.update("nope", TEXT),
        lambda: internalizer.remove("nope"),
    ):
        with pytest.raises(UnknownDocumentError, match=r"'nope'.*known: 'doc'"):
            call()
    with pytest.raises(InvalidInputError, match="no documents"):
        internalizer.collection("empty").ask(QUESTION)
    with pytest.raises(InvalidInputError, match="string"):
        internalizer.ask(QUESTION, doc_ids="doc")


def test_duplicate_ids_need_explicit_overwrite(internalizer):
    internalizer.add("doc", TEXT)
    internalizer.add("doc", TEXT)  # same text: fine
    with pytest.raises(InvalidInputError, match="overwrite=True"):
        internalizer.add("doc", TEXT + " Changed.")
    with pytest.raises(InvalidInputError, match="overwrite=True"):
        internalizer.add_many([("doc", TEXT + " Changed.")], progress=False)
    assert internalizer.text("doc") == TEXT
    internalizer.add("doc", TEXT + " Changed.", overwrite=True)
    assert internalizer.text("doc") == TEXT + " Changed."


# -- property: arbitrary text into add/ask -------------------------------------------------------------------
_nasty = st.sampled_from(
    [
        "\x00",
        "\ud800",
        "\udfff",
        " ",
        "\n",
        "\t",
        "\u200b",
        "\ufeff",
        "\U0001f600",
        "<|im_end|>",
        "<|im_start|>",
        "<pad>",
        "é",
        "\u0301",
        "\r\n",
        "\x7f",
        "\x1b[31m",
    ]
)
_any_text = st.lists(st.one_of(st.characters(), _nasty), max_size=60).map("".join)  # often refused
_encodable = st.text(st.characters(codec="utf-8"), min_size=1, max_size=120)  # usually accepted
_value = st.one_of(
    _encodable, _encodable, _any_text, st.binary(max_size=20), st.none(), st.integers(), st.lists(_any_text, max_size=2)
)
_document = st.one_of(_encodable.map(lambda t: t * 3), _encodable, _value)  # some long enough for an adapter


def _expected_error(value) -> bool:
    """Whether `value` is documented to be refused as a text or question (blank, non-str, NUL, surrogates)."""
    if not isinstance(value, str) or not value.strip():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@pytest.fixture()
def fuzz_internalizer(tmp_path_factory, make_internalizer):
    return make_internalizer(tmp_path_factory.mktemp("fuzz"), generation=_short())


@settings(max_examples=HYPOTHESIS_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    text=_document,
    question=_value,
    doc_id=st.sampled_from(["a", "b", "c"]),
    internalize=st.booleans(),
    overwrite=st.booleans(),
)
def test_property_add_and_ask_raise_only_documented_errors(
    fuzz_internalizer, text, question, doc_id, internalize, overwrite
):
    """Every outcome is a success or the documented error, and valid inputs always succeed."""
    internalizer = fuzz_internalizer
    previous = internalizer.text(doc_id) if doc_id in {d.doc_id for d in internalizer.documents()} else None
    bad_text = _expected_error(text) or (isinstance(text, str) and "\x00" in text)
    if bad_text:
        event("add: refused (documented)")
        with pytest.raises(InvalidInputError):
            internalizer.add(doc_id, text, internalize=internalize, overwrite=overwrite)
    elif previous is not None and previous != text and not overwrite:
        event("add: duplicate id, refused without overwrite")
        with pytest.raises(InvalidInputError, match="overwrite=True"):
            internalizer.add(doc_id, text, internalize=internalize)
    else:
        event("add: accepted")
        info = internalizer.add(doc_id, text, internalize=internalize, overwrite=overwrite)
        assert info.chars == len(text)
        previous = text
    if previous is None:
        event("ask: unknown document")
        with pytest.raises(UnknownDocumentError):
            internalizer.ask("What?", doc_id=doc_id)
        return
    if _expected_error(question):
        event("ask: refused (documented)")
        with pytest.raises(InvalidInputError):
            internalizer.ask(question, doc_id=doc_id)
    else:
        answer = internalizer.ask(question, doc_id=doc_id)
        event(f"ask: answered ({answer.mode})")
        assert isinstance(answer.text, str) and answer.doc_ids == (doc_id,)
