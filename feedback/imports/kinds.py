"""What a file holds, told from its columns, and the parsing of one row of each kind into a plain record.

Kinds (../shared/DESIGN.md): prompts; responses (one per row, or a list per prompt); preference pairs (TRL
standard or conversational, HH-RLHF transcripts); judged pairs (Chatbot Arena, AlpacaEval annotations).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from feedback.models import Label

from .errors import RowProblem
from .hh import first_difference, looks_like_transcript, split_pair
from .readers import CsvRow

ROLES = {"system", "user", "assistant"}
SOURCE_MAX = Label._meta.get_field("source").max_length
"""The longest label source a column, a file name or --source may give."""
TEXT_OR_LIST = {"prompt", "chosen", "rejected"}
"""Fields that hold text or a list of messages: a CSV cell there is a list only when it parses as a JSON list."""


@dataclass(frozen=True)
class Reply:
    text: str
    model: str = ""
    generation: dict = field(default_factory=dict)


@dataclass
class PromptRecord:
    messages: list[dict]
    metadata: dict


@dataclass
class ResponsesRecord:
    messages: list[dict]
    metadata: dict
    replies: list[Reply]


@dataclass
class JudgedPairRecord:
    """Two replies and an outcome: "first" or "second" is better, "tie", or "both_bad"."""

    messages: list[dict]
    metadata: dict
    first: Reply
    second: Reply
    outcome: str
    source: str | None


Record = PromptRecord | ResponsesRecord | JudgedPairRecord

KINDS = {
    "arena": "judged pairs, Chatbot Arena style (model_a, model_b, winner)",
    "alpaca_eval": "judged pairs, AlpacaEval style (instruction, output_1, output_2, preference)",
    "preferences": "preference pairs (chosen, rejected)",
    "responses": "responses (prompt + response, or prompt + responses)",
    "prompts": "prompts (prompt or messages)",
}


def detect_kind(columns: list[str]) -> str | None:
    cols = set(columns)
    if {"model_a", "model_b", "winner"} <= cols:
        return "arena"
    if {"instruction", "output_1", "output_2", "preference"} <= cols:
        return "alpaca_eval"
    if {"chosen", "rejected"} <= cols:
        return "preferences"
    if cols & {"prompt", "messages"} and cols & {"response", "responses"}:
        return "responses"
    if cols & {"prompt", "messages"}:
        return "prompts"
    return None


# ---- field helpers -------------------------------------------------------------------------------------


def _present(row: dict, name: str) -> bool:
    """An empty CSV cell, a null and a missing key all mean "not given" for optional columns."""
    return row.get(name) not in (None, "")


def _require(row: dict, name: str) -> Any:
    if name not in row or row[name] is None:
        raise RowProblem(name, "missing")
    return row[name]


def _cell(row: dict, name: str) -> Any:
    """The field's value. Only a CSV cell is ever parsed as JSON (CSV has no lists or objects of its own); a
    string in JSONL, Parquet or an HF dataset is text, whatever it starts with ("[INST] …", "[0] …")."""
    value = row.get(name)
    if not isinstance(row, CsvRow) or not isinstance(value, str) or value.lstrip()[:1] not in ("[", "{"):
        return value
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError) as exc:
        if name in TEXT_OR_LIST:
            return value
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not JSON"
        raise RowProblem(name, f"malformed JSON in the cell ({reason})") from None
    if name in TEXT_OR_LIST and not isinstance(parsed, list):
        return value
    return parsed


_SURROGATE = re.compile("[\ud800-\udfff]")


def _storable(value: str, name: str) -> str:
    """PostgreSQL stores no NUL character in text or jsonb, and a lone surrogate is not Unicode at all: refused
    as a row problem on every database, so a file behaves the same everywhere and --skip-invalid can skip it."""
    if "\x00" in value:
        raise RowProblem(name, "contains a NUL character (\\u0000), which cannot be stored")
    # isascii() is a flag lookup: most text skips the search.
    if not value.isascii() and _SURROGATE.search(value):
        raise RowProblem(name, "contains an unpaired surrogate (\\ud800–\\udfff), which is not Unicode text")
    return value


def _json_value(value: Any, name: str) -> Any:
    """Checks what will be stored as JSON (metadata, generation settings): keys and text storable, numbers
    finite (jsonb has no NaN), nothing JSON cannot hold. Walks without recursion: the value may nest deeply."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            _storable(v, name)
        elif isinstance(v, dict):
            for k, item in v.items():
                if not isinstance(k, str):
                    raise RowProblem(name, f"has a key that is not text ({k!r})")
                _storable(k, name)
                stack.append(item)
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise RowProblem(name, "holds NaN or Infinity, which JSON cannot store")
        elif v is not None and not isinstance(v, bool | int):
            raise RowProblem(name, f"holds {_type_name(v)}, which JSON cannot store")
    return value


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise RowProblem(name, f"expected text, got {_type_name(value)}")
    if not value.strip():
        raise RowProblem(name, "empty text")
    return _storable(value, name)


