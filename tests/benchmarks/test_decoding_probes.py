"""benchmarks.decoding_probes: its orderings, and each method with its effect off decoding as plain greedy."""

from __future__ import annotations

import pytest
import torch

from benchmarks.decoding_probes import GroupDecoder, contrast, main, markdown, mean_of_group, paragraph_orderings
from d2l_rag.adapters.builder import AdapterBuilder
from d2l_rag.config import GenerationConfig
from d2l_rag.generation import Generator

DOCUMENT = "First part. Still first.\n\nSecond part.\n\nThird part.\n\nFourth part."
QUESTIONS = ["Which part comes first?", "How many parts are there?"]


def test_orderings_hold_the_same_paragraphs_in_three_orders():
    given, swapped, reversed_ = paragraph_orderings(DOCUMENT, 3)
    assert given == DOCUMENT
    assert swapped.split("\n\n") == ["Third part.", "Fourth part.", "First part. Still first.", "Second part."]
    assert reversed_.split("\n\n") == DOCUMENT.split("\n\n")[::-1]
    assert paragraph_orderings(DOCUMENT, 1) == [DOCUMENT]


def test_a_document_of_one_paragraph_is_reordered_by_sentences():
    assert paragraph_orderings("A b. C d. E f.", 3)[1:] == ["C d. E f. A b.", "E f. C d. A b."]


@pytest.mark.parametrize("k", [0, 4])
def test_more_orderings_than_three_are_refused(k):
    with pytest.raises(ValueError, match="k must be 1, 2 or 3"):
        paragraph_orderings(DOCUMENT, k)


def test_contrast_keeps_only_plausible_tokens_and_weighs_the_difference():
    adapter = torch.log(torch.tensor([0.6, 0.3, 0.1]))
    bare = torch.log(torch.tensor([0.8, 0.1, 0.1]))
    scores = contrast(1.0, 0.4)(torch.stack([adapter, bare])[None])[0]
    assert scores[2] == float("-inf")  # 0.1 < 0.4 * 0.6
    assert scores[1] > scores[0]  # the adapter raised token 1 threefold over the bare model, token 0 lowered it
    with pytest.raises(ValueError, match="alpha >= 0 and 0 < beta <= 1"):
        contrast(-1.0, 0.1)


@pytest.fixture(scope="module")
def plain(tiny_lm, tiny_hypernet):
    builder = AdapterBuilder(tiny_lm, tiny_hypernet)
    adapters = [builder.build(DOCUMENT), builder.build(DOCUMENT[::-1])]
    config = GenerationConfig(max_new_tokens=8)
    return adapters, config, [a.text for a in Generator(tiny_lm, config).answer_batch(QUESTIONS, adapters)]


def test_one_view_decodes_as_plain_greedy(tiny_lm, plain):
    adapters, config, expected = plain
    answers = GroupDecoder(tiny_lm, mean_of_group, config).answer_batch(QUESTIONS, [(a,) for a in adapters])
    assert [a.text for a in answers] == expected


def test_contrast_of_weight_zero_decodes_as_plain_greedy(tiny_lm, plain):
    adapters, config, expected = plain
    decoder = GroupDecoder(tiny_lm, contrast(0.0, 1e-9), config)
    assert [a.text for a in decoder.answer_batch(QUESTIONS, [(a, None) for a in adapters])] == expected


def test_a_group_of_two_views_answers_as_one_row(tiny_lm, plain):
    adapters, config, _ = plain
    answers = GroupDecoder(tiny_lm, mean_of_group, config).answer_batch(QUESTIONS, [tuple(adapters)] * 2)
    prompt = Generator(tiny_lm).prompt_ids(QUESTIONS[0])
    assert answers[0].text == answers[1].text and answers[0].prompt_tokens == len(prompt)


def test_groups_of_unequal_size_and_beams_are_refused(tiny_lm, plain):
    adapters, config, _ = plain
    with pytest.raises(ValueError, match="every group as long"):
        GroupDecoder(tiny_lm, mean_of_group, config).answer_batch(QUESTIONS, [(adapters[0],), tuple(adapters)])
    with pytest.raises(ValueError, match="greedy"):
        GroupDecoder(tiny_lm, mean_of_group, GenerationConfig(num_beams=2))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["views", "--k", "5", "--out", "x"], "k must be 1, 2 or 3"),
        (["contrast", "--beta", "0", "--out", "x"], "0 < beta <= 1"),
        (["views", "--n", "0", "--out", "x"], "must be positive"),
        (["views", "--facts-set", "/nonexistent.json", "--out", "x"], "no such file"),
    ],
)
def test_bad_arguments_stop_before_the_model_loads(argv, message):
    with pytest.raises(SystemExit, match=message):
        main(argv)


def test_the_report_has_a_row_a_length_with_right_and_grounded_counts():
    data = {
        "facts": {"adapter": {"256": {"right": [True, False], "grounded_right": [True, True], "n": 2}}},
        "settings": {"decoding": {"method": "views", "k": 3}, "facts_set": {"sha256": "ab" * 32}},
        "checkpoint": {"id": "634a2e095b8e4cb6"},
        "seconds": 12.0,
    }
    report = markdown(data)
    assert "views, k 3" in report and "| 256 | 1/2 | 2/2 |" in report.splitlines()


@pytest.mark.parametrize(("method", "width"), [("views", 2), ("contrast", 2)])
def test_a_run_pairs_with_a_niah_run_on_the_same_saved_set(
    monkeypatch, tmp_path, tiny_lm, tiny_hypernet, method, width
):
    import benchmarks.subject
    import d2l_rag.model
    from benchmarks.compare import load_run, same_questions
    from benchmarks.facts_set import DEFAULT_FACTS_SET

    monkeypatch.setattr(d2l_rag.model, "load_base_model", lambda model: tiny_lm)
    monkeypatch.setattr(d2l_rag.model, "load_checkpoint", lambda found, lm: tiny_hypernet)
    monkeypatch.setattr(benchmarks.subject, "require_checkpoint", lambda lm, checkpoint: "tiny")
    groups = []
    monkeypatch.setattr(GroupDecoder, "answer_batch", _recording(GroupDecoder.answer_batch, groups))
    main([method, "--n", "2", "--k", str(width), "--out", str(tmp_path)])
    run = load_run(tmp_path / "niah.json")
    assert sorted(run["facts"]["adapter"]) == ["1024", "256"]
    assert all(len(result["right"]) == result["n"] == 2 for result in run["facts"]["adapter"].values())
    assert {len(group) for batch in groups for group in batch} == {width}
    plain = {"niah": {}, "facts": {}, "settings": {**run["settings"], "decoding": None}}
    assert same_questions(plain, run, "facts") is None
    assert run["settings"]["facts_set"]["path"] == str(DEFAULT_FACTS_SET)


def _recording(answer_batch, groups):
    def record(self, questions, adapters, contexts=None, config=None):
        groups.append(adapters)
        return answer_batch(self, questions, adapters, contexts, config)

    return record
