"""Text for scanned pages: Tesseract reads a page image, and what it read is cached by the page's content hash.

Tesseract (Debian's ``tesseract-ocr``, set up by ``make setup`` where it may) runs offline with the language data
it was installed with; nothing is downloaded. Without it, scanned pages are skipped and the index report says so.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

log = logging.getLogger(__name__)

INSTALL_HINT = "install Tesseract (Debian/Ubuntu: apt install tesseract-ocr) to read scanned pages"


class OcrError(Exception):
    """A page Tesseract could not read; the message says why."""


@functools.lru_cache(maxsize=8)
def _tesseract_status(language: str) -> tuple[str | None, str]:
    """(None, version) when Tesseract and ``language`` are installed, else (the reason, "")."""
    if shutil.which("tesseract") is None:
        return f"Tesseract is not installed; {INSTALL_HINT}", ""
    try:
        import pytesseract  # the [ocr] extra
    except ImportError:
        return "scanned pages need the [ocr] extra: pip install 'rag-assistant[ocr]'", ""

    try:
        version = str(pytesseract.get_tesseract_version())
        installed = set(pytesseract.get_languages(config=""))
    except (pytesseract.TesseractError, OSError, RuntimeError) as exc:
        return f"Tesseract does not run ({exc})", ""
    missing = [lang for lang in language.split("+") if lang not in installed]
    if missing:
        return (f"Tesseract has no language data for {'+'.join(missing)} (installed: {', '.join(sorted(installed))})",
                "")
    return None, version


@dataclass(frozen=True)
class Ocr:
    """How scanned pages are read: Tesseract's ``language`` (as ``-l`` takes it, e.g. "eng+deu"), pages rendered at
    ``dpi``, each page given at most ``timeout_s``; what was read is kept under ``cache_dir`` (None: not kept)."""

    language: str = "eng"
    dpi: int = 300
    timeout_s: float = 180.0
    cache_dir: Path | None = None

    def unavailable(self) -> str | None:
        """Why scanned pages cannot be read here, or None when they can."""
        return _tesseract_status(self.language)[0]

    def read(self, content_key: str, render: Callable[[int], Image.Image]) -> str:
        """The text of the page identified by ``content_key`` (a digest of the file and the page's number), from
        the cache or from Tesseract reading ``render(dpi)``. Raises OcrError when Tesseract fails on it."""
        reason, version = _tesseract_status(self.language)
        if reason:
            raise OcrError(reason)
        key = hashlib.sha256(f"{content_key}|{self.language}|{self.dpi}|{version}".encode()).hexdigest()
        cached = self._cache_path(key)
        if cached is not None and cached.is_file():
            return cached.read_text(encoding="utf-8")
        import pytesseract

        try:
            text = pytesseract.image_to_string(render(self.dpi), lang=self.language, timeout=self.timeout_s)
        except RuntimeError as exc:  # pytesseract's timeout
            raise OcrError(f"OCR took over {self.timeout_s:.0f} s") from exc
        except (pytesseract.TesseractError, OSError) as exc:
            raise OcrError(f"OCR failed ({exc})") from exc
        if cached is not None:
            _write_atomically(cached, text)
        return text

    def _cache_path(self, key: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / "ocr" / key[:2] / f"{key}.txt"


def _write_atomically(path: Path, text: str) -> None:
    """A cache entry another process may be reading appears whole or not at all."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_suffix(f".tmp-{os.getpid()}")
        staging.write_text(text, encoding="utf-8")
        os.replace(staging, path)
    except OSError as exc:  # a read-only cache only costs a second OCR next time
        log.warning("could not cache OCR text in %s: %s", path.parent, exc)
