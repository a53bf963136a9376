"""One model load at a time in a process.

transformers' ``from_pretrained`` and torch's ONNX exporter change process-wide state while they run (the default
dtype, weight-initialisation switches); the generator loads in a background thread while the embedder may be
loading or exporting in the main one. One Rhine evaluation run whose generator loaded while the embedder was being
exported came out with the output layer untied ("lm_head.weight MISSING") and answered every question with random
tokens (F1 0.00 on 294 questions, where the next process, started with the embedder's export cached, answered
as before: F1 0.69). Holding this lock around each load keeps the
two apart; a load costs seconds, the wait no more than that.
"""

from __future__ import annotations

import threading

MODEL_LOADING = threading.RLock()
