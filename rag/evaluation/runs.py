"""Evaluation run folders: answers recorded as they come, a stopped run resumed, a run re-scored without a model.

A run folder (``rag eval --out DIR``) holds ``run.json``, what was asked and with what (the questions, the
settings, the answering model's file hash, engine and precision), and ``answers.jsonl``, one ``QuestionResult`` a
line, appended and flushed to disk as each question is answered. The reports (``rag.evaluation.reports``) are written from
those, at the end or when the run is stopped. ``rescore`` re-runs the checks on the recorded drafts under other
settings, so changing a check or a threshold costs seconds, not another hour of generation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import typing
from collections.abc import Iterable
from dataclasses import asdict, fields
from pathlib import Path

from rag.config import PRESETS, Settings, SettingsError
from rag.evaluation.scoring import QuestionResult, decide
from rag.types import Chunk, Citation, Draft, GenerationSignals, Hit, Verdict
from rag.verification.answerability import PACKAGED_MODEL, AnswerabilityModel
from rag.verification.verifier import CHECKS, CheckContext, relevance

RUN_FILE = "run.json"
ANSWERS_FILE = "answers.jsonl"
# Settings that say where things are or how long to wait, not how a question is answered: a resumed run may differ
# in them (a SQuAD run indexes into a new temporary folder each time).
PLACES = frozenset({"docs_dir", "index_dir", "cache_dir", "generator_timeout_s", "prompt_cache_mb",
                    "max_question_chars", "milvus_uri"})

# Parts of a run's record that a resumed run may change: where the gold file is read from, and the machine (its
# answers are the same; only the timings are not, which the report's host says).
UNCOMPARED = frozenset({"gold", "host"})


class RunError(ValueError):
    """A run folder cannot be used as asked; the message says why and what to do."""


# ------------------------------------------------------------------------------------------ the run's identity


def settings_record(settings: Settings) -> dict:
    """``settings`` as JSON values (paths as strings, tuples as lists)."""
    return json.loads(json.dumps(asdict(settings), default=str))


def settings_from_record(record: dict) -> Settings:
    """The ``Settings`` a ``settings_record`` was made from (names this version does not know are dropped)."""
    hints = typing.get_type_hints(Settings)
    values = {}
    for spec in fields(Settings):
        if spec.name not in record:
            continue
        value, hint = record[spec.name], hints[spec.name]
        if value is not None and Path in (hint, *typing.get_args(hint)):
            value = Path(value)
        elif isinstance(value, list):
            value = tuple(value)
        values[spec.name] = value
    return Settings(**values)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_identity(settings: Settings) -> dict:
    """Which model answers: the SHA-256 of the packaged or given GGUF file, a folder's path, or the server and the
    model it serves; and the engine that runs it."""
    if settings.generator_url:
        return {"engine": "openai-server", "url": settings.generator_url, "model": settings.generator_api_model}
    # Imported here: rag.models.local.gguf imports transformers, which a rescore does not need.
    from rag.models.local.gguf import DEFAULT_MODEL, PACKAGED_MODELS

    name = settings.generator_model
    if name is None or name in PACKAGED_MODELS:
        packaged = PACKAGED_MODELS.get(name, DEFAULT_MODEL)
        return {"engine": settings.engine, "model": packaged.name, "sha256": packaged.sha256}
    path = Path(name).expanduser()
    if path.is_file():
        return {"engine": settings.engine, "model": path.name, "sha256": file_sha256(path)}
    return {"engine": settings.engine, "model": str(path)}


def run_identity(gold: str, question_ids: list[str], sample: dict | None, settings: Settings,
                 precision: str | None, embedding_model: str | None = None) -> dict:
    """What makes two runs the same run: the questions (and how they were sampled), the settings, the answering
    model's file, engine and precision. ``run.json`` holds it; ``--resume`` refuses a run whose identity differs."""
    return {
        "gold": gold,
        "questions": len(question_ids),
        "questions_sha256": hashlib.sha256("\n".join(question_ids).encode()).hexdigest(),
        "sample": sample,
        "settings": settings_record(settings),
        "model": model_identity(settings),
        "precision": precision,
        "embedding_model": embedding_model,
        "host": host(),
    }


def host() -> dict:
    """The machine a run answered on: its processor, the instruction sets that decide the model's speed, its
    cores. Every figure of a report is of this machine."""
    # Imported here: the precision module loads torch, which a rescore does not need.
    from rag.models.local.precision import cpu_flags, cpu_model

    return {"processor": cpu_model(), "flags": list(cpu_flags()), "cores": os.cpu_count()}


def differences(recorded: dict, current: dict) -> list[str]:
    """What differs between two run identities, in words ("settings.top_k: 4 -> 6"); settings in ``PLACES`` and
    the parts in ``UNCOMPARED`` are not compared."""
    found = []
    for key in sorted(set(recorded) | set(current)):
        if key in UNCOMPARED:
            continue
        a, b = recorded.get(key), current.get(key)
        if key == "settings":
            a, b = a or {}, b or {}
            found += [f"settings.{name}: {a.get(name)!r} -> {b.get(name)!r}"
                      for name in sorted(set(a) | set(b)) if name not in PLACES and a.get(name) != b.get(name)]
        elif a != b:
            found.append(f"{key}: {a!r} -> {b!r}")
    return found


