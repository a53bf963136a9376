"""Answers kept with the feedback people give on them, and that feedback made into gold questions: a correction
becomes the gold answer with the cited sentence as evidence, "the documents don't say" an unanswerable question."""

import json

import pytest
from fastapi.testclient import TestClient

from rag import Assistant, Settings
from rag.evaluation.scoring import load_gold
from rag.interfaces.cli import main
from rag.interfaces.openai_api import build_api
from rag.records.store import Records, UnknownAnswer, UnknownConversation
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


CLOSEST = Citation(1, "harbour.txt", "Harbour", "c-1", "The ferry was built at the old yard.", 42, 78)
FOLLOW_UP = Answer("Who built it?", "I don't know.", [], True,
                   verdicts=[Verdict("supported", False, "the documents do not name a builder")], closest=CLOSEST)


def test_a_conversation_is_kept_answer_by_answer_and_reopens_with_its_sources_and_reasons(records):
    records.remember("a-2", ANSWER, "m", {}, conversation="c-1")
    records.remember("a-3", FOLLOW_UP, "m", {}, conversation="c-1")
    [summary] = records.conversations()
    assert (summary.id, summary.title, summary.answers) == ("c-1", "When did the ferry first sail?", 2)
    first, second = records.conversation("c-1")
    assert first.answer_id == "a-2" and first.answer.citations == [CITED] and first.answer.text == "1999 [1]"
    assert second.answer.abstained and second.answer.withheld_by[0].reason == "the documents do not name a builder"
    assert second.answer.closest == CLOSEST  # what the documents do hold, quoted again on reopening


def test_each_login_sees_renames_and_deletes_only_its_own_conversations(records):
    records.remember("a-2", ANSWER, "m", {}, owner="ana", conversation="c-ana")
    records.remember("a-3", ANSWER, "m", {}, owner="ben", conversation="c-ben")
    assert [c.id for c in records.conversations("ana")] == ["c-ana"] and records.conversations() == []
    for other in (lambda: records.conversation("c-ben", "ana"), lambda: records.delete_conversation("c-ben", "ana"),
                  lambda: records.rename_conversation("c-ben", "mine now", "ana"),
                  lambda: records.remember("a-4", ANSWER, "m", {}, owner="ana", conversation="c-ben")):
        with pytest.raises(UnknownConversation):
            other()
    assert records.rename_conversation("c-ana", "  Ferry\n dates ", "ana") == "Ferry dates"
    with pytest.raises(ValueError, match="empty"):
        records.rename_conversation("c-ana", "   ", "ana")
    assert [c.title for c in records.conversations("ana")] == ["Ferry dates"]
    records.delete_conversation("c-ana", "ana")
    assert records.conversations("ana") == [] and [c.answers for c in records.conversations("ben")] == [1]


def test_deleting_a_conversation_keeps_the_answers_feedback_made_into_test_questions(records):
    records.remember("a-2", ANSWER, "m", {}, conversation="c-1")
    records.remember("a-3", FOLLOW_UP, "m", {}, conversation="c-1")
    records.add_feedback("a-2", "down", correction="in 1998")
    records.delete_conversation("c-1")
    assert [i["answers"] for i in records.gold_items()[0]] == [["in 1998"]]
    with pytest.raises(UnknownAnswer):  # the other answer went with its conversation
        records.add_feedback("a-3", "up")


def test_the_latest_conversation_is_listed_first_and_a_long_question_makes_a_short_title(records):
    long = Answer("Which " + "very " * 40 + "long question is this?", "A long one.")
    records.remember("a-2", long, "m", {}, conversation="c-old")
    records.remember("a-3", ANSWER, "m", {}, conversation="c-new")
    new, old = records.conversations()
    assert (new.id, old.id) == ("c-new", "c-old")
    assert len(old.title) <= 80 and old.title.endswith("…")


def test_conversations_outlive_the_process(tmp_path):
    path = tmp_path / "records.sqlite"
    first = Records(path)
    first.remember("a-1", ANSWER, "m", {}, conversation="c-1")
    first.close()
    reopened = Records(path)
    assert [t.answer.citations for t in reopened.conversation("c-1")] == [[CITED]]


def test_an_answer_to_a_conversation_deleted_meanwhile_starts_it_again_with_that_answer(records):
    records.remember("a-2", ANSWER, "m", {}, conversation="c-1")
    records.delete_conversation("c-1")  # in another tab
    records.remember("a-3", FOLLOW_UP, "m", {}, conversation="c-1")
    [summary] = records.conversations()
    assert (summary.title, summary.answers) == ("Who built it?", 1)
    assert [t.answer_id for t in records.conversation("c-1")] == ["a-3"]
