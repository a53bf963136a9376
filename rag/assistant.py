"""The pipeline behind every way in (Python, CLI, chat, evaluation): retrieve, prompt, generate, cite."""

from __future__ import annotations

import dataclasses
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from rag.acronyms import confused_acronym, passage_naming
from rag.authorship import asks_for_author, display_name, find_byline, states_authorship
from rag.checks import adds_to_question, counts_what_was_asked, names_the_role_asked, states_the_outcome_asked
from rag.citations import (
    as_written,
    attribute_unmarked,
    is_abstention,
    naming_sentences,
    parse_citations,
    quote_citation,
    strip_markers,
    supported_by_citations,
)
from rag.config import Settings
from rag.context import focus_passages
from rag.conversation import Turn, standalone_question, turn_followed
from rag.embedding import Embedder, load_embedder
from rag.generation import AnswerConstraint, Generator, load_generator
from rag.index import KnowledgeIndex
from rag.indexing import BuildReport, build_or_update
from rag.prompts import IDK, build_messages, prompt_starts
from rag.reasons import (
    answer_with_reason,
    asks_why,
    gives_as_reason,
    without_connective,
)
from rag.retrieval import HybridRetriever
from rag.types import Answer, Citation, Hit, Timings

NOT_IN_DOCUMENTS = "I don't know: the documents do not say."


