"""A PDF's text, page by page: its text layer, ruled tables kept row by row, and OCR for pages that have no text.

pdfplumber (on pdfminer.six) reads the text layer and finds tables by their ruling lines; pypdfium2, which
pdfplumber brings, renders a scanned page for Tesseract (``rag.ingest.ocr``).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pdfplumber
from pdfminer.pdfdocument import PDFPasswordIncorrect
from pdfplumber.utils.exceptions import PdfminerException
from tqdm.auto import tqdm

from rag.ingest.ocr import Ocr, OcrError

log = logging.getLogger(__name__)

# A page whose text layer holds fewer characters than this (a page number, a scanner's stamp) but which shows an
# image is read as a scan.
MIN_TEXT_LAYER_CHARS = 20


class PdfUnreadable(Exception):
    """The PDF as a whole cannot be read; the message says why."""


@dataclass
class PdfText:
    """Each page's text (``pages[0]`` is page 1; a page with nothing readable is ""), the title property, and
    notes about pages that could not be read."""

    pages: list[str]
    title: str = ""
    notes: list[str] = field(default_factory=list)


def table_lines(rows: list[list[str | None]]) -> list[str]:
    """One line per table row, its cells joined by " | " (empty cells dropped), as Word tables are read.

    >>> table_lines([["Crop", "Tonnes"], ["Oats", None], ["Barley\\nspring", "310"]])
    ['Crop | Tonnes', 'Oats', 'Barley spring | 310']
    """
    lines = [" | ".join(" ".join(cell.split()) for cell in row if cell and cell.strip()) for row in rows]
    return [line for line in lines if line]


def _page_text(page) -> str:
    """The text layer of ``page`` top to bottom, each ruled table in its place as ``table_lines``."""
    tables = sorted((t for t in page.find_tables() if len(t.rows) >= 2), key=lambda t: t.bbox[1])
    if not tables:
        return page.extract_text() or ""
    x0, top, x1, bottom = page.bbox
    parts: list[str] = []
    y = top
    for table in tables:
        t_x0, t_top, t_x1, t_bottom = table.bbox
        if t_top < y:
            continue  # a table inside one already read
        if t_top > y:
            parts.append(page.crop((x0, y, x1, t_top), strict=False).extract_text())
        beside = page.crop((x0, t_top, x1, t_bottom), strict=False).outside_bbox(table.bbox, strict=False)
        parts.append(beside.extract_text())
        parts.append("\n".join(table_lines(table.extract())))
        y = t_bottom
    if y < bottom:
        parts.append(page.crop((x0, y, x1, bottom), strict=False).extract_text())
    return "\n".join(part for part in parts if part and part.strip())


def read_pdf(path: Path, ocr: Ocr | None) -> PdfText:
    """The text of every page of the PDF at ``path``; pages without a text layer are read by ``ocr`` (None: they
    are left empty and noted). Raises PdfUnreadable for an encrypted or broken file."""
    try:
        with pdfplumber.open(path) as pdf:
            title = pdf.metadata.get("Title") or ""
            pages: list[str] = []
            scanned: list[int] = []
            for number, page in enumerate(pdf.pages, start=1):
                text = _page_text(page)
                if len(text.strip()) < MIN_TEXT_LAYER_CHARS and page.images:
                    scanned.append(number)
                pages.append(text)
                page.close()  # pdfplumber keeps every parsed object of a page until then
            notes = _read_scans(pdf, path, scanned, pages, ocr) if scanned else []
    except PdfminerException as exc:
        if isinstance(exc.args[0] if exc.args else None, PDFPasswordIncorrect):
            raise PdfUnreadable("encrypted PDF") from exc
        raise PdfUnreadable(f"broken PDF ({_cause(exc)})") from exc
    except PdfUnreadable:
        raise
    except Exception as exc:  # pdfminer raises many kinds on malformed input; any of them means the same here
        raise PdfUnreadable(f"broken PDF ({exc.__class__.__name__}: {exc})") from exc
    return PdfText(pages, title if isinstance(title, str) else "", notes)


def _read_scans(pdf, path: Path, numbers: list[int], pages: list[str], ocr: Ocr | None) -> list[str]:
    """OCR the pages ``numbers`` of ``pdf`` (the file at ``path``) into ``pages`` in place; returns notes on those
    left unread. The file is hashed here, for the OCR cache, and only for PDFs that have scanned pages."""
    reason = "OCR is off (setting ocr)" if ocr is None else ocr.unavailable()
    if reason:
        return [f"{_pages(numbers)} scanned, not read: {reason}"]
    name, digest = path.name, hashlib.sha256(path.read_bytes()).hexdigest()
    failed: list[str] = []
    for number in tqdm(numbers, desc=f"OCR {name}", unit="page", disable=len(numbers) < 2):
        page = pdf.pages[number - 1]
        try:
            text = ocr.read(f"{digest}:{number}", lambda dpi: page.to_image(resolution=dpi).original)
        except OcrError as exc:
            failed.append(f"page {number}: {exc}")
            continue
        finally:
            page.close()
        if text.strip():  # OCR reads the page whole, a stamp or page number in its text layer included
            pages[number - 1] = text
    log.info("%s: read %d scanned page(s) by OCR", name, len(numbers) - len(failed))
    return failed


def _pages(numbers: list[int]) -> str:
    return f"page {numbers[0]}" if len(numbers) == 1 else f"{len(numbers)} pages ({', '.join(map(str, numbers[:8]))}" \
        f"{', …' if len(numbers) > 8 else ''})"


def _cause(exc: PdfminerException) -> str:
    inner = exc.args[0] if exc.args else exc
    return f"{inner.__class__.__name__}: {inner}"
