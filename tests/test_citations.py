"""Citations: [n] markers become citations of exact passages; bad markers are dropped; abstentions recognised;
answers are checked against what their cited sentences say."""

import pytest

from rag.citations import (
    adds_to_question,
    as_written,
    asked_outcome,
    asked_role,
    attribute_unmarked,
    counted_noun,
    counts_what_was_asked,
    is_abstention,
    names_the_role_asked,
    naming_sentences,
    noun_after_number,
    parse_citations,
    states_the_outcome_asked,
)
from rag.types import Chunk, Citation, Hit

DOC = "Intro sentence here. The Danube is 2,850 km long. It flows east.\nThe Rhine rises in the Alps."


def hit(start: int, end: int, index: int) -> Hit:
    return Hit(
        chunk=Chunk(f"c{index}", "doc", "rivers.txt", "Rivers", index, start, end, DOC[start:end]),
        score=1.0,
        dense_score=0.5,
    )


RHINE = DOC.index("The Rhine")
HITS = [hit(0, RHINE - 1, 0), hit(RHINE, len(DOC), 1)]


def test_markers_become_citations_quoting_the_supporting_sentence():
    text, citations = parse_citations("The Danube is 2,850 km long [1].", HITS)
    assert text == "The Danube is 2,850 km long [1]."
    [c] = citations
    assert (c.n, c.doc, c.chunk_id) == (1, "rivers.txt", "c0")
    assert c.quote == "The Danube is 2,850 km long." == DOC[c.start : c.end]


def test_out_of_range_markers_are_dropped_and_repeats_cited_once():
    text, citations = parse_citations("Alps [2] [0] [7], also Alps [2][2] and [1, 9].", HITS)
    assert [c.n for c in citations] == [2, 1]
    assert "[0]" not in text and "[7]" not in text and "9" not in text
    assert text == "Alps [2], also Alps [2] and [1]."


def test_quote_falls_back_to_the_whole_chunk_when_no_sentence_matches():
    _, [c] = parse_citations("Zebra [2]", HITS)
    assert (c.start, c.end) == (RHINE, len(DOC)) and c.quote == DOC[RHINE:]


def test_unmarked_answers_are_attributed_to_the_passage_sharing_most_words():
    text, [c] = attribute_unmarked("The Rhine", HITS)
    assert text == "The Rhine [2]" and c.n == 2 and c.quote == "The Rhine rises in the Alps."
    assert attribute_unmarked("Zebra crossings", HITS) == ("Zebra crossings", [])


def test_a_verbatim_answer_cites_the_sentence_that_also_matches_the_question():
    doc = "Kishida met Biden. Kishida was the first Japanese leader at a NATO summit."
    hits = [
        Hit(Chunk("a", "d", "news.txt", "News", 0, 0, 18, doc[:18]), 1.0, 0.5),
        Hit(Chunk("b", "d", "news.txt", "News", 1, 19, len(doc), doc[19:]), 0.9, 0.4),
    ]
    text, [c] = attribute_unmarked("Kishida", hits, "Who was the first Japanese leader at a NATO summit?")
    assert text == "Kishida [2]" and c.chunk_id == "b" and c.quote == doc[19:] == doc[c.start : c.end]


def test_an_answer_must_add_something_to_the_question():
    assert not adds_to_question("The Rhine [1]", "What is the Rhine?")
    assert adds_to_question("The Swiss Alps", "Where does the Rhine rise?")


@pytest.mark.parametrize(
    "reply", ["I don't know.", "I do not know", "The passages do not mention it.", "It is not mentioned.", "  "]
)
def test_abstentions_are_recognised(reply):
    assert is_abstention(reply)


@pytest.mark.parametrize("reply", ["2014 [1]", "Emmanuel Macron", "Know-how transfer in cyber defence [2]"])
def test_answers_are_not_mistaken_for_abstentions(reply):
    assert not is_abstention(reply)


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


def test_naming_sentences_are_those_holding_half_the_words_an_answer_adds_in_passages_holding_all():
    doc = "Prime Minister Fumio Kishida will attend. Kishida was the first to attend. Rain fell."
    passage = Hit(Chunk("c0", "doc", "a.txt", "A", 0, 0, len(doc), doc), 1.0, 0.5)
    quotes = [c.quote for c in naming_sentences("Fumio Kishida [1]", "Who was the first to attend?", [passage])]
    assert quotes == ["Prime Minister Fumio Kishida will attend.", "Kishida was the first to attend."]
    only_surname = Hit(Chunk("c1", "doc", "a.txt", "A", 1, 42, 75, doc[42:75]), 1.0, 0.5)
    assert naming_sentences("Fumio Kishida", "Who was the first to attend?", [only_surname]) == []


def test_an_answer_is_shown_in_the_words_of_the_sentence_it_cites():
    assert as_written("68% [2]", ["Members voted 68 percent in favour."]) == "68 percent [2]"
    assert as_written("71%", ["Only 71 per cent of trains ran on time."]) == "71 per cent"
    listed = "It covers cyber defense, maritime security, and humanitarian assistance."
    assert as_written("Cyber defense, maritime security, humanitarian assistance [1]", [listed]) == (
        "cyber defense, maritime security, and humanitarian assistance [1]"
    )


def test_an_answer_already_as_written_or_not_written_at_all_is_left_alone():
    assert as_written("The Swiss Alps [1]", ["The Rhine rises in the Swiss Alps."]) == "The Swiss Alps [1]"
    assert as_written("2% [1]", ["They agreed on 2% of GDP."]) == "2% [1]"
    assert as_written("The ITPP signifies growth [1]", ["It signifies growth."]) == "The ITPP signifies growth [1]"
    # Only "and", "or" and articles may stand between the answer's words in the quoted span.
    assert as_written("Japan NATO [1]", ["Japan joined NATO."]) == "Japan NATO [1]"
    # Markers inside an answer stay where they are.
    assert as_written("Vilnius [1], Lithuania [2]", ["in Vilnius and Lithuania"]) == "Vilnius [1], Lithuania [2]"
