"""Loaders: supported files become cleaned Documents with content-hash ids; anything else is skipped with a reason."""

import hashlib
import io
import os
import tracemalloc
import zipfile

import docx
import docx.enum.text
import pytest
from pypdf import PdfWriter

from rag.ingest.loaders import clean_text, load_folder


def test_clean_text_normalises_unicode_and_whitespace_but_keeps_paragraphs():
    assert clean_text("Cafe\u0301\u00a0 au  lait\r\n\r\n\r\n\tNext\x07 line ") == "Café au lait\n\nNext line"


def test_text_markdown_and_html_are_loaded_with_titles(tmp_path):
    (tmp_path / "a.txt").write_text("First line title\nBody text.", encoding="utf-8")
    (tmp_path / "b.md").write_text("# Heading\n\nSome *markdown*.", encoding="utf-8")
    (tmp_path / "c.html").write_text(
        "<html><head><title>Page</title><script>var x=1;</script></head><body><p>Hello</p><p>world</p></body></html>",
        encoding="utf-8",
    )
    result = load_folder(tmp_path)
    by_name = {d.name: d for d in result.documents}
    assert set(by_name) == {"a.txt", "b.md", "c.html"}
    assert by_name["a.txt"].title == "First line title"
    assert by_name["b.md"].title == "Heading"
    assert by_name["c.html"].title == "Page"
    assert "var x" not in by_name["c.html"].text and "Hello" in by_name["c.html"].text
    doc = by_name["a.txt"]
    assert doc.id == hashlib.sha256(doc.text.encode()).hexdigest()
    assert result.skipped == []


def test_folders_are_read_recursively_and_names_are_relative(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "sub" / "deeper" / "n.txt").write_text("nested", encoding="utf-8")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "h.txt").write_text("hidden", encoding="utf-8")
    assert [d.name for d in load_folder(tmp_path).documents] == ["sub/deeper/n.txt"]


def test_non_utf8_text_is_decoded_by_detection(tmp_path):
    (tmp_path / "latin.txt").write_bytes("Les élèves étaient très contents à Noël.".encode("cp1252"))
    [doc] = load_folder(tmp_path).documents
    assert "élèves" in doc.text


def test_bad_files_are_skipped_with_reasons_and_the_rest_is_loaded(tmp_path):
    (tmp_path / "good.txt").write_text("Good text.", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)) * 10)
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    outside = tmp_path.parent / "outside.txt"
    outside.write_text("secret", encoding="utf-8")
    (tmp_path / "link.txt").symlink_to(outside)

    result = load_folder(tmp_path)
    assert [d.name for d in result.documents] == ["good.txt"]
    reasons = {s.name: s.reason for s in result.skipped}
    assert reasons["empty.txt"] == "no text"
    assert "binary" in reasons["binary.txt"]
    assert "PDF" in reasons["broken.pdf"]
    assert "unsupported" in reasons["image.png"]
    assert "symbolic link" in reasons["link.txt"]


def test_pdf_without_text_layer_is_skipped(tmp_path):
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    with open(tmp_path / "blank.pdf", "wb") as f:
        writer.write(f)
    result = load_folder(tmp_path)
    assert result.documents == [] and result.skipped[0].reason == "no text"


def _pdf_with_text(text: str) -> bytes:
    """A minimal one-page PDF whose text layer holds ``text`` (Helvetica), with a correct cross-reference table."""
    stream = f"BT /F1 12 Tf 20 100 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 400 200] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_a_pdf_text_layer_is_loaded(tmp_path):
    (tmp_path / "report.pdf").write_bytes(_pdf_with_text("The Selene-7 greenhouse grows basil."))
    [doc] = load_folder(tmp_path).documents
    assert "Selene-7 greenhouse grows basil" in doc.text


