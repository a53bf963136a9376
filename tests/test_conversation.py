"""Follow-ups: a question that points back is joined to the last turn; one that stands alone is left alone."""

import pytest

from rag.answering.conversation import Turn, is_follow_up, standalone_question

HISTORY = [Turn("Where would NATO open its first liaison office in Asia?", "Tokyo [1]")]


@pytest.mark.parametrize(
    "question", ["Who resisted it?", "When was it signed?", "What did they agree on?", "And Sweden?", "Why?",
                 "What about South Korea?", "how long is it?"],
)
def test_questions_that_point_back_are_follow_ups(question):
    assert is_follow_up(question)


@pytest.mark.parametrize(
    "question", ["Which French president resisted the plan for a NATO office in Tokyo?",
                 "At which university is Jamie Shea now a professor?", "Why has Japan not delivered weapons?",
                 "Where would NATO open its first liaison office in Asia?"],
)
def test_questions_that_stand_alone_are_not(question):
    assert not is_follow_up(question)


def test_a_follow_up_carries_the_previous_question_and_answer_without_markers():
    assert standalone_question("Who resisted it?", HISTORY) == (
        "Where would NATO open its first liaison office in Asia? Tokyo. Who resisted it?"
    )


def test_an_abstained_turn_contributes_its_question_only():
    history = [Turn("What is the ITPP budget?", "I don't know: the documents do not say.", abstained=True)]
    assert standalone_question("Who sets it?", history) == "What is the ITPP budget? Who sets it?"


def test_without_history_or_reference_the_question_is_unchanged():
    assert standalone_question("Who resisted it?", []) == "Who resisted it?"
    assert standalone_question("Who is James Black?", HISTORY) == "Who is James Black?"
