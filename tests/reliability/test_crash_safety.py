"""A process SIGKILLed while writing adapters leaves a cache that opens, serves every completed adapter
unchanged and without re-encoding, and rebuilds the interrupted one on the next request.

Three ways to die: half-way through writing an adapter file, while holding the build lock of an adapter (the
next process must not wait for a dead owner), and at random moments during a run of `add` calls.
"""

from __future__ import annotations

import random
import time

import pytest

from d2l_rag.adapters import adapter_to_bytes

RANDOM_KILLS = 4


@pytest.fixture()
def documents(make_corpus) -> dict[str, str]:
    """A mix of small adapters (stored inside SQLite) and large ones (stored as files, > 32 kB)."""
    return {doc_id: text * (1 + i % 3) for i, (doc_id, text) in enumerate(make_corpus(10, seed=3).items())}


@pytest.fixture()
def reference(tmp_path, documents, make_internalizer, one_thread) -> dict[str, bytes]:
    """Adapters of an uninterrupted run."""
    internalizer = make_internalizer(tmp_path / "reference-cache")
    for doc_id, text in documents.items():
        internalizer.add(doc_id, text)
    return {doc_id: adapter_to_bytes(internalizer.adapter(doc_id)) for doc_id in documents}


def _check_after_crash(cache_dir, completed, documents, reference, make_internalizer) -> int:
    """The cache opens; completed documents come back unchanged and without encoding; the rest rebuild."""
    internalizer = make_internalizer(cache_dir)
    registered = [info.doc_id for info in internalizer.documents()]
    in_flight = list(documents)[len(completed) : len(completed) + 1]  # it may have finished before its report
    assert set(completed) <= set(registered) <= set(completed + in_flight)
    for doc_id in registered:
        assert adapter_to_bytes(internalizer.adapter(doc_id)) == reference[doc_id]
    assert internalizer.chunks_encoded == 0, "a completed adapter was re-encoded after the crash"
    start = time.monotonic()
    for doc_id, text in documents.items():  # the next requests: the interrupted document and the rest
        internalizer.add(doc_id, text)
        assert adapter_to_bytes(internalizer.adapter(doc_id)) == reference[doc_id]
    assert time.monotonic() - start < 30, "the next request waited for the dead process"
    return internalizer.chunks_encoded


def _spec(tmp_path, tiny_model_dir, tiny_checkpoint_dir, documents, cache_dir) -> dict:
    return {
        "model": str(tiny_model_dir),
        "checkpoint": str(tiny_checkpoint_dir),
        "cache_dir": str(cache_dir),
        "docs": list(documents.items()),
    }


@pytest.mark.timeout(120)
@pytest.mark.parametrize("where", ["write", "build"])
def test_sigkill_at_a_chosen_point(
    where, tmp_path, tiny_model_dir, tiny_checkpoint_dir, documents, reference, spawn_worker, make_internalizer
):
    cache_dir = tmp_path / "cache"
    worker = spawn_worker(
        _spec(tmp_path, tiny_model_dir, tiny_checkpoint_dir, documents, cache_dir), env={"D2L_TEST_PAUSE": where}
    )
    paused = worker.wait_for("paused")
    worker.kill()
    completed = worker.added()
    assert len(completed) < len(documents), paused
    if where == "write":
        assert completed, "the first large adapter should come after some small ones"
        assert any(p.suffix == ".val" for p in (cache_dir / "adapters").rglob("*")), "no half-written file on disk"
    encoded = _check_after_crash(cache_dir, completed, documents, reference, make_internalizer)
    assert encoded > 0  # the interrupted adapter (and those after it) were built again


@pytest.mark.timeout(180)
def test_sigkill_at_random_moments(
    tmp_path, tiny_model_dir, tiny_checkpoint_dir, documents, reference, spawn_worker, make_internalizer
):
    rng = random.Random(8)
    outcomes = []
    for kill in range(RANDOM_KILLS):
        cache_dir = tmp_path / f"cache-{kill}"
        worker = spawn_worker(_spec(tmp_path, tiny_model_dir, tiny_checkpoint_dir, documents, cache_dir))
        worker.wait_for("ready")
        for _ in range(rng.randrange(len(documents) - 1)):
            worker.wait_for("added")
        time.sleep(rng.uniform(0.0, 0.05))  # somewhere inside the next add: encoding, writing or committing
        worker.kill()
        completed = worker.added()
        outcomes.append(len(completed))
        _check_after_crash(cache_dir, completed, documents, reference, make_internalizer)
    print(f"\nfigures: random kills={RANDOM_KILLS}, documents completed before each kill={outcomes}")
