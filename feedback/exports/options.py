"""What to export and how: one validated, documented dataclass shared by the command, the API, the pages and
(later) the training jobs, so "the preference dataset" has a single definition."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import date

# The key becomes a JSON key lookup: letters, digits, - and _ only, and no "__" that could chain lookups.
SEGMENT = re.compile(r"^(?!.*__)[A-Za-z0-9][A-Za-z0-9_-]*=.+$")
KINDS = ("pairs", "kto", "labels", "rankings", "demonstrations")
FORMATS = ("hf", "parquet", "jsonl", "csv")
AGGREGATIONS = ("majority", "dawid_skene")


@dataclass(frozen=True)
class ExportOptions:
    kind: str = "pairs"
    """pairs (TRL prompt/chosen/rejected), kto (prompt/completion/label), labels (one row per label), rankings,
    demonstrations (SFT messages)."""
    format: str = "hf"
    """hf (save_to_disk DatasetDict), parquet, jsonl or csv; one file per split except hf."""
    style: str = "standard"
    """pairs and kto: standard (text) or conversational (message lists)."""
    aggregation: str = "majority"
    """majority, or dawid_skene (crowd-kit): annotators weighted by how reliable they prove."""
    include_ties: bool = False
    """Keep comparisons whose outcome is a tie (their `outcome` column says so; in pairs, response a is `chosen`);
    otherwise they are left out."""
    include_both_bad: bool = False
    """Keep comparisons whose outcome is "both bad"; otherwise they are left out."""
    min_agreement: float = 0.0
    """Share of a comparison's votes that agree with its outcome (Dawid–Skene: the outcome's posterior)."""
    min_labels: int = 1
    """Leave out comparisons with fewer labels than this."""
    min_gold_accuracy: float | None = None
    """Leave out annotators whose accuracy on gold items is below this (those with no gold answers stay)."""
    since: date | None = None
    """Only labels made on or after this day."""
    until: date | None = None
    """Only labels made on or before this day."""
    segment: str = ""
    """key=value: only labels from annotators with this segment attribute; adds a `segment` column."""
    models: tuple[str, ...] = ()
    """Only comparisons whose responses all come from these models."""
    sources: tuple[str, ...] = ()
    """Label sources: "annotators" (this project's people) and/or imported source names. Empty: all."""
    test_fraction: float = 0.1
    """Share of prompts in the test split; a prompt's rows are never in both splits."""
    seed: int = 0
    """Changes which prompts land in test, deterministically."""
    chunk_size: int = 5000
    """Comparisons read from the database at a time: bounds memory on big projects, never changes the output."""
    exclude: tuple[str, ...] = field(default=())
    """Usernames to leave out (on top of members a manager excluded)."""

    def __post_init__(self) -> None:
        checks = [
            (self.kind in KINDS, f"kind must be one of {', '.join(KINDS)}"),
            (self.format in FORMATS, f"format must be one of {', '.join(FORMATS)}"),
            (self.style in ("standard", "conversational"), "style must be standard or conversational"),
            (self.aggregation in AGGREGATIONS, f"aggregation must be one of {', '.join(AGGREGATIONS)}"),
            (0 <= self.min_agreement <= 1, "min_agreement must be between 0 and 1"),
            (self.min_labels >= 1, "min_labels must be at least 1"),
            (self.min_gold_accuracy is None or 0 <= self.min_gold_accuracy <= 1, "min_gold_accuracy must be 0–1"),
            (0 <= self.test_fraction < 1, "test_fraction must be at least 0 and below 1"),
            (not self.segment or SEGMENT.match(self.segment), "segment is key=value, e.g. expertise=expert"),
            (self.since is None or self.until is None or self.since <= self.until, "since must not be after until"),
            (self.chunk_size >= 1, "chunk_size must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def as_dict(self) -> dict:
        data = asdict(self)
        for key in ("since", "until"):
            data[key] = data[key].isoformat() if data[key] else None
        data["models"], data["sources"], data["exclude"] = list(self.models), list(self.sources), list(self.exclude)
        data.pop("chunk_size")
        return data
