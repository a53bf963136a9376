"""The Gradio chat page: streamed answers with numbered sources that open, highlighted, in a side panel;
conversations kept per login, to reopen, rename and delete; a documents panel to add and remove files; settings;
safe serving defaults (loopback, optional login, bounded queue).
"""

from __future__ import annotations

import dataclasses
import html
import logging
import os
import re
import shutil
import sqlite3
import time
import uuid
from pathlib import Path
from urllib.parse import quote

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: nothing leaves the machine

import gradio as gr
from starlette.middleware import Middleware

from rag.answering.conversation import Turn
from rag.assistant import Assistant, Preparation, QuestionError
from rag.ingest.loaders import SUPPORTED_SUFFIXES
from rag.ingest.spreadsheets import Row, row_at
from rag.interfaces.web import (
    MAX_UPLOAD_BYTES,
    LoginThrottle,
    SameOriginOnly,
    accept_upload,
    allowed_hosts,
    model_label,
    removed_dir,
)
from rag.models.base import GeneratorError
from rag.records.store import ConversationSummary, Records, SavedTurn, UnknownConversation
from rag.types import Answer, Hit, Scope

log = logging.getLogger(__name__)

QUEUE_SIZE = 16  # questions waiting beyond this are refused with a message instead of piling up
CONTEXT_CHARS = 700  # document text shown on each side of a cited span
QUESTION_PLACEHOLDER = "Ask a question about the documents and press Enter"

# Clicking a source link in an answer puts its id in a hidden box and presses a hidden button; Python then renders
# the side panel. (Gradio has no per-link click event inside chat messages.)
_SOURCE_CLICK_JS = """
() => {
  document.addEventListener("click", (event) => {
    const link = event.target.closest('a[href^="#source-"]');
    if (!link) return;
    event.preventDefault();
    event.stopPropagation();
    const box = document.querySelector("#source-request textarea");
    box.value = link.getAttribute("href").slice(1);
    box.dispatchEvent(new Event("input", { bubbles: true }));
    setTimeout(() => document.querySelector("#source-open").click(), 50);
    // Once the panel shows the source, bring the highlighted passage (on its page, for a paged file) into view.
    const wanted = `#source-panel [data-source="${box.value}"] mark`;
    let tries = 0;
    const reveal = setInterval(() => {
      const mark = document.querySelector(wanted);
      if (mark) mark.scrollIntoView({ block: "center" });
      if (mark || ++tries > 50) clearInterval(reveal);
    }, 100);
  }, true);
}
"""

_CSS = """
.rag-sources { margin-top: .4em; font-size: .92em; }
.rag-sources a { text-decoration: none; }
.rag-abstain { font-style: italic; opacity: .85; }
.rag-withheld { font-size: .85em; opacity: .8; } .rag-withheld ul { margin: .2em 0; padding-left: 1.2em; }
.rag-closest { font-size: .9em; margin: .2em 0; }
.rag-reading, .rag-preparing { opacity: .7; }
.rag-preparing::before { content: ""; display: inline-block; width: .8em; height: .8em; margin-right: .5em;
  border: 2px solid currentColor; border-right-color: transparent; border-radius: 50%;
  animation: rag-spin 1s linear infinite; vertical-align: -.1em; }
@keyframes rag-spin { to { transform: rotate(360deg); } }
.rag-timings { font-size: .75em; opacity: .6; }
#source-panel mark { background: #ffe58a; padding: 0 .1em; }
#source-panel .rag-context { white-space: pre-wrap; line-height: 1.5; max-height: 60vh; overflow-y: auto; }
#source-panel table.rag-row { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
#source-panel table.rag-row th, #source-panel table.rag-row td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; }
#source-panel table.rag-row caption { text-align: left; font-style: italic; }
"""


