"""Answers kept with the feedback people give on them, and that feedback made into gold questions: a correction
becomes the gold answer with the cited sentence as evidence, "the documents don't say" an unanswerable question."""

import json

import pytest
from fastapi.testclient import TestClient

from rag import Assistant, Settings
from rag.evaluation.scoring import load_gold
from rag.interfaces.cli import main
from rag.interfaces.openai_api import build_api
from rag.records.store import Records, UnknownAnswer
from rag.types import Answer, Citation, Verdict
from tests.conftest import FakeGenerator

CITED = Citation(1, "harbour.txt", "Harbour", "c-1", "The ferry first sailed in 1998.", 10, 41)
ANSWER = Answer("When did the ferry first sail?", "1999 [1]", [CITED], False,
                verdicts=[Verdict("supported", True, "all words found")])


@pytest.fixture
def records(tmp_path):
    kept = Records(tmp_path / "records.sqlite")
    kept.remember("a-1", ANSWER, "qwen (transformers)", {"top_k": 4})
    yield kept
    kept.close()


def test_a_correction_becomes_the_gold_answer_with_the_cited_sentence_as_evidence(records):
    given = records.add_feedback("a-1", "down", correction="  in 1998 ")
    assert given.gold_item() == {
        "id": f"feedback-{given.id}", "question": "When did the ferry first sail?", "answers": ["in 1998"],
        "answerable": True, "evidence": [{"doc": "harbour.txt", "quote": "The ferry first sailed in 1998."}],
        "source": "feedback down on a-1"}


def test_the_documents_dont_say_becomes_an_unanswerable_question_and_a_bare_thumbs_down_makes_none(records):
    records.add_feedback("a-1", "down", unanswerable=True)
    records.add_feedback("a-1", "down")
    records.add_feedback("a-1", "up")
    items, left_out = records.gold_items()
    assert [(i["answerable"], i["answers"]) for i in items] == [(False, []), (True, ["1999"])]  # up: as answered
    assert left_out == 1


def test_feedback_on_an_answer_never_given_is_refused_and_nothing_is_kept(records):
    with pytest.raises(UnknownAnswer):
        records.add_feedback("a-2", "up")
    with pytest.raises(ValueError, match="rating"):
        records.add_feedback("a-1", "sideways")
    assert records.feedback() == []


def test_records_outlive_the_process_and_a_corrupt_file_is_set_aside_not_a_crash(tmp_path):
    path = tmp_path / "records.sqlite"
    first = Records(path)
    first.remember("a-1", ANSWER, "m", {})
    first.add_feedback("a-1", "up")
    first.close()
    assert [f.rating for f in Records(path).feedback()] == ["up"]
    path.write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"records.sqlite{suffix}").unlink(missing_ok=True)
    reopened = Records(path)
    assert reopened.set_aside is not None and reopened.set_aside.read_bytes().startswith(b"this is not")
    assert reopened.feedback() == []
    reopened.remember("a-9", ANSWER, "m", {})  # and it works


def test_the_api_keeps_each_answer_under_its_completion_id_for_feedback(docs_dir, tmp_path, fake_embedder):
    assistant = Assistant.from_folder(docs_dir, tmp_path / "index", Settings(chunk_tokens=8, chunk_overlap_tokens=0),
                                      generator=FakeGenerator(["In the Swiss Alps [1]."]), embedder=fake_embedder)
    client = TestClient(build_api(assistant), base_url="http://127.0.0.1:8000")
    body = client.post("/v1/chat/completions",
                       json={"messages": [{"role": "user", "content": "Where does the Rhine rise?"}]}).json()
    said = client.post("/v1/feedback", json={"completion_id": body["id"], "rating": "down",
                                             "correction": "the Swiss Alps"})
    assert said.status_code == 200 and said.json()["becomes_gold_item"] is True
    assert client.post("/v1/feedback", json={"completion_id": "chatcmpl-none", "rating": "up"}).status_code == 404
    assert client.post("/v1/feedback", json={"completion_id": body["id"], "rating": "meh"}).status_code == 422
    [kept] = Records(assistant.settings.records_path).feedback()
    assert kept.question == "Where does the Rhine rise?" and kept.citations[0]["doc"] == "rivers.txt"


def test_rag_feedback_export_writes_gold_questions_that_rag_eval_reads(records, tmp_path, capsys):
    records.add_feedback("a-1", "down", correction="1998")
    records.add_feedback("a-1", "down", unanswerable=True)
    out = tmp_path / "from-feedback.jsonl"
    assert main(["feedback", "export", "--index", str(tmp_path), "--out", str(out)]) == 0
    assert "2 gold questions written" in capsys.readouterr().out
    gold = load_gold(out)
    assert [(g.answers, g.answerable) for g in gold] == [(["1998"], True), ([], False)]
    assert gold[0].evidence[0].quote == "The ferry first sailed in 1998."
    assert main(["feedback", "list", "--index", str(tmp_path)]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 2 and "correction: 1998" in listed[0] and "the documents don't say" in listed[1]
    assert json.loads(out.read_text().splitlines()[0])["source"] == "feedback down on a-1"
