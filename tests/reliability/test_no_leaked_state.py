"""After any exception during generation the base model produces exactly its original logits.

Exceptions are injected at every stage an adapter is live: from a stopping criterion, from a forward hook
(including a `KeyboardInterrupt`), from the streamer, from a consumer that abandons a stream, from decoding,
and from d2l-rag's own checks. After each: no hook is left on any module, the logits are bit-identical to the
untouched model's, and the next question gets the same answer as before.
"""

from __future__ import annotations

import threading
import time

import pytest
import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from d2l_rag.errors import D2LError, InvalidInputError
from d2l_rag.model import apply_lora, find_target_modules

QUESTION = "What is the code name?"
TEXT = "The code name of the project is Bluefin. The budget is 42 coins. " * 2


class Injected(Exception):
    """The failure this test injects."""


def _hooks_left(model: torch.nn.Module) -> int:
    """d2l-rag's LoRA hooks still registered (transformers keeps a few hooks of its own)."""
    hooks = [h for m in model.modules() for h in [*m._forward_hooks.values(), *m._forward_pre_hooks.values()]]
    return sum(getattr(h, "__module__", "") == "d2l_rag.model.lora_apply" for h in hooks)


def _all_hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.fixture()
def setup(tmp_path, make_internalizer):
    # Grounded spelling holds a streamed word back until it ends; the random model's answer has no space, so the
    # stream test below would get no piece before generation ends: it is about adapter state, not spelling.
    internalizer = make_internalizer(tmp_path / "cache", ground_spelling=False)
    internalizer.add("doc", TEXT)
    model = internalizer.lm.model
    probe = torch.tensor([internalizer.generator.prompt_ids(QUESTION)])
    with torch.no_grad():
        logits = model(probe).logits.clone()
    expected = internalizer.ask(QUESTION, doc_id="doc").text
    assert expected != internalizer.generator.answer(QUESTION).text  # the adapter is live and visible
    assert _hooks_left(model) == 0
    baseline = _all_hooks(model)

    def assert_clean() -> None:
        assert _hooks_left(model) == 0 and _all_hooks(model) == baseline, "a hook survived the exception"
        with torch.no_grad():
            assert torch.equal(model(probe).logits, logits), "the base model's logits changed"
        assert internalizer.ask(QUESTION, doc_id="doc").text == expected  # the lock was released too

    def assert_bare_logits() -> None:
        with torch.no_grad():
            assert torch.equal(model(probe).logits, logits), "the base model's logits changed"

    internalizer.assert_bare_logits = assert_bare_logits  # for the stream test: checked while another thread runs
    return internalizer, assert_clean


def test_raise_from_a_stopping_criterion(setup, monkeypatch):
    internalizer, assert_clean = setup
    original = internalizer.lm.model.generate

    class Failing(StoppingCriteria):
        calls = 0

        def __call__(self, input_ids, scores, **kwargs):
            Failing.calls += 1
            if Failing.calls == 3:
                raise Injected("from a stopping criterion")
            return torch.zeros(input_ids.shape[0], dtype=torch.bool)

    monkeypatch.setattr(
        internalizer.lm.model,
        "generate",
        lambda **kw: original(stopping_criteria=StoppingCriteriaList([Failing()]), **kw),
    )
    with pytest.raises(Injected):
        internalizer.ask(QUESTION, doc_id="doc")
    monkeypatch.undo()
    assert_clean()


@pytest.mark.parametrize("exception", [Injected, KeyboardInterrupt])
def test_raise_from_a_forward_hook(setup, exception):
    internalizer, assert_clean = setup
    module = find_target_modules(internalizer.lm.model, ["mlp.down_proj"])["mlp.down_proj"][1]
    calls = []

    def failing(mod, args, output):
        calls.append(1)
        if len(calls) == 4:  # mid-generation, after the prompt and a few tokens
            raise exception("from a forward hook")

    handle = module.register_forward_hook(failing)
    try:
        with pytest.raises(exception):
            internalizer.ask(QUESTION, doc_id="doc")
    finally:
        handle.remove()
    assert_clean()