def render_answer(answer: Answer, turn: int, show_scores: bool = False) -> str:
    """HTML for a finished answer: its text with markers, the numbered sources as links that open the side panel,
    and discreet timings. An abstention is shown as such, with the checks that withheld the answer and why."""
    t = answer.timings
    timings = (
        f'<div class="rag-timings">retrieval {t.retrieval_s:.2f} s · generation {t.generation_s:.2f} s</div>'
    )
    if answer.abstained:
        reasons = "".join(
            f"<li><b>{html.escape(v.check)}</b>: {html.escape(v.reason)}</li>" for v in answer.withheld_by
        )
        why = f'<div class="rag-withheld">Withheld by:<ul>{reasons}</ul></div>' if reasons else ""
        closest = ""
        if answer.closest is not None:
            c = answer.closest
            quote = c.quote if len(c.quote) <= 240 else c.quote[:237] + "…"
            closest = (f'<div class="rag-closest">Closest the documents come: <a href="#source-{turn}-{c.n}">'
                       f"<b>{html.escape(c.doc_title)}</b></a>: “{html.escape(quote)}”</div>")
        return f'<div class="rag-abstain">🤷 {html.escape(answer.text)}</div>{closest}{why}{timings}'
    lines = [f"<div>{html.escape(answer.text)}</div>"]
    if answer.citations:
        items = []
        for c in answer.citations:
            quote = c.quote if len(c.quote) <= 160 else c.quote[:157] + "…"
            where = f"{c.doc}, {c.place}" if c.place else f"{c.doc}, p. {c.page}" if c.page is not None else c.doc
            items.append(
                f'<li><a href="#source-{turn}-{c.n}">[{c.n}] <b>{html.escape(c.doc_title)}</b> '
                f"({html.escape(where)})</a>: “{html.escape(quote)}”</li>"
            )
        lines.append(f'<div class="rag-sources"><b>Sources</b><ol style="list-style:none;padding-left:0">'
                     f'{"".join(items)}</ol></div>')
    if show_scores and answer.hits:
        scores = ", ".join(
            f"[{n}] {hit.chunk.doc_name} fused {hit.score:.3f} · cosine {hit.dense_score:.2f}"
            for n, hit in enumerate(answer.hits, start=1)
        )
        lines.append(f'<div class="rag-timings rag-scores">passages: {html.escape(scores)}</div>')
    lines.append(timings)
    return "".join(lines)


def render_reading(hits: list[Hit]) -> str:
    """HTML shown while the model reads the passages, before its first word: how many, from which documents."""
    names = list(dict.fromkeys(hit.chunk.doc_name for hit in hits))
    shown = ", ".join(html.escape(name) for name in names[:3])
    if len(names) > 3:
        shown += f" and {len(names) - 3} more"
    passages = "passage" if len(hits) == 1 else "passages"
    return f'<div class="rag-reading">Reading {len(hits)} {passages} from {shown}…</div>'


def model_line(assistant: Assistant) -> str:
    """Which model writes the answers, on which engine, and why that one where the processor decided
    (rag.models.model_choice)."""
    settings = assistant.settings
    if settings.generator_url:
        return f"Answers are written by the model server at `{settings.generator_url}`."
    name = settings.generator_model or "the packaged model"
    runs_on = f"the {settings.engine} engine"
    choice = assistant.model_choice
    if choice is not None and choice.precision:
        runs_on += f" ({choice.precision})"
    if choice is not None:
        return f"Answers are written by `{name}` on {runs_on}: {choice.reason}."
    return f"Answers are written by `{name}` on {runs_on}."


def render_preparation(preparation: Preparation) -> str:
    """HTML shown while the question waits for the model to load: what is happening and for how long so far."""
    waited = f"{preparation.elapsed_s:.0f} s so far"
    if preparation.first_use:
        return (f'<div class="rag-preparing">Preparing the model for its first use: {preparation.stage} · '
                f"{waited}. Later questions start at once.</div>")
    return f'<div class="rag-preparing">Loading the model: {preparation.stage} · {waited}.</div>'


