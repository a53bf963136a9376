"""Bylines: which questions ask who wrote the article, where a document names its writer, and what a cited
sentence must say for someone to count as the writer."""

import pytest

from rag.authorship import asks_for_author, display_name, find_byline, states_authorship


@pytest.mark.parametrize(
    "question",
    [
        "Who wrote the Japan Times article about Kishida's agenda?",
        "who wrote the article about the cave beetle?",
        "Who is the author of this story?",
        "Who was the writer of the BBC news report?",
        "Who is the article by?",
        "Who is the article's author?",
        "Who penned the first column?",
    ],
)
def test_questions_about_the_articles_own_writer_ask_for_the_author(question):
    assert asks_for_author(question)


@pytest.mark.parametrize(
    "question",
    [
        "Who wrote Faust?",
        "Who wrote the report?",  # a report the article mentions, as often as the article itself
        "Who wrote the letter mentioned in the article?",
        "What did the article say about Kishida?",
        "Who is the author of the ITPP proposal?",
    ],
)
def test_questions_about_other_writings_or_other_things_do_not(question):
    assert not asks_for_author(question)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("GABRIEL DOMINGUEZ\nMore support for Ukraine is set to top the agenda.", "GABRIEL DOMINGUEZ"),
        ("Port opens plant\nBy Jane Smith, Reuters\nThe port opened a plant.", "Jane Smith"),
        ("BY JANE SMITH AND JOHN DOE\nText.", "JANE SMITH AND JOHN DOE"),
        ("Title\n\n  Written by Ann Lee  \nText.", "Ann Lee"),
        ("Author: Ann Lee\nText.", "Ann Lee"),
    ],
)
def test_a_byline_among_the_first_lines_is_found_at_its_exact_offsets(text, name):
    start, end = find_byline(text)
    assert text[start:end] == name


@pytest.mark.parametrize(
    "text",
    [
        "BREAKING NEWS\nThe port opened a plant.",  # a capitalised heading, not a name
        "By the way, the port opened.\nText.",  # "by" before uncapitalised words
        "By 2030 the plant will be paid for.",
        "One\nTwo\nThree\nFour\nBy Jane Smith",  # too far down to be the byline
        "The port opened a plant on Monday, said Jane Smith.",
        "",
    ],
)
def test_text_without_a_byline_has_none(text):
    assert find_byline(text) is None


def test_an_all_capitals_name_is_shown_in_title_case_and_any_other_as_written():
    assert display_name("GABRIEL DOMINGUEZ") == "Gabriel Dominguez"
    assert display_name("JANE SMITH AND JOHN DOE") == "Jane Smith and John Doe"
    assert display_name("Jane McBride") == "Jane McBride"


def test_only_a_sentence_about_writing_makes_someone_the_writer():
    quoted = "Tokyo wants a say, and by doing so a voice, said Sebastian Maslow, a lecturer."
    assert not states_authorship("Sebastian Maslow", [quoted])
    assert states_authorship("Jane Smith", ["The report, written by Jane Smith, appeared on Monday."])
    assert states_authorship("Jane Smith", ["A column by Jane Smith."])