def test_encrypted_and_truncated_pdfs_are_skipped_with_reasons(tmp_path):
    writer = PdfWriter(clone_from=io.BytesIO(_pdf_with_text("Secret minutes.")))
    writer.encrypt(user_password="pw", owner_password="owner")
    with open(tmp_path / "locked.pdf", "wb") as f:
        writer.write(f)
    whole = _pdf_with_text("Half of a document.")
    (tmp_path / "truncated.pdf").write_bytes(whole[: len(whole) // 3])
    (tmp_path / "good.txt").write_text("Still indexed.", encoding="utf-8")
    result = load_folder(tmp_path)
    assert [d.name for d in result.documents] == ["good.txt"]
    reasons = {s.name: s.reason for s in result.skipped}
    assert reasons["locked.pdf"] == "encrypted PDF"
    assert "PDF" in reasons["truncated.pdf"] or reasons["truncated.pdf"] == "no text"


def _word_file(path, title: str = "") -> None:
    document = docx.Document()
    document.core_properties.title = title
    document.add_heading("Greenhouse report", level=1)
    document.add_paragraph("The Selene-7 greenhouse grows basil.")
    table = document.add_table(rows=2, cols=3)
    table.cell(0, 1).merge(table.cell(0, 2))  # one cell spanning two columns
    for row, cells in zip(table.rows, [("Crop", "Yield", "Yield"), ("Basil", "4 kg", "4\nkg")]):
        for cell, text in zip(row.cells, cells):
            cell.text = text
    document.add_paragraph("Harvest is in June.")
    document.save(path)


def test_a_word_file_is_loaded_with_its_tables_in_document_order(tmp_path):
    _word_file(tmp_path / "report.docx", title="Selene-7 report")
    [doc] = load_folder(tmp_path).documents
    assert doc.title == "Selene-7 report"
    assert doc.text.splitlines() == [
        "Greenhouse report",
        "The Selene-7 greenhouse grows basil.",
        "Crop | Yield",  # the merged header cell once; two cells that merely hold the same text both kept
        "Basil | 4 kg | 4 kg",
        "Harvest is in June.",
    ]


def test_a_word_file_without_a_title_property_is_titled_by_its_first_line(tmp_path):
    _word_file(tmp_path / "report.docx")
    [doc] = load_folder(tmp_path).documents
    assert doc.title == "Greenhouse report"


def test_broken_and_oversized_word_files_are_skipped_with_reasons(tmp_path):
    (tmp_path / "fake.docx").write_bytes(b"PK\x03\x04 not really a zip archive")
    with zipfile.ZipFile(tmp_path / "not-word.docx", "w") as archive:
        archive.writestr("hello.txt", "a zip archive, but no Word document in it")
    _word_file(tmp_path / "bomb.docx")
    with zipfile.ZipFile(tmp_path / "bomb.docx", "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/media/padding.bin", b"\0" * (21 * 2**20))  # compresses to about 20 KB
    (tmp_path / "good.txt").write_text("Still indexed.", encoding="utf-8")
    result = load_folder(tmp_path, max_file_mb=1)
    assert [d.name for d in result.documents] == ["good.txt"]
    reasons = {s.name: s.reason for s in result.skipped}
    assert reasons["fake.docx"].startswith("broken Word file")
    assert reasons["not-word.docx"].startswith("broken Word file")
    assert reasons["bomb.docx"].startswith("Word file expands to 2") and reasons["bomb.docx"].endswith("over 20 MB")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("Grüße aus Köln.".encode("utf-16"), "Grüße aus Köln."),  # UTF-16 with its byte-order mark
        ("\ufeffCafé with a BOM.".encode("utf-8"), "Café with a BOM."),
        ("Москва — столица России, крупнейший город страны.".encode("cp1251"), "Москва"),
        ("東京は日本の首都であり、世界最大の都市圏の一つです。".encode("shift_jis"), "東京"),
    ],
)
def test_text_in_other_encodings_is_decoded(tmp_path, data, expected):
    (tmp_path / "t.txt").write_bytes(data)
    [doc] = load_folder(tmp_path).documents
    assert expected in doc.text


