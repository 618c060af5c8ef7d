"""Bad inputs and hostile files through the `d2l-rag` command line: one red `error:` line and exit code 1.

The tiny model and its checkpoint are passed with the real `--model` / `--checkpoint` options. One case runs the
installed console script in a real process with undecodable bytes in argv (which Python turns into lone
surrogates), because that is where such strings come from in practice.
"""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import diskcache
import pytest
from typer.testing import CliRunner

from d2l_rag import cli
from d2l_rag.model.checkpoint import WEIGHTS_NAME
from d2l_rag.testing import assert_one_line_error

runner = CliRunner()
FACT = "The code name of the project is Bluefin. The budget is 42 coins."


def _options(cache_dir: Path, model_dir: Path, checkpoint: Path) -> list[str]:
    return ["--cache-dir", str(cache_dir), "--model", str(model_dir), "--checkpoint", str(checkpoint)]


@pytest.fixture()
def run(tmp_path, tiny_model_dir, tiny_checkpoint_dir):
    def invoke(*args: str, checkpoint: Path = tiny_checkpoint_dir):
        options = _options(tmp_path / "cache", tiny_model_dir, checkpoint)
        return runner.invoke(cli.app, [*options, "--max-new-tokens", "4", *args])

    return invoke


def test_bad_files_and_inputs(run, tmp_path):
    files = {
        "binary.txt": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        "latin1.txt": ("Caf\xe9 cr\xe8me".encode("latin-1"), "not valid UTF-8"),
        "empty.txt": (b"", "empty or whitespace"),
        "huge.txt": (b"The grass is green. " * 500_000, "max_document_chars"),
    }
    for name, (raw, message) in files.items():
        (tmp_path / name).write_bytes(raw)
        assert_one_line_error(run("internalize", str(tmp_path / name)), message)
    assert_one_line_error(run("internalize", str(tmp_path / "missing.txt")), "does not exist")

    (tmp_path / "doc.txt").write_text(FACT)
    assert run("internalize", str(tmp_path / "doc.txt")).exit_code == 0
    (tmp_path / "doc.txt").write_text(FACT + " Changed.")
    assert_one_line_error(run("internalize", str(tmp_path / "doc.txt")), "overwrite")
    assert run("internalize", "--overwrite", str(tmp_path / "doc.txt")).exit_code == 0

    assert_one_line_error(run("ask", "What is the code name?", "--doc", "nope"), "unknown document 'nope'")
    assert_one_line_error(run("ask", "   ", "--doc", "doc.txt"), "empty or whitespace")
    assert_one_line_error(run("ask", "What is \udcff?", "--doc", "doc.txt"), "surrogate")
    assert_one_line_error(run("ask", "why " * 5000, "--doc", "doc.txt"), "model window")
    ok = run("ask", "What is the code name?", "--doc", "doc.txt")
    assert ok.exit_code == 0, ok.output


def test_hostile_checkpoint_and_cache(run, tmp_path, tiny_checkpoint_dir, payload, marker):
    hostile = tmp_path / "hostile-checkpoint"
    shutil.copytree(tiny_checkpoint_dir, hostile)
    (hostile / WEIGHTS_NAME).unlink()
    (hostile / "hypernetwork.pt").write_bytes(pickle.dumps(payload))
    (tmp_path / "doc.txt").write_text(FACT)
    assert_one_line_error(run("internalize", str(tmp_path / "doc.txt"), checkpoint=hostile), "never unpickle")

    assert run("internalize", str(tmp_path / "doc.txt")).exit_code == 0
    with diskcache.Cache(str(tmp_path / "cache" / "registry")) as raw:
        raw.set("doc:default:evil", payload)
    assert_one_line_error(run("list"), "pickle")
    assert not marker.exists()


def test_undecodable_argv_in_a_real_process(tmp_path, tiny_model_dir, tiny_checkpoint_dir):
    script = shutil.which("d2l-rag")
    command = [script] if script else [sys.executable, "-m", "d2l_rag.cli"]
    options = _options(tmp_path / "cache", tiny_model_dir, tiny_checkpoint_dir)
    (tmp_path / "doc.txt").write_text(FACT)
    done = subprocess.run(
        [*command, *options, "internalize", str(tmp_path / "doc.txt")], capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    done = subprocess.run(
        [*command, *options, "ask", b"What is \xff\xfe?", "--doc", "doc.txt"], capture_output=True, timeout=120
    )
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 1 and "Traceback" not in stderr and "surrogate" in stderr, stderr
