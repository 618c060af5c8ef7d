"""Training configuration: what to train (HypernetConfig) and how (data mix, schedule, lengths)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from d2l_rag.config import HypernetConfig
from d2l_rag.training.facts import FACT_TYPES

__all__ = ["DataMix", "TrainConfig"]


class DataMix(BaseModel):
    """Relative weights of the example generators in the teacher pool."""

    model_config = ConfigDict(extra="forbid")

    needle: float = Field(default=0.4, ge=0, description="Magic-number needle in a filler haystack.")
    negative: float = Field(default=0.1, ge=0, description="Haystacks without the needle (answer: not there).")
    facts: float = Field(default=0.4, ge=0, description="Fictional facts planted in real prose.")
    prose: float = Field(default=0.1, ge=0, description="Questions about real prose written by the base model.")
    word_needle: float = Field(
        default=0.0, ge=0, description="Magic-word needle: an invented name or code to spell back (names, codes)."
    )
    word_prose: float = Field(
        default=0.0, ge=0, description="The magic word planted in real prose (with 0-3 facts around it) to spell back."
    )
    facts_filler: float = Field(
        default=0.0, ge=0, description="Fictional facts planted in the needle's filler haystack instead of prose."
    )
    asked_facts: dict[str, float] = Field(
        default_factory=dict,
        description="Relative weights of the asked fact's type (e.g. {'vault': 3}); types left out weigh 1, so "
        "empty = uniform. Oversamples the types the teacher often gets wrong, as teacher_right_only drops those.",
    )

    @model_validator(mode="after")
    def _some_weight(self) -> DataMix:
        if sum(self.kind_weights().values()) <= 0:
            raise ValueError("the data mix needs at least one positive weight")
        return self

    @model_validator(mode="after")
    def _known_fact_types(self) -> DataMix:
        unknown = sorted(set(self.asked_facts) - set(FACT_TYPES))
        if unknown:
            raise ValueError(f"asked_facts names unknown fact types {unknown}; known: {list(FACT_TYPES)}")
        negative = sorted(kind for kind, weight in self.asked_facts.items() if weight < 0)
        if negative:
            raise ValueError(f"asked_facts weights must be >= 0, negative for {negative}")
        if not any(self.fact_type_weights()):
            raise ValueError("asked_facts gives every fact type weight 0")
        return self

    def kind_weights(self) -> dict[str, float]:
        """Weight of each example kind, in the order the pool draws them: a kind added later goes last, so with its
        weight 0 the draws of older configs, and so their pools, stay what they were."""
        kinds = ("needle", "negative", "facts", "prose", "word_needle", "word_prose", "facts_filler")
        return {kind: getattr(self, kind) for kind in kinds}

    def fact_type_weights(self) -> list[float]:
        """Weights aligned with facts.FACT_TYPES."""
        return [self.asked_facts.get(kind, 1.0) for kind in FACT_TYPES]


class TrainConfig(BaseModel):
    """Meta-training of the hypernetwork by context distillation; saved with every checkpoint."""

    model_config = ConfigDict(extra="forbid")

    base_model: str | None = Field(default=None, description="Base model path; None = embedded SmolLM2 GGUF.")
    hypernet: HypernetConfig = Field(default_factory=HypernetConfig)
    init_checkpoint: str | None = Field(
        default=None,
        description="Start from these weights (fine-tune, or grow: the config may add target modules or latent "
        "blocks, or multiply the rank).",
    )
    out_dir: Path = Field(default=Path("runs/default"), description="Checkpoints, state and logs go here.")
    seed: int = Field(default=0, description="Seeds data, chunking and initialisation.")
    steps: int = Field(default=1000, gt=0, description="Optimizer steps in total (a resumed run continues).")
    batch_size: int = Field(default=32, gt=0, description="Documents per optimizer step per process.")
    grad_accum: int = Field(default=1, gt=0, description="Micro-batches accumulated per optimizer step.")
    lr: float = Field(default=2e-4, gt=0)
    warmup_steps: int = Field(default=100, ge=0)
    weight_decay: float = Field(default=0.01, ge=0)
    grad_clip: float = Field(default=1.0, gt=0)
    pool_size: int = Field(default=2048, gt=0, description="Examples whose teacher answers are generated up front.")
    pool_refresh_steps: int = Field(default=0, ge=0, description="Regenerate the pool every N steps (0 = never).")
    teacher_batch: int = Field(default=128, gt=0, description="Batch size when generating teacher answers.")
    answer_tokens: int = Field(default=40, gt=0, description="Max tokens of a teacher answer.")
    min_doc_tokens: int = Field(default=32, gt=0)
    max_doc_tokens: int = Field(default=1024, gt=0)
    min_chunk_tokens: int = Field(default=25, gt=0, description="Shortest random chunk (published recipe: 25).")
    max_chunk_tokens: int = Field(default=512, gt=0, description="Longest random chunk (published recipe: 512).")
    max_chunks: int = Field(default=8, gt=0, description="Most chunks a short document is cut into.")
    teacher_max_doc_tokens: int | None = Field(
        default=None,
        gt=0,
        description="Longest document the teacher reads whole (None = any). Longer needle haystacks are shown to "
        "it shortened, same needle at the same depth; facts and prose documents are drawn within it.",
    )
    max_grad_chunks: int = Field(
        default=0,
        ge=0,
        description="Chunks of a document whose adapters get gradients (0 = all); the answer's chunk is always "
        "one, the others are composed without gradients, so 64-chunk documents fit in memory.",
    )
    encode_batch: int = Field(default=64, gt=0, description="Chunks per encoder pass for gradient-free chunks.")
    encode_buckets: int = Field(
        default=1,
        ge=1,
        description="Encode the chunks that get gradients in this many passes of similar length (and the "
        "gradient-free ones sorted by length), so each pass pads to its own longest chunk: the same LoRAs for less "
        "padding (a step's random chunks are ~35% tokens in one pass, ~75% in four). For CPU runs (3.5x a step there); "
        "on a GPU, which pads nearly for free, four passes measured 4.2x slower than one (docs/training.md, R).",
    )
    teacher_right_only: bool = Field(
        default=False,
        description="Drop pool examples whose teacher answer misses the reference (needle, facts), so the student "
        "is not distilled the teacher's mistakes; negatives and prose questions have no reference and stay.",
    )
    fact_sentence_answers: bool = Field(
        default=False,
        description="With teacher_right_only: keep a facts question the teacher missed, with the planted fact's own "
        "sentence as the answer (the teacher, document in context, is scored on it token by token), instead of "
        "dropping it; the 135M teacher misses most names (22 of 24 in a CPU probe), so few would reach the student.",
    )
    draw_ahead: bool = Field(
        default=False,
        description="With pool_refresh_steps: draw the next pool's documents and questions in a background process "
        "while this pool trains (the same examples as drawing them in turn), so a refresh waits for the teacher "
        "alone. The mix must have no prose: its questions are written by the base model.",
    )
    teacher_top_k: int = Field(
        default=0,
        ge=0,
        description="Hold the teacher's k most likely tokens at each answer position in the pool, computed once, and "
        "train on the KL over those k and the rest of the vocabulary as one outcome, instead of a teacher forward "
        "over document and question at every step (0 = that forward and the full KL).",
    )
    teacher_temperature: float = Field(
        default=1.0,
        gt=0,
        description="Train on the teacher's distribution sharpened to this temperature (< 1: more of the target on "
        "its likeliest tokens, against values the adapter holds blurred, a digit off). The logged per-kind KL stays "
        "at temperature 1, where a sharper student scores worse by design: compare runs by the logged greedy "
        "agreement (top1_<kind>, exact_<kind>) instead.",
    )
    time_limit_s: float | None = Field(
        default=None, gt=0, description="Stop, evaluate and save after this many seconds of training (None = off)."
    )
    anneal_by_time_limit: bool = Field(
        default=False,
        description="With time_limit_s: the cosine reaches its floor when the time limit runs out, if that comes "
        "before `steps`, so a run cut short by its machine lease still ends annealed whatever the machine's speed "
        "(stage L2: 260 annealed steps moved held-out facts from 48 to 57 of 200 right).",
    )
    anneal_share: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="With time_limit_s: after the warmup the lr holds until this share of the time limit is left, "
        "then follows the cosine to its floor over that share (warmup, stable, decay), whatever `steps` says. The "
        "weights where the decay starts are saved to DIR/checkpoint_stable, for the next lease to continue from at "
        "the full lr, while DIR/checkpoint ends annealed.",
    )
    mix: DataMix = Field(default_factory=DataMix)
    profile_at: list[int] = Field(
        default_factory=list,
        description="Profile `profile_steps` steps from each of these step counts (the steps done before the "
        "window) and write DIR/profile_step{N}.txt: where a step's time goes, early in a run and late in it.",
    )
    profile_steps: int = Field(default=5, gt=0, description="Steps in each `profile_at` window.")
    log_every: int = Field(default=10, gt=0)
    eval_every: int = Field(default=200, gt=0)
    eval_at_end: bool = Field(default=True, description="Run the NIAH eval after the last step too.")
    eval_lengths: list[int] = Field(default_factory=lambda: [256, 1024, 4096], description="NIAH eval doc tokens.")
    eval_examples: int = Field(default=16, gt=0)
    save_every: int = Field(default=200, gt=0)

    @model_validator(mode="after")
    def _lengths_consistent(self) -> TrainConfig:
        if self.min_doc_tokens > self.max_doc_tokens:
            raise ValueError(f"min_doc_tokens {self.min_doc_tokens} > max_doc_tokens {self.max_doc_tokens}")
        if self.min_chunk_tokens > self.max_chunk_tokens:
            raise ValueError(f"min_chunk_tokens {self.min_chunk_tokens} > max_chunk_tokens {self.max_chunk_tokens}")
        if self.anneal_by_time_limit and self.time_limit_s is None:
            raise ValueError("anneal_by_time_limit anneals within time_limit_s; set it")
        if self.anneal_share is not None and self.time_limit_s is None:
            raise ValueError("anneal_share anneals over the last share of time_limit_s; set it")
        if self.anneal_share is not None and self.anneal_by_time_limit:
            raise ValueError("anneal_share and anneal_by_time_limit are two schedules; set one")
        if self.draw_ahead and self.mix.prose:
            raise ValueError("draw_ahead draws without the base model, which writes the prose questions: set prose 0")
        if self.fact_sentence_answers and not self.teacher_right_only:
            raise ValueError("fact_sentence_answers replaces the answers teacher_right_only would drop; set both")
        return self
