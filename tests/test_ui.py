"""The chat page's rendering of answers: text, numbered sources with quotes, timings; abstentions marked."""

from rag.types import Answer, Citation, Timings
from rag.ui import render_answer


def test_an_answer_lists_its_numbered_sources_with_quotes():
    citation = Citation(1, "a.txt", "Rivers <b>", "c-1", "The Rhine rises in the Alps.", 10, 38)
    markdown = render_answer(Answer("q", "The Alps [1]", [citation], False, [], Timings(0.01, 1.5, 1.51)))
    assert markdown.startswith("The Alps [1]")
    assert "- [1] **Rivers &lt;b&gt;** (a.txt): “The Rhine rises in the Alps.”" in markdown
    assert "generation 1.50 s" in markdown


def test_an_abstention_is_shown_as_such_without_sources():
    markdown = render_answer(Answer("q", "I don't know: the documents do not say.", [], True))
    assert markdown.startswith("_I don&#x27;t know") and "Sources" not in markdown
