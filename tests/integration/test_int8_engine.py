"""The int8 engine (CTranslate2) as the pipeline reads it, against the reference engine on the same packaged model:
the same short answers, the same kind of signals, yes/no probabilities that agree, a stream that stops when its
reader leaves, a conversion made once, and quote mode refused by name."""

import os
import subprocess
import sys

import pytest

from rag.config import Settings
from rag.models.base import CONVERTING_INT8, AnswerConstraint, GeneratorError
from rag.models.factory import load_generator
from tests.conftest import REPO

pytestmark = pytest.mark.slow
MODEL = "qwen2.5-coder-0.5b"  # the small packaged model: the engine's behaviour, quickly
PASSAGE = "The Norrvik lighthouse was built in 1902 and automated in 1968. Its keeper, Ada Lund, retired in 1970."
ASK = [{"role": "system", "content": "Answer from the passage in a few words."},
       {"role": "user", "content": f"Passage: {PASSAGE}\nQuestion: When was the Norrvik lighthouse built?"}]


def yes_no(asked: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{PASSAGE}\nDoes this passage say {asked}? Reply Yes or No."}]


@pytest.fixture(scope="module")
def engines():
    cache = Settings().cache_dir
    load_generator(MODEL, cache, engine="ctranslate2")  # converted here the first time
    stages: list[str] = []
    int8 = load_generator(MODEL, cache, engine="ctranslate2", on_stage=stages.append)
    assert CONVERTING_INT8 not in stages  # the second load reads the converted copy
    return int8, load_generator(MODEL, cache, engine="transformers")


def test_both_engines_answer_a_clear_question_alike_with_signals_of_the_same_kind(engines):
    replies, signals = [], []
    for engine in engines:
        got = []
        replies.append("".join(engine.stream(ASK, 24, on_signals=got.append)))
        signals.extend(got)
    assert all("1902" in reply for reply in replies), replies
    for measured in signals:
        assert 0.0 <= measured.refusal_prob <= 1.0 and measured.tokens >= 1
        assert measured.min_logprob <= measured.mean_logprob <= 0.0
    int8, reference = signals
    assert abs(int8.mean_logprob - reference.mean_logprob) < 0.5  # int8 weights move probabilities a little


def test_yes_no_probabilities_agree_between_engines(engines):
    said, unsaid = yes_no("when the lighthouse was built"), yes_no("who designed the lighthouse")
    int8, reference = ([engine.option_probabilities(m, ["Yes", "No"])[0] for m in (said, unsaid)]
                       for engine in engines)
    assert int8[0] > int8[1]  # more sure of a Yes where the passage says it
    assert all(abs(a - b) < 0.15 for a, b in zip(int8, reference)), (int8, reference)


def test_a_stream_closed_by_its_reader_stops_and_the_engine_answers_the_next_question(engines):
    int8, _ = engines
    stream = int8.stream(ASK, 24)
    next(stream)
    stream.close()  # the reader left after the first piece
    assert "1902" in "".join(int8.stream(ASK, 24))


def test_quote_mode_is_refused_by_the_int8_engine_with_the_engine_that_has_it(engines):
    int8, _ = engines
    with pytest.raises(GeneratorError, match="--engine transformers"):
        list(int8.stream(ASK, 24, AnswerConstraint((PASSAGE,))))


def test_a_process_answering_on_the_int8_engine_never_imports_torch(tmp_path):
    """torch costs a second to import and 190 MB held; the int8 engine, its tokenizer and the embedder need none
    of it once the model is converted (the fixture above converted it)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "lighthouse.txt").write_text(PASSAGE, encoding="utf-8")
    script = (
        "import sys\n"
        "from rag import Assistant, Settings\n"
        f"a = Assistant.from_folder({str(docs)!r}, {str(tmp_path / 'index')!r}, "
        f"Settings(generator_model={MODEL!r}, engine='ctranslate2'))\n"
        "print(a.ask('When was the Norrvik lighthouse built?').text)\n"
        "print('torch imported:', 'torch' in sys.modules)\n"
    )
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"}, cwd=REPO)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "1902" in ran.stdout and "torch imported: False" in ran.stdout, ran.stdout
