"""``rag serve``: the assistant as an HTTP API in the OpenAI schema, for tools of the user's own (Open WebUI, any
OpenAI client, scripts), built on the one ``Assistant``.

- ``POST /v1/chat/completions``: the last user message is the question; the earlier ones are the conversation, used
  for follow-ups as the chat page uses them. The answer keeps its ``[n]`` markers; the message (and, streamed,
  the final chunk) carries ``citations`` and ``verdicts``. An abstention is a normal message whose citations are
  empty and whose verdicts say which check withheld the answer.
- ``GET /v1/models``, ``POST /v1/search``, ``GET|POST /v1/documents``; OpenAPI docs at ``/docs``.
- A chat or search request may name ``"documents"`` (names, folders, globs) and ``"where"`` (``modified_after``,
  ``modified_before``): it is then answered from those documents alone.

A streamed answer is sent once the checks have passed it: its text is verified as a whole, and a client shows
every piece it receives, so pieces sent earlier could show an answer the checks then withhold.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
import logging
import secrets
import sqlite3
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import anyio
from fastapi import Depends, FastAPI, File, HTTPException, Request, UploadFile
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as ASGIScope

from rag.answering.conversation import Turn
from rag.answering.refusals import is_abstention
from rag.assistant import Assistant, QuestionError
from rag.interfaces.web import (
    MAX_UPLOAD_BYTES,
    SameOriginOnly,
    accept_upload,
    allowed_hosts,
    model_label,
    removed_dir,
)
from rag.models.base import GeneratorError
from rag.records.store import Records, UnknownAnswer
from rag.types import Answer, Scope

log = logging.getLogger(__name__)

MODEL_ID = "rag-assistant"
QUEUE_SIZE = 16  # requests waiting for the generator beyond this get 503 with Retry-After
MAX_JSON_BYTES = 1 << 20  # a request body other than an upload
RETRY_AFTER_S = 10
STREAM_WORDS = 4  # words a streamed chunk carries


class Message(BaseModel):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict] | None = None

    def text(self) -> str:
        """The message's text (OpenAI's list-of-parts form joined)."""
        if isinstance(self.content, list):
            return " ".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")
        return self.content or ""


class Where(BaseModel):
    """A modification-date range (ISO dates or date-times; either end may be left open)."""

    modified_after: str | None = None
    modified_before: str | None = None


class Scoped(BaseModel):
    """What limits a request to some documents (``rag.types.Scope``): names, folders or glob patterns, and a
    modification-date range. Neither: every document."""

    documents: list[str] | None = None
    where: Where | None = None

    def scope(self) -> Scope | None:
        """The scope asked for, or None; impossible dates are refused with 400 (``QuestionError``)."""
        if not self.documents and self.where is None:
            return None
        where = self.where or Where()
        return Scope(tuple(self.documents or ()), where.modified_after, where.modified_before)


class ChatRequest(Scoped):
    model: str = MODEL_ID
    messages: list[Message] = Field(min_length=1)
    stream: bool = False


class SearchRequest(Scoped):
    query: str
    k: int = Field(default=5, ge=1, le=50)


class FeedbackRequest(BaseModel):
    """A person's word on an answer: its chat completion's ``id``, thumbs up or down, and optionally the right
    answer or that the documents do not say."""

    completion_id: str
    rating: Literal["up", "down"]
    correction: str | None = Field(default=None, max_length=2000)
    unanswerable: bool = False


class ClientGone(Exception):
    """The client closed its connection: its request gives up its place, or its answer stops being written."""


class Gate:
    """One generation at a time, first come first served, and at most ``size`` requests waiting; the rest are
    refused at once (503). A waiting request whose client has left gives up its place at once."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._changed = threading.Condition()
        self._queue: deque[object] = deque()  # the waiting requests' tickets, in order of arrival
        self._running = False

    @property
    def waiting(self) -> int:
        return len(self._queue)

    @property
    def running(self) -> bool:
        return self._running

    @contextmanager
    def place(self, gone: threading.Event | None = None) -> Iterator[None]:
        """Wait for this request's turn, then hold the generator; raises ``ClientGone`` once ``gone`` is set
        while waiting."""
        ticket = object()
        with self._changed:
            if (self._running or self._queue) and len(self._queue) >= self.size:
                raise HTTPException(503, "too many questions waiting; try again shortly",
                                    headers={"Retry-After": str(RETRY_AFTER_S)})
            self._queue.append(ticket)
            try:
                while self._running or self._queue[0] is not ticket:
                    if gone is not None and gone.is_set():
                        raise ClientGone
                    self._changed.wait(timeout=0.1)
            finally:
                self._queue.remove(ticket)
                self._changed.notify_all()
            self._running = True
        try:
            yield
        finally:
            with self._changed:
                self._running = False
                self._changed.notify_all()


