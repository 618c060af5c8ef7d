"""The hypernetwork: a Perceiver that reads one chunk's per-layer activations and emits a LoRA per layer.

For every decoder layer, `rank` learned latent queries (plus a layer embedding) cross-attend to that layer's
activations over the chunk, then self-attend; latent i becomes row i of A and column i of B. The first read's
queries are the same for every chunk; `num_rereads` blocks read the chunk again with queries shaped by what the
first read found, attending to the chunk and the latents together as Idefics2's resampler does in every block. They
reuse the first read's keys and values of the chunk, so a re-read costs attention over it but no new projection.
Weights are shared across layers (the layer embedding tells them apart), which keeps the network small.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from d2l_rag.config import HypernetConfig

__all__ = ["ChunkLoras", "Hypernetwork", "TargetShape"]


@dataclass(frozen=True)
class TargetShape:
    """Input and output features of one target module (the same in every layer)."""

    d_in: int
    d_out: int


# target name -> (A: (N, layers, rank, d_in), B: (N, layers, d_out, rank)) for N chunks
ChunkLoras = dict[str, tuple[torch.Tensor, torch.Tensor]]
BlockKind = Literal["read", "self", "reread"]


class _Attention(nn.Module):
    """Multi-head attention of queries x over keys and values projected from a context or handed in."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width, bias=False)
        self.kv = nn.Linear(width, 2 * width, bias=False)
        self.out = nn.Linear(width, width, bias=False)

    def keys_values(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, C) -> keys and values, each (B, heads, T, C // heads)."""
        B, T, C = context.shape
        k, v = self.kv(context).view(B, T, 2, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        return k, v

    def _queries(self, x: torch.Tensor) -> torch.Tensor:
        B, Q, C = x.shape
        return self.q(x).view(B, Q, self.heads, C // self.heads).transpose(1, 2)  # (B, nh, Q, hs)

    def _merge(self, y: torch.Tensor) -> torch.Tensor:
        B, _, Q, hs = y.shape
        return self.out(y.transpose(1, 2).reshape(B, Q, self.heads * hs))

    def forward(
        self, x: torch.Tensor, keys_values: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        y = F.scaled_dot_product_attention(self._queries(x), *keys_values, attn_mask=mask)  # mask: (B, 1, 1, T) bool
        return self._merge(y)

    def over_chunk_and_self(
        self, x: torch.Tensor, chunk: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor
    ) -> torch.Tensor:
        """Attention over a chunk's keys and x's own as one softmax, without concatenating the chunk's keys and
        values (a copy of them per call): with a handful of queries the scores are far smaller than the keys."""
        q = self._queries(x)
        (k_chunk, v_chunk), (k_self, v_self) = chunk, self.keys_values(x)
        scale = q.shape[-1] ** -0.5
        on_chunk = (q @ k_chunk.transpose(-1, -2) * scale).masked_fill(~mask, float("-inf"))  # (B, nh, Q, T)
        weights = torch.softmax(torch.cat([on_chunk, q @ k_self.transpose(-1, -2) * scale], dim=-1), dim=-1)
        T = k_chunk.shape[2]
        return self._merge(weights[..., :T] @ v_chunk + weights[..., T:] @ v_self)


class _Block(nn.Module):
    """Pre-norm attention + MLP, over one of: a context (`read`), the latents themselves (`self`), or a chunk's keys
    and values from an earlier read together with the latents (`reread`, as in Idefics2's resampler)."""

    def __init__(self, width: int, heads: int, mlp_ratio: int, kind: BlockKind = "self") -> None:
        super().__init__()
        self.kind = kind
        self.norm_x = nn.LayerNorm(width)
        # `reread` attends to keys made by the first read, so it has no context of its own to normalise
        self.norm_ctx = None if kind == "reread" else nn.LayerNorm(width)
        self.attn = _Attention(width, heads)
        self.norm_mlp = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width))

    def context_keys_values(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.attn.keys_values(self.norm_ctx(context))

    def forward(
        self,
        x: torch.Tensor,
        chunk: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """chunk: the chunk's keys and values (`read`, `reread`), with its mask (B, 1, 1, T)."""
        h = self.norm_x(x)
        if self.kind == "read":
            x = x + self.attn(h, chunk, mask)
        elif self.kind == "self":
            x = x + self.attn(h, self.attn.keys_values(h))
        else:  # reread: the chunk's tokens and the latents as one set of keys
            x = x + self.attn.over_chunk_and_self(h, chunk, mask)
        return x + self.mlp(self.norm_mlp(x))

    def zero_residuals(self) -> None:
        """Make the block an identity (attention output and last MLP layer at zero) that still gets gradients."""
        with torch.no_grad():
            self.attn.out.weight.zero_()
            self.mlp[-1].weight.zero_()
            self.mlp[-1].bias.zero_()


class Hypernetwork(nn.Module):
    """Chunk activations (layers, N, T, hidden) -> a rank-`rank` LoRA per chunk, layer and target module."""

    def __init__(self, config: HypernetConfig, num_layers: int, hidden_size: int, targets: Mapping[str, TargetShape]):
        super().__init__()
        if set(targets) != set(config.target_modules):
            raise ValueError(f"shapes given for {sorted(targets)} but config targets {list(config.target_modules)}")
        self.config = config
        self.num_layers = num_layers
        self.hidden_size = hidden_size
        self.targets = {name: targets[name] for name in config.target_modules}
        W = config.width
        # Hidden-state scales differ wildly between layers (outlier features); normalise before projecting.
        self.in_norm = nn.RMSNorm(hidden_size, elementwise_affine=False)
        self.in_proj = nn.Linear(hidden_size, W)
        self.layer_emb = nn.Embedding(num_layers, W)
        self.latents = nn.Parameter(torch.randn(config.rank, W) * 0.02)
        self.cross = _Block(W, config.num_heads, config.mlp_ratio, kind="read")
        self.blocks = nn.ModuleList(_Block(W, config.num_heads, config.mlp_ratio) for _ in range(config.num_blocks))
        self.rereads = nn.ModuleList(
            _Block(W, config.num_heads, config.mlp_ratio, kind="reread") for _ in range(config.num_rereads)
        )
        self.out_norm = nn.LayerNorm(W)
        self.heads = nn.ModuleDict({_key(n): nn.Linear(W, s.d_in + s.d_out) for n, s in self.targets.items()})
        self.gates = nn.ModuleDict({_key(n): nn.Linear(W, 1) for n in self.targets}) if config.chunk_gate else None
        # Zero-initialised per-layer output scalers: a fresh hypernetwork emits B = 0, an exact no-op, so
        # training starts from the base model's own behaviour.
        self.out_scale = nn.Parameter(torch.zeros(len(self.targets), num_layers))
        if config.bias_rank:
            self.bias_a = nn.ParameterDict(
                {
                    _key(n): nn.Parameter(torch.randn(num_layers, config.bias_rank, s.d_in) * s.d_in**-0.5)
                    for n, s in self.targets.items()
                }
            )
            self.bias_b = nn.ParameterDict(
                {
                    _key(n): nn.Parameter(torch.zeros(num_layers, s.d_out, config.bias_rank))
                    for n, s in self.targets.items()
                }
            )

    def forward(self, activations: torch.Tensor, attention_mask: torch.Tensor) -> ChunkLoras:
        """activations: (L, N, T, H) from `encode_chunks`; attention_mask: (N, T), 1 = real token."""
        L, N, T, H = activations.shape
        if self.num_layers != L or self.hidden_size != H:
            raise ValueError(
                f"activations {tuple(activations.shape)} do not fit ({self.num_layers}, N, T, {self.hidden_size})"
            )
        dtype = self.in_proj.weight.dtype
        layer_emb = self.layer_emb.weight[:, None, None, :]  # (L, 1, 1, W)
        ctx = self.in_proj(self.in_norm(activations.to(dtype))) + layer_emb  # (L, N, T, W)
        ctx = ctx.reshape(L * N, T, -1)
        mask = attention_mask.bool()[None, :, None, None, :].expand(L, N, 1, 1, T).reshape(L * N, 1, 1, T)
        queries = self.latents[None] + self.layer_emb.weight[:, None, :]  # (L, r, W)
        x = queries[:, None].expand(L, N, -1, -1).reshape(L * N, self.config.rank, -1)
        chunk = self.cross.context_keys_values(ctx)  # projected once, read by `cross` and again by `rereads`
        if self.rereads:  # one copy into the layout their matmuls take without copying again, per re-read
            chunk = (chunk[0].contiguous(), chunk[1].contiguous())
        x = self.cross(x, chunk, mask)  # (L*N, r, W)
        for block in self.blocks:
            x = block(x)
        for block in self.rereads:
            x = block(x, chunk, mask)
        x = self.out_norm(x).view(L, N, self.config.rank, -1)
        out: ChunkLoras = {}
        for t, (name, shape) in enumerate(self.targets.items()):
            ab = self.heads[_key(name)](x)  # (L, N, r, d_in + d_out)
            a, b = ab.split([shape.d_in, shape.d_out], dim=-1)
            a = a * shape.d_in**-0.5  # rows of unit-ish norm keep x @ A^T on the scale of x
            scale = self.out_scale[t][:, None, None, None]  # (L, 1, 1, 1)
            if self.gates is not None:
                scale = scale * torch.sigmoid(self.gates[_key(name)](x.mean(dim=2)))[..., None]  # (L, N, 1, 1)
            b = b * scale
            out[name] = (a.permute(1, 0, 2, 3), b.permute(1, 0, 3, 2))  # (N, L, r, d_in), (N, L, d_out, r)
        return out

    def bias_lora(self) -> ChunkLoras | None:
        """The static bias LoRA shared by all documents, as one extra 'chunk' (or None if disabled)."""
        if not self.config.bias_rank:
            return None
        return {n: (self.bias_a[_key(n)][None], self.bias_b[_key(n)][None]) for n in self.targets}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _key(target: str) -> str:
    """ModuleDict keys cannot contain dots."""
    return target.replace(".", "__")
