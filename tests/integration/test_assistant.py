"""The product on the default corpus with the real embedder and the real default generator, offline."""

from pathlib import Path

import pytest
import torch

from rag.answering.prompts import build_messages

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

IPCP_QUESTION = "In which year did Japan and NATO sign the Individual Partnership and Cooperation Program?"


def test_answers_the_ipcp_year_citing_the_first_article(real_assistant):
    answer = real_assistant.ask(IPCP_QUESTION)
    assert "2014" in answer.text and not answer.abstained
    assert "000_210d74e5e6875247.txt" in {c.doc for c in answer.citations}
    for citation in answer.citations:
        document = real_assistant.index.documents[citation.doc]
        assert document.text[citation.start : citation.end] == citation.quote
    assert f"[{answer.citations[0].n}]" in answer.text


def test_names_macron_citing_the_japan_times_article(real_assistant):
    answer = real_assistant.ask("Which French president resisted the plan for a NATO office in Tokyo?")
    assert "Macron" in answer.text
    assert "002_039194b7b7e47dc6.txt" in {c.doc for c in answer.citations}


def test_a_topic_absent_from_the_documents_abstains(real_assistant):
    answer = real_assistant.ask("What is the boiling point of mercury?")
    assert answer.abstained and answer.citations == []
    assert "don't know" in answer.text


@pytest.mark.parametrize(
    "question",
    [
        "What is the capital of Australia?",
        "Who won the 1998 football world cup?",
    ],
)
def test_a_question_whose_words_are_in_the_documents_but_whose_answer_is_not_abstains(real_assistant, question):
    # Retrieval finds passages naming Australia or the world, and the model answers from them ("Vilnius",
    # "Kishida"); the sentence it would cite is about something else, so the answer is withheld.
    answer = real_assistant.ask(question)
    assert real_assistant.is_relevant(answer.hits)  # the generator was asked, not skipped
    assert answer.abstained and answer.citations == [], answer.raw_output
    # What the documents do hold: a sentence of the passages read, quoted where it stands, not an answer.
    closest = answer.closest
    assert closest is not None and closest.chunk_id in {hit.chunk.id for hit in answer.hits}
    assert real_assistant.index.documents[closest.doc].text[closest.start : closest.end] == closest.quote


def test_an_answer_the_score_finds_unlikely_is_recorded_so_and_withheld_by_the_cautious_preset(real_assistant):
    # Asked for a president the documents never name, the model answers with a professor they quote. Every word
    # check passes; the answerability score is low (the question's words are missing from the cited sentence).
    question = "Who is the current president of South Korea?"
    # Every feature measured, as `rag eval` does (the chat skips the 1.5B's extra yes/no pass for a score it does
    # not enforce).
    answer = real_assistant.ask(question, settings=real_assistant.settings.with_changes(measure_all_features=True))
    [score] = [v for v in answer.verdicts if v.check == "answerability"]
    # Enforced by default where the answering model and engine have it among their checks (the int8 1.5B).
    by_default = "answerability" in real_assistant.settings.checks
    assert not score.passed and score.enforced == by_default and answer.abstained == by_default, answer.raw_output
    cautious = real_assistant.ask(question, settings=real_assistant.settings.with_preset("cautious"))
    assert cautious.abstained and [v.check for v in cautious.withheld_by] == ["answerability"]


def test_streaming_delivers_the_same_answer_piece_by_piece(real_assistant):
    stream = real_assistant.stream(IPCP_QUESTION)
    pieces = list(stream)
    assert len(pieces) >= 1 and "2014" in "".join(pieces)
    assert stream.answer.raw_output == "".join(pieces)
    assert stream.answer.timings.generation_s > 0


def test_asking_again_reuses_the_prompts_attention_cache_and_answers_the_same(reference_assistant):
    first = reference_assistant.ask(IPCP_QUESTION)
    again = reference_assistant.ask(IPCP_QUESTION)
    generator = reference_assistant.generator
    prompt_tokens = len(generator._encode(build_messages(IPCP_QUESTION, again.hits))["input_ids"][0])
    assert generator.last_prompt_tokens == prompt_tokens
    assert generator.reused_prompt_tokens == prompt_tokens - 1  # all but the token that scores the reply's first
    assert again.raw_output == first.raw_output and again.text == first.text


