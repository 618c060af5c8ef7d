"""Session-scoped internalizers for the integration tests: one on the tiny random Llama, one on the real model.

The standard LangChain suites build a fresh `D2LChatModel` per test from `chat_model_params`; passing one of these
objects through those params keeps the model loaded once per session (no hidden global model cache).
"""

from __future__ import annotations

import pytest

from d2l_rag.config import GenerationConfig, InternalizerConfig
from d2l_rag.internalizer import DocumentInternalizer
from d2l_rag.model import FrozenLM

# Short facts the 135M model answers reliably with the sentence in its prompt; each document is about one topic
# so the BM25 router has an easy, unambiguous choice. Registered with internalize=False: answered in context.
PLANTED_DOCUMENTS = {
    "project": ("Project", "The code name of the project is Bluefin."),
    "harbor": ("Harbor town", "Oakmere is a harbor town. The ferry to Oakmere leaves at noon every day."),
    "bakery": ("Bakery", "The bakery on Mill Street sells rye bread. The baker is named Tomas."),
}
# Registered normally: answered with an adapter once a checkpoint for the default model ships, in context until then.
HANDBOOK = ("Travel handbook", "Travel requests are approved by the office manager. Receipts are due within a week.")


def small_config(max_new_tokens: int) -> InternalizerConfig:
    return InternalizerConfig(generation=GenerationConfig(max_new_tokens=max_new_tokens))


@pytest.fixture(scope="session")
def tiny_internalizer(tiny_lm: FrozenLM, tmp_path_factory: pytest.TempPathFactory) -> DocumentInternalizer:
    """The tiny random Llama (no checkpoint fits it, so every answer is in context); for fast plumbing tests."""
    internalizer = DocumentInternalizer(
        model=tiny_lm, cache_dir=tmp_path_factory.mktemp("tiny-cache"), config=small_config(8)
    )
    for doc_id, (title, text) in PLANTED_DOCUMENTS.items():
        internalizer.add(doc_id, text, title=title)
    return internalizer


@pytest.fixture(scope="session")
def real_internalizer(default_lm: FrozenLM, tmp_path_factory: pytest.TempPathFactory) -> DocumentInternalizer:
    """The real default model with whatever checkpoint ships; the planted facts are always answered in context."""
    internalizer = DocumentInternalizer(
        model=default_lm, cache_dir=tmp_path_factory.mktemp("real-cache"), config=small_config(16)
    )
    internalizer.add("handbook", HANDBOOK[1], title=HANDBOOK[0])
    for doc_id, (title, text) in PLANTED_DOCUMENTS.items():
        internalizer.add(doc_id, text, title=title, internalize=False)
    return internalizer


@pytest.fixture(scope="session")
def adapter_internalizer(
    default_lm: FrozenLM, random_checkpoint_dir, tmp_path_factory: pytest.TempPathFactory
) -> DocumentInternalizer:
    """The real model with a random (non-trivial) checkpoint: 'project' has an adapter, 'bakery' does not."""
    internalizer = DocumentInternalizer(
        model=default_lm,
        checkpoint=random_checkpoint_dir,
        cache_dir=tmp_path_factory.mktemp("adapter-cache"),
        config=small_config(8),
    )
    internalizer.add("project", PLANTED_DOCUMENTS["project"][1], title="Project")
    internalizer.add("bakery", PLANTED_DOCUMENTS["bakery"][1], title="Bakery", internalize=False)
    return internalizer
