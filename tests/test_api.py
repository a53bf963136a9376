"""``rag serve``'s HTTP API with the fakes: OpenAI-shaped answers with citations and verdicts, plain and streamed,
follow-ups from the conversation, search and documents, and the same safety as the chat page."""

import asyncio
import base64
import json
import threading
import time

import pytest
from fastapi.testclient import TestClient

from rag import Assistant, Settings
from rag.interfaces.openai_api import ClientGone, Gate, HTTPException, Message, build_api, conversation
from tests.conftest import FakeGenerator, StoppableGenerator

SETTINGS = Settings(chunk_tokens=8, chunk_overlap_tokens=0, top_k=2, candidates=4)
ASK = {"model": "rag-assistant", "messages": [{"role": "user", "content": "Where does the Rhine rise?"}]}


@pytest.fixture
def serve(docs_dir, tmp_path, fake_embedder):
    def make(*replies: str, auth=None) -> tuple[TestClient, FakeGenerator]:
        generator = FakeGenerator(list(replies))
        assistant = Assistant.from_folder(docs_dir, tmp_path / "index", SETTINGS, generator=generator,
                                          embedder=fake_embedder)
        return TestClient(build_api(assistant, auth), base_url="http://127.0.0.1:8000"), generator

    return make


def test_an_answer_comes_in_the_openai_shape_with_its_citations(serve):
    client, _ = serve("In the Swiss Alps [1].")
    body = client.post("/v1/chat/completions", json=ASK).json()
    message = body["choices"][0]["message"]
    assert body["object"] == "chat.completion" and body["choices"][0]["finish_reason"] == "stop"
    assert message["role"] == "assistant" and message["content"] == "In the Swiss Alps [1]."
    assert message["abstained"] is False and message["closest"] is None
    [citation] = message["citations"]
    assert citation["doc"] == "rivers.txt" and "Swiss Alps" in citation["quote"]
    assert set(citation) == {"n", "doc", "chunk_id", "quote", "start", "end", "page", "place"}


def test_an_abstention_is_a_message_without_citations_that_says_which_check_withheld_it(serve):
    client, _ = serve("In the Andes [1].")  # not what the passage says
    message = client.post("/v1/chat/completions", json=ASK).json()["choices"][0]["message"]
    assert message["abstained"] is True and message["citations"] == []
    assert any(not v["passed"] and v["check"] == "supported" and "andes" in v["reason"] for v in message["verdicts"])
    assert "Rhine" in message["closest"]["quote"]  # what the documents do hold, to ask again in their terms


