"""What steers the local model's decoding: a reply held to a span of the sources (or the refusal), an output layer
that scores only the tokens such a reply can use, and a stop at the first line break."""

from __future__ import annotations

import re
import threading

import torch
from torch import nn
from transformers import StoppingCriteria

from rag.models.local.half_weights import HalfWeightLinear, mixed_linear


def constrainable_head(model: nn.Module) -> ConstrainableHead | None:
    """Put a ``ConstrainableHead`` in place of the model's output layer when that is a plain linear layer (not,
    for example, an int8-quantised one, which keeps scoring the whole vocabulary)."""
    head = model.get_output_embeddings()
    if type(head) not in (nn.Linear, HalfWeightLinear):
        return None
    constrainable = ConstrainableHead(head)
    model.set_output_embeddings(constrainable)
    return constrainable


class ConstrainableHead(nn.Module):
    """The model's output layer, scoring only ``allowed`` token ids when set (the rest get -inf).

    The default model's vocabulary is 151,936 tokens: the full layer took 47 ms of a ~210 ms decoding step here,
    a few thousand rows of it under 1 ms.
    """

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.weight = head.weight
        self.bias = getattr(head, "bias", None)
        self.allowed: torch.Tensor | None = None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        allowed = self.allowed
        if allowed is None:
            return mixed_linear(hidden, self.weight, self.bias)
        bias = self.bias[allowed] if self.bias is not None else None
        logits = hidden.new_full((*hidden.shape[:-1], self.weight.shape[0]), float("-inf"))
        logits[..., allowed] = mixed_linear(hidden, self.weight[allowed], bias)
        return logits


_WHITESPACE = re.compile(r"\s+")


class SpanConstraint:
    """``prefix_allowed_tokens_fn`` letting the reply be only a span copied from one source, or the refusal.

    Matching is on text, not token ids, so a span may start mid-sentence even though the model spells a reply's
    first word with different tokens than the source does ("GABRIEL" alone vs " GABRIEL" after a space).
    """

    def __init__(
        self,
        tokenizer,
        candidates: list[int],
        sources: tuple[str, ...],
        refusal: str,
        end_ids: list[int],
        prompt_length: int,
    ) -> None:
        self.tokenizer = tokenizer
        self.pieces = [(i, piece) for i, piece in zip(candidates, tokenizer.batch_decode([[i] for i in candidates]))
                       if i not in end_ids]
        self.sources = "\x00".join(_WHITESPACE.sub(" ", source) for source in sources)
        self.refusal = refusal
        self.end_ids = end_ids
        self.prompt_length = prompt_length

    def __call__(self, batch_id: int, input_ids: torch.Tensor) -> list[int]:
        reply = self.tokenizer.decode(input_ids[self.prompt_length :], skip_special_tokens=True).lstrip()
        allowed = [i for i, piece in self.pieces if self._may_continue((reply + piece).lstrip())]
        if reply:
            allowed += self.end_ids  # any span may end here
        return allowed or self.end_ids

    def _may_continue(self, text: str) -> bool:
        if "\ufffd" in text:  # part of a multi-byte character: judged once the character is complete
            text = text.replace("\ufffd", "")
        return self.refusal.startswith(text) or _WHITESPACE.sub(" ", text) in self.sources




class StopAtLineBreak(StoppingCriteria):
    """Stops generation at the first line break that follows some text."""

    def __init__(self, line_break_ids: torch.Tensor, prompt_length: int) -> None:
        self.line_break_ids = line_break_ids
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: object) -> torch.Tensor:
        generated = input_ids[0, self.prompt_length :]
        is_break = torch.isin(generated, self.line_break_ids)
        done = bool(is_break[-1]) and not bool(is_break.all())
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool)


class StopWhenSet(StoppingCriteria):
    """Stops generation once ``event`` is set: the reader of the reply has gone (a closed stream, a client that
    left), so no more of it is computed for nobody."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: object) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool)
