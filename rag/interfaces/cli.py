"""The ``rag`` command: ``index``, ``ask``, ``eval``, ``calibrate``, ``chat``, ``serve``, ``mcp`` and ``bench``.
Options map one to one onto Settings."""

from __future__ import annotations

import argparse
import importlib.util
import dataclasses
import json
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, get_args

from rag.config import (
    KNOWN_CHECKS,
    AnswerMode,
    EmbeddingBackend,
    Engine,
    Fusion,
    MatmulPrecision,
    PassageHeader,
    Preset,
    Quantization,
    Settings,
    SettingsError,
    Store,
)

# The pipeline's modules pull in torch and transformers (seconds): each command imports what it runs, so that
# `rag --help` and a mistyped option answer at once.
if TYPE_CHECKING:
    from rag.assistant import Assistant
    from rag.types import Answer

# SQuAD's data stays outside the repository: the Rhine article sits in the shared folder beside a checkout.
DEFAULT_SQUAD_FILE = os.environ.get("RAG_SQUAD_FILE", "../shared/external/squad2-dev-rhine.json")


def _add_corpus_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--docs", dest="docs_dir", help="documents folder (default: documents)")
    parser.add_argument("--index", dest="index_dir", help="index folder (default: index)")
    parser.add_argument("--data-dir", dest="data_dir",
                        help="where answers and feedback are kept (records.sqlite; default: the index folder)")
    parser.add_argument("--max-file-mb", dest="max_file_mb", type=int,
                        help="skip documents larger than this many MB (default: 50)")
    parser.add_argument("--embedding-backend", dest="embedding_backend", choices=get_args(EmbeddingBackend),
                        help="onnx-int8 (default, faster) or torch")
    parser.add_argument("--store", choices=get_args(Store),
                        help="faiss (default): the index as files in --index; milvus: in a Milvus database")
    parser.add_argument("--milvus-uri", dest="milvus_uri", metavar="URI",
                        help="a Milvus Lite file (default: INDEX/milvus.db) or a server, http://host:19530")
    parser.add_argument("--no-ocr", dest="ocr", action="store_const", const=False,
                        help="do not read scanned PDF pages with Tesseract")
    parser.add_argument("--ocr-language", dest="ocr_language", metavar="LANG",
                        help="Tesseract language(s) of scanned pages, e.g. eng or eng+deu (default: eng)")


def _add_watch_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--watch", action="store_true",
                        help="keep watching the documents folder and index what changes within seconds")


def _watch(settings: Settings, update, report=None):
    """A started watcher of the documents folder calling ``update`` after each burst of changes."""
    from rag.ingest.watching import FolderWatcher

    return FolderWatcher(settings.docs_dir, update, ignored=[settings.index_dir], on_update=report).start()


