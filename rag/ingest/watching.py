"""Watching the documents folder (``--watch``): files added, changed, renamed or deleted are indexed within seconds,
a burst of saves once, with ``watchdog``.

A half-written or vanished file is no crash: the loader skips it with a reason, and the writes that finish it
bring another update. An update that fails (the index locked by another writer for too long, a full disk) is
logged and tried again after the next change or ``retry_s``, whichever comes first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

log = logging.getLogger(__name__)


class _Changes(FileSystemEventHandler):
    """Notes the time of the last change to a file that may be a document."""

    def __init__(self, folder: Path, ignored: list[Path]) -> None:
        self.folder = folder
        self.ignored = [p.resolve() for p in ignored]
        self.last: float | None = None
        self.lock = threading.Lock()

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return  # reading a file changes nothing
        if event.is_directory and event.event_type == "modified":
            return  # a folder's entries changed: the files themselves report what happened
        paths = [event.src_path, getattr(event, "dest_path", "") or ""]
        if any(path and self._relevant(Path(str(path))) for path in paths):
            with self.lock:
                self.last = time.monotonic()

    def _relevant(self, path: Path) -> bool:
        try:
            relative = path.resolve().relative_to(self.folder)
        except ValueError:
            return False
        if any(part.startswith(".") for part in relative.parts):
            return False  # hidden files and folders, such as an upload's ".name.uploading" copy, are not read
        return not any(path.resolve() == p or p in path.resolve().parents for p in self.ignored)

    def take(self, quiet_s: float) -> bool:
        """Whether changes happened and have been quiet for ``quiet_s``; forgets them if so."""
        with self.lock:
            if self.last is None or time.monotonic() - self.last < quiet_s:
                return False
            self.last = None
            return True


class FolderWatcher:
    """Calls ``update`` after files under ``folder`` change, once the changes have paused for ``debounce_s``.

    ``ignored`` are paths inside the folder whose changes do not count (an index kept inside the documents
    folder). ``on_update`` receives each update's result, for a report; ``start`` runs it all in the background.
    """

    def __init__(
        self,
        folder: Path,
        update: Callable[[], object],
        debounce_s: float = 1.0,
        retry_s: float = 30.0,
        ignored: list[Path] | None = None,
        on_update: Callable[[object], None] | None = None,
    ) -> None:
        self.folder = folder.resolve()
        self.update = update
        self.debounce_s = debounce_s
        self.retry_s = retry_s
        self.on_update = on_update or (lambda result: None)
        self.updates = 0  # updates run so far (tests and reports read it)
        self._changes = _Changes(self.folder, ignored or [])
        self._observer = Observer()
        self._observer.schedule(self._changes, str(self.folder), recursive=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watch-documents", daemon=True)

    def start(self) -> FolderWatcher:
        self._observer.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._observer.stop()
        self._observer.join(timeout=10)
        self._thread.join(timeout=10)

    def wait(self) -> None:
        """Block until interrupted (``rag index --watch``)."""
        try:
            while not self._stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            self.stop()

    def _run(self) -> None:
        failed_at: float | None = None
        while not self._stop.wait(min(0.2, self.debounce_s / 4)):
            due = self._changes.take(self.debounce_s)
            if not due and failed_at is not None and time.monotonic() - failed_at >= self.retry_s:
                due = True
            if not due:
                continue
            try:
                result = self.update()
            except Exception as exc:  # noqa: BLE001 - reported, then retried: a watcher must not die
                log.warning("updating the index after a change failed (%s); retrying", exc)
                failed_at = time.monotonic()
                continue
            failed_at = None
            self.updates += 1
            self.on_update(result)
