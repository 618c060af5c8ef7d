"""Standard context distillation: a fresh PEFT LoRA trained per document, the slow road D2L replaces.

The same objective as the hypernetwork's training (`d2l_rag.training.objective`): KL(teacher || student) on the
teacher's own greedy answers, the teacher being the frozen model with the document in the prompt and the student
the same model with the LoRA and only the question. The questions are the model's own
(`generate_prose_questions`), because a user distilling a new document has no hand-written ones. The LoRA has the
hypernetwork's shape (rank 8 on `mlp.down_proj` by default), so the two differ only in how the weights are found:
gradient steps on this one document versus one forward pass of a network trained across documents.

PEFT's `LoraModel` injects its layers into the shared base model only for the duration of training and
`unload()`s them in `finally`; the trained A and B are copied into a `DocumentAdapter` and answered through
the library's functional hooks, which compute the same `B(A(x)) * scaling` as PEFT's forward.
Training mutates the shared model for its duration, so do not run it concurrently with other users of that model.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from d2l_rag.adapters.document_adapter import DocumentAdapter
from d2l_rag.baselines.base import BaselineAnswer, DocumentCache, check_document
from d2l_rag.baselines.in_context import truncate_to_window
from d2l_rag.config import GenerationConfig
from d2l_rag.errors import InvalidInputError
from d2l_rag.generation import Generator
from d2l_rag.model.base import FrozenLM
from d2l_rag.text_chunks import split_passages
from d2l_rag.training.objective import answer_logits, kl_on_answers, pack_with_answers
from d2l_rag.training.prose_questions import generate_prose_questions
from d2l_rag.training.teacher import chat_prompt_ids, greedy_answers

__all__ = ["FALLBACK_QUESTIONS", "CDConfig", "CDSnapshot", "DistilledDocument", "StandardCDBaseline"]

_ADAPTER_NAME = "standard_cd"
_LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks)\.(\d+)\.(.+)$")
# Used only when the model writes fewer than `min_questions` usable questions (a tiny or random model writes none).
FALLBACK_QUESTIONS = (
    "What is this text about?",
    "What are the most important facts in this text?",
    "Which names, numbers and dates does the text mention?",
    "Summarize the text in one sentence.",
)


@dataclass(frozen=True)
class CDConfig:
    """How one document is distilled; `steps` is the stated training budget reported with every result."""

    steps: int = 50
    lr: float = 1e-3
    rank: int = 8
    alpha: float = 8.0  # PEFT lora_alpha; scaling = alpha / rank = 1.0, the hypernetwork's default lora_scale
    target_modules: tuple[str, ...] = ("mlp.down_proj",)
    questions_per_passage: int = 2
    max_questions: int = 16
    min_questions: int = 2
    passage_chars: int = 1500
    question_tokens: int = 48
    answer_tokens: int = 48
    batch_size: int = 8
    snapshots: tuple[int, ...] = ()  # also keep the adapter after these step counts (time-to-accuracy curves)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in (
            "steps",
            "rank",
            "max_questions",
            "passage_chars",
            "question_tokens",
            "answer_tokens",
            "batch_size",
        ):
            if getattr(self, name) < (0 if name == "steps" else 1):
                raise InvalidInputError(f"CDConfig.{name} must be positive, got {getattr(self, name)}")
        if self.lr <= 0 or self.alpha <= 0:
            raise InvalidInputError(f"CDConfig.lr and alpha must be > 0, got {self.lr} and {self.alpha}")
        if any(s < 0 or s > self.steps for s in self.snapshots):
            raise InvalidInputError(f"snapshots {self.snapshots} must lie in [0, steps={self.steps}]")


@dataclass(frozen=True)
class CDSnapshot:
    """The adapter after `step` optimizer steps and the seconds spent to get there (questions + teacher + training)."""

    step: int
    adapter: DocumentAdapter
    seconds: float
    loss: float


@dataclass(frozen=True)
class DistilledDocument:
    adapter: DocumentAdapter  # after `CDConfig.steps` steps
    questions: tuple[str, ...]
    losses: tuple[float, ...]  # KL per step, before the update of that step
    question_seconds: float
    teacher_seconds: float
    train_seconds: float
    snapshots: tuple[CDSnapshot, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def seconds(self) -> float:
        return self.question_seconds + self.teacher_seconds + self.train_seconds


class StandardCDBaseline:
    """Per-document LoRA trained by context distillation for `config.steps` steps, then questions without the text.

    Example:
        >>> cd = StandardCDBaseline(lm, CDConfig(steps=30))
        >>> cd.answer("What is the code name?", text).prepare_seconds   # the first question pays for training
    """

    name = "standard_cd"

    def __init__(
        self, lm: FrozenLM, config: CDConfig | None = None, generation: GenerationConfig | None = None
    ) -> None:
        self.lm = lm
        self.config = config or CDConfig()
        self.generator = Generator(lm, generation)
        self._distilled: DocumentCache[DistilledDocument] = DocumentCache(max_documents=16)

    # -- data: questions about the document and the teacher's answers ------------------------------------------
    def _generate_text(self, prompts: list[str]) -> list[str]:
        ids = [chat_prompt_ids(self.lm, p) for p in prompts]
        outs = greedy_answers(self.lm, ids, self.config.question_tokens, self.config.batch_size)
        return [self.lm.tokenizer.decode(o, skip_special_tokens=True) for o in outs]

    def questions_for(self, document: str) -> tuple[list[str], list[str]]:
        """(questions, notes): the model's own questions about each passage, topped up with generic ones."""
        cfg = self.config
        passages = split_passages(document, cfg.passage_chars, 0)
        examples = generate_prose_questions(passages, self._generate_text, cfg.questions_per_passage)
        questions = list(dict.fromkeys(ex.question for ex in examples))
        random.Random(cfg.seed).shuffle(questions)
        questions = questions[: cfg.max_questions]
        notes = []
        if len(questions) < cfg.min_questions:
            extra = [q for q in FALLBACK_QUESTIONS if q not in questions][: cfg.min_questions - len(questions)]
            notes.append(f"model wrote {len(questions)} usable question(s); added {len(extra)} generic one(s)")
            questions += extra
        return questions, notes

    # -- training -------------------------------------------------------------------------------------------------
    def distill(self, document: str, questions: Sequence[str] | None = None) -> DistilledDocument:
        """Train a fresh LoRA on `document`; `questions` replaces the self-generated ones when given."""
        check_document(document)
        cfg = self.config
        start = time.perf_counter()
        notes: list[str] = []
        if questions is None:
            questions, notes = self.questions_for(document)
        questions = list(questions)
        if not questions:
            raise InvalidInputError("standard context distillation needs at least one question")
        question_s = time.perf_counter() - start

        start = time.perf_counter()
        context, kept, total = truncate_to_window(self.generator, max(questions, key=len), document)
        if kept < total:
            notes.append(f"teacher saw the first {kept} of {total} document tokens (window)")
        teacher_prompts = [chat_prompt_ids(self.lm, q, context) for q in questions]
        answers = greedy_answers(self.lm, teacher_prompts, cfg.answer_tokens, cfg.batch_size)
        rows = [(q, tp, a) for q, tp, a in zip(questions, teacher_prompts, answers, strict=True) if a]
        if not rows:
            raise InvalidInputError("the teacher gave no answer to any question; nothing to distill")
        batches = [rows[i : i + cfg.batch_size] for i in range(0, len(rows), cfg.batch_size)]
        pad, device = self.lm.tokenizer.pad_token_id, self.lm.device
        packed = []
        with torch.no_grad():
            for batch in batches:
                teacher = pack_with_answers([tp for _, tp, _ in batch], [a for _, _, a in batch], pad, device)
                student = pack_with_answers(
                    [chat_prompt_ids(self.lm, q) for q, _, _ in batch], [a for _, _, a in batch], pad, device
                )
                packed.append((student, answer_logits(self.lm.model, teacher)))
        teacher_s = time.perf_counter() - start

        start = time.perf_counter()
        snapshots: list[CDSnapshot] = []
        losses: list[float] = []
        with _peft_lora(self.lm.model, cfg) as (layers, params):
            optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)

            def snapshot(step: int, loss: float) -> None:
                elapsed = question_s + teacher_s + time.perf_counter() - start
                snapshots.append(CDSnapshot(step, self._adapter_from(layers), elapsed, loss))

            with torch.enable_grad():
                for step in range(cfg.steps):
                    student, teacher_logits = packed[step % len(packed)]
                    loss = kl_on_answers(teacher_logits, answer_logits(self.lm.model, student), student.answer_mask)
                    if step in cfg.snapshots:
                        snapshot(step, loss.item())
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    losses.append(loss.item())
            if cfg.steps in cfg.snapshots:
                snapshot(cfg.steps, float("nan"))
            adapter = self._adapter_from(layers)
        train_s = time.perf_counter() - start
        return DistilledDocument(
            adapter,
            tuple(q for q, _, _ in rows),
            tuple(losses),
            question_s,
            teacher_s,
            train_s,
            tuple(snapshots),
            tuple(notes),
        )

    def _adapter_from(self, layers: dict[str, list[torch.nn.Module]]) -> DocumentAdapter:
        weights = {}
        for target, modules in layers.items():
            a = torch.stack([m.lora_A[_ADAPTER_NAME].weight.detach().float().cpu() for m in modules])  # (L, r, d_in)
            b = torch.stack([m.lora_B[_ADAPTER_NAME].weight.detach().float().cpu() for m in modules])  # (L, d_out, r)
            weights[target] = (a.clone(), b.clone())
        return DocumentAdapter(
            weights=weights,
            base_fingerprint=self.lm.fingerprint.id,
            hypernet_id=f"standard-cd-r{self.config.rank}",
            scale=self.config.alpha / self.config.rank,
            chunk_count=1,
        )

    # -- the baseline interface -----------------------------------------------------------------------------------
    def notes(self, distilled: DistilledDocument) -> tuple[str, ...]:
        """What an answer from `distilled` reports: the training budget, then how the distillation bent the rules."""
        return (f"{self.config.steps} steps on {len(distilled.questions)} self-generated questions", *distilled.notes)

    def answer(self, question: str, document: str) -> BaselineAnswer:
        distilled, built = self._distilled.get_or_build(check_document(document), lambda: self.distill(document))
        out = self.generator.answer(question, adapter=distilled.adapter)
        return BaselineAnswer(
            out.text,
            "standard_cd",
            out.prompt_tokens,
            out.seconds,
            out.completion_tokens,
            distilled.seconds if built else 0.0,
            self.notes(distilled),
        )