def conversation(messages: list[Message]) -> tuple[str, list[Turn]]:
    """The question (the last user message) and the earlier turns as (question, answer) pairs, oldest first.

    >>> q, turns = conversation([Message(role="user", content="When did it open?"),
    ...                          Message(role="assistant", content="1998 [1]"),
    ...                          Message(role="user", content="Who built it?")])
    >>> q, [(t.question, t.answer) for t in turns]
    ('Who built it?', [('When did it open?', '1998 [1]')])
    """
    if messages[-1].role != "user":
        raise HTTPException(400, "the last message must be the user's question")
    turns: list[Turn] = []
    asked: str | None = None
    for message in messages[:-1]:
        if message.role == "user":
            asked = message.text()
        elif message.role == "assistant" and asked is not None:
            answer = message.text()
            turns.append(Turn(asked, answer, is_abstention(answer)))
            asked = None
    return messages[-1].text(), turns


def message_of(answer: Answer) -> dict:
    """The OpenAI ``message`` of an answer, with its citations and the verdicts of the enforced checks; an
    abstention's ``closest`` is the sentence of the documents nearest the question (or null)."""
    payload = answer.to_dict()
    return {"role": "assistant", "content": answer.text, "citations": payload["citations"],
            "verdicts": payload["verdicts"], "abstained": answer.abstained, "closest": payload["closest"]}


def build_api(assistant: Assistant, auth: tuple[str, str] | None = None, queue_size: int = QUEUE_SIZE,
              host: str = "127.0.0.1") -> FastAPI:
    """The FastAPI app of ``rag serve`` over ``assistant``, listening on ``host``; with ``auth`` every route but
    ``/health`` needs the login (the API's own pages ``/docs``, ``/redoc`` and ``/openapi.json`` too), as HTTP
    Basic or as an OpenAI API key ``USER:PASS``."""
    gate = Gate(queue_size)
    records = Records(assistant.settings.records_path)
    owner = auth[0] if auth else None
    app = FastAPI(
        title="rag-assistant", summary="Cited answers from your documents, in the OpenAI schema",
        middleware=[Middleware(SameOriginOnly, hosts=allowed_hosts(host)),
                    Middleware(BodyLimit, limit=MAX_JSON_BYTES)],
        dependencies=[Depends(_authenticate(auth))],
        # FastAPI's own documentation routes skip the app's dependencies: served below as routes that have them.
        docs_url=None, redoc_url=None, openapi_url=None,
    )

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_schema():
        return app.openapi()

    @app.get("/docs", include_in_schema=False)
    def swagger_page():
        return get_swagger_ui_html(openapi_url="/openapi.json", title="rag-assistant API")

    @app.get("/redoc", include_in_schema=False)
    def redoc_page():
        return get_redoc_html(openapi_url="/openapi.json", title="rag-assistant API")

    def answer_for(request: ChatRequest, gone: threading.Event) -> Answer:
        """The answer, computed in its turn; stops waiting, or writing, once ``gone`` is set."""
        question, history = conversation(request.messages)
        with gate.place(gone):
            try:
                stream = assistant.stream(question, history, scope=request.scope())
                for _ in stream:
                    if gone.is_set():
                        stream.close()  # the model stops at its next token
                        raise ClientGone
                return stream.answer
            except QuestionError as exc:
                raise HTTPException(400, str(exc)) from exc
            except GeneratorError as exc:
                raise HTTPException(503, str(exc)) from exc

    async def answered(request: ChatRequest, http: Request) -> Answer:
        """``answer_for`` in a worker thread, told when the client disconnects (checked every 0.2 s)."""
        gone = threading.Event()
        work = asyncio.ensure_future(anyio.to_thread.run_sync(answer_for, request, gone))
        while not work.done():
            await asyncio.wait({work}, timeout=0.2)
            if not work.done() and await http.is_disconnected():
                gone.set()
        return await work

    @app.post("/v1/chat/completions")
    async def chat_completions(request: ChatRequest, http: Request):
        started, completion_id = int(time.time()), f"chatcmpl-{uuid.uuid4().hex}"
        try:
            answer = await answered(request, http)
        except ClientGone:  # nobody is left to read a response; 499 as nginx logs it
            return Response(status_code=499)
        # Kept so that feedback can name it by its id; the answer is served even if the records cannot be written.
        try:
            await anyio.to_thread.run_sync(lambda: records.remember(
                completion_id, answer, model_label(assistant.settings), _settings_of(assistant), owner))
        except sqlite3.Error as exc:
            log.warning("could not keep answer %s for feedback: %s", completion_id, exc)
        if not request.stream:
            return {"id": completion_id, "object": "chat.completion", "created": started, "model": MODEL_ID,
                    "choices": [{"index": 0, "message": message_of(answer), "finish_reason": "stop"}]}
        return StreamingResponse(_chunks(answer, completion_id, started), media_type="text/event-stream")

    @app.post("/v1/feedback")
    def feedback(request: FeedbackRequest):
        """Thumbs up or down on an answer, with an optional correction: kept with the answer, its citations,
        verdicts, model and settings; `rag feedback export` makes gold questions of them."""
        try:
            given = records.add_feedback(request.completion_id, request.rating, request.correction,
                                         request.unanswerable, owner)
        except UnknownAnswer as exc:
            raise HTTPException(404, f"no answer with id {request.completion_id!r} was given here") from exc
        return {"id": given.id, "completion_id": given.answer_id, "rating": given.rating,
                "becomes_gold_item": given.gold_item() is not None}

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "local"}]}

    @app.post("/v1/search")
    def search(request: SearchRequest):
        try:
            hits = assistant.retrieve(request.query, request.k, request.scope())
        except QuestionError as exc:
            raise HTTPException(400, str(exc)) from exc
        return {"results": [{"doc": h.chunk.doc_name, "chunk_id": h.chunk.id, "text": h.chunk.text,
                             "start": h.chunk.start, "end": h.chunk.end, "page": h.chunk.page, "score": h.score}
                            for h in hits]}

    @app.get("/v1/documents")
    def documents():
        index = assistant.index
        return {"documents": [{"name": name, "title": doc.title, "pages": len(doc.page_starts) or None,
                               "chunks": index.chunk_count(name)}
                              for name, doc in sorted(index.documents.items())]}

    @app.post("/v1/documents")
    def upload(files: list[UploadFile] = File(...)):  # noqa: B008 - FastAPI's way of declaring a form field
        refused = []
        settings = assistant.settings
        with tempfile.TemporaryDirectory() as scratch:
            for number, file in enumerate(files):
                path = Path(scratch) / f"upload-{number}"  # the client's name is checked by accept_upload
                with open(path, "wb") as out:
                    while block := file.file.read(1 << 20):
                        out.write(block)
                if reason := accept_upload(path, settings.docs_dir, removed_dir(settings),
                                           name=file.filename or "upload.txt", max_file_mb=settings.max_file_mb):
                    refused.append(reason)
        with gate.place():
            report = assistant.refresh()
        return {"indexed": report.summary(), "refused": refused}

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.get("/v1/queue")
    def queue():
        # How busy the one generator is, before asking (behind the login: it says how much others ask).
        return {"answering": gate.running, "waiting": gate.waiting, "places": gate.size}

    @app.exception_handler(HTTPException)
    def error(request: Request, exc: HTTPException):
        # The OpenAI error shape, which its clients read.
        return JSONResponse({"error": {"message": exc.detail, "type": "invalid_request_error"}},
                            status_code=exc.status_code, headers=exc.headers)

    return app


