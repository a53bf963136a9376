"""Asking within chosen documents, end to end with the real models: the default articles plus a made-up briefing
that contradicts them. Scoped to the briefing, the answer comes from it; scoped to the articles, from them; through
Python, the HTTP API, MCP and the CLI, and with the index in Milvus."""

import asyncio
import shutil

import pytest
from fastapi.testclient import TestClient

from tests.conftest import DOCUMENTS
from tests.integration.test_cli import rag

pytestmark = pytest.mark.slow

QUESTION = "In which city is NATO's planned liaison office in Japan?"
BRIEFING = ("Internal briefing, made up for this test.\n\nThe planned NATO liaison office in Japan will be in Osaka, "
            "the briefing says, not in the capital.")
ARTICLES, MADE_UP = ("0*.txt",), ("briefing.txt",)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    docs = tmp_path_factory.mktemp("scoped") / "docs"
    shutil.copytree(DOCUMENTS, docs)
    (docs / "briefing.txt").write_text(BRIEFING, encoding="utf-8")
    return docs


@pytest.fixture(scope="module")
def assistant(folder, real_assistant, tmp_path_factory):
    from rag import Assistant

    return Assistant.from_folder(folder, tmp_path_factory.mktemp("scoped-index"), real_assistant.settings,
                                 real_assistant.generator, real_assistant.embedder)


def cited(citations) -> set[str]:
    return {c["doc"] if isinstance(c, dict) else c.doc for c in citations}


@pytest.mark.parametrize(("documents", "city", "doc"), [(MADE_UP, "Osaka", "briefing.txt"),
                                                        (ARTICLES, "Tokyo", "002_039194b7b7e47dc6.txt")])
def test_a_scoped_question_answers_from_the_scope(assistant, documents, city, doc):
    from rag import Scope

    answer = assistant.ask(QUESTION, scope=Scope(documents))
    assert city in answer.text and not answer.abstained, (answer.text, answer.verdicts)
    assert cited(answer.citations) == {doc}


def test_the_api_and_mcp_take_the_same_scope(assistant):
    from mcp import Client

    from rag.interfaces.mcp_server import build_server
    from rag.interfaces.openai_api import build_api

    client = TestClient(build_api(assistant, None), base_url="http://127.0.0.1:8000")
    for documents, city in ((MADE_UP, "Osaka"), (ARTICLES, "Tokyo")):
        body = client.post("/v1/chat/completions", json={
            "messages": [{"role": "user", "content": QUESTION}], "documents": list(documents)}).json()
        message = body["choices"][0]["message"]
        assert city in message["content"], message

    async def ask(documents):
        async with Client(build_server(assistant)) as mcp:
            return await mcp.call_tool("ask", {"question": QUESTION, "documents": list(documents)})

    for documents, city in ((MADE_UP, "Osaka"), (ARTICLES, "Tokyo")):
        result = asyncio.run(ask(documents)).structured_content
        assert city in result["answer"], result


def test_the_cli_and_milvus_take_the_same_scope(folder, tmp_path):
    milvus = ("--store", "milvus", "--milvus-uri", str(tmp_path / "milvus.db"))
    for documents, city in ((MADE_UP, "Osaka"), (ARTICLES, "Tokyo")):
        only = [arg for pattern in documents for arg in ("--only", pattern)]
        result = rag("ask", QUESTION, "--docs", str(folder), "--index", str(tmp_path / "index"), *milvus, *only,
                     "--json")
        assert result.returncode == 0, result.stderr
        assert city in result.stdout, result.stdout
    refused = rag("ask", QUESTION, "--docs", str(folder), "--index", str(tmp_path / "index"), *milvus,
                  "--only", "reports/*")
    assert refused.returncode == 2 and "no document is in the scope" in refused.stderr
