"""SQuAD v1.1 / v2.0 files as an evaluation corpus: each paragraph a document, each question a gold item."""

from __future__ import annotations

import json
import re
from pathlib import Path

from rag.evaluation.scoring import Evidence, GoldFormatError, GoldItem


def squad_to_corpus(squad_file: Path, docs_dir: Path, paragraphs: range | None = None) -> list[GoldItem]:
    """Write every paragraph of ``squad_file`` as a text file under ``docs_dir`` and return its questions: all of
    them, or those of the ``paragraphs`` given by position in the file (from 0, across articles). The corpus is
    always every paragraph, so a question is searched for among all of them.

    ``is_impossible`` questions become unanswerable items; answer texts become the evidence quotes; each item's
    ``source`` is its paragraph's file name.
    """
    try:
        data = json.loads(Path(squad_file).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GoldFormatError(f"{squad_file} is not a SQuAD file (not JSON: {exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise GoldFormatError(f"{squad_file} is not a SQuAD file (no 'data' list)")
    docs_dir.mkdir(parents=True, exist_ok=True)
    items: list[GoldItem] = []
    position = -1
    for article_no, article in enumerate(data["data"]):
        slug = re.sub(r"[^A-Za-z0-9]+", "_", str(article.get("title", "article")))[:40].strip("_") or "article"
        for paragraph_no, paragraph in enumerate(article.get("paragraphs", [])):
            name = f"{article_no:04d}_{slug}_{paragraph_no:03d}.txt"
            (docs_dir / name).write_text(paragraph["context"], encoding="utf-8")
            position += 1
            if paragraphs is not None and position not in paragraphs:
                continue
            for qa in paragraph.get("qas", []):
                impossible = bool(qa.get("is_impossible", False))
                answers = [] if impossible else list(dict.fromkeys(a["text"] for a in qa.get("answers", [])))
                items.append(
                    GoldItem(
                        id=str(qa["id"]),
                        question=qa["question"],
                        answers=answers,
                        answerable=not impossible and bool(answers),
                        evidence=[Evidence(name, a) for a in answers],
                        source=name,
                    )
                )
    return items


def parse_paragraphs(text: str) -> range:
    """``"0-21"`` -> ``range(0, 22)``; ``"7"`` -> ``range(7, 8)``.

    >>> parse_paragraphs("22-43")
    range(22, 44)
    """
    match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", text)
    if not match or (match.group(2) is not None and int(match.group(2)) < int(match.group(1))):
        raise GoldFormatError(f"paragraphs must be N or FIRST-LAST (e.g. 0-21), got {text!r}")
    first = int(match.group(1))
    return range(first, int(match.group(2) or first) + 1)
