"""Policy examples from the job folder's files: which rows count, and how long ones are cut (the prompt's start
goes, the answer stays whole where it can)."""

from tests.training.policy.helpers import demo_rows, polite_rows, write_data, write_demonstrations
from tests.training.reward.helpers import TEXTS, pair_row
from tests.training.tiny import tiny_tokenizer
from training.policy.data import (
    fit,
    preferences,
    prompt_and_answer_ids,
    sft_examples,
    tokenize_preferences,
    tokenize_sft,
)

TOKENIZER = tiny_tokenizer(TEXTS * 5)


def test_fit_cuts_the_prompt_from_its_start_and_keeps_the_whole_answer():
    prompt = list(range(100))
    kept, budget, cut = fit(prompt, [20], 64)
    assert cut and budget == 20 and kept == prompt[-44:]
    assert fit(prompt[:10], [20, 30], 64) == (prompt[:10], 30, False)


def test_an_answer_too_long_to_fit_whole_keeps_a_quarter_of_the_tokens_for_the_prompt():
    kept, budget, cut = fit(list(range(100)), [200], 64)
    assert cut and len(kept) == 16 and kept == list(range(84, 100)) and budget == 48
    assert fit([1, 2], [200], 64)[:2] == ([1, 2], 62)  # a short prompt stays whole


def test_sft_rows_mark_the_answer_and_its_end_of_turn_and_long_prompts_lose_their_start():
    from training.policy.data import Example

    long_prompt = [{"role": "user", "content": "What colour is the sky? " * 30}]
    examples = [
        Example([{"role": "user", "content": "Where is Paris?"}], "it is in France"),
        Example(long_prompt, "it is blue"),
    ]
    rows, truncated = tokenize_sft(examples, TOKENIZER, 48)
    assert truncated == 1
    for row, example in zip(rows, examples, strict=True):
        _, answer = prompt_and_answer_ids(TOKENIZER, example.prompt, example.answer)
        n = sum(row["completion_mask"])
        assert row["input_ids"][-n:] == answer and len(row["input_ids"]) <= 48  # the whole answer, at the end
        assert row["completion_mask"] == [0] * (len(row["input_ids"]) - n) + [1] * n
        assert TOKENIZER.eos_token_id in row["input_ids"][-n:]  # the model learns to stop


def test_preference_rows_share_one_prompt_cut_to_fit_the_longer_answer():
    pair = preferences_from([pair_row(1, "Why? " * 40, "Sure, happy to help: it is blue. Thank you!", "No.")])
    rows, truncated = tokenize_preferences(pair, TOKENIZER, 40)
    assert truncated == 1
    row = rows[0]
    assert len(row["prompt_ids"]) + len(row["chosen_ids"]) == 40  # the longer answer fills the rest exactly
    assert row["rejected_ids"] == prompt_and_answer_ids(TOKENIZER, pair[0].prompt, "No.")[1]  # shorter: whole


def preferences_from(rows):
    from training.policy.data import Preference
    from training.reward.data import prompt_messages
    from training.reward.files import text_of

    return [Preference(prompt_messages(r["prompt"]), text_of(r["chosen"]), text_of(r["rejected"])) for r in rows]


def test_pairs_without_a_preference_are_skipped_for_dpo_and_for_sfts_chosen_answers(tmp_path):
    rows = polite_rows(4)
    rows[1]["outcome"], rows[2]["outcome"] = "tie", "both_bad"
    data = write_data(tmp_path, rows, [])
    write_demonstrations(data, demo_rows(3), demo_rows(1, start=50))
    pairs, counts = preferences(data, "train")
    assert [p.prompt for p in pairs] == [rows[0]["prompt"], rows[3]["prompt"]] and counts.skipped == 2

    only_demos, counts = sft_examples(data, "train", include_chosen=False)
    assert len(only_demos) == 3 and counts.by_source == {"demonstration": 3}
    both, counts = sft_examples(data, "train", include_chosen=True)
    assert counts.by_source == {"demonstration": 3, "chosen": 2} and counts.skipped == 2
    assert both[-1].answer == rows[3]["chosen"][0]["content"] and both[-1].source == "chosen"
    first, counts = sft_examples(data, "train", include_chosen=True, max_examples=4)
    assert len(first) == 4 and counts.examples == 4
    assert sft_examples(data, "test", include_chosen=False)[0][0].prompt == demo_rows(1, start=50)[0]["messages"][:-1]