def test_a_streamed_answer_adds_up_to_the_answer_and_ends_with_its_citations(serve):
    client, _ = serve("In the Swiss Alps [1].")
    with client.stream("POST", "/v1/chat/completions", json=ASK | {"stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    plain, _ = serve("In the Swiss Alps [1].")
    assert text == plain.post("/v1/chat/completions", json=ASK).json()["choices"][0]["message"]["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["citations"][0]["doc"] == "rivers.txt"


def test_the_earlier_messages_are_the_conversation_a_follow_up_is_read_in():
    question, turns = conversation([
        Message(role="system", content="Be brief."),
        Message(role="user", content="Which river flows through Vienna?"),
        Message(role="assistant", content="The Danube [1]"),
        Message(role="user", content=[{"type": "text", "text": "How long is it?"}]),
    ])
    assert question == "How long is it?"
    assert [(t.question, t.answer, t.abstained) for t in turns] == [
        ("Which river flows through Vienna?", "The Danube [1]", False)]
    with pytest.raises(HTTPException):
        conversation([Message(role="assistant", content="Hello")])


def test_a_follow_up_reaches_the_model_with_the_earlier_turn(serve):
    client, generator = serve("The Danube [1].", "2,850 km [1].")
    client.post("/v1/chat/completions", json={"messages": [
        {"role": "user", "content": "Which river flows through Vienna?"},
        {"role": "assistant", "content": "The Danube [1]"},
        {"role": "user", "content": "How long is it?"}]})
    prompt = " ".join(m["content"] for m in generator.prompts[-1])
    assert "Which river flows through Vienna?" in prompt and "How long is it?" in prompt


def test_search_models_and_documents(serve, docs_dir):
    client, _ = serve()
    assert client.get("/v1/models").json()["data"][0]["id"] == "rag-assistant"
    results = client.post("/v1/search", json={"query": "Swiss Alps", "k": 1}).json()["results"]
    assert len(results) == 1 and results[0]["doc"] == "rivers.txt" and "Swiss Alps" in results[0]["text"]
    names = [d["name"] for d in client.get("/v1/documents").json()["documents"]]
    assert names == ["cities.md", "rivers.txt"]


def test_an_uploaded_document_is_indexed_and_a_refused_one_says_why(serve, docs_dir):
    client, _ = serve()
    files = [("files", ("lakes.txt", b"Lake Constance lies on the Rhine.", "text/plain")),
             ("files", ("tool.exe", b"MZ", "application/octet-stream"))]
    body = client.post("/v1/documents", files=files).json()
    assert (docs_dir / "lakes.txt").exists() and not (docs_dir / "tool.exe").exists()
    assert len(body["refused"]) == 1 and "tool.exe" in body["refused"][0]
    assert "lakes.txt" in [d["name"] for d in client.get("/v1/documents").json()["documents"]]


@pytest.mark.parametrize("name", ["..", "foo/..", "../../../tmp/x.txt", "a\x00b.txt", "..txt"])
def test_hostile_upload_names_get_an_answer_not_a_500(serve, docs_dir, name):
    client, _ = serve()
    response = client.post("/v1/documents", files=[("files", (name, b"Lake Constance lies on the Rhine.", "text/plain"))])
    assert response.status_code == 200
    stored = sorted(p.name for p in docs_dir.iterdir())
    assert response.json()["refused"] or len(stored) == 3  # refused, or saved under one plain name inside
    assert all("/" not in n and not n.startswith(".") for n in stored)


def test_a_copy_and_a_re_upload_keep_every_file_and_the_index_usable(serve, docs_dir, tmp_path):
    client, _ = serve()
    copy = [("files", ("copy.txt", (docs_dir / "rivers.txt").read_bytes(), "text/plain"))]
    assert client.post("/v1/documents", files=copy).status_code == 200
    again = [("files", ("rivers.txt", b"The Rhine flows into the North Sea.", "text/plain"))]
    assert client.post("/v1/documents", files=again).status_code == 200  # a later upload still works
    names = [d["name"] for d in client.get("/v1/documents").json()["documents"]]
    assert names == ["cities.md", "copy.txt", "rivers.txt"]
    kept = list((tmp_path / "index" / "removed").iterdir())
    assert len(kept) == 1 and "Swiss Alps" in kept[0].read_text()  # the replaced file, not destroyed


def test_with_a_login_every_route_needs_it_as_basic_auth_or_as_an_api_key(serve):
    client, _ = serve("In the Swiss Alps [1].", "In the Swiss Alps [1].", auth=("ada", "s3cret"))
    assert client.get("/v1/models").status_code == 401
    assert client.get("/v1/models", headers={"Authorization": "Bearer ada:wrong"}).status_code == 401
    assert client.get("/v1/models", headers={"Authorization": "Bearer ada:s3cret"}).status_code == 200
    basic = base64.b64encode(b"ada:s3cret").decode()
    assert client.get("/v1/models", headers={"Authorization": f"Basic {basic}"}).status_code == 200
    assert client.get("/health").status_code == 200  # for a load balancer's probe; says nothing


def test_the_api_pages_need_the_login_too(serve):
    client, _ = serve(auth=("ada", "s3cret"))
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers={"Authorization": "Bearer ada:s3cret"}).status_code == 200, path
    assert "/v1/chat/completions" in client.get("/openapi.json", auth=("ada", "s3cret")).json()["paths"]


def test_a_page_whose_name_was_re_pointed_at_this_machine_is_refused(serve):
    client, _ = serve()  # no login: the default, where DNS rebinding matters most
    rebound = {"Host": "evil.example:8000", "Origin": "http://evil.example:8000"}
    assert client.get("/v1/models", headers=rebound).status_code == 421
    assert client.get("/v1/models", headers={"Host": "localhost:8000"}).status_code == 200


def test_requests_from_another_sites_page_and_oversized_bodies_are_refused(serve):
    client, _ = serve()
    assert client.get("/v1/models", headers={"Origin": "https://evil.example"}).status_code == 403
    huge = {"model": "rag-assistant", "messages": [{"role": "user", "content": "x" * (2 << 20)}]}
    response = client.post("/v1/chat/completions", json=huge)
    assert response.status_code == 413 and "error" in response.json()


def test_a_question_over_the_length_limit_is_a_clear_400(serve):
    client, _ = serve()
    response = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "why " * 600}]})
    assert response.status_code == 400 and "characters" in response.json()["error"]["message"]


def test_an_earlier_message_over_the_length_limit_is_a_clear_400_too(serve):
    client, _ = serve()
    messages = [{"role": "user", "content": "why " * 5000}, {"role": "assistant", "content": "Because [1]."},
                {"role": "user", "content": "And then?"}]
    response = client.post("/v1/chat/completions", json={"messages": messages})
    assert response.status_code == 400 and "earlier message 1" in response.json()["error"]["message"]


