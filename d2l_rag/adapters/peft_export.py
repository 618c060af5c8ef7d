"""Export an adapter as a standard PEFT LoRA directory that PEFT, vLLM or LoRAX load unchanged."""

from __future__ import annotations

import re
from pathlib import Path

from torch import nn

from d2l_rag.adapters.document_adapter import DocumentAdapter
from d2l_rag.errors import InvalidInputError

__all__ = ["export_peft"]


def _module_paths(model: nn.Module | None, target: str, num_layers: int) -> list[str]:
    """Full module names of `target` by layer; Llama-style `model.layers.<i>.` when no model is given."""
    if model is None:
        return [f"model.layers.{i}.{target}" for i in range(num_layers)]
    pattern = re.compile(r"(?:^|\.)(?:layers|h|blocks)\.(\d+)\." + re.escape(target) + "$")
    by_layer = {int(m.group(1)): name for name, _ in model.named_modules() if (m := pattern.search(name))}
    if sorted(by_layer) != list(range(num_layers)):
        raise InvalidInputError(f"{target!r} not found in every one of {num_layers} layers of the given model")
    return [by_layer[i] for i in range(num_layers)]


def export_peft(
    adapter: DocumentAdapter,
    directory: str | Path,
    base_model_name_or_path: str | None = None,
    model: nn.Module | None = None,
) -> Path:
    """Write `adapter_config.json` + `adapter_model.safetensors`.

    `lora_alpha = scale * r` so PEFT's `scaling = lora_alpha / r` equals our scale exactly.
    """
    from peft import LoraConfig
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rank = adapter.rank
    config = LoraConfig(
        r=rank,
        lora_alpha=adapter.scale * rank,
        target_modules=list(adapter.target_modules),
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        base_model_name_or_path=base_model_name_or_path,
        inference_mode=True,
    )
    tensors = {}
    for target, (a, b) in adapter.weights.items():
        for layer, path in enumerate(_module_paths(model, target, adapter.num_layers)):
            tensors[f"base_model.model.{path}.lora_A.weight"] = a[layer].detach().cpu().contiguous()
            tensors[f"base_model.model.{path}.lora_B.weight"] = b[layer].detach().cpu().contiguous()
    config.save_pretrained(str(directory))
    save_file(tensors, str(directory / "adapter_model.safetensors"), metadata={"format": "pt"})
    return directory
