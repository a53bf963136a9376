"""Documents the tests make themselves: PDFs with a text layer, scanned pages (pictures of text, no text layer),
ruled tables, and a folder of the kinds of file people have. The facts in them are made up."""

from __future__ import annotations

import shutil
from pathlib import Path

import docx
import pytest
from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont

needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None, reason="Tesseract is not installed (make ocr, or apt install tesseract-ocr)"
)


def page_image(lines: str) -> Image.Image:
    """A letter page at 150 dpi showing ``lines`` in black on white, as a scanner would give it."""
    image = Image.new("L", (1275, 1650), 255)
    ImageDraw.Draw(image).multiline_text((100, 150), lines, fill=0, font=ImageFont.load_default(size=36), spacing=18)
    return image


def pdf(path: Path, pages: list[str | Image.Image | list[tuple[str, ...]]], title: str = "") -> Path:
    """A PDF of ``pages``: text (with a text layer), an image (a scanned page, no text layer), or a list of rows
    (a ruled table, the first row its header)."""
    document = FPDF()
    document.set_font("helvetica", size=12)
    if title:
        document.set_title(title)
    for page in pages:
        document.add_page()
        if isinstance(page, Image.Image):
            document.image(page, x=0, y=0, w=document.w, h=document.h)
        elif isinstance(page, list):
            with document.table() as table:
                for cells in page:
                    row = table.row()
                    for cell in cells:
                        row.cell(cell)
        elif page:
            document.multi_cell(0, 8, page)
    document.output(str(path))
    return path


def word_file_with_pages(path: Path, pages: list[list[str]], title: str = "") -> Path:
    """A .docx whose paragraphs fall on the given pages (hard page breaks between them)."""
    document = docx.Document()
    document.core_properties.title = title
    for number, paragraphs in enumerate(pages):
        if number:
            document.add_page_break()
        for paragraph in paragraphs:
            document.add_paragraph(paragraph)
    document.save(path)
    return path


def mixed_folder(folder: Path) -> Path:
    """A scanned PDF, a born-digital PDF with a table, a Word file and an HTML page, each holding one made-up fact
    on a page other than the first where it has pages."""
    folder.mkdir(parents=True, exist_ok=True)
    pdf(folder / "lighthouse.pdf", [
        "Vell Point keepers' log, typed copy. The scanned pages follow.",
        page_image("The lighthouse at Vell Point\nwas first lit in 1887.\nIts keeper was Mara Tollan."),
    ])
    pdf(folder / "harvest.pdf", [
        "Orlen farm annual figures.",
        [("Crop", "Tonnes harvested"), ("Barley", "310"), ("Oats", "125"), ("Rye", "42")],
    ], title="Orlen Farm Harvest")
    word_file_with_pages(folder / "ferry.docx", [
        ["Tarvo ferry service notes."],
        ["The Tarvo ferry crosses to Lenn island in 25 minutes."],
    ], title="Tarvo Ferry")
    (folder / "tides.html").write_text(
        "<html><head><title>Kessock tide notes</title></head><body><h1>Tides</h1>"
        "<p>High water at Kessock harbour falls at 6:40 in the morning on the first of May.</p></body></html>",
        encoding="utf-8",
    )
    return folder


def workbook(path: Path, sheets: dict[str, list[list[object]]], title: str = "") -> Path:
    """An .xlsx file with a sheet per entry of ``sheets``, each a list of rows (the first its header)."""
    import openpyxl

    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.properties.title = title or None
    book.save(path)
    return path


HARBOUR_SHEETS = {
    "Moorings": [["Berth", "Boat", "Owner", "Annual fee"],
                 ["B10", "Kittiwake", "Osk Lind", 980],
                 ["B11", "Saltwind", "Ina Rask", 1240],
                 ["B12", "Gannet", "Per Vold", 1105]],
    "Repairs": [["Boat", "Work", "Cost"],
                ["Gannet", "hull repair", 3800],
                ["Kittiwake", "new mast", 2150]],
}
FERRY_CSV = ("Departure,From,To,Vessel\n"
             "06:40,Kessock,Lenn,Tarvo\n"
             "07:15,Kessock,Orla,Morven Star\n"
             "08:05,Lenn,Kessock,Tarvo\n")


def spreadsheet_folder(folder: Path) -> Path:
    """A workbook of two sheets (moorings and repairs of a made-up harbour) and a ferry timetable as CSV."""
    folder.mkdir(parents=True, exist_ok=True)
    workbook(folder / "harbour.xlsx", HARBOUR_SHEETS, title="Harbour accounts")
    (folder / "ferries.csv").write_text(FERRY_CSV, encoding="utf-8")
    return folder
