"""What every web way in shares (the chat page, the HTTP API): login from --auth, the same-origin rule, and uploads
checked before they reach the documents folder."""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from rag.config import Settings
from rag.loaders import DEFAULT_MAX_FILE_MB, SUPPORTED_SUFFIXES, UnreadableFile, load_file, printable

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


class SameOriginOnly:
    """Refuses (403) any HTTP request whose ``Origin`` header names another site, or ``null``.

    Browsers attach ``Origin`` to cross-site requests; Gradio's own CORS handling only withholds the response
    headers, so a page on another site could still make a visitor's browser upload files or ask questions here.
    Requests without ``Origin`` (scripts, ``gradio_client``) are not cross-site requests and pass.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            origin = headers.get("origin")
            if origin is not None and not same_origin(origin, headers.get("host", "")):
                if scope["type"] == "http":
                    response = PlainTextResponse("Cross-site request refused", status_code=403)
                    await response(scope, receive, send)
                else:
                    await send({"type": "websocket.close", "code": 1008})
                return
        await self.app(scope, receive, send)


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