def _add_answer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", dest="generator_model",
                        help="a Hugging Face model folder, a .gguf file, or qwen2.5-coder-0.5b / qwen2.5-coder-1.5b")
    parser.add_argument("--generator-url", dest="generator_url", metavar="URL",
                        help="an OpenAI-compatible model server that writes the answers, e.g. http://127.0.0.1:8080/v1 "
                             "(vLLM, llama.cpp, Ollama); key from $RAG_GENERATOR_API_KEY")
    parser.add_argument("--generator-api-model", dest="generator_api_model", metavar="NAME",
                        help="the server's model to use (default: the first it lists)")
    parser.add_argument("--preset", choices=get_args(Preset),
                        help="default: the 1.5B model answers where this processor runs it fast enough, else the "
                        "0.5B; fast: the 0.5B always; cautious: the answerability score withholds unsure answers "
                        "too; verified: the 0.5B answers, and the 1.5B checks the cited sentence; accurate: the "
                        "1.5B answers on any processor and checks its own answers (slower)")
    parser.add_argument("--top-k", dest="top_k", type=int, help="passages given to the model")
    parser.add_argument(
        "--fusion", choices=get_args(Fusion),
        help="rrf (default): reciprocal rank fusion; weighted: cosine and relative BM25 scores weighed together",
    )
    parser.add_argument("--engine", choices=get_args(Engine),
                        help="what runs a local model: auto (default: transformers, or for the 1.5B the int8 engine "
                        "where only it answers fast enough here), transformers (the reference; every feature) or "
                        "ctranslate2 (int8 weights, faster without AMX; no quote mode)")
    parser.add_argument("--quantization", choices=get_args(Quantization), help="dynamic int8 quantisation of the model")
    parser.add_argument(
        "--matmul-precision", dest="matmul_precision", choices=get_args(MatmulPrecision),
        help="how the model's matrices multiply: auto (default) times float32 and bfloat16 on this processor once",
    )
    parser.add_argument(
        "--answer-mode", dest="answer_mode", choices=get_args(AnswerMode),
        help="free: the model writes the answer; quote: the answer is copied verbatim from a passage",
    )
    parser.add_argument("--without", action="append", default=[], metavar="CHECK", choices=KNOWN_CHECKS,
                        help=f"do not enforce this answer check (repeatable): {', '.join(KNOWN_CHECKS)}")
    parser.add_argument("--keep-echo", dest="trim_echo", action="store_const", const=False,
                        help="keep the part of a reply that restates the question (by default it is cut off)")
    parser.add_argument("--with", dest="with_checks", action="append", default=[], metavar="CHECK",
                        choices=KNOWN_CHECKS, help="enforce this answer check too (repeatable)")
    parser.add_argument("--verifier", dest="verifier_model", metavar="MODEL",
                        help="a model that the 'confirmed' check asks whether the cited sentence states the answer "
                             "(e.g. qwen2.5-coder-1.5b); enforce it with --with confirmed")
    parser.add_argument("--min-answerability", dest="min_answerability", type=float,
                        help="the answerability score (0..1) below which that check withholds an answer (default: "
                        "the threshold fitted with the score)")
    parser.add_argument("--min-confirmation", dest="min_confirmation", type=float,
                        help="the verifier's P(yes) below which 'confirmed' withholds an answer")
    parser.add_argument(
        "--passage-tokens", dest="passage_tokens", type=int,
        help="narrow each passage to this many tokens around its best sentence (0: whole passages)",
    )
    parser.add_argument("--passage-header", dest="passage_header", choices=get_args(PassageHeader),
                        help="what opens each passage the model reads: its document's title, its opening line, "
                             "or nothing")