def test_raise_from_the_streamer(setup, monkeypatch):
    internalizer, assert_clean = setup
    original = TextIteratorStreamer.put
    calls = []

    def failing(self, value):
        calls.append(1)
        if len(calls) == 3:
            raise Injected("from the streamer")
        return original(self, value)

    monkeypatch.setattr(TextIteratorStreamer, "put", failing)
    with pytest.raises(Injected):
        list(internalizer.stream(QUESTION, doc_id="doc"))
    monkeypatch.undo()
    assert_clean()


def test_consumer_abandons_a_stream(setup, monkeypatch):
    """The generation thread keeps its adapter while it finishes; other threads must not see it meanwhile."""
    internalizer, assert_clean = setup
    model = internalizer.lm.model
    this_thread = threading.get_ident()
    # The tiny random model's answer has no spaces, so the streamer would hold it all until generate returns and
    # leave no window: treating every character as CJK makes it hand over each token's text at once.
    monkeypatch.setattr(TextIteratorStreamer, "_is_chinese_char", lambda self, cp: True)
    looked = threading.Event()
    generating_steps = 0

    def hold_generation_after_its_first_step(module, args):
        nonlocal generating_steps
        if threading.get_ident() != this_thread:
            generating_steps += 1
            if generating_steps == 2:  # held once: a failing check must not cost a minute a step
                looked.wait(timeout=60)

    handle = model.register_forward_pre_hook(hold_generation_after_its_first_step)
    try:
        pieces = iter(internalizer.stream(QUESTION, doc_id="doc"))
        next(pieces)
        pieces.close()  # GeneratorExit in the consumer; the generating thread runs on, held at its second step
        assert _hooks_left(model) == internalizer.lm.num_layers, "the generating thread lost its adapter"
        internalizer.assert_bare_logits()  # from this thread, while the adapter is live in the other one
    finally:
        looked.set()
        handle.remove()
    deadline = time.monotonic() + 60
    while _hooks_left(model) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert generating_steps > 1
    assert_clean()


def test_the_checks_see_a_live_adapter(setup):
    """The probes above can fail: inside `apply_lora` they see the hooks and changed logits."""
    internalizer, _ = setup
    model = internalizer.lm.model
    a, b = internalizer.adapter("doc").weights["mlp.down_proj"]
    with apply_lora(model, {"mlp.down_proj": (a[None], b[None])}):
        assert _hooks_left(model) == internalizer.lm.num_layers
        with pytest.raises(AssertionError, match="logits changed"):
            internalizer.assert_bare_logits()


def test_raise_while_decoding(setup, monkeypatch):
    internalizer, assert_clean = setup

    def failing(*args, **kwargs):
        raise Injected("from the tokenizer")

    monkeypatch.setattr(internalizer.lm.tokenizer, "decode", failing)
    with pytest.raises(Injected):
        internalizer.ask(QUESTION, doc_id="doc")
    monkeypatch.undo()
    assert_clean()


def test_d2l_errors_inside_the_adapter_context(setup):
    internalizer, assert_clean = setup
    model = internalizer.lm.model
    adapter = internalizer.adapter("doc")
    (a, b) = adapter.weights["mlp.down_proj"]
    two_rows = {"mlp.down_proj": (torch.stack([a, a]), torch.stack([b, b]))}
    with pytest.raises(InvalidInputError, match="forward batch has 1 rows but 2 adapters"), apply_lora(model, two_rows):
        model(torch.tensor([[5, 6, 7]]))
    assert_clean()
    with pytest.raises(D2LError, match="already active"), apply_lora(model, two_rows), apply_lora(model, two_rows):
        pass
    assert_clean()
    bad = {"mlp.down_proj": (a[None, :, :, :-1], b[None])}
    with pytest.raises(InvalidInputError, match="A has shape"), apply_lora(model, bad):
        pass
    assert_clean()
    with pytest.raises(InvalidInputError, match="exceeds the model window"):
        internalizer.ask("x" * (internalizer.lm.context_window + 1), doc_id="doc")
    assert_clean()
