"""Real servers the scale-out tests start: llama.cpp's OpenAI-compatible server (from llama-cpp-python[server])
serving the packaged GGUF, and a Milvus Lite server. Each runs as a subprocess on a free port of 127.0.0.1."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from rag.bench.server import serving

needs_llama_server = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama-cpp-python[server] is not installed (`make model-server` builds it from source, about 20 minutes)",
)


def packaged_gguf(folder: Path) -> Path:
    """The default model's GGUF, joined from its packaged parts into ``folder`` (once)."""
    from rag.models.local.gguf import DEFAULT_MODEL, join_packaged_gguf

    target = folder / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    if not target.exists():
        join_packaged_gguf(DEFAULT_MODEL, target)
    return target


@contextmanager
def llama_server(gguf: Path, log: Path) -> Iterator[str]:
    """llama.cpp's server for ``gguf``; yields its OpenAI base URL."""
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port",
               "{port}", "--n_ctx", "4096", "--n_threads", str(os.cpu_count() or 2), "--model_alias", "qwen-0.5b",
               "--interrupt_requests", "False"]  # by default a second client's request cuts the first reply off
    with serving(command, log, timeout_s=180) as port:
        yield f"http://127.0.0.1:{port}/v1"


@contextmanager
def milvus_server(data_dir: Path, log: Path) -> Iterator[str]:
    """``milvus-lite server`` over ``data_dir``; yields its URI, as a Milvus server's would be given."""
    command = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data_dir), "--host", "127.0.0.1",
               "--port", "{port}"]
    with serving(command, log, timeout_s=60) as port:
        yield f"http://127.0.0.1:{port}"