def test_a_fresh_process_starts_from_the_saved_attention_cache_of_the_system_message_and_first_passage(
    reference_assistant,
):
    first = reference_assistant.ask(IPCP_QUESTION)  # keeps the caches of its prompt's starts, if no earlier run did
    generator = reference_assistant.generator
    generator._prompt_cache = None  # what a new process holds in memory
    again = reference_assistant.ask(IPCP_QUESTION)
    messages = build_messages(IPCP_QUESTION, again.hits)
    system_tokens = generator.count_tokens(generator.tokenizer.apply_chat_template(messages[:1], tokenize=False))
    first_passage_tokens = generator.count_tokens(again.hits[0].chunk.text)
    assert generator.reused_prompt_tokens > system_tokens + first_passage_tokens  # both read from disk
    assert generator.reused_prompt_tokens < generator.last_prompt_tokens - first_passage_tokens  # not the rest
    assert again.raw_output == first.raw_output


def test_a_word_document_is_answered_from_its_table(real_assistant, tmp_path):
    import docx

    from rag import Assistant

    document = docx.Document()
    document.add_paragraph("The Selene-7 greenhouse on the island of Tarvo grows basil and mint.")
    table = document.add_table(rows=3, cols=2)
    for row, cells in zip(table.rows, [("Crop", "Harvest month"), ("Basil", "June"), ("Mint", "August")]):
        for cell, text in zip(row.cells, cells):
            cell.text = text
    (tmp_path / "docs").mkdir()
    document.save(tmp_path / "docs" / "greenhouse.docx")
    assistant = Assistant.from_folder(
        tmp_path / "docs", tmp_path / "index", real_assistant.settings, real_assistant.generator,
        real_assistant.embedder,
    )
    answer = assistant.ask("In which month is mint harvested?")
    assert "August" in answer.text and not answer.abstained
    assert [(c.doc, c.quote) for c in answer.citations] == [("greenhouse.docx", "Mint | August")]


@pytest.fixture(scope="module")
def heldout_assistant(real_assistant, tmp_path_factory):
    """The real models over eval/heldout/documents, three articles the defaults were not tuned on."""
    from rag import Assistant

    return Assistant.from_folder(
        REPO / "eval" / "heldout" / "documents", tmp_path_factory.mktemp("heldout-index"), real_assistant.settings,
        real_assistant.generator, real_assistant.embedder,
    )


def test_a_count_is_answered_when_asked_for_what_it_counts(heldout_assistant):
    answer = heldout_assistant.ask("How many residents does Port Halvern have?")
    assert "180,000" in answer.text and not answer.abstained
    assert "180,000 residents" in answer.citations[0].quote


@pytest.fixture(scope="module")
def small_heldout_assistant(real_embedder, tmp_path_factory):
    """The 0.5B model (the fast preset) over eval/heldout/documents."""
    from rag import Assistant, Settings

    return Assistant.from_folder(REPO / "eval" / "heldout" / "documents", tmp_path_factory.mktemp("small-heldout"),
                                 Settings().with_preset("fast"), embedder=real_embedder)


def test_a_count_of_something_else_is_recorded_and_withheld_where_the_count_check_is_enforced(
        small_heldout_assistant):
    # The 0.5B answers "180,000" (the city's residents); the plant's employees are not in the documents. (The 1.5B
    # answers a number the documents lack, which the supported check withholds.) The count check is off by default
    # (it did not pay on the external set's confirmation half) but still judges.
    assistant = small_heldout_assistant
    question = "How many employees work at the Grell Point desalination plant?"
    answer = assistant.ask(question)
    [verdict] = [v for v in answer.verdicts if v.check == "count"]
    assert not verdict.passed and not verdict.enforced, answer.raw_output
    strict = assistant.settings.with_changes(checks=(*assistant.settings.checks, "count"))
    answer = assistant.ask(question, settings=strict)
    assert answer.abstained and [v.check for v in answer.withheld_by] == ["count"]


