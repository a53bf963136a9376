"""PDFs: text page by page with offsets that say which page holds what, ruled tables kept row by row, and scanned
pages read by Tesseract (cached by content, reported when they cannot be read)."""

from fpdf import FPDF

from rag.ingest.loaders import load_folder
from rag.ingest.ocr import Ocr
from tests.made_documents import needs_tesseract, page_image, pdf


def test_each_page_of_a_pdf_is_located_by_its_offsets(tmp_path):
    pdf(tmp_path / "survey.pdf", ["Kestrels nest on the west ridge.", "", "Owls hunt over the east marsh."],
        title="Orlen Valley Survey")
    [doc] = load_folder(tmp_path).documents
    assert doc.title == "Orlen Valley Survey"
    assert len(doc.page_starts) == 3
    assert doc.page_at(doc.text.index("Kestrels")) == 1
    assert doc.page_at(doc.text.index("Owls")) == 3  # the blank page 2 holds nothing


def test_a_ruled_table_is_read_row_by_row_in_its_place(tmp_path):
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 8, "Harvest at the Orlen farm, by crop.")
    with pdf.table() as table:
        for cells in [("Crop", "Tonnes", "Year"), ("Barley", "310", "2021"), ("Oats", "125", "2022")]:
            row = table.row()
            for cell in cells:
                row.cell(cell)
    pdf.multi_cell(0, 8, "Figures are provisional.")
    pdf.output(str(tmp_path / "harvest.pdf"))
    [doc] = load_folder(tmp_path).documents
    assert doc.text.splitlines() == [
        "Harvest at the Orlen farm, by crop.", "Crop | Tonnes | Year", "Barley | 310 | 2021", "Oats | 125 | 2022",
        "Figures are provisional.",
    ]


@needs_tesseract
def test_a_scanned_page_is_read_by_ocr_and_cached_by_its_content(tmp_path, monkeypatch):
    docs = tmp_path / "docs"
    docs.mkdir()
    pdf(docs / "lighthouse.pdf", [
        "The keeper's log begins in 1887.",
        page_image("The lighthouse at Vell Point\nburns paraffin since 1921."),
    ])
    ocr = Ocr(cache_dir=tmp_path / "cache")
    result = load_folder(docs, ocr=ocr)
    [doc] = result.documents
    assert result.incomplete == []
    at = doc.text.find("Vell Point")
    assert at > 0 and doc.page_at(at) == 2 and doc.page_at(doc.text.index("keeper")) == 1
    assert "1921" in doc.text

    import pytesseract

    def no_tesseract(*args, **kwargs):
        raise AssertionError("the page was read again instead of coming from the cache")

    monkeypatch.setattr(pytesseract, "image_to_string", no_tesseract)
    assert load_folder(docs, ocr=ocr).documents == [doc]


def test_scanned_pages_that_cannot_be_read_are_reported_and_the_rest_is_kept(tmp_path):
    pdf(tmp_path / "mixed.pdf", ["A typed first page about harbour dues.", page_image("A scanned page.")])
    pdf(tmp_path / "scan.pdf", [page_image("Only a picture of text.")])
    result = load_folder(tmp_path, ocr=Ocr(language="zzz"))  # no such language data anywhere
    [doc] = result.documents
    assert doc.name == "mixed.pdf" and "harbour dues" in doc.text
    [incomplete] = result.incomplete
    assert incomplete.name == "mixed.pdf" and incomplete.reason.startswith("page 2 scanned, not read: Tesseract")
    [skipped] = result.skipped
    assert skipped.name == "scan.pdf" and "page 1 scanned, not read" in skipped.reason

    without = load_folder(tmp_path, ocr=None)
    assert [s.reason for s in without.skipped] == ["page 1 scanned, not read: OCR is off (setting ocr)"]
