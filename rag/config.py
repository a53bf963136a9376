"""One typed settings object for the whole pipeline; the CLI and the UI only map their options onto it."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

Quantization = Literal["none", "int8"]
# What runs a local model: "transformers" (the reference, every feature) or "ctranslate2" (int8 weights, faster on
# a CPU without AMX; no quote mode), rag.models.local.ctranslate2_generator.
Engine = Literal["auto", "transformers", "ctranslate2"]
# How a 16-bit generator's matrices multiply (rag.models.local.precision); "auto" times both ways on the processor present.
MatmulPrecision = Literal["auto", "float32", "bfloat16"]
AnswerMode = Literal["free", "quote"]
EmbeddingBackend = Literal["onnx-int8", "torch"]
Fusion = Literal["rrf", "weighted"]
# Where the index lives: "faiss", a folder of files (index_dir); "milvus", a Milvus database (milvus_uri).
Store = Literal["faiss", "milvus"]
# What opens each passage the generator reads, in brackets: its document's title, its opening line, or nothing.
PassageHeader = Literal["title", "lead", "none"]

Preset = Literal["default", "fast", "cautious", "verified", "accurate"]

# The verification stage's checks (rag.verification.verifier.CHECKS, plus "relevance", judged before generation).
KNOWN_CHECKS = ("relevance", "supported", "adds", "citation_relevance", "count", "pinned", "answerability",
                "confirmed")
# Those enforced by default: each paid on the external set's tuning half and the confirmation half agreed
# (eval/README.md, rows 47-52). "count" paid on the tuning half only; "answerability" doubled abstain recall at a
# cost of 0.10 F1 there, so it is the "cautious" preset's. Both still run and are recorded.
# "pinned" (what the question pins down is in the passages read from the cited documents), eval log row 67: with
# the 0.5B, abstain recall +0.093 on the tuning half and +0.099 on the confirmation half (both outside the noise),
# F1 -0.018 and -0.015 (the second within the noise); with the 1.5B (samples of 50), abstain recall +0.222 and
# +0.040, F1 unchanged; dev unchanged.
DEFAULT_CHECKS = ("relevance", "supported", "adds", "citation_relevance", "pinned")
# A packaged model's own default checks on one engine, where they differ (``with_packaged_model`` in
# rag.models.model_choice applies them when the checks are left at DEFAULT_CHECKS). The 1.5B on the int8 engine:
# its answerability score (rag/models/scores/answerability-1.5b-int8.json: the model's P(yes) that the cited sentence,
# and that the whole cited passage, answer the question, with retrieval's and the sentence's closeness; fitted to tell
# answerable questions from unanswerable ones on the tuning half, its threshold for at most 10% of answerable
# questions withheld beside relevance and supported) instead of adds, citation_relevance and pinned, which still run,
# recorded. Eval log row 71, whole confirmation half, paired: abstain recall 0.287 -> 0.485 (+0.198, +0.090 to
# +0.302), false abstention 0.165 -> 0.136, F1 0.659 -> 0.654; dev F1 unchanged. Its two yes/no prompts cost about a
# second per answer. Not (yet) for the 1.5B on transformers (samples of 50 only, an earlier fit: confirmation false
# abstention +0.120, +0.000 to +0.259) nor for the 0.5B (whole confirmation half: false abstention 0.30 -> 0.52).
MODEL_CHECKS = {("qwen2.5-coder-1.5b", "ctranslate2"): ("relevance", "supported", "answerability")}


class SettingsError(ValueError):
    """A setting has a value the pipeline cannot work with; the message names the setting."""


def default_cache_dir() -> Path:
    """Where converted models live: ``$RAG_CACHE_DIR``, else ``$XDG_CACHE_HOME/rag-assistant``, else ``~/.cache``."""
    if os.environ.get("RAG_CACHE_DIR"):
        return Path(os.environ["RAG_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "rag-assistant"


# ------------------------------------------------------------------------------------ declaring a setting

# The stages a setting belongs to, in pipeline order (``Settings.by_stage``).
STAGES = ("ingest", "store", "models", "retrieval", "generation", "verification", "serving")

# A rule says what is wrong with a value, or None when it is fine; the message then reads "NAME must be ...".
Rule = Callable[[object], "str | None"]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def between(low: float, high: float, what: str = "a number") -> Rule:
    """A number (an integer where ``what`` says so) from ``low`` to ``high``."""
    def rule(value: object) -> str | None:
        fits = _is_int(value) if "integer" in what else _is_number(value)
        return None if fits and low <= value <= high else f"be {what} from {low} to {high}"  # type: ignore[operator]
    return rule


def positive(value: object) -> str | None:
    return None if _is_int(value) and value >= 1 else "be a positive integer"


def zero_or_positive(zero_means: str) -> Rule:
    def rule(value: object) -> str | None:
        return None if _is_int(value) and value >= 0 else f"be 0 ({zero_means}) or a positive integer"
    return rule


def seconds(value: object) -> str | None:
    return None if _is_number(value) and value > 0 else "be a positive number of seconds"


def probability(value: object) -> str | None:
    return None if _is_number(value) and 0.0 <= value <= 1.0 else "be a probability or score in [0, 1]"


def cosine(value: object) -> str | None:
    return None if _is_number(value) and -1.0 <= value <= 1.0 else "be a cosine similarity in [-1, 1]"


def setting(default: object = dataclasses.MISSING, *, stage: str, rule: Rule | None = None,
            factory: Callable[[], object] | None = None) -> Any:
    """A field of ``Settings``: its default, the stage that reads it, and the rule its value must follow (a
    ``Literal`` annotation is a rule of its own: one of its values). ``None`` is always allowed where the default
    is ``None``."""
    assert stage in STAGES, stage
    metadata = {"stage": stage, "rule": rule}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _generator_url(value: object) -> str | None:
    return None if isinstance(value, str) and value.startswith(("http://", "https://")) else (
        "be an http(s) URL such as http://127.0.0.1:8080/v1")


def _ocr_language(value: object) -> str | None:
    fits = isinstance(value, str) and value and all(part.isidentifier() for part in value.split("+"))
    return None if fits else "be Tesseract language codes joined by +"


def _identifier(value: object) -> str | None:
    return None if isinstance(value, str) and value.isidentifier() else "be letters, digits and _"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every tunable of the assistant, validated on construction. One flat namespace, each field declaring its
    stage and its rule (``setting``): CLI flags, presets, ``with_changes`` and the settings recorded with an
    evaluation run map onto it one to one, and ``by_stage`` gives the view by stage.

    >>> Settings(top_k=3).top_k
    3
    """

    # ingest
    docs_dir: Path = setting(Path("documents"), stage="ingest")
    # Documents over this size are skipped, unread, with the reason in the index report.
    max_file_mb: int = setting(50, stage="ingest", rule=positive)
    # PDF pages without a text layer are read by Tesseract (rag.ingest.ocr) in this language ("eng+deu" for two),
    # rendered at ocr_dpi; False skips them, as happens anyway where Tesseract is not installed (the index report
    # says so).
    ocr: bool = setting(True, stage="ingest")
    ocr_language: str = setting("eng", stage="ingest", rule=_ocr_language)
    ocr_dpi: int = setting(300, stage="ingest", rule=between(72, 1200, "an integer"))
    # Chunking, in embedder tokens. all-MiniLM-L6-v2 reads at most 256 word pieces and was trained on 128.
    chunk_tokens: int = setting(128, stage="ingest", rule=between(1, 256, "an integer"))
    chunk_overlap_tokens: int = setting(32, stage="ingest", rule=zero_or_positive("no overlap"))

    # store
    # How long an index update waits for another one to finish before giving up.
    index_lock_wait_s: float = setting(600.0, stage="store", rule=seconds)
    index_dir: Path = setting(Path("index"), stage="store")
    store: Store = setting("faiss", stage="store")
    # A file path runs Milvus Lite in the process (one process at a time); http://host:19530 reaches a Milvus
    # server, which several chat servers can share. None: index_dir/milvus.db. The token comes from $MILVUS_TOKEN.
    milvus_uri: str | None = setting(None, stage="store")
    # The prefix of the store's collections, so that one database holds several.
    milvus_collection: str = setting("rag", stage="store", rule=_identifier)
    # Exact vector search reads every vector for every question: about 20 ms at 10^5 chunks and 200 ms at 10^6 on
    # a 2-core laptop (`rag bench retrieval`). Above this many chunks an inverted-file index is built instead.
    exact_search_limit: int = setting(50_000, stage="store", rule=positive)

    # models: None means the model shipped by the project's PyPI dependencies.
    cache_dir: Path = setting(stage="models", factory=default_cache_dir)
    embedding_model: str | None = setting(None, stage="models")
    # "onnx-int8": the embedding model exported once into cache_dir and run int8 with onnxruntime (faster,
    # `rag bench ingestion`); "torch": as sentence-transformers runs it.
    embedding_backend: EmbeddingBackend = setting("onnx-int8", stage="models")
    # A Hugging Face model folder, a .gguf file, or a packaged model's name ("qwen2.5-coder-0.5b" or "-1.5b").
    # None: the packaged one this processor runs fast enough, the 1.5B where it can (rag.models.model_choice).
    generator_model: str | None = setting(None, stage="models")
    # An OpenAI-compatible server (vLLM, llama.cpp's, Ollama, TGI: "http://host:port/v1") that writes the answers
    # instead of a local model; generator_api_model names its model (None: the first it lists). The key, if the
    # server wants one, comes from $RAG_GENERATOR_API_KEY.
    generator_url: str | None = setting(None, stage="models", rule=_generator_url)
    generator_api_model: str | None = setting(None, stage="models")
    generator_timeout_s: float = setting(60.0, stage="models", rule=seconds)
    # What runs a local model. "auto": transformers, the reference engine that every feature runs on, except for
    # the packaged 1.5B where only the int8 engine is predicted to answer within the budget on this processor
    # (rag.models.model_choice).
    engine: Engine = setting("auto", stage="models")
    quantization: Quantization = setting("none", stage="models")
    matmul_precision: MatmulPrecision = setting("auto", stage="models")
    # Disk kept in cache_dir for the attention caches of prompt starts (the system message; the system message and
    # a first passage, about 5 MB each for the default model), least recently used dropped first; 0 keeps none.
    prompt_cache_mb: int = setting(256, stage="models", rule=zero_or_positive("keep none"))

    # retrieval
    top_k: int = setting(4, stage="retrieval", rule=positive)  # passages given to the generator
    candidates: int = setting(20, stage="retrieval", rule=positive)  # per retriever, before fusion
    # How the dense and keyword rankings become one. "rrf": reciprocal rank fusion, which keeps only ranks.
    # "weighted": (1 - keyword_weight) * cosine + keyword_weight * BM25 / best BM25, which keeps the margins: it
    # ranks the evidence better (held-out MRR 0.707 -> 0.877, dev 0.933 -> 0.950) but lets a chunk of another
    # document that shares one rare word into the passages, and the model's answers got worse (eval/README.md,
    # row 34), so rank fusion stays the default.
    fusion: Fusion = setting("rrf", stage="retrieval")
    keyword_weight: float = setting(0.5, stage="retrieval", rule=probability)
    rrf_k: int = setting(60, stage="retrieval", rule=positive)  # reciprocal rank fusion constant (Cormack et al. 2009)
    # Each passage is narrowed to this many embedder tokens of whole sentences around the one most similar to the
    # question before the generator reads it; 0 gives it whole chunks.
    passage_tokens: int = setting(0, stage="retrieval", rule=zero_or_positive("whole chunks"))

    # generation
    # Worked examples (rag.answering.prompts.EXAMPLES) shown before the question; 0 shows none. Their attention
    # cache is kept with the system message's. With 3, the external tuning half's F1 moved within its noise and
    # citation precision fell (eval/README.md, row 49), so none are shown by default.
    prompt_examples: int = setting(0, stage="generation", rule=zero_or_positive("none"))
    # Answers are a phrase: on the external tuning half, 19 drafts ran to 24 tokens or more and 1 was right, while
    # each token costs about 0.1 s (eval/README.md, row 47).
    max_new_tokens: int = setting(24, stage="generation", rule=positive)
    # The opening line, not the title, opens each passage: with the file name as title (no heading, no metadata),
    # dev F1 fell 0.077 and citation precision 0.115 (outside the noise); the Rhine halves moved within it
    # (eval/log.md, row 57). What the page shows is the title either way.
    passage_header: PassageHeader = setting("lead", stage="generation")
    # A reply that restates the question ("The river turns north near Chur.") is shown cut to its answer ("Chur";
    # rag/answering/echo.py); the checks still read the whole reply. External tuning half: EM +0.027 (+0.005 to
    # +0.051), abstentions unchanged (eval/README.md, row 54).
    trim_echo: bool = setting(True, stage="generation")
    # A reply still unfinished after this long is cut off where it is.
    max_generation_s: float = setting(60.0, stage="generation", rule=seconds)
    # "free": the model writes the answer, which is checked against the passage it cites; "quote": decoding is
    # constrained so the answer is a span copied verbatim from one passage (or the refusal).
    answer_mode: AnswerMode = setting("free", stage="generation")

    # verification: each check's threshold is read by that check alone (rag.verification.verifier.CHECKS says
    # which).
    # The checks that may withhold an answer, in the order run (rag/verification/verifier.py); the others are still
    # run and recorded, unenforced, so evaluation measures each.
    checks: tuple[str, ...] = setting(DEFAULT_CHECKS, stage="verification")
    # Best dense cosine below which the documents clearly do not hold the answer. Measured on the dev gold set:
    # answerable questions scored 0.19 to 0.83, off-topic ones 0.02 to 0.27, so this only filters the clear cases
    # and the generator decides the rest.
    min_relevance: float = setting(0.15, stage="verification", rule=cosine)
    # Cosine of the question and the sentence an answer cites, below which the answer is withheld: the sentence is
    # about something else. Dev gold answers cited sentences at 0.21 to 0.92; off-topic questions the model still
    # answered (a capital asked, a summit's host city answered) cited sentences at 0.06 and 0.12 (eval/README.md).
    min_citation_relevance: float = setting(0.15, stage="verification", rule=cosine)
    # Two counted phrases at least this similar (cosine) name the same thing for the "count" check.
    count_min_similarity: float = setting(0.6, stage="verification", rule=cosine)
    # The answering model's extra yes/no pass for the answerability score ("answered_prob": about half a second of
    # the 1.5B's) runs only where the score is enforced ("answerability" in checks), unless this is on: `rag eval`
    # turns it on, so that a rescore can enforce the score later and its features are recorded.
    measure_all_features: bool = setting(False, stage="verification")
    # The answerability score (0..1) below which an answer is withheld; None: the threshold fitted with the model.
    min_answerability: float | None = setting(None, stage="verification", rule=probability)
    # A JSON model from `rag calibrate`; None: the one packaged for the answering model
    # (rag.verification.answerability).
    answerability_model: Path | None = setting(None, stage="verification")
    # The "confirmed" check's verifier: a model (named as ``generator_model`` is) asked whether the cited sentences
    # state the answer; None runs no verifier, and the check passes every draft unjudged.
    verifier_model: str | None = setting(None, stage="verification")
    # The verifier's P(yes) below which the "confirmed" check withholds the answer.
    min_confirmation: float = setting(0.5, stage="verification", rule=probability)

    # serving: every question, and every earlier turn of a conversation, at most this long.
    max_question_chars: int = setting(2000, stage="serving", rule=positive)
    # Where the answers given and the feedback on them are kept (records.sqlite, rag.records); None: the index
    # folder.
    data_dir: Path | None = setting(None, stage="serving")

    @property
    def records_path(self) -> Path:
        """The SQLite file of answers and feedback."""
        return Path(self.data_dir or self.index_dir) / "records.sqlite"

    def __post_init__(self) -> None:
        for name in ("docs_dir", "index_dir", "cache_dir"):
            object.__setattr__(self, name, Path(getattr(self, name)).expanduser())
        for name in ("answerability_model", "data_dir"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)).expanduser())
        if isinstance(self.checks, str) or not all(isinstance(name, str) for name in self.checks):
            raise SettingsError(f"checks must be a sequence of check names, got {self.checks!r}")
        object.__setattr__(self, "checks", tuple(self.checks))
        for field in dataclasses.fields(self):
            _validate(field, getattr(self, field.name))
        # What no single field can say.
        unknown = [name for name in self.checks if name not in KNOWN_CHECKS]
        if unknown or len(set(self.checks)) != len(self.checks):
            raise SettingsError(
                f"checks must be distinct names among {', '.join(KNOWN_CHECKS)}; got {', '.join(self.checks)}"
            )
        if self.chunk_overlap_tokens >= self.chunk_tokens:
            raise SettingsError(f"chunk_overlap_tokens must be in [0, chunk_tokens), got {self.chunk_overlap_tokens}")
        if self.candidates < self.top_k:
            raise SettingsError(f"candidates ({self.candidates}) must be at least top_k ({self.top_k})")

    @classmethod
    def by_stage(cls) -> dict[str, list[str]]:
        """The settings' names by the stage that reads them, in pipeline order.

        >>> Settings.by_stage()["retrieval"][:2]
        ['top_k', 'candidates']
        """
        stages: dict[str, list[str]] = {stage: [] for stage in STAGES}
        for field in dataclasses.fields(cls):
            stages[field.metadata["stage"]].append(field.name)
        return stages

    @property
    def milvus_location(self) -> str:
        """The Milvus URI the store uses: ``milvus_uri``, else a Milvus Lite file in the index folder."""
        return self.milvus_uri or str(self.index_dir / "milvus.db")

    def with_preset(self, preset: Preset) -> Settings:
        """A copy set up as ``preset`` says (``PRESETS``)."""
        if preset not in PRESETS:
            raise SettingsError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        return dataclasses.replace(self, **PRESETS[preset])

    def without_checks(self, *names: str) -> Settings:
        """A copy with the named checks no longer enforced (unknown names raise SettingsError)."""
        unknown = [name for name in names if name not in KNOWN_CHECKS]
        if unknown:
            raise SettingsError(f"unknown check(s): {', '.join(unknown)}; known: {', '.join(KNOWN_CHECKS)}")
        return dataclasses.replace(self, checks=tuple(name for name in self.checks if name not in names))

    def with_checks(self, *names: str) -> Settings:
        """A copy that also enforces the named checks, after those already enforced (unknown names raise
        SettingsError)."""
        unknown = [name for name in names if name not in KNOWN_CHECKS]
        if unknown:
            raise SettingsError(f"unknown check(s): {', '.join(unknown)}; known: {', '.join(KNOWN_CHECKS)}")
        added = tuple(name for name in dict.fromkeys(names) if name not in self.checks)
        return dataclasses.replace(self, checks=(*self.checks, *added))

    def with_changes(self, **changes: object) -> Settings:
        """A copy with some settings changed. ``None`` values are skipped (an option the user did not give keeps
        its current value); unknown names raise SettingsError."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def _choices(name: str) -> tuple[object, ...]:
    """The values a ``Literal``-annotated setting may take; () for any other annotation."""
    hint = _hints().get(name)
    args = [a for a in get_args(hint) if a is not type(None)] if get_origin(hint) is not Literal else [hint]
    literals = [a for a in args if get_origin(a) is Literal]
    return tuple(v for a in literals for v in get_args(a))


@functools.cache
def _hints() -> dict[str, object]:
    return get_type_hints(Settings)


def _validate(field: dataclasses.Field, value: object) -> None:
    """Raise SettingsError naming ``field`` when ``value`` breaks its rule or is not one of its ``Literal``'s."""
    if value is None and field.default is None:
        return
    choices = _choices(field.name)
    if choices and value not in choices:
        raise SettingsError(f"{field.name} must be one of {choices}, got {value!r}")
    rule = field.metadata.get("rule")
    problem = rule(value) if rule is not None else None
    if problem:
        raise SettingsError(f"{field.name} must {problem}, got {value!r}")


