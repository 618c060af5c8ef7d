"""Starting a run from a trained hypernetwork, also a smaller one (growing capacity).

Every target shares the Perceiver trunk and has its own output head, gate and per-layer output scalers. So a network
that adds a target (say `self_attn.o_proj` next to `mlp.down_proj`) can take all of a trained network's weights: the
trunk and the old targets' parts carry over, and a new target keeps its zero output scalers, i.e. starts as an exact
no-op.

A network of k times the rank takes each trained latent query k times. Copies of a latent compute the same row of A
and column of B (self-attention over duplicated keys gives the same weights, the gate reads their mean), so the LoRA
is the trained one summed k times, and the output scalers divided by k make it the trained LoRA again. Identical
copies would get identical gradients and never part, so the copies after the first are nudged by a little noise.
(A trained re-read is the exception: it attends to the chunk and the latents together, so k copies of each latent
weigh k times as much against the chunk's tokens, and the grown LoRA is near the trained one, not equal to it.)

A deeper network (more latent self-attention blocks, or more re-reads of the chunk) takes the trained blocks first;
the blocks after them start with their attention output and last MLP layer at zero, so each adds nothing to the
residual stream: an identity, until training moves those zeros (their inputs are not zero, so they get gradients at
once). Either way the grown network begins with the trained one's behaviour instead of from scratch.
"""

from __future__ import annotations

import torch

from d2l_rag.errors import InvalidInputError
from d2l_rag.model.hypernetwork import Hypernetwork

__all__ = ["warm_start"]

GROWABLE = ("target_modules", "rank", "num_blocks", "num_rereads")  # the fields a start may change


def warm_start(network: Hypernetwork, trained: Hypernetwork, copy_noise: float = 1.0) -> list[str]:
    """Copy `trained`'s weights into `network`; returns the target modules that start as no-ops.

    Everything but the target list, the rank and the depth must match (width, heads...), `trained`'s targets must be
    a subset of `network`'s, its rank must divide `network`'s and it may not have more blocks: other changes would
    leave weights with no counterpart, which is a new network, not a start. `copy_noise`: std of the nudge of a
    repeated latent, relative to the trained latents' std: at 1 the copies differ as much as fresh latents do (a
    query is latent + layer embedding, and the embedding dominates, so on the shipped SmolLM2 checkpoint the LoRA
    moves by 0.2%).
    """
    new_cfg, old_cfg = network.config, trained.config
    diffs = [
        f"{field}: checkpoint {getattr(old_cfg, field)!r}, config {getattr(new_cfg, field)!r}"
        for field in type(new_cfg).model_fields
        if field not in GROWABLE and getattr(old_cfg, field) != getattr(new_cfg, field)
    ]
    for field in ("num_blocks", "num_rereads"):  # blocks can be added, not taken away
        if getattr(new_cfg, field) < getattr(old_cfg, field):
            diffs.append(f"{field}: checkpoint {getattr(old_cfg, field)}, config {getattr(new_cfg, field)}, fewer")
    if new_cfg.rank % old_cfg.rank:
        diffs.append(f"rank: checkpoint {old_cfg.rank}, config {new_cfg.rank}, not a multiple of it")
    missing = [t for t in old_cfg.target_modules if t not in new_cfg.target_modules]
    if missing:
        diffs.append(f"target_modules: checkpoint targets {missing} that the config drops")
    if (trained.num_layers, trained.hidden_size) != (network.num_layers, network.hidden_size):
        diffs.append(
            f"base: checkpoint for {trained.num_layers} layers x {trained.hidden_size}, "
            f"config for {network.num_layers} x {network.hidden_size}"
        )
    if diffs:
        raise InvalidInputError(
            "the init checkpoint's hypernetwork cannot start this one (only adding target modules, blocks or "
            "re-reads and multiplying the rank are allowed): " + "; ".join(diffs)
        )
    new_rows = {name: i for i, name in enumerate(network.targets)}
    copies = new_cfg.rank // old_cfg.rank
    state = network.state_dict()
    with torch.no_grad():
        for key, value in trained.state_dict().items():
            if key == "out_scale":  # one row per target, in each network's own target order
                for old_row, name in enumerate(trained.targets):
                    state[key][new_rows[name]].copy_(value[old_row] / copies)
            elif key == "latents":
                repeats = value.repeat(copies - 1, 1)
                noise = torch.randn_like(repeats) * (copy_noise * value.std())
                state[key].copy_(torch.cat([value, repeats + noise]))
            else:
                state[key].copy_(value)
    # new blocks and re-reads: residual branches that add zero
    for block in [*network.blocks[old_cfg.num_blocks :], *network.rereads[old_cfg.num_rereads :]]:
        block.zero_residuals()
    return [name for name in network.targets if name not in trained.targets]
