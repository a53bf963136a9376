"""Citations: [n] markers become citations of exact passages; bad markers are dropped; abstentions recognised."""

import pytest

from rag.citations import adds_to_question, attribute_unmarked, is_abstention, parse_citations
from rag.types import Chunk, Hit

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
