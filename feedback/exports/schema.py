"""Column types per kind, fixed up front so every split, every format and every re-run agree (an empty split
still has its columns)."""

from __future__ import annotations

import pyarrow as pa

from .options import ExportOptions

MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))


def schema_for(options: ExportOptions) -> pa.Schema:
    text = pa.string() if options.style == "standard" else MESSAGES
    kinds = {
        "pairs": [
            ("prompt", text),
            ("chosen", text),
            ("rejected", text),
            ("comparison_id", pa.int64()),
            ("prompt_id", pa.int64()),
            ("chosen_model", pa.string()),
            ("rejected_model", pa.string()),
            ("chosen_response_id", pa.int64()),
            ("rejected_response_id", pa.int64()),
            ("num_labels", pa.int32()),
            ("agreement", pa.float64()),
            ("strength", pa.float64()),
            ("outcome", pa.string()),
        ],
        "kto": [
            ("prompt", text),
            ("completion", text),
            ("label", pa.bool_()),
            ("comparison_id", pa.int64()),
            ("prompt_id", pa.int64()),
            ("model", pa.string()),
            ("num_labels", pa.int32()),
            ("agreement", pa.float64()),
        ],
        "labels": [
            ("label_id", pa.int64()),
            ("comparison_id", pa.int64()),
            ("prompt_id", pa.int64()),
            ("kind", pa.string()),
            ("annotator", pa.string()),
            ("source", pa.string()),
            ("choice", pa.string()),
            ("ranking", pa.string()),
            ("strength", pa.int32()),
            ("rationale", pa.string()),
            ("shown_left_response_id", pa.int64()),
            ("time_spent_ms", pa.int64()),
            ("created_at", pa.string()),
        ],
        "rankings": [
            ("comparison_id", pa.int64()),
            ("prompt_id", pa.int64()),
            ("prompt", MESSAGES),
            ("completions", pa.list_(pa.string())),
            ("models", pa.list_(pa.string())),
            ("ranks", pa.list_(pa.int32())),
            ("annotator", pa.string()),
            ("source", pa.string()),
        ],
        "demonstrations": [
            ("messages", MESSAGES),
            ("demonstration_id", pa.int64()),
            ("prompt_id", pa.int64()),
            ("based_on_response_id", pa.int64()),
            ("author", pa.string()),
            ("created_at", pa.string()),
        ],
    }
    fields = kinds[options.kind]
    if options.segment and options.kind in ("pairs", "kto", "labels"):
        fields = [*fields, ("segment", pa.string())]
    return pa.schema(fields)