def render_source(assistant: Assistant, answer: Answer, n: int, source_id: str = "") -> str:
    """HTML for the side panel: citation ``n`` of ``answer`` inside its document, highlighted. For a file with
    pages, the panel holds the text of the cited page, and a PDF gets a link that opens it at that page."""
    # An abstention's one source is the sentence closest to the question (``Answer.closest``).
    sources = [answer.closest] if answer.abstained and answer.closest is not None else answer.citations
    citation = next((c for c in sources if c.n == n), None)
    if citation is None:
        return "<p>That source is no longer available.</p>"
    document = assistant.index.documents.get(citation.doc)
    if document is None:
        return f"<p>{html.escape(citation.doc)} has been removed from the documents since this answer.</p>"
    text = document.text
    start, end = citation.start, citation.end
    page = document.page_at(start)
    if page is not None:
        shown_start = document.page_starts[page - 1]
        page_end = document.page_starts[page] if page < len(document.page_starts) else len(text)
        shown_end = max(page_end, end)  # a quote running onto the next page is shown whole
        where = f"page {page}, characters {start}–{end}"
    else:
        shown_start, shown_end = max(0, start - CONTEXT_CHARS), min(len(text), end + CONTEXT_CHARS)
        where = f"characters {start}–{end}"
    before = ("…" if shown_start and page is None else "") + text[shown_start:start]
    after = text[end:shown_end] + ("…" if shown_end < len(text) and page is None else "")
    opener = ""
    if page is not None and citation.doc.lower().endswith(".pdf"):
        url = file_url(assistant.settings.docs_dir, citation.doc) + f"#page={page}"
        opener = (f' · <a href="{html.escape(url)}" target="_blank" rel="noopener" class="rag-open-page">'
                  f"open the PDF at page {page}</a>")
    heading = f"[{n}] {citation.doc_title}" + (f" · p. {page}" if page is not None else "")
    row = row_at(citation.doc, text, start)
    if row is not None:
        heading += f" · {row.place}"
    return (
        f"<h3>{html.escape(heading)}</h3>"
        f"<p><code>{html.escape(citation.doc)}</code>, {where}{opener}</p>"
        + (render_row(row) if row is not None else "") +
        f'<div class="rag-context" data-source="{html.escape(source_id)}">{html.escape(before)}'
        f'<mark id="cited-span">{html.escape(text[start:end])}</mark>{html.escape(after)}</div>'
    )


def render_row(row: Row) -> str:
    """A spreadsheet's cited row as a small table: its column headers over its values."""
    headers = "".join(f"<th>{html.escape(header)}</th>" for header, _ in row.cells)
    values = "".join(f"<td>{html.escape(value)}</td>" for _, value in row.cells)
    return (f'<table class="rag-row"><caption>{html.escape(row.place)}</caption>'
            f"<thead><tr>{headers}</tr></thead><tbody><tr>{values}</tr></tbody></table>")


def conversation_choices(conversations: list[ConversationSummary]) -> list[tuple[str, str]]:
    """The saved-conversations list: (what it shows, the conversation's id), the latest first."""
    def label(c: ConversationSummary) -> str:
        answers = "1 answer" if c.answers == 1 else f"{c.answers} answers"
        return f"{c.title} · {answers} · {time.strftime('%Y-%m-%d %H:%M', time.localtime(c.updated))}"
    return [(label(c), c.id) for c in conversations]


def reopened(saved: list[SavedTurn]) -> tuple[list[dict], list[Answer], dict[int, str]]:
    """A kept conversation as the page holds one: its messages (each question, then its answer rendered with
    its sources), the answers (what the side panel and follow-ups read), and each answer's place -> its id."""
    messages, ids = [], {}
    for n, turn in enumerate(saved):
        messages.append({"role": "user", "content": html.escape(turn.answer.question)})
        ids[len(messages)] = turn.answer_id
        messages.append({"role": "assistant", "content": render_answer(turn.answer, n)})
    return messages, [turn.answer for turn in saved], ids


def file_url(docs_dir: Path, name: str) -> str:
    """The chat server's address of document ``name`` (Gradio serves files of the documents folder, and only
    those: ``launch``'s ``allowed_paths``)."""
    return "/gradio_api/file=" + quote(str((docs_dir / name).resolve()))


def documents_table(assistant: Assistant) -> list[list[object]]:
    index = assistant.index
    return [[name, doc.title, len(doc.page_starts) or "", index.chunk_count(name)]
            for name, doc in sorted(index.documents.items())]


