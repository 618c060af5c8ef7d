"""The `d2l-rag` command line: every command through typer's CliRunner, on a temporary cache directory.

The real SmolLM2 is loaded once per session (`default_lm`) and handed to the CLI by replacing its model loader;
adapters come from `random_checkpoint_dir` passed with the real `--checkpoint` option.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from d2l_rag import cli
from d2l_rag.testing import assert_one_line_error

runner = CliRunner()
FACT = "The code name of the project is Bluefin. The project started in spring."


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if a command loads the model when it should not need it."""

    def refuse(model):
        raise AssertionError("this command must not load the model")

    monkeypatch.setattr(cli, "_load_model", refuse)


@pytest.fixture
def with_model(monkeypatch: pytest.MonkeyPatch, default_lm) -> None:
    monkeypatch.setattr(cli, "_load_model", lambda model: default_lm)


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "project.txt").write_text(FACT)
    (folder / "harbour.md").write_text(
        " ".join(f"Note {i}: the harbour crane {i % 4} lifted {i * 3} crates on pier {i % 5}." for i in range(30))
    )
    return folder


def invoke(*args: str, cache: Path, input: str | None = None):
    return runner.invoke(cli.app, ["--cache-dir", str(cache), *args], input=input)


def test_help_lists_every_command() -> None:
    result = runner.invoke(cli.app, ["--help"])
    assert result.exit_code == 0
    for command in ("internalize", "ask", "chat", "list", "export", "info", "demo", "train", "eval-niah"):
        assert command in result.output


def test_errors_before_any_model_loads(no_model, tmp_path: Path) -> None:
    assert_one_line_error(invoke("internalize", str(tmp_path / "missing.txt"), cache=tmp_path), "does not exist")
    assert_one_line_error(invoke("train", "--config", str(tmp_path / "none.json"), cache=tmp_path), "does not exist")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert_one_line_error(invoke("train", "--config", str(bad), cache=tmp_path), "Expecting property name")
    assert_one_line_error(invoke("eval-niah", "--modes", "adapter,magic", cache=tmp_path), "--modes")
    assert_one_line_error(invoke("eval-niah", "--lengths", "12,abc", cache=tmp_path), "--lengths")
    assert_one_line_error(invoke("eval-niah", "--magic", "letter", cache=tmp_path), "--magic")
    usage = invoke("ask", cache=tmp_path)  # missing argument: click's usage error, exit code 2
    assert usage.exit_code == 2
    listed = invoke("list", cache=tmp_path / "empty")
    assert listed.exit_code == 0 and "No documents" in listed.output


def test_train_delegates_to_the_training_entry_point(monkeypatch, no_model, tmp_path: Path) -> None:
    seen = []
    monkeypatch.setattr("d2l_rag.training.__main__.main", lambda argv: seen.append(argv))
    config = tmp_path / "train.json"
    config.write_text("{}")
    result = invoke("train", "--config", str(config), "--steps", "7", "--out", str(tmp_path / "run"), cache=tmp_path)
    assert result.exit_code == 0, result.output
    assert seen == [[str(config), "--steps", "7", "--out", str(tmp_path / "run")]]
    model = str(tmp_path / "base.gguf")  # the global --model trains on another copy of the base model
    result = invoke("--model", model, "train", "--config", str(config), cache=tmp_path)
    assert result.exit_code == 0, result.output
    assert seen[-1] == [str(config), "--base-model", model]


