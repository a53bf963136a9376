"""Chunking: sentence-aware chunks with exact offsets that cover the text and respect the token limit."""

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from rag.ingest.chunking import chunk_document, split_sentences
from rag.types import Document


def words(text: str) -> int:
    return len(text.split())


def make_doc(text: str) -> Document:
    return Document(id=hashlib.sha256(text.encode()).hexdigest(), name="d.txt", title="t", text=text)


def assert_chunks_are_exact_and_cover(doc: Document, chunks, max_tokens: int) -> None:
    covered = set()
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text
        assert words(chunk.text) <= max_tokens
        covered.update(range(chunk.start, chunk.end))
    assert all(i in covered for i, ch in enumerate(doc.text) if not ch.isspace())


def test_sentences_split_on_punctuation_and_newlines_not_abbreviations():
    text = "Mr. Smith met Dr. Jones in the U.S. today. “Really?” she asked.\nNew line here"
    assert [text[s:e] for s, e in split_sentences(text)] == [
        "Mr. Smith met Dr. Jones in the U.S. today.",
        "“Really?” she asked.",
        "New line here",
    ]


def test_chunks_hold_whole_sentences_and_overlap():
    text = " ".join(f"Sentence number {i} has five words." for i in range(20))  # 6 words each
    doc = make_doc(text)
    chunks = chunk_document(doc, max_tokens=20, overlap_tokens=6, count=words)
    assert len(chunks) > 1
    assert_chunks_are_exact_and_cover(doc, chunks, 20)
    for chunk in chunks:
        assert chunk.text.startswith("Sentence") and chunk.text.endswith(".")
    for previous, following in zip(chunks, chunks[1:]):
        assert following.start < previous.end  # one sentence of overlap
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert len({c.id for c in chunks}) == len(chunks)


def test_overlong_sentences_and_words_are_cut_to_fit():
    text = "word " * 50 + "x" * 500
    doc = make_doc(text.strip())
    count = lambda s: max(1, len(s) // 10)  # noqa: E731 - a counter where one long word exceeds the limit
    chunks = chunk_document(doc, max_tokens=8, overlap_tokens=0, count=count)
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text
        assert count(chunk.text) <= 8


def test_empty_text_gives_no_chunks():
    assert chunk_document(make_doc("   "), 10, 2, words) == []


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from(list("ab .!?\n\t“”é")), max_size=400),
    max_tokens=st.integers(min_value=1, max_value=30),
    overlap=st.integers(min_value=0, max_value=29),
)
def test_any_text_is_covered_exactly_within_the_limit(text, max_tokens, overlap):
    doc = make_doc(text)
    chunks = chunk_document(doc, max_tokens=max_tokens, overlap_tokens=min(overlap, max_tokens - 1), count=words)
    assert_chunks_are_exact_and_cover(doc, chunks, max_tokens)


def test_a_chunk_of_a_paged_document_knows_the_pages_it_spans():
    from rag.ingest.loaders import join_pages

    text, starts = join_pages(["Quay one. Quay two.", "", "Ferry three. Ferry four.", "Dock five."])
    doc = Document(id="p", name="p.pdf", title="t", text=text, page_starts=starts)
    chunks = chunk_document(doc, max_tokens=5, overlap_tokens=0, count=words)
    spans = {chunk.text: (chunk.page, chunk.last_page) for chunk in chunks}
    assert spans == {"Quay one. Quay two.": (1, 1), "Ferry three. Ferry four.": (3, 3), "Dock five.": (4, 4)}
    [across] = chunk_document(doc, max_tokens=50, overlap_tokens=0, count=words)
    assert (across.page, across.last_page) == (1, 4)
    assert across.page_at(text.index("Ferry four")) == 3 and across.page_at(text.index("Dock")) == 4


def test_a_chunk_of_a_document_without_pages_has_none():
    [chunk] = chunk_document(make_doc("One. Two."), max_tokens=50, overlap_tokens=0, count=words)
    assert chunk.page is None and chunk.page_at(3) is None and chunk.last_page is None


def test_a_long_run_without_spaces_is_cut_into_passages_a_model_can_read():
    blob = hashlib.sha256(b"x").hexdigest() * 1600  # 102,400 characters without a space: one "word"
    doc = make_doc(f"The log begins here. {blob} The log ends here.")
    chunks = chunk_document(doc, max_tokens=128, overlap_tokens=32, count=words)
    assert_chunks_are_exact_and_cover(doc, chunks, 128)
    # A tokenizer may need a token a character for hex: no passage holds more than 128 characters of it.
    assert max(len(c.text) for c in chunks if " " not in c.text) <= 128
    assert max(len(c.text) for c in chunks) < 200 and len(chunks) >= 800
    assert any(c.text.startswith("The log begins here.") for c in chunks)


def test_ordinary_text_is_counted_as_the_embedder_counts_it():
    from rag.ingest.chunking import counting_runs

    ordinary = "A sentence of ordinary words, with https://example.org/a/short/link in it. " * 20
    assert counting_runs(words)(ordinary) == words(ordinary)  # so the chunks of such documents do not change
    assert counting_runs(words)("x" * 101) == 101 and counting_runs(words)("x" * 100) == 1
