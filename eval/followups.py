"""Two-turn conversations over the default corpus: is a follow-up that points back answered?

Run from the repository root: HF_HUB_OFFLINE=1 .venv/bin/python eval/followups.py
A follow-up counts as answered when its answer holds the expected word. Logged in eval/README.md.
"""

import time

from rag import Assistant
from rag.answering.conversation import Turn

CONVERSATIONS = [  # (first question, follow-up, a word the follow-up's answer should hold)
    ("Where would NATO open its first liaison office in Asia?", "Who resisted it?", "Macron"),
    ("What office is NATO planning to open in Tokyo?", "Who resisted it?", "Macron"),
    ("Which program did the ITPP build upon?", "In which year was it signed?", "2014"),
    ("Who is the Ukrainian Defense Minister mentioned in the article?", "What did he say Kyiv expects?", "signal"),
    ("Who will attend the NATO summit in Vilnius?", "What will he emphasize there?", "cooperation"),
    ("Which French president resisted the plan for a NATO office in Tokyo?", "Why?", "region"),
]


def main() -> None:
    assistant = Assistant.from_folder()
    answered = 0
    for first_question, follow_up, expected in CONVERSATIONS:
        first = assistant.ask(first_question)
        started = time.perf_counter()
        answer = assistant.ask(follow_up, [Turn(first_question, first.text, first.abstained)])
        ok = expected.lower() in answer.text.lower()
        answered += ok
        print(f"{'ok  ' if ok else 'MISS'} {first_question} -> {first.text} | {follow_up} -> {answer.text} "
              f"({time.perf_counter() - started:.1f} s)")
    print(f"{answered} of {len(CONVERSATIONS)} follow-ups answered")


if __name__ == "__main__":
    main()
