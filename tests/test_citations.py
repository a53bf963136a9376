"""Citations: [n] markers become citations of exact passages; bad markers are dropped; abstentions recognised;
an unmarked answer is cited to the sentence that holds it, and shown in that sentence's words."""

import pytest

from rag.answering.citations import attribute_unmarked, is_supported, naming_sentences, parse_citations
from rag.answering.display import as_written
from rag.answering.refusals import is_abstention
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


@pytest.mark.parametrize(
    "reply", ["I don't know.", "I do not know", "The passages do not mention it.", "It is not mentioned.", "  "]
)
def test_abstentions_are_recognised(reply):
    assert is_abstention(reply)


@pytest.mark.parametrize("reply", ["2014 [1]", "Emmanuel Macron", "Know-how transfer in cyber defence [2]"])
def test_answers_are_not_mistaken_for_abstentions(reply):
    assert not is_abstention(reply)


def test_naming_sentences_are_those_holding_half_the_words_an_answer_adds_in_passages_holding_all():
    doc = "Mayor Ada Brenner will attend. Brenner was the first to attend. Rain fell."
    passage = Hit(Chunk("c0", "doc", "a.txt", "A", 0, 0, len(doc), doc), 1.0, 0.5)
    quotes = [c.quote for c in naming_sentences("Ada Brenner [1]", "Who was the first to attend?", [passage])]
    assert quotes == ["Mayor Ada Brenner will attend.", "Brenner was the first to attend."]
    start = doc.index("Brenner was")
    only_surname = Hit(Chunk("c1", "doc", "a.txt", "A", 1, start, start + 33, doc[start:start + 33]), 1.0, 0.5)
    assert naming_sentences("Ada Brenner", "Who was the first to attend?", [only_surname]) == []


def test_an_answer_is_shown_in_the_words_of_the_sentence_it_cites():
    assert as_written("40% [2]", ["Members voted 40 percent in favour."]) == "40 percent [2]"
    assert as_written("71%", ["Only 71 per cent of trains ran on time."]) == "71 per cent"
    listed = "The farm grows wheat, barley, and oats."
    assert as_written("Wheat, barley, oats [1]", [listed]) == "wheat, barley, and oats [1]"
    assert as_written("4 [1]", ["The bridge has four arches."]) == "four [1]"


def test_a_small_number_in_digits_is_grounded_by_the_same_number_in_words_and_no_other():
    assert is_supported("4 [1]", "The bridge has four arches.")
    assert is_supported("four", "It took 4 years.")
    assert not is_supported("5 [1]", "The bridge has four arches.")


def test_an_answer_already_as_written_or_not_written_at_all_is_left_alone():
    assert as_written("The Swiss Alps [1]", ["The Rhine rises in the Swiss Alps."]) == "The Swiss Alps [1]"
    assert as_written("2% [1]", ["They agreed on 2% of GDP."]) == "2% [1]"
    assert as_written("The ITPP signifies growth [1]", ["It signifies growth."]) == "The ITPP signifies growth [1]"
    # Only "and", "or" and articles may stand between the answer's words in the quoted span.
    assert as_written("Japan NATO [1]", ["Japan joined NATO."]) == "Japan NATO [1]"
    # Markers inside an answer stay where they are.
    assert as_written("Vilnius [1], Lithuania [2]", ["in Vilnius and Lithuania"]) == "Vilnius [1], Lithuania [2]"


def test_a_citation_names_the_page_its_quote_begins_on():
    flows = DOC.index("It flows")
    paged = Hit(Chunk("c9", "doc", "rivers.pdf", "Rivers", 0, 0, RHINE - 1, DOC[: RHINE - 1], page=4,
                      page_breaks=(flows,)), 1.0, 0.5)
    [danube] = parse_citations("2,850 km [1]", [paged])[1]
    [east] = parse_citations("It flows east [1]", [paged])[1]
    assert (danube.page, east.page) == (4, 5)
    assert parse_citations("2,850 km [1]", HITS)[1][0].page is None
