"""The index as people's folders change: files added, copied, edited, renamed and removed in any order, the index
updated after each step, must always load, find every document's passages, and hold nothing else.

A Hypothesis state machine (as Chroma tests its collections). CI runs a bounded number of examples; a longer run:
``HYPOTHESIS_PROFILE=long pytest tests/test_index_states.py``.
"""

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from rag.config import Settings
from rag.ingest.indexing import build_or_update
from rag.stores.faiss_store import load_index
from tests.conftest import FakeEmbedder

settings.register_profile("ci", max_examples=25, stateful_step_count=8, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=500, stateful_step_count=15, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")

WORDS = ["alpine", "basalt", "canal", "delta", "estuary", "fjord", "glacier", "harbour", "island", "jetty"]
NAMES = ["a.txt", "b.md", "sub/a.txt", "sub/c.txt", "deep/er/d.md"]
# Sentences of a few words each: several chunks a file at 8 tokens a chunk, and texts that repeat across files.
TEXTS = st.lists(st.lists(st.sampled_from(WORDS), min_size=2, max_size=6).map(lambda w: " ".join(w).capitalize() + "."),
                 min_size=1, max_size=4).map(" ".join)
INDEX_SETTINGS = Settings(chunk_tokens=8, chunk_overlap_tokens=2)


class FolderAndIndex(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="rag-states-"))
        self.docs, self.index_dir = self.root / "docs", self.root / "index"
        self.docs.mkdir()
        self.embedder = FakeEmbedder()
        self.files: dict[str, str] = {}  # what the folder holds, by name
        self.index = None

    def teardown(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def _write(self, name: str, text: str) -> None:
        path = self.docs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        self.files[name] = text

    def _update(self, rebuild: bool = False) -> None:
        self.index, _ = build_or_update(self.docs, self.index_dir, self.embedder, INDEX_SETTINGS, rebuild=rebuild)

    @rule(name=st.sampled_from(NAMES), text=TEXTS)
    def add_or_edit(self, name: str, text: str) -> None:
        self._write(name, text)
        self._update()

    @precondition(lambda self: self.files)
    @rule(data=st.data(), destination=st.sampled_from(NAMES))
    def copy(self, data: st.DataObject, destination: str) -> None:
        source = data.draw(st.sampled_from(sorted(self.files)))
        self._write(destination, self.files[source])
        self._update()

    @precondition(lambda self: self.files)
    @rule(data=st.data(), destination=st.sampled_from(NAMES))
    def rename(self, data: st.DataObject, destination: str) -> None:
        source = data.draw(st.sampled_from(sorted(self.files)))
        if source == destination:
            return
        text = self.files.pop(source)
        (self.docs / source).unlink()
        self._write(destination, text)
        self._update()

    @precondition(lambda self: self.files)
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.files)))
        del self.files[name]
        (self.docs / name).unlink()
        self._update()

    @rule()
    def rebuild(self) -> None:
        self._update(rebuild=True)

    @invariant()
    def the_index_loads_and_holds_exactly_the_folder(self) -> None:
        if self.index is None:
            return
        loaded = load_index(self.index_dir)  # what the next command does first: it must not be refused
        assert set(loaded.documents) == set(self.files)
        assert {d.text for d in loaded.documents.values()} == set(self.files.values())
        live = {name: d.id for name, d in loaded.documents.items()}
        assert all(live.get(c.doc_name) == c.doc_id for c in loaded.chunks)  # nothing of a file that is gone
        assert len({c.id for c in loaded.chunks}) == len(loaded.chunks)

    @invariant()
    def every_documents_passages_are_findable(self) -> None:
        if self.index is None:
            return
        loaded = load_index(self.index_dir)
        for document in loaded.documents.values():
            passages = [c for c in loaded.chunks if c.doc_id == document.id]
            assert passages, f"{document.name} has no passage"
            covered = set()
            for chunk in passages:
                covered.update(range(chunk.start, chunk.end))
                assert document.text[chunk.start:chunk.end] == chunk.text
                found = loaded.keyword_search(chunk.text, len(loaded.chunks))
                assert any(loaded.chunks[row].text == chunk.text for row, _ in found), chunk.text
                nearest = loaded.dense_search(self.embedder.embed([chunk.text])[0], 1)
                assert nearest and nearest[0][1] > 0.999
            words = [i for i, ch in enumerate(document.text) if not ch.isspace()]
            assert all(i in covered for i in words), f"part of {document.name} is in no passage"


FolderAndIndex.TestCase.settings = settings.get_profile(PROFILE)
TestFolderAndIndex = FolderAndIndex.TestCase
