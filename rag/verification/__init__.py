"""Verification: every check that judges a draft answer (``checks``, ``verifier``) and the calibrated
answerability score (``answerability``).

May import: everything below it: the ground floor, ``rag.models``, ``rag.stores``, ``rag.ingest``,
``rag.answering``.
"""
