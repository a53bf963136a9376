"""Focusing passages: each chunk narrowed to whole sentences around its best one, offsets exact, within budget."""

from rag.answering.passages import focus_passages
from rag.types import Chunk, Hit

TEXT = ("Filler about weather today. More filler on sports. The Rhine rises in the Swiss Alps. "
        "It flows north to the sea. Unrelated closing words here.")


def test_each_passage_keeps_the_best_sentence_and_its_neighbours_within_the_budget(fake_embedder):
    hit = Hit(Chunk("c0", "d", "rivers.txt", "Rivers", 0, 100, 100 + len(TEXT), TEXT), 1.0, 0.5)
    [focused] = focus_passages("Where does the Rhine rise?", [hit], fake_embedder, budget_tokens=14)
    chunk = focused.chunk
    assert "The Rhine rises in the Swiss Alps." in chunk.text
    assert fake_embedder.count_tokens(chunk.text) <= 14
    assert TEXT[chunk.start - 100 : chunk.end - 100] == chunk.text
    assert chunk.id == "c0" and focused.score == hit.score


def test_a_budget_larger_than_the_chunk_keeps_it_whole(fake_embedder):
    hit = Hit(Chunk("c0", "d", "rivers.txt", "Rivers", 0, 0, len(TEXT), TEXT), 1.0, 0.5)
    [focused] = focus_passages("Where does the Rhine rise?", [hit], fake_embedder, budget_tokens=500)
    assert focused == hit
