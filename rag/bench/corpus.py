"""A generated corpus for scale benchmarks: varied text composed from sentences already on the machine.

Sentences come from the default corpus and from the documentation strings of Python's standard library; each
document recombines some of them, with numbers and a few words changed, so no two documents are alike.
"""

from __future__ import annotations

import importlib
import inspect
import random
import re
from collections.abc import Iterator
from pathlib import Path

from rag.ingest.chunking import split_sentences

_STDLIB_MODULES = (
    "argparse", "asyncio", "collections", "csv", "datetime", "decimal", "email", "fractions", "functools",
    "http.client", "inspect", "io", "itertools", "json", "logging", "os", "pathlib", "random", "re", "shutil",
    "socket", "statistics", "string", "subprocess", "tarfile", "textwrap", "threading", "typing", "unittest",
    "urllib.parse", "zipfile",
)
_NUMBER = re.compile(r"\b\d+\b")


def sentence_pool(seed_dir: Path | None = None) -> list[str]:
    """Distinct sentences of 6 to 60 words from ``seed_dir``'s text files and the standard library's docstrings."""
    texts: list[str] = []
    if seed_dir is not None and seed_dir.is_dir():
        texts += [p.read_text(encoding="utf-8", errors="replace") for p in sorted(seed_dir.glob("*.txt"))]
    for name in _STDLIB_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        texts.append(inspect.getdoc(module) or "")
        for attribute in sorted(vars(module)):
            if not attribute.startswith("_"):
                texts.append(inspect.getdoc(getattr(module, attribute)) or "")
    pool: dict[str, None] = {}
    for text in texts:
        text = " ".join(text.split())
        for start, end in split_sentences(text):
            sentence = text[start:end]
            if 6 <= len(sentence.split()) <= 60:
                pool.setdefault(sentence, None)
    return list(pool)


def _perturb(sentence: str, rng: random.Random) -> str:
    sentence = _NUMBER.sub(lambda m: str(rng.randrange(1, 10 ** max(1, len(m.group())))), sentence)
    words = sentence.split()
    if len(words) > 4 and rng.random() < 0.5:  # swap two neighbouring words
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def generate_texts(count: int, pool: list[str], sentences: tuple[int, int], seed: int = 0) -> Iterator[str]:
    """``count`` texts of ``sentences`` (min, max) perturbed sentences each, paragraphs of up to four sentences.

    >>> pool = ["The cat sat on 3 mats today.", "A dog ran 12 miles in the rain.", "Birds sing at 5 every day."]
    >>> texts = list(generate_texts(2, pool, (2, 3), seed=1))
    >>> len(texts), texts == list(generate_texts(2, pool, (2, 3), seed=1))
    (2, True)
    """
    rng = random.Random(seed)
    for _ in range(count):
        chosen = [_perturb(rng.choice(pool), rng) for _ in range(rng.randint(*sentences))]
        paragraphs = [" ".join(chosen[i:i + 4]) for i in range(0, len(chosen), 4)]
        yield "\n\n".join(paragraphs)


def write_corpus(folder: Path, count: int, pool: list[str], seed: int = 0) -> list[Path]:
    """Write ``count`` generated documents of 3 to 12 sentences into ``folder`` as ``doc-NNNNN.txt``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, text in enumerate(generate_texts(count, pool, (3, 12), seed)):
        path = folder / f"doc-{number:05d}.txt"
        path.write_text(text + "\n", encoding="utf-8")
        paths.append(path)
    return paths