def _answer(value: Any, name: str) -> str:
    """A judged answer: text, and an empty one is a real outcome (it lost), stored as "" and never served."""
    if not isinstance(value, str):
        raise RowProblem(name, f"expected text, got {_type_name(value)}")
    return _storable(value, name) if value.strip() else ""


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", bool: "true/false", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


def _got(value: Any) -> str:
    """What a list or object field got instead; JSON in a string is read only from CSV cells, so say so."""
    if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        return "text (JSON inside a string is read only from CSV cells; store the list or object itself)"
    return _type_name(value)


def _messages(value: Any, name: str, *, empty_reply: bool = False) -> list[dict]:
    """`empty_reply`: a judged conversation's final assistant turn may be empty (an answer that lost)."""
    if not isinstance(value, list) or not value:
        raise RowProblem(name, f"expected a non-empty list of messages, got {_got(value)}")
    out = []
    for i, m in enumerate(value, start=1):
        if not isinstance(m, dict):
            raise RowProblem(name, f"message {i} is not an object with role and content")
        role, content = m.get("role"), m.get("content")
        if not isinstance(role, str) or role not in ROLES:
            raise RowProblem(name, f"message {i} has role {role!r}; expected system, user or assistant")
        if isinstance(content, str) and not content.strip() and empty_reply and i == len(value) and role == "assistant":
            content = ""
        elif not isinstance(content, str) or not content.strip():
            raise RowProblem(name, f"message {i} has empty or missing content")
        out.append({"role": role, "content": _storable(content, name)})
    return out


def _prompt_messages(row: dict) -> list[dict]:
    """The prompt as chat messages, from `messages` or `prompt` (text or messages); ends with a user turn."""
    if _present(row, "messages"):
        name, msgs = "messages", _messages(_cell(row, "messages"), "messages")
    else:
        name = "prompt"
        _require(row, "prompt")
        value = _cell(row, "prompt")
        msgs = (
            _messages(value, "prompt")
            if isinstance(value, list)
            else [{"role": "user", "content": _text(value, "prompt")}]
        )
    if msgs[-1]["role"] != "user":
        raise RowProblem(name, "the last message of a prompt must be the user's")
    return msgs


def _metadata(row: dict) -> dict:
    value = _cell(row, "metadata")
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise RowProblem("metadata", f"expected an object, got {_got(value)}")
    return _json_value(value, "metadata")


def _model(row: dict, name: str) -> str:
    """A model name; a number ("7", 2024 from a spreadsheet or a numeric column) is a name too."""
    value = row.get(name)
    if value is None or value == "":
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        # 7.0 from a float column (pandas turns an integer column with gaps into floats) is model "7".
        value = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    if not isinstance(value, str):
        raise RowProblem(name, f"expected a model name, got {_type_name(value)}")
    if len(value) > 200:
        raise RowProblem(name, "model name longer than 200 characters")
    return _storable(value, name)


def _generation(value: Any, name: str) -> dict:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise RowProblem(name, f"expected an object of generation settings, got {_got(value)}")
    return _json_value(value, name)


