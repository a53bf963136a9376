"""Cutting the restated question out of a reply, so that what is shown and checked is the answer."""

import pytest

from rag.answering.echo import trim_echo


@pytest.mark.parametrize(
    ("reply", "question", "answer"),
    [
        ("The Kessock ferry first sailed from the north quay. [1]", "Where did the Kessock ferry first sail from?",
         "north quay [1]"),
        ("The harbour wall was rebuilt because of the storm of 1953. [2]", "Why was the harbour wall rebuilt?",
         "storm of 1953 [2]"),
        ("The ferry carries up to 40 cars, which makes it the largest on the firth.", "How many cars does the "
         "ferry carry?", "up to 40 cars"),
        ("The old lighthouse is known as the Tall Lady (Gaelic: Bean Àrd).", "What is the old lighthouse known as?",
         "Tall Lady"),
    ],
)
def test_a_reply_restating_the_question_is_cut_to_what_it_adds(reply, question, answer):
    assert trim_echo(reply, question) == answer


@pytest.mark.parametrize(
    ("reply", "question"),
    [
        ("North Quay Harbour [1]", "Which harbour did the ferry leave from?"),  # a phrase: every word is the answer's
        ("In 1998 a storm closed the quay for a month.", "When did the ferry first sail?"),  # restates nothing
        ("The ferry first sailed.", "When did the ferry first sail?"),  # nothing but the question: the checks judge it
    ],
)
def test_a_phrase_a_reply_that_restates_nothing_and_a_pure_echo_are_kept_whole(reply, question):
    assert trim_echo(reply, question) == reply