def test_invalid_utf8_is_still_read_and_never_crashes(tmp_path):
    (tmp_path / "mixed.txt").write_bytes(b"Valid start. Broken \xc3 byte \xff here, then more ordinary words.")
    [doc] = load_folder(tmp_path).documents
    assert doc.text.startswith("Valid start. Broken")


def test_odd_file_names_are_loaded_under_their_own_names(tmp_path):
    names = ["résumé notes.txt", "new\nline.txt", "-dash.txt", "UPPER.TXT", "📄 emoji.md", "x" * 200 + ".txt",
             "per%20cent #hash.txt"]
    for name in names:
        (tmp_path / name).write_text(f"Text of {name!r}.", encoding="utf-8")
    assert sorted(d.name for d in load_folder(tmp_path).documents) == sorted(names)


def test_a_file_name_that_is_not_utf8_is_skipped_with_a_reason(tmp_path):
    (tmp_path / os.fsdecode(b"bad\xffname.txt")).write_text("Text.", encoding="utf-8")
    (tmp_path / "good.txt").write_text("Good.", encoding="utf-8")
    result = load_folder(tmp_path)
    assert [d.name for d in result.documents] == ["good.txt"]
    [skipped] = result.skipped
    assert skipped.name == "bad\\xffname.txt" and "not valid UTF-8" in skipped.reason


def test_a_symlinked_folder_pointing_outside_is_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret", encoding="utf-8")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "elsewhere").symlink_to(outside, target_is_directory=True)
    result = load_folder(docs)
    assert result.documents == [] and "symbolic link" in result.skipped[0].reason


def test_a_200_mb_file_is_skipped_unread_and_memory_stays_bounded(tmp_path):
    big = tmp_path / "huge.txt"
    line = b"A long log line that repeats and repeats to fill two hundred megabytes of text.\n"
    with open(big, "wb") as f:
        block = line * (1 << 16)
        for _ in range(200 * 2**20 // len(block) + 1):
            f.write(block)
    (tmp_path / "small.txt").write_text("Small.", encoding="utf-8")
    tracemalloc.start()
    try:
        result = load_folder(tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [d.name for d in result.documents] == ["small.txt"]
    assert "over the 50 MB limit" in result.skipped[0].reason
    assert peak < 16 * 2**20


def test_the_size_limit_is_a_setting(tmp_path):
    (tmp_path / "two_mb.txt").write_text("word " * (2**20 // 2), encoding="utf-8")
    assert load_folder(tmp_path, max_file_mb=1).skipped[0].name == "two_mb.txt"
    assert [d.name for d in load_folder(tmp_path, max_file_mb=5).documents] == ["two_mb.txt"]


def test_a_word_file_with_page_breaks_knows_its_pages(tmp_path):
    document = docx.Document()
    document.add_paragraph("Chapter one: the quay.")
    document.add_page_break()
    document.add_paragraph("Chapter two: the ferry.")
    paragraph = document.add_paragraph("Before the break. ")
    paragraph.add_run().add_break(docx.enum.text.WD_BREAK.PAGE)
    paragraph.add_run("After the break.")
    document.save(tmp_path / "book.docx")
    [doc] = load_folder(tmp_path).documents
    assert [doc.page_at(doc.text.index(s)) for s in ("quay", "ferry", "Before", "After")] == [1, 2, 2, 3]


def test_a_word_file_without_page_breaks_and_plain_text_have_no_pages(tmp_path):
    _word_file(tmp_path / "report.docx")
    (tmp_path / "notes.txt").write_text("Plain text.", encoding="utf-8")
    assert [d.page_starts for d in load_folder(tmp_path).documents] == [(), ()]
    assert load_folder(tmp_path).documents[0].page_at(0) is None


def test_an_html_page_without_a_title_element_is_titled_by_its_first_heading(tmp_path):
    (tmp_path / "p.html").write_text("<body><h1>Tide <em>tables</em></h1><p>High water at six.</p></body>",
                                     encoding="utf-8")
    assert load_folder(tmp_path).documents[0].title == "Tide tables"
