"""The model-server backend against a tiny stand-in for an OpenAI-compatible server (the real one, llama.cpp's,
is tested in tests/integration/test_model_server.py): streamed pieces, signals from log-probabilities, retries,
and plain errors that name the server."""

import json

import httpx
import pytest

from rag.models.base import AnswerConstraint, GeneratorError
from rag.models.openai_generator import OpenAICompatibleGenerator

URL = "http://models.example:8080/v1"


def token(text: str, logprob: float, top: list[tuple[str, float]] = ()) -> dict:
    return {"token": text, "logprob": logprob, "top_logprobs": [{"token": t, "logprob": p} for t, p in top]}


def sse(pieces: list[tuple[str, dict | None]]) -> bytes:
    lines = []
    for text, logprob in pieces:
        choice = {"delta": {"content": text}, "logprobs": {"content": [logprob]} if logprob else None}
        lines.append("data: " + json.dumps({"choices": [choice]}))
    return ("\n\n".join([*lines, "data: [DONE]"]) + "\n\n").encode()


class Server:
    """Answers /models and /chat/completions from queued replies, recording each request body."""

    def __init__(self, replies: list[httpx.Response]) -> None:
        self.replies = replies
        self.bodies: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "qwen-served"}]})
        if request.url.path.endswith("/tokenize"):
            return httpx.Response(200, json={"tokens": [1, 2, 3]})
        self.bodies.append(json.loads(request.content))
        return self.replies.pop(0)


def generator(server: Server) -> OpenAICompatibleGenerator:
    return OpenAICompatibleGenerator(URL, transport=httpx.MockTransport(server), retries=2)


def test_a_reply_streams_in_pieces_and_its_log_probabilities_become_signals(monkeypatch):
    server = Server([httpx.Response(200, content=sse([
        ("The north", token("The", -0.1, [("The", -0.1), ("I", -2.3)])), (" quay", token(" quay", -0.5)),
    ]))])
    signals = []
    pieces = list(generator(server).stream([{"role": "user", "content": "Where?"}], 24, on_signals=signals.append))
    assert pieces == ["The north", " quay"]
    [body] = server.bodies
    assert body["model"] == "qwen-served" and body["temperature"] == 0.0 and body["max_tokens"] == 24
    assert body["stream"] is True and body["logprobs"] is True
    [seen] = signals
    assert seen.tokens == 2 and seen.min_logprob == -0.5 and seen.mean_logprob == pytest.approx(-0.3)
    assert seen.refusal_prob == pytest.approx(0.1, abs=0.01)  # exp(-2.3): "I" was the runner-up first token


def test_a_failing_server_is_retried_before_the_reply_starts(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)
    server = Server([httpx.Response(503), httpx.Response(200, content=sse([("1998", None)]))])
    assert list(generator(server).stream([{"role": "user", "content": "When?"}], 8)) == ["1998"]


def test_a_server_without_log_probabilities_is_asked_without_them_and_gives_no_signals():
    server = Server([httpx.Response(400, text="logprobs not supported"), httpx.Response(200, content=sse([
        ("1998", None)]))])
    signals = []
    assert list(generator(server).stream([{"role": "user", "content": "When?"}], 8,
                                         on_signals=signals.append)) == ["1998"]
    assert "logprobs" not in server.bodies[1] and signals == []


def test_quote_mode_says_plainly_that_it_needs_the_local_model():
    with pytest.raises(GeneratorError, match="quote mode needs the local model"):
        list(generator(Server([])).stream([], 8, AnswerConstraint(("text",))))


def test_the_verifier_question_reads_the_first_tokens_probabilities():
    reply = {"choices": [{"message": {"content": "Yes"}, "logprobs": {"content": [
        token("Yes", -0.2, [("Yes", -0.2), ("No", -1.8)])]}}]}
    server = Server([httpx.Response(200, json=reply)])
    yes, no = generator(server).option_probabilities([{"role": "user", "content": "?"}], ["Yes", "No"])
    assert yes == pytest.approx(0.832, abs=0.01) and yes + no == pytest.approx(1.0)
    assert server.bodies[0]["max_tokens"] == 1


def test_an_unreachable_server_is_named():
    with pytest.raises(GeneratorError, match="the model server at http://127.0.0.1:9/v1 does not answer"):
        OpenAICompatibleGenerator("http://127.0.0.1:9/v1", retries=0)


def test_tokens_are_counted_by_the_server():
    assert generator(Server([])).count_tokens("three tokens here") == 3
