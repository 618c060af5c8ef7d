"""The README demo: bundled samples load from the package, and the demo runs end to end on the real model."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from typer.testing import CliRunner

from d2l_rag import cli
from d2l_rag.config import GenerationConfig, InternalizerConfig
from d2l_rag.demo import load_samples, run_demo
from d2l_rag.internalizer import DocumentInternalizer


def test_samples_ship_with_the_package() -> None:
    samples = load_samples()
    assert len(samples) == 4
    assert {s.kind for s in samples} == {"real", "fictional", "needle"}
    assert len({s.doc_id for s in samples}) == 4
    for sample in samples:
        assert len(sample.text) > 300 and len(sample.questions) >= (1 if sample.kind == "needle" else 2)
    handbook = next(s for s in samples if s.kind == "fictional")
    assert "heron-4471" in handbook.text  # a fact no model can know
    python_docs = next(s for s in samples if s.doc_id == "python-pass-while")
    assert '"pass" is a null operation' in python_docs.text
    haystack = next(s for s in samples if s.kind == "needle")
    assert haystack.text.count("The special magic number is 1041.") == 1


@pytest.mark.real_model
def test_demo_command_compares_adapter_and_in_context_answers(monkeypatch, default_lm, random_checkpoint_dir, tmp_path):
    monkeypatch.setattr(cli, "_load_model", lambda model: default_lm)
    args = ["--cache-dir", str(tmp_path), "--checkpoint", str(random_checkpoint_dir), "--max-new-tokens", "12"]
    result = CliRunner().invoke(cli.app, [*args, "demo", "--questions", "1"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    output = result.output
    for sample in load_samples():
        assert sample.doc_id in output
    assert "Internalized documents" in output and "adapter" in output and "in-context answer" in output
    assert "No adapters" not in output
    again = CliRunner().invoke(cli.app, [*args, "demo", "--questions", "1"], env={"COLUMNS": "200"})
    assert again.exit_code == 0 and "cached" in again.output  # the second run encodes nothing


@pytest.mark.real_model
def test_demo_without_a_checkpoint_says_answers_are_in_context(default_lm, tmp_path) -> None:
    config = InternalizerConfig(generation=GenerationConfig(max_new_tokens=16))
    internalizer = DocumentInternalizer(model=default_lm, use_checkpoint=False, cache_dir=tmp_path, config=config)
    handbook = [s for s in load_samples() if s.kind == "fictional"]
    buffer = io.StringIO()
    result = run_demo(internalizer, Console(file=buffer, width=160), questions_per_document=1, samples=handbook)
    printed = buffer.getvalue()
    assert "No adapters" in printed and "in-context fallback" in printed
    assert result.no_adapter_reason is not None
    [(doc_id, _question, answer, in_context)] = result.answers
    assert doc_id == "larkspur-handbook" and answer.mode == "in_context" and in_context is None
    assert "Odile Ferrant" in answer.text  # the founder, read from the handbook in the prompt
    assert "Odile Ferrant" in printed
