"""The command line's options map onto Settings one to one (the commands themselves: tests/integration)."""

from pathlib import Path

from rag.interfaces.cli import build_parser, format_answer, settings_from
from rag.types import Answer, Citation, Verdict


def test_every_option_the_user_gives_reaches_the_settings():
    args = build_parser().parse_args([
        "eval", "gold.jsonl", "--docs", "d", "--index", "i", "--embedding-backend", "torch", "--top-k", "2",
        "--answer-mode", "quote", "--passage-tokens", "64", "--max-file-mb", "5",
    ])
    settings = settings_from(args)
    assert (settings.docs_dir, settings.index_dir) == (Path("d"), Path("i"))
    assert settings.embedding_backend == "torch" and settings.top_k == 2 and settings.answer_mode == "quote"
    assert settings.passage_tokens == 64 and settings.max_file_mb == 5


def test_options_left_out_keep_the_defaults():
    settings = settings_from(build_parser().parse_args(["ask", "Why?"]))
    assert settings.embedding_backend == "onnx-int8" and settings.trim_echo and settings.verifier_model is None


def test_a_verifier_is_named_and_its_check_enforced_from_the_command_line():
    args = build_parser().parse_args([
        "ask", "Why?", "--verifier", "some-model", "--with", "confirmed", "--min-confirmation", "0.7", "--keep-echo",
        "--without", "adds",
    ])
    settings = settings_from(args)
    assert settings.verifier_model == "some-model" and settings.min_confirmation == 0.7
    assert settings.checks[-1] == "confirmed" and "adds" not in settings.checks and not settings.trim_echo


def test_bench_names_each_benchmark():
    args = build_parser().parse_args(["bench", "retrieval", "--sizes", "1000", "20000"])
    assert args.benchmark == "retrieval" and args.sizes == [1000, 20000]


def test_a_command_whose_optional_extra_is_missing_names_it_in_one_line(monkeypatch, capsys):
    import sys

    from rag.interfaces.cli import main

    for module in ("gradio", "rag.interfaces.chat_page"):
        monkeypatch.setitem(sys.modules, module, None)  # as if the [serve] extra were not installed
    assert main(["chat"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "[serve] extra" in error and "pip install 'rag-assistant[serve]'" in error


def test_bench_outside_a_source_checkout_says_where_it_runs(monkeypatch, capsys):
    import importlib.util

    from rag.interfaces.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "rag.bench" else real(name, *args))  # as in a wheel
    assert main(["bench", "docs"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "source checkout" in error and "make setup" in error


def test_an_abstention_in_the_terminal_says_which_check_withheld_it_and_quotes_the_closest_sentence():
    closest = Citation(1, "harbour.txt", "Harbour", "c-1", "The ferry first sailed in 2019.", 10, 41)
    answer = Answer("When did it sail in 2013?", "I don't know: the documents do not say.", [], True,
                    verdicts=[Verdict("pinned", False, "the passages say nothing about 2013")], closest=closest)
    lines = format_answer(answer).splitlines()
    assert lines == ["I don't know: the documents do not say.",
                     "  withheld by pinned: the passages say nothing about 2013",
                     'Closest the documents come: harbour.txt (chars 10-41): "The ferry first sailed in 2019."']
