"""The frozen base model and everything that touches it: loading, encoding, the hypernetwork, LoRA apply."""

from d2l_rag.model.base import FrozenLM, default_model_path, load_base_model
from d2l_rag.model.checkpoint import LoadedHypernetwork, build_hypernetwork, load_checkpoint, save_checkpoint
from d2l_rag.model.chunking import chunk_ids, tokenize_document
from d2l_rag.model.encoder import encode_chunks, pad_chunks
from d2l_rag.model.fingerprint import BaseFingerprint, fingerprint_of
from d2l_rag.model.hypernetwork import Hypernetwork, TargetShape
from d2l_rag.model.lora_apply import apply_lora, lora_delta
from d2l_rag.model.targets import find_target_modules

__all__ = [
    "BaseFingerprint",
    "FrozenLM",
    "Hypernetwork",
    "LoadedHypernetwork",
    "TargetShape",
    "apply_lora",
    "build_hypernetwork",
    "chunk_ids",
    "default_model_path",
    "encode_chunks",
    "find_target_modules",
    "fingerprint_of",
    "load_base_model",
    "load_checkpoint",
    "lora_delta",
    "pad_chunks",
    "save_checkpoint",
    "tokenize_document",
]
