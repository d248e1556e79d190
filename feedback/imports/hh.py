"""Anthropic HH-RLHF transcripts: each of `chosen` and `rejected` is a whole dialogue
"\\n\\nHuman: …\\n\\nAssistant: …". The shared prefix is the prompt; the two last assistant turns are the pair."""

from __future__ import annotations

import re

from .errors import RowProblem

_TURN = re.compile(r"\n\n(Human|Assistant):")
_ROLES = {"Human": "user", "Assistant": "assistant"}


def looks_like_transcript(text: object) -> bool:
    return isinstance(text, str) and text.lstrip(" ").startswith(("\n\nHuman:", "Human:"))


def parse_transcript(text: str, field: str) -> list[dict]:
    """Splits one transcript into chat messages; raises RowProblem naming `field` when it does not parse."""
    body = text if text.startswith("\n\n") else "\n\n" + text.lstrip(" ")
    parts = _TURN.split(body)
    if parts[0].strip():
        raise RowProblem(field, "transcript has text before the first 'Human:' turn")
    messages = []
    for speaker, content in zip(parts[1::2], parts[2::2], strict=True):
        messages.append({"role": _ROLES[speaker], "content": content.strip()})
    if not messages:
        raise RowProblem(field, "transcript has no 'Human:' or 'Assistant:' turns")
    for i, m in enumerate(messages):
        expected = "user" if i % 2 == 0 else "assistant"
        if m["role"] != expected:
            raise RowProblem(field, f"turn {i + 1} should be {'Human' if expected == 'user' else 'Assistant'}")
    if messages[-1]["role"] != "assistant":
        raise RowProblem(field, "transcript does not end with an 'Assistant:' turn")
    for i, m in enumerate(messages[:-1]):
        if not m["content"]:
            raise RowProblem(field, f"turn {i + 1} is empty")
    if not messages[-1]["content"]:
        raise RowProblem(field, "the final 'Assistant:' turn is empty")
    return messages


def split_pair(chosen: str, rejected: str) -> tuple[list[dict], str, str]:
    """Returns (prompt messages, chosen reply, rejected reply)."""
    c = parse_transcript(chosen, "chosen")
    r = parse_transcript(rejected, "rejected")
    if c[:-1] != r[:-1]:
        raise RowProblem("rejected", "chosen and rejected transcripts diverge before their last turn")
    return c[:-1], c[-1]["content"], r[-1]["content"]