# ------------------------------------------------------------------------------------------ the answers file


def read_answers(path: Path) -> list[QuestionResult]:
    """The results recorded in an ``answers.jsonl``; a last line cut off by a kill is left out (and removed from
    the file, so that the next append starts on a line of its own). A broken line elsewhere is an error."""
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    results, kept = [], 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            kept += len(line) + 1
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines) or all(not rest.strip() for rest in lines[number:]):
                break  # the line being written when the run was killed: that question is asked again
            raise RunError(f"{path}:{number}: not a recorded answer; the file was changed by hand?") from None
        results.append(QuestionResult.from_record(row))
        kept += len(line) + 1
    kept = min(kept, len(data))
    if kept < len(data) or (data and not data.endswith(b"\n")):
        with open(path, "r+b") as f:
            f.truncate(kept)
            if kept and not data[:kept].endswith(b"\n"):
                f.seek(0, os.SEEK_END)
                f.write(b"\n")
    return results


class AnswerLog:
    """Appends results to ``answers.jsonl``, each flushed to disk before the next question is asked."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, result: QuestionResult) -> None:
        line = json.dumps(asdict(result), ensure_ascii=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def start_run(out: Path, identity: dict, resume: bool) -> list[QuestionResult]:
    """Make ``out`` ready for a run with ``identity``; returns the results already recorded there (with
    ``resume``; none otherwise). Refuses a folder holding answers unless resuming, and a resume whose identity
    differs from the recorded one, naming each difference."""
    out.mkdir(parents=True, exist_ok=True)
    answers, run_file = out / ANSWERS_FILE, out / RUN_FILE
    if not resume:
        if answers.exists() and answers.stat().st_size:
            raise RunError(f"{out} already holds the answers of a run: add --resume to finish it, or choose "
                           "another --out")
        answers.unlink(missing_ok=True)
    elif run_file.exists():
        found = differences(json.loads(run_file.read_text(encoding="utf-8")), identity)
        if found:
            raise RunError(f"cannot resume the run in {out}: it was run otherwise ({'; '.join(found)}). Resume it "
                           "with the same options, or choose another --out")
    _write_atomically(run_file, json.dumps(identity, indent=2, ensure_ascii=False))
    return read_answers(answers) if resume else []


def load_run(path: Path) -> tuple[dict, list[QuestionResult]]:
    """A run folder's ``run.json`` and recorded results; a ``report.json`` (or a folder holding only one) is read
    as a run whose identity is what the report says of itself."""
    path = Path(path)
    if path.is_dir() and (path / ANSWERS_FILE).exists():
        run_file = path / RUN_FILE
        identity = json.loads(run_file.read_text(encoding="utf-8")) if run_file.exists() else {}
        return identity, read_answers(path / ANSWERS_FILE)
    report_file = path / "report.json" if path.is_dir() else path
    if not report_file.exists():
        raise RunError(f"{path} holds neither {ANSWERS_FILE} nor report.json: not an evaluation run")
    report = json.loads(report_file.read_text(encoding="utf-8"))
    results = [QuestionResult.from_record(q) for q in report.get("questions", [])]
    return {"gold": report.get("gold"), "settings": report.get("settings", {})}, results


def load_results(paths: Iterable[Path]) -> list[QuestionResult]:
    """The recorded results of every run folder or ``report.json`` in ``paths`` (``rag calibrate`` reads these)."""
    return [result for path in paths for result in load_run(path)[1]]


def _write_atomically(path: Path, text: str) -> None:
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.write_text(text, encoding="utf-8")
    os.replace(scratch, path)


# ------------------------------------------------------------------------------------------------ rescoring


class _NoModel:
    """Stands in for the embedder and the verifier in a rescore: a check that needs either to judge cannot run."""

    def __call__(self, *args: object, **kwargs: object) -> typing.NoReturn:
        raise _ModelNeeded

    option_probabilities = __call__


class _ModelNeeded(Exception):
    pass


# Settings a check that needs a model reads: a rescore that changes one of them cannot reuse the recorded verdict.
_MODEL_CHECK_SETTINGS = {name: check.reads for name, check in CHECKS.items() if check.needs_embedder}


def rescore(results: list[QuestionResult], recorded: Settings, settings: Settings) -> tuple[list[QuestionResult],
                                                                                           list[str]]:
    """The run's ``results`` as ``settings`` would have decided them, from the recorded drafts, features and
    probabilities, loading no model; also notes for the report on what could not be redone.

    Every check runs again on the recorded draft (so a changed check's code counts). A check that needs the
    embedder (``count``) keeps its recorded verdict, which is refused if its own setting changed; the verifier's
    ``confirmed`` reads its recorded probability. Relevance is judged again on the recorded passages; a question it
    stopped before generation has no draft to show, whatever the new settings say.
    """
    for check, names in _MODEL_CHECK_SETTINGS.items():
        changed = [n for n in names if getattr(recorded, n) != getattr(settings, n)]
        if changed:
            raise RunError(f"the {check} check needs the embedder, which a rescore does not load, so "
                           f"{', '.join(changed)} cannot change here: run the evaluation again")
    if settings.verifier_model and settings.verifier_model != recorded.verifier_model:
        raise RunError(f"this run recorded no probabilities of the verifier {settings.verifier_model}: run the "
                       "evaluation again with --verifier")
    path = settings.answerability_model or PACKAGED_MODEL
    model = AnswerabilityModel.load(path) if path.exists() else None
    if model is not None:
        lacking = sorted({name for r in results if r.draft and r.draft_citations and r.signals
                          for name in model.features if name not in r.features})
        if lacking:
            raise RunError(f"the answerability score {path.name} reads {', '.join(lacking)}, which this run did not "
                           "record: run the evaluation again with that score (--answerability-model)")
    changed_questions = 0
    rescored = []
    for result in results:
        verdicts = _verdicts(result, settings, model)
        if verdicts is None:
            rescored.append(result)
            continue
        new = decide(result, verdicts) if result.draft else _gated(result, verdicts)
        changed_questions += new.abstained != result.abstained
        rescored.append(new)
    notes = [(f"re-scored from recorded drafts: {changed_questions} of {len(results)} questions changed between "
              "answered and withheld")]
    never = sum(1 for r in rescored if not r.draft and r.verdicts and not r.withheld_by and r.abstained)
    if never:
        notes.append(f"{never} questions relevance stopped before generation now pass it, but have no draft to "
                     "show: they stay abstentions (re-run to answer them)")
    return rescored, notes


def _verdicts(result: QuestionResult, settings: Settings, model: AnswerabilityModel | None) -> list[dict] | None:
    """Every verdict of ``result`` judged again under ``settings``; None for a result with nothing to judge (a
    retrieval-only run, or a reply the model itself refused)."""
    if not result.verdicts:
        return None
    hits = [_hit(p) for p in result.passages]
    verdicts = [dict(v) for v in result.verdicts]
    for v in verdicts:
        if v["check"] == "relevance" and hits:
            fresh = relevance(hits, settings)
            v.update(passed=fresh.passed, reason=fresh.reason)
    if not result.draft:
        return _enforce(verdicts, settings)
    draft = Draft(
        result.question, result.draft, [Citation(**c) for c in result.draft_citations], hits,
        GenerationSignals(**result.signals) if result.signals else None, reply=result.draft_reply,
    )
    recorded_judge = _NoModel() if settings.verifier_model else None
    context = CheckContext(settings, result.features, _NoModel(), model, recorded_judge)
    for v in verdicts:
        check = CHECKS.get(v["check"])
        if check is None:
            continue
        try:
            fresh: Verdict = check(draft, context)
        except _ModelNeeded:
            continue  # the recorded verdict stands (its settings did not change: checked in ``rescore``)
        v.update(passed=fresh.passed, reason=fresh.reason)
    # A check written after the run judges the recorded draft too, unless it needs a model.
    recorded = {v["check"] for v in verdicts}
    for name, check in CHECKS.items():
        if name not in recorded and not check.needs_embedder:
            try:
                fresh = check(draft, context)
            except _ModelNeeded:
                continue
            verdicts.append({"check": name, "passed": fresh.passed, "reason": fresh.reason})
    return _enforce(verdicts, settings)


def _enforce(verdicts: list[dict], settings: Settings) -> list[dict]:
    """``verdicts`` enforced as ``settings.checks`` say (a refusal by the model always is)."""
    return [v | {"enforced": v["check"] in settings.checks or v["check"] == "refusal"} for v in verdicts]


def _gated(result: QuestionResult, verdicts: list[dict]) -> QuestionResult:
    """A question with no draft under new verdicts: still an abstention, withheld by whatever now fails."""
    return dataclasses.replace(result, verdicts=verdicts,
                               withheld_by=[v["check"] for v in verdicts if v["enforced"] and not v["passed"]])


def _hit(record: dict) -> Hit:
    return Hit(**(record | {"chunk": Chunk(**record["chunk"])}))


def changed_settings(settings: Settings, with_checks: Iterable[str] = (), without_checks: Iterable[str] = (),
                     preset: str | None = None, min_answerability: float | None = None) -> Settings:
    """``settings`` (a run's) with a rescore's options applied: a preset's changes, checks switched, a threshold."""
    if preset:
        changes = PRESETS[preset]
        answering = {"generator_model", "generator_url"}
        if any(name in answering and changes[name] != getattr(settings, name) for name in changes):
            raise SettingsError(f"the {preset} preset answers with another model: run the evaluation again")
        settings = dataclasses.replace(settings, **changes)
    settings = settings.with_checks(*with_checks).without_checks(*without_checks)
    return settings.with_changes(min_answerability=min_answerability)
