"""The Gradio chat page: streamed answers with their numbered sources listed under each answer."""

from __future__ import annotations

import html
import os
from collections.abc import Iterator

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: nothing leaves the machine

import gradio as gr  # noqa: E402

from rag.assistant import Assistant, QuestionError  # noqa: E402
from rag.types import Answer  # noqa: E402


def render_answer(answer: Answer) -> str:
    """Markdown for a finished answer: the text, then its sources with the quoted passage."""
    if answer.abstained:
        return f"_{html.escape(answer.text)}_"
    lines = [html.escape(answer.text)]
    if answer.citations:
        lines.append("\n**Sources**")
        for c in answer.citations:
            lines.append(f"- [{c.n}] **{html.escape(c.doc_title)}** ({html.escape(c.doc)}): “{html.escape(c.quote)}”")
    t = answer.timings
    lines.append(f"\n<sub>retrieval {t.retrieval_s:.2f} s · generation {t.generation_s:.2f} s</sub>")
    return "\n".join(lines)


def build_app(assistant: Assistant) -> gr.Blocks:
    def respond(message: str, history: list) -> Iterator[str]:
        try:
            stream = assistant.stream(message)
        except QuestionError as exc:
            yield f"⚠️ {exc}"
            return
        text = ""
        for piece in stream:
            text += piece
            yield html.escape(text)
        yield render_answer(stream.answer)

    return gr.ChatInterface(
        respond,
        title="Ask your documents",
        description=f"Answers come only from the {len(assistant.index.documents)} documents in "
        f"`{assistant.settings.docs_dir}`, with numbered sources.",
        concurrency_limit=1,  # one generation at a time; the model and its tokenizer are shared
        api_name="chat",
    )


def launch(assistant: Assistant, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Serve the chat until interrupted; binds only ``host`` (loopback unless the user asks otherwise)."""
    app = build_app(assistant)
    app.queue(max_size=16).launch(server_name=host, server_port=port, share=False, footer_links=[])
