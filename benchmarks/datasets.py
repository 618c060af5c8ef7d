"""The two QA sets: held-out fictional facts (answers no model can know) and hand-written questions on real texts."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from d2l_rag.model.base import FrozenLM

__all__ = ["DATA_DIR", "QAItem", "heldout_facts", "real_text_qa"]

DATA_DIR = Path(__file__).parent / "data"


@dataclass(frozen=True)
class QAItem:
    dataset: str  # "facts" | "real"
    item_id: str
    doc_id: str
    document: str
    question: str
    answers: tuple[str, ...]  # accepted spellings


def heldout_facts(lm: FrozenLM, n: int, lengths: Sequence[int], seed: int = 20240601) -> list[QAItem]:
    """`n` held-out facts documents (names, codes and prose never seen in training), one question each."""
    from d2l_rag.training.facts import make_facts_example
    from d2l_rag.training.pool import token_counter

    count = token_counter(lm)
    rng = random.Random(seed)
    items = []
    for i in range(n):
        ex = make_facts_example(rng, lengths[i % len(lengths)], count, split="heldout", n_facts=rng.randint(1, 4))
        items.append(QAItem("facts", f"facts-{i}", f"facts-{i}", ex.document, ex.question, (ex.answer,)))
    return items


def real_text_qa(max_docs: int | None = None, per_doc: int | None = None, data_dir: Path = DATA_DIR) -> list[QAItem]:
    """The shipped real-text QA set (benchmarks/data/real_qa.json), optionally cut to fewer documents/questions."""
    spec = json.loads((data_dir / "real_qa.json").read_text())
    doc_ids = list(spec["documents"])[:max_docs]
    texts = {d: (data_dir / spec["documents"][d]["file"]).read_text() for d in doc_ids}
    items, taken = [], dict.fromkeys(doc_ids, 0)
    for q in spec["questions"]:
        doc = q["doc"]
        if doc not in texts or (per_doc is not None and taken[doc] >= per_doc):
            continue
        taken[doc] += 1
        items.append(QAItem("real", q["id"], doc, texts[doc], q["question"], tuple(q["answers"])))
    return items
