"""The chat page's pure parts: answers rendered with source links, the side panel's highlighted span, uploads
checked before they reach the documents folder, and the login setting."""

from pathlib import Path

import pytest

from rag.assistant import Preparation
from rag.config import Settings
from rag.interfaces.chat_page import (
    conversation_choices,
    model_line,
    render_answer,
    render_preparation,
    render_reading,
    render_source,
    reopened,
)
from rag.interfaces.web import accept_upload, parse_auth
from rag.models.local.gguf import CONVERTING
from rag.models.model_choice import ModelChoice
from rag.records.store import ConversationSummary, SavedTurn
from rag.types import Answer, Chunk, Citation, Document, Hit, Timings, Verdict

CITATION = Citation(1, "a.txt", "Rivers <b>", "c-1", "The Rhine rises in the Alps.", 10, 38)
ANSWER = Answer("q", "The Alps [1]", [CITATION], False, [], Timings(0.01, 1.5, 1.51))


def test_an_answer_lists_its_numbered_sources_as_links_to_the_side_panel():
    rendered = render_answer(ANSWER, turn=3)
    assert rendered.startswith("<div>The Alps [1]</div>")
    assert '<a href="#source-3-1">[1] <b>Rivers &lt;b&gt;</b> (a.txt)</a>: “The Rhine rises in the Alps.”' in rendered
    assert "generation 1.50 s" in rendered


def _hit(doc_name: str) -> Hit:
    return Hit(Chunk("c", "d", doc_name, "Title", 0, 0, 4, "Text"), 0.5, 0.5)


def test_while_the_model_reads_the_page_says_how_many_passages_from_which_documents():
    assert render_reading([_hit("a.txt")]) == '<div class="rag-reading">Reading 1 passage from a.txt…</div>'
    hits = [_hit(name) for name in ["b<1>.txt", "a.txt", "b<1>.txt", "c.pdf", "d.md", "e.docx"]]
    assert "Reading 6 passages from b&lt;1&gt;.txt, a.txt, c.pdf and 2 more…" in render_reading(hits)


def test_a_question_waiting_for_the_model_says_whether_this_is_the_one_time_conversion_and_for_how_long():
    converting = Preparation(started=0.0)
    converting.on_stage(CONVERTING)
    shown = render_preparation(converting)
    assert "Preparing the model for its first use" in shown and "about a minute, only the first time" in shown
    assert " s so far" in shown and "Later questions start at once" in shown
    loading = Preparation(stage="loading the model into memory")
    assert "first use" not in render_preparation(loading) and "Loading the model" in render_preparation(loading)


def test_an_abstention_is_shown_as_such_without_sources():
    rendered = render_answer(Answer("q", "I don't know: the documents do not say.", [], True), turn=0)
    assert 'class="rag-abstain"' in rendered and "I don&#x27;t know" in rendered and "Sources" not in rendered


def test_an_abstention_names_the_checks_that_withheld_the_answer_and_why():
    verdicts = [Verdict("relevance", True, "close enough"), Verdict("supported", False, "lacks <b>: moon"),
                Verdict("count", False, "counts something else", enforced=False)]
    rendered = render_answer(Answer("q", "I don't know.", [], True, verdicts=verdicts), turn=0)
    assert "Withheld by" in rendered and "<b>supported</b>: lacks &lt;b&gt;: moon" in rendered
    assert "relevance" not in rendered and "count" not in rendered  # passed, or not enforced: withheld nothing


def test_an_abstention_quotes_the_closest_sentence_with_a_link_that_opens_it_in_the_side_panel():
    text = StubIndex.documents["a.txt"].text
    start = text.index("The Rhine")
    closest = Citation(1, "a.txt", "Rivers", "c-1", "The Rhine rises in the Alps.", start, start + 28)
    answer = Answer("Where does the <Danube> rise?", "I don't know.", [], True, closest=closest)
    rendered = render_answer(answer, turn=2)
    assert ('Closest the documents come: <a href="#source-2-1"><b>Rivers</b></a>: “The Rhine rises in the Alps.”'
            in rendered) and "Sources" not in rendered
    assert '<mark id="cited-span">The Rhine rises in the Alps.</mark>' in render_source(StubAssistant(), answer, 1)


