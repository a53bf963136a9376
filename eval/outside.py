"""Questions outside the dev gold set, over the default corpus: does the assistant abstain when it should, and
only then? Each question is asked with the default settings and with the cited-sentence check turned off
(``min_citation_relevance=-1``), so the check's effect shows on questions it was not tuned on.

Run from the repository root: HF_HUB_OFFLINE=1 .venv/bin/python eval/outside.py
An answerable question counts as answered right when its answer holds the expected word. Logged in eval/README.md.
"""

from rag import Assistant

# Their words occur in the documents; their answers do not.
UNANSWERABLE = [
    "What is the official language of Lithuania?",
    "Who is the current president of South Korea?",
    "How many members does the European Union have?",
    "What currency does New Zealand use?",
    "When was the University of Exeter founded?",
    "What is the tallest building in Tokyo?",
    "Who invented cyber security?",
    "Which country hosted the 2020 Olympic Games?",
    "What did Sweden export to Hungary in 2022?",
    "How many drones did the United States send to Ukraine?",
]
ANSWERABLE = [  # (question, a word the right answer holds)
    ("Where is the University of Exeter?", "england"),
    ("Which alliance's summit did Kishida attend last year?", "nato"),
    ("What kind of aid has Japan given Kyiv besides humanitarian and financial aid?", "nonlethal"),
    ("What minimum share of GDP are NATO members expected to spend on defense?", "2%"),
    ("What academy facilitates knowledge sharing in cybersecurity between Japan and NATO?", "academy"),
    ("Which two countries' positions on Sweden's membership are key issues?", "turkey"),
    ("What does Shea say the leaders would use the summit to do with the ITPPs?", "endorse"),
    ("On which dates will Kishida join the Vilnius summit?", "july 11"),
    ("Who is the former NATO deputy assistant secretary-general quoted by The Japan Times?", "shea"),
    ("What items did Japan send to Ukraine as nonlethal aid?", "drones"),
]


def main() -> None:
    assistant = Assistant.from_folder()
    ways = {
        "default": assistant.settings,
        "cited-sentence check off": assistant.settings.with_changes(min_citation_relevance=-1.0),
    }
    for label, settings in ways.items():
        answered = [(q, a.text) for q in UNANSWERABLE if not (a := assistant.ask(q, settings=settings)).abstained]
        right = abstained = 0
        for question, expected in ANSWERABLE:
            answer = assistant.ask(question, settings=settings)
            right += expected in answer.text.lower()
            abstained += answer.abstained
        print(f"{label}: unanswerable abstained {len(UNANSWERABLE) - len(answered)} of {len(UNANSWERABLE)}; "
              f"answerable right {right} of {len(ANSWERABLE)}, abstained {abstained}")
        for question, text in answered:
            print(f"    answered {question!r}: {text!r}")


if __name__ == "__main__":
    main()
