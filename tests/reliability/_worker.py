"""A worker process for the multi-process reliability tests: add documents to a shared cache, report as JSON lines.

Usage: python _worker.py '<json spec>'. Spec keys: model, checkpoint, cache_dir, docs ([[doc_id, text], ...]),
start_file (optional: wait until it exists, so that all workers start adding at the same moment).

Events on stdout: {"event": "ready"}, {"event": "added", "doc_id", "chunks"} after each document,
{"event": "paused", "where"} (see below), {"event": "done", "chunks_encoded"}.

D2L_TEST_PAUSE=write|build freezes the process at its first adapter write (after half of the file's bytes are
on disk) or at its first adapter build (holding the cache's build lock), so the parent can SIGKILL it exactly there.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def freeze(where: str) -> None:
    emit("paused", where=where)
    time.sleep(3600)  # until SIGKILL


def install_pause(where: str, cache_dir: str) -> None:
    if where == "write":
        from diskcache import core

        original = core.Disk._write
        adapters_dir = os.path.join(cache_dir, "adapters")

        def half_write(self, full_path, iterator, mode, encoding=None):
            if not full_path.startswith(adapters_dir):
                return original(self, full_path, iterator, mode, encoding)
            data = iterator.read()
            os.makedirs(os.path.dirname(full_path), exist_ok=True)
            with open(full_path, mode) as handle:
                handle.write(data[: len(data) // 2])
                handle.flush()
                os.fsync(handle.fileno())
                freeze(f"writing {len(data)} bytes to {full_path}")

        core.Disk._write = half_write
    elif where == "build":
        from d2l_rag.adapters.builder import AdapterBuilder

        def frozen_build(self, text, progress=None):
            freeze("building an adapter while holding its lock")

        AdapterBuilder.encode_text = frozen_build


def main() -> None:
    spec = json.loads(sys.argv[1])
    torch.set_num_threads(1)  # identical arithmetic in every process, so adapters can be compared bit for bit
    if os.environ.get("D2L_TEST_PAUSE"):
        install_pause(os.environ["D2L_TEST_PAUSE"], spec["cache_dir"])
    from d2l_rag.internalizer import DocumentInternalizer

    internalizer = DocumentInternalizer(model=spec["model"], checkpoint=spec["checkpoint"], cache_dir=spec["cache_dir"])
    emit("ready")
    if spec.get("start_file"):
        while not Path(spec["start_file"]).exists():
            time.sleep(0.005)
    for doc_id, text in spec["docs"]:
        info = internalizer.add(doc_id, text)
        emit("added", doc_id=doc_id, chunks=info.chunks, internalized=info.internalized)
    emit("done", chunks_encoded=internalizer.chunks_encoded)


if __name__ == "__main__":
    main()