@contextmanager
def _peft_lora(
    model: torch.nn.Module, cfg: CDConfig
) -> Iterator[tuple[dict[str, list[torch.nn.Module]], list[torch.nn.Parameter]]]:
    """Inject a fresh PEFT LoRA into `model` for the block; always unload it and restore the model afterwards.

    Yields ({target: [LoRA layer of each decoder layer]}, the trainable LoRA parameters).
    """
    from peft import LoraConfig, LoraModel
    from peft.tuners.lora import LoraLayer

    torch.manual_seed(cfg.seed)  # PEFT's A init is random (B starts at zero, so step 0 is the base model)
    config = LoraConfig(
        r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=0.0, bias="none", target_modules=list(cfg.target_modules)
    )
    had_peft_config = hasattr(model, "peft_config")
    tuner = LoraModel(model, config, _ADAPTER_NAME)
    try:
        by_target: dict[str, dict[int, torch.nn.Module]] = {t: {} for t in cfg.target_modules}
        for name, module in model.named_modules():
            match = _LAYER.search(name)
            if isinstance(module, LoraLayer) and match and match.group(2) in by_target:
                by_target[match.group(2)][int(match.group(1))] = module
        layers = {t: [found[i] for i in sorted(found)] for t, found in by_target.items()}
        if any(len(mods) != model.config.num_hidden_layers for mods in layers.values()):
            raise InvalidInputError(f"PEFT did not find {cfg.target_modules} in every decoder layer")
        params = [p for mods in layers.values() for m in mods for p in m.parameters() if p.requires_grad]
        yield layers, params
    finally:
        tuner.unload()  # every LoRA layer replaced by its untouched base layer
        if not had_peft_config and hasattr(model, "peft_config"):
            del model.peft_config
        model.requires_grad_(False)
