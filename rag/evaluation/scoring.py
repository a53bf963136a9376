"""Scoring the assistant against gold questions: answer F1/EM, retrieval recall and MRR, citations, abstention.

Every question goes through the same ``Assistant`` the chat uses; nothing here knows any particular question.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import statistics
import string
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rag.answering.citations import strip_markers, supported_by_citations
from rag.assistant import NOT_IN_DOCUMENTS, Assistant
from rag.config import KNOWN_CHECKS, Settings
from rag.ingest.chunking import split_sentences
from rag.ingest.loaders import clean_text
from rag.types import Answer, Citation, Document, Hit
from rag.verification.answerability import auroc
from rag.words import content_words

logger = logging.getLogger(__name__)

RECALL_KS = (1, 3, 5, 10)


class GoldFormatError(ValueError):
    """A gold file line is not a valid gold item; the message names the line."""


@dataclass(frozen=True)
class Evidence:
    doc: str
    quote: str


@dataclass(frozen=True)
class GoldItem:
    id: str
    question: str
    answers: list[str]
    answerable: bool
    evidence: list[Evidence]
    source: str = ""  # the document the question was written from, when known (a SQuAD paragraph)


def load_gold(path: Path | str) -> list[GoldItem]:
    """Read a gold JSONL file (``id``, ``question``, ``answers``, ``answerable``, ``evidence``)."""
    items = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                items.append(
                    GoldItem(
                        id=str(row["id"]),
                        question=str(row["question"]),
                        answers=[str(a) for a in row.get("answers", [])],
                        answerable=bool(row.get("answerable", bool(row.get("answers")))),
                        evidence=[Evidence(str(e["doc"]), str(e["quote"])) for e in row.get("evidence", [])],
                    )
                )
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise GoldFormatError(f"{path}:{number}: not a gold item ({exc})") from exc
    return items


# ------------------------------------------------------------------------------------------- answer metrics


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces.

    >>> normalize_answer("The  League's Ghent-fair!")
    'leagues ghentfair'
    """
    text = text.lower().replace("’", "'")
    text = "".join(ch for ch in text if ch not in set(string.punctuation) | {"“", "”", "‘"})
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def f1_score(prediction: str, gold: str) -> float:
    """Token-level F1 between normalised answers (SQuAD)."""
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = sum((Counter(predicted) & Counter(expected)).values())
    if not predicted or not expected:
        return float(predicted == expected)
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def best_f1(prediction: str, golds: list[str]) -> float:
    return max((f1_score(prediction, g) for g in golds), default=0.0)


def best_exact_match(prediction: str, golds: list[str]) -> float:
    return max((float(normalize_answer(prediction) == normalize_answer(g)) for g in golds), default=0.0)


# ---------------------------------------------------------------------------------------- retrieval metrics


@dataclass(frozen=True)
class Span:
    doc: str
    start: int
    end: int

    def overlaps(self, doc: str, start: int, end: int) -> bool:
        return doc == self.doc and start < self.end and self.start < end


def evidence_spans(item: GoldItem, documents: dict[str, Document]) -> list[Span]:
    """Character spans of the item's evidence quotes in the cleaned documents (quotes not found are left out)."""
    return [span for evidence in item.evidence if (span := find_evidence(evidence, documents))]


def find_evidence(evidence: Evidence, documents: dict[str, Document]) -> Span | None:
    """Where the evidence quote lies in its cleaned document; None when the document or the quote is not there.

    A quote is looked up as it is, then with case, line breaks, runs of spaces, and typographic quotes and dashes
    folded, so a quote typed with a plain apostrophe still finds "League’s".
    """
    document = documents.get(evidence.doc)
    quote = clean_text(evidence.quote)
    if document is None or not quote:
        return None
    start = document.text.find(quote)
    if start >= 0:
        return Span(evidence.doc, start, start + len(quote))
    folded_text, offsets = _folded(document.text)
    folded_quote = _folded(quote)[0]
    at = folded_text.find(folded_quote)
    if at < 0:
        return None
    return Span(evidence.doc, offsets[at], offsets[at + len(folded_quote) - 1] + 1)


