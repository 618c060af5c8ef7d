"""The package's top level: what the README imports is there, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import d2l_rag


def test_every_public_name_resolves_to_its_home() -> None:
    from d2l_rag.config import InternalizerConfig
    from d2l_rag.internalizer import DocumentInternalizer

    assert d2l_rag.DocumentInternalizer is DocumentInternalizer  # the README's `from d2l_rag import ...`
    assert d2l_rag.InternalizerConfig is InternalizerConfig
    for name in d2l_rag.__all__:
        assert getattr(d2l_rag, name).__name__ == name


def test_importing_the_package_imports_no_heavy_dependency() -> None:
    heavy = "('torch', 'transformers', 'diskcache', 'gguf')"
    code = f"import sys, d2l_rag; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
