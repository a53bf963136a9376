"""Benchmarks behind `rag bench`: each pairs the project's way with the plain way in one run, prints a table and
writes JSON, so a ratio holds on a noisy machine. Figures, not assertions: nothing here is timed in the tests.

- ``retrieval``: query latency, recall@10 against exact search and memory per chunk at 10^4..10^6 chunks.
- ``ingestion``: documents and chunks per second over a generated corpus, ONNX int8 against PyTorch.
- ``cold-start``: process start to first answer, converted-model cache against loading the GGUF directly.
- ``latency``: time to first token and to the full answer over the dev gold questions, prefill and decode rates.
- ``memory``: peak resident memory of the chat server while it answers.
"""
