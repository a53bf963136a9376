"""Reasons: a why-question is answered with the reason clause, from the model's answer or from a sentence that
gives a reason for exactly what was asked."""

import pytest

from rag.reasons import (
    answer_with_reason,
    asks_why,
    gives_as_reason,
    reason_clause,
    restates,
    stated_reason,
    without_connective,
)
from rag.types import Chunk, Citation, Hit


def test_why_questions_are_recognised():
    assert asks_why("Why did the beetle lose its eyes?") and asks_why("  why not?")
    assert not asks_why("Who asked why?") and not asks_why("What is the reason?")


@pytest.mark.parametrize(
    "answer, reason",
    [
        ("The beetle lost its eyes because vision offered no advantage.", "because vision offered no advantage"),
        ("Because guidelines effectively ban arms exports.", "Because guidelines effectively ban arms exports"),
        ("It sent none due to guidelines that ban exports.", "due to guidelines that ban exports"),
        ("The association argued that the brine could harm the shellfish.", "the brine could harm the shellfish"),
        ("It lost them because it was dark, the researchers said.", "because it was dark"),
        ("It lost them because it was dark, while its legs grew.", "because it was dark"),
    ],
)
def test_the_reason_is_the_answer_from_its_connective_to_the_clauses_end(answer, reason):
    assert reason_clause(answer) == reason


@pytest.mark.parametrize("answer", ["Paris said NATO should stay in its region.", "In 2014.", "Because of it."])
def test_an_answer_giving_no_reason_has_no_reason_clause(answer):
    assert reason_clause(answer) is None


def test_without_connective_leaves_what_a_passage_with_another_connective_must_support():
    assert without_connective("Because guidelines ban exports [1]") == "guidelines ban exports [1]"
    assert without_connective("guidelines ban exports") == "guidelines ban exports"


def test_a_reason_holding_half_the_questions_words_restates_it():
    assert restates("due to guidelines that effectively ban arms exports", "Why are arms exports banned in Japan?")
    assert not restates("due to guidelines that effectively ban arms exports", "Why has Japan sent no weapons?")


def citing(quote: str) -> list[Citation]:
    return [Citation(1, "doc.txt", "Doc", "c0", quote, 0, len(quote))]


def test_a_reason_is_given_as_one_when_its_words_follow_a_connective_in_a_cited_sentence():
    sentence = "Japan has not delivered weapons due to guidelines that effectively ban arms exports."
    assert gives_as_reason("Because guidelines effectively ban arms exports [1]", citing(sentence))
    assert not gives_as_reason("Because they will rise by 4 percent", citing("Bills will rise by 4 percent."))
    assert not gives_as_reason("Because Japan delivered weapons", citing(sentence))  # before the connective


TEXT = (
    "Japan sent helmets and drones to Kyiv. Unlike many countries, pacifist Japan has not delivered weapons "
    "due to guidelines that effectively ban arms exports. Japan is also pacifist at home."
)
PASSAGE = Hit(Chunk("c0", "doc", "japan.txt", "Japan", 0, 100, 100 + len(TEXT), TEXT), 1.0, 0.5)


def test_a_sentence_giving_a_reason_for_what_was_asked_answers_a_why_question():
    reason, citation = stated_reason("Why has Japan not delivered weapons to Ukraine?", [PASSAGE])
    assert reason == "due to guidelines that effectively ban arms exports"
    assert citation.n == 1 and citation.quote.startswith("Unlike many countries") and citation.quote.endswith(".")
    assert TEXT[citation.start - 100 : citation.end - 100] == citation.quote


def test_a_reason_for_something_else_in_the_same_sentence_does_not_answer():
    # The sentence names pacifist Japan, but gives the reason for its not delivering weapons, not for its pacifism.
    assert stated_reason("Why is Japan pacifist?", [PASSAGE]) is None
    assert stated_reason("Why did Japan send helmets to Kyiv?", [PASSAGE]) is None


def test_an_answer_to_a_why_question_becomes_its_reason_or_a_sentences_or_stays():
    question = "Why has Japan not delivered weapons to Ukraine?"
    assert answer_with_reason(question, "It sent none because of export rules.", [], [PASSAGE]) == (
        "because of export rules", []
    )
    text, [citation] = answer_with_reason(question, "Japan sent helmets.", [], [PASSAGE])
    assert text == "due to guidelines that effectively ban arms exports [1]" and "pacifist Japan" in citation.quote
    assert answer_with_reason("Why is the sky blue?", "It is.", [], [PASSAGE]) == ("It is.", [])
    assert answer_with_reason("Why are arms exports banned?", "Because they ban arms exports.", [], []) is None