class QuestionError(ValueError):
    """The question cannot be asked as given (empty, too long); the message says why."""


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
    >>> assistant.ask("In which year did Japan and NATO sign the IPCP?").text  # doctest: +SKIP
    'In 2014 [1].'
    """

    def __init__(
        self,
        settings: Settings,
        index: KnowledgeIndex,
        embedder: Embedder,
        generator: Generator | None = None,
        build_report: BuildReport | None = None,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.build_report = build_report
        self._generator = generator
        self._generator_loading: Future[Generator] | None = None
        self._generator_lock = threading.Lock()
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
        settings = (settings or Settings()).with_changes(docs_dir=docs_dir, index_dir=index_dir)
        loading = None
        if preload_generator and generator is None:
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="load-generator")
            loading = pool.submit(_load_generator, settings)
            pool.shutdown(wait=False)  # returns at once; the load goes on while the index is brought up to date
        embedder = embedder or load_embedder(settings)
        index, report = build_or_update(settings.docs_dir, settings.index_dir, embedder, settings)
        assistant = cls(settings, index, embedder, generator, report)
        assistant._generator_loading = loading
        return assistant

    # ------------------------------------------------------------------------------------------ public API

    @property
    def index(self) -> KnowledgeIndex:
        return self._retriever.index

    @property
    def generator(self) -> Generator:
        with self._generator_lock:  # two first questions at once load it once
            if self._generator is None:
                loading, self._generator_loading = self._generator_loading, None
                self._generator = loading.result() if loading is not None else _load_generator(self.settings)
            return self._generator

    def refresh(self, rebuild: bool = False) -> BuildReport:
        """Re-read the documents folder, index what changed and answer from the new index from now on."""
        index, report = build_or_update(
            self.settings.docs_dir, self.settings.index_dir, self.embedder, self.settings, rebuild=rebuild
        )
        self._use_index(index)
        self.build_report = report
        return report

    def retrieve(self, question: str, top_k: int | None = None) -> list[Hit]:
        """The ``top_k`` best passages for ``question`` (default: as many as the generator reads), best first."""
        return self._retriever.search(self._check(question), top_k or self.settings.top_k)

    def ask(self, question: str, history: Sequence[Turn] = (), settings: Settings | None = None) -> Answer:
        """Answer ``question`` from the documents, with citations, or abstain.

        ``history`` holds the conversation's earlier turns, oldest first: a follow-up such as "Who resisted it?"
        is read together with the last of them. ``settings`` overrides the assistant's retrieval and generation
        settings for this question only (the chat page's settings section).
        """
        return self.stream(question, history, settings).answer

    def stream(
        self, question: str, history: Sequence[Turn] = (), settings: Settings | None = None
    ) -> AnswerStream:
        """Like ``ask``, but the answer text arrives piece by piece as the model writes it."""
        options = settings or self.settings
        question = self._check(question)
        started = time.perf_counter()
        query = standalone_question(question, history)  # what retrieval and the answer checks read
        earlier = turn_followed(question, history)  # what the model reads the question after
        retriever = self._retriever  # one index for the whole question, even if a refresh swaps it meanwhile
        hits = retriever.search(query, options.top_k)
        retrieved = time.perf_counter()
        if not self.is_relevant(hits, options):  # the model is not needed (nor loaded) to say the documents lack it
            finish = self._finisher(question, query, hits, options, retrieved - started)
            return AnswerStream(iter([NOT_IN_DOCUMENTS]), finish, [])
        if asks_for_author(query):
            byline = self._byline_answer(query, hits, retriever.index)
            if byline is not None:  # the byline answers it: no model needed
                text, citations, hits = byline
                timings = Timings(retrieved - started, 0.0, time.perf_counter() - started)
                answer = Answer(question, text, citations, False, hits, timings, text)
                return AnswerStream(iter([text]), lambda raw: answer, hits)
        if options.passage_tokens:
            hits = focus_passages(query, hits, self.embedder, options.passage_tokens)
        constraint = None
        if options.answer_mode == "quote":
            constraint = AnswerConstraint(tuple(hit.chunk.text for hit in hits), refusal=IDK)
        prepared = time.perf_counter()
        generator = self.generator  # loaded once, on the first question that needs it; not part of the timings
        return AnswerStream(
            generator.stream(
                build_messages(question, hits, earlier), options.max_new_tokens, constraint, options.max_generation_s,
                starts=prompt_starts(hits),
            ),
            self._finisher(question, query, hits, options, prepared - started),
            hits,
        )

    # ------------------------------------------------------------------------------------------ internals

    def _use_index(self, index: KnowledgeIndex) -> None:
        # One reference, replaced in one assignment: a question in flight keeps using the whole old index.
        self._retriever = HybridRetriever.from_settings(index, self.embedder, self.settings)

    def _check(self, question: str) -> str:
        # Control and format characters (NUL, escape sequences, zero-width marks) carry no meaning in a question.
        question = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in question)
        question = " ".join(question.split())
        if not question:
            raise QuestionError("the question is empty")
        if len(question) > self.settings.max_question_chars:
            raise QuestionError(
                f"the question is {len(question)} characters long; the limit is {self.settings.max_question_chars}"
            )
        return question

    def _finisher(
        self, question: str, query: str, hits: list[Hit], options: Settings, retrieval_s: float
    ) -> Callable[[str], Answer]:
        generation_started = time.perf_counter()

        def finish(raw: str) -> Answer:
            generation_s = time.perf_counter() - generation_started
            answer = self._compose(question, query, raw, hits, Timings(retrieval_s, generation_s, 0.0), options)
            # The total runs to the composed answer: its checks embed sentences, and may ask the model again.
            total_s = retrieval_s + time.perf_counter() - generation_started
            return dataclasses.replace(answer, timings=dataclasses.replace(answer.timings, total_s=total_s))

        return finish

    def is_relevant(self, hits: list[Hit], settings: Settings | None = None) -> bool:
        """Whether any of ``hits`` is similar enough to the question for the model to be asked at all."""
        settings = settings or self.settings
        return bool(hits) and max(hit.dense_score for hit in hits) >= settings.min_relevance

    def cites_what_was_asked(self, query: str, citations: list[Citation], settings: Settings | None = None) -> bool:
        """Whether some cited sentence is similar enough to the question (``settings.min_citation_relevance``).

        An answer can pass the word checks while its sentence is about another subject: asked the capital of
        Australia, the default model answered "Vilnius", citing a sentence that names Australia and Vilnius.
        """
        settings = settings or self.settings
        if not citations:
            return False
        vectors = self.embedder.embed([query, *(citation.quote for citation in citations)])
        return float(np.max(vectors[1:] @ vectors[0])) >= settings.min_citation_relevance

    def _byline_answer(
        self, query: str, hits: list[Hit], index: KnowledgeIndex
    ) -> tuple[str, list[Citation], list[Hit]] | None:
        """The writer named in the byline of the best passage's document, cited there, with the passages (the
        byline's chunk added when retrieval did not bring it); None when that document has no byline."""
        document = index.documents.get(hits[0].chunk.doc_name)
        span = find_byline(document.text) if document else None
        row = index.row_covering(document.name, *span) if document and span else None
        if row is None:
            return None
        chunk = index.chunks[row]
        n = next((n for n, hit in enumerate(hits, start=1) if hit.chunk.id == chunk.id), None)
        if n is None:
            cosine = float(index.dense.reconstruct(row) @ self.embedder.embed([query])[0])
            hits, n = [*hits, Hit(chunk=chunk, score=0.0, dense_score=cosine)], len(hits) + 1
        citation = quote_citation(n, hits[n - 1], *span)
        return f"{display_name(citation.quote)} [{n}]", [citation], hits

    def _similarity(self, text: str, other: str) -> float:
        first, second = self.embedder.embed([text, other])
        return float(first @ second)

    def _compose(
        self, question: str, query: str, raw: str, hits: list[Hit], timings: Timings, options: Settings,
        may_ask_again: bool = True,
    ) -> Answer:
        """The Answer for the model's ``raw`` reply to ``query`` (``question`` made standalone). An answer about
        another acronym than the one asked is asked again once (``may_ask_again``), else withheld."""
        abstention = Answer(question, NOT_IN_DOCUMENTS, [], True, hits, timings, raw)
        if raw == NOT_IN_DOCUMENTS or is_abstention(raw):
            return abstention
        text, citations = parse_citations(raw.strip(), hits)
        if asks_why(query):
            reasoned = answer_with_reason(query, text, citations, hits)
            if reasoned is None:
                return abstention  # "Why are exports banned?" - "due to guidelines that ban exports" explains nothing
            text, citations = reasoned
        if not citations:
            text, citations = attribute_unmarked(text, hits, query)
        if asks_why(query) and not supported_by_citations(text, citations, hits):
            if gives_as_reason(text, citations):  # "because X" where the passage says "due to X": X is what it says
                text = without_connective(text)
        acronym = confused_acronym(query, strip_markers(text), citations, hits)
        if acronym is not None:  # asked about the IPCP, answered from a sentence about the ITPP
            if not may_ask_again:
                return abstention
            return self._ask_again_about(acronym, question, query, hits, timings, options)
        if not supported_by_citations(text, citations, hits):
            return abstention  # words the cited passages do not contain: never shown as fact
        if not adds_to_question(text, query):
            return abstention  # an echo of the question (or, for a follow-up, of the last turn) is not an answer
        if not self.cites_what_was_asked(query, citations, options):
            return abstention  # the words are in a passage, but in a sentence about something else
        if not counts_what_was_asked(text, query, citations, self._similarity):
            return abstention  # "how many employees?" answered with the number of residents
        if not names_the_role_asked(query, citations):
            return abstention  # "who is the president of X?" answered with someone the sentence gives no such role
        if not states_the_outcome_asked(query, citations):
            return abstention  # "what did they agree?" answered from a sentence saying they will discuss it
        quotes = [citation.quote for citation in citations]
        if asks_for_author(query) and not states_authorship(strip_markers(text), quotes):
            return abstention  # "who wrote the article?" answered with someone the article only quotes
        text = as_written(text, quotes)  # "68%" shown as the cited sentence says it: "68 percent"
        if len(citations) == 1:
            text, citations = self._most_relevant_citation(query, text, citations[0], hits)
        return Answer(question, text, citations, False, hits, timings, raw)

    def _ask_again_about(
        self, acronym: str, question: str, query: str, hits: list[Hit], timings: Timings, options: Settings
    ) -> Answer:
        """The answer to ``query`` from the sentences of ``hits`` that name ``acronym`` alone, cited against
        ``hits`` as usual (in quote mode, a span of those sentences); an abstention when none names it. Its time
        counts as generation time."""
        passage = passage_naming(acronym, hits)
        if not passage:
            return Answer(question, NOT_IN_DOCUMENTS, [], True, hits, timings, "")
        started = time.perf_counter()
        constraint = None
        if options.answer_mode == "quote":  # the promise of quote mode holds for the second answer too
            constraint = AnswerConstraint((passage[0].chunk.text,), refusal=IDK)
        messages = build_messages(query, passage)
        raw = "".join(self.generator.stream(messages, options.max_new_tokens, constraint, options.max_generation_s))
        spent = time.perf_counter() - started
        timings = dataclasses.replace(timings, generation_s=timings.generation_s + spent)
        return self._compose(question, query, raw, hits, timings, options, may_ask_again=False)

    def _most_relevant_citation(
        self, query: str, text: str, citation: Citation, hits: list[Hit]
    ) -> tuple[str, list[Citation]]:
        """``text`` citing, among the sentences that name its answer, the one whose embedding is closest to
        ``query``: "Fumio Kishida" cites "Kishida, who last year became the first Japanese prime minister to
        attend ..." rather than a sentence that merely names "Prime Minister Fumio Kishida".

        Only the citation moves. The checks before it read the sentence that states the answer in full: judged on
        the sentence closest to the question, a wrong name that the documents mention often would pass them.
        """
        answer = strip_markers(text)
        cited = (citation.doc, citation.start)
        candidates = [c for c in naming_sentences(answer, query, hits) if (c.doc, c.start) != cited]
        if not candidates:
            return text, [citation]
        vectors = self.embedder.embed([query, citation.quote, *(c.quote for c in candidates)])
        cosines = vectors[1:] @ vectors[0]
        best = int(np.argmax(cosines))
        if best == 0:
            return text, [citation]
        chosen = candidates[best - 1]
        return f"{answer} [{chosen.n}]", [chosen]


def _load_generator(settings: Settings) -> Generator:
    return load_generator(settings.generator_model, settings.cache_dir, settings.quantization, settings.prompt_cache_mb)