_TYPOGRAPHIC = str.maketrans({"’": "'", "‘": "'", "‛": "'", "“": '"', "”": '"', "„": '"', "–": "-", "—": "-",
                              "‐": "-", "‑": "-"})


def _folded(text: str) -> tuple[str, list[int]]:
    """``text`` lower-cased, typographic quotes and dashes made plain, each run of whitespace one space; and for
    each character of that, its offset in ``text``."""
    characters: list[str] = []
    offsets: list[int] = []
    for offset, character in enumerate(text):
        if character.isspace():
            if characters and characters[-1] == " ":
                continue
            character = " "
        for folded in character.translate(_TYPOGRAPHIC).lower():
            characters.append(folded)
            offsets.append(offset)
    return "".join(characters), offsets


def first_relevant_rank(hits: list[Hit], spans: list[Span]) -> int | None:
    """1-based rank of the first hit whose chunk overlaps any evidence span; None when none does."""
    for rank, hit in enumerate(hits, start=1):
        if any(s.overlaps(hit.chunk.doc_name, hit.chunk.start, hit.chunk.end) for s in spans):
            return rank
    return None


def recall_at(ranks: list[int | None], k: int) -> float:
    return sum(r is not None and r <= k for r in ranks) / len(ranks) if ranks else 0.0


def mean_reciprocal_rank(ranks: list[int | None]) -> float:
    """Mean of 1/rank, counting a missing rank as 0.

    >>> mean_reciprocal_rank([1, 2, None, 4])
    0.4375
    """
    return sum(1 / r for r in ranks if r) / len(ranks) if ranks else 0.0


def is_grounded(answer: Answer) -> bool:
    """Whether every content word of the answer occurs in the passages it cites (abstentions count as grounded).

    The assistant abstains instead of showing an unsupported answer, so with it this rate is 1.0 by construction;
    the metric still tells when that check is changed or a generator path bypasses it.
    """
    return answer.abstained or supported_by_citations(answer.text, answer.citations, answer.hits)


def extractive_baseline(question: str, hits: list[Hit]) -> str:
    """The generator's stand-in: the sentence of the top passage sharing most content words with the question."""
    if not hits:
        return ""
    chunk = hits[0].chunk
    wanted = content_words(question)
    sentences = [chunk.text[s:e] for s, e in split_sentences(chunk.text)] or [chunk.text]
    return max(sentences, key=lambda s: len(wanted & content_words(s)))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


# ----------------------------------------------------------------------------------------------- the run


@dataclass
class QuestionResult:
    id: str
    question: str
    gold_answers: list[str]
    answerable: bool
    answer: str = ""
    abstained: bool = False
    f1: float = 0.0
    em: float = 0.0
    evidence_rank: int | None = None
    evidence_not_found: list[str] = field(default_factory=list)  # quotes missing from their documents
    retrieved: list[dict] = field(default_factory=list)
    citations: list[dict] = field(default_factory=list)
    cited_docs: list[str] = field(default_factory=list)
    citation_hits: int = 0  # citations whose quote overlaps evidence
    evidence_cited: bool = False
    grounded: bool = True
    latency_s: float = 0.0
    retrieval_s: float = 0.0
    generation_s: float = 0.0
    generated_tokens: int = 0
    baseline_answer: str = ""
    baseline_f1: float = 0.0
    baseline_em: float = 0.0
    # The verification stage: every verdict (enforced or not), the draft it judged and that draft's score, so the
    # report can tell what each check withheld and what switching it would change (``check_ablation``).
    verdicts: list[dict] = field(default_factory=list)
    withheld_by: list[str] = field(default_factory=list)
    raw_output: str = ""  # the generator's reply as it came (empty when it was not asked)
    draft: str = ""
    draft_quotes: list[str] = field(default_factory=list)  # the sentences the draft cited
    draft_f1: float = 0.0
    draft_em: float = 0.0
    features: dict[str, float] = field(default_factory=dict)
    # What re-running the checks on this draft without a model needs (``rag.evaluation.runs.rescore``): the model's whole
    # reply, the draft's citations and how many overlap evidence, the passages the model read (text included: a
    # SQuAD run's index is gone once it ends), and the generator's signals.
    draft_reply: str = ""
    draft_citations: list[dict] = field(default_factory=list)
    draft_citation_hits: int = 0
    passages: list[dict] = field(default_factory=list)
    signals: dict | None = None
    closest: dict | None = None  # an abstention's closest sentence (``Answer.closest``), as a citation

    @classmethod
    def from_record(cls, row: dict) -> QuestionResult:
        """A result read back from JSON: fields a record of another version lacks take their defaults; ones this
        version does not know are dropped."""
        return cls(**{k: v for k, v in row.items() if k in _RESULT_FIELDS})


