"""Four processes internalize overlapping document sets into one cache directory at the same moment.

Proves: no exception in any process, every adapter present and bit-identical to a serial run's, and every
distinct text encoded exactly once across all processes (the per-key build lock makes the others wait).
"""

from __future__ import annotations

import random

import diskcache
import pytest

from d2l_rag.adapters import adapter_to_bytes

PROCESSES = 4
DOCUMENTS = 12
PER_PROCESS = 6  # each document goes to two processes
SHARED_TEXT = "One text under four ids. " * 12  # the same text under a different id in every process


def _cache_blobs(cache_dir) -> dict[str, bytes]:
    with diskcache.Cache(str(cache_dir / "adapters")) as cache:
        return {key: cache[key] for key in cache.iterkeys()}


@pytest.mark.timeout(150)
def test_four_processes_share_one_cache(
    tmp_path, tiny_model_dir, tiny_checkpoint_dir, make_corpus, spawn_worker, make_internalizer
):
    docs = list(make_corpus(DOCUMENTS, seed=1).items())
    shared = tmp_path / "shared-cache"
    start = tmp_path / "start"
    base = {"model": str(tiny_model_dir), "checkpoint": str(tiny_checkpoint_dir)}
    rng = random.Random(0)
    plans = []
    for p in range(PROCESSES):
        mine = [docs[(3 * p + k) % DOCUMENTS] for k in range(PER_PROCESS)] + [(f"shared-{p}", SHARED_TEXT)]
        rng.shuffle(mine)
        plans.append(mine)
    every = sorted({d for plan in plans for d in plan})
    serial = spawn_worker({**base, "cache_dir": str(tmp_path / "serial-cache"), "docs": every})
    workers = [
        spawn_worker({**base, "cache_dir": str(shared), "docs": plan, "start_file": str(start)}) for plan in plans
    ]
    for worker in workers:
        worker.wait_for("ready")
    start.touch()  # all four start adding at once
    reports = [worker.wait_for("done") for worker in workers]
    serial_report = serial.wait_for("done")
    for worker in [*workers, serial]:
        assert worker.proc.wait(timeout=30) == 0, worker.proc.stderr.read()

    # Each distinct text was encoded exactly once in total: the serial run's count is the number of distinct chunks.
    assert sum(r["chunks_encoded"] for r in reports) == serial_report["chunks_encoded"] > DOCUMENTS

    # Every adapter entry exists and holds exactly the bytes the serial run wrote.
    concurrent_blobs, serial_blobs = _cache_blobs(shared), _cache_blobs(tmp_path / "serial-cache")
    assert len(serial_blobs) == DOCUMENTS + 1
    assert concurrent_blobs == serial_blobs

    # And the shared cache serves every document without encoding anything.
    concurrent = make_internalizer(shared)
    reference = make_internalizer(tmp_path / "serial-cache")
    assert sorted(info.doc_id for info in concurrent.documents()) == sorted(doc_id for doc_id, _ in every)
    for doc_id, text in every:
        assert concurrent.text(doc_id) == text
        assert adapter_to_bytes(concurrent.adapter(doc_id)) == adapter_to_bytes(reference.adapter(doc_id))
    assert concurrent.chunks_encoded == reference.chunks_encoded == 0
    print(
        f"\nfigures: processes={PROCESSES} documents={len(every)} distinct_texts={len(serial_blobs)} "
        f"chunks_encoded={[r['chunks_encoded'] for r in reports]} serial={serial_report['chunks_encoded']}"
    )
