"""The local transformers backend: GGUF files joined and converted once (``gguf``), the generator with its
attention-cache reuse (``transformers_generator``, ``prefix_cache``), how its matrices multiply (``precision``,
``half_weights``), quote-mode decoding (``decoding``), and one model load at a time (``model_lock``).

May import: the ground floor and ``rag.models``' ``base`` and ``registry``.
"""
