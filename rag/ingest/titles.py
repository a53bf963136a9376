"""A document's title as a person would give it: its metadata, else a first line that reads as a heading, else
its file name. Never a byline, never a cut-off first paragraph.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from rag.words import without_controls

MAX_TITLE_CHARS = 120
# A heading is a short line. Longer first lines are paragraphs (a lead sentence, a whole SQuAD context).
MAX_HEADING_WORDS = 16
# What writing software puts in a file's title property when the author gave none.
_PLACEHOLDER = re.compile(
    r"^(untitled|title|document\d*|doc\d*|slide \d+|presentation\d*|new document|microsoft (word|powerpoint)\b.*|"
    r"powerpoint presentation|.*\.(docx?|pdf|txt|rtf|odt|pptx?|xlsx?|html?|md|tex|dvi|ps|indd|qxd))$",
    re.IGNORECASE,
)
_BY = re.compile(r"^by\s+\S", re.IGNORECASE)
_NAME_WORD = re.compile(r"^[A-Z][A-Za-z'’.\-]*$")
_MARKDOWN_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_FRONT_MATTER_TITLE = re.compile(r"\A---\n(?:.*\n)*?title:[ \t]*[\"']?(.+?)[\"']?[ \t]*\n(?:.*\n)*?---\n")


def from_metadata(title: str | None) -> str:
    """``title`` tidied, or "" when it is empty or one of the placeholders software writes ("Untitled",
    "Microsoft Word - notes.docx", a file name). A file's properties are whatever its writer put there: control
    and direction characters are dropped, so a title cannot forge a line or reverse the text shown around it.

    >>> from_metadata("Harbour\\u202e report\\x00 2024")
    'Harbour report 2024'
    """
    title = " ".join(without_controls(str(title or "")).split())
    if not title or _PLACEHOLDER.match(title):
        return ""
    return title[:MAX_TITLE_CHARS]


def is_byline(line: str) -> bool:
    """A line that names an author rather than a subject: "By Jane Smith", or two to four capitalised name words
    alone on the line ("JANE SMITH", "Jane M. Smith").

    >>> is_byline("MARTA OYELARAN"), is_byline("By the river"), is_byline("Harbour Strike Ends")
    (True, True, False)
    """
    line = line.strip()
    if _BY.match(line):
        return True
    words = line.split()
    if not 2 <= len(words) <= 4 or not all(_NAME_WORD.match(w) for w in words):
        return False
    # Title Case headings of a few words ("Harbour Strike Ends") look the same as a name; a name has no verb, but
    # telling one from the other needs more than form. A name line in capitals, or one with an initial, is a byline.
    return line.isupper() or any(re.fullmatch(r"[A-Z]\.", w) for w in words)


def reads_as_heading(line: str) -> bool:
    """A short line without closing sentence punctuation that is not a byline.

    >>> reads_as_heading("Harbour strike ends after pay deal"), reads_as_heading("The strike ended on Monday.")
    (True, False)
    """
    line = line.strip()
    if not line or len(line) > MAX_TITLE_CHARS or len(line.split()) > MAX_HEADING_WORDS:
        return False
    if line[-1] in ".,;:" or line[0].islower():  # a sentence or a fragment of one ("?" and "!" end headlines too)
        return False
    return not is_byline(line)


def from_text(text: str, markdown: bool = False) -> str:
    """The title a document's own text gives: a Markdown front-matter ``title:`` or first ``#`` heading (of the
    highest level present) when ``markdown``, else its first line when that reads as a heading; "" otherwise."""
    if markdown:
        front = _FRONT_MATTER_TITLE.match(text)
        if front:
            return from_metadata(front.group(1))
        headings = _MARKDOWN_HEADING.findall(text)
        if headings:
            top = min(len(level) for level, _ in headings)
            return from_metadata(next(title for level, title in headings if len(level) == top))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) >= 2 and reads_as_heading(lines[0].lstrip("#").strip()):
        return lines[0].lstrip("#").strip()
    return ""


def from_file_name(name: str) -> str:
    """A file name as a title: its stem, with underscores and hyphens read as spaces.

    >>> from_file_name("reports/annual_review-2024.pdf")
    'annual review 2024'
    """
    stem = PurePosixPath(name).stem
    return " ".join(re.split(r"[_\-\s]+", stem)).strip() or stem


def choose_title(name: str, text: str, metadata_title: str | None = None) -> str:
    """The first of: the file's own title property, a heading its text opens with, its file name."""
    markdown = PurePosixPath(name).suffix.lower() == ".md"
    return from_metadata(metadata_title) or from_text(text, markdown=markdown) or from_file_name(name)
