"""Recognising a reply that declines to answer, in the phrasings small models use for it."""

from __future__ import annotations

import re

_ABSTAIN = re.compile(
    r"\b(i\s+(do\s+not|don'?t|don’t)\s+know|(cannot|can'?t|can’t|unable to)\s+(answer|determine|find)"
    r"|no information|not (mentioned|stated|specified|provided|given|available)"
    r"|(passages?|documents?|text|context) (do(es)?\s*n[o']?t|do not) (say|mention|state|contain|provide|specify))",
    re.IGNORECASE,
)


def is_abstention(text: str) -> bool:
    """Whether the generator said it cannot answer from the passages.

    >>> is_abstention("I don't know."), is_abstention("Ghent [1]")
    (True, False)
    """
    return not text.strip() or bool(_ABSTAIN.search(text))