@pytest.mark.real_model
def test_internalize_list_ask_export_info_chat(with_model, random_checkpoint_dir, docs: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    common = ["--checkpoint", str(random_checkpoint_dir), "--max-new-tokens", "20"]

    def run(*args: str, input: str | None = None):
        return runner.invoke(cli.app, ["--cache-dir", str(cache), *common, *args], input=input)

    result = run("internalize", str(docs), "--collection", "work")
    assert result.exit_code == 0, result.output
    assert "harbour.md" in result.output and "project.txt" in result.output
    assert "2 documents in collection 'work'" in result.output

    listed = runner.invoke(cli.app, ["--cache-dir", str(cache), "list"])
    assert listed.exit_code == 0 and "harbour.md" in listed.output and "work" in listed.output

    answer = run("ask", "What is the code name of the project?", "--doc", "project.txt", "-c", "work", "--in-context")
    assert answer.exit_code == 0, answer.output
    assert "Bluefin" in answer.output and "mode=in_context" in answer.output

    adapter = run("ask", "Which crane lifted crates?", "--doc", "harbour.md", "-c", "work")
    assert adapter.exit_code == 0 and "mode=adapter" in adapter.output and "rank=" in adapter.output
    beams = run("--num-beams", "3", "ask", "Which crane?", "--doc", "harbour.md", "-c", "work")  # a global option
    assert beams.exit_code == 0 and "mode=adapter" in beams.output, beams.output
    no_beams = runner.invoke(cli.app, ["--num-beams", "0", "info"])
    assert no_beams.exit_code == 2 and "--num-beams" in no_beams.output

    routed = run("ask", "How many crates did the harbour crane lift on the pier?", "-c", "work")
    assert routed.exit_code == 0 and "docs=harbour.md (routed)" in routed.output

    out_dir = tmp_path / "peft"
    exported = run("export", str(out_dir), "--doc", "harbour.md", "-c", "work")
    assert exported.exit_code == 0, exported.output
    config = json.loads((out_dir / "adapter_config.json").read_text())
    assert config["r"] > 0 and config["target_modules"] == ["mlp.down_proj"]
    assert (out_dir / "adapter_model.safetensors").stat().st_size > 0

    info = run("info", "-c", "work")
    assert info.exit_code == 0 and str(cache) in info.output.replace("\n", "")
    assert "hypernetwork" in info.output and "documents" in info.output

    chat = run("chat", "--doc", "harbour.md", "-c", "work", input="Which crane?\n\nexit\n")
    assert chat.exit_code == 0, chat.output
    assert chat.output.count("d2l>") == 1 and "mode=adapter" in chat.output
    eof = run("chat", "--doc", "project.txt", "-c", "work", input="")  # end of input ends the chat
    assert eof.exit_code == 0 and "d2l>" not in eof.output

    assert_one_line_error(run("ask", "Who?", "--doc", "nope", "-c", "work"), "unknown document 'nope'")
    assert_one_line_error(run("chat", "--doc", "nope", "-c", "work"), "unknown document 'nope'")
    assert_one_line_error(run("ask", "Who?", "--doc", "a", "--doc", "b", "--in-context"), "exactly one --doc")
    assert_one_line_error(run("ask", "Anyone?", "-c", "empty"), "no documents in collection 'empty'")
    missing = runner.invoke(cli.app, ["--cache-dir", str(cache), "--checkpoint", str(tmp_path / "nope"), "info"])
    assert_one_line_error(missing, "not found")


@pytest.mark.real_model
def test_eval_niah_prints_a_table_and_writes_json(with_model, tmp_path: Path) -> None:
    out = tmp_path / "niah.json"
    modes = ["--modes", "in_context,no_document", "--max-new-tokens", "8"]
    result = invoke("eval-niah", "--lengths", "64", "--n", "1", *modes, "--out", str(out), cache=tmp_path)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert set(data["results"]) == {"in_context", "no_document"}
    assert data["results"]["no_document"]["64"]["n"] == 1
    assert "in_context" in result.output and "64" in result.output
    words = invoke(
        "eval-niah", "--lengths", "64", "--n", "1", *modes, "--magic", "word", "--out", str(out), cache=tmp_path
    )
    assert words.exit_code == 0, words.output
    assert "magic word" in words.output and json.loads(out.read_text())["results"]["no_document"]["64"]["n"] == 1
