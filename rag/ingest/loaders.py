"""Loading a folder of documents: find files, extract and clean their text, report what was skipped and why."""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import docx
from bs4 import BeautifulSoup
from charset_normalizer import from_bytes
from docx.opc.exceptions import PackageNotFoundError
from docx.table import Table
from lxml.etree import LxmlError

from rag.ingest.ocr import Ocr
from rag.ingest.pdf import PdfUnreadable, read_pdf
from rag.ingest.spreadsheets import SPREADSHEET_SUFFIXES, SpreadsheetError, read_csv, read_xlsx
from rag.ingest.titles import choose_title, from_file_name
from rag.types import Document, SkippedFile

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".txt", ".md", ".html", ".htm", ".pdf", ".docx", *SPREADSHEET_SUFFIXES)
DEFAULT_MAX_FILE_MB = 50  # larger files are skipped unread: embedding 50 MB of text takes hours on a laptop CPU
# A Word file or workbook may unpack to this many times its size limit; text-heavy .docx files compress about
# 3-10x.
DOCX_EXPANSION = 20


class UnreadableFile(Exception):
    """A file that cannot be turned into text; the message is the reason shown to the user."""


@dataclass
class LoadResult:
    documents: list[Document] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    # Parts of loaded documents that could not be read (scanned pages without OCR), by file.
    incomplete: list[SkippedFile] = field(default_factory=list)