def test_a_reopened_conversation_shows_each_question_and_its_answer_with_sources_and_follow_ups_can_lean_on_it():
    abstained = Answer("And <the> moon?", "I don't know.", [], True, verdicts=[Verdict("supported", False, "no moon")])
    messages, answers, ids = reopened([SavedTurn("page-1", ANSWER), SavedTurn("page-2", abstained)])
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[2]["content"] == "And &lt;the&gt; moon?"  # a question is shown as text, never as markup
    assert 'href="#source-0-1"' in messages[1]["content"] and "no moon" in messages[3]["content"]
    assert answers == [ANSWER, abstained] and ids == {1: "page-1", 3: "page-2"}  # feedback still names each answer


def test_saved_conversations_are_listed_by_title_size_and_date():
    [(label, value)] = conversation_choices([ConversationSummary("c-1", "Where is the ferry?", 0.0, 86400.0, 1)])
    assert value == "c-1" and label.startswith("Where is the ferry? · 1 answer · 1970-01-0")


PAGED_TEXT = "Cover page.\n\nThe Rhine rises in the Alps.\n\nIndex."
SHEET_TEXT = ("Sheets: Fees (Boat, Annual fee)\n\nSheet Fees, row 2: Boat: Kittiwake; Annual fee: 980\n"
              "Sheet Fees, row 3: Boat: Saltwind <II>; Annual fee: 1240")


class StubIndex:
    documents = {
        "a.txt": Document("d", "a.txt", "Rivers", "Intro text. The Rhine rises in the Alps. <Outro>."),
        "atlas.pdf": Document("e", "atlas.pdf", "Atlas", PAGED_TEXT, page_starts=(0, 13, 13, 43)),
        "fees.xlsx": Document("f", "fees.xlsx", "fees", SHEET_TEXT),
    }


class StubAssistant:
    index = StubIndex()
    settings = Settings(docs_dir=Path("/srv/my docs"))


def test_the_settings_say_which_model_and_engine_write_the_answers_and_why_where_the_processor_chose_them():
    small = StubAssistant()
    small.settings = Settings(generator_model="qwen2.5-coder-0.5b", engine="transformers")
    small.model_choice = ModelChoice("qwen2.5-coder-0.5b", "the larger model's answer is predicted at 9.1 s")
    assert model_line(small) == ("Answers are written by `qwen2.5-coder-0.5b` on the transformers engine: the larger "
                                 "model's answer is predicted at 9.1 s.")
    large = StubAssistant()
    large.settings = Settings(generator_model="qwen2.5-coder-1.5b", engine="ctranslate2")
    large.model_choice = ModelChoice("qwen2.5-coder-1.5b", "its answer is predicted at 3.1 s", 3.1, "ctranslate2",
                                     "int8")
    assert model_line(large) == ("Answers are written by `qwen2.5-coder-1.5b` on the ctranslate2 engine (int8): its "
                                 "answer is predicted at 3.1 s.")
    served = StubAssistant()
    served.model_choice = None
    served.settings = Settings(generator_url="http://127.0.0.1:8080/v1")
    assert model_line(served) == "Answers are written by the model server at `http://127.0.0.1:8080/v1`."


def test_the_side_panel_highlights_the_cited_span_inside_its_document():
    text = StubIndex.documents["a.txt"].text
    start = text.index("The Rhine")
    citation = Citation(1, "a.txt", "Rivers", "c-1", "The Rhine rises in the Alps.", start, start + 28)
    panel = render_source(StubAssistant(), Answer("q", "Alps [1]", [citation], False), 1)
    assert "Intro text. <mark id=\"cited-span\">The Rhine rises in the Alps.</mark> &lt;Outro&gt;." in panel
    assert "a.txt" in panel


def test_a_spreadsheet_source_names_its_sheet_and_row_and_the_panel_shows_the_row_as_a_table():
    start = SHEET_TEXT.index("Sheet Fees, row 3")
    quote = SHEET_TEXT[start:]
    citation = Citation(1, "fees.xlsx", "fees", "c-3", quote, start, len(SHEET_TEXT), place="sheet Fees, row 3")
    answer = Answer("q", "1240 [1]", [citation], False)
    assert "[1] <b>fees</b> (fees.xlsx, sheet Fees, row 3)</a>" in render_answer(answer, turn=0)
    panel = render_source(StubAssistant(), answer, 1)
    assert "<h3>[1] fees · sheet Fees, row 3</h3>" in panel
    assert ('<thead><tr><th>Boat</th><th>Annual fee</th></tr></thead>'
            '<tbody><tr><td>Saltwind &lt;II&gt;</td><td>1240</td></tr></tbody>') in panel


