"""What every web way in shares (the chat page, the HTTP API): login from --auth, the same-origin rule, and uploads
checked before they reach the documents folder."""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from rag.config import Settings
from rag.ingest.loaders import DEFAULT_MAX_FILE_MB, SUPPORTED_SUFFIXES, UnreadableFile, load_file
from rag.words import printable

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
AUTH_ENV = "RAG_CHAT_AUTH"  # USER:PASS, the same as --auth


def accept_upload(path: Path, docs_dir: Path, removed_dir: Path, *, name: str | None = None,
                  max_file_mb: int = DEFAULT_MAX_FILE_MB) -> str | None:
    """Copy an uploaded file into ``docs_dir`` under ``name`` (the client's, default ``path``'s) made one safe
    file name; returns why it was refused, or None when it was accepted.

    A file the indexer could not read is refused here, so it never lands in the documents folder. A file of the
    same name already there is moved to ``removed_dir`` with a timestamp first: an upload never destroys a file.
    """
    name = safe_name(path.name if name is None else name)
    if Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
        return f"{printable(name)}: only {', '.join(sorted(SUPPORTED_SUFFIXES))} files can be added"
    size = path.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        return f"{printable(name)}: {size / 2**20:.1f} MB is over the {MAX_UPLOAD_BYTES // 2**20} MB limit"
    if size == 0:
        return f"{printable(name)}: the file is empty"
    with tempfile.TemporaryDirectory(prefix=".upload-", dir=docs_dir) as scratch:
        staging = Path(scratch) / name  # on the same file system, so the move below is one rename
        shutil.copyfile(path, staging)
        try:
            load_file(staging, name, max_file_mb)  # scanned pages are read later, at indexing
        except UnreadableFile as exc:
            return f"{printable(name)}: {exc}"
        target = docs_dir / name
        if target.exists() and not filecmp.cmp(target, staging, shallow=False):
            removed_dir.mkdir(parents=True, exist_ok=True)
            shutil.move(target, removed_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}")
        os.replace(staging, target)  # a half-copied file is never indexed
    return None


def removed_dir(settings: Settings) -> Path:
    """Where files taken out of the documents folder (removed, or replaced by an upload) are kept."""
    return settings.index_dir / "removed"


def model_label(settings: Settings) -> str:
    """The answering model as kept beside each answer given (rag.records): the packaged or named model and its
    engine, or the model server. Read from the settings: an answer the relevance check gave loads no model."""
    if settings.generator_url:
        return f"{settings.generator_api_model or 'served model'} at {settings.generator_url}"
    return f"{settings.generator_model} ({settings.engine})"


def safe_name(name: str) -> str:
    """One plain file name: the last part of any path the client sent, ordinary characters only (a NUL, a line
    break or a right-to-left mark becomes "_"), no leading or trailing dots or spaces, its suffix kept.

    >>> [safe_name(n) for n in ["../../etc/passwd", "..txt", "foo/..", "a\\x00b.txt", "notes\\u202etxt.md"]]
    ['passwd', 'upload.txt', 'upload', 'a_b.txt', 'notes_txt.md']
    """
    base = re.sub(r"[^\w.\- ]", "_", name.replace("\\", "/").rsplit("/", 1)[-1])
    suffix = Path(base).suffix if base.strip(" .") else ""
    stem = base[: len(base) - len(suffix)].strip(" .")
    return (stem or "upload") + suffix


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """``USER:PASS`` (from --auth or $RAG_CHAT_AUTH) as a pair; None when not given."""
    value = value or os.environ.get(AUTH_ENV)
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ValueError(f"--auth / ${AUTH_ENV} must look like USER:PASS")
    return user, password


LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1", "[::1]"}


def allowed_hosts(listening: str) -> frozenset[str] | None:
    """The names a request's ``Host`` may give for a server listening on ``listening``: loopback names for a
    loopback address, else that address and this machine's names; None (any) for all addresses (0.0.0.0)."""
    if listening in ("", "0.0.0.0", "::", "[::]"):
        return None
    if listening in LOOPBACK_NAMES or listening.startswith("127."):
        return frozenset(LOOPBACK_NAMES | {listening})
    return frozenset({listening, socket.gethostname(), socket.getfqdn()})


class SameOriginOnly:
    """Refuses (403) any HTTP request whose ``Origin`` header names another site, or ``null``, and (421) one whose
    ``Host`` is not a name this server listens on.

    Browsers attach ``Origin`` to cross-site requests; Gradio's own CORS handling only withholds the response
    headers, so a page on another site could still make a visitor's browser upload files or ask questions here.
    Requests without ``Origin`` (scripts, ``gradio_client``) are not cross-site requests and pass. A page whose
    own name an attacker re-points at 127.0.0.1 (DNS rebinding) is same-origin to the browser; its requests still
    carry that name as ``Host``, which ``hosts`` does not hold.
    """

    def __init__(self, app: ASGIApp, hosts: frozenset[str] | None = frozenset(LOOPBACK_NAMES)) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            origin, host = headers.get("origin"), headers.get("host", "")
            refusal = None
            if self.hosts is not None and (urlsplit(f"//{host}").hostname or "") not in self.hosts:
                refusal = ("Unknown host: this server answers to " + ", ".join(sorted(self.hosts)), 421)
            elif origin is not None and not same_origin(origin, host):
                refusal = ("Cross-site request refused", 403)
            if refusal is not None:
                if scope["type"] == "http":
                    await PlainTextResponse(refusal[0], status_code=refusal[1])(scope, receive, send)
                else:
                    await send({"type": "websocket.close", "code": 1008})
                return
        await self.app(scope, receive, send)


class LoginThrottle:
    """Refuses (429, with ``Retry-After``) a client's logins for ``window_s`` seconds once it has failed
    ``attempts`` times within that window, so a password cannot be guessed at the speed of the network."""

    def __init__(self, app: ASGIApp, path: str = "/login", attempts: int = 5, window_s: float = 60.0) -> None:
        self.app = app
        self.path, self.attempts, self.window_s = path, attempts, window_s
        self._failures: dict[str, list[float]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith(self.path):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("?", 0))[0]
        now = time.monotonic()
        recent = [t for t in self._failures.get(client, []) if now - t < self.window_s]
        self._failures[client] = recent
        if len(recent) >= self.attempts:
            wait = int(self.window_s - (now - recent[0])) + 1
            await PlainTextResponse(f"Too many failed logins; try again in {wait} s", status_code=429,
                                    headers={"Retry-After": str(wait)})(scope, receive, send)
            return

        async def noting_failure(message: dict) -> None:
            if message["type"] == "http.response.start" and message["status"] in (400, 401, 403):
                self._failures.setdefault(client, []).append(time.monotonic())
            await send(message)

        await self.app(scope, receive, noting_failure)


def same_origin(origin: str, host: str) -> bool:
    """Whether a browser's ``Origin`` is this server's own ``Host`` (loopback names count as one).

    >>> same_origin("http://127.0.0.1:7860", "127.0.0.1:7860"), same_origin("null", "127.0.0.1:7860")
    (True, False)
    >>> same_origin("http://localhost:7860", "127.0.0.1:7860"), same_origin("https://evil.example", "127.0.0.1:7860")
    (True, False)
    """
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    served = urlsplit(f"//{host}")
    if parts.port != served.port:
        return False
    both_loopback = parts.hostname in LOOPBACK_NAMES and (served.hostname or "") in LOOPBACK_NAMES
    return both_loopback or parts.hostname == served.hostname