# Named bundles of settings (eval/log.md, rows 51-61). "default" leaves the model to rag.models.model_choice: the 1.5B
# where this processor runs it fast enough, else the 0.5B. External confirmation half, 2026-12-04, on a 2-core Xeon
# with AMX (the 1.5B chosen): F1 0.686, EM 0.631, abstain recall 0.238, false abstention 0.136, p95 4.6 s.
# "fast": the 0.5B on every processor, about a third of the compute: F1 0.468, abstain recall 0.267, false
# abstention 0.301 (row 61).
# "cautious": the answerability score fitted on the answering model's drafts withholds answers the generator and
# retrieval were unsure of, too (the 0.5B's: abstain recall 0.27 -> 0.65, F1 0.47 -> 0.37, 2026-12-03). The
# 1.5B's also reads the model's P(yes) that the cited sentence answers the question: confirmation half F1 0.657,
# abstain recall 0.545, false abstention 0.184, against 0.618, 0.574, 0.243 for its score without it (row 62).
# Not the default: on the dev and held-out sets it withheld right answers whose sentence needs its passage to be
# read (F1 0.891 -> 0.737 and 0.914 -> 0.840).
# "verified": the 0.5B answers, and the packaged 1.5B model, shown only the question, the answer and its cited
# sentences, says whether they state it; its P(yes) is one more feature of the score
# (rag/models/scores/answerability-verified.json). Confirmation half: F1 0.415, abstain recall 0.594, false abstention 0.379, at
# about 1.2 s more an answer (row 55).
# "accurate": the 1.5B answers on any processor, checks its own answers as the verifier (the same model: nothing
# more is loaded), and the score fitted on its drafts with that check (rag/models/scores/answerability-accurate.json) is
# enforced. Confirmation half, 2026-12-03: F1 0.638, EM 0.583, abstain recall 0.584, false abstention 0.233, p50
# 3.7 s, p95 6.4 s (row 56).
PRESETS: dict[str, dict[str, object]] = {
    "default": {},
    "fast": {"generator_model": "qwen2.5-coder-0.5b"},
    "cautious": {"checks": (*DEFAULT_CHECKS, "answerability")},
    "verified": {
        "generator_model": "qwen2.5-coder-0.5b",
        "verifier_model": "qwen2.5-coder-1.5b",
        "answerability_model": Path(__file__).parent / "models" / "scores" / "answerability-verified.json",
        "checks": (*DEFAULT_CHECKS, "answerability"),
    },
    "accurate": {
        "generator_model": "qwen2.5-coder-1.5b",
        "verifier_model": "qwen2.5-coder-1.5b",
        "answerability_model": Path(__file__).parent / "models" / "scores" / "answerability-accurate.json",
        "checks": (*DEFAULT_CHECKS, "answerability"),
    },
}
