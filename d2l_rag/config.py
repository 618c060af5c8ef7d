"""Pydantic configuration, one model per concern.

`HypernetConfig` defines a hypernetwork and is saved with its checkpoint; `RuntimeConfig` and
`GenerationConfig` are how it is run and are never saved with weights (peft's LoraConfig /
LoraRuntimeConfig split).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["GenerationConfig", "HypernetConfig", "HypernetPrecision", "InternalizerConfig", "RuntimeConfig"]

HypernetPrecision = Literal["auto", "float32", "bfloat16"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HypernetConfig(_Strict):
    """Everything that defines a hypernetwork's weights; saved next to them."""

    target_modules: tuple[str, ...] = Field(
        default=("mlp.down_proj",),
        description="Module name suffixes inside each decoder layer that receive a LoRA.",
        min_length=1,
    )
    rank: int = Field(default=8, gt=0, le=256, description="LoRA rank per chunk = latent queries per layer.")
    width: int = Field(default=512, gt=0, description="Width of the Perceiver's latents.")
    num_heads: int = Field(default=8, gt=0, description="Attention heads in the Perceiver.")
    num_blocks: int = Field(default=3, ge=0, le=32, description="Latent self-attention blocks after cross-attention.")
    num_rereads: int = Field(
        default=0,
        ge=0,
        le=32,
        description="Blocks after the self-attention ones that read the chunk again (its keys and values from the "
        "first read) together with the latents, with queries shaped by what the first read found.",
    )
    mlp_ratio: int = Field(default=4, gt=0, description="Hidden size of the Perceiver MLPs, as a multiple of width.")
    lora_scale: float = Field(default=1.0, gt=0, description="Constant multiplier of every generated delta.")
    chunk_tokens: int = Field(default=1024, gt=0, description="Tokens per chunk the hypernetwork reads at once.")
    chunk_gate: bool = Field(
        default=True,
        description="Emit a per-chunk, per-layer gate in (0, 1) so chunks without useful content can switch off "
        "when many chunk LoRAs are concatenated.",
    )
    bias_rank: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Rank of a learned static LoRA shared by all documents, added once per document (0 = none).",
    )

    @field_validator("target_modules")
    @classmethod
    def _names_are_dotted_suffixes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not name or name.startswith(".") or name.endswith(".") or " " in name:
                raise ValueError(f"target module {name!r} is not a dotted module name such as 'mlp.down_proj'")
        if len(set(value)) != len(value):
            raise ValueError(f"target_modules has duplicates: {list(value)}")
        return value

    @model_validator(mode="after")
    def _heads_divide_width(self) -> HypernetConfig:
        if self.width % self.num_heads:
            raise ValueError(f"width ({self.width}) must be divisible by num_heads ({self.num_heads})")
        return self


class RuntimeConfig(_Strict):
    """Where and in which precision to run; never saved with weights."""

    device: str | None = Field(default=None, description="'cpu', 'cuda', 'cuda:1', ...; None picks CUDA if present.")
    dtype: Literal["float32", "bfloat16", "float16"] | None = Field(
        default=None, description="None = float32 on CPU, bfloat16 on GPU."
    )
    encode_batch_chunks: int = Field(default=4, gt=0, description="Chunks encoded together when building adapters.")
    hypernet_precision: HypernetPrecision = Field(
        default="auto",
        description="Precision of the hypernetwork's matmuls: 'auto' = bf16 autocast (as it was trained) where the "
        "device multiplies bf16 natively (CUDA, CPUs with AVX512-BF16/AMX), else float32. The base model keeps dtype.",
    )


class GenerationConfig(_Strict):
    """How answers are generated; greedy by default so answers are reproducible."""

    max_new_tokens: int = Field(default=64, gt=0, le=8192, description="Upper bound on generated tokens.")
    do_sample: bool = Field(default=False, description="Sample instead of greedy decoding.")
    temperature: float = Field(default=0.7, gt=0, description="Sampling temperature (only with do_sample).")
    top_p: float = Field(default=0.95, gt=0, le=1, description="Nucleus sampling mass (only with do_sample).")
    repetition_penalty: float = Field(default=1.0, gt=0, description="1.0 = no penalty.")
    num_beams: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Beam search width; 1 = one sequence. Beams let an adapter's likeliest whole answer win over a "
        "greedy first token that derails it; a streamed beam answer arrives in one piece, when it is finished.",
    )
    system_prompt: str | None = Field(default=None, description="System message; None keeps the template default.")


class InternalizerConfig(_Strict):
    """Settings of a `DocumentInternalizer`; runtime only, never saved with weights."""

    chunk_tokens: int | None = Field(default=None, gt=0, description="Tokens per chunk; None = the checkpoint's.")
    min_adapter_tokens: int = Field(
        default=8, ge=1, description="Documents shorter than this are answered in context: too short to be worth it."
    )
    cache_size_limit: int = Field(
        default=2**31, gt=0, description="Bytes of adapters kept on disk before LRU eviction."
    )
    fallback_passages: int = Field(default=4, gt=0, description="Passages put in the prompt for an oversized fallback.")
    max_document_chars: int | None = Field(
        default=1_000_000,
        gt=0,
        description="Longest document accepted, in characters (None = no limit); longer "
        "ones are refused before tokenizing: ~250k tokens already take hours to encode on a CPU.",
    )
    max_composed_chunks: int | None = Field(
        default=None,
        ge=0,
        description="Chunks a document's adapter composes at most, keeping the most salient ones; None = the "
        "checkpoint's measured limit, 0 = every chunk.",
    )
    ground_spelling: bool = Field(
        default=True,
        description="Give an adapter's answer the document's spelling of a rare name, code or number it nearly "
        "copied (d2l_rag.grounding); each change is listed in the answer's spelling_corrections.",
    )
    grounding_min_similarity: float = Field(
        default=0.75,
        ge=0.5,
        le=1.0,
        description="How close (difflib ratio) a word, or a name of several words, must be to the document's one.",
    )
    route_k: int = Field(
        default=1, ge=1, le=16, description="Documents the router picks for a question asked without ids (composed)."
    )
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
