"""``rag mcp`` with the fakes, through the SDK's own client connected in-process: the two tools and the documents
as resources."""

import asyncio
import json

from mcp import Client

from rag import Assistant, Settings
from rag.interfaces.mcp_server import build_server, document_uri
from tests.conftest import FakeGenerator

SETTINGS = Settings(chunk_tokens=8, chunk_overlap_tokens=0, top_k=2, candidates=4)


def call(server, tool: str, arguments: dict):
    async def run():
        async with Client(server) as client:
            return await client.call_tool(tool, arguments)

    return asyncio.run(run())


def structured(result) -> object:
    data = result.structured_content
    return data.get("result", data) if isinstance(data, dict) and set(data) == {"result"} else data


def test_the_tools_search_the_passages_and_answer_with_citations(docs_dir, tmp_path, fake_embedder):
    assistant = Assistant.from_folder(docs_dir, tmp_path / "index", SETTINGS, embedder=fake_embedder,
                                      generator=FakeGenerator(["In the Swiss Alps [1].", "In the Andes [1]."]))
    server = build_server(assistant)
    [passage] = structured(call(server, "search_documents", {"query": "Swiss Alps", "k": 1}))
    assert passage["doc"] == "rivers.txt" and "Swiss Alps" in passage["text"]
    assert passage["uri"] == document_uri("rivers.txt")
    answered = structured(call(server, "ask", {"question": "Where does the Rhine rise?"}))
    assert answered["answer"] == "In the Swiss Alps [1]." and answered["citations"][0]["doc"] == "rivers.txt"
    withheld = structured(call(server, "ask", {"question": "Where does the Rhine rise?"}))
    assert withheld["abstained"] and any(v["check"] == "supported" and not v["passed"] for v in withheld["verdicts"])
    assert withheld["closest"]["doc"] == "rivers.txt" and answered["closest"] is None


def test_every_indexed_document_is_a_resource_with_its_text(docs_dir, tmp_path, fake_embedder):
    assistant = Assistant.from_folder(docs_dir, tmp_path / "index", SETTINGS, embedder=fake_embedder,
                                      generator=FakeGenerator())
    server = build_server(assistant)

    async def run():
        async with Client(server) as client:
            listed = await client.list_resources()
            read = await client.read_resource(document_uri("rivers.txt"))
            return listed, read

    listed, read = asyncio.run(run())
    assert sorted(str(r.uri) for r in listed.resources) == [document_uri("cities.md"), document_uri("rivers.txt")]
    assert read.contents[0].text == assistant.index.documents["rivers.txt"].text
    assert json.dumps([r.name for r in listed.resources]) == '["cities.md", "rivers.txt"]'


def test_a_refused_question_reaches_the_client_with_its_reason(docs_dir, tmp_path, fake_embedder):
    assistant = Assistant.from_folder(docs_dir, tmp_path / "index", SETTINGS, embedder=fake_embedder,
                                      generator=FakeGenerator())
    result = call(build_server(assistant), "ask", {"question": "why " * 1000})
    assert result.is_error and "characters long; the limit is 2000" in result.content[0].text
    assert call(build_server(assistant), "ask", {"question": "   "}).content[0].text.endswith("the question is empty")


def test_the_tools_take_a_scope_of_documents(docs_dir, tmp_path, fake_embedder):
    assistant = Assistant.from_folder(docs_dir, tmp_path / "index", SETTINGS, embedder=fake_embedder,
                                      generator=FakeGenerator(["Paris [1]."]))
    server = build_server(assistant)
    passages = structured(call(server, "search_documents", {"query": "Rhine Alps", "k": 3,
                                                             "documents": ["cities.md"]}))
    assert passages and {p["doc"] for p in passages} == {"cities.md"}
    answered = structured(call(server, "ask", {"question": "Which city?", "documents": ["cities.md"]}))
    assert {c["doc"] for c in answered["citations"]} <= {"cities.md"}
    refused = call(server, "ask", {"question": "Which city?", "documents": ["nowhere/*"]})
    assert refused.is_error and "no document is in the scope" in refused.content[0].text
