"""Queue: more clients than ``rag serve`` lets wait, some of whom leave before their answer.

Against one ``rag serve`` with its own model, three things a person relies on when the server is busy:

- **load**: ``clients`` clients, arriving a quarter second apart, each ask ``questions`` gold questions in turn;
  every request must be answered (200) or refused at once (503 with ``Retry-After``), none left hanging (a client
  timeout), and the answers must come back first come, first served: no request answered before one sent earlier.
- **leaving while waiting**: one question holds the model; ``leavers`` clients ask and leave after a second; their
  places must be freed at once (``/v1/queue``'s ``waiting`` back to 0 long before the holder's answer is done).
- **leaving while answered**: a client leaves as soon as its answer is being written; the model must be free well
  before a full answer's time (``/v1/queue``'s ``answering`` false).
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rag.bench.report import publish
from rag.bench.server import serving
from rag.config import Settings
from rag.evaluation.scoring import percentile

CLIENT_TIMEOUT_S = 600.0
STAGGER_S = 0.25


@dataclass(frozen=True)
class Request:
    """One request as its client saw it: when it was sent and came back (monotonic seconds), and how."""

    client: int
    sent: float
    done: float
    outcome: str  # "200", "503", another status code, or "timeout"


def out_of_order(requests: list[Request], margin_s: float = 0.1) -> int:
    """Pairs of answered requests where the one sent later (by more than ``margin_s``, the clock's slack between
    clients) was answered first: 0 under first come, first served.

    >>> out_of_order([Request(0, 0.0, 5.0, "200"), Request(1, 1.0, 9.0, "200")])
    0
    >>> out_of_order([Request(0, 0.0, 9.0, "200"), Request(1, 1.0, 5.0, "200"), Request(2, 2.0, 3.0, "503")])
    1
    """
    answered = [r for r in requests if r.outcome == "200"]
    return sum(1 for a in answered for b in answered if a.sent + margin_s < b.sent and b.done < a.done)


def _ask(base: str, question: str, timeout_s: float) -> str:
    import httpx

    body = {"model": "rag", "messages": [{"role": "user", "content": question}]}
    try:
        return str(httpx.post(f"{base}/v1/chat/completions", json=body, timeout=timeout_s).status_code)
    except httpx.TimeoutException:
        return "timeout"


def _status(base: str) -> dict:
    import httpx

    return httpx.get(f"{base}/v1/queue", timeout=10).json()


def _wait_for(base: str, test, timeout_s: float = 120.0, every_s: float = 0.05) -> float:
    """Seconds until ``test(/v1/queue)`` holds; raises TimeoutError after ``timeout_s``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if test(_status(base)):
            return time.monotonic() - started
        time.sleep(every_s)
    raise TimeoutError(f"/v1/queue never showed the expected state within {timeout_s:.0f} s")


def _load(base: str, asked: list[str], clients: int, questions: int) -> list[Request]:
    requests: list[Request] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        # Arrivals a quarter second apart: the order the server sees is then the order of sending (a burst sent
        # in the same millisecond reaches it in whatever order the threads get there).
        time.sleep(number * STAGGER_S)
        for turn in range(questions):
            question = asked[(number * questions + turn) % len(asked)]
            sent = time.monotonic()
            outcome = _ask(base, question, CLIENT_TIMEOUT_S)
            with lock:
                requests.append(Request(number, sent, time.monotonic(), outcome))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return requests


def _leaving_while_waiting(base: str, asked: list[str], leavers: int) -> dict:
    """One question holds the model; ``leavers`` ask behind it and leave after a second."""
    holder = threading.Thread(target=_ask, args=(base, asked[0], CLIENT_TIMEOUT_S))
    started = time.monotonic()
    holder.start()
    _wait_for(base, lambda h: h["answering"])
    queued = [threading.Thread(target=_ask, args=(base, q, 1.0)) for q in asked[1:leavers + 1]]
    for thread in queued:
        thread.start()
    most_waiting = max(_status(base)["waiting"] for _ in range(5))
    for thread in queued:
        thread.join()  # each has now given up (its 1 s client timeout closed the connection)
    freed_s = _wait_for(base, lambda h: h["waiting"] == 0)
    holder_busy = _status(base)["answering"]
    holder.join()
    return {"leavers": leavers, "waiting_seen": most_waiting, "places_freed_s": freed_s,
            "holder_still_answering_when_freed": holder_busy, "holder_answer_s": time.monotonic() - started}