def test_an_answer_is_shown_as_its_cited_sentence_words_it(heldout_assistant):
    # The model writes "68%"; the article says "68 percent".
    answer = heldout_assistant.ask("What share of the union's members backed the deal?")
    assert answer.text.startswith("68 percent") and "68 percent" in answer.citations[0].quote, answer.raw_output


def test_an_answer_cites_the_sentence_that_says_it_not_one_that_merely_names_it(real_assistant):
    # The name is written in full only in the lead sentence about Kishida's agenda; the sentence saying he was the
    # first calls him "Kishida".
    answer = real_assistant.ask("Which prime minister of Japan was the first to attend a NATO leaders' summit?")
    assert "Kishida" in answer.text
    assert answer.citations[0].quote.startswith("Kishida, who last year became the first Japanese prime minister")


def test_the_index_describes_itself(real_assistant):
    settings = real_assistant.index.settings
    assert settings.embedding_model == "sentence-transformers/all-MiniLM-L6-v2" and settings.dimensions == 384
    assert real_assistant.index.dense.ntotal == len(real_assistant.index.chunks) > 10


def test_chunks_fit_the_real_embedders_token_limit(real_assistant, real_embedder):
    limit = real_assistant.settings.chunk_tokens
    for chunk in real_assistant.index.chunks:
        assert real_embedder.count_tokens(chunk.text) <= limit


def test_quote_mode_answers_with_a_span_copied_from_a_cited_passage(reference_assistant):
    settings = reference_assistant.settings.with_changes(answer_mode="quote")
    question = "Which French president resisted the plan for a NATO office in Tokyo?"
    answer = reference_assistant.ask(question, settings=settings)
    assert "Macron" in answer.text and not answer.abstained
    span = answer.text.rsplit(" [", 1)[0]
    assert any(span in hit.chunk.text for hit in answer.hits)


def test_the_int8_generator_loads_and_answers(real_assistant):
    from rag.answering.prompts import build_messages
    from rag.models.factory import load_generator

    generator = load_generator(None, real_assistant.settings.cache_dir, "int8")
    question = "Which French president resisted the plan for a NATO office in Tokyo?"
    from rag.answering.citations import is_supported

    hits = real_assistant.retrieve(question)
    reply = "".join(generator.stream(build_messages(question, hits), 16))
    # Quantised, it is often wrong (eval/log.md, rows 6 and 12), but it still answers from the passages it read.
    assert is_supported(reply, " ".join(hit.chunk.text for hit in hits)), reply


def test_the_default_model_answers_alike_with_its_matrices_multiplied_in_float32_or_bfloat16(real_assistant):
    from rag.models.factory import load_generator
    from rag.types import Chunk, Hit

    passage = "The village of Olmstead Ferry lies on the Varro river, twelve miles south of the capital."
    hits = [Hit(Chunk("c0", "d0", "towns.md", "Towns", 0, 0, len(passage), passage), 1.0, 0.9)]
    messages = build_messages("Which river is Olmstead Ferry on?", hits)
    replies = {}
    for precision in ("float32", "bfloat16"):
        generator = load_generator(None, real_assistant.settings.cache_dir, precision=precision)
        up = generator.model.model.layers[0].mlp.up_proj.weight
        assert generator.precision == precision
        assert up.dtype == (torch.bfloat16 if precision == "bfloat16" else torch.float16)
        replies[precision] = "".join(generator.stream(messages, 16))
        del generator
    assert all("Varro" in reply for reply in replies.values()), replies