_RESULT_FIELDS = frozenset(f.name for f in dataclasses.fields(QuestionResult))


def evaluate_question(
    assistant: Assistant, item: GoldItem, retrieval_only: bool, settings: Settings | None = None
) -> QuestionResult:
    result = QuestionResult(item.id, item.question, item.answers, item.answerable)
    located = [(evidence, find_evidence(evidence, assistant.index.documents)) for evidence in item.evidence]
    spans = [span for _, span in located if span]
    result.evidence_not_found = [f"{evidence.doc}: {evidence.quote}" for evidence, span in located if span is None]
    ranked = assistant.retrieve(item.question, top_k=max(RECALL_KS))
    result.evidence_rank = first_relevant_rank(ranked, spans)
    result.retrieved = [
        {"chunk_id": h.chunk.id, "doc": h.chunk.doc_name, "score": round(h.score, 5),
         "dense_score": round(h.dense_score, 4)}
        for h in ranked
    ]
    result.baseline_answer = extractive_baseline(item.question, ranked[: assistant.settings.top_k])
    result.baseline_f1 = best_f1(result.baseline_answer, item.answers)
    result.baseline_em = best_exact_match(result.baseline_answer, item.answers)
    if retrieval_only:
        return result

    answer = assistant.ask(item.question, settings=settings)
    result.answer, result.abstained = answer.text, answer.abstained
    result.verdicts = [asdict(v) for v in answer.verdicts]
    result.withheld_by = [v.check for v in answer.withheld_by]
    result.features = answer.features
    result.passages = [asdict(hit) for hit in answer.hits]
    if answer.draft is not None:
        result.draft = answer.draft.text
        result.draft_quotes = [c.quote for c in answer.draft.citations]
        result.draft_reply = answer.draft.reply
        result.draft_citations = [asdict(c) for c in answer.draft.citations]
        result.draft_citation_hits = _evidence_hits(answer.draft.citations, spans)
        result.signals = asdict(answer.draft.signals) if answer.draft.signals is not None else None
    result.raw_output = answer.raw_output if answer.raw_output != NOT_IN_DOCUMENTS else ""
    result.draft_f1 = best_f1(strip_markers(result.draft), item.answers) if result.draft else 0.0
    result.draft_em = best_exact_match(strip_markers(result.draft), item.answers) if result.draft else 0.0
    scored_text = strip_markers(answer.text)
    result.f1 = 0.0 if answer.abstained else best_f1(scored_text, item.answers)
    result.em = 0.0 if answer.abstained else best_exact_match(scored_text, item.answers)
    result.citations = [asdict(c) for c in answer.citations]
    result.cited_docs = sorted({c.doc for c in answer.citations})
    result.closest = asdict(answer.closest) if answer.closest is not None else None
    result.citation_hits = _evidence_hits(answer.citations, spans)
    cited_ids = {c.chunk_id for c in answer.citations}
    result.evidence_cited = any(
        any(s.overlaps(h.chunk.doc_name, h.chunk.start, h.chunk.end) for s in spans)
        for h in answer.hits
        if h.chunk.id in cited_ids
    )
    result.grounded = is_grounded(answer)
    result.latency_s = answer.timings.total_s
    result.retrieval_s = answer.timings.retrieval_s
    result.generation_s = answer.timings.generation_s
    if answer.raw_output and answer.raw_output != NOT_IN_DOCUMENTS:  # else the generator was not called
        result.generated_tokens = assistant.generator.count_tokens(answer.raw_output)
    return result


