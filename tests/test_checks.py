"""Checks: an answer must fit the kind of question asked ("how many X", "who is the X", "what did they agree"),
judged from the sentences it cites; questions of other kinds pass."""

import pytest

from rag.checks import (
    adds_to_question,
    asked_outcome,
    asked_role,
    counted_noun,
    counts_what_was_asked,
    names_the_role_asked,
    noun_after_number,
    states_the_outcome_asked,
)
from rag.types import Citation


def test_an_answer_must_add_something_to_the_question():
    assert not adds_to_question("The Rhine [1]", "What is the Rhine?")
    assert adds_to_question("The Swiss Alps", "Where does the Rhine rise?")


@pytest.mark.parametrize(
    "question, counted",
    [
        ("How many employees work at the plant?", "employees"),
        ("How many new trains has the operator ordered?", "new trains"),
        ("How many cave-adapted beetle species are known?", "cave-adapted beetle species"),
        ("how many of the beetles survived?", "beetles"),
        ("How many people?", "people"),
        ("When was it signed?", None),
    ],
)
def test_counted_noun_is_what_a_how_many_question_counts(question, counted):
    assert counted_noun(question) == counted


@pytest.mark.parametrize(
    "answer, text, counted",
    [
        ("180,000", "water for its 180,000 residents.", "residents"),
        ("140 [3]", "to hire 140 additional station staff by the end", "additional station staff"),
        ("37", "The team found only 37 individuals during six expeditions.", "individuals"),
        ("45 million liters", "It can produce 45 million liters of water.", "liters"),
        ("four", "brings the number of species to four.", None),  # nothing after it says what it counts
        ("2", "In 2014, they signed.", None),  # a number inside another is not the answer's
        ("12 of them", "12 of them left.", None),
        ("Vilnius", "The summit in Vilnius.", None),
    ],
)
def test_noun_after_number_is_what_the_number_counts_where_it_is_stated(answer, text, counted):
    assert noun_after_number(answer, text) == counted


def citing(quote: str) -> list[Citation]:
    return [Citation(1, "doc.txt", "Doc", "c0", quote, 0, len(quote))]


def unrelated(first: str, second: str) -> float:
    return 0.1


def test_a_count_of_something_else_fails_and_a_count_of_what_was_asked_passes():
    question = "How many employees work at the plant?"
    assert not counts_what_was_asked("180,000", question, citing("for its 180,000 residents."), unrelated)
    assert counts_what_was_asked("900", question, citing("The plant has 900 employees."), unrelated)
    assert counts_what_was_asked("one", "How many beetles did they find?", citing("They found one beetle."), unrelated)


def test_generic_counts_similar_nouns_and_unstated_counts_pass():
    assert counts_what_was_asked("37", "How many beetles were found?", citing("Only 37 individuals."), unrelated)
    assert counts_what_was_asked("5", "How many soldiers?", citing("It sent 5 troops."), lambda a, b: 0.87)
    assert not counts_what_was_asked("5", "How many soldiers?", citing("It sent 5 ships."), lambda a, b: 0.5)
    assert counts_what_was_asked("60,000", "How many people?", citing("It hit 60,000 passengers."), unrelated)
    assert counts_what_was_asked("four", "How many species?", citing("The count rose to four."), unrelated)
    assert counts_what_was_asked("Vilnius", "Where was the summit?", citing("In Vilnius 3 days."), unrelated)


@pytest.mark.parametrize(
    "question, role",
    [
        ("Who is the current president of South Korea?", {"president"}),
        ("Who is the chief executive of Lowmoor Rail Services?", {"chief", "executive"}),
        ("Who was the first Japanese prime minister to attend?", {"first", "japanese", "prime", "minister"}),
        ("Who is the Ukrainian Defense Minister mentioned in the article?", {"ukrainian", "defense", "minister"}),
        ("Who wrote the article?", set()),
        ("Who are they?", set()),
    ],
)
def test_asked_role_is_what_a_who_is_the_question_asks_someone_to_be(question, role):
    assert asked_role(question) == role


def test_an_answer_to_who_is_the_x_must_cite_a_sentence_naming_x():
    question = "Who is the current president of South Korea?"
    assert not names_the_role_asked(question, citing("Sebastian Maslow, a lecturer, said South Korea would join."))
    assert names_the_role_asked(question, citing("President Yoon Suk Yeol of South Korea arrived."))
    assert names_the_role_asked("Who is the mayor?", citing("Mayors met. Later Mayor Irene Castell spoke."))
    assert names_the_role_asked("Who won the cup?", citing("Italy did."))  # not a role question


@pytest.mark.parametrize(
    "question, form",
    [
        ("What did Anwar Ibrahim and Elon Musk agree about the factory?", "agreement"),
        ("What did the council decide about the cave?", "decision"),
        ("What have the judges ruled?", "ruling"),
    ],
)
def test_asked_outcome_is_the_outcome_a_what_did_they_agree_question_presupposes(question, form):
    assert form in asked_outcome(question)


@pytest.mark.parametrize(
    "question",
    ["Who agreed to the deal?", "When did they agree?", "What is the plan?", "What did the survey conclude?"],
)
def test_other_questions_ask_for_no_outcome(question):
    assert asked_outcome(question) == frozenset()


def test_an_answer_to_what_did_they_agree_must_cite_a_sentence_reporting_an_agreement():
    question = "What did Anwar Ibrahim and Elon Musk agree about Tesla's factory in Malaysia?"
    assert not states_the_outcome_asked(question, citing("Anwar Ibrahim and Elon Musk to Discuss Tesla's Plans"))
    assert states_the_outcome_asked(question, citing("They agreed that the factory would open in 2025."))
    assert states_the_outcome_asked(question, citing("Under the agreement, Tesla builds a factory."))
    assert states_the_outcome_asked("What did they discuss?", citing("They will discuss plans."))  # no outcome asked
