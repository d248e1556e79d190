"""The dataset card: what the export holds, how it was filtered, and how to load and train on it."""

from __future__ import annotations

import json

from feedback.models import Project

from .options import ExportOptions

LOADERS = {
    "hf": 'from datasets import load_from_disk\nds = load_from_disk("{path}")',
    "parquet": 'from datasets import load_dataset\nds = load_dataset("parquet", data_files={files})',
    "jsonl": 'from datasets import load_dataset\nds = load_dataset("json", data_files={files})',
    "csv": 'from datasets import load_dataset\nds = load_dataset("csv", data_files={files})',
}

TRAINERS = {
    "pairs": (
        "from trl import DPOConfig, DPOTrainer  # or RewardConfig, RewardTrainer\n"
        'trainer = DPOTrainer(model=model, args=DPOConfig(output_dir="out"), train_dataset=ds["train"],\n'
        "                     processing_class=tokenizer)\ntrainer.train()"
    ),
    "kto": (
        "from trl import KTOConfig, KTOTrainer\n"
        'trainer = KTOTrainer(model=model, args=KTOConfig(output_dir="out"), train_dataset=ds["train"],\n'
        "                     processing_class=tokenizer)\ntrainer.train()"
    ),
    "demonstrations": (
        "from trl import SFTConfig, SFTTrainer\n"
        'trainer = SFTTrainer(model=model, args=SFTConfig(output_dir="out"), train_dataset=ds["train"])\n'
        "trainer.train()"
    ),
}


def dataset_card(project: Project, options: ExportOptions, stats: dict, columns: list[str]) -> str:
    suffix = {"parquet": "parquet", "jsonl": "jsonl", "csv": "csv"}.get(options.format)
    files = {s: f"{s}.{suffix}" for s in stats["rows"]} if suffix else None
    loader = LOADERS[options.format].format(path=".", files=json.dumps(files))
    lines = [
        f"# {project.name}: {options.kind}",
        "",
        f"Exported from Juror project `{project.slug}` as {options.format} ({options.style} style where it applies).",
        "",
        "## Counts",
        "",
        "| split | rows |",
        "| --- | --- |",
        *(f"| {split} | {n} |" for split, n in stats["rows"].items()),
        "",
        f"Mean agreement: {stats['mean_agreement'] if stats['mean_agreement'] is not None else 'n/a'}",
        "",
        "Distribution: " + (", ".join(f"{k}: {v}" for k, v in stats["distribution"].items()) or "no rows"),
        "",
        "## Columns",
        "",
        ", ".join(f"`{c}`" for c in columns),
        "",
        "Splits are by prompt: no prompt appears in both train and test.",
        "",
        "## Filters and options",
        "",
        "```json",
        json.dumps(options.as_dict(), indent=2, sort_keys=True),
        "```",
        "",
        "## Load it",
        "",
        "```python",
        loader,
        "```",
    ]
    if options.kind in TRAINERS:
        lines += ["", "## Train with TRL", "", "```python", TRAINERS[options.kind], "```"]
    return "\n".join(lines) + "\n"
