"""The documents people have, end to end with the real models: a folder holding a scanned PDF, a PDF with a table,
a Word file with pages and an HTML page is indexed by ``rag index``; questions about each are answered and cited
to the page that holds the answer."""

import pytest

from tests.integration.test_cli import rag
from tests.made_documents import mixed_folder, needs_tesseract

pytestmark = [pytest.mark.slow, needs_tesseract]


@pytest.fixture(scope="module")
def folder_assistant(real_assistant, tmp_path_factory):
    from rag import Assistant

    root = tmp_path_factory.mktemp("mixed")
    docs = mixed_folder(root / "docs")
    indexed = rag("index", "--docs", str(docs), "--index", str(root / "index"))
    assert indexed.returncode == 0, indexed.stderr
    assert "added 4" in indexed.stdout and "skipped" not in indexed.stdout.split(";", 1)[1]
    assistant = Assistant.from_folder(docs, root / "index", real_assistant.settings, real_assistant.generator,
                                      real_assistant.embedder)
    titles = {name: doc.title for name, doc in assistant.index.documents.items()}
    # The lighthouse log opens with a sentence, not a heading, and has no title property: its file name titles it.
    assert titles == {"lighthouse.pdf": "lighthouse", "harvest.pdf": "Orlen Farm Harvest",
                      "ferry.docx": "Tarvo Ferry", "tides.html": "Kessock tide notes"}
    return assistant


@pytest.mark.parametrize(("question", "expected", "doc", "page"), [
    ("In which year was the Vell Point lighthouse first lit?", "1887", "lighthouse.pdf", 2),
    ("How many tonnes of oats did the Orlen farm harvest?", "125", "harvest.pdf", 2),
    ("How long does the Tarvo ferry take to cross to Lenn island?", "25 minutes", "ferry.docx", 2),
    ("At what time is high water at Kessock harbour on the first of May?", "6:40", "tides.html", None),
])
def test_each_kind_of_file_is_answered_and_cited_to_its_page(folder_assistant, question, expected, doc, page):
    answer = folder_assistant.ask(question)
    assert expected in answer.text and not answer.abstained, answer.verdicts
    cited = [(c.doc, c.page) for c in answer.citations]
    assert (doc, page) in cited
    for citation in answer.citations:
        document = folder_assistant.index.documents[citation.doc]
        assert document.text[citation.start:citation.end] == citation.quote
        assert document.page_at(citation.start) == citation.page