@pytest.mark.parametrize(
    "question",
    [
        "日本とNATOはいつIPCPに署名しましたか？",  # Japanese
        "Quel président français s'est opposé au bureau de l'OTAN à Tokyo ?",  # French
        "Who\x00 resisted\x1b[2J the NATO office\u200b in Tokyo?\x07",  # control and zero-width characters
        "Which French president resisted the plan for a NATO office in Tokyo? " * 28,  # long, under the limit
    ],
)
def test_unusual_questions_get_an_answer_or_an_abstention_within_the_limits(real_assistant, question):
    answer = real_assistant.ask(question)
    assert answer.text and (answer.abstained or answer.citations)
    assert real_assistant.generator.count_tokens(answer.raw_output) <= real_assistant.settings.max_new_tokens
    assert answer.timings.generation_s <= real_assistant.settings.max_generation_s + 5


def test_the_verifier_gives_more_weight_to_the_answer_its_source_states(real_assistant):
    from rag.answering.prompts import VERIFY_OPTIONS, verification_messages

    judge = real_assistant.generator
    source = ["The Kessock ferry first sailed in 1998 from the north quay, carrying up to 40 cars."]
    question = "When did the Kessock ferry first sail?"
    stated = judge.option_probabilities(verification_messages(question, "1998", source), VERIFY_OPTIONS)
    unstated = judge.option_probabilities(verification_messages(question, "a red bicycle", source), VERIFY_OPTIONS)
    assert sum(stated) == pytest.approx(1.0) and 0.0 <= unstated[0] <= 1.0
    assert stated[0] > unstated[0], (stated, unstated)


def test_the_default_model_can_verify_its_own_answers_without_a_second_copy(real_assistant):
    answering = real_assistant.settings.generator_model  # the packaged model chosen for this processor
    settings = real_assistant.settings.with_changes(verifier_model=answering).with_checks("confirmed")
    answer = real_assistant.ask(IPCP_QUESTION, settings=settings)
    [verdict] = [v for v in answer.verdicts if v.check == "confirmed"]
    assert "confirmation_prob" in answer.features and "P(yes)" in verdict.reason
    assert real_assistant.models.judges == {}  # the answering model judged: nothing else was loaded


def test_the_verified_preset_has_the_larger_model_judge_the_cited_sentence(real_assistant):
    settings = real_assistant.settings.with_preset("verified")
    answer = real_assistant.ask(IPCP_QUESTION, settings=settings)
    assert 0.0 <= answer.features["confirmation_prob"] <= 1.0
    # A second model is loaded to judge only where the 1.5B is not already the one answering.
    answering_large = real_assistant.settings.generator_model == "qwen2.5-coder-1.5b"
    assert ("qwen2.5-coder-1.5b" in real_assistant.models.judges) is not answering_large
    [verdict] = [v for v in answer.verdicts if v.check == "answerability"]
    assert verdict.enforced and "answerability score" in verdict.reason  # the verified score, with every feature


def test_the_accurate_preset_answers_with_the_larger_model_which_also_judges_its_answer(tmp_path, real_embedder):
    from rag import Assistant, Settings

    settings = Settings().with_preset("accurate")
    assistant = Assistant.from_folder(REPO / "documents", tmp_path / "index", settings, embedder=real_embedder)
    answer = assistant.ask(IPCP_QUESTION)
    assert "2014" in answer.text and answer.citations
    assert 0.0 <= answer.features["confirmation_prob"] <= 1.0 and assistant.models.judges == {}  # judged by itself
    [verdict] = [v for v in answer.verdicts if v.check == "answerability"]
    assert verdict.enforced and verdict.passed and "answerability score" in verdict.reason


def test_a_reply_whose_reader_leaves_stops_being_written_and_the_next_one_is_whole(reference_assistant):
    generator = reference_assistant.generator
    messages = [{"role": "user", "content": "Count from 1 to 300, the numbers separated by spaces, on one line."}]
    pieces = generator.stream(messages, 200)
    next(pieces)
    pieces.close()  # the reader left after the first piece
    prompt_ids, cache = generator._prompt_cache
    assert cache.get_seq_length() - len(prompt_ids) < 40  # stopped within a few tokens, not at 200
    stream = reference_assistant.stream(IPCP_QUESTION)
    assert "".join(stream) and stream.answer.text  # the generator is free and its cache sound for the next
