"""The model behind a real OpenAI-compatible server, llama.cpp's (llama-cpp-python[server]), serving the packaged
GGUF: `rag ask --generator-url` answers with citations and verdicts, dev questions are answered through it, and
a server that does not answer is named in a one-line error."""

import json

import pytest

from tests.conftest import DOCUMENTS
from tests.integration.servers import llama_server, needs_llama_server, packaged_gguf
from tests.integration.test_cli import rag

pytestmark = [pytest.mark.slow, needs_llama_server]


@pytest.fixture(scope="module")
def model_url(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model-server")
    with llama_server(packaged_gguf(folder), folder / "llama-server.log") as url:
        yield url


def test_ask_answers_through_the_model_server_with_citations(model_url, tmp_path):
    result = rag("ask", "In which year did Japan and NATO sign the IPCP?", "--json", "--generator-url", model_url,
                 "--docs", str(DOCUMENTS), "--index", str(tmp_path / "index"))
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert "2014" in payload["answer"] and not payload["abstained"]
    assert payload["citations"] and payload["citations"][0]["doc"] == "000_210d74e5e6875247.txt"
    assert all(v["passed"] for v in payload["verdicts"])


def test_dev_questions_are_answered_through_the_server_and_its_log_probabilities_reach_the_checks(
    model_url, real_assistant
):
    from rag import Assistant
    from rag.answering.citations import strip_markers
    from rag.config import DEFAULT_CHECKS
    from rag.evaluation.scoring import best_f1, load_gold
    from rag.models.openai_generator import OpenAICompatibleGenerator

    served = OpenAICompatibleGenerator(model_url)
    # The served model's own checks: the default ones (a score fitted on the int8 1.5B's drafts is not its own).
    settings = real_assistant.settings.with_changes(checks=DEFAULT_CHECKS)
    assistant = Assistant(settings, real_assistant.index, real_assistant.embedder, served)
    gold = [item for item in load_gold(DOCUMENTS.parent / "eval" / "gold" / "dev.jsonl") if item.answerable][:6]
    answers = [assistant.ask(item.question) for item in gold]
    right = [best_f1(strip_markers(a.text), item.answers) >= 0.5 for a, item in zip(answers, gold)]
    print(f"\n{sum(right)} of {len(gold)} dev questions answered right through {served.name}")
    assert sum(right) >= 4
    assert all(a.citations for a in answers if not a.abstained)
    assert all(a.features for a in answers if not a.abstained)  # the answerability score had its signals


def test_a_model_server_that_does_not_answer_is_named(tmp_path):
    result = rag("ask", "Who?", "--generator-url", "http://127.0.0.1:9/v1", "--docs", str(DOCUMENTS),
                 "--index", str(tmp_path / "index"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "the model server at http://127.0.0.1:9/v1 does not answer" in result.stderr
