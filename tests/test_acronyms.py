"""Acronyms: an answer citing a sentence about another acronym than the one asked is recognised, and the
sentences that name the asked one are gathered for asking again."""

from rag.acronyms import acronyms, confused_acronym, context_of, passage_naming
from rag.citations import quote_citation
from rag.types import Chunk, Hit

TEXT = (
    "The program is called the ITPP. It aims to cover cyber defense and maritime security. "
    "In 2014, they signed an IPCP. The IPCP laid the foundation for counter-terrorism and disaster relief."
)
PASSAGE = Hit(Chunk("c0", "doc", "nato.txt", "Japan and NATO", 0, 10, 10 + len(TEXT), TEXT), 1.0, 0.5)


def cite(sentence_start: str):
    start = TEXT.index(sentence_start)
    end = TEXT.index(".", start) + 1
    return [quote_citation(1, PASSAGE, 10 + start, 10 + end)]


def test_acronyms_are_runs_of_capitals_their_plurals_read_as_singular():
    named = acronyms("The ITPPs and the IPCP, G7 and NATO; not Japan, not 2014, not I, not GABRIEL DOMINGUEZ.")
    assert named == {"ITPP", "IPCP", "G7", "NATO"}


def test_a_citations_context_is_its_sentence_and_the_one_before():
    [citation] = cite("It aims")
    assert context_of(citation, [PASSAGE]) == (
        "The program is called the ITPP. It aims to cover cyber defense and maritime security."
    )
    [first] = cite("The program")
    assert context_of(first, [PASSAGE]) == "The program is called the ITPP."


def test_an_answer_from_a_sentence_about_another_acronym_is_confused():
    question = "What areas did the IPCP lay the foundation for?"
    assert confused_acronym(question, "cyber defense and maritime security", cite("It aims"), [PASSAGE]) == "IPCP"


def test_an_answer_from_a_sentence_about_the_acronym_asked_or_naming_none_is_not():
    question = "What areas did the IPCP lay the foundation for?"
    assert confused_acronym(question, "counter-terrorism", cite("The IPCP laid"), [PASSAGE]) is None
    assert confused_acronym(question, "2014", cite("In 2014"), [PASSAGE]) is None
    assert confused_acronym("Where is the capital?", "cyber defense", cite("It aims"), [PASSAGE]) is None
    assert confused_acronym("What does ITPP stand for?", "ITPP", cite("It aims"), [PASSAGE]) is None


def test_the_passage_to_ask_again_holds_only_the_sentences_naming_the_acronym():
    [passage] = passage_naming("IPCP", [PASSAGE, PASSAGE])
    assert passage.chunk.text == (
        "In 2014, they signed an IPCP. The IPCP laid the foundation for counter-terrorism and disaster relief."
    )
    assert passage.chunk.doc_title == "Japan and NATO"
    assert passage_naming("NAC", [PASSAGE]) == []
