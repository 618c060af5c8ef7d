"""Device sanity check: versions, and a few bf16 training steps of the real code path on a tiny model."""

import random
import time

import torch
import transformers

from d2l_rag.config import HypernetConfig
from d2l_rag.model.chunking import tokenize_document
from d2l_rag.testing import tiny_llama
from d2l_rag.training.config import TrainConfig
from d2l_rag.training.examples import QAExample
from d2l_rag.training.pool import PoolItem
from d2l_rag.training.teacher import chat_prompt_ids, greedy_answers
from d2l_rag.training.trainer import Trainer

print("torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.cuda.is_available())
lm = tiny_llama(seed=1, num_layers=4, hidden_size=128)
lm.model.to("cuda", torch.bfloat16)
rng = random.Random(0)
docs = [f"The code is {rng.randint(1000, 9999)}. " + "filler text here. " * rng.randint(2, 60) for _ in range(64)]
prompts = [chat_prompt_ids(lm, "What is the code?", d) for d in docs]
answers = greedy_answers(lm, prompts, max_new_tokens=8, batch_size=64)
pool = [PoolItem(QAExample(d, "What is the code?", "", "needle"), tokenize_document(lm.tokenizer, d), p,
                 chat_prompt_ids(lm, "What is the code?"), a) for d, p, a in zip(docs, prompts, answers)]
cfg = TrainConfig(hypernet=HypernetConfig(rank=8, width=128, num_heads=4, num_blocks=1, chunk_tokens=256),
                  out_dir="/tmp/probe", steps=30, batch_size=32, lr=1e-3, warmup_steps=0, min_chunk_tokens=16,
                  max_chunk_tokens=256, log_every=10, eval_every=1000, eval_at_end=False, save_every=1000)
t = time.time()
hist = Trainer(cfg, lm=lm).fit(pool=pool)
print("losses", [round(h["loss"], 4) for h in hist[::10]], "steps/s", 30 / (time.time() - t))
