"""The seed's prompting methods as chat messages, and splitting chain-of-thought answers."""

import pytest

from training.ml.prompting import COT_INSTRUCTION, TEMPLATES, Example, build_messages, split_reasoning

CAPITALS = [
    Example(prompt=[{"role": "user", "content": "Capital of France?"}], response="Paris"),
    Example(prompt=[{"role": "user", "content": "Capital of Japan?"}], response="Tokyo"),
]
QUESTION = [{"role": "user", "content": "Capital of Korea?"}]


def test_zero_shot_returns_the_conversation_after_the_system_message():
    assert build_messages(QUESTION) == QUESTION
    assert build_messages(QUESTION, system="Be brief.") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of Korea?"},
    ]


def test_few_shot_puts_each_example_as_earlier_turns():
    messages = build_messages(QUESTION, template="few_shot", examples=CAPITALS, system="Answer with a city.")

    assert messages == [
        {"role": "system", "content": "Answer with a city."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris"},
        {"role": "user", "content": "Capital of Japan?"},
        {"role": "assistant", "content": "Tokyo"},
        {"role": "user", "content": "Capital of Korea?"},
    ]


def test_few_shot_keeps_multi_turn_examples_and_the_conversations_own_system_message_first():
    example = Example(
        prompt=[
            {"role": "user", "content": "Name a fruit."},
            {"role": "assistant", "content": "Apple."},
            {"role": "user", "content": "Another?"},
        ],
        response="Pear.",
    )
    conversation = [{"role": "system", "content": "Short answers."}, {"role": "user", "content": "One more?"}]

    messages = build_messages(conversation, template="few_shot", examples=[example])

    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[0]["content"] == "Short answers."
    assert messages[4]["content"] == "Pear."
    assert conversation[0] == {"role": "system", "content": "Short answers."}  # the input is left alone


def test_few_shot_without_examples_is_refused():
    with pytest.raises(ValueError, match="at least one example"):
        build_messages(QUESTION, template="few_shot")


def test_cot_asks_for_steps_and_an_answer_line_merged_into_the_system_message():
    messages = build_messages(QUESTION, template="cot", system="You are a geography tutor.")

    assert messages[1:] == QUESTION
    system = messages[0]["content"]
    assert system.startswith("You are a geography tutor.")
    assert "step by step" in system and '"Answer:"' in system
    assert build_messages(QUESTION, template="cot")[0] == {"role": "system", "content": COT_INSTRUCTION}


def test_unknown_template_lists_the_known_ones():
    with pytest.raises(ValueError) as excinfo:
        build_messages(QUESTION, template="tree_of_thought")
    assert all(name in str(excinfo.value) for name in TEMPLATES)


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [{"role": "assistant", "content": "Hi"}],
        [{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}],
    ],
    ids=["empty", "ends-with-assistant", "unknown-role"],
)
def test_conversation_must_end_with_a_user_turn(messages):
    with pytest.raises(ValueError):
        build_messages(messages)


def test_example_with_a_system_message_is_refused():
    with pytest.raises(ValueError, match="Example.prompt"):
        Example(prompt=[{"role": "system", "content": "x"}, {"role": "user", "content": "y"}], response="z")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3 apples minus 1 is 2.\nAnswer: 2", ("3 apples minus 1 is 2.", "2")),
        ("Think.\nanswer: 2 apples\nbecause I ate one", ("Think.", "2 apples\nbecause I ate one")),
        ("First, 2+2.\nFinal Answer: 4", ("First, 2+2.", "4")),
        ("Step.\n**Answer:** Paris", ("Step.", "Paris")),
        ("Step.\n**Final answer**: Paris", ("Step.", "Paris")),
        ("Step.\n**Answer: Paris**", ("Step.", "Paris")),
        ("Answer: maybe 3.\nWait, recount.\nAnswer: 2", ("Answer: maybe 3.\nWait, recount.", "2")),
        ("The answer is in the next line.\nAnswer:\n42", ("The answer is in the next line.", "42")),
        (
            "Let me think.\n\nWe start with 3.\n\nSo 2 are left.",
            ("Let me think.\n\nWe start with 3.", "So 2 are left."),
        ),
        ("  Just 2.  \n", ("", "Just 2.")),
        ("", ("", "")),
    ],
    ids=[
        "marker",
        "lowercase-and-lines-after",
        "final-answer",
        "bold-marker",
        "bold-word",
        "bold-around-answer",
        "last-marker-wins",
        "answer-on-next-line",
        "no-marker-last-paragraph",
        "no-marker-one-paragraph",
        "empty",
    ],
)
def test_split_reasoning(text, expected):
    assert split_reasoning(text) == expected


def test_split_reasoning_ignores_answer_in_the_middle_of_a_line():
    assert split_reasoning("The answer: it depends.") == ("", "The answer: it depends.")