def hold(gate: Gate, entered: threading.Event, release: threading.Event, finished: list, name: str,
         gone: threading.Event | None = None) -> threading.Thread:
    def run():
        try:
            with gate.place(gone):
                entered.set()
                release.wait(timeout=10)
                finished.append(name)
        except ClientGone:
            finished.append(f"{name} left")

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def until(condition) -> None:
    for _ in range(500):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("timed out")


def test_beyond_the_queue_a_request_is_refused_at_once_with_retry_after():
    gate, release, finished = Gate(size=1), threading.Event(), []
    running = hold(gate, threading.Event(), release, finished, "first")
    until(lambda: gate._running)
    waiting = hold(gate, threading.Event(), release, finished, "second")
    until(lambda: gate.waiting == 1)
    with pytest.raises(HTTPException) as refused, gate.place():
        pass
    assert refused.value.status_code == 503 and refused.value.headers["Retry-After"]
    release.set()
    running.join()
    waiting.join()
    assert finished == ["first", "second"]


def test_requests_wait_their_turn_first_come_first_served_and_one_that_leaves_frees_its_place():
    gate, release, finished = Gate(size=8), threading.Event(), []
    threads = [hold(gate, threading.Event(), release, finished, "0")]
    until(lambda: gate._running)
    left = threading.Event()
    for n in range(1, 6):
        threads.append(hold(gate, threading.Event(), release, finished, str(n), left if n == 3 else None))
        until(lambda n=n: gate.waiting == n)
    left.set()  # the third waiter's client disconnects
    until(lambda: finished == ["3 left"])
    assert gate.waiting == 4
    release.set()
    for thread in threads:
        thread.join()
    assert finished == ["3 left", "0", "1", "2", "4", "5"]


def test_the_queue_route_says_whether_the_model_is_answering_and_how_many_wait(docs_dir, tmp_path, fake_embedder):
    generator = StoppableGenerator(["word"] * 40, pause_s=0.05)  # 2 s of reply
    assistant = Assistant.from_folder(docs_dir, tmp_path / "index", SETTINGS, generator=generator,
                                      embedder=fake_embedder)
    client = TestClient(build_api(assistant), base_url="http://127.0.0.1:8000")
    assert client.get("/v1/queue").json() == {"answering": False, "waiting": 0, "places": 16}
    asking = threading.Thread(target=client.post, args=("/v1/chat/completions",), kwargs={"json": ASK})
    asking.start()
    until(lambda: client.get("/v1/queue").json()["answering"])
    asking.join()
    assert client.get("/v1/queue").json()["answering"] is False


def test_a_client_that_disconnects_stops_its_answer_being_written(docs_dir, tmp_path, fake_embedder):
    generator = StoppableGenerator(["word"] * 200, pause_s=0.05)  # 10 s of reply
    assistant = Assistant.from_folder(docs_dir, tmp_path / "index", SETTINGS, generator=generator,
                                      embedder=fake_embedder)
    app = build_api(assistant)
    asked = []

    async def receive():  # the client sends its question, waits half a second, then leaves
        if not asked:
            asked.append(time.monotonic())
            return {"type": "http.request", "body": json.dumps(ASK).encode(), "more_body": False}
        while time.monotonic() - asked[0] < 0.5:
            await asyncio.sleep(0.01)
        return {"type": "http.disconnect"}

    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "query_string": b"",
             "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000), "scheme": "http", "root_path": "",
             "http_version": "1.1"}
    started = time.monotonic()
    asyncio.run(app(scope, receive, send))
    assert time.monotonic() - started < 3  # not the 10 s of the whole reply
    assert generator.closed_after is not None and generator.closed_after < 60
    assert sent[0]["status"] == 499



def test_a_request_naming_documents_is_answered_and_searched_from_them_alone(serve):
    client, generator = serve("Paris [1].")
    scoped = {**ASK, "documents": ["cities.md"]}
    message = client.post("/v1/chat/completions", json=scoped).json()["choices"][0]["message"]
    assert "Swiss Alps" not in generator.prompts[-1][-1]["content"]  # no passage of rivers.txt was read
    assert {c["doc"] for c in message["citations"]} <= {"cities.md"}
    results = client.post("/v1/search", json={"query": "Rhine", "k": 5, "documents": ["cities.md"]}).json()
    assert results["results"] and {r["doc"] for r in results["results"]} == {"cities.md"}
    nothing = client.post("/v1/search", json={"query": "Rhine", "documents": ["reports/*"]})
    assert nothing.status_code == 400 and "no document is in the scope" in nothing.json()["error"]["message"]
    backwards = client.post("/v1/search", json={"query": "Rhine", "where": {"modified_after": "2030-01-01",
                                                                             "modified_before": "2020-01-01"}})
    assert backwards.status_code == 400 and "wrong way round" in backwards.json()["error"]["message"]
