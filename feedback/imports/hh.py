"""Anthropic HH-RLHF transcripts: each of `chosen` and `rejected` is a whole dialogue
"\\n\\nHuman: …\\n\\nAssistant: …". The shared prefix is the prompt; the two last assistant turns are the pair."""

from __future__ import annotations

import re

from .errors import RowProblem

_TURN = re.compile(r"\n\n(Human|Assistant):")
_ROLES = {"Human": "user", "Assistant": "assistant"}
_SPEAKERS = {"user": "Human", "assistant": "Assistant", "system": "System"}


def looks_like_transcript(text: object) -> bool:
    return isinstance(text, str) and text.lstrip(" ").startswith(("\n\nHuman:", "Human:"))


def parse_transcript(text: str, field: str) -> list[dict]:
    """Splits one transcript into chat messages; raises RowProblem naming `field` when it does not parse.

    Consecutive turns of one speaker (the public data has two 'Assistant:' turns in a row) become one turn,
    their texts joined by a blank line: the messages then alternate user/assistant, as chat templates demand.
    The final assistant turn may be empty: in a preference pair an empty answer is a real outcome."""
    body = text if text.startswith("\n\n") else "\n\n" + text.lstrip(" ")
    parts = _TURN.split(body)
    if parts[0].strip():
        raise RowProblem(field, "transcript has text before the first 'Human:' turn")
    messages: list[dict] = []
    for speaker, content in zip(parts[1::2], parts[2::2], strict=True):
        role, content = _ROLES[speaker], content.strip()
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"] = "\n\n".join(c for c in (messages[-1]["content"], content) if c)
        else:
            messages.append({"role": role, "content": content})
    if not messages:
        raise RowProblem(field, "transcript has no 'Human:' or 'Assistant:' turns")
    if messages[0]["role"] != "user":
        raise RowProblem(field, "transcript starts with an 'Assistant:' turn")
    if messages[-1]["role"] != "assistant":
        raise RowProblem(field, "transcript does not end with an 'Assistant:' turn")
    for i, m in enumerate(messages[:-1]):
        if not m["content"]:
            raise RowProblem(field, f"turn {i + 1} is empty")
    return messages


def first_difference(a: list[dict], b: list[dict]) -> int:
    """The 1-based number of the first message where two conversations differ."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i + 1
    return min(len(a), len(b)) + 1


def split_pair(chosen: str, rejected: str) -> tuple[list[dict], str, str]:
    """Returns (prompt messages, chosen reply, rejected reply)."""
    c = parse_transcript(chosen, "chosen")
    r = parse_transcript(rejected, "rejected")
    if c[:-1] != r[:-1]:
        n = first_difference(c[:-1], r[:-1])
        speaker = _SPEAKERS[(c if n <= len(c) else r)[n - 1]["role"]]
        raise RowProblem(
            "rejected",
            f"chosen and rejected transcripts diverge before their last turn (they first differ at turn {n}, "
            f"{speaker})",
        )
    return c[:-1], c[-1]["content"], r[-1]["content"]
