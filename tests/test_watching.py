"""Watching the documents folder with real file operations: added, changed, renamed and deleted files are indexed,
a burst of saves once; hidden staging files and the index folder do not count; a failing update is retried."""

import time

from rag import Assistant, Settings
from rag.ingest.watching import FolderWatcher
from tests.conftest import FakeGenerator

SETTINGS = Settings(chunk_tokens=8, chunk_overlap_tokens=0, top_k=2, candidates=4)


def wait_for(condition, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_added_changed_renamed_and_deleted_files_reach_the_index(docs_dir, tmp_path, fake_embedder):
    assistant = Assistant.from_folder(docs_dir, tmp_path / "index", SETTINGS, embedder=fake_embedder,
                                      generator=FakeGenerator())
    watcher = FolderWatcher(docs_dir, assistant.refresh, debounce_s=0.3).start()
    try:
        (docs_dir / "lakes.txt").write_text("Lake Constance lies on the Rhine.", encoding="utf-8")
        assert wait_for(lambda: "lakes.txt" in assistant.index.documents)
        (docs_dir / "lakes.txt").write_text("Lake Geneva lies on the Rhone.", encoding="utf-8")
        assert wait_for(lambda: "Geneva" in assistant.index.documents["lakes.txt"].text)
        (docs_dir / "lakes.txt").rename(docs_dir / "lakes-of-europe.txt")
        assert wait_for(lambda: set(assistant.index.documents) == {"cities.md", "rivers.txt", "lakes-of-europe.txt"})
        (docs_dir / "lakes-of-europe.txt").unlink()
        assert wait_for(lambda: set(assistant.index.documents) == {"cities.md", "rivers.txt"})
    finally:
        watcher.stop()


def test_a_burst_of_saves_is_indexed_once_and_hidden_or_index_files_not_at_all(docs_dir, tmp_path):
    updates = []
    index_inside = docs_dir / "index"
    index_inside.mkdir()
    watcher = FolderWatcher(docs_dir, lambda: updates.append(time.monotonic()), debounce_s=0.5,
                            ignored=[index_inside]).start()
    try:
        for i in range(10):  # an editor saving repeatedly
            (docs_dir / "notes.md").write_text(f"# Notes\n\nDraft {i}.", encoding="utf-8")
            time.sleep(0.03)
        assert wait_for(lambda: len(updates) == 1)
        time.sleep(1.0)
        assert len(updates) == 1
        (docs_dir / ".notes.md.uploading").write_text("half copied", encoding="utf-8")
        (index_inside / "manifest.json").write_text("{}", encoding="utf-8")
        time.sleep(1.2)
        assert len(updates) == 1
    finally:
        watcher.stop()


def test_a_failed_update_is_retried_and_the_watcher_keeps_going(docs_dir):
    attempts = []

    def flaky_update():
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            raise OSError("No space left on device")
        return "ok"

    reports = []
    watcher = FolderWatcher(docs_dir, flaky_update, debounce_s=0.2, retry_s=0.5, on_update=reports.append).start()
    try:
        (docs_dir / "new.txt").write_text("Fresh text.", encoding="utf-8")
        assert wait_for(lambda: reports == ["ok"])  # retried without a further change
        assert len(attempts) == 2 and watcher.updates == 1
    finally:
        watcher.stop()


def test_a_half_written_file_is_skipped_with_its_reason_then_indexed_once_complete(docs_dir, tmp_path, fake_embedder):
    import docx

    assistant = Assistant.from_folder(docs_dir, tmp_path / "index", SETTINGS, embedder=fake_embedder,
                                      generator=FakeGenerator())
    watcher = FolderWatcher(docs_dir, assistant.refresh, debounce_s=0.3).start()
    try:
        complete = tmp_path / "minutes.docx"
        document = docx.Document()
        document.add_paragraph("The harbour board met on Tuesday and approved the new ferry timetable.")
        document.save(complete)
        data = complete.read_bytes()
        (docs_dir / "minutes.docx").write_bytes(data[: len(data) // 2])  # a copy still under way
        assert wait_for(lambda: any(s.name == "minutes.docx" for s in assistant.build_report.skipped))
        (docs_dir / "minutes.docx").write_bytes(data)
        assert wait_for(lambda: "minutes.docx" in assistant.index.documents)
        assert not any(s.name == "minutes.docx" for s in assistant.build_report.skipped)
        (docs_dir / "gone.txt").write_text("Here for a moment.", encoding="utf-8")
        (docs_dir / "gone.txt").unlink()  # vanished before the update read it
        (docs_dir / "stays.txt").write_text("The lighthouse keeper is Ines Duarte.", encoding="utf-8")
        assert wait_for(lambda: "stays.txt" in assistant.index.documents)
        assert "gone.txt" not in assistant.index.documents and watcher.updates >= 3
    finally:
        watcher.stop()