def _evidence_hits(citations: Iterable[Citation], spans: list[Span]) -> int:
    """How many of ``citations`` quote text overlapping an evidence span."""
    return sum(any(s.overlaps(c.doc, c.start, c.end) for s in spans) for c in citations)


def sample_gold(gold: list[GoldItem], size: int, seed: int = 0) -> list[GoldItem]:
    """A seeded sample of ``size`` questions that keeps the set's share of unanswerable ones (rounded), in the
    set's order; the whole set when ``size`` is not smaller. The same seed gives the same questions."""
    if size >= len(gold):
        return list(gold)
    unanswerable = [i for i, item in enumerate(gold) if not item.answerable]
    answerable = [i for i, item in enumerate(gold) if item.answerable]
    wanted = min(len(unanswerable), round(size * len(unanswerable) / len(gold)))
    wanted = max(wanted, size - len(answerable))
    rng = np.random.default_rng(seed)
    chosen = [*rng.choice(unanswerable, wanted, replace=False), *rng.choice(answerable, size - wanted, replace=False)]
    return [gold[i] for i in sorted(int(i) for i in chosen)]


def summarize(results: list[QuestionResult], retrieval_only: bool = False) -> dict[str, float]:
    """The report's top-level metrics (rates in 0..1, times in seconds)."""
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if not r.answerable]
    ranks = [r.evidence_rank for r in answerable]
    metrics: dict[str, float] = {f"recall_at_{k}": recall_at(ranks, k) for k in RECALL_KS}
    metrics["mrr"] = mean_reciprocal_rank(ranks)
    metrics["baseline_f1"] = _mean(r.baseline_f1 for r in answerable)
    metrics["baseline_em"] = _mean(r.baseline_em for r in answerable)
    metrics["n_questions"] = len(results)
    metrics["n_answerable"] = len(answerable)
    if retrieval_only:
        return metrics
    answered = [r for r in results if not r.abstained]
    citations = sum(len(r.citations) for r in results)
    generated = [r for r in results if r.generated_tokens and r.generation_s > 0]
    metrics |= {
        "answer_f1": _mean(r.f1 for r in answerable),
        "answer_em": _mean(r.em for r in answerable),
        "citation_precision": sum(r.citation_hits for r in results) / citations if citations else 0.0,
        "citation_recall": _mean(float(r.evidence_cited) for r in answerable),
        "abstain_recall": _mean(float(r.abstained) for r in unanswerable),
        "abstain_false_rate": _mean(float(r.abstained) for r in answerable),
        "grounded_rate": _mean(float(r.grounded) for r in answered),
        "latency_p50_s": percentile([r.latency_s for r in results], 50),
        "latency_p95_s": percentile([r.latency_s for r in results], 95),
        "retrieval_p50_s": percentile([r.retrieval_s for r in results], 50),
        "generation_tokens_per_s": (
            sum(r.generated_tokens for r in generated) / sum(r.generation_s for r in generated) if generated else 0.0
        ),
        "latency_max_s": max((r.latency_s for r in results), default=0.0),
    }
    # Of the answerable questions withheld with a closest sentence quoted, how often that sentence holds a gold
    # answer: there the person reads the answer anyway, in the documents' words.
    quoted = [r for r in answerable if r.abstained and r.closest]
    if quoted:
        metrics["closest_holds_answer"] = _mean(
            float(any(normalize_answer(g) in normalize_answer(r.closest["quote"]) for g in r.gold_answers if g))
            for r in quoted)
    return metrics


# ------------------------------------------------------------------------------ intervals and ablations