def _chunks(answer: Answer, completion_id: str, created: int) -> Iterator[str]:
    """Server-sent events of a finished answer: its text a few words at a time, then a final chunk with the
    citations and verdicts, then ``[DONE]``."""

    def event(delta: dict, finish: str | None = None, **extra: object) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": MODEL_ID,
                "choices": [choice], **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield event({"role": "assistant", "content": ""})
    words = answer.text.split(" ")
    for i in range(0, len(words), STREAM_WORDS):
        piece = " ".join(words[i : i + STREAM_WORDS])
        yield event({"content": piece if i == 0 else " " + piece})
    final = message_of(answer)
    yield event({}, "stop", citations=final["citations"], verdicts=final["verdicts"], abstained=answer.abstained,
                closest=final["closest"])
    yield "data: [DONE]\n\n"


def _settings_of(assistant: Assistant) -> dict:
    """The settings an answer was made with, as recorded beside it."""
    return dataclasses.asdict(assistant.settings)


def _authenticate(auth: tuple[str, str] | None):
    expected = f"{auth[0]}:{auth[1]}" if auth else None

    def check(request: Request) -> None:
        if expected is None or request.url.path == "/health":
            return
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        given = value.strip()
        if scheme.lower() == "basic":
            try:
                given = base64.b64decode(given, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                given = ""
        elif scheme.lower() != "bearer":
            given = ""
        if not secrets.compare_digest(given.encode(), expected.encode()):
            raise HTTPException(401, "login required (--auth)", headers={"WWW-Authenticate": 'Basic realm="rag"'})

    return check


class BodyLimit:
    """Refuses (413) a request whose declared body is over ``limit`` bytes; uploads may be as large as the chat
    page accepts (``MAX_UPLOAD_BYTES`` a file, a few files at once)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            limit = 8 * MAX_UPLOAD_BYTES if scope["path"] == "/v1/documents" else self.limit
            length = headers.get("content-length", "")
            if (length.isdigit() and int(length) > limit) or ("content-length" not in headers
                                                                and headers.get("transfer-encoding") == "chunked"):
                response = JSONResponse({"error": {"message": f"request body over {limit} bytes",
                                                   "type": "invalid_request_error"}}, status_code=413)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def serve(assistant: Assistant, host: str = "127.0.0.1", port: int = 8000,
          auth: tuple[str, str] | None = None) -> None:
    """Serve the API until interrupted; binds only ``host`` (loopback unless the user asks otherwise)."""
    import uvicorn

    uvicorn.run(build_api(assistant, auth, host=host), host=host, port=port, log_level="warning")
