"""Functional per-row LoRA: parity with merged weights, per-row independence, and no state left behind."""

from __future__ import annotations

import threading

import pytest
import torch

from d2l_rag.adapters import stack_for_batch
from d2l_rag.errors import D2LError, InvalidInputError
from d2l_rag.model import apply_lora, find_target_modules, lora_delta
from d2l_rag.testing import merged_copy, random_adapter, tiny_llama

ATOL = 1e-5  # fp32


def _ids(lm, batch: int, length: int = 12, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(4, len(lm.tokenizer), (batch, length), generator=g)  # skip the special tokens


@torch.no_grad()
def _logits(model, ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=ids).logits


def _hooks_left(lm) -> list[int]:
    return [len(m._forward_hooks) for m in find_target_modules(lm.model, ["mlp.down_proj"])["mlp.down_proj"]]


def test_lora_delta_is_x_at_a_t_at_b_t():
    g = torch.Generator().manual_seed(0)
    x, a, b = torch.randn(2, 5, 7, generator=g), torch.randn(2, 3, 7, generator=g), torch.randn(2, 4, 3, generator=g)
    expected = torch.stack([0.5 * x[i] @ a[i].T @ b[i].T for i in range(2)])
    torch.testing.assert_close(lora_delta(x, a, b, 0.5), expected, atol=1e-6, rtol=0)


def test_mixed_batch_equals_each_row_through_merged_weights(tiny_lm):
    adapters = [random_adapter(tiny_lm, rank, seed=seed) for rank, seed in [(2, 1), (5, 2), (8, 3)]]
    ids = _ids(tiny_lm, batch=4)
    base = _logits(tiny_lm.model, ids)
    with apply_lora(tiny_lm.model, stack_for_batch([a.weights for a in adapters] + [None]), scale=0.5):
        mixed = _logits(tiny_lm.model, ids)
    for row, adapter in enumerate(adapters):
        alone = _logits(merged_copy(tiny_lm, adapter), ids[row : row + 1])
        torch.testing.assert_close(mixed[row : row + 1], alone, atol=ATOL, rtol=0)
        # The adapter really acts, so the parity above is not parity of two no-ops.
        assert (mixed[row] - base[row]).abs().max() > 1e-2
    torch.testing.assert_close(mixed[3], base[3], atol=ATOL, rtol=0)  # the row with no adapter is the base


def test_zero_padding_on_rank_changes_nothing(tiny_lm):
    adapter = random_adapter(tiny_lm, 3, seed=4)
    big = random_adapter(tiny_lm, 9, seed=5)
    ids = _ids(tiny_lm, batch=1)
    with apply_lora(tiny_lm.model, stack_for_batch([adapter.weights]), scale=0.5):
        alone = _logits(tiny_lm.model, ids)
    padded = stack_for_batch([adapter.weights, big.weights])  # row 0 zero-padded from rank 3 to 9
    assert padded["mlp.down_proj"][0].shape == (2, 2, 9, 128)
    with apply_lora(tiny_lm.model, padded, scale=0.5):
        together = _logits(tiny_lm.model, ids.expand(2, -1))
    torch.testing.assert_close(together[:1], alone, atol=ATOL, rtol=0)


def test_exception_inside_leaves_no_hook_and_base_logits(tiny_lm):
    ids = _ids(tiny_lm, batch=1)
    base = _logits(tiny_lm.model, ids)
    adapter = random_adapter(tiny_lm, 4, seed=6)
    with pytest.raises(RuntimeError, match="boom"), apply_lora(tiny_lm.model, stack_for_batch([adapter.weights])):
        assert _hooks_left(tiny_lm) == [1, 1]
        _logits(tiny_lm.model, ids)
        raise RuntimeError("boom")
    assert _hooks_left(tiny_lm) == [0, 0]
    assert torch.equal(_logits(tiny_lm.model, ids), base)


def test_mismatched_batch_raises_with_both_numbers_and_cleans_up(tiny_lm):
    adapters = [random_adapter(tiny_lm, 2, seed=s) for s in (1, 2)]
    ids = _ids(tiny_lm, batch=3)
    base = _logits(tiny_lm.model, ids)
    with (
        pytest.raises(InvalidInputError, match=r"forward batch has 3 rows but 2 adapters"),
        apply_lora(tiny_lm.model, stack_for_batch([a.weights for a in adapters])),
    ):
        _logits(tiny_lm.model, ids)
    assert _hooks_left(tiny_lm) == [0, 0]
    assert torch.equal(_logits(tiny_lm.model, ids), base)


def test_nesting_in_one_thread_raises_and_outer_still_applies_once():
    # A model of its own, driven from a helper thread: if nesting ever deadlocked on the (non-reentrant)
    # lock, this test fails after the timeout instead of hanging the session's shared tiny_lm.
    lm = tiny_llama()
    adapter = random_adapter(lm, 4, seed=7)
    weights = stack_for_batch([adapter.weights])
    ids = _ids(lm, batch=1)
    with apply_lora(lm.model, weights, scale=0.5):
        once = _logits(lm.model, ids)
    outcome: list[object] = []

    def scenario() -> None:
        with apply_lora(lm.model, weights, scale=0.5):
            try:
                with apply_lora(lm.model, weights, scale=0.5):
                    outcome.append("nested apply_lora was allowed")
            except D2LError as exc:
                outcome.append(exc)
            outcome.append(_hooks_left(lm))
            outcome.append(_logits(lm.model, ids))

    thread = threading.Thread(target=scenario, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "nested apply_lora deadlocked instead of raising"
    error, hooks_inside, logits_inside = outcome
    assert isinstance(error, D2LError) and "already active" in str(error)
    assert hooks_inside == [1, 1]
    assert torch.equal(logits_inside, once)  # the outer adapter still applies exactly once
    assert _hooks_left(lm) == [0, 0]


def test_adapter_for_another_layer_count_is_rejected(tiny_lm):
    other = random_adapter(tiny_llama(num_layers=3), 4, seed=1)
    with (
        pytest.raises(InvalidInputError, match=r"A has shape \(1, 3, 4, 128\), expected \(batch, 2, rank, 128\)"),
        apply_lora(tiny_lm.model, stack_for_batch([other.weights])),
    ):
        pass
    assert _hooks_left(tiny_lm) == [0, 0]


def test_unknown_target_is_rejected(tiny_lm):
    a, b = random_adapter(tiny_lm, 2, seed=1).weights["mlp.down_proj"]
    with (
        pytest.raises(InvalidInputError, match=r"'mlp\.nope' found in layers"),
        apply_lora(tiny_lm.model, {"mlp.nope": (a[None], b[None])}),
    ):
        pass


def test_concurrent_threads_each_get_their_serial_logits(tiny_lm):
    adapters = [random_adapter(tiny_lm, rank, seed=10 + i) for i, rank in enumerate([2, 5, 8, 3])]
    inputs = [_ids(tiny_lm, batch=1, seed=i) for i in range(4)]

    def run(i: int) -> torch.Tensor:
        with apply_lora(tiny_lm.model, stack_for_batch([adapters[i].weights]), scale=0.5):
            return _logits(tiny_lm.model, inputs[i])

    serial = [run(i) for i in range(4)]
    assert all((serial[i] - serial[0]).abs().max() > 1e-2 for i in range(1, 4))
    results: dict[tuple[int, int], torch.Tensor] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def worker(i: int) -> None:
        try:
            start.wait()
            for repeat in range(5):
                results[i, repeat] = run(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert len(results) == 20
    for (i, _), logits in results.items():
        assert torch.equal(logits, serial[i])
    assert _hooks_left(tiny_lm) == [0, 0]
