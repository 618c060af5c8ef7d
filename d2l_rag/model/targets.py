"""Finding the modules that receive a LoRA: one per decoder layer and target name."""

from __future__ import annotations

import re
from collections.abc import Sequence

from torch import nn

from d2l_rag.errors import InvalidInputError

__all__ = ["TargetModules", "find_target_modules"]

# A decoder layer is `<prefix>.layers.<i>.` in Llama/Mistral/Qwen/Gemma, `<prefix>.h.<i>.` in GPT-style models.
_LAYER_PATTERN = r"(?:^|\.)(?:layers|h|blocks)\.(\d+)\."

TargetModules = dict[str, list[nn.Linear]]


def find_target_modules(model: nn.Module, target_names: Sequence[str]) -> TargetModules:
    """Map each target name (e.g. 'mlp.down_proj') to its modules ordered by layer index.

    Raises if a target is missing from some layer or is not an `nn.Linear`: the delta math assumes
    `y = x @ W^T`, which Conv1D-style layers do not follow.
    """
    num_layers = model.config.num_hidden_layers
    found: TargetModules = {}
    for target in target_names:
        pattern = re.compile(_LAYER_PATTERN + re.escape(target) + "$")
        by_layer: dict[int, nn.Module] = {}
        for name, module in model.named_modules():
            match = pattern.search(name)
            if match:
                by_layer[int(match.group(1))] = module
        if sorted(by_layer) != list(range(num_layers)):
            raise InvalidInputError(
                f"target module {target!r} found in layers {sorted(by_layer)}, expected one in each of "
                f"{num_layers} layers"
            )
        modules = [by_layer[i] for i in range(num_layers)]
        for module in modules:
            if not isinstance(module, nn.Linear):
                raise InvalidInputError(
                    f"target module {target!r} is {type(module).__name__}; only torch.nn.Linear is supported"
                )
        found[target] = modules
    return found
