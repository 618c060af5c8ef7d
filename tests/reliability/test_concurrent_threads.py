"""Eight threads ask about different documents through one internalizer: every answer equals the serial answer.

Half of the documents are answered with their adapter, the others in context (no adapter), and a ninth thread
adds documents meanwhile, so forwards with and without adapters, and adapter encoding, overlap on one model.
"""

from __future__ import annotations

import threading

import pytest

from d2l_rag.adapters import adapter_to_bytes
from d2l_rag.config import GenerationConfig, InternalizerConfig
from d2l_rag.internalizer import DocumentInternalizer

THREADS = 8
ROUNDS = 4


def _run_threads(internalizer, asks, new_docs) -> tuple[list[list[str]], list[BaseException]]:
    """Every thread asks its question ROUNDS times (ask and stream, alternating); one more thread adds documents."""
    barrier = threading.Barrier(len(asks) + 1)
    answers: list[list[str]] = [[] for _ in asks]
    errors: list[BaseException] = []

    def asker(i: int, question: str, doc_id: str) -> None:
        try:
            barrier.wait()
            for round_ in range(ROUNDS):
                if round_ % 2:
                    stream = internalizer.stream(question, doc_id=doc_id)
                    "".join(stream)
                    answers[i].append(stream.answer.text)
                else:
                    answers[i].append(internalizer.ask(question, doc_id=doc_id).text)
        except BaseException as exc:
            errors.append(exc)

    def adder() -> None:
        try:
            barrier.wait()
            for doc_id, text in new_docs.items():
                internalizer.add(doc_id, text)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=asker, args=(i, q, d)) for i, (q, d) in enumerate(asks)]
    threads.append(threading.Thread(target=adder))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return answers, errors


def _setup(internalizer, docs: dict[str, str]) -> list[tuple[str, str]]:
    for i, (doc_id, text) in enumerate(docs.items()):
        internalizer.add(doc_id, text, internalize=i % 2 == 0)  # odd documents: in context
    return [(f"What is the code name in document {i}?", doc_id) for i, doc_id in enumerate(docs)]


@pytest.mark.timeout(300)
def test_eight_threads_one_internalizer(tmp_path, make_internalizer, make_corpus):
    docs = make_corpus(THREADS + 3, seed=4)
    asked, new_docs = dict(list(docs.items())[:THREADS]), dict(list(docs.items())[THREADS:])
    internalizer = make_internalizer(tmp_path / "cache")
    asks = _setup(internalizer, asked)
    serial = [internalizer.ask(q, doc_id=d).text for q, d in asks]
    modes = {internalizer.ask(q, doc_id=d).mode for q, d in asks}
    assert modes == {"adapter", "in_context"}
    bare = internalizer.generator.answer(asks[0][0]).text
    assert serial[0] != bare, "the adapter must change the answer, or a leaked or missing adapter goes unseen"
    reference = make_internalizer(tmp_path / "reference-cache")
    for doc_id, text in new_docs.items():
        reference.add(doc_id, text)
    expected_adapters = {doc_id: adapter_to_bytes(reference.adapter(doc_id)) for doc_id in new_docs}

    answers, errors = _run_threads(internalizer, asks, new_docs)
    assert not errors, errors
    for i, got in enumerate(answers):
        assert got == [serial[i]] * ROUNDS, f"thread {i} ({asks[i][1]})"
    for doc_id, expected in expected_adapters.items():
        assert adapter_to_bytes(internalizer.adapter(doc_id)) == expected, f"{doc_id} was encoded with a stray LoRA"
    compared = THREADS * ROUNDS
    print(f"\nfigures: threads={THREADS} (+1 adding), answers compared={compared}, documents added={len(new_docs)}")


@pytest.mark.real_model
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_eight_threads_real_model(tmp_path, default_lm, random_checkpoint_dir):
    """The same on SmolLM2-135M with a random (non-trivial) checkpoint: one round, short answers."""
    internalizer = DocumentInternalizer(
        model=default_lm,
        checkpoint=random_checkpoint_dir,
        cache_dir=tmp_path / "cache",
        config=InternalizerConfig(generation=GenerationConfig(max_new_tokens=8)),
    )
    docs = {
        f"doc-{i}": f"The code name of project {i} is {name}. The budget of project {i} is {i * 7} coins."
        for i, name in enumerate(["Bluefin", "Redwood", "Granite", "Juniper", "Orchid", "Falcon", "Cobalt", "Maple"])
    }
    asks = _setup(internalizer, docs)
    serial = [internalizer.ask(q, doc_id=d).text for q, d in asks]
    barrier = threading.Barrier(THREADS)
    answers: list[str | None] = [None] * THREADS

    def asker(i: int) -> None:
        barrier.wait()
        answers[i] = internalizer.ask(*asks[i][:1], doc_id=asks[i][1]).text

    threads = [threading.Thread(target=asker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert answers == serial
