"""Evaluation: scoring against gold questions (``scoring``), run folders that record answers as they come and
are resumed or re-scored (``runs``), reports, SQuAD import, and fitting the answerability score (``calibration``).

May import: ``rag.assistant`` and everything below it.
"""
