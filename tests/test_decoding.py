"""Decoding held to a span of the sources or the refusal, and an output layer that scores only the tokens allowed."""

import torch

from rag.models.local.decoding import ConstrainableHead, SpanConstraint, constrainable_head


class CharTokenizer:
    """One token per character (id = code point): enough to exercise text-level span matching."""

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(int(i)) for i in ids if int(i) != END)

    def batch_decode(self, batches):
        return [self.decode(ids) for ids in batches]


END = 0


def allowed_after(constraint, reply: str) -> set[str]:
    prompt = [ord(c) for c in "PROMPT"]
    ids = torch.tensor(prompt + [ord(c) for c in reply])
    return {"<end>" if i == END else chr(i) for i in constraint(0, ids)}


def test_the_span_constraint_allows_only_continuations_of_a_source_or_the_refusal():
    vocabulary = [END] + [ord(c) for c in set("Rhine rises in the Alps. I don't know")]
    constraint = SpanConstraint(
        CharTokenizer(), vocabulary, ("The Rhine rises in the Alps.",), "I don't know", [END], len("PROMPT")
    )
    assert allowed_after(constraint, "Rhi") == {"n", "<end>"}
    assert allowed_after(constraint, "in the A") == {"l", "<end>"}
    assert "R" not in allowed_after(constraint, "the ")  # case matters: "the Alps" is there, "the Rhine" is not
    assert "I" in allowed_after(constraint, "") and "<end>" not in allowed_after(constraint, "")
    assert allowed_after(constraint, "I don") == {"'", "<end>"}
    assert allowed_after(constraint, "Rhine sets") == {"<end>"}  # left the source: it can only stop


def test_the_constrainable_head_scores_only_allowed_tokens_and_exactly():
    linear = torch.nn.Linear(4, 10, bias=False)
    head = ConstrainableHead(linear)
    hidden = torch.randn(1, 1, 4)
    assert torch.allclose(head(hidden), linear(hidden))
    head.allowed = torch.tensor([2, 7])
    logits = head(hidden)
    assert torch.allclose(logits[..., [2, 7]], linear(hidden)[..., [2, 7]])
    assert torch.isinf(logits[..., [0, 1, 3, 4, 5, 6, 8, 9]]).all()


class OneHeadModel(torch.nn.Module):
    def __init__(self, head: torch.nn.Module) -> None:
        super().__init__()
        self.head = head

    def get_output_embeddings(self):
        return self.head

    def set_output_embeddings(self, head):
        self.head = head


def test_only_a_plain_linear_output_layer_is_made_constrainable():
    plain = OneHeadModel(torch.nn.Linear(4, 10))
    assert constrainable_head(plain) is plain.head
    quantized = OneHeadModel(torch.ao.nn.quantized.dynamic.Linear(4, 10))
    before = quantized.head
    assert constrainable_head(quantized) is None and quantized.head is before


def test_the_int8_engines_signals_read_the_refusal_at_the_first_step_and_skip_end_tokens():
    import math

    import numpy as np

    from rag.models.local.ctranslate2_generator import CTranslate2Generator

    engine = object.__new__(CTranslate2Generator)  # only the bookkeeping: no model
    engine._refusal_id, engine._end_ids, engine._line_break_ids = 3, [0], {1}
    logits = np.full((3, 5), -1e9, dtype=np.float32)
    logits[0, [2, 3]] = 0.0  # step 1: "2" or the refusal's first token, evenly
    logits[1, 4] = 0.0  # step 2: "4" for sure
    logits[2, 0] = 0.0  # step 3: the end
    signals = engine._signals(logits, [2, 4, 0])
    assert math.isclose(signals.refusal_prob, 0.5, abs_tol=1e-6) and signals.tokens == 2
    assert math.isclose(signals.min_logprob, math.log(0.5), abs_tol=1e-6)
    assert math.isclose(signals.mean_logprob, math.log(0.5) / 2, abs_tol=1e-6)
