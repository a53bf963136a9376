"""``rag mcp``: the assistant as an MCP server over stdio (the official ``mcp`` SDK), for editors and agents.

Tools: ``search_documents(query, k)``, the passages with their file, offsets and text, and ``ask(question)``, a
cited answer or an abstention with the checks that withheld it. Resources: each indexed document, as
``document:///<file name>``. Nothing is written to stdout but the protocol (the index report goes to stderr).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resources import FunctionResource

from rag.assistant import Assistant, QuestionError
from rag.types import Scope

SCHEME = "document:///"


def document_uri(name: str) -> str:
    """The resource URI of an indexed document (its name relative to the documents folder).

    >>> document_uri("reports/2024 summary.md")
    'document:///reports/2024%20summary.md'
    """
    return SCHEME + quote(name)


def build_server(assistant: Assistant) -> MCPServer:
    """The MCP server over ``assistant``: its two tools and its documents as resources."""
    server = MCPServer(
        "rag-assistant",
        instructions="Answers questions from a local folder of documents, with citations of the exact passages; "
        "says it does not know when the documents do not say. Use search_documents to read passages, ask for an "
        "answer.",
    )

    @server.tool()
    def search_documents(query: str, k: int = 5, documents: list[str] | None = None,
                         modified_after: str | None = None, modified_before: str | None = None) -> list[dict]:
        """The k passages of the documents that best match the query, best first: file, character offsets, text.
        ``documents`` (names, folders or glob patterns such as "reports/*.pdf") and the modification dates
        (YYYY-MM-DD) limit the search to those documents."""
        try:
            scope = Scope(tuple(documents or ()), modified_after, modified_before)
            hits = assistant.retrieve(query, max(1, min(int(k), 50)), scope)
        except QuestionError as exc:  # the SDK's tool error: its reason reaches the client, not a stack trace
            raise ToolError(str(exc)) from exc
        return [{"doc": h.chunk.doc_name, "uri": document_uri(h.chunk.doc_name), "start": h.chunk.start,
                 "end": h.chunk.end, "page": h.chunk.page, "text": h.chunk.text, "score": round(h.score, 5)}
                for h in hits]

    @server.tool(structured_output=True)
    def ask(question: str, documents: list[str] | None = None, modified_after: str | None = None,
            modified_before: str | None = None) -> dict[str, Any]:
        """Answer the question from the documents with numbered citations of the passages used, or abstain (then
        ``abstained`` is true, ``verdicts`` say which check withheld the answer and why, and ``closest`` quotes the
        sentence of the documents nearest the question, to ask again in its terms). ``documents`` (names,
        folders or glob patterns) and the modification dates (YYYY-MM-DD) limit it to those documents."""
        try:
            answer = assistant.ask(question, scope=Scope(tuple(documents or ()), modified_after, modified_before))
        except QuestionError as exc:
            raise ToolError(str(exc)) from exc
        payload = answer.to_dict()
        return {"answer": payload["answer"], "abstained": payload["abstained"], "citations": payload["citations"],
                "verdicts": payload["verdicts"], "closest": payload["closest"]}

    for name, document in sorted(assistant.index.documents.items()):
        server.add_resource(FunctionResource(
            uri=document_uri(name), name=name, title=document.title, mime_type="text/plain",
            description=f"the indexed text of {name}", fn=_reader(assistant, name),
        ))
    return server


def _reader(assistant: Assistant, name: str):
    def read() -> str:
        document = assistant.index.documents.get(name)
        if document is None:
            raise ValueError(f"{name} is no longer in the index")
        return document.text

    return read


def run(assistant: Assistant) -> None:
    """Serve over stdin/stdout until the client closes them."""
    build_server(assistant).run("stdio")
