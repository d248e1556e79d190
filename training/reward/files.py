"""The files a training job's prepare() writes into its folder, read back by the child (layout in
training.kinds.dataset)."""

from __future__ import annotations

import json
from pathlib import Path

PAIRS = "pairs"
LABELS = "labels"
ANNOTATORS = "annotators.json"


def _jsonl(path: Path) -> list[dict]:
    if not path.exists():  # an empty split is written as no file by some formats
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_pairs(data_dir: Path, split: str) -> list[dict]:
    """The exported pair rows of one split ("train" or "test"), in the export's stable order."""
    return _jsonl(Path(data_dir) / PAIRS / f"{split}.jsonl")


def load_labels(data_dir: Path) -> list[dict]:
    """Every exported label (both splits): one row per label, for per-annotator and per-source figures."""
    folder = Path(data_dir) / LABELS
    return [row for split in ("train", "test") for row in _jsonl(folder / f"{split}.jsonl")]


def load_annotators(data_dir: Path) -> dict[str, dict]:
    """{annotator pseudonym: their membership attributes}, for per-segment figures."""
    path = Path(data_dir) / ANNOTATORS
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def text_of(value) -> str:
    """A conversational cell (a list of messages) or a standard one (text) as the answer's text."""
    if isinstance(value, list):
        return "".join(m.get("content", "") for m in value if m.get("role") == "assistant") or "".join(
            m.get("content", "") for m in value
        )
    return value or ""
