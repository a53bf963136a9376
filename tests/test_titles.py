"""Titles: what a person would call a document. Metadata first, then a heading the text opens with, then the file
name; never a byline or the start of a paragraph."""

import pytest

from rag.ingest.titles import choose_title, from_metadata, is_byline, reads_as_heading


@pytest.mark.parametrize("line", ["By Ines Varga", "INES VARGA", "Ines K. Varga", "by the staff reporter"])
def test_a_byline_is_never_a_title(line):
    assert is_byline(line)
    assert choose_title("story_17.txt", f"{line}\nThe ferry sank in calm water on Tuesday night.") == "story 17"


@pytest.mark.parametrize("line", ["Ferry sinks in calm water", "Why did the ferry sink?", "Annual Report 2024",
                                  "Results", "The Kessock Crossing, 1998-2024"])
def test_a_short_line_without_a_closing_full_stop_reads_as_a_heading(line):
    assert reads_as_heading(line)
    assert choose_title("x.txt", f"{line}\nBody text follows here.") == line


def test_a_first_paragraph_is_not_a_title_even_when_it_is_one_line():
    lead = "The Kessock ferry first sailed in 1998 from the north quay and carried forty cars across the firth"
    assert choose_title("ferries/kessock_history.txt", f"{lead}.\nIt still sails.") == "kessock history"
    assert choose_title("ferries.txt", lead + " " * 3 + "and more and more words " * 4 + "\nNext.") == "ferries"


def test_a_one_line_document_is_titled_by_its_file_name():
    assert choose_title("harbour-notes.txt", "Harbour notes") == "harbour notes"


def test_metadata_wins_unless_it_is_a_placeholder_the_software_wrote():
    assert choose_title("a.pdf", "Some heading\nText.", "Kessock Ferry Timetable") == "Kessock Ferry Timetable"
    for placeholder in ["Untitled", "Microsoft Word - draft3.docx", "scan_0042.pdf", "  "]:
        assert from_metadata(placeholder) == ""
        assert choose_title("a.pdf", "Some heading\nText.", placeholder) == "Some heading"


def test_markdown_front_matter_and_the_top_level_heading_title_a_markdown_file():
    assert choose_title("n.md", "---\nlayout: post\ntitle: \"Tide tables\"\n---\n# Other\ntext") == "Tide tables"
    assert choose_title("n.md", "Intro line.\n\n## Section\ntext\n# Tide tables\nmore") == "Tide tables"
    assert choose_title("n.md", "## Only a section\ntext") == "Only a section"
