"""Loaders: supported files become cleaned Documents with content-hash ids; anything else is skipped with a reason."""

import hashlib

from pypdf import PdfWriter

from rag.loaders import clean_text, load_folder


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