# The metrics given bootstrap intervals, each a function of per-question arrays (``_columns``).
INTERVAL_METRICS = ("answer_f1", "answer_em", "abstain_recall", "abstain_false_rate", "citation_precision")


def _columns(results: list[QuestionResult]) -> dict[str, np.ndarray]:
    return {
        "answerable": np.array([r.answerable for r in results], dtype=bool),
        "f1": np.array([r.f1 for r in results], dtype=float),
        "em": np.array([r.em for r in results], dtype=float),
        "abstained": np.array([r.abstained for r in results], dtype=float),
        "citation_hits": np.array([r.citation_hits for r in results], dtype=float),
        "citations": np.array([len(r.citations) for r in results], dtype=float),
    }


def _interval_metrics(columns: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """``INTERVAL_METRICS`` for each resample in ``rows`` (resamples x questions, indices), as resamples x metrics."""
    answerable = columns["answerable"][rows]

    def mean_where(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        counts = mask.sum(axis=1)
        return np.where(counts > 0, (values * mask).sum(axis=1) / np.maximum(counts, 1), 0.0)

    cited = columns["citations"][rows].sum(axis=1)
    return np.stack([
        mean_where(columns["f1"][rows], answerable),
        mean_where(columns["em"][rows], answerable),
        mean_where(columns["abstained"][rows], ~answerable),
        mean_where(columns["abstained"][rows], answerable),
        np.where(cited > 0, columns["citation_hits"][rows].sum(axis=1) / np.maximum(cited, 1), 0.0),
    ], axis=1)


def bootstrap_intervals(
    results: list[QuestionResult], resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, list[float]]:
    """Percentile bootstrap ``level`` intervals of ``INTERVAL_METRICS``, questions resampled with replacement."""
    if not results:
        return {}
    rows = np.random.default_rng(seed).integers(0, len(results), size=(resamples, len(results)))
    values = _interval_metrics(_columns(results), rows)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail], axis=0)
    return {name: [round(float(lo), 4), round(float(hi), 4)] for name, lo, hi in zip(INTERVAL_METRICS, low, high)}


def paired_differences(
    first: list[QuestionResult], second: list[QuestionResult], resamples: int = 2000, seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float, float]]:
    """For the questions both runs asked (matched by id), each ``INTERVAL_METRICS`` difference (second - first)
    with its paired bootstrap ``level`` interval: ``(difference, low, high)``. An interval that excludes 0 is a
    difference the sample size can tell from noise."""
    by_id = {r.id: r for r in first}
    pairs = [(by_id[r.id], r) for r in second if r.id in by_id]
    if not pairs:
        return {}
    a, b = _columns([p[0] for p in pairs]), _columns([p[1] for p in pairs])
    full = np.arange(len(pairs))[None, :]
    rows = np.random.default_rng(seed).integers(0, len(pairs), size=(resamples, len(pairs)))
    observed = _interval_metrics(b, full)[0] - _interval_metrics(a, full)[0]
    deltas = _interval_metrics(b, rows) - _interval_metrics(a, rows)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(deltas, [tail, 100 - tail], axis=0)
    return {name: (float(d), float(lo), float(hi)) for name, d, lo, hi in zip(INTERVAL_METRICS, observed, low, high)}


RIGHT_F1 = 0.5  # a draft this close to a gold answer counts as right (the answerability score's label)


def is_right(result: QuestionResult) -> int:
    """1 when the draft answers an answerable question (F1 >= ``RIGHT_F1``), else 0."""
    return int(result.answerable and result.draft_f1 >= RIGHT_F1)


def answerability_auroc(results: list[QuestionResult]) -> float | None:
    """How well the recorded answerability scores rank right drafts (``is_right``) above wrong ones (AUROC);
    None when the run recorded no scores or had drafts of one kind only."""
    scored = [r for r in results if r.draft and "answerability_score" in r.features]
    labels = [is_right(r) for r in scored]
    if len(set(labels)) < 2:
        return None
    return auroc([r.features["answerability_score"] for r in scored], labels)


