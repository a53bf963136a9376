"""The verification stage: every check judges a draft answer, and the answer is shown only if none enforced
withheld it.

Each check has one signature: a ``Draft`` (question, text, citations, passages) and the stage's shared
``CheckContext`` in, a ``Verdict`` (check, passed, reason) out. ``Settings.checks`` lists the enforced ones in order;
the others still run and are recorded unenforced, so one evaluation run measures switching any of them on or off
(`rag eval` reports it). Adding a check: write the function, add it to ``CHECKS`` with the settings it reads, name
it in ``rag.config.KNOWN_CHECKS``, and measure it on the external set before listing it in the defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.answering.citations import strip_markers, supported_by_citations
from rag.answering.prompts import ANSWERED_OPTIONS, VERIFY_OPTIONS, answered_messages, verification_messages
from rag.config import Settings
from rag.models.base import Judge
from rag.models.embedding import Embedder
from rag.types import Draft, Hit, Verdict
from rag.verification.answerability import PACKAGED_MODEL, AnswerabilityModel, measure
from rag.verification.checks import adds_to_question, counts_what_was_asked, missing_pins
from rag.words import content_words


@dataclass
class CheckContext:
    """What the checks of one draft share: the settings, the answerability features, the embedder, and the
    verifier model when the settings name one."""

    settings: Settings
    features: dict[str, float]
    embed: Callable[[list[str]], np.ndarray]
    model: AnswerabilityModel | None
    judge: Judge | None = None

    def similarity(self, text: str, other: str) -> float:
        first, second = self.embed([text, other])
        return float(first @ second)


def supported(draft: Draft, context: CheckContext) -> Verdict:
    """The passages the answer cites hold every content word of the model's whole reply, the part restating the
    question included (``Draft.reply``): nothing is shown that they do not say, and a reply that restates the
    question in words the passage lacks ("the 1998 final" where it speaks of 1996) is not an answer from it."""
    if not draft.citations:
        return Verdict("supported", False, "no retrieved passage holds the answer's words")
    reply = draft.reply or draft.text
    if supported_by_citations(reply, draft.citations, draft.hits):
        return Verdict("supported", True, "the cited passages hold every word of the answer")
    cited = {c.chunk_id for c in draft.citations}
    held = content_words(" ".join(h.chunk.text for h in draft.hits if h.chunk.id in cited))
    missing = sorted(content_words(strip_markers(reply)) - held)
    return Verdict("supported", False, f"the cited passages do not contain: {', '.join(missing)}")


def adds(draft: Draft, context: CheckContext) -> Verdict:
    """The answer says something the question does not: an echo of the question tells the reader nothing."""
    if adds_to_question(draft.text, draft.question):
        return Verdict("adds", True, "the answer adds words the question lacks")
    return Verdict("adds", False, "the answer only repeats words of the question")


def citation_relevance(draft: Draft, context: CheckContext) -> Verdict:
    """Some cited sentence is about the question (cosine at least ``min_citation_relevance``)."""
    cosine, limit = context.features["citation_cosine"], context.settings.min_citation_relevance
    if cosine >= limit:
        return Verdict("citation_relevance", True, f"the cited sentence is close to the question ({cosine:.2f})")
    return Verdict(
        "citation_relevance", False, f"the cited sentence is about something else (cosine {cosine:.2f} < {limit})"
    )


def count(draft: Draft, context: CheckContext) -> Verdict:
    """A number answering "how many X" counts X where its sentence states it, not something else."""
    if counts_what_was_asked(
        draft.text, draft.question, draft.citations, context.similarity, context.settings.count_min_similarity
    ):
        return Verdict("count", True, "not a count, or it counts what was asked")
    return Verdict("count", False, "the cited sentence gives the number as a count of something else")


def pinned(draft: Draft, context: CheckContext) -> Verdict:
    """What the question pins its answer to (its numbers and years, quoted titles, names) is in the passages read
    from the documents the answer cites, or in their titles or opening lines: an answer taken from a passage about
    another year, event or person is not an answer to this question. Read in the question as the person wrote it: a
    follow-up ("Who resisted it?") pins nothing its earlier turn named."""
    if not draft.citations:
        return Verdict("pinned", True, "nothing cited to compare with the question")
    # Every passage read from a cited document: a document names what it is about once, not in each passage
    # ("Prime Minister Kishida" in one, "Japan" in the next).
    cited = {h.chunk.doc_id for h in draft.hits if h.chunk.id in {c.chunk_id for c in draft.citations}}
    evidence = " ".join(f"{h.chunk.doc_title} {h.chunk.doc_lead} {h.chunk.text}" for h in draft.hits
                        if h.chunk.doc_id in cited)
    missing = missing_pins(draft.asked or draft.question, evidence)
    if missing:
        return Verdict("pinned", False, f"the passages say nothing about {', '.join(missing)}")
    return Verdict("pinned", True, "the passages mention what the question pins down")


def answerability(draft: Draft, context: CheckContext) -> Verdict:
    """The calibrated answerability score (``rag.verification.answerability``) reaches its threshold."""
    if context.model is None or draft.signals is None:
        return Verdict("answerability", True, "no score: the generator gives no token probabilities")
    missing = [name for name in context.model.features if name not in context.features]
    if missing:
        return Verdict("answerability", True, f"no score: this model reads {', '.join(missing)}, not measured here")
    score = context.model.score(context.features)
    limit = context.settings.min_answerability
    limit = context.model.threshold if limit is None else limit
    asked = context.features.get("answered_prob") if "answered_prob" in context.model.features else None
    # The one input a person can read: how sure the model was that the cited sentence answers the question.
    said = "" if asked is None else f"; the model gave {asked:.2f} that the cited sentence answers the question"
    if score >= limit:
        return Verdict("answerability", True, f"answerability score {score:.2f} >= {limit:.2f}{said}")
    return Verdict(
        "answerability", False,
        f"answerability score {score:.2f} < {limit:.2f}: the passages probably do not say{said}",
    )


def confirmed(draft: Draft, context: CheckContext) -> Verdict:
    """The verifier model (``Settings.verifier_model``), shown only the question, the answer and the cited
    sentences, says Yes with probability at least ``min_confirmation`` (``confirmation_prob``, ``confirm``)."""
    if context.judge is None:
        return Verdict("confirmed", True, "not judged: no verifier model is set")
    if "confirmation_prob" not in context.features:
        return Verdict("confirmed", False, "nothing cited for the verifier to read")
    yes, limit = context.features["confirmation_prob"], context.settings.min_confirmation
    if yes >= limit:
        return Verdict("confirmed", True, f"the verifier found the answer in the cited sentence (P(yes) {yes:.2f})")
    return Verdict(
        "confirmed", False, f"the verifier did not find the answer in the cited sentence (P(yes) {yes:.2f} < {limit})"
    )


def answered(reader: Judge, draft: Draft) -> float:
    """The probability ``reader`` gives "Yes" when asked, without the answer, whether the sentences ``draft`` cites
    answer its question."""
    messages = answered_messages(draft.question, [c.quote for c in draft.citations])
    return reader.option_probabilities(messages, ANSWERED_OPTIONS)[0]


def answered_in_passages(reader: Judge, draft: Draft) -> float:
    """The probability ``reader`` gives "Yes" when asked, without the answer, whether the whole passages ``draft``
    cites answer its question: a cited sentence that needs its passage ("She was elected in 2001", the name given a
    sentence before) is read with it."""
    cited = list(dict.fromkeys(c.chunk_id for c in draft.citations))
    texts = {hit.chunk.id: hit.chunk.text for hit in draft.hits}
    messages = answered_messages(draft.question, [texts[i] for i in cited if i in texts])
    return reader.option_probabilities(messages, ANSWERED_OPTIONS)[0]


# The score features the answering model is asked for, one short prompt each, only where a score reads them.
ASKED_FEATURES: dict[str, Callable[[Judge, Draft], float]] = {
    "answered_prob": answered,
    "answered_passage_prob": answered_in_passages,
}


def confirm(judge: Judge, draft: Draft) -> float:
    """The probability ``judge`` gives "Yes" when asked whether the sentences ``draft`` cites state its answer."""
    messages = verification_messages(draft.question, strip_markers(draft.text), [c.quote for c in draft.citations])
    return judge.option_probabilities(messages, VERIFY_OPTIONS)[0]


CheckFn = Callable[[Draft, CheckContext], Verdict]


@dataclass(frozen=True)
class Check:
    """A check of a draft: how it judges, the settings (its thresholds) it reads, and whether judging needs the
    embedder, which a rescore of a recorded run does not load (its recorded verdict then stands)."""

    judge: CheckFn
    reads: tuple[str, ...] = ()
    needs_embedder: bool = False

    def __call__(self, draft: Draft, context: CheckContext) -> Verdict:
        return self.judge(draft, context)


# Every check of a draft, by name. "relevance" is judged before generation (``relevance``), so it is not here.
CHECKS: dict[str, Check] = {
    "supported": Check(supported),
    "adds": Check(adds),
    "citation_relevance": Check(citation_relevance, reads=("min_citation_relevance",)),
    "count": Check(count, reads=("count_min_similarity",), needs_embedder=True),
    "pinned": Check(pinned),
    "answerability": Check(answerability, reads=("min_answerability", "answerability_model")),
    "confirmed": Check(confirmed, reads=("min_confirmation", "verifier_model")),
}


def relevance(hits: list[Hit], settings: Settings) -> Verdict:
    """Retrieval found a passage similar enough to the question (``min_relevance``) for the model to be asked."""
    best = max((hit.dense_score for hit in hits), default=0.0)
    return Verdict(
        "relevance", best >= settings.min_relevance,
        f"best passage cosine {best:.2f} {'>=' if best >= settings.min_relevance else '<'} {settings.min_relevance}"
        + ("" if best >= settings.min_relevance else ": nothing relevant found"),
        enforced="relevance" in settings.checks,
    )


def refused() -> Verdict:
    """The verdict recorded when the model itself replied that the passages do not hold the answer."""
    return Verdict("refusal", False, "the model replied that the passages do not contain the answer")


class Verifier:
    """Runs every check on a draft; ``settings.checks`` decide which verdicts count."""

    def __init__(
        self,
        embedder: Embedder,
        judge: Callable[[Settings], Judge | None] = lambda settings: None,
        reader: Callable[[], Judge | None] = lambda: None,
    ) -> None:
        """``judge`` gives the verifier model the settings name (loading it on first use), or None; ``reader`` the
        answering model, where it gives option probabilities, for the score's ``answered_prob``."""
        self.embedder = embedder
        self._judge = judge
        self._reader = reader
        self._models: dict[Path, AnswerabilityModel | None] = {}

    def model(self, settings: Settings) -> AnswerabilityModel | None:
        """The answerability model ``settings`` name (the packaged one by default), read once per file."""
        path = settings.answerability_model or PACKAGED_MODEL
        if path not in self._models:
            self._models[path] = AnswerabilityModel.load(path) if path.exists() else None
        return self._models[path]

    def verify(self, draft: Draft, settings: Settings) -> tuple[list[Verdict], dict[str, float]]:
        """Every check's verdict on ``draft`` (the enforced ones first, in ``settings.checks`` order) and the
        answerability features they read."""
        features = measure(draft, self.embedder.embed)
        judge = self._judge(settings)
        if judge is not None and draft.citations:
            features["confirmation_prob"] = confirm(judge, draft)
        model = self.model(settings)
        # Each pass is one prompt: 0.76 s for a 102-token one on the int8 1.5B without AMX (eval log row 71).
        wanted = "answerability" in settings.checks or settings.measure_all_features
        asked = [name for name in ASKED_FEATURES if model is not None and name in model.features]
        if asked and draft.citations and wanted:
            reader = judge or self._reader()
            if reader is not None:
                features |= {name: ASKED_FEATURES[name](reader, draft) for name in asked}
        context = CheckContext(settings, features, self.embedder.embed, model, judge)
        order = [name for name in settings.checks if name in CHECKS] + [n for n in CHECKS if n not in settings.checks]
        verdicts = []
        for name in order:
            verdict = CHECKS[name](draft, context)
            verdicts.append(verdict if name in settings.checks else _unenforced(verdict))
        if model is not None and draft.signals is not None:
            features = features | {"answerability_score": model.score(features)}  # recorded, not a model input
        return verdicts, features


def _unenforced(verdict: Verdict) -> Verdict:
    return Verdict(verdict.check, verdict.passed, verdict.reason, enforced=False)

