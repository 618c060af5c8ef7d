"""`export_peft` writes a directory that stock PEFT loads into the same logits as the functional path."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from d2l_rag.adapters import compose, export_peft, stack_for_batch
from d2l_rag.errors import InvalidInputError
from d2l_rag.model import apply_lora
from d2l_rag.testing import random_adapter


@pytest.mark.parametrize("scale", [0.5, 1.7])
def test_peft_load_gives_the_functional_logits(tmp_path, tiny_lm, scale):
    from peft import PeftModel

    adapter = compose(
        [random_adapter(tiny_lm, 3, seed=1, scale=scale), random_adapter(tiny_lm, 4, seed=2, scale=scale)]
    )
    directory = export_peft(adapter, tmp_path / "peft", base_model_name_or_path="tiny", model=tiny_lm.model)
    assert {p.name for p in directory.iterdir()} == {"adapter_config.json", "adapter_model.safetensors"}
    config = json.loads((directory / "adapter_config.json").read_text())
    assert config["r"] == 7 and config["lora_alpha"] == pytest.approx(scale * 7)
    assert config["target_modules"] == ["mlp.down_proj"] and config["base_model_name_or_path"] == "tiny"

    ids = torch.randint(4, len(tiny_lm.tokenizer), (2, 14), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base = tiny_lm.model(input_ids=ids).logits
        with apply_lora(tiny_lm.model, stack_for_batch([adapter.weights] * 2), scale=adapter.scale):
            functional = tiny_lm.model(input_ids=ids).logits
        peft_model = PeftModel.from_pretrained(copy.deepcopy(tiny_lm.model), str(directory))
        peft_logits = peft_model(input_ids=ids).logits
    torch.testing.assert_close(peft_logits, functional, atol=1e-4, rtol=0)
    assert (peft_logits - base).abs().max() > 1e-2  # PEFT really loaded the LoRA


def test_default_paths_are_llama_style(tmp_path, tiny_lm):
    from safetensors import safe_open

    adapter = random_adapter(tiny_lm, 2, seed=1)
    directory = export_peft(adapter, tmp_path / "peft")
    with safe_open(str(directory / "adapter_model.safetensors"), framework="pt") as handle:
        keys = set(handle.keys())
        assert torch.equal(
            handle.get_tensor("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"),
            adapter.weights["mlp.down_proj"][1][1],
        )
    assert keys == {f"base_model.model.model.layers.{i}.mlp.down_proj.lora_{m}.weight" for i in (0, 1) for m in "AB"}


def test_model_without_the_target_is_rejected(tmp_path, tiny_lm):
    adapter = random_adapter(tiny_lm, 2, seed=1)
    with pytest.raises(InvalidInputError, match=r"'mlp\.down_proj' not found in every one of 2 layers"):
        export_peft(adapter, tmp_path / "peft", model=torch.nn.Linear(2, 2))