def withheld_by_check(results: list[QuestionResult]) -> dict[str, int]:
    """How many answers each check withheld (an answer withheld by two checks counts for both)."""
    counts = Counter(check for r in results for check in r.withheld_by)
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def check_ablation(results: list[QuestionResult], settings: Settings) -> list[dict[str, object]]:
    """What turning each check off (if enforced) or on (if not) would have given, computed from the verdicts the
    run recorded (``decide``).

    Exact for the checks of a draft; a question the relevance check stopped before generation has no draft, so
    "relevance off" keeps it abstained (and says how many such questions there were: those need a re-run).
    """
    rows = []
    for check in KNOWN_CHECKS:
        enforced = check in settings.checks
        variant = [
            decide(r, [v | {"enforced": not enforced} if v["check"] == check else v for v in r.verdicts])
            for r in results
        ]
        metrics = summarize(variant)
        rows.append({
            "check": check,
            "switched": "off" if enforced else "on",
            "answer_f1": metrics["answer_f1"], "answer_em": metrics["answer_em"],
            "abstain_recall": metrics["abstain_recall"], "abstain_false_rate": metrics["abstain_false_rate"],
            "no_draft": sum(1 for r in results if not r.draft and check in r.withheld_by),
        })
    return rows


def decide(result: QuestionResult, verdicts: list[dict]) -> QuestionResult:
    """``result`` as it would have been with these ``verdicts`` (dicts with ``check``, ``passed``, ``enforced``):
    its draft shown when no enforced one failed, else withheld.

    A question refused by the model or stopped before generation has no draft and stays as it was. An answer
    shown before and after keeps what it showed; one newly shown is scored as its draft, citing the draft's
    citations (the live pipeline may move a lone citation to a closer sentence, which needs the embedder).
    """
    if not result.verdicts or not result.draft:
        return result
    withheld_by = [v["check"] for v in verdicts if v["enforced"] and not v["passed"]]
    if withheld_by:
        return dataclasses.replace(result, abstained=True, f1=0.0, em=0.0, answer=NOT_IN_DOCUMENTS, citations=[],
                                   cited_docs=[], citation_hits=0, evidence_cited=False, grounded=True,
                                   verdicts=verdicts, withheld_by=withheld_by)
    if not result.abstained:
        return dataclasses.replace(result, verdicts=verdicts, withheld_by=[])
    citations = result.draft_citations
    return dataclasses.replace(
        result, abstained=False, f1=result.draft_f1, em=result.draft_em, answer=result.draft, citations=citations,
        cited_docs=sorted({c["doc"] for c in citations}), citation_hits=result.draft_citation_hits,
        evidence_cited=result.draft_citation_hits > 0, verdicts=verdicts, withheld_by=[], closest=None,
        grounded=all(v["passed"] for v in verdicts if v["check"] == "supported"),
    )


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def run_evaluation(
    assistant: Assistant, gold: list[GoldItem], retrieval_only: bool = False, progress: bool = True,
    settings: Settings | None = None, done: Sequence[QuestionResult] = (),
    on_result: Callable[[QuestionResult], None] | None = None,
) -> tuple[dict[str, float], list[QuestionResult]]:
    """Ask every gold question not already ``done`` (with a progress bar; ``settings`` override the assistant's),
    handing each result to ``on_result`` as soon as it is scored; return the summary metrics and the per-question
    results of the whole set, in its order, ``done`` ones included."""
    finished = {r.id: r for r in done}
    pending = [item for item in gold if item.id not in finished]
    for item in tqdm(pending, desc="evaluating", unit="question", disable=not progress):
        result = evaluate_question(assistant, item, retrieval_only, settings)
        for quote in result.evidence_not_found:
            logger.warning("%s: evidence not found in the documents, so retrieval counts a miss: %s", result.id, quote)
        finished[result.id] = result
        if on_result is not None:
            on_result(result)
    results = [finished[item.id] for item in gold]
    return summarize(results, retrieval_only), results
