"""Grounded spelling: near-miss names, codes and numbers take the document's spelling; nothing else changes."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from d2l_rag.grounding import DocumentLexicon, SpellingCorrection, ground_pieces, tokenizer_rarity

DOCUMENT = (
    "The Fourtpaendkra was commanded by Captain Cuvpeino Sheskley. Keigralhaven has 840,379 inhabitants and "
    "Thestromfell 872,926. The access code for the Veirtheis vault is YV-1479-U. The observatory was founded in "
    "1735, the museum in 1739. While the river is long, the town is small. The Thormissta was commanded by "
    "Captain Fenloo Paertson and the Miaswia by Captain Vondhao Reirsulard."
)


def long_words_are_rare(words: Sequence[str]) -> list[bool]:
    """Stands in for a tokenizer: words of 6 or more characters count as rare, as invented names do."""
    return [len(w) >= 6 for w in words]


@pytest.fixture()
def lexicon() -> DocumentLexicon:
    return DocumentLexicon.from_texts([DOCUMENT], long_words_are_rare)


def test_a_near_miss_name_takes_the_documents_spelling(lexicon):
    grounded = lexicon.ground("The Fourtpaendkra was commanded by Captain Cuvpeo Sheskley.")
    assert grounded.text == "The Fourtpaendkra was commanded by Captain Cuvpeino Sheskley."
    assert grounded.corrections == (SpellingCorrection("Cuvpeo", "Cuvpeino", pytest.approx(0.857, abs=1e-3)),)


def test_a_number_one_digit_off_is_corrected_and_formatted_as_in_the_document(lexicon):
    assert lexicon.ground("Keigralhaven has 840,371 inhabitants.").text == "Keigralhaven has 840,379 inhabitants."
    assert lexicon.ground("It has 872926 people.").text == "It has 872,926 people."
    assert lexicon.ground("It has 472,926 people.").text == "It has 872,926 people."


def test_numbers_further_off_or_of_another_length_stay(lexicon):
    assert lexicon.ground("It has 840,111 inhabitants.").corrections == ()  # 2 digits off in 6 is allowed ...
    assert lexicon.ground("It has 811,111 inhabitants.").corrections == ()  # ... 3 are not
    assert lexicon.ground("It has 84,037 inhabitants.").corrections == ()  # another digit count
    assert lexicon.ground("Founded in 1890.").corrections == ()  # 2 of 4 digits off


def test_an_ambiguous_number_stays(lexicon):
    assert lexicon.ground("Founded in 1737.").corrections == ()  # 1735 and 1739 are as close


def test_codes_are_grounded_against_codes(lexicon):
    assert lexicon.ground("The code is YV-1478-U.").text == "The code is YV-1479-U."


def test_words_the_document_holds_and_common_words_stay(lexicon):
    answer = "While the river is long, Captain Sheskley said: Paris! Whale."
    grounded = lexicon.ground(answer)
    assert grounded.text == answer and grounded.corrections == ()


def test_a_rare_word_far_from_every_document_word_stays(lexicon):
    assert lexicon.ground("It was built by Dr. Quimpreo Tollfous.").corrections == ()


def test_case_is_ignored_for_words_the_document_holds(lexicon):
    assert lexicon.ground("THE FOURTPAENDKRA").corrections == ()


def test_several_documents_pool_their_words():
    lexicon = DocumentLexicon.from_texts(
        ["Captain Cuvpeino Sheskley.", "Its capital is Nihefellow."], long_words_are_rare
    )
    assert lexicon.ground("Cuvpeno and Nihefallow").text == "Cuvpeino and Nihefellow"


def test_tokenizer_rarity_counts_pieces(tiny_lm):
    is_rare = tokenizer_rarity(tiny_lm.tokenizer, min_pieces=9)  # one piece a character and one for the space
    assert is_rare(["the", "Sheskle", "Cuvpeino"]) == [False, False, True]


def test_a_hyphenated_word_is_rare_when_one_part_is(tiny_lm):
    is_rare = tokenizer_rarity(tiny_lm.tokenizer, min_pieces=9)
    assert is_rare(["non-profit", "the-Cuvpeino", "Cuvpeino", "a-b-c"]) == [False, True, True, False]


def test_identifiers_short_numbers_and_possessives_stay():
    lexicon = DocumentLexicon.from_texts(
        ["Call threadpool_limits in threading.Thread. Kramquothson's badge is 42. Version 2.0, 1.5 or 4,250."],
        long_words_are_rare,
    )
    answers = ["Call thread_pool_limits.", "Use threading.thread_safe.", "It is 43.", "He said 21.", "15 or 42.50"]
    for answer in answers:
        assert lexicon.ground(answer).corrections == (), answer
    assert lexicon.ground("Kramqothson's").text == "Kramquothson's"


def test_a_name_with_a_part_spelled_right_takes_the_documents_name_whole(lexicon):
    grounded = lexicon.ground("The Thormissta was commanded by Captain Fliemoo Paertson.")
    assert grounded.text == "The Thormissta was commanded by Captain Fenloo Paertson."
    assert grounded.corrections == (
        SpellingCorrection("Captain Fliemoo Paertson", "Captain Fenloo Paertson", pytest.approx(0.894, abs=1e-3)),
    )  # Fliemoo alone is 0.615 like Fenloo: too far to correct as a word


def test_a_name_far_from_every_document_name_or_held_whole_stays(lexicon):
    for answer in ("It was Captain Ziaero Reilley.", "It was Captain Fenloo Paertson.", "Dr. Quimpreo Tollfous"):
        assert lexicon.ground(answer).corrections == (), answer


def test_a_name_is_matched_against_the_document_names_of_as_many_words(lexicon):
    assert lexicon.ground("By Fliemoo Paertson.").text == "By Fenloo Paertson."  # a part of a longer name


def test_the_stream_grounds_as_the_whole_text_wherever_the_pieces_end(lexicon):
    answer = "The Thormissta was commanded by Captain Fliemoo Paertson; Keigralhaven has 840,371 people, Cuvpeo said."
    whole = lexicon.ground(answer).text
    assert "Captain Fenloo Paertson" in whole and "840,379" in whole and "Cuvpeino" in whole
    for size in (1, 2, 3, 5, 8, 13):
        pieces = [answer[i : i + size] for i in range(0, len(answer), size)]
        assert "".join(ground_pieces(pieces, lexicon)) == whole, size
