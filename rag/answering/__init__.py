"""Answering: retrieval (hybrid dense + BM25), the passages the model reads, the conversation's earlier turns,
the prompts, planted-instruction removal, citations and how an answer is spelled.

May import: the ground floor, ``rag.models``, ``rag.stores`` and ``rag.ingest``.
"""
