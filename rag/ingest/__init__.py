"""Ingest: from a documents folder to chunks in a store. Loaders (text, Markdown, HTML, PDF with OCR, Word),
titles, sentence-aware chunking, the folder watcher, and the one update path (``indexing``) that embeds only new
content and writes it to the store the settings name.

May import: the ground floor (``rag.config``, ``rag.types``, ``rag.words``), ``rag.models`` (the embedder) and
``rag.stores``.
"""
