"""Content hashes that make prompts and responses unique, and imports idempotent."""

import hashlib
import json


def canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def messages_hash(messages: list[dict]) -> str:
    return hashlib.sha256(canonical_json(messages).encode("utf-8")).hexdigest()


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def members_key(response_ids: list[int]) -> str:
    return ",".join(str(i) for i in sorted(response_ids))


def response_hash(text: str, reasoning: str = "") -> str:
    """A response is its answer and, for chain-of-thought generations, the reasoning before it: two answers
    alike in words but reached differently are two responses."""
    return text_hash(text) if not reasoning else text_hash(f"{reasoning}\x00{text}")