def _diverge(first: str, second: str, a: list[dict], b: list[dict]) -> RowProblem:
    n = first_difference(a, b)
    return RowProblem(second, f"{first} and {second} diverge before their last turn (they first differ at message {n})")


def _last_assistant(conversation: list[dict], name: str) -> tuple[list[dict], str]:
    if conversation[-1]["role"] != "assistant":
        raise RowProblem(name, "the conversation does not end with an assistant turn")
    return conversation[:-1], conversation[-1]["content"]


def _distinct(first: Reply, second: Reply) -> None:
    if first.text == second.text and first.model == second.model:
        raise RowProblem(None, "the two responses are identical")


# ---- one parser per kind -------------------------------------------------------------------------------


def parse_prompts(row: dict, source: str | None) -> PromptRecord:
    return PromptRecord(_prompt_messages(row), _metadata(row))


def parse_responses(row: dict, source: str | None) -> ResponsesRecord:
    messages, metadata = _prompt_messages(row), _metadata(row)
    if not _present(row, "responses"):
        reply = Reply(
            _text(_require(row, "response"), "response"),
            _model(row, "model"),
            _generation(_cell(row, "generation"), "generation"),
        )
        return ResponsesRecord(messages, metadata, [reply])
    items = _cell(row, "responses")
    if not isinstance(items, list) or not items:
        raise RowProblem("responses", f"expected a non-empty list, got {_got(items)}")
    replies = []
    for i, item in enumerate(items, start=1):
        where = f"responses[{i}]"
        if isinstance(item, str):
            replies.append(Reply(_text(item, where), _model(row, "model")))
        elif isinstance(item, dict):
            text = item.get("response", item.get("text"))
            replies.append(
                Reply(
                    _text(text, f"{where}.response"),
                    _model(item, "model") if "model" in item else _model(row, "model"),
                    _generation(item.get("generation"), f"{where}.generation"),
                )
            )
        else:
            raise RowProblem(where, f"expected text or an object with 'response', got {_type_name(item)}")
    return ResponsesRecord(messages, metadata, replies)


def parse_preferences(row: dict, source: str | None) -> JudgedPairRecord:
    _require(row, "chosen")
    _require(row, "rejected")
    chosen, rejected = _cell(row, "chosen"), _cell(row, "rejected")
    metadata = _metadata(row)
    has_prompt = _present(row, "prompt")
    if not has_prompt and looks_like_transcript(chosen):
        if not isinstance(rejected, str):
            raise RowProblem("rejected", f"expected a transcript like 'chosen', got {_type_name(rejected)}")
        _storable(chosen, "chosen")
        _storable(rejected, "rejected")
        messages, c_text, r_text = split_pair(chosen, rejected)
    elif isinstance(chosen, list) or isinstance(rejected, list):
        c_conv = _messages(chosen, "chosen", empty_reply=True)
        r_conv = _messages(rejected, "rejected", empty_reply=True)
        if has_prompt:  # TRL conversational with an explicit prompt: chosen/rejected hold the reply turns
            messages = _prompt_messages(row)
            if len(c_conv) != 1 or len(r_conv) != 1:
                c_conv, r_conv = c_conv[-1:], r_conv[-1:]
            _, c_text = _last_assistant(c_conv, "chosen")
            _, r_text = _last_assistant(r_conv, "rejected")
        else:  # implicit prompt: the shared prefix of the two conversations
            messages, c_text = _last_assistant(c_conv, "chosen")
            r_prefix, r_text = _last_assistant(r_conv, "rejected")
            if messages != r_prefix:
                raise _diverge("chosen", "rejected", c_conv, r_conv)
            if not messages or messages[-1]["role"] != "user":
                raise RowProblem("chosen", "the conversation has no user turn before the reply")
    else:
        if not has_prompt:
            raise RowProblem("prompt", "missing (and chosen is not an HH-style 'Human:/Assistant:' transcript)")
        messages = _prompt_messages(row)
        c_text, r_text = _answer(chosen, "chosen"), _answer(rejected, "rejected")
    first = Reply(c_text, _model(row, "chosen_model"))
    second = Reply(r_text, _model(row, "rejected_model"))
    _distinct(first, second)
    return JudgedPairRecord(messages, metadata, first, second, "first", _row_source(row, source))


