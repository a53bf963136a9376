"""A generator behind an OpenAI-compatible chat server: vLLM, llama.cpp's server, Ollama, TGI.

The embedder, retrieval, the prompts and every answer check stay local; only the model's writing is asked of the
server, through ``POST {url}/chat/completions`` with greedy decoding. Where the server returns token
log-probabilities (llama.cpp's server and vLLM do, with ``logprobs``), the answerability score and a verifier work
as with the local model; where it does not, those checks say so in their verdicts. Quote mode needs the local
model: it constrains every token the model writes, which the chat API cannot express.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence

import httpx

from rag.models.base import AnswerConstraint, GeneratorError
from rag.types import GenerationSignals

REFUSAL_START = "I"  # the first token of "I don't know" for the tokenizers these servers run
TOP_LOGPROBS = 5


class OpenAICompatibleGenerator:
    """The ``Generator`` (and ``Judge``) interface over an OpenAI-compatible server at ``url`` (".../v1").

    ``model`` names the served model (None: the first ``GET /models`` lists). Connection failures and 5xx replies
    are retried ``retries`` times, with a pause, before any text has arrived; after that an error ends the reply.
    """

    def __init__(self, url: str, model: str | None = None, api_key: str = "", timeout_s: float = 60.0,
                 retries: int = 2, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=self.url, headers=headers, transport=transport,
                                    timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)))
        self.model = model or self._first_model()
        self.name = f"{self.model} at {self.url}"
        self.logprobs = True  # until the server shows it has none

    def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        for attempt in range(self.retries + 1):
            try:
                response = self._client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise GeneratorError(f"the model server at {self.url} does not answer "
                                         f"({exc.__class__.__name__}: {exc})") from exc
            else:
                if response.status_code < 500 or attempt == self.retries:
                    return self._checked(response)
            time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    def _checked(self, response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            raise GeneratorError(f"the model server at {self.url} refused the request: HTTP {response.status_code} "
                                 f"{response.text[:300]}")
        return response

    def _first_model(self) -> str:
        models = self._request("GET", "/models").json().get("data") or []
        if not models:
            raise GeneratorError(f"the model server at {self.url} lists no model; name one with --generator-api-model")
        return str(models[0]["id"])

    def _body(self, messages: list[dict[str, str]], max_tokens: int, stream: bool) -> dict:
        body = {"model": self.model, "messages": messages, "max_tokens": max_tokens, "temperature": 0.0,
                "seed": 0, "stream": stream}
        if self.logprobs:
            body |= {"logprobs": True, "top_logprobs": TOP_LOGPROBS}
        return body

    def stream(
        self,
        messages: list[dict[str, str]],
        max_new_tokens: int,
        constraint: AnswerConstraint | None = None,
        max_seconds: float | None = None,
        starts: Sequence[list[dict[str, str]]] = (),
        on_signals: Callable[[GenerationSignals], None] | None = None,
    ) -> Iterator[str]:
        """The reply streamed from the server; ``starts`` are left to the server's own prompt cache."""
        if constraint is not None:
            raise GeneratorError("quote mode needs the local model (a model server cannot be held to copying a "
                                 "passage); use --answer-mode free with --generator-url")
        started = time.monotonic()
        chosen: list[float] = []
        refusal_prob: float | None = None
        wrote = False
        for attempt in range(self.retries + 1):
            try:
                with self._client.stream("POST", "/chat/completions",
                                         json=self._body(messages, max_new_tokens, True)) as response:
                    if response.status_code >= 500 and attempt < self.retries:
                        time.sleep(0.5 * 2**attempt)
                        continue
                    if response.status_code == 400 and self.logprobs and attempt < self.retries:
                        self.logprobs = False  # a server that refuses the log-probability options: ask without
                        continue
                    if response.status_code >= 400:
                        response.read()
                        self._checked(response)
                    for line in response.iter_lines():
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            break
                        choice = (json.loads(data).get("choices") or [{}])[0]
                        for token in ((choice.get("logprobs") or {}).get("content") or []):
                            if refusal_prob is None:
                                refusal_prob = _probability_of(REFUSAL_START, token)
                            chosen.append(float(token["logprob"]))
                        piece = (choice.get("delta") or {}).get("content") or ""
                        if piece:
                            wrote = True
                            yield piece
                        if max_seconds is not None and time.monotonic() - started > max_seconds:
                            break
                break
            except httpx.TransportError as exc:
                if chosen or attempt == self.retries:
                    raise GeneratorError(f"the model server at {self.url} does not answer "
                                         f"({exc.__class__.__name__}: {exc})") from exc
                time.sleep(0.5 * 2**attempt)
        if self.logprobs and wrote and not chosen:
            self.logprobs = False  # the server ignores the option: stop asking for it
        if on_signals is not None and chosen:
            on_signals(GenerationSignals(refusal_prob or 0.0, sum(chosen) / len(chosen), min(chosen), len(chosen)))

    def option_probabilities(self, messages: list[dict[str, str]], options: Sequence[str]) -> list[float]:
        """Each option's probability as the first token of the reply, from the server's top log-probabilities,
        normalised over the options; raises GeneratorError when the server gives none."""
        body = self._body(messages, 1, False) | {"logprobs": True, "top_logprobs": max(TOP_LOGPROBS, len(options))}
        reply = self._request("POST", "/chat/completions", json=body).json()
        tokens = ((reply.get("choices") or [{}])[0].get("logprobs") or {}).get("content") or []
        if not tokens:
            raise GeneratorError(f"the model server at {self.url} returns no log-probabilities, which a verifier needs")
        weights = [_probability_of(option, tokens[0]) for option in options]
        total = sum(weights)
        return [w / total for w in weights] if total > 0 else [1.0 / len(options)] * len(options)

    def count_tokens(self, text: str) -> int:
        """Tokens by the server's ``/tokenize`` where it has one (llama.cpp's, vLLM's), else about 4 characters
        each."""
        root = self.url.removesuffix("/v1")
        try:
            reply = self._client.post(f"{root}/tokenize", json={"content": text, "model": self.model, "prompt": text})
            if reply.status_code == 200:
                payload = reply.json()
                tokens = payload.get("tokens")
                if isinstance(tokens, list):
                    return len(tokens)
                if isinstance(payload.get("count"), int):
                    return payload["count"]
        except (httpx.HTTPError, ValueError):
            pass
        return max(1, math.ceil(len(text) / 4))


def _probability_of(text: str, token: dict) -> float:
    """The probability the server gave a token spelling the start of ``text`` at this step (0 when not listed)."""
    wanted = text.strip().lower()
    best = 0.0
    for candidate in [token, *(token.get("top_logprobs") or [])]:
        spelled = str(candidate.get("token", "")).strip().lower()
        if spelled and wanted.startswith(spelled):
            best = max(best, math.exp(float(candidate["logprob"])))
    return best
