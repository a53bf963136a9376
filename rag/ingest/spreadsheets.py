"""Spreadsheets (``.csv``, ``.xlsx``) as text: a line per row that names its sheet and row and carries its column
headers, so that every passage cut from it reads on its own.

    Columns: Region, Quarter, Revenue
    Row 2: Region: North; Quarter: Q3; Revenue: 1.2M

A workbook's lines say their sheet ("Sheet Sales, row 2: ..."), and its opening line lists the sheets and their
columns. The row numbers are the spreadsheet's own (the header is row 1 where it is the first row), so a person
finds the row where the citation says. Each row is a passage of its own (``rag.ingest.chunking``), split only
where it alone is longer than a chunk, and ``parse_row`` reads a line back into its cells for the chat page's table.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

SPREADSHEET_SUFFIXES = (".csv", ".xlsx")
# Rows read from one file at most: each becomes an embedded passage line, and a million of them would take the
# embedder hours on a laptop CPU. A longer file is refused whole, with the reason, rather than read in part.
MAX_ROWS = 100_000

_ROW = re.compile(r"^(?:Sheet (?P<sheet>.+?), )?[Rr]ow (?P<row>\d+): (?P<cells>.*)$")


class SpreadsheetError(Exception):
    """A spreadsheet that cannot be read; the message is the reason shown to the user."""


@dataclass(frozen=True)
class Row:
    """One row as its line states it: the sheet (None for a .csv), the spreadsheet's row number and the cells
    that hold anything, as (column header, value) pairs in column order."""

    sheet: str | None
    number: int
    cells: tuple[tuple[str, str], ...]

    @property
    def place(self) -> str:
        """Where the row is, as a person would look for it: "sheet Sales, row 5" or "row 5"."""
        return f"sheet {self.sheet}, row {self.number}" if self.sheet else f"row {self.number}"


def row_line(row: Row) -> str:
    """The line that stands for ``row`` in the document text (``parse_row`` reads it back)."""
    label = f"Sheet {row.sheet}, row {row.number}" if row.sheet else f"Row {row.number}"
    return f"{label}: " + "; ".join(f"{header}: {value}" for header, value in row.cells)


def parse_row(line: str) -> Row | None:
    """The row a line of a spreadsheet's text stands for, or None where the line is not one."""
    match = _ROW.match(line.strip())
    if match is None:
        return None
    cells = []
    for pair in match["cells"].split("; "):
        header, colon, value = pair.partition(": ")
        if not colon:
            return None
        cells.append((header, value))
    return Row(match["sheet"], int(match["row"]), tuple(cells))


def is_spreadsheet(name: str) -> bool:
    """Whether the document named ``name`` was read from a spreadsheet (its text a line per row)."""
    return name.lower().endswith(SPREADSHEET_SUFFIXES)


def row_at(name: str, text: str, offset: int) -> Row | None:
    """The row whose line holds ``text[offset]``, where ``name`` is a spreadsheet's and ``text`` its document text
    (or a chunk of it, whose lines are whole rows); None otherwise."""
    if not is_spreadsheet(name):
        return None
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return parse_row(text[start:] if end < 0 else text[start:end])


def read_csv(text: str) -> str:
    """The document text of a comma-, semicolon-, tab- or bar-separated file's ``text``: its first non-empty row
    is the header."""
    try:
        dialect = csv.Sniffer().sniff(text[:65536], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel  # one column, or too little to tell: commas
    try:
        rows = list(_numbered(csv.reader(io.StringIO(text), dialect)))
    except csv.Error as exc:
        raise SpreadsheetError(f"malformed CSV ({exc})") from exc
    header, lines = _lines(rows, None)
    if not lines:
        raise SpreadsheetError("no rows below the header")
    return "\n".join([f"Columns: {', '.join(header)}", *lines])


def read_xlsx(path: Path, max_expanded_mb: int) -> tuple[str, str]:
    """The document text of an Excel workbook, every sheet with rows in turn (cached values of formulas, not the
    formulas), and its title property. A workbook declaring more than ``max_expanded_mb`` unpacked is refused
    before anything is inflated."""
    import openpyxl  # imported here: only workbooks need it

    try:
        with zipfile.ZipFile(path) as archive:
            expanded = sum(entry.file_size for entry in archive.infolist())
        if expanded > max_expanded_mb * 2**20:
            raise SpreadsheetError(f"workbook expands to {expanded / 2**20:.0f} MB, over {max_expanded_mb} MB")
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except SpreadsheetError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, TypeError) as exc:
        raise SpreadsheetError(f"broken Excel file ({exc.__class__.__name__}: {exc})") from exc
    try:
        summaries, sheets, total = [], [], 0
        for sheet in workbook.worksheets:
            rows = list(_numbered(sheet.iter_rows(values_only=True), start=sheet.min_row or 1))
            total += len(rows)
            if total > MAX_ROWS:
                raise SpreadsheetError(f"more than {MAX_ROWS} rows")
            header, lines = _lines(rows, sheet.title)
            if lines:
                summaries.append(f"{sheet.title} ({', '.join(header)})")
                sheets.append("\n".join(lines))
        title = workbook.properties.title or ""
    except SpreadsheetError:
        raise
    except (KeyError, ValueError, TypeError, zipfile.BadZipFile) as exc:
        raise SpreadsheetError(f"broken Excel file ({exc.__class__.__name__}: {exc})") from exc
    finally:
        workbook.close()
    if not sheets:
        raise SpreadsheetError("no sheet has rows below its header")
    return "\n\n".join([f"Sheets: {'; '.join(summaries)}", *sheets]), title


def _numbered(rows, start: int = 1):
    """(row number, cells as text) for each row of ``rows``, counting from ``start``; empty rows skipped. Stops
    with ``SpreadsheetError`` past ``MAX_ROWS``."""
    for number, cells in enumerate(rows, start=start):
        if number - start >= MAX_ROWS:
            raise SpreadsheetError(f"more than {MAX_ROWS} rows")
        texts = [_cell_text(value) for value in cells]
        if any(texts):
            yield number, texts


def _lines(rows: list[tuple[int, list[str]]], sheet: str | None) -> tuple[list[str], list[str]]:
    """The header (the first row; an empty heading named by its column letter) and a line per later row."""
    if not rows:
        return [], []
    _, first = rows[0]
    width = max(len(cells) for _, cells in rows)
    header = [_clean(first[i]) if i < len(first) and first[i] else f"Column {_letter(i)}" for i in range(width)]
    lines = []
    for number, cells in rows[1:]:
        pairs = tuple((header[i], _clean(value)) for i, value in enumerate(cells) if value)
        lines.append(row_line(Row(sheet, number, pairs)))
    return header, lines


def _cell_text(value: object) -> str:
    """A cell as a person reads it: whole numbers without ".0", dates as ISO dates, empty as ""."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _clean(text: str) -> str:
    """A header or value on one line, without the separators ``parse_row`` splits at."""
    text = " ".join(str(text).split())
    return text.replace("; ", ", ").replace(": ", " - ")


def _letter(index: int) -> str:
    """The spreadsheet's name of column ``index`` (0: A, 26: AA)."""
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(ord("A") + rest) + name
    return name
