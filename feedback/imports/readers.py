"""Turns a file (JSONL, CSV, Parquet or a saved HF `datasets` directory) into numbered rows of plain dicts.

Each reader reports the file's columns before any row, so the kind of data can be told from the columns,
and raises `ImportFailed` naming the line when the bytes themselves are bad (invalid UTF-8, malformed JSON
or CSV, over the size limits).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .errors import ImportFailed, RowError, RowProblem

FORMATS = ("jsonl", "csv", "parquet", "hf")


@dataclass
class Table:
    name: str
    format: str
    columns: list[str]
    rows: Iterator[tuple[int, dict[str, Any] | RowProblem]]
    """(line or row number, the row, or the problem that kept it from being read)"""
    unit: str  # "line" or "row"


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_rows: int


def detect_format(path: Path) -> str:
    if path.is_dir():
        return "hf"
    name = path.name.lower().removesuffix(".gz")
    for ext, fmt in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "jsonl"), (".csv", "csv")):
        if name.endswith(ext):
            return fmt
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise ImportFailed(
        [RowError(path.name, None, None, "cannot tell the format from the name; pass --format jsonl|csv|parquet|hf")]
    )


class _LimitedReader(io.RawIOBase):
    """Counts bytes as they are read (after gunzip), so a compression bomb stops at the byte limit."""

    def __init__(self, raw: IO[bytes], limit: int, name: str) -> None:
        self.raw, self.limit, self.name, self.count = raw, limit, name, 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.raw.close()
        super().close()

    def readinto(self, buffer) -> int:
        data = self.raw.read(len(buffer))
        self.count += len(data)
        if self.count > self.limit:
            raise ImportFailed(
                [RowError(self.name, None, None, f"file is larger than the import limit of {self.limit:,} bytes")]
            )
        buffer[: len(data)] = data
        return len(data)


def _open_bytes(path: Path, limits: Limits, name: str) -> IO[bytes]:
    raw = gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")  # noqa: SIM115 (closed by the caller)
    return io.BufferedReader(_LimitedReader(raw, limits.max_bytes, name), buffer_size=1 << 20)


def _check_row_count(n: int, limits: Limits, name: str) -> None:
    if n > limits.max_rows:
        raise ImportFailed([RowError(name, n, None, f"more than the import limit of {limits.max_rows:,} rows")])


def _decode(line: bytes, name: str, lineno: int) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ImportFailed([RowError(name, lineno, None, f"invalid UTF-8 at byte {exc.start}")]) from None


def _jsonl_line(raw: bytes) -> dict | RowProblem:
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return RowProblem(None, f"invalid UTF-8 at byte {exc.start}")
    except json.JSONDecodeError as exc:
        return RowProblem(None, f"malformed JSON ({exc.msg} at column {exc.colno})")
    if not isinstance(obj, dict):
        return RowProblem(None, f"each line must be a JSON object, got {type(obj).__name__}")
    return obj


def read_jsonl(path: Path, limits: Limits, name: str) -> Table:
    """A bad line is a row problem, not a file error: --skip-invalid can step over it like any bad row."""

    def rows() -> Iterator[tuple[int, dict | RowProblem]]:
        count = 0
        with _open_bytes(path, limits, name) as f:
            for lineno, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                count += 1
                _check_row_count(count, limits, name)
                yield lineno, _jsonl_line(raw)

    # The columns come from the first well-formed line; rows() restarts the file so nothing is read twice.
    first, problem = None, None
    for lineno, row in rows():
        if isinstance(row, dict):
            first = row
            break
        problem = problem or RowError(name, lineno, row.field, row.reason)
    if first is None and problem:
        raise ImportFailed([problem])
    return Table(name, "jsonl", list(first) if first else [], rows(), "line")


def read_csv(path: Path, limits: Limits, name: str) -> Table:
    def lines(f: IO[bytes]) -> Iterator[str]:
        for lineno, raw in enumerate(f, start=1):
            yield _decode(raw, name, lineno)

    def open_reader(f: IO[bytes]):
        return csv.reader(lines(f), strict=True)

    with _open_bytes(path, limits, name) as f:
        try:
            header = next(open_reader(f), None)
        except csv.Error as exc:
            raise ImportFailed([RowError(name, 1, None, f"malformed CSV header ({exc})")]) from None
    if not header:
        return Table(name, "csv", [], iter(()), "line")
    columns = [c.strip() for c in header]
    if len(set(columns)) != len(columns):
        raise ImportFailed([RowError(name, 1, None, "the CSV header names a column twice")])

    def rows() -> Iterator[tuple[int, dict]]:
        count = 0
        with _open_bytes(path, limits, name) as f:
            reader = open_reader(f)
            next(reader)
            start = reader.line_num + 1
            while True:
                try:
                    record = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    raise ImportFailed([RowError(name, reader.line_num, None, f"malformed CSV ({exc})")]) from None
                lineno, start = start, reader.line_num + 1
                if not record or record == [""] * len(record) and len(record) <= 1:
                    continue
                if len(record) != len(columns):
                    raise ImportFailed(
                        [RowError(name, lineno, None, f"expected {len(columns)} cells, found {len(record)}")]
                    )
                count += 1
                _check_row_count(count, limits, name)
                yield lineno, dict(zip(columns, record, strict=True))

    return Table(name, "csv", columns, rows(), "line")


def read_parquet(path: Path, limits: Limits, name: str) -> Table:
    import pyarrow.parquet as pq

    if path.stat().st_size > limits.max_bytes:
        raise ImportFailed(
            [RowError(name, None, None, f"file is larger than the import limit of {limits.max_bytes:,} bytes")]
        )
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise ImportFailed([RowError(name, None, None, f"not a readable Parquet file ({exc})")]) from None
    _check_row_count(pf.metadata.num_rows, limits, name)

    def rows() -> Iterator[tuple[int, dict]]:
        n = 0
        for batch in pf.iter_batches(batch_size=4096):
            for row in batch.to_pylist():
                n += 1
                yield n, row

    return Table(name, "parquet", pf.schema_arrow.names, rows(), "row")


def read_hf(path: Path, limits: Limits, name: str) -> Table:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises FileNotFoundError or its own errors for a non-dataset folder
        raise ImportFailed([RowError(name, None, None, f"not a saved Hugging Face dataset ({exc})")]) from None
    # A DatasetDict is imported split by split, train first, rows numbered across the whole folder.
    parts = (
        [loaded[s] for s in sorted(loaded, key=lambda s: (s != "train", s))]
        if isinstance(loaded, datasets.DatasetDict)
        else [loaded]
    )
    _check_row_count(sum(p.num_rows for p in parts), limits, name)
    columns = list(parts[0].column_names) if parts else []

    def rows() -> Iterator[tuple[int, dict]]:
        n = 0
        for part in parts:
            for batch in part.with_format("arrow").iter(batch_size=4096):
                for row in batch.to_pylist():
                    n += 1
                    yield n, row

    return Table(name, "hf", columns, rows(), "row")


READERS = {"jsonl": read_jsonl, "csv": read_csv, "parquet": read_parquet, "hf": read_hf}


def open_table(path: Path, fmt: str | None, limits: Limits, name: str | None = None) -> Table:
    path = Path(path)
    name = name or path.name
    if not path.exists():
        raise ImportFailed([RowError(name, None, None, "file not found")])
    fmt = fmt or detect_format(path)
    if fmt not in READERS:
        raise ImportFailed([RowError(name, None, None, f"unknown format '{fmt}'; use one of {', '.join(FORMATS)}")])
    if fmt != "hf" and path.is_dir():
        raise ImportFailed([RowError(name, None, None, f"is a folder, not a {fmt} file")])
    return READERS[fmt](path, limits, name)