def build_app(assistant: Assistant, auth_on: bool = False) -> gr.Blocks:
    settings = assistant.settings
    removed = removed_dir(settings)
    records = Records(settings.records_path)  # each answer and conversation kept; feedback names the answers
    kept_note = (f"The file of saved conversations could not be read; it was set aside as "
                 f"`{records.set_aside}` and a new one started." if records.set_aside else "")

    def login(request: gr.Request | None) -> str | None:
        return request.username if request else None

    def show_question(message: str, chat: list):
        # Shown at once, outside the queue, so a waiting person sees their question above the queue position. The
        # box stays closed until the answer is complete: a second question would otherwise join the first's bubble.
        waiting = gr.update(value="", interactive=False, placeholder="Wait for the answer to finish…")
        return [*chat, {"role": "user", "content": html.escape(message)}], waiting, message

    def respond(message: str, chat: list, turns: list, top_k: int, answer_mode: str, show_scores: bool,
                within: list[str] | None, ids: dict, conversation: str, request: gr.Request):
        options = settings.with_changes(top_k=int(top_k), answer_mode=answer_mode)
        scope = Scope(tuple(within or ()))  # names, folders or globs typed in; none: every document
        history = [Turn(a.question, a.text, a.abstained) for a in turns]
        preparation = assistant.prepare()
        while not preparation.done:  # the first question on a fresh machine waits while the model is converted
            waiting = {"role": "assistant", "content": render_preparation(preparation)}
            yield [*chat, waiting], turns, ids, conversation
            time.sleep(0.5)
        try:
            stream = assistant.stream(message, history, options, scope)
        except (QuestionError, GeneratorError) as exc:  # a question it cannot take; a model that did not load
            warning = {"role": "assistant", "content": f"⚠️ {html.escape(str(exc))}"}
            yield [*chat, warning], turns, ids, conversation
            return
        if stream.hits:
            yield [*chat, {"role": "assistant", "content": render_reading(stream.hits)}], turns, ids, conversation
        text = ""
        try:
            for piece in stream:
                text += piece
                so_far = {"role": "assistant", "content": html.escape(text) + " ▌"}
                yield [*chat, so_far], turns, ids, conversation
        finally:
            # Gradio closes this generator when the page is closed or the answer stopped: the model stops too
            # (at its next token) instead of finishing a reply nobody reads while the next person waits.
            stream.close()
        answer = stream.answer
        turns = [*turns, answer]
        rendered = render_answer(answer, len(turns) - 1, show_scores)
        answer_id = f"page-{uuid.uuid4().hex}"
        # The first answer starts a conversation; one deleted meanwhile (in another tab) starts again with this one.
        kept_in = conversation or uuid.uuid4().hex
        try:
            records.remember(answer_id, answer, model_label(settings), dataclasses.asdict(options), login(request),
                             kept_in)
            ids = {**ids, len(chat): answer_id}  # the answer's place in the conversation: what feedback names
            conversation = kept_in
        except (sqlite3.Error, UnknownConversation) as exc:  # shown all the same; only keeping it is lost
            log.warning("could not keep answer %s: %s", answer_id, exc)
        yield [*chat, {"role": "assistant", "content": rendered}], turns, ids, conversation

    def rate(data: gr.LikeData, ids: dict, request: gr.Request):
        """A thumbs up or down on an answer of the conversation."""
        at = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        if at not in ids or data.liked not in (True, False):
            return "Feedback is kept for answers only."
        records.add_feedback(ids[at], "up" if data.liked else "down", owner=login(request))
        return "Thanks: kept. A correction below makes it a test question."

    def correct(correction: str, unanswerable: bool, ids: dict, request: gr.Request):
        """The right answer to the last question, or that the documents do not say it."""
        if not ids:
            return "Ask something first.", gr.update(), gr.update()
        if not correction.strip() and not unanswerable:
            return "Write the right answer, or tick that the documents don't say.", gr.update(), gr.update()
        records.add_feedback(ids[max(ids)], "down", correction, unanswerable,
                             owner=login(request))
        return "Thanks: kept as a test question (rag feedback export).", "", False

    def list_saved(conversation: str, request: gr.Request):
        """The saved conversations of whoever is logged in, the open one chosen."""
        choices = conversation_choices(records.conversations(login(request)))
        return gr.update(choices=choices, value=conversation if conversation else None)

    def open_saved(conversation: str | None, request: gr.Request):
        """Reopen a saved conversation: its questions and answers with their sources, ready for a follow-up."""
        try:
            messages, answers, ids = reopened(records.conversation(conversation or "", login(request)))
        except UnknownConversation:
            return ([], [], {}, "", gr.update(visible=False), "That conversation is no longer kept.",
                    list_saved("", request))
        return messages, answers, ids, conversation, gr.update(visible=False), "", gr.update()

    def rename_saved(conversation: str, title: str, request: gr.Request):
        if not conversation:
            return "Ask something first: a conversation is kept from its first answer.", gr.update(), gr.update()
        try:
            records.rename_conversation(conversation, title, login(request))
        except ValueError:
            return "Write the new name first.", gr.update(), gr.update()
        except UnknownConversation:
            return "That conversation is no longer kept.", gr.update(), list_saved("", request)
        return "Renamed.", "", list_saved(conversation, request)

    def delete_saved(conversation: str, request: gr.Request):
        if not conversation:
            return ("Open a saved conversation to delete it.", gr.update(), gr.update(), gr.update(), gr.update(),
                    gr.update(), gr.update())
        try:
            records.delete_conversation(conversation, login(request))
        except UnknownConversation:
            pass  # gone already: the page catches up below
        return "Deleted.", [], [], {}, "", gr.update(visible=False), list_saved("", request)

    def open_source(request: str, turns: list):
        match = re.fullmatch(r"source-(\d+)-(\d+)", request or "")
        if not match or int(match.group(1)) >= len(turns):
            return gr.update(visible=True), "<p>That source is no longer available.</p>"
        return gr.update(visible=True), render_source(
            assistant, turns[int(match.group(1))], int(match.group(2)), request
        )

    def add_files(files: list | None, progress=gr.Progress()):
        if not files:
            return "Choose files first.", documents_table(assistant), gr.update(choices=_names()), gr.update()
        progress(0.1, desc="copying files")
        refused = []
        for file in files:
            uploaded = Path(_path_of(file))
            if reason := accept_upload(uploaded, settings.docs_dir, removed, max_file_mb=settings.max_file_mb):
                refused.append(reason)
            uploaded.unlink(missing_ok=True)  # Gradio's upload cache would otherwise keep (and serve) a copy
        progress(0.3, desc="indexing new documents")
        started = time.perf_counter()
        report = assistant.refresh()
        progress(1.0, desc="done")
        lines = [f"Indexed in {time.perf_counter() - started:.1f} s: {report.summary()}"]
        lines += [f"Refused: {reason}" for reason in refused]
        return ("\n".join(lines), documents_table(assistant), gr.update(choices=_names(), value=None),
                gr.update(choices=_names()))

    def remove_file(name: str | None):
        if not name or name not in assistant.index.documents:
            return ("Choose a document to remove.", documents_table(assistant), gr.update(choices=_names()),
                    gr.update())
        source = (settings.docs_dir / name).resolve()
        if settings.docs_dir.resolve() not in source.parents:
            return "That file is outside the documents folder.", documents_table(assistant), gr.update(), gr.update()
        removed.mkdir(parents=True, exist_ok=True)
        # Kept aside, not deleted: removing from the assistant should not destroy the user's only copy.
        if source.exists():
            shutil.move(source, removed / f"{time.strftime('%Y%m%d-%H%M%S')}-{source.name}")
        report = assistant.refresh()
        message = f"Removed {name} (moved to {removed}). {report.summary().splitlines()[0]}"
        return message, documents_table(assistant), gr.update(choices=_names(), value=None), gr.update(choices=_names())

    def _names() -> list[str]:
        return sorted(assistant.index.documents)

    def api_chat(message: str) -> str:
        """One question, no conversation: the answer as HTML with its sources (for scripts and load tests)."""
        try:
            answer = assistant.ask(message)
        except QuestionError as exc:
            return f"⚠️ {exc}"
        return render_answer(answer, 0)

    with gr.Blocks(title="Ask your documents") as app:
        turns = gr.State([])
        answer_ids = gr.State({})  # the place of each answer in the conversation -> its id in the records
        conversation = gr.State("")  # the id the conversation is kept under; "" until its first answer
        asked = gr.State("")  # the question being answered, once it has left the question box
        gr.Markdown(
            f"## Ask your documents\nAnswers come only from the documents in `{settings.docs_dir}`; each cites its "
            "sources. Click a source to see it in its document."
        )
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label="Conversation", height=520, sanitize_html=True, elem_id="chat",
                                     buttons=["copy"])
                question = gr.Textbox(placeholder=QUESTION_PLACEHOLDER,
                                      show_label=False, elem_id="question", autofocus=True)
                within = gr.Dropdown(_names(), value=[], multiselect=True, allow_custom_value=True,
                                     label="Ask within (none chosen: every document)", elem_id="within",
                                     info="documents, or a folder or pattern typed in: reports/, *.xlsx")
                with gr.Row():
                    clear = gr.Button("New conversation", size="sm", elem_id="clear")
                with gr.Accordion("Correct the last answer", open=False, elem_id="feedback"):
                    correction = gr.Textbox(label="The right answer", elem_id="correction",
                                            placeholder="as the documents give it")
                    unanswerable = gr.Checkbox(label="The documents don't say", elem_id="not-in-documents")
                    send_correction = gr.Button("Send", size="sm", elem_id="send-correction")
                feedback_status = gr.Markdown(elem_id="feedback-status")
                with gr.Accordion("Settings", open=False, elem_id="settings"):
                    top_k = gr.Slider(1, min(8, settings.candidates), value=settings.top_k, step=1,
                                      label="Passages given to the model", elem_id="passages")
                    quoting = settings.engine == "transformers"  # constrained decoding is that engine's alone
                    answer_mode = gr.Radio(["free", "quote"], value=settings.answer_mode, label="Answer mode",
                                           interactive=quoting,
                                           info="free: the model words the answer; quote: copied verbatim"
                                           + ("" if quoting else " (needs --engine transformers)"))
                    show_scores = gr.Checkbox(value=False, label="Show retrieval scores", elem_id="show-scores")
                    gr.Markdown(model_line(assistant), elem_id="model-line")
            with gr.Column(scale=2):
                with gr.Column(visible=False, elem_id="source-panel") as source_panel:
                    source_view = gr.HTML()
                    close_source = gr.Button("Close", size="sm")
                with gr.Accordion("Saved conversations", open=True, elem_id="saved"):
                    saved = gr.Dropdown([], value=None, label="Reopen", elem_id="conversations",
                                        info="each kept from its first answer" + (", per login" if auth_on else ""))
                    with gr.Row():
                        new_title = gr.Textbox(show_label=False, placeholder="a new name for this conversation",
                                               elem_id="conversation-title", scale=4)
                        rename = gr.Button("Rename", size="sm", elem_id="rename-conversation", scale=1, min_width=70)
                        delete = gr.Button("Delete", size="sm", variant="stop", elem_id="delete-conversation",
                                           scale=1, min_width=70)
                    saved_status = gr.Markdown(kept_note, elem_id="saved-status")
                with gr.Accordion("Documents", open=True):
                    documents = gr.Dataframe(
                        headers=["file", "title", "pages", "chunks"], value=documents_table(assistant),
                        interactive=False, elem_id="documents", wrap=True,
                    )
                    uploads = gr.File(
                        label=f"Add {', '.join(SUPPORTED_SUFFIXES)} files (up to {MAX_UPLOAD_BYTES // 2**20} MB each)",
                        file_count="multiple", file_types=sorted(SUPPORTED_SUFFIXES), elem_id="upload",
                    )
                    add = gr.Button("Add to the documents", elem_id="add-documents")
                    with gr.Row():
                        to_remove = gr.Dropdown(_names(), label="Remove a document",
                                                elem_id="remove-choice")
                        remove = gr.Button("Remove", size="sm", elem_id="remove-document")
                    status = gr.Textbox(label="Indexing", interactive=False, lines=3, elem_id="index-status")
        source_request = gr.Textbox(visible="hidden", elem_id="source-request")
        source_open = gr.Button(visible="hidden", elem_id="source-open")

        question.submit(
            show_question, [question, chatbot], [chatbot, question, asked], queue=False, api_visibility="private"
        ).then(
            respond, [asked, chatbot, turns, top_k, answer_mode, show_scores, within, answer_ids, conversation],
            [chatbot, turns, answer_ids, conversation],
            concurrency_limit=1, concurrency_id="generator", api_visibility="private",
        ).then(
            lambda: gr.update(interactive=True, placeholder=QUESTION_PLACEHOLDER), None, question, queue=False,
            api_visibility="private",
        ).then(list_saved, conversation, saved, queue=False, api_visibility="private")
        # A new conversation: the one on the page stays kept and listed.
        clear.click(lambda: ([], [], {}, "", gr.update(visible=False), gr.update(value=None)), None,
                    [chatbot, turns, answer_ids, conversation, source_panel, saved], api_visibility="private")
        chatbot.clear(lambda: ([], {}, "", gr.update(visible=False), gr.update(value=None)), None,
                      [turns, answer_ids, conversation, source_panel, saved], api_visibility="private")
        saved.input(open_saved, saved, [chatbot, turns, answer_ids, conversation, source_panel, saved_status, saved],
                    api_visibility="private")
        rename.click(rename_saved, [conversation, new_title], [saved_status, new_title, saved],
                     api_visibility="private")
        delete.click(delete_saved, conversation,
                     [saved_status, chatbot, turns, answer_ids, conversation, source_panel, saved],
                     api_visibility="private")
        app.load(list_saved, conversation, saved, api_visibility="private")
        chatbot.like(rate, answer_ids, feedback_status, api_visibility="private")
        send_correction.click(correct, [correction, unanswerable, answer_ids],
                              [feedback_status, correction, unanswerable], api_visibility="private")
        source_open.click(open_source, [source_request, turns], [source_panel, source_view], api_visibility="private")
        close_source.click(lambda: gr.update(visible=False), None, source_panel, api_visibility="private")
        add.click(add_files, uploads, [status, documents, to_remove, within], concurrency_limit=1,
                  concurrency_id="generator", api_visibility="private").then(lambda: None, None, uploads)
        remove.click(remove_file, to_remove, [status, documents, to_remove, within], concurrency_limit=1,
                     concurrency_id="generator", api_visibility="private")
        gr.api(api_chat, api_name="chat", concurrency_limit=1, concurrency_id="generator")
        app.load(None, js=_SOURCE_CLICK_JS)
    return app


def _path_of(file: object) -> str:
    return file if isinstance(file, str) else getattr(file, "name", str(file))


def launch(
    assistant: Assistant, host: str = "127.0.0.1", port: int = 7860, auth: tuple[str, str] | None = None
) -> None:
    """Serve the chat until interrupted; binds only ``host`` (loopback unless the user asks otherwise).

    Only the documents folder may be served as files; ``share`` is never turned on; requests from other sites'
    pages are refused.
    """
    app = build_app(assistant, auth_on=auth is not None)
    app.queue(max_size=QUEUE_SIZE).launch(
        server_name=host,
        server_port=port,
        share=False,
        auth=auth,
        allowed_paths=[str(assistant.settings.docs_dir.resolve())],
        blocked_paths=[str(assistant.settings.index_dir.resolve()), str(assistant.settings.cache_dir.resolve())],
        max_file_size=MAX_UPLOAD_BYTES,
        footer_links=[],
        css=_CSS,
        ssr_mode=False,  # no Node.js server beside Python: one process, one port
        app_kwargs={"middleware": [Middleware(SameOriginOnly, hosts=allowed_hosts(host)), Middleware(LoginThrottle)]},
    )
