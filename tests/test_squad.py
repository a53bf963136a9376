"""SQuAD files become a corpus of paragraph documents and gold items."""

import json

import pytest

from rag.evaluation.scoring import evidence_spans
from rag.evaluation.squad import parse_paragraphs, squad_to_corpus
from rag.ingest.loaders import load_folder

SQUAD = {
    "version": "v2.0",
    "data": [
        {
            "title": "Alpine Rivers",
            "paragraphs": [
                {
                    "context": "The Rhine rises in the Swiss Alps. It flows into the North Sea.",
                    "qas": [
                        {"id": "q1", "question": "Where does the Rhine rise?", "is_impossible": False,
                         "answers": [{"text": "the Swiss Alps", "answer_start": 19},
                                     {"text": "the Swiss Alps", "answer_start": 19}]},
                        {"id": "q2", "question": "How deep is the Rhine?", "is_impossible": True, "answers": []},
                    ],
                }
            ],
        }
    ],
}


def test_paragraphs_become_documents_and_questions_gold_items(tmp_path):
    squad = tmp_path / "squad.json"
    squad.write_text(json.dumps(SQUAD))
    items = squad_to_corpus(squad, tmp_path / "docs")
    [document] = load_folder(tmp_path / "docs").documents
    assert document.name == "0000_Alpine_Rivers_000.txt" and document.text.startswith("The Rhine")
    assert [(i.id, i.answerable, i.answers) for i in items] == [("q1", True, ["the Swiss Alps"]), ("q2", False, [])]
    [span] = evidence_spans(items[0], {document.name: document})
    assert document.text[span.start : span.end] == "the Swiss Alps"


def test_a_file_that_is_not_squad_is_rejected(tmp_path):
    (tmp_path / "x.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a SQuAD file"):
        squad_to_corpus(tmp_path / "x.json", tmp_path / "docs")


def test_questions_of_some_paragraphs_are_asked_against_all_of_them(tmp_path):
    two = {"version": "v2.0", "data": [{"title": "T", "paragraphs": [
        {"context": "Alpha text.", "qas": [{"id": "a", "question": "A?", "answers": [{"text": "Alpha"}]}]},
        {"context": "Beta text.", "qas": [{"id": "b", "question": "B?", "is_impossible": True, "answers": []}]},
    ]}]}
    squad = tmp_path / "squad.json"
    squad.write_text(json.dumps(two))
    items = squad_to_corpus(squad, tmp_path / "docs", parse_paragraphs("1"))
    assert [(i.id, i.source) for i in items] == [("b", "0000_T_001.txt")]
    assert len(load_folder(tmp_path / "docs").documents) == 2  # the corpus is every paragraph


@pytest.mark.parametrize("text", ["", "3-1", "a-b", "1-"])
def test_a_paragraph_range_that_is_not_one_is_refused(text):
    with pytest.raises(ValueError, match="paragraphs must be"):
        parse_paragraphs(text)
