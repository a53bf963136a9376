"""A running ``rag serve`` with the real models, asked through the official ``openai`` client: a plain answer with
its citations, a streamed one, and a follow-up read in its conversation."""

import os
import subprocess
import sys

import pytest

from rag.bench.server import free_port, wait_until_listening
from tests.conftest import DOCUMENTS, REPO

pytestmark = pytest.mark.slow
openai = pytest.importorskip("openai")
MACRON_QUESTION = "Which French president resisted the plan for a NATO office in Tokyo?"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "rag.interfaces.cli", "serve", "--docs", str(DOCUMENTS), "--index",
         str(tmp_path_factory.mktemp("api-index")), "--port", str(port), "--auth", "ann:s3cret"],
        cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    wait_until_listening(process, port)
    yield openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="ann:s3cret", max_retries=0, timeout=300)
    process.terminate()
    process.wait(timeout=30)


def test_an_openai_client_gets_a_cited_answer(client):
    completion = client.chat.completions.create(
        model="rag-assistant", messages=[{"role": "user", "content": MACRON_QUESTION}])
    message = completion.choices[0].message
    assert "Macron" in message.content and "[" in message.content
    citations = message.model_extra["citations"]
    assert citations and citations[0]["doc"] == "002_039194b7b7e47dc6.txt" and "Macron" in citations[0]["quote"]


def test_a_streamed_answer_arrives_in_pieces_and_ends_with_its_citations(client):
    stream = client.chat.completions.create(
        model="rag-assistant", messages=[{"role": "user", "content": MACRON_QUESTION}], stream=True)
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert "Macron" in text and chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["citations"][0]["doc"] == "002_039194b7b7e47dc6.txt"


def test_a_follow_up_is_answered_from_the_conversation(client):
    completion = client.chat.completions.create(model="rag-assistant", messages=[
        {"role": "user", "content": "Where would NATO open its first liaison office in Asia?"},
        {"role": "assistant", "content": "Tokyo [1]"},
        {"role": "user", "content": "Who resisted it?"},  # "it" is only known from the earlier turn
    ])
    reply = completion.choices[0].message.content  # the article names both Macron and France as resisting
    assert "Macron" in reply or "France" in reply, reply


def test_a_wrong_key_is_refused(client):
    other = openai.OpenAI(base_url=str(client.base_url), api_key="ann:wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        other.models.list()
    assert [model.id for model in client.models.list()] == ["rag-assistant"]
