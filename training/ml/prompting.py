"""The seed's prompting methods (zero-shot, few-shot, chain of thought) as chat-message builders.

They return chat messages rather than a flat string so that every model formats them with its own chat template;
a few-shot example becomes earlier user/assistant turns, which instruction-tuned models follow far better than
examples pasted into one long user message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

TEMPLATES = ("zero_shot", "few_shot", "cot")

COT_INSTRUCTION = (
    "Think step by step before you answer: write your reasoning first, then end with a line that starts with "
    '"Answer:" followed by the final answer.'
)
"""Asks for the marker that `split_reasoning` looks for, so reasoning and answer can be shown apart."""

_TURN_ROLES = ("user", "assistant")


@dataclass(frozen=True)
class Example:
    """One solved example for few-shot prompting: a conversation that ends with the user, and the reply to it."""

    prompt: list[dict]
    """Chat messages (user/assistant turns only); the last one is the user's."""
    response: str
    """The assistant's reply that the model should imitate."""

    def __post_init__(self) -> None:
        # A system message in the middle of a conversation is rejected by many chat templates.
        _check_turns(self.prompt, "Example.prompt")


def build_messages(
    messages: list[dict],
    *,
    template: str = "zero_shot",
    examples: Sequence[Example] = (),
    system: str = "",
) -> list[dict]:
    """Returns the chat messages to send for `messages` (a conversation ending with the user) under `template`.

    A leading system message of the conversation is merged with `system` (and, for `cot`, the step-by-step
    instruction) into one system message that stays first, so few-shot examples never come before it.
    The input lists and dicts are not modified.
    """
    if template not in TEMPLATES:
        raise ValueError(f"Unknown prompt template {template!r}: choose one of {', '.join(TEMPLATES)}")
    conversation = [dict(m) for m in messages]
    system_parts = [system.strip()] if system.strip() else []
    while conversation and conversation[0].get("role") == "system":
        content = str(conversation.pop(0).get("content", "")).strip()
        if content:
            system_parts.append(content)
    _check_turns(conversation, "messages")

    shots: list[dict] = []
    if template == "few_shot":
        if not examples:
            raise ValueError("The few_shot template needs at least one example")
        for example in examples:
            shots.extend(dict(m) for m in example.prompt)
            shots.append({"role": "assistant", "content": example.response})
    elif template == "cot":
        system_parts.append(COT_INSTRUCTION)

    head = [{"role": "system", "content": "\n\n".join(system_parts)}] if system_parts else []
    return head + shots + conversation


def _check_turns(messages: Sequence[dict], name: str) -> None:
    if not messages:
        raise ValueError(f"{name} is empty: it needs at least one user message")
    for i, message in enumerate(messages):
        if message.get("role") not in _TURN_ROLES:
            raise ValueError(
                f"{name}[{i}] has role {message.get('role')!r}: only a leading system message, then user and "
                "assistant turns, are allowed"
            )
    if messages[-1]["role"] != "user":
        raise ValueError(f"{name} must end with a user message, the one the model answers")


# A line that starts with "Answer:" or "Final answer:", optionally in markdown bold or italics ("**Answer:** 42",
# "**Final answer**: 42", "__Answer:__ 42").
_MARKER = re.compile(
    r"^[ \t]*(?P<open>\*\*|__|\*|_)?[ \t]*(?:final[ \t]+)?answer[ \t]*(?P<close1>\*\*|__|\*|_)?[ \t]*:"
    r"[ \t]*(?P<close2>\*\*|__|\*|_)?",
    re.IGNORECASE | re.MULTILINE,
)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


def split_reasoning(text: str) -> tuple[str, str]:
    """Splits a chain-of-thought output into (reasoning, answer), both stripped.

    The split is at the last line that starts with "Answer:" or "Final answer:" (any case, bold allowed): the
    answer is the rest of that line and anything after it. Small models often forget the marker; then the last
    paragraph is taken as the answer and the earlier ones as the reasoning, because that is where an answer
    usually sits, and a single paragraph is all answer (reasoning ""), so nothing is ever lost.
    """
    markers = list(_MARKER.finditer(text))
    if markers:
        last = markers[-1]
        reasoning = text[: last.start()].strip()
        answer = text[last.end() :].strip()
        opener = last.group("open")
        # "**Answer: 42**": the bold opened before the marker closes after the answer.
        if opener and not (last.group("close1") or last.group("close2")) and answer.endswith(opener):
            answer = answer[: -len(opener)].rstrip()
        return reasoning, answer
    paragraphs = [p.strip() for p in _PARAGRAPH_BREAK.split(text.strip()) if p.strip()]
    if len(paragraphs) <= 1:
        return "", text.strip()
    return "\n\n".join(paragraphs[:-1]), paragraphs[-1]
