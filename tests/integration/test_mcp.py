"""``rag mcp`` over stdio with the real models, driven by the SDK's own stdio client as an editor would run it."""

import asyncio
import os
import sys

import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import DOCUMENTS, REPO

pytestmark = pytest.mark.slow


def test_an_mcp_client_lists_the_documents_searches_and_gets_a_cited_answer(tmp_path):
    kept = {k: v for k, v in os.environ.items() if k.startswith(("RAG_", "HOME", "XDG_"))}  # where the cache is
    server = StdioServerParameters(
        command=sys.executable, args=["-m", "rag.interfaces.cli", "mcp", "--docs", str(DOCUMENTS), "--index", str(tmp_path)],
        cwd=REPO, env={"HF_HUB_OFFLINE": "1", **kept},
    )

    async def session():
        async with Client(server, read_timeout_seconds=300) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            resources = [str(r.uri) for r in (await client.list_resources()).resources]
            found = await client.call_tool("search_documents", {"query": "NATO liaison office in Tokyo", "k": 3})
            answer = await client.call_tool(
                "ask", {"question": "Which French president resisted the plan for a NATO office in Tokyo?"})
            return tools, resources, found, answer

    tools, resources, found, answer = asyncio.run(session())
    assert tools == {"search_documents", "ask"}
    assert sorted(resources) == sorted(f"document:///{p.name}" for p in DOCUMENTS.glob("*.txt"))
    assert "Tokyo" in found.content[0].text
    assert "Macron" in answer.structured_content["answer"] and answer.structured_content["citations"]