def clean_text(text: str) -> str:
    """Normalise to NFC, unify line breaks, collapse runs of spaces, keep paragraph breaks, strip the ends.

    >>> clean_text("  Caf\\u0065\\u0301   au\\tlait\\r\\n\\r\\n\\r\\nNext ")
    'Café au lait\\n\\nNext'
    """
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    text = re.sub(r"[^\S\n]+", " ", text)  # any horizontal whitespace (incl. NBSP) -> one space
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def decode_bytes(data: bytes) -> str:
    """UTF-8 when it is, else the encoding charset-normalizer detects; binary data raises UnreadableFile."""
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UnreadableFile("binary data, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        raise UnreadableFile("could not detect the text encoding")
    # Short Western European texts decode equally cleanly in several code pages; the detector then picks one
    # arbitrarily (often cp1250, turning "è" into "č"). Prefer the far more common Windows-1252 on a tie.
    for match in matches:
        if match.encoding == "cp1252" and (match.chaos, match.coherence) == (best.chaos, best.coherence):
            return str(match)
    return str(best)


def _html_to_text(markup: str) -> tuple[str, str]:
    """The visible text of an HTML page and its title: ``<title>``, else its first ``<h1>``."""
    soup = BeautifulSoup(markup, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    if not title and soup.h1:
        title = soup.h1.get_text(" ", strip=True)
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        tag.decompose()
    return soup.get_text("\n"), title


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _docx_to_pages(path: Path, max_expanded_mb: int) -> tuple[list[str], str]:
    """Body paragraphs and table rows of a Word file, in document order, split into pages where the file says
    where they break, and its title (the title property, else the first paragraph styled Title).

    Word records where its pages broke when it last laid the file out (``w:lastRenderedPageBreak``); files other
    programs wrote have only the breaks their authors typed (``w:br w:type="page"``). The first kind is used when
    present, as the second kind also appears among them.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            # A .docx is a zip archive: a small file can expand to gigabytes. What the archive declares bounds
            # what is read, so it is checked before anything is inflated.
            expanded = sum(entry.file_size for entry in archive.infolist())
        if expanded > max_expanded_mb * 2**20:
            raise UnreadableFile(f"Word file expands to {expanded / 2**20:.0f} MB, over {max_expanded_mb} MB")
        document = docx.Document(str(path))
        rendered = bool(document.element.body.xpath(".//w:lastRenderedPageBreak"))
        pages: list[list[str]] = [[]]
        styled_title = ""
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                for row in block.rows:
                    cells = row.cells  # a cell spanning columns comes once per column: kept once
                    texts = [" ".join(c.text.split()) for i, c in enumerate(cells) if i == 0 or c is not cells[i - 1]]
                    pages[-1].append(" | ".join(text for text in texts if text))
                continue
            if not styled_title and block.style is not None and block.style.name == "Title":
                styled_title = block.text
            pieces = _split_at_page_breaks(block._p, rendered)
            pages[-1].append(pieces[0])
            for piece in pieces[1:]:
                pages.append([piece])
        title = document.core_properties.title or styled_title
    except UnreadableFile:
        raise
    except (zipfile.BadZipFile, PackageNotFoundError, LxmlError, KeyError, ValueError, OSError) as exc:
        raise UnreadableFile(f"broken Word file ({exc.__class__.__name__}: {exc})") from exc
    return ["\n".join(lines) for lines in pages], title


def _split_at_page_breaks(paragraph, rendered: bool) -> list[str]:
    """A paragraph's text (as python-docx reads it), cut where a page break of the chosen kind falls."""
    marker = f"{_W}lastRenderedPageBreak" if rendered else None
    if not paragraph.xpath(".//w:lastRenderedPageBreak" if rendered else './/w:br[@w:type="page"]'):
        return [paragraph.text]
    pieces = [""]
    for element in paragraph.iter():
        if element.tag == f"{_W}t":
            pieces[-1] += element.text or ""
        elif element.tag == f"{_W}tab":
            pieces[-1] += "\t"
        elif element.tag == marker:
            pieces.append("")
        elif element.tag in (f"{_W}br", f"{_W}cr"):
            if element.get(f"{_W}type") == "page":
                if not rendered:
                    pieces.append("")
            elif element.get(f"{_W}type") != "column":
                pieces[-1] += "\n"
    return pieces


def join_pages(pages: list[str]) -> tuple[str, tuple[int, ...]]:
    """Pages cleaned and joined by a paragraph break into one text, and the offset where each page begins.

    A page with no text begins where the next one does, so every offset still falls on the page that holds it.

    >>> join_pages(["One.", "", " Two. "])
    ('One.\\n\\nTwo.', (0, 6, 6))
    """
    parts: list[str] = []
    length = 0
    starts: list[int] = []
    for page in pages:
        cleaned = clean_text(page)
        starts.append(length + (len(PAGE_SEPARATOR) if parts else 0))
        if cleaned:
            length += (len(PAGE_SEPARATOR) if parts else 0) + len(cleaned)
            parts.append(cleaned)
    return PAGE_SEPARATOR.join(parts), tuple(starts)


PAGE_SEPARATOR = "\n\n"


def load_file(path: Path, name: str, max_file_mb: int = DEFAULT_MAX_FILE_MB, ocr: Ocr | None = None,
              notes: list[str] | None = None) -> Document:
    """Read one supported file into a Document named ``name``; raise UnreadableFile with the reason otherwise.

    A file over ``max_file_mb`` is refused before any of it is read, so memory stays bounded. PDF pages without
    a text layer are read by ``ocr`` (None: not read). What could not be read of a file that still loaded (its
    scanned pages, without OCR) is appended to ``notes``.
    """
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnreadableFile(f"unsupported file type {suffix or '(none)'}")
    size = path.stat().st_size
    if size > max_file_mb * 1024 * 1024:
        raise UnreadableFile(f"{size / 2**20:.0f} MB is over the {max_file_mb} MB limit (setting max_file_mb)")
    title = ""
    problems: list[str] = []
    paged = suffix in (".pdf", ".docx")
    if suffix == ".pdf":
        try:
            pdf = read_pdf(path, ocr)
        except PdfUnreadable as exc:
            raise UnreadableFile(str(exc)) from exc
        pages, title, problems = pdf.pages, pdf.title, pdf.notes
    elif suffix == ".docx":
        pages, title = _docx_to_pages(path, max_expanded_mb=DOCX_EXPANSION * max_file_mb)
        paged = len(pages) > 1  # a Word file states its pages only where it records breaks
    elif suffix in SPREADSHEET_SUFFIXES:
        try:
            if suffix == ".xlsx":
                raw, title = read_xlsx(path, max_expanded_mb=DOCX_EXPANSION * max_file_mb)
            else:
                raw = read_csv(decode_bytes(path.read_bytes()))
        except SpreadsheetError as exc:
            raise UnreadableFile(str(exc)) from exc
        title = title or from_file_name(name)  # its opening line lists columns: no title to read there
        pages = [raw]
    else:
        raw = decode_bytes(path.read_bytes())
        if suffix in (".html", ".htm"):
            raw, title = _html_to_text(raw)
        pages = [raw]
    text, page_starts = join_pages(pages)
    if not text:
        raise UnreadableFile("; ".join(problems) if problems else "no text")
    if notes is not None:
        notes.extend(problems)
    return Document(
        id=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        name=name,
        title=choose_title(name, text, clean_text(title)),
        text=text,
        page_starts=page_starts if paged else (),
    )


def iter_document_paths(folder: Path) -> tuple[list[tuple[Path, str]], list[SkippedFile]]:
    """Files under ``folder`` (recursively, sorted, hidden ones ignored) as (path, relative name) pairs.

    Symbolic links are never followed, so nothing outside the folder is read.
    """
    found: list[tuple[Path, str]] = []
    skipped: list[SkippedFile] = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_symlink():
            skipped.append(SkippedFile(_printable(rel.as_posix()), "symbolic link (not followed)"))
            continue
        if not path.is_file():
            continue
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            skipped.append(SkippedFile(_printable(rel.as_posix()), f"unsupported file type {path.suffix or '(none)'}"))
            continue
        if not _encodable(rel.as_posix()):
            # The index stores names as UTF-8 text; a name made of other bytes could not be cited or removed.
            skipped.append(SkippedFile(_printable(rel.as_posix()), "file name is not valid UTF-8; rename the file"))
            continue
        found.append((path, rel.as_posix()))
    return found, skipped


def _encodable(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(name: str) -> str:
    """``name`` safe to print and store: undecodable bytes shown as ``\\xNN``."""
    return name if _encodable(name) else name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def load_folder(folder: Path | str, max_file_mb: int = DEFAULT_MAX_FILE_MB, ocr: Ocr | None = None) -> LoadResult:
    """Load every supported document under ``folder``; unreadable files are skipped with their reason, and scanned
    PDF pages are read by ``ocr`` where it is given and available (and reported in ``incomplete`` otherwise)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"documents folder not found: {folder}")
    paths, skipped = iter_document_paths(folder)
    result = LoadResult(skipped=skipped)
    for path, name in paths:
        notes: list[str] = []
        try:
            result.documents.append(load_file(path, name, max_file_mb, ocr, notes))
            result.incomplete.extend(SkippedFile(name, note) for note in notes)
        except UnreadableFile as exc:
            result.skipped.append(SkippedFile(name, str(exc)))
        except OSError as exc:
            result.skipped.append(SkippedFile(name, f"cannot read ({exc.strerror or exc})"))
    for item in result.skipped:
        log.info("skipped %s: %s", item.name, item.reason)
    for item in result.incomplete:
        log.info("%s: %s", item.name, item.reason)
    return result
