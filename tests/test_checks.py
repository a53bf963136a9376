"""Word tests of an answer against its question: it must add something, and a count must count what was asked."""

import pytest

from rag.types import Citation
from rag.verification.checks import (
    adds_to_question,
    counted_noun,
    counts_what_was_asked,
    noun_after_number,
)


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


def test_what_a_question_pins_down_is_its_numbers_titles_and_names():
    from rag.verification.checks import pinned_terms

    assert pinned_terms('Which band played "Harbour Lights" at the 2021 Solvang Jazz Festival?') == [
        "2021", "Harbour Lights", "Solvang Jazz Festival"]
    assert pinned_terms("How tall is the tower?") == []
    assert pinned_terms("Where did Ada Lund live in 1,200 BC?") == ["1,200", "Ada Lund", "BC"]


def test_an_answer_citing_a_passage_about_another_year_or_name_is_withheld_with_what_is_missing():
    from rag.types import Chunk, Draft, Hit
    from rag.verification.verifier import CheckContext, pinned

    text = "The 2018 Solvang Jazz Festival was won by the Harbour Quartet."
    chunk = Chunk("c1", "d1", "festival.txt", "Solvang festivals", 0, 0, len(text), text)
    cite = [Citation(1, "festival.txt", "Solvang festivals", "c1", text, 0, len(text))]
    context = CheckContext(None, {}, lambda texts: None, None)  # type: ignore[arg-type]

    def judged(question: str):
        return pinned(Draft(question, "the Harbour Quartet [1]", cite, [Hit(chunk, 1.0, 0.5)]), context)

    other_year = judged("Who won the 2019 Solvang Jazz Festival?")
    assert not other_year.passed and other_year.reason == "the passages say nothing about 2019"
    assert not judged("Who won the 2018 Oslo Jazz Festival?").passed
    assert judged("Who won the 2018 Solvang Jazz Festival?").passed
    assert judged("Who won the 2018 Solvang Jazz Festivall?").passed  # a typo is still the same name
    assert judged("Who won the 2018 festival in Solvang?").passed  # named by the document's title counts too


def test_a_follow_up_pins_only_what_its_own_words_name_and_another_passage_of_the_document_counts():
    from rag.types import Chunk, Draft, Hit
    from rag.verification.verifier import CheckContext, pinned

    first = "Prime Minister Ada Lund opened the Tarvo bridge in 1998."
    second = "Norway paid for most of it."
    chunks = [Chunk("c1", "d1", "bridge.txt", "The bridge", 0, 0, len(first), first),
              Chunk("c2", "d1", "bridge.txt", "The bridge", 1, len(first), len(first) + len(second), second)]
    cite = [Citation(1, "bridge.txt", "The bridge", "c1", first, 0, len(first))]
    hits = [Hit(c, 1.0, 0.5) for c in chunks]
    context = CheckContext(None, {}, lambda texts: None, None)  # type: ignore[arg-type]
    standalone = "Where is the Oslo tunnel? Who opened it?"  # the earlier turn made the follow-up standalone
    assert pinned(Draft(standalone, "Ada Lund [1]", cite, hits, asked="Who opened it?"), context).passed
    assert not pinned(Draft(standalone, "Ada Lund [1]", cite, hits), context).passed
    assert pinned(Draft("Which Norway-funded bridge did Ada Lund open?", "Tarvo [1]", cite, hits), context).passed