def _precision_info(generator) -> dict | None:
    """How the generator's matrices multiply and, where it was timed, the timings the choice came from."""
    if not hasattr(generator, "precision"):
        return None
    choice = getattr(generator, "precision_choice", None)
    return {"precision": generator.precision, **({"timed": choice.to_dict()} if choice else {})}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag", description="Ask questions about your documents, offline.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", help="build or update the index")
    _add_corpus_options(index)
    index.add_argument("--rebuild", action="store_true", help="ignore the existing index and build from scratch")
    index.add_argument("--wait", dest="index_lock_wait_s", type=float, metavar="SECONDS",
                       help="how long to wait for another update of the same index (default: 600)")
    _add_watch_option(index)

    ask = commands.add_parser("ask", help="answer one question with cited sources")
    ask.add_argument("question")
    _add_corpus_options(ask)
    _add_answer_options(ask)
    ask.add_argument("--json", action="store_true", help="print one JSON object")
    ask.add_argument("--only", action="append", default=[], metavar="GLOB",
                     help="ask only these documents: a name, a folder or a glob such as 'reports/*.pdf' (repeatable)")
    ask.add_argument("--modified-after", metavar="DATE", help="ask only documents modified on or after DATE (YYYY-MM-DD)")
    ask.add_argument("--modified-before", metavar="DATE", help="ask only documents modified on or before DATE")

    evaluate = commands.add_parser("eval", help="score the assistant against gold questions and write a report")
    evaluate.add_argument("gold", nargs="?", help="gold JSONL file (see eval/gold/dev.jsonl)")
    _add_corpus_options(evaluate)
    _add_answer_options(evaluate)
    evaluate.add_argument("--out", help="run folder: answers.jsonl as they come, then report.json, .md and .png "
                          "(default: eval/reports/<timestamp>)")
    evaluate.add_argument("--resume", action="store_true",
                          help="finish the run in --out: ask only the questions its answers.jsonl lacks (the same "
                          "options as the stopped run, or an error names what differs)")
    evaluate.add_argument("--limit", type=int, help="score only the first N questions")
    evaluate.add_argument("--sample", type=int, metavar="N",
                          help="score a seeded sample of N questions that keeps the set's share of unanswerable ones")
    evaluate.add_argument("--seed", type=int, default=0, help="the sample's seed (default 0)")
    evaluate.add_argument("--retrieval-only", action="store_true", help="score retrieval, skip generation")
    evaluate.add_argument("--squad", metavar="FILE", nargs="?", const=DEFAULT_SQUAD_FILE,
                          help="a SQuAD v1.1/v2.0 JSON file as corpus and questions (alone: $RAG_SQUAD_FILE, else "
                          f"{DEFAULT_SQUAD_FILE}, the Rhine article of SQuAD 2.0's dev set)")
    evaluate.add_argument(
        "--paragraphs", metavar="FIRST-LAST",
        help="with --squad: ask only the questions of these paragraphs (from 0, in file order); the corpus stays "
        "every paragraph. The Rhine article: 0-21 to tune on, 22-43 to confirm",
    )
    evaluate.add_argument("--rescore", metavar="DIR",
                          help="write a new report from the run in DIR without loading a model, its checks judged "
                          "again under --with, --without, --preset, --min-answerability or --min-confirmation "
                          "(default out: DIR/rescored)")
    evaluate.add_argument("--compare", nargs=2, metavar="REPORT",
                          help="compare two report.json files (or report folders), with paired bootstrap intervals "
                          "of the differences")

    calibrate = commands.add_parser(
        "calibrate", help="fit the answerability score on evaluation reports (the external set's tuning half)"
    )
    calibrate.add_argument("reports", nargs="+", type=Path,
                           help="`rag eval` run folders (or their report.json files)")
    calibrate.add_argument("--out", type=Path,
                           help="model JSON to write (default: the packaged score of the reports' answering model, "
                           "rag/models/scores/answerability.json or answerability-1.5b.json)")
    calibrate.add_argument("--max-false-abstention", type=float, default=0.10,
                           help="the threshold withholds at most this share of the right answers (default: 0.10)")
    calibrate.add_argument("--bound", choices=["right", "answerable"], default="right",
                           help="what --max-false-abstention bounds: the right answers the other checks let through "
                           "(default), or every answerable question withheld by any check, as evaluation counts it")
    calibrate.add_argument("--label", choices=["right", "answerable"], default="right",
                           help="what the score predicts: a right draft (default), or an answerable question")
    calibrate.add_argument("--beside", type=lambda text: tuple(n.strip() for n in text.split(",") if n.strip()),
                           help="comma-separated checks enforced beside the score, where they differ from the "
                                "runs' (e.g. relevance,supported)")
    calibrate.add_argument("--verifier", action="store_true",
                           help="fit the score with the verifier's P(yes) as a feature, from runs with --verifier "
                           "(default out: the packaged rag/models/scores/answerability-verified.json)")
    calibrate.add_argument("--features", type=lambda text: tuple(n.strip() for n in text.split(",") if n.strip()),
                           help="comma-separated features to fit over (default: those the score at --out reads, "
                           "else rag.verification.answerability.FEATURES)")
    calibrate.add_argument("--confirmation-threshold", action="store_true",
                           help="only print the 'confirmed' check's min_confirmation for these runs (with --verifier)")

    chat = commands.add_parser("chat", help="open the chat page in the browser")
    _add_corpus_options(chat)
    _add_answer_options(chat)
    chat.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1 only)")
    chat.add_argument("--port", type=int, default=7860)
    chat.add_argument("--auth", metavar="USER:PASS", help="require this login (or set $RAG_CHAT_AUTH)")
    _add_watch_option(chat)
    serve = commands.add_parser("serve", help="serve an OpenAI-compatible HTTP API with citations (docs at /docs)")
    _add_corpus_options(serve)
    _add_answer_options(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1 only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--auth", metavar="USER:PASS", help="require this login (or set $RAG_CHAT_AUTH); OpenAI "
                       "clients pass it as their API key")
    _add_watch_option(serve)
    mcp = commands.add_parser("mcp", help="serve the documents to MCP clients over stdio (tools search_documents "
                              "and ask; the documents as resources)")
    _add_corpus_options(mcp)
    _add_answer_options(mcp)
    _add_watch_option(mcp)
    feedback = commands.add_parser("feedback", help="list the feedback given on answers, or export it as gold "
                                   "questions that rag eval reads")
    feedback.add_argument("action", choices=["list", "export"])
    _add_corpus_options(feedback)
    feedback.add_argument("--out", type=Path, help="export: the gold JSONL file to write")
    bench = commands.add_parser("bench", help="measure speed and memory against the plain way (prints a table, "
                                "writes JSON)")
    bench.add_argument("benchmark", choices=["retrieval", "ingestion", "cold-start", "latency", "memory", "load",
                                             "queue", "docs"],
                       help="docs: write docs/benchmarks.md from the JSON files in eval/bench (measures nothing)")
    _add_corpus_options(bench)
    bench.add_argument("--out", type=Path, help="JSON file to write (default: eval/bench/<benchmark>.json)")
    bench.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000],
                       help="retrieval: index sizes in chunks")
    bench.add_argument("--queries", type=int,
                       help="retrieval: questions per size (default 200); load: gold questions asked (default 12); "
                       "queue: questions each client asks (default 2)")
    bench.add_argument("--documents", type=int, default=5000, help="ingestion: generated documents")
    bench.add_argument("--runs", type=int, default=2, help="cold-start: processes started per way")
    bench.add_argument("--clients", type=int, help="load: clients asking at once (default 4); queue: (default 24, "
                       "more than the 16 that may wait)")
    bench.add_argument("--gold", type=Path, default=Path("eval/gold/dev.jsonl"),
                       help="latency, memory, ingestion: gold questions")
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings with every option the user gave (options share their setting's name)."""
    names = [field.name for field in dataclasses.fields(Settings)]
    preset = getattr(args, "preset", None)
    start = Settings().with_preset(preset) if preset else Settings()
    settings = start.with_changes(**{n: getattr(args, n) for n in names if hasattr(args, n)})
    settings = settings.with_checks(*getattr(args, "with_checks", []))
    return settings.without_checks(*getattr(args, "without", []))


def format_answer(answer: Answer) -> str:
    """The answer text followed by its numbered sources, for a terminal."""
    lines = [answer.text]
    if answer.citations:
        lines.append("")
        lines.append("Sources:")
        for c in answer.citations:
            where = f"chars {c.start}-{c.end}"
            where = f"{c.place}, {where}" if c.place else f"p. {c.page}, {where}" if c.page is not None else where
            lines.append(f"  [{c.n}] {c.doc} ({where}): \"{c.quote}\"")
    for verdict in answer.withheld_by:
        lines.append(f"  withheld by {verdict.check}: {verdict.reason}")
    if answer.closest is not None:
        c = answer.closest
        lines.append(f"Closest the documents come: {c.doc} (chars {c.start}-{c.end}): \"{c.quote}\"")
    return "\n".join(lines)


def run_index(args: argparse.Namespace, settings: Settings) -> int:
    from rag.ingest.indexing import open_and_update
    from rag.models.embedding import load_embedder

    embedder = load_embedder(settings)
    index, report = open_and_update(settings, embedder, rebuild=args.rebuild)
    print(report.summary(), flush=True)
    if args.watch:
        kept = index if settings.store == "milvus" else None

        def update() -> object:
            return open_and_update(settings, embedder, index=kept)[1]

        watcher = _watch(settings, update, lambda report: print(report.summary(), flush=True))
        print(f"watching {settings.docs_dir} (Ctrl-C to stop)", flush=True)  # once changes are seen
        watcher.wait()
    return 0


def run_ask(args: argparse.Namespace, settings: Settings) -> int:
    from rag.assistant import Assistant
    from rag.types import Scope

    scope = Scope(tuple(args.only), args.modified_after, args.modified_before)
    assistant = Assistant.from_folder(settings=settings, preload_generator=True)
    if args.json:
        print(json.dumps(assistant.ask(args.question, scope=scope).to_dict(), ensure_ascii=False))
        return 0
    stream = assistant.stream(args.question, scope=scope)
    for piece in stream:  # show progress as the model writes; the cleaned answer follows
        print(piece, end="", flush=True, file=sys.stderr)
    print(file=sys.stderr)
    print(format_answer(stream.answer))
    return 0


def run_feedback(args: argparse.Namespace, settings: Settings) -> int:
    """``rag feedback list``: every feedback, one line each; ``export --out FILE``: the gold questions it makes."""
    from rag.records.store import Records

    if not settings.records_path.is_file():
        raise SettingsError(f"no answers or feedback are kept in {settings.records_path.parent} yet "
                            "(they are kept by rag chat and rag serve; --data-dir names another folder)")
    records = Records(settings.records_path)
    if args.action == "list":
        for f in records.feedback():
            said = "; the documents don't say" if f.unanswerable else f"; correction: {f.correction}" if f.correction else ""
            when = datetime.fromtimestamp(f.created).strftime("%Y-%m-%d %H:%M")
            print(f"{f.id}\t{when}\t{f.rating}\t{f.question!r} -> {f.answer!r}{said}")
        return 0
    if args.out is None:
        raise SettingsError("rag feedback export needs --out FILE.jsonl")
    items, left_out = records.gold_items()
    scratch = args.out.with_name(f".{args.out.name}.tmp")
    scratch.parent.mkdir(parents=True, exist_ok=True)
    scratch.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
    os.replace(scratch, args.out)  # written whole or not at all
    print(f"{len(items)} gold questions written to {args.out}"
          + (f"; {left_out} thumbs down without a correction make none" if left_out else ""))
    return 0


def run_eval(args: argparse.Namespace, settings: Settings) -> int:
    from rag.assistant import Assistant
    from rag.evaluation import runs
    from rag.evaluation.reports import compare_reports, write_report
    from rag.evaluation.scoring import load_gold, run_evaluation, sample_gold, summarize
    from rag.evaluation.squad import parse_paragraphs, squad_to_corpus

    if args.compare:
        print(compare_reports(Path(args.compare[0]), Path(args.compare[1])))
        return 0
    if args.rescore:
        return _rescore(args)
    if bool(args.gold) == bool(args.squad):
        raise SettingsError("give either a gold JSONL file or --squad FILE (or --compare A B, or --rescore DIR)")
    for name in ("limit", "sample"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise SettingsError(f"--{name} must be a positive integer")
    if args.resume and not args.out:
        raise SettingsError("--resume finishes the run in a folder: name it with --out DIR")
    # Every feature of the answerability score recorded, enforced or not, so that a rescore can enforce it later.
    settings = settings.with_changes(measure_all_features=True)
    with tempfile.TemporaryDirectory(prefix="rag-eval-") as scratch:
        if args.squad:
            if not Path(args.squad).is_file():
                raise FileNotFoundError(f"no SQuAD file at {args.squad}: SQuAD 2.0 is at "
                                        "https://rajpurkar.github.io/SQuAD-explorer/ (dev-v2.0.json); pass its path")
            if args.index_dir is None or Path(args.index_dir).resolve() == Path("index").resolve():
                # A benchmark corpus must never replace the user's own index.
                settings = settings.with_changes(index_dir=Path(scratch) / "index")
            docs_dir = Path(args.docs_dir) if args.docs_dir else Path(scratch) / "docs"
            paragraphs = parse_paragraphs(args.paragraphs) if args.paragraphs else None
            gold = squad_to_corpus(Path(args.squad), docs_dir, paragraphs)
            settings = settings.with_changes(docs_dir=docs_dir)
            source = args.squad + (f" paragraphs {args.paragraphs}" if args.paragraphs else "")
        else:
            if args.paragraphs:
                raise SettingsError("--paragraphs selects questions of a --squad file")
            gold = load_gold(args.gold)
            source = args.gold
        gold = gold[: args.limit] if args.limit else gold
        sample = None
        if args.sample:
            sample = {"size": min(args.sample, len(gold)), "of": len(gold), "seed": args.seed}
            gold = sample_gold(gold, args.sample, args.seed)
        out = Path(args.out) if args.out else Path("eval/reports") / datetime.now().strftime("%Y%m%d-%H%M%S")
        assistant = Assistant.from_folder(settings=settings, preload_generator=not args.retrieval_only)
        precision = None if args.retrieval_only else _precision_info(assistant.generator)
        identity = runs.run_identity(
            str(source), [item.id for item in gold], sample, assistant.settings,
            None if precision is None else precision["precision"], assistant.index.settings.embedding_model,
        ) | {"retrieval_only": args.retrieval_only}
        done = runs.start_run(out, identity, args.resume)
        if done:
            print(f"resuming: {len(done)} of {len(gold)} questions already answered in {out}", file=sys.stderr)
        stopped = False
        try:
            with _sigterm_as_interrupt():
                metrics, results = run_evaluation(assistant, gold, retrieval_only=args.retrieval_only, done=done,
                                                  on_result=runs.AnswerLog(out / runs.ANSWERS_FILE))
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: report what is done
            stopped = True
            wanted = {item.id for item in gold}
            results = [r for r in runs.read_answers(out / runs.ANSWERS_FILE) if r.id in wanted]
            metrics = summarize(results, args.retrieval_only)
        run_info = {
            "gold": str(source),
            "created_at": datetime.now().isoformat(timespec="seconds"),
            "partial": stopped,
            "answered": len(results),
            "of": len(gold),
            "sample": sample,
            "generator_model": None if args.retrieval_only else assistant.generator.name,
            "generator_precision": precision,
            "model": identity["model"],
            "host": identity["host"],
            # Why this packaged model answers here, where the settings left it to the processor (rag.models.model_choice).
            "model_choice": assistant.model_choice.reason if assistant.model_choice else None,
            "embedding_model": assistant.index.settings.embedding_model,
            "retrieval_only": args.retrieval_only,
            "settings": runs.settings_record(assistant.settings),
        }
        paths = write_report(out, metrics, results, run_info, assistant.settings)
    _print_report(paths, metrics)
    if stopped:
        print(f"stopped after {len(results)} of {len(gold)} questions (report marked partial); finish with the same "
              "command and --resume", file=sys.stderr)
        return 130
    return 0


def _rescore(args: argparse.Namespace) -> int:
    """``rag eval --rescore DIR``: the run's recorded drafts judged again under changed checks, no model loaded."""
    from rag.evaluation import runs
    from rag.evaluation.reports import write_report
    from rag.evaluation.scoring import summarize

    allowed = {"min_answerability", "min_confirmation", "preset", "with_checks", "without"}
    changing = sorted(name for name in (f.name for f in dataclasses.fields(Settings))
                      if name not in allowed and getattr(args, name, None) is not None)
    if changing or args.gold or args.squad or args.resume or args.sample or args.limit:
        raise SettingsError("--rescore judges recorded drafts again; it takes only --with, --without, --preset, "
                            "--min-answerability, --min-confirmation and --out"
                            + (f" (these change what is generated: {', '.join(changing)})" if changing else ""))
    identity, results = runs.load_run(Path(args.rescore))
    recorded = runs.settings_from_record(identity.get("settings", {}))
    settings = runs.changed_settings(recorded, args.with_checks, args.without, args.preset,
                                          args.min_answerability)
    if args.min_confirmation is not None:
        settings = settings.with_changes(min_confirmation=args.min_confirmation)
    rescored, notes = runs.rescore(results, recorded, settings)
    retrieval_only = bool(identity.get("retrieval_only"))
    metrics = summarize(rescored, retrieval_only)
    run_info = {
        "gold": identity.get("gold"), "rescored_from": str(args.rescore),
        "created_at": datetime.now().isoformat(timespec="seconds"), "answered": len(rescored),
        "of": identity.get("questions", len(rescored)), "sample": identity.get("sample"),
        "model": identity.get("model"), "precision": identity.get("precision"), "host": identity.get("host"),
        "embedding_model": identity.get("embedding_model"),
        "retrieval_only": retrieval_only, "notes": notes,
        "settings": runs.settings_record(settings),
    }
    out = Path(args.out) if args.out else Path(args.rescore) / "rescored"
    paths = write_report(out, metrics, rescored, run_info, settings)
    _print_report(paths, metrics)
    for note in notes:
        print(note)
    return 0


def _print_report(paths: dict[str, Path], metrics: dict[str, float]) -> None:
    from rag.evaluation.reports import summary_table

    report = json.loads(paths["json"].read_text(encoding="utf-8"))
    print(summary_table(metrics, report.get("intervals")))
    if report.get("withheld_by_check"):
        print("\nwithheld by check: " + ", ".join(f"{k} {v}" for k, v in report["withheld_by_check"].items()))
    print(f"\nreport: {paths['md']}  ({paths['json'].name}, {paths['png'].name})")


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a run as Ctrl-C does, so that what is done is reported (a SIGKILL cannot be caught; what it
    cuts off is resumed with --resume)."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_calibrate(args: argparse.Namespace, settings: Settings) -> int:
    from rag.evaluation.calibration import calibrate, choose_feature_threshold
    from rag.models import registry
    from rag.verification.answerability import FEATURES, VERIFIED_FEATURES, AnswerabilityModel

    if args.confirmation_threshold:
        from rag.evaluation.runs import load_results

        results = load_results(args.reports)
        judged = sum("confirmation_prob" in r.features for r in results)
        if not judged:
            raise SystemExit("no draft in these reports was judged by a verifier: run `rag eval --verifier MODEL`")
        limit = choose_feature_threshold(results, "confirmation_prob", "confirmed", args.max_false_abstention)
        print(f"{judged} judged drafts; min_confirmation {limit:.3f} withholds at most "
              f"{args.max_false_abstention:.0%} of the right answers the other checks let through")
        return 0
    # By default the packaged score of the model whose drafts the reports hold (the one the default answers with).
    from rag.evaluation.runs import load_run

    recorded = load_run(args.reports[0])[0].get("settings", {})
    answering = recorded.get("generator_model")
    packaged = registry.packaged_score(answering, recorded.get("engine")) or registry.SMALL_MODEL_SCORE
    out = args.out or (registry.VERIFIED_SCORE if args.verifier else packaged)
    features = args.features or (VERIFIED_FEATURES if args.verifier else None)
    if features is None:  # refit what the score being replaced reads
        features = AnswerabilityModel.load(out).features if out.exists() else FEATURES
    model, summary = calibrate(args.reports, args.max_false_abstention, features, args.bound, args.label,
                               args.beside)
    out.write_text(model.to_json() + "\n", encoding="utf-8")
    print(summary)
    print(f"\nmodel: {out}")
    return 0


@contextmanager
def _extra(name: str, command: str) -> Iterator[None]:
    """Imports of an optional extra's libraries; a missing one is a one-line error naming the extra."""
    try:
        yield
    except ModuleNotFoundError as exc:
        raise SettingsError(f"`{command}` needs the [{name}] extra ({exc.name} is not installed): "
                            f"pip install 'rag-assistant[{name}]'") from exc


def _serving(args: argparse.Namespace, settings: Settings) -> tuple[Assistant, tuple[str, str] | None]:
    """What ``rag chat`` and ``rag serve`` start from: the login, checked first, and the assistant (watching the
    folder with ``--watch``)."""
    from rag.assistant import Assistant
    from rag.interfaces.web import parse_auth

    try:
        auth = parse_auth(args.auth)
    except ValueError as exc:
        raise SettingsError(str(exc)) from exc
    assistant = Assistant.from_folder(settings=settings, preload_generator=True)
    _say_model_choice(assistant)
    if args.watch:
        _watch(settings, assistant.refresh, lambda report: print(report.summary(), flush=True))
    return assistant, auth


def _say_model_choice(assistant: Assistant) -> None:
    """Tell a person starting a server which packaged model answers and why, where the processor decided it."""
    if assistant.model_choice is not None:
        print(f"answering with {assistant.model_choice.model}: {assistant.model_choice.reason} "
              "(--preset fast or --model choose another)", file=sys.stderr, flush=True)


def run_chat(args: argparse.Namespace, settings: Settings) -> int:
    with _extra("serve", "rag chat"):
        from rag.interfaces.chat_page import launch

    assistant, auth = _serving(args, settings)
    launch(assistant, host=args.host, port=args.port, auth=auth)
    return 0


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    with _extra("serve", "rag serve"):
        from rag.interfaces.openai_api import serve

    assistant, auth = _serving(args, settings)
    print(f"serving http://{args.host}:{args.port}/v1 (OpenAI API; docs at /docs)", flush=True)
    serve(assistant, host=args.host, port=args.port, auth=auth)
    return 0


def run_mcp(args: argparse.Namespace, settings: Settings) -> int:
    from rag.assistant import Assistant

    with _extra("mcp", "rag mcp"):
        from rag.interfaces.mcp_server import run

    # stdout carries the protocol: the index report goes to stderr.
    assistant = Assistant.from_folder(settings=settings, preload_generator=True)
    print(assistant.build_report.summary() if assistant.build_report else "index loaded", file=sys.stderr)
    _say_model_choice(assistant)
    if args.watch:
        _watch(settings, assistant.refresh, lambda report: print(report.summary(), file=sys.stderr))
    run(assistant)
    return 0


def run_bench(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: the benchmarks pull in test-time comparisons (plain sentence-transformers, gradio_client).
    if importlib.util.find_spec("rag.bench") is None:
        raise SettingsError("`rag bench` runs from a source checkout of the project (the benchmarks are not part of "
                            "the installed package): clone it and run `make setup` there")
    if args.benchmark == "docs":
        from rag.bench.report import PAGE, benchmarks_page

        out = args.out or PAGE
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(benchmarks_page(), encoding="utf-8")
        print(f"wrote {out}")
    elif args.benchmark == "retrieval":
        from rag.bench import retrieval

        if settings.store == "milvus":
            retrieval.run_milvus(args.sizes, args.queries or 200, args.out, settings)
        else:
            retrieval.run(args.sizes, args.queries or 200, args.out, settings)
    elif args.benchmark == "load":
        from rag.bench import load

        load.run(args.queries or 12, args.clients or 4, args.out, settings, args.gold)
    elif args.benchmark == "queue":
        from rag.bench import queue

        queue.run(args.clients or 24, args.queries or 2, out=args.out, settings=settings, gold=args.gold)
    elif args.benchmark == "ingestion":
        from rag.bench import ingestion

        ingestion.run(args.documents, args.out, settings, args.gold)
    elif args.benchmark == "cold-start":
        from rag.bench import answering
        from rag.evaluation.scoring import load_gold

        gold = load_gold(args.gold)
        # The untimed earlier answer is about another document: the timed question then finds the system message's
        # cache kept, not its own passage's.
        earlier = answering.questions_about_other_documents(gold)
        answering.cold_start(gold[0].question, args.runs, args.out, settings, earlier)
    elif args.benchmark == "latency":
        from rag.bench import answering

        answering.latency(args.gold, args.out, settings)
    else:
        from rag.bench import memory

        memory.run(args.gold, args.out, settings)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    for noisy in ("sentence_transformers", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not args.verbose:
        # transformers' per-tensor "Loading weights" bars on every start, off without importing transformers (read
        # when it is first imported; `rag index` never imports it).
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    handlers = {
        "index": run_index, "ask": run_ask, "eval": run_eval, "calibrate": run_calibrate, "chat": run_chat,
        "serve": run_serve, "mcp": run_mcp, "bench": run_bench, "feedback": run_feedback,
    }
    try:
        return handlers[args.command](args, settings_from(args))
    except Exception as exc:
        if not isinstance(exc, _user_errors()):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _user_errors() -> tuple[type[Exception], ...]:
    """The errors a user can act on, printed as one line: the modules defining them are loaded by then."""
    from rag.evaluation.runs import RunError
    from rag.evaluation.scoring import GoldFormatError
    from rag.models.base import GeneratorError
    from rag.stores.base import IndexStoreError
    from rag.types import QuestionError

    return (SettingsError, QuestionError, IndexStoreError, GeneratorError, GoldFormatError, RunError,
            FileNotFoundError)


if __name__ == "__main__":
    sys.exit(main())
