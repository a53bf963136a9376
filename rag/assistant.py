"""The pipeline behind every way in (Python, CLI, chat, evaluation): retrieve, prompt, generate, cite, verify.

What it leans on lives in the rooms: the models it loads (``rag.models.loading.Models``), drafting and citations
(``rag.answering``), the checks (``rag.verification``), the index and its updates (``rag.ingest``, ``rag.stores``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from rag.answering.conversation import Turn, standalone_question, turn_followed
from rag.answering.drafting import closest_sentence, most_relevant_citation
from rag.answering.drafting import draft as drafted
from rag.answering.passages import focus_passages
from rag.answering.prompts import IDK, build_messages, prompt_starts
from rag.answering.refusals import is_abstention
from rag.answering.retrieval import HybridRetriever
from rag.config import Settings
from rag.ingest.indexing import BuildReport, open_and_update
from rag.models.base import AnswerConstraint, Generator
from rag.models.embedding import Embedder, load_embedder
from rag.models.loading import Models, Preparation
from rag.models.model_choice import ModelChoice
from rag.stores.faiss_store import KnowledgeIndex
from rag.types import Answer, GenerationSignals, Hit, QuestionError, Scope, Timings, Verdict
from rag.verification.verifier import Verifier, refused, relevance
from rag.words import without_controls

__all__ = ["NOT_IN_DOCUMENTS", "Answer", "AnswerStream", "Assistant", "Preparation"]
log = logging.getLogger(__name__)

NOT_IN_DOCUMENTS = "I don't know: the documents do not say."


class AnswerStream:
    """Iterate to receive the answer text as it is generated; ``answer`` holds the finished Answer afterwards.

    ``hits`` are the passages the model reads, known before the first piece (the chat page shows them while the
    model reads); none when the documents clearly lack the answer and the model is not asked. Reading ``answer``
    before the end consumes the rest of the stream first.
    """

    def __init__(self, pieces: Iterator[str], finish: Callable[[str], Answer], hits: list[Hit]) -> None:
        self.hits = hits
        self._pieces = pieces
        self._finish = finish
        self._answer: Answer | None = None
        self._text: list[str] = []

    def __iter__(self) -> Iterator[str]:
        for piece in self._pieces:
            self._text.append(piece)
            yield piece
        if self._answer is None:
            self._answer = self._finish("".join(self._text))

    def close(self) -> None:
        """Stop the answer where it is: the model stops writing (its reader has gone); ``answer`` is not made.
        Closing a finished stream does nothing."""
        if self._answer is None:
            log.info("answer stopped after %d pieces: its reader left", len(self._text))
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()

    @property
    def answer(self) -> Answer:
        if self._answer is None:
            for _ in self:
                pass
        assert self._answer is not None  # set by __iter__; a programming error otherwise
        return self._answer


class Assistant:
    """Answers questions about one documents folder with cited passages.

    >>> assistant = Assistant.from_folder("documents")          # doctest: +SKIP
    >>> assistant.ask("When did the ferry service start?").text  # doctest: +SKIP
    'In 1998 [1]'
    """

    def __init__(
        self,
        settings: Settings,
        index: KnowledgeIndex,
        embedder: Embedder,
        generator: Generator | None = None,
        build_report: BuildReport | None = None,
        models: Models | None = None,
    ) -> None:
        # The packaged model that answers, where the settings leave it open, is chosen for this processor.
        self.models = models or Models(settings, generator)
        self.settings = self.models.settings
        self.embedder = embedder
        self.build_report = build_report
        self._verifier = Verifier(embedder, self.models.judge, self.models.answering_judge)
        self._use_index(index)

    @classmethod
    def from_folder(
        cls,
        docs_dir: str | Path | None = None,
        index_dir: str | Path | None = None,
        settings: Settings | None = None,
        generator: Generator | None = None,
        embedder: Embedder | None = None,
        preload_generator: bool = False,
    ) -> Assistant:
        """An assistant over ``docs_dir``, building or updating its index in ``index_dir`` first.

        The generator is loaded on the first question that needs it unless one is given; with
        ``preload_generator`` it starts loading at once, in the background, while the index is brought up to
        date (a load error still surfaces on that first question).
        """
        models = Models((settings or Settings()).with_changes(docs_dir=docs_dir, index_dir=index_dir), generator)
        if preload_generator:
            models.prepare()
        embedder = embedder or load_embedder(models.settings)
        index, report = open_and_update(models.settings, embedder)
        return cls(models.settings, index, embedder, build_report=report, models=models)

    # ------------------------------------------------------------------------------------------ public API

    @property
    def index(self) -> KnowledgeIndex:
        return self._index

    @property
    def generator(self) -> Generator:
        """The answering model, loaded (and on first use converted) here if ``prepare`` has not done it already."""
        return self.models.generator

    def prepare(self) -> Preparation:
        """Start loading the generator in the background unless it is loaded or loading, and say how far it has
        got (``Models.prepare``)."""
        return self.models.prepare()

    @property
    def model_choice(self) -> ModelChoice | None:
        """Which packaged model answers and why, where the settings left it to the processor; else None."""
        return self.models.choice

    @model_choice.setter
    def model_choice(self, choice: ModelChoice | None) -> None:
        self.models.choice = choice

    def refresh(self, rebuild: bool = False) -> BuildReport:
        """Re-read the documents folder, index what changed and answer from the new index from now on."""
        index, report = open_and_update(
            self.settings, self.embedder, rebuild, self._index if self.settings.store == "milvus" else None
        )
        self._use_index(index)
        self.build_report = report
        return report

    def retrieve(self, question: str, top_k: int | None = None, scope: Scope | None = None) -> list[Hit]:
        """The ``top_k`` best passages for ``question`` (default: as many as the generator reads), best first,
        among the documents of ``scope`` (None: all)."""
        index = self._index
        retriever = HybridRetriever.from_settings(index, self.embedder, self.settings)
        return retriever.search(self._check(question), top_k or self.settings.top_k, self._within(index, scope))

    def ask(self, question: str, history: Sequence[Turn] = (), settings: Settings | None = None,
            scope: Scope | None = None) -> Answer:
        """Answer ``question`` from the documents, with citations, or abstain.

        ``history`` holds the conversation's earlier turns, oldest first: a follow-up such as "Who resisted it?"
        is read together with the last of them. ``settings`` overrides the assistant's retrieval and generation
        settings for this question only (the chat page's settings section). ``scope`` limits the question to some
        documents (names, folders or globs, and a modified-date range): the passages are the best of those, and a
        scope that matches no document raises ``QuestionError`` saying so.
        """
        return self.stream(question, history, settings, scope).answer

    def stream(
        self, question: str, history: Sequence[Turn] = (), settings: Settings | None = None,
        scope: Scope | None = None,
    ) -> AnswerStream:
        """Like ``ask``, but the answer text arrives piece by piece as the model writes it."""
        options = self._request_settings(settings)
        question = self._check(question)
        index = self._index  # one index for the whole question, even if a refresh swaps it meanwhile
        within = self._within(index, scope)
        history = [self._check_turn(turn, n) for n, turn in enumerate(history, start=1)]
        started = time.perf_counter()
        query = standalone_question(question, history)  # what retrieval and the answer checks read
        earlier = turn_followed(question, history)  # what the model reads the question after
        hits = HybridRetriever.from_settings(index, self.embedder, options).search(query, options.top_k, within)
        retrieved = time.perf_counter()
        gate = relevance(hits, options)
        if gate.enforced and not gate.passed:  # the model is not needed (nor loaded) to say the documents lack it
            timings = Timings(retrieved - started, 0.0, retrieved - started)
            answer = Answer(question, NOT_IN_DOCUMENTS, [], True, hits, timings, NOT_IN_DOCUMENTS, [gate])
            return AnswerStream(iter([NOT_IN_DOCUMENTS]), lambda raw: answer, [])
        if options.passage_tokens:
            hits = focus_passages(query, hits, self.embedder, options.passage_tokens)
        constraint = None
        if options.answer_mode == "quote":
            constraint = AnswerConstraint(tuple(hit.chunk.text for hit in hits), refusal=IDK)
        prepared = time.perf_counter()
        generator = self.generator  # loaded once, on the first question that needs it; not part of the timings
        self.models.judge(options)  # the verifier too, where one is named (loaded once, here, outside the timings)
        signals: list[GenerationSignals] = []
        return AnswerStream(
            generator.stream(
                build_messages(question, hits, earlier, options.prompt_examples, options.passage_header),
                options.max_new_tokens, constraint, options.max_generation_s,
                starts=prompt_starts(hits, options.prompt_examples, options.passage_header),
                on_signals=signals.append,
            ),
            self._finisher(question, query, hits, options, prepared - started, gate, signals),
            hits,
        )

    # ------------------------------------------------------------------------------------------ internals

    def _request_settings(self, settings: Settings | None) -> Settings:
        """``settings`` for one question: the answering model is this assistant's whatever they say, and the
        answerability score the one fitted on its drafts unless they name another."""
        if settings is None:
            return self.settings
        return dataclasses.replace(
            settings, generator_model=self.settings.generator_model,
            answerability_model=settings.answerability_model or self.settings.answerability_model,
        )

    def _use_index(self, index: KnowledgeIndex) -> None:
        # One reference, replaced in one assignment: a question in flight keeps using the whole old index.
        self._index = index

    def _within(self, index: KnowledgeIndex, scope: Scope | None) -> frozenset[str] | None:
        """The ids of the documents of ``index`` that ``scope`` admits (their files' modification times read from
        the documents folder); None for no scope. A scope admitting none is refused, naming it."""
        if scope is None or scope.everything:
            return None
        admitted = frozenset(document.id for name, document in index.documents.items()
                             if scope.admits(name, self._modified(name, scope)))
        if not admitted:
            raise QuestionError(f"no document is in the scope asked for ({scope.describe()}); "
                                f"{len(index.documents)} documents are indexed")
        return admitted

    def _modified(self, name: str, scope: Scope) -> dt.datetime | None:
        if scope.modified_after is None and scope.modified_before is None:
            return None  # not needed: no file is read
        try:
            return dt.datetime.fromtimestamp((Path(self.settings.docs_dir) / name).stat().st_mtime)
        except OSError:
            return None

    def _check(self, question: str) -> str:
        # Control and format characters (NUL, escape sequences, zero-width marks) carry no meaning in a question.
        question = " ".join(without_controls(question).split())
        if not question:
            raise QuestionError("the question is empty")
        if len(question) > self.settings.max_question_chars:
            raise QuestionError(
                f"the question is {len(question)} characters long; the limit is {self.settings.max_question_chars}"
            )
        return question

    def _check_turn(self, turn: Turn, number: int) -> Turn:
        """An earlier turn, refused like a question when its question or answer is longer than a question may be:
        the model reads the turn followed, so every text of it is bounded as the question is."""
        limit = self.settings.max_question_chars
        for part, text in (("question", turn.question), ("answer", turn.answer)):
            if len(text) > limit:
                raise QuestionError(
                    f"earlier message {number} ({part}) is {len(text)} characters long; the limit is {limit}: "
                    "start a new conversation or shorten it"
                )
        return turn

    def _finisher(
        self, question: str, query: str, hits: list[Hit], options: Settings, retrieval_s: float, gate: Verdict,
        signals: list[GenerationSignals],
    ) -> Callable[[str], Answer]:
        generation_started = time.perf_counter()

        def finish(raw: str) -> Answer:
            generation_s = time.perf_counter() - generation_started
            timings = Timings(retrieval_s, generation_s, 0.0)
            answer = self._compose(question, query, raw, hits, timings, options, gate, signals[0] if signals else None)
            # The total runs to the composed answer: its checks embed sentences.
            total_s = retrieval_s + time.perf_counter() - generation_started
            return dataclasses.replace(answer, timings=dataclasses.replace(answer.timings, total_s=total_s))

        return finish

    def is_relevant(self, hits: list[Hit], settings: Settings | None = None) -> bool:
        """Whether any of ``hits`` is similar enough to the question for the model to be asked at all."""
        return relevance(hits, settings or self.settings).passed

    def _compose(
        self, question: str, query: str, raw: str, hits: list[Hit], timings: Timings, options: Settings,
        gate: Verdict, signals: GenerationSignals | None,
    ) -> Answer:
        """The Answer for the model's ``raw`` reply to ``query`` (``question`` made standalone): the draft with
        every check's verdict, shown when no enforced check failed, else an abstention that lists which did."""
        if raw == NOT_IN_DOCUMENTS or is_abstention(raw):
            return Answer(question, NOT_IN_DOCUMENTS, [], True, hits, timings, raw, [gate, refused()],
                          closest=closest_sentence(query, hits, self.embedder.embed))
        draft = drafted(query, raw, hits, signals, options.trim_echo, asked=question)
        verdicts, features = self._verifier.verify(draft, options)
        verdicts = [gate, *verdicts]
        if any(v.enforced and not v.passed for v in verdicts):
            return Answer(question, NOT_IN_DOCUMENTS, [], True, hits, timings, raw, verdicts, draft, features,
                          closest=closest_sentence(query, hits, self.embedder.embed))
        text, citations = draft.text, draft.citations
        if len(citations) == 1:
            text, citations = most_relevant_citation(query, text, citations[0], hits, self.embedder.embed)
        return Answer(question, text, citations, False, hits, timings, raw, verdicts, draft, features)
