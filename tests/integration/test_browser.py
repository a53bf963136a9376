"""The chat page in a real browser (Debian's Chromium, headless, via Playwright) against ``rag chat`` with the
real models: a cited answer whose source opens highlighted, a follow-up, an upload answered right away, nothing
fetched from beyond 127.0.0.1. Screenshots of each step are saved in the test's temporary folder."""

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pytest

from rag.bench.server import free_port, wait_until_listening
from rag.config import KNOWN_CHECKS, default_cache_dir
from tests import made_documents
from tests.integration.test_cli import rag
from tests.conftest import DOCUMENTS, REPO

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
ANSWER_DONE = "#chat .rag-sources, #chat .rag-abstain"

if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (`make browser` installs it with apt)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


@contextmanager
def chat_server(docs: Path, index: Path, **env: str) -> Iterator[int]:
    """``rag chat`` over ``docs`` as a separate process; yields its port."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "rag.interfaces.cli", "chat", "--docs", str(docs), "--index", str(index), "--port", str(port)],
        cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1", **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        wait_until_listening(process, port)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    docs = root / "docs"
    shutil.copytree(DOCUMENTS, docs)
    for path in docs.iterdir():
        path.chmod(0o644)
    port = free_port()
    with open(root / "chat.log", "wb") as log:  # -v: the log says when an answer is stopped
        process = subprocess.Popen(
            [sys.executable, "-m", "rag.interfaces.cli", "-v", "chat", "--docs", str(docs), "--index",
             str(root / "index"), "--port", str(port)],
            cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=log, stderr=subprocess.STDOUT,
        )
        wait_until_listening(process, port)
        yield f"http://127.0.0.1:{port}/", root
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def page(server):
    url, root = server
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.requests = []
        page.on("request", lambda request: page.requests.append(request.url))
        page.goto(url)
        page.wait_for_selector("#question textarea")
        page.screenshot(path=root / "01-first-visit.png")
        yield page
        browser.close()


class Asked(NamedTuple):
    reading_shown_first: bool  # the passages being read were listed before the model's first words
    first_shown_s: float  # Enter -> anything in the answer's place
    first_text_s: float  # Enter -> the model's first words
    full_s: float  # Enter -> the finished answer


BOT_MESSAGES = "document.querySelectorAll('#chat [data-testid=\"bot\"]')"


def ask(page, question: str) -> Asked:
    """Type ``question``, press Enter, wait for the finished answer, timing what appeared when."""
    answers_before = page.locator(ANSWER_DONE).count()
    n = page.locator('#chat [data-testid="bot"]').count()
    page.fill("#question textarea", question)
    started = time.monotonic()
    page.press("#question textarea", "Enter")
    # Past any "loading the model" notice (the server loads it in the background as it starts).
    page.wait_for_function(f"n => {BOT_MESSAGES}.length > n && {BOT_MESSAGES}[n].innerText.trim().length > 1"
                           f" && !{BOT_MESSAGES}[n].querySelector('.rag-preparing')",
                           arg=n, timeout=180_000, polling=50)
    first_shown = time.monotonic() - started
    reading = page.locator('#chat [data-testid="bot"]').nth(n).locator(".rag-reading").count() > 0
    page.wait_for_function(f"n => !{BOT_MESSAGES}[n].querySelector('.rag-reading')", arg=n, timeout=180_000,
                           polling=50)
    first_text = time.monotonic() - started
    page.wait_for_function(f"n => document.querySelectorAll('{ANSWER_DONE}').length > n", arg=answers_before,
                           timeout=180_000)
    return Asked(reading, first_shown, first_text, time.monotonic() - started)


def last_answer(page) -> str:
    return page.locator('#chat [data-testid="bot"]').last.inner_text()


def test_a_cited_answer_opens_its_source_highlighted(page, server):
    _, root = server
    asked = ask(page, "Which French president resisted the plan for a NATO office in Tokyo?")
    print(f"\nEnter -> passages listed {asked.first_shown_s:.2f} s, -> first streamed text {asked.first_text_s:.2f} s,"
          f" -> full answer {asked.full_s:.2f} s")
    assert asked.reading_shown_first  # the page says what is being read while the model reads it
    answer = last_answer(page)
    assert "Macron" in answer and "002_039194b7b7e47dc6.txt" in answer
    page.screenshot(path=root / "02-answer-with-sources.png")
    page.locator('#chat a[href^="#source-"]', has_text="002_039194b7b7e47dc6.txt").last.click()
    highlighted = page.wait_for_selector("#source-panel mark", timeout=30_000)
    assert "Macron" in highlighted.inner_text()
    assert "002_039194b7b7e47dc6.txt" in page.inner_text("#source-panel")
    page.screenshot(path=root / "03-source-highlighted.png")


def test_a_thumbs_down_with_a_correction_becomes_a_test_question_that_rag_eval_scores(page, server, tmp_path):
    _, root = server
    ask(page, "Which French president resisted the plan for a NATO office in Tokyo?")
    page.locator('#chat [data-testid="bot"]').last.hover()
    page.locator("#chat button[aria-label='Dislike']").last.click()
    page.wait_for_function("() => document.querySelector('#feedback-status').innerText.includes('kept')")
    page.click("#feedback .label-wrap")
    page.fill("#correction textarea", "Emmanuel Macron")
    page.click("#send-correction")
    page.wait_for_function("() => document.querySelector('#feedback-status').innerText.includes('test question')")
    page.screenshot(path=root / "02b-corrected.png")
    gold = tmp_path / "from-feedback.jsonl"
    exported = rag("feedback", "export", "--index", str(root / "index"), "--out", str(gold))
    assert exported.returncode == 0, exported.stderr
    items = [json.loads(line) for line in gold.read_text().splitlines()]
    corrected = [i for i in items if i["answers"] == ["Emmanuel Macron"]]
    assert corrected and corrected[0]["evidence"] and "Tokyo" in corrected[0]["question"]
    scored = rag("eval", str(gold), "--docs", str(root / "docs"), "--index", str(tmp_path / "index"),
                 "--out", str(tmp_path / "run"))
    assert scored.returncode == 0, scored.stderr
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["n_questions"] == len(items) and report["answer_f1"] > 0


def test_a_conversation_is_kept_and_after_a_reload_reopens_with_its_sources_then_is_renamed_and_deleted(page, server):
    url, root = server
    page.click("#clear")  # a new conversation
    page.wait_for_function("() => document.querySelectorAll('#chat [data-testid=\"bot\"]').length === 0")
    ask(page, "Where would NATO open its first liaison office in Asia?")
    before = last_answer(page)
    assert "Tokyo" in before
    page.goto(url)  # a reload: the page starts empty, the conversation is kept
    page.wait_for_selector("#question textarea")
    assert page.locator('#chat [data-testid="bot"]').count() == 0
    page.click("#conversations input")
    page.click("li[role=option]:has-text('first liaison office in Asia')")
    page.wait_for_function("() => document.querySelectorAll('#chat .rag-sources').length === 1")
    assert last_answer(page) == before
    page.screenshot(path=root / "02c-conversation-reopened.png")
    page.locator('#chat a[href^="#source-"]').first.click()
    assert "Tokyo" in page.wait_for_selector("#source-panel mark", timeout=30_000).inner_text()
    ask(page, "Who resisted it?")  # a follow-up reads the reopened turn
    assert "002_039194b7b7e47dc6.txt" in last_answer(page)
    page.fill("#conversation-title textarea", "NATO in Tokyo")
    page.click("#rename-conversation")
    page.wait_for_function("() => document.querySelector('#conversations input').value.startsWith('NATO in Tokyo')")
    assert "2 answers" in page.input_value("#conversations input")
    page.click("#delete-conversation")
    page.wait_for_function("() => document.querySelectorAll('#chat [data-testid=\"bot\"]').length === 0")
    page.click("#conversations input")
    assert page.locator("li[role=option]:has-text('NATO in Tokyo')").count() == 0
    page.keyboard.press("Escape")


def test_an_abstention_says_which_check_withheld_the_answer_and_why(page, server):
    _, root = server
    ask(page, "How do I bake sourdough bread?")
    withheld = page.locator('#chat [data-testid="bot"]').last.locator(".rag-withheld")
    assert withheld.count() == 1
    text = withheld.inner_text()
    assert text.startswith("Withheld by") and any(f"{name}:" in text for name in (*KNOWN_CHECKS, "refusal")), text
    page.screenshot(path=root / "02b-abstention-with-reason.png")


def test_an_abstention_quotes_the_closest_sentence_and_a_click_shows_it_in_its_document(page, server):
    ask(page, "What is the capital of Australia?")  # its words are in the documents, its answer is not
    closest = page.locator('#chat [data-testid="bot"]').last.locator(".rag-closest")
    assert closest.count() == 1 and closest.inner_text().startswith("Closest the documents come:")
    quote = closest.inner_text().split("“", 1)[1].rstrip("”").rstrip("…")
    closest.locator('a[href^="#source-"]').click()
    assert quote in page.wait_for_selector("#source-panel mark", timeout=30_000).inner_text()


def test_a_follow_up_is_answered_from_the_conversation(page, server):
    _, root = server
    asked = ask(page, "Where would NATO open its first liaison office in Asia?")
    print(f"\nmodel loaded: Enter -> passages listed {asked.first_shown_s:.2f} s, -> first streamed text "
          f"{asked.first_text_s:.2f} s, -> full answer {asked.full_s:.2f} s")
    assert "Tokyo" in last_answer(page)
    ask(page, "Who resisted it?")  # "it" is only known from the previous turn
    answer = last_answer(page)
    # The article names both: "Resistance from French President Emmanuel Macron", "to try and persuade France".
    assert ("Macron" in answer or "France" in answer) and "002_039194b7b7e47dc6.txt" in answer
    page.screenshot(path=root / "04-follow-up.png")


def move_slider_to_minimum(page, selector: str) -> None:
    """Press Home on the slider, as a keyboard user would, until its number box reads 1 and still does half a
    second later: an accordion's contents render in steps after it opens, and a step that lands after the key
    press puts the default back."""
    slider = page.locator(f"{selector} input[type=range]")
    number = f"{selector} input[type=number]"
    for _ in range(10):
        slider.focus()
        page.keyboard.press("Home")
        page.wait_for_timeout(500)
        if page.input_value(number) == "1":
            page.wait_for_timeout(500)
            if page.input_value(number) == "1":
                return
    pytest.fail(f"the slider {selector} did not stay at its minimum; it reads {page.input_value(number)}")


def test_settings_change_how_many_passages_are_read_and_show_their_scores(page, server):
    _, root = server
    page.click("#settings .label-wrap")  # the accordion's header opens it
    move_slider_to_minimum(page, "#passages")
    page.check("#show-scores input[type=checkbox]")
    sync_api.expect(page.locator("#show-scores input[type=checkbox]")).to_be_checked()
    sync_api.expect(page.locator("#passages input[type=number]")).to_have_value("1")
    ask(page, "Which French president resisted the plan for a NATO office in Tokyo?")
    scores = page.locator("#chat .rag-scores").last.inner_text()
    shown = page.input_value("#passages input[type=number]")
    assert "[1]" in scores and "[2]" not in scores, f"slider shows {shown}; {scores}"  # one passage, scores shown
    page.screenshot(path=root / "04b-settings.png")


def test_two_people_asking_at_once_are_served_one_after_the_other_with_the_queue_shown(page, server):
    url, root = server
    second = page.context.browser.new_page()  # another person: a context of its own
    second.goto(url)
    second.wait_for_selector("#question textarea")
    answers_before = page.locator(ANSWER_DONE).count()
    page.fill("#question textarea", "Which program did the ITPP build upon?")
    second.fill("#question textarea", "In which year did Japan and NATO sign the IPCP?")
    page.press("#question textarea", "Enter")
    # The first question is being answered (Gradio's status reads "processing | 1.2s", then the passages being read
    # are listed) before the second is sent.
    page.wait_for_function(
        "() => { const chat = document.querySelector('#chat');"
        " return /processing/i.test(chat.innerText) || chat.querySelector('.rag-reading') !== null; }",
        timeout=60_000, polling=50,
    )
    second.press("#question textarea", "Enter")
    # One generation at a time: the second person sees their place in the queue until the first answer is done.
    second.wait_for_function("() => /queue:?\\s*\\d+\\s*\\/\\s*\\d+/i.test(document.body.innerText)", timeout=60_000,
                             polling=100)
    assert "In which year did Japan and NATO sign the IPCP?" in second.inner_text("#chat")  # shown while waiting
    second.screenshot(path=root / "04c-queue-position.png")
    page.wait_for_function(f"n => document.querySelectorAll('{ANSWER_DONE}').length > n", arg=answers_before,
                           timeout=180_000)
    second.wait_for_selector(ANSWER_DONE, timeout=180_000)
    assert "2014" in last_answer(second)
    second.close()


def test_closing_the_page_mid_answer_stops_the_model(page, server):
    url, root = server
    log = root / "chat.log"
    stopped = "its reader left"
    for question in ["What does the first document describe, in detail?", "Who is named in the documents, and why?",
                     "What happened, where and when, according to the documents?"]:
        before = log.read_text(errors="replace").count(stopped)
        leaving = page.context.browser.new_page()
        leaving.goto(url)
        leaving.wait_for_selector("#question textarea")
        leaving.fill("#question textarea", question)
        leaving.press("#question textarea", "Enter")
        # The model's first words are on the page (the cursor follows them): close it mid-answer.
        leaving.wait_for_function(f"() => {BOT_MESSAGES}.length > 0 && "
                                  f"{BOT_MESSAGES}[{BOT_MESSAGES}.length - 1].innerText.includes('\u258c')",
                                  timeout=180_000, polling=20)
        leaving.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and log.read_text(errors="replace").count(stopped) == before:
            time.sleep(0.2)
        if log.read_text(errors="replace").count(stopped) > before:
            break  # otherwise the answer was complete before the page closed: ask another
    else:
        pytest.fail(f"no answer was stopped when its page closed (see {log})")
    # The next person is answered as usual: a finished answer, not an error.
    ask(page, "Which organisations are named in the documents?")
    assert "⚠️" not in last_answer(page) and "▌" not in last_answer(page)


def test_an_uploaded_document_is_answerable_right_away(page, server):
    _, root = server
    upload = root / "selene_greenhouse.txt"
    upload.write_text(
        "Selene station report\n\nThe Selene-7 lunar greenhouse is run by the agronomist Marta Kowalczyk. "
        "It grows basil and dwarf tomatoes under violet lamps.",
        encoding="utf-8",
    )
    page.locator("#upload input[type=file]").set_input_files(str(upload))
    page.click("#add-documents")
    try:
        page.wait_for_function(
            "() => (document.querySelector('#index-status textarea')?.value || '').includes('added 1')",
            timeout=120_000,
        )
    finally:
        page.screenshot(path=root / "05-uploaded.png")
    assert "selene_greenhouse.txt" in page.inner_text("#documents")
    page.click("#clear")
    page.wait_for_function("() => document.querySelectorAll('#chat [data-testid=\"bot\"]').length === 0")
    ask(page, "Who runs the Selene-7 lunar greenhouse?")
    answer = last_answer(page)
    assert "Kowalczyk" in answer and "selene_greenhouse.txt" in answer
    page.screenshot(path=root / "06-upload-answered.png")


def test_a_removed_document_leaves_the_list_and_is_no_longer_cited(page, server):
    _, root = server
    page.click("#remove-choice input")
    page.click("li[role=option]:has-text('selene_greenhouse.txt')")
    page.click("#remove-document")
    page.wait_for_function(
        "() => (document.querySelector('#index-status textarea')?.value || '').includes('Removed selene')",
        timeout=120_000,
    )
    page.screenshot(path=root / "07-removed.png")
    assert "selene_greenhouse.txt" not in page.inner_text("#documents")
    assert (root / "docs" / "selene_greenhouse.txt").exists() is False
    ask(page, "Who runs the Selene-7 lunar greenhouse?")
    assert "selene_greenhouse.txt" not in last_answer(page)


def test_a_question_asked_within_chosen_documents_cites_only_them(page, server):
    url, root = server
    page.click("#within input")
    page.click("li[role=option]:has-text('000_210d74e5e6875247.txt')")
    page.keyboard.press("Escape")
    try:
        ask(page, "Which French president resisted the plan for a NATO office in Tokyo?")  # said only in 002_…
        answer = last_answer(page)
        page.screenshot(path=root / "07b-asked-within.png")
        assert "002_039194b7b7e47dc6.txt" not in answer
        assert "000_210d74e5e6875247.txt" in answer or "I don't know" in answer, answer
    finally:
        page.goto(url)  # a fresh page: no document chosen for the tests after this one
        page.wait_for_selector("#question textarea")


def test_nothing_is_fetched_from_beyond_the_machine(page):
    foreign = [url for url in page.requests if not url.startswith(("http://127.0.0.1", "data:", "blob:"))]
    assert foreign == []


def test_the_first_question_on_a_fresh_machine_shows_the_model_being_prepared_and_waits_for_it(tmp_path, page):
    """A cache without the converted model, as on a fresh machine: the real conversion runs while the page waits."""
    cache = tmp_path / "cache"
    cache.mkdir()
    if (default_cache_dir() / "embeddings").is_dir():  # the embedding export is shared: only the generator is new
        (cache / "embeddings").symlink_to(default_cache_dir() / "embeddings")
    docs = tmp_path / "docs"
    shutil.copytree(DOCUMENTS, docs)
    with chat_server(docs, tmp_path / "index", RAG_CACHE_DIR=str(cache)) as port:
        fresh = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})  # the module's browser
        try:
            fresh.goto(f"http://127.0.0.1:{port}/")
            fresh.fill("#question textarea", "Where would NATO open its first liaison office in Asia?")
            fresh.press("#question textarea", "Enter")
            notice = fresh.wait_for_selector("#chat .rag-preparing", timeout=120_000)
            assert "Preparing the model for its first use" in notice.inner_text()  # joining its parts, then:
            fresh.wait_for_function("() => /converting the model once .*only the first time/"
                                    ".test(document.querySelector('#chat').innerText)", timeout=60_000)
            assert fresh.is_disabled("#question textarea")  # no second question into the same bubble meanwhile
            fresh.wait_for_function("() => / [1-9]\\d* s so far/.test(document.querySelector('#chat').innerText)",
                                    timeout=60_000)  # the time waited so far goes up
            fresh.screenshot(path=tmp_path / "first-use-preparing.png")
            fresh.wait_for_selector(ANSWER_DONE, timeout=600_000)
            assert "Tokyo" in last_answer(fresh)
            assert not fresh.locator("#chat .rag-preparing").count()
            fresh.wait_for_function("() => !document.querySelector('#question textarea').disabled", timeout=10_000)
            fresh.screenshot(path=tmp_path / "first-use-answered.png")
        finally:
            fresh.close()


def test_a_source_in_a_pdf_names_its_page_and_opens_that_page(tmp_path, page):
    """A PDF's citation says "p. N"; clicking it shows that page's text with the passage in view, and a link that
    opens the PDF itself at that page (Gradio serves the documents folder, and only it)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    made_documents.pdf(docs / "harvest.pdf", [
        "Orlen farm annual figures. The table of the harvest follows on the next page.",
        [("Crop", "Tonnes harvested"), ("Barley", "310"), ("Oats", "125"), ("Rye", "42")],
    ], title="Orlen Farm Harvest")
    with chat_server(docs, tmp_path / "index") as port:
        paged = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            paged.goto(f"http://127.0.0.1:{port}/")
            paged.wait_for_selector("#question textarea")
            ask(paged, "How many tonnes of oats did the Orlen farm harvest?")
            answer = last_answer(paged)
            assert "125" in answer and "harvest.pdf, p. 2" in answer, answer
            paged.locator('#chat a[href^="#source-"]', has_text="p. 2").last.click()
            mark = paged.wait_for_selector("#source-panel mark", timeout=30_000)
            assert "Oats | 125" in mark.inner_text()
            panel = paged.inner_text("#source-panel")
            assert "p. 2" in panel and "page 2" in panel and "annual figures" not in panel  # that page only
            paged.wait_for_function(  # scrolled into view inside the panel
                "() => { const m = document.querySelector('#source-panel mark').getBoundingClientRect();"
                " return m.top >= 0 && m.bottom <= window.innerHeight; }", timeout=10_000)
            link = paged.locator("#source-panel a.rag-open-page")
            href = link.get_attribute("href")
            assert href.endswith("/harvest.pdf#page=2") and link.inner_text() == "open the PDF at page 2"
            served = paged.request.get(f"http://127.0.0.1:{port}{href.split('#')[0]}")
            assert served.ok and served.body().startswith(b"%PDF")
            paged.screenshot(path=tmp_path / "pdf-page-source.png")
        finally:
            paged.close()
