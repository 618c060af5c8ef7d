"""Document adapters as plain tensors: building, composing, saving, exporting to PEFT."""

from d2l_rag.adapters.builder import AdapterBuilder
from d2l_rag.adapters.compose import compose, split_chunk_loras, stack_for_batch
from d2l_rag.adapters.document_adapter import DocumentAdapter
from d2l_rag.adapters.io import adapter_from_bytes, adapter_to_bytes, load_adapter, save_adapter
from d2l_rag.adapters.peft_export import export_peft

__all__ = [
    "AdapterBuilder",
    "DocumentAdapter",
    "adapter_from_bytes",
    "adapter_to_bytes",
    "compose",
    "export_peft",
    "load_adapter",
    "save_adapter",
    "split_chunk_loras",
    "stack_for_batch",
]
