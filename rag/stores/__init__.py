"""Stores: where chunks, their vectors and their keyword index live. ``base`` holds what every store shares (the
settings the vectors depend on, the update report, the errors); ``faiss_store`` is a folder of files written as
atomic generations; ``milvus_store`` a Milvus database (Lite file or server).

May import: the ground floor and ``rag.models`` (the embedder's interface).
"""