def test_a_source_in_a_file_with_pages_names_its_page_and_the_panel_shows_that_page_with_a_link_to_it():
    start = PAGED_TEXT.index("The Rhine")
    citation = Citation(1, "atlas.pdf", "Atlas", "c-2", "The Rhine rises in the Alps.", start, start + 28, page=3)
    answer = Answer("q", "Alps [1]", [citation], False)
    assert "[1] <b>Atlas</b> (atlas.pdf, p. 3)</a>" in render_answer(answer, turn=0)
    panel = render_source(StubAssistant(), answer, 1, "source-0-1")
    assert "<h3>[1] Atlas · p. 3</h3>" in panel and "page 3, characters" in panel
    assert 'data-source="source-0-1"><mark id="cited-span">The Rhine rises in the Alps.</mark>\n\n</div>' in panel
    assert "Cover page" not in panel and "Index." not in panel  # only the cited page
    assert 'href="/gradio_api/file=/srv/my%20docs/atlas.pdf#page=3"' in panel


def test_the_side_panel_says_when_a_source_is_gone():
    gone = Citation(1, "b.txt", "B", "c", "x", 0, 1)
    assert "removed" in render_source(StubAssistant(), Answer("q", "x [1]", [gone], False), 1)


@pytest.mark.parametrize(
    "name, content, reason",
    [("notes.exe", b"MZ", "only"), ("empty.txt", b"", "empty"), ("big.txt", b"x" * (20 * 1024 * 1024 + 1), "limit"),
     ("report.pdf", b"not a PDF at all", "report.pdf: "), ("binary.txt", bytes(range(256)) * 40, "binary.txt: "),
     ("..", b"text", "only"), ("foo/..", b"text", "only")],
)
def test_uploads_the_indexer_could_not_read_never_reach_the_documents_folder(tmp_path, name, content, reason):
    upload = tmp_path / "upload"
    upload.write_bytes(content)
    docs = tmp_path / "docs"
    docs.mkdir()
    assert reason in accept_upload(upload, docs, tmp_path / "removed", name=name)
    assert list(docs.iterdir()) == []


@pytest.mark.parametrize(("name", "stored"), [
    ("..notes (1).txt", "notes _1_.txt"), ("minutes.md", "minutes.md"), ("..txt", "upload.txt"),
    ("a\x00b.txt", "a_b.txt"), ("../../x/lake.txt", "lake.txt"), ("line\nbreak\u202e.md", "line_break_.md"),
])
def test_an_accepted_upload_lands_in_the_documents_folder_under_one_plain_name(tmp_path, name, stored):
    upload = tmp_path / "upload"
    upload.write_text("Lake Titicaca lies between Peru and Bolivia.")
    docs = tmp_path / "docs"
    docs.mkdir()
    assert accept_upload(upload, docs, tmp_path / "removed", name=name) is None
    assert [p.name for p in docs.iterdir()] == [stored]


def test_an_upload_never_destroys_the_file_it_replaces(tmp_path):
    docs, removed = tmp_path / "docs", tmp_path / "removed"
    docs.mkdir()
    (docs / "lake.txt").write_text("The first version.")
    upload = tmp_path / "upload"
    upload.write_text("The second version.")
    assert accept_upload(upload, docs, removed, name="lake.txt") is None
    assert (docs / "lake.txt").read_text() == "The second version."
    [kept] = removed.iterdir()
    assert kept.name.endswith("-lake.txt") and kept.read_text() == "The first version."
    assert accept_upload(upload, docs, removed, name="lake.txt") is None  # the same file again: nothing to keep
    assert len(list(removed.iterdir())) == 1


def test_login_comes_from_the_option_or_the_environment(monkeypatch):
    monkeypatch.delenv("RAG_CHAT_AUTH", raising=False)
    assert parse_auth(None) is None
    assert parse_auth("ann:secret:x") == ("ann", "secret:x")
    monkeypatch.setenv("RAG_CHAT_AUTH", "bob:pw")
    assert parse_auth(None) == ("bob", "pw")
    with pytest.raises(ValueError, match="USER:PASS"):
        parse_auth("nopassword")


def test_logins_are_refused_for_a_while_after_five_failures_in_a_minute():
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from rag.interfaces.web import LoginThrottle

    async def login(request):
        right = (await request.form()).get("password") == "right"
        return PlainTextResponse("ok" if right else "no", 200 if right else 400)

    client = TestClient(Starlette(routes=[Route("/login", login, methods=["POST"])],
                                  middleware=[Middleware(LoginThrottle)]))
    assert client.post("/login", data={"password": "right"}).status_code == 200  # a success counts for nothing
    assert [client.post("/login", data={"password": "guess"}).status_code for _ in range(5)] == [400] * 5
    refused = client.post("/login", data={"password": "right"})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
