"""Exported pair rows become training pairs: ties, weights, margins, and truncation that keeps the answer."""

import pytest

from tests.training.reward.helpers import pair_row
from tests.training.tiny import tiny_tokenizer
from training.reward.data import chat_text, pairs_from_rows, plain_text, tokenize_pairs
from training.train_configs import DataConfig


def test_ties_are_left_out_by_default():
    rows = [pair_row(1, "q", "a", "b"), pair_row(2, "q", "c", "d", outcome="tie")]
    pairs, counts = pairs_from_rows(rows, DataConfig())
    assert [(p.chosen, p.rejected) for p in pairs] == [("a", "b")]
    assert counts.ties_excluded == 1 and counts.pairs == 1


def test_a_tie_as_equal_becomes_the_pair_both_ways_at_half_weight():
    rows = [pair_row(2, "q", "c", "d", outcome="tie", agreement=0.8, strength=3)]
    pairs, counts = pairs_from_rows(rows, DataConfig(ties="equal", weighting="agreement", margin=True))
    assert [(p.chosen, p.rejected, p.weight, p.margin, p.tie) for p in pairs] == [
        ("c", "d", 0.4, 0.0, True),
        ("d", "c", 0.4, 0.0, True),
    ]
    assert counts.ties_as_equal == 1


def test_weights_follow_agreement_and_margins_follow_strength_only_when_asked():
    rows = [pair_row(1, "q", "a", "b", agreement=0.75, strength=2), pair_row(2, "q", "c", "d", agreement=None)]
    plain, _ = pairs_from_rows(rows, DataConfig())
    assert [(p.weight, p.margin) for p in plain] == [(1.0, 0.0), (1.0, 0.0)]
    weighted, _ = pairs_from_rows(rows, DataConfig(weighting="agreement", margin=True))
    assert [(p.weight, p.margin) for p in weighted] == [(0.75, 2.0), (1.0, 0.0)]  # null strength: no margin


def test_max_pairs_keeps_the_first_rows():
    rows = [pair_row(i, "q", f"a{i}", "b") for i in range(5)]
    pairs, counts = pairs_from_rows(rows, DataConfig(max_pairs=2))
    assert [p.chosen for p in pairs] == ["a0", "a1"] and counts.rows == 2


@pytest.mark.model
def test_long_conversations_keep_their_end_and_no_pair_is_dropped():
    tokenizer = tiny_tokenizer(["the answer is here", "a long question " * 10])
    long_prompt = "a long question " * 40
    rows = [pair_row(1, long_prompt, "the answer is here", "no"), pair_row(2, "short?", "yes", "no")]
    pairs, _ = pairs_from_rows(rows, DataConfig())
    out, truncated = tokenize_pairs(pairs, tokenizer, 32, margins=False)
    assert len(out) == 2 and truncated == 1  # nothing dropped, one pair cut
    assert all(len(r["chosen_ids"]) <= 32 and len(r["rejected_ids"]) <= 32 for r in out)
    full = tokenizer(chat_text(tokenizer, pairs[0].prompt, pairs[0].chosen), add_special_tokens=False)["input_ids"]
    assert len(full) > 32 and out[0]["chosen_ids"] == full[-32:]  # the end survives, the start is cut
    kept = "".join(tokenizer.convert_ids_to_tokens(out[0]["chosen_ids"]))
    assert "theĠanswerĠisĠhere<|im_end|>" in kept and "assistant" in kept
    assert "margin" not in out[0] and out[0]["weight"] == 1.0


def test_plain_text_is_prompt_blank_line_answer():
    assert plain_text([{"role": "user", "content": "Hi?"}], "Hello.") == "Hi?\n\nHello."
