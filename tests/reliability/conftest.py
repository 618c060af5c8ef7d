"""Fixtures for the reliability tests: a tiny random Llama saved as a local model directory, and a checkpoint for it.

Saved to disk (not built in memory) so that subprocesses can load exactly the same model in about a second,
instead of the real GGUF's ~17 s. The checkpoint has every parameter randomised, so adapters change answers.
Also a live pickle (`payload`, `live_payload`) and the `marker` directory it creates if anything unpickles it.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from d2l_rag.config import GenerationConfig, HypernetConfig, InternalizerConfig
from d2l_rag.internalizer import DocumentInternalizer
from d2l_rag.model import FrozenLM, LoadedHypernetwork, load_base_model, load_checkpoint, save_checkpoint
from d2l_rag.testing import tiny_llama

WORKER = Path(__file__).with_name("_worker.py")
TINY_HYPERNET = HypernetConfig(rank=4, width=32, num_heads=4, num_blocks=1, chunk_tokens=64)


class Payload:
    """Unpickling this runs `os.mkdir(marker)`: proof that something unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.fixture()
def marker(tmp_path) -> Path:
    """Created only if a `payload` is unpickled: it must not exist after any refusal."""
    return tmp_path / "UNPICKLED"


@pytest.fixture()
def payload(marker) -> Payload:
    """A live pickle, unpickled: hand it to `pickle.dumps`, `torch.save` or diskcache, which pickle it."""
    return Payload(marker)


@pytest.fixture()
def live_payload(tmp_path, payload) -> bytes:
    """A pickle that demonstrably runs code when loaded (checked with a second marker)."""
    pickle.loads(pickle.dumps(Payload(tmp_path / "control")))
    assert (tmp_path / "control").is_dir()
    return pickle.dumps(payload)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tiny-model")
    lm = tiny_llama(seed=0)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # larger weights than the default init: greedy answers vary with input and adapter
        for parameter in lm.model.parameters():
            if parameter.dim() == 2:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    lm.model.save_pretrained(directory)
    lm.tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_dir_lm(tiny_model_dir: Path) -> FrozenLM:
    """The saved tiny model, loaded the way a user (or a worker process) loads it."""
    return load_base_model(tiny_model_dir)


@pytest.fixture(scope="session")
def tiny_checkpoint_dir(tmp_path_factory: pytest.TempPathFactory, tiny_dir_lm: FrozenLM) -> Path:
    network = LoadedHypernetwork.fresh(tiny_dir_lm, TINY_HYPERNET).network
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.1)
        network.out_scale.fill_(1.0)
    return save_checkpoint(network, tiny_dir_lm, tmp_path_factory.mktemp("tiny-checkpoint") / "random")


@pytest.fixture(scope="session")
def tiny_hypernet_loaded(tiny_checkpoint_dir: Path, tiny_dir_lm: FrozenLM) -> LoadedHypernetwork:
    return load_checkpoint(tiny_checkpoint_dir, tiny_dir_lm)


@pytest.fixture()
def make_internalizer(tiny_dir_lm: FrozenLM, tiny_hypernet_loaded: LoadedHypernetwork):
    """`make_internalizer(cache_dir, **config)`: a tiny-model internalizer with short greedy answers."""

    def make(cache_dir: Path, adapters: bool = True, **config: Any) -> DocumentInternalizer:
        config.setdefault("generation", GenerationConfig(max_new_tokens=12))
        return DocumentInternalizer(
            model=tiny_dir_lm,
            checkpoint=tiny_hypernet_loaded if adapters else None,
            cache_dir=cache_dir,
            config=InternalizerConfig(**config),
            use_checkpoint=adapters,
        )

    return make


class Worker:
    """A worker process (`_worker.py`) that reports JSON events on stdout, one per line."""

    def __init__(self, spec: dict[str, Any], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(spec)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        )
        self.events: list[dict[str, Any]] = []

    def wait_for(self, event: str, timeout: float = 90.0) -> dict[str, Any]:
        """Read events until `event` arrives; fail with the worker's stderr if it exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait(timeout=10)
                raise AssertionError(
                    f"worker exited ({self.proc.returncode}) before {event!r}:\n{self.proc.stderr.read()}"
                )
            self.events.append(json.loads(line))
            if self.events[-1]["event"] == event:
                return self.events[-1]
        raise AssertionError(f"worker sent no {event!r} within {timeout} s")

    def added(self) -> list[str]:
        return [e["doc_id"] for e in self.events if e["event"] == "added"]

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL on POSIX: no handler, no finally, no atexit
        self.proc.wait(timeout=30)
        self.events += [json.loads(line) for line in self.proc.stdout.read().splitlines() if line.strip()]
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture()
def spawn_worker() -> Iterator[Any]:
    workers: list[Worker] = []

    def spawn(spec: dict[str, Any], env: dict[str, str] | None = None) -> Worker:
        workers.append(Worker(spec, env))
        return workers[-1]

    yield spawn
    for worker in workers:
        if worker.proc.poll() is None:
            worker.kill()


@pytest.fixture(scope="session")
def make_corpus():
    """`make_corpus(count, seed)`: distinct documents of 1 to 5 chunks of the tiny model."""
    return corpus


def corpus(count: int, seed: int = 0) -> dict[str, str]:
    """`count` distinct documents of 1 to 5 chunks (64 characters = 64 tokens of the tiny model per chunk)."""
    generator = torch.Generator().manual_seed(seed)
    words = ["grass", "sky", "blue", "sun", "code", "name", "river", "stone", "north", "ledger", "amber", "quill"]
    docs = {}
    for i in range(count):
        n = 10 + int(torch.randint(0, 50, (1,), generator=generator))
        picks = torch.randint(0, len(words), (n,), generator=generator).tolist()
        docs[f"doc-{i:02d}"] = f"Document {i}. The code name is {words[i % len(words)]}{i}. " + " ".join(
            words[p] for p in picks
        )
    return docs


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """Run torch on one thread, as the worker processes do, so that adapters built here match theirs bit for bit."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
