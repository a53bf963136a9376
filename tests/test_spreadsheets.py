"""Spreadsheets as documents: a line per row naming its sheet and row and carrying its column headers, so that a
passage cut from it reads on its own and a citation says where the row is."""

from pathlib import Path

import pytest

from rag.answering.citations import quote_citation
from rag.ingest.chunking import chunk_document
from rag.ingest.loaders import UnreadableFile, load_file, load_folder
from rag.ingest.spreadsheets import Row, parse_row, row_at, row_line
from rag.types import Hit
from tests.made_documents import spreadsheet_folder, workbook


def words(text: str) -> int:
    return len(text.split())


@pytest.fixture
def folder(tmp_path) -> Path:
    return spreadsheet_folder(tmp_path / "docs")


def test_every_row_of_every_sheet_is_a_line_naming_its_sheet_and_row_with_the_column_headers(folder):
    book = load_file(folder / "harbour.xlsx", "harbour.xlsx")
    lines = book.text.splitlines()
    assert lines[0] == "Sheets: Moorings (Berth, Boat, Owner, Annual fee); Repairs (Boat, Work, Cost)"
    assert "Sheet Moorings, row 3: Berth: B11; Boat: Saltwind; Owner: Ina Rask; Annual fee: 1240" in lines
    assert "Sheet Repairs, row 2: Boat: Gannet; Work: hull repair; Cost: 3800" in lines
    assert book.title == "Harbour accounts"
    table = load_file(folder / "ferries.csv", "ferries.csv")
    assert table.text.splitlines()[:2] == ["Columns: Departure, From, To, Vessel",
                                          "Row 2: Departure: 06:40; From: Kessock; To: Lenn; Vessel: Tarvo"]
    assert table.title == "ferries"  # a file name, not its column list


def test_row_numbers_are_the_spreadsheets_own_and_empty_cells_are_left_out(tmp_path):
    path = workbook(tmp_path / "gaps.xlsx", {"Log": [["Day", None, "Note"], [None, None, None], ["Mon", 4, None]]})
    text = load_file(path, "gaps.xlsx").text
    # Row 2 is empty: row 3 keeps its number; the unnamed column is called by its letter.
    assert "Sheet Log, row 3: Day: Mon; Column B: 4" in text.splitlines()


def test_semicolon_and_tab_separated_files_are_read_by_their_separator(tmp_path):
    for separator in (";", "\t"):
        path = tmp_path / "prices.csv"
        path.write_text(separator.join(["Item", "Price"]) + "\n" + separator.join(["Rope, 20 m", "14.5"]) + "\n")
        assert "Row 2: Item: Rope, 20 m; Price: 14.5" in load_file(path, "prices.csv").text


def test_a_line_reads_back_into_its_row_and_a_value_cannot_break_the_format(tmp_path):
    row = Row("Q3 sales", 14, (("Region", "North"), ("Revenue", "1.2M")))
    assert parse_row(row_line(row)) == row
    assert parse_row("An ordinary sentence: with a colon.") is None
    path = tmp_path / "notes.csv"
    path.write_text("Who,Note\nAda,late; said: call back\n")
    line = load_file(path, "notes.csv").text.splitlines()[1]
    assert parse_row(line) == Row(None, 2, (("Who", "Ada"), ("Note", "late, said - call back")))


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("broken.xlsx", b"not a zip archive", "broken Excel file"),
    ("header-only.csv", b"Item,Price\n", "no rows below the header"),
    ("binary.csv", b"\x00\x01\x02" * 100, "binary data"),
])
def test_a_malformed_spreadsheet_is_skipped_with_its_reason_and_the_others_load(folder, name, content, reason):
    (folder / name).write_bytes(content)
    result = load_folder(folder)
    assert sorted(d.name for d in result.documents) == ["ferries.csv", "harbour.xlsx"]
    [skipped] = result.skipped
    assert skipped.name == name and reason in skipped.reason


def test_a_sheet_longer_than_the_row_limit_is_refused_whole(tmp_path, monkeypatch):
    monkeypatch.setattr("rag.ingest.spreadsheets.MAX_ROWS", 3)
    path = tmp_path / "long.csv"
    path.write_text("n\n" + "\n".join(str(i) for i in range(10)) + "\n")
    with pytest.raises(UnreadableFile, match="more than 3 rows"):
        load_file(path, "long.csv")


def test_each_row_is_a_passage_of_its_own_and_a_citation_names_the_sheet_and_row(folder):
    book = load_file(folder / "harbour.xlsx", "harbour.xlsx")
    chunks = chunk_document(book, max_tokens=128, overlap_tokens=32, count=words)
    assert [c.text for c in chunks] == book.text.replace("\n\n", "\n").splitlines()  # room for more, one row each
    chunk = next(c for c in chunks if "Saltwind" in c.text)
    start = chunk.start + chunk.text.index("Sheet Moorings, row 3")
    citation = quote_citation(1, Hit(chunk, 1.0, 1.0), start, start + 20)
    assert citation.place == "sheet Moorings, row 3"
    assert row_at("harbour.xlsx", book.text, start).cells[1] == ("Boat", "Saltwind")
    assert row_at("notes.txt", book.text, start) is None  # only a spreadsheet's lines are rows