def _leaving_while_answered(base: str, question: str) -> dict:
    """A full answer's time, then the same question asked by a client who leaves once it is being answered."""
    started = time.monotonic()
    _ask(base, question, CLIENT_TIMEOUT_S)
    full_s = time.monotonic() - started
    leaver = threading.Thread(target=_ask, args=(base, question, 0.5))
    started = time.monotonic()
    leaver.start()
    leaver.join()
    # Polled ten times a second: faster polling takes enough of two cores to slow the answer it is timing.
    model_free_s = _wait_for(base, lambda h: not h["answering"], every_s=0.1)
    return {"full_answer_s": full_s, "left_after_s": 0.5, "model_free_after_leaving_s": model_free_s,
            "total_s": time.monotonic() - started}


def run(clients: int = 24, questions: int = 2, leavers: int = 4, out: Path | None = None,
        settings: Settings | None = None, gold: Path = Path("eval/gold/dev.jsonl")) -> dict:
    """The three measurements against one ``rag serve`` over ``settings.docs_dir``; writes ``eval/bench/queue.json``."""
    settings = settings or Settings()
    asked = [json.loads(line)["question"] for line in gold.read_text(encoding="utf-8").splitlines() if line]
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        command = [sys.executable, "-m", "rag.interfaces.cli", "serve", "--docs", str(settings.docs_dir), "--index",
                   str(root / "index"), "--port", "{port}"]
        with serving(command, root / "serve.log", HF_HUB_OFFLINE="1") as port:
            base = f"http://127.0.0.1:{port}"
            print("queue: warming up (the model loads on the first question) ...", flush=True)
            _ask(base, asked[0], CLIENT_TIMEOUT_S)
            print(f"queue: {clients} clients x {questions} questions at once ...", flush=True)
            started = time.monotonic()
            requests = _load(base, asked, clients, questions)
            wall = time.monotonic() - started
            print(f"queue: {leavers} clients leave while waiting ...", flush=True)
            waiting = _leaving_while_waiting(base, asked, leavers)
            print("queue: a client leaves while its answer is written ...", flush=True)
            answered = _leaving_while_answered(base, asked[-1])
    outcomes = {o: sum(1 for r in requests if r.outcome == o) for o in sorted({r.outcome for r in requests})}
    latencies = [r.done - r.sent for r in requests if r.outcome == "200"]
    refusals = [r.done - r.sent for r in requests if r.outcome == "503"]
    first = min((r.sent for r in requests), default=0.0)
    rows = [{"client": r.client, "sent": round(r.sent - first, 3), "done": round(r.done - first, 3),
             "outcome": r.outcome} for r in sorted(requests, key=lambda r: r.sent)]
    summary = {
        "clients": clients,
        "questions_each": questions,
        "outcomes": outcomes,
        "answered_or_refused": all(r.outcome in ("200", "503") for r in requests),
        "timeouts": outcomes.get("timeout", 0),
        "answered_out_of_order": out_of_order(requests),
        "wall_s": wall,
        "answered_p50_s": percentile(latencies, 50) if latencies else None,
        "answered_p95_s": percentile(latencies, 95) if latencies else None,
        "refused_max_s": max(refusals) if refusals else None,
        **{f"waiting_{k}": v for k, v in waiting.items()},
        **{f"answered_{k}": v for k, v in answered.items()},
    }
    # The table is each request in order of sending; the summary carries the verdicts.
    publish("queue", "More clients than may wait, some leaving: answered or refused, first come first served, "
            "places freed", rows, ["client", "sent", "done", "outcome"], summary, out,
            command=f"rag bench queue --clients {clients}")
    return {"rows": rows, "summary": summary}
