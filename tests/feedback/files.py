"""Writes the same rows as JSONL, one JSON array, CSV, Parquet or a saved HF dataset, so one test covers every
format."""

import csv
import json
from pathlib import Path

FORMATS = ["jsonl", "json", "csv", "parquet", "hf"]


def write_rows(rows: list[dict], fmt: str, directory: Path, name: str = "data") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        path = directory / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    elif fmt == "json":  # one pretty-printed array, as AlpacaEval publishes its annotations
        path = directory / f"{name}.json"
        path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    elif fmt == "csv":
        path = directory / f"{name}.csv"
        columns = list(dict.fromkeys(k for r in rows for k in r))
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            for r in rows:
                writer.writerow([_cell(r.get(c)) for c in columns])
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = directory / f"{name}.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif fmt == "hf":
        import datasets

        path = directory / name
        datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(path))
    else:
        raise ValueError(fmt)
    return path


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
