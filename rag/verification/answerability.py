"""A calibrated score of whether a draft answer should be shown, built from what the models already give.

Hand-written rules about one kind of question (who wrote, how many, why) held on the questions they were written
for and failed on documents nobody here wrote. The score instead weighs general signals that every answer has:
how sure the generator was (its refusal's probability at the first step, the probability of the tokens it chose),
how close retrieval and the cited sentence came to the question, and how much of the question the cited passage
covers (a question about something the passage does not mention shares fewer of its words). A logistic
regression over them is fitted on the tuning half of an external set (`rag calibrate`) and shipped as JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.answering.citations import strip_markers
from rag.models.registry import (
    ACCURATE_SCORE,
    LARGE_MODEL_SCORE,
    SMALL_MODEL_SCORE,
    VERIFIED_SCORE,
)
from rag.types import Draft
from rag.words import content_words

# Where the packaged scores are (rag.models.registry), by the names the rest of the code reads.
PACKAGED_MODEL = SMALL_MODEL_SCORE
VERIFIED_MODEL = VERIFIED_SCORE
ACCURATE_MODEL = ACCURATE_SCORE
LARGE_MODEL = LARGE_MODEL_SCORE

FEATURES = (
    "retrieval_cosine",  # best cosine of the question and a retrieved passage
    "citation_cosine",  # best cosine of the question and a cited sentence
    "question_in_passage",  # share of the question's content words found in the cited passages
    "question_in_sentence",  # ... in the cited sentences
    "refusal_prob",  # the generator's probability of starting the refusal, at its first step
    "mean_logprob",  # mean log-probability of the reply's tokens
    "min_logprob",  # the least likely token of the reply
    "answer_words",  # content words of the answer
    "answer_in_question",  # share of the answer's content words that the question already holds
)


# With a verifier model (``Settings.verifier_model``): its probability that the cited sentences state the answer.
VERIFIED_FEATURES = (*FEATURES, "confirmation_prob")

# The answering model's probability that the cited sentences answer the question, asked without the answer
# (``rag.answering.prompts.answered_messages``), with the retrieval and sentence signals that still added to it on the
# tuning half (5-fold AUROC for answerable against not: 0.854, against 0.843 for the probability alone and 0.849
# with every feature; eval log row 62). Measured only where a score reads it: one short forward pass more.
ANSWERED_FEATURES = ("retrieval_cosine", "citation_cosine", "question_in_sentence", "answered_prob")


def measure(draft: Draft, embed: Callable[[list[str]], np.ndarray]) -> dict[str, float]:
    """The answerability features of ``draft`` (``FEATURES``); ``embed`` gives unit vectors of texts."""
    quotes = [citation.quote for citation in draft.citations]
    vectors = embed([draft.question, *quotes])
    cited = {citation.chunk_id for citation in draft.citations}
    passages = " ".join(hit.chunk.text for hit in draft.hits if hit.chunk.id in cited)
    asked = content_words(draft.question)
    answer = content_words(strip_markers(draft.text))
    signals = draft.signals
    return {
        "retrieval_cosine": max((hit.dense_score for hit in draft.hits), default=0.0),
        "citation_cosine": float(np.max(vectors[1:] @ vectors[0])) if quotes else 0.0,
        "question_in_passage": _share(asked, content_words(passages)),
        "question_in_sentence": _share(asked, content_words(" ".join(quotes))),
        "refusal_prob": signals.refusal_prob if signals else 0.0,
        "mean_logprob": signals.mean_logprob if signals else 0.0,
        "min_logprob": signals.min_logprob if signals else 0.0,
        "answer_words": float(len(answer)),
        "answer_in_question": _share(answer, asked),
    }


def _share(words: set[str], within: set[str]) -> float:
    return len(words & within) / len(words) if words else 0.0


@dataclass(frozen=True)
class AnswerabilityModel:
    """A logistic regression over standardised ``features``; ``threshold`` is the score below which an answer is
    withheld, chosen at fitting time for a bounded false-abstention rate."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float
    fitted_on: str = ""
    auroc: float = 0.0

    def score(self, features: dict[str, float]) -> float:
        """The probability, in 0..1, that the answer these features describe is right and should be shown."""
        z = self.intercept + sum(
            c * (features.get(name, 0.0) - m) / s for name, m, s, c in zip(self.features, self.mean, self.scale,
                                                                           self.coef)
        )
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def to_json(self) -> str:
        return json.dumps(self.__dict__ | {"features": list(self.features)}, indent=2)

    @classmethod
    def load(cls, path: Path | str = PACKAGED_MODEL) -> AnswerabilityModel:
        """The model saved at ``path`` (JSON; never unpickled)."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def fit(
    rows: Sequence[dict[str, float]], labels: Sequence[int], fitted_on: str = "", features: Sequence[str] = FEATURES
) -> AnswerabilityModel:
    """A logistic regression of ``labels`` (1: the draft was right) on the ``features`` of ``rows``; threshold 0.5
    until ``choose_threshold`` sets one."""
    from sklearn.linear_model import LogisticRegression  # only fitting needs scikit-learn

    features = tuple(features)
    x = np.array([[row[name] for name in features] for row in rows], dtype=np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    regression = LogisticRegression(C=1.0, max_iter=1000).fit((x - mean) / scale, np.asarray(labels))
    return AnswerabilityModel(
        features, tuple(mean.tolist()), tuple(scale.tolist()), tuple(regression.coef_[0].tolist()),
        float(regression.intercept_[0]), 0.5, fitted_on,
    )


def auroc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve: the chance that a random positive scores above a random negative (ties half).

    >>> auroc([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0]), auroc([0.5, 0.5], [1, 0])
    (1.0, 0.5)
    """
    positives = [s for s, y in zip(scores, labels) if y]
    negatives = [s for s, y in zip(scores, labels) if not y]
    if not positives or not negatives:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))
