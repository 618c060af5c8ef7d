"""A tiny random Llama with a character-level tokenizer and a chat template, built in memory, and test helpers.

For unit tests and the standard LangChain/LlamaIndex suites: no files, no hub, loads in well under a second.
Beside the model: random adapters and their merged reference, what `D2LChatModel` declares to LangChain's
standard suites, and the command line's error contract.
"""

from __future__ import annotations

import copy
import string

import torch

from d2l_rag.adapters.document_adapter import DocumentAdapter
from d2l_rag.model.base import FrozenLM

__all__ = ["D2LChatModelCapabilities", "assert_one_line_error", "merged_copy", "random_adapter", "tiny_llama"]

_SPECIALS = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"]
_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = list(dict.fromkeys(string.printable))
    vocab = {tok: i for i, tok in enumerate(_SPECIALS + chars)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    # One token per character; `.` would skip newlines, turning "\n\n" into a single <unk>.
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        unk_token="<unk>",
        eos_token="<|im_end|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tok.chat_template = _CHAT_TEMPLATE
    return tok


def tiny_llama(seed: int = 0, num_layers: int = 2, hidden_size: int = 64, window: int = 4096) -> FrozenLM:
    """A random LlamaForCausalLM (fp32, CPU) with the same module names as SmolLM2."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=window,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return FrozenLM(model=model, tokenizer=tokenizer, name=f"tiny-llama-{seed}")


def random_adapter(
    lm: FrozenLM, rank: int, seed: int, scale: float = 0.5, hypernet_id: str = "test"
) -> DocumentAdapter:
    """An adapter with random (non-trivial) A and B for `lm`'s mlp.down_proj."""
    g = torch.Generator().manual_seed(seed)
    cfg = lm.model.config
    a = torch.randn(cfg.num_hidden_layers, rank, cfg.intermediate_size, generator=g) * 0.3
    b = torch.randn(cfg.num_hidden_layers, cfg.hidden_size, rank, generator=g) * 0.3
    return DocumentAdapter(
        weights={"mlp.down_proj": (a, b)},
        base_fingerprint=lm.fingerprint.id,
        hypernet_id=hypernet_id,
        scale=scale,
        doc_ids=(f"doc{seed}",),
        chunk_count=1,
        token_count=10,
        source_sha256="0" * 64,
    )


def merged_copy(lm: FrozenLM, *adapters: DocumentAdapter) -> torch.nn.Module:
    """A deep copy of `lm.model` whose target weights hold `W + sum(scale * B @ A)`: the reference for parity."""
    from d2l_rag.model import find_target_modules

    model = copy.deepcopy(lm.model)
    with torch.no_grad():
        for adapter in adapters:
            for target, modules in find_target_modules(model, adapter.target_modules).items():
                for layer, module in enumerate(modules):
                    module.weight += adapter.delta_weight(target, layer).to(module.weight.dtype)
    return model


class D2LChatModelCapabilities:
    """What `D2LChatModel` supports, as LangChain's standard suites ask: mixed into both the unit and the
    integration test class, so the two declare the same model. Text in, text out, usage metadata on every answer.
    """

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def supports_json_mode(self) -> bool:
        return False

    @property
    def supports_image_inputs(self) -> bool:
        return False

    @property
    def supports_model_override(self) -> bool:
        return False  # one base model per internalizer; a different `model=` is a clear error

    @property
    def returns_usage_metadata(self) -> bool:
        return True


def assert_one_line_error(result, text: str) -> None:
    """`result` (from typer's `CliRunner`) failed as the command line promises: exit code 1, no traceback, and
    exactly one `error:` line, which holds `text`.
    """
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # typer.Exit(1), not a crash
    assert "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and text in errors[0], result.output