_ARENA_WINNER = {"model_a": "first", "model_b": "second", "tie": "tie", "tie (bothbad)": "both_bad"}


def parse_arena(row: dict, source: str | None) -> JudgedPairRecord:
    winner = _require(row, "winner")
    if not isinstance(winner, str) or winner not in _ARENA_WINNER:
        raise RowProblem("winner", f"{winner!r} is not one of model_a, model_b, tie, tie (bothbad)")
    model_a, model_b = _required_model(row, "model_a"), _required_model(row, "model_b")
    if _present(row, "conversation_a") or _present(row, "conversation_b"):
        _require(row, "conversation_a")
        _require(row, "conversation_b")
        conv_a = _messages(_cell(row, "conversation_a"), "conversation_a", empty_reply=True)
        conv_b = _messages(_cell(row, "conversation_b"), "conversation_b", empty_reply=True)
        messages, text_a = _last_assistant(conv_a, "conversation_a")
        prefix_b, text_b = _last_assistant(conv_b, "conversation_b")
        if messages != prefix_b:
            raise _diverge("conversation_a", "conversation_b", conv_a, conv_b)
        if not messages or messages[-1]["role"] != "user":
            raise RowProblem("conversation_a", "the conversation has no user turn before the reply")
    else:
        messages = _prompt_messages(row)
        text_a = _answer(_require(row, "response_a"), "response_a")
        text_b = _answer(_require(row, "response_b"), "response_b")
    first, second = Reply(text_a, model_a), Reply(text_b, model_b)
    _distinct(first, second)
    return JudgedPairRecord(messages, _metadata(row), first, second, _ARENA_WINNER[winner], _row_source(row, source))


def parse_alpaca_eval(row: dict, source: str | None) -> JudgedPairRecord:
    instruction = _text(_require(row, "instruction"), "instruction")
    extra = row.get("input")
    if isinstance(extra, str) and extra.strip():
        instruction = f"{instruction}\n\n{_storable(extra, 'input')}"
    pref = _require(row, "preference")
    if isinstance(pref, str):
        try:
            pref = float(pref)
        except ValueError:
            raise RowProblem("preference", f"{pref!r} is not 1, 2 or 1.5") from None
    if isinstance(pref, bool) or not isinstance(pref, int | float) or math.isnan(pref):
        raise RowProblem("preference", f"expected 1, 2 or 1.5, got {_type_name(pref)}")
    outcome = {1.0: "first", 2.0: "second", 1.5: "tie"}.get(float(pref))
    if outcome is None:
        raise RowProblem("preference", f"{pref} is not 1, 2 or 1.5")
    first = Reply(_answer(_require(row, "output_1"), "output_1"), _model(row, "generator_1"))
    second = Reply(_answer(_require(row, "output_2"), "output_2"), _model(row, "generator_2"))
    _distinct(first, second)
    annotator = row.get("annotator")
    if not _present(row, "source") and isinstance(annotator, str) and annotator.strip():
        src = _source_name(annotator, "annotator")
    else:
        src = _row_source(row, source)
    messages = [{"role": "user", "content": instruction}]
    return JudgedPairRecord(messages, _metadata(row), first, second, outcome, src)


def _required_model(row: dict, name: str) -> str:
    _require(row, name)
    model = _model(row, name)
    if not model.strip():
        raise RowProblem(name, "empty text")
    return model


def _source_name(value: Any, name: str) -> str:
    if not isinstance(value, str) or len(value) > SOURCE_MAX:
        raise RowProblem(name, f"expected a source name of at most {SOURCE_MAX} characters")
    return _storable(value, name)


def _row_source(row: dict, default: str | None) -> str | None:
    if not _present(row, "source"):
        return default
    return _source_name(row["source"], "source")


PARSERS = {
    "prompts": parse_prompts,
    "responses": parse_responses,
    "preferences": parse_preferences,
    "arena": parse_arena,
    "alpaca_eval": parse_alpaca_eval,
}
