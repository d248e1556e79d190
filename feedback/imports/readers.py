"""Turns a file (JSONL, CSV, Parquet or a saved HF `datasets` folder) into numbered rows of plain dicts.

Each reader reports the file's columns before any row, so the kind of data can be told from the columns,
and raises `ImportFailed` naming the line when the bytes themselves are bad (invalid UTF-8, malformed JSON
or CSV, over the size limits).

Text files are read from the (gunzipped) byte stream a bounded line at a time: the byte, line and row limits
count decompressed bytes as they arrive, so neither a compression bomb nor one enormous line is ever held in
memory whole. A saved HF dataset is read from the Arrow files its folder holds; what its JSON metadata names
is only checked, never followed, so an uploaded folder cannot point the reader at files outside it.
"""

from __future__ import annotations

import csv
import datetime
import decimal
import gzip
import hashlib
import io
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from .errors import ImportFailed, RowError, RowProblem

FORMATS = ("jsonl", "csv", "parquet", "hf")
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
OUTSIDE = "the dataset names a file outside the upload"
"""The one answer for every path that leaves the dataset's folder: it says nothing about what is there."""


def _max_line_bytes() -> int:
    from django.conf import settings

    return settings.JUROR_IMPORT_MAX_LINE_BYTES


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
    max_line_bytes: int = field(default_factory=_max_line_bytes)
    """The longest line of a text file (a CSV row spanning several lines counts whole)."""


class CsvRow(dict):
    """A row read from CSV. Its cells are all text, so fields that hold lists or objects carry them as JSON;
    rows from every other format hold real lists and objects, and their text is never parsed as JSON."""


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


def _too_large(name: str, limit: int) -> ImportFailed:
    return ImportFailed([RowError(name, None, None, f"file is larger than the import limit of {limit:,} bytes")])


class _LimitedReader(io.RawIOBase):
    """Counts bytes as they are read (after gunzip), so a compression bomb stops at the byte limit; a file that
    is not gzip, or whose gzip data is damaged or cut short, is our own error rather than an OSError."""

    def __init__(self, raw: IO[bytes], limit: int, name: str, gzipped: bool) -> None:
        self.raw, self.limit, self.name, self.gzipped, self.count = raw, limit, name, gzipped, 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.raw.close()
        super().close()

    def readinto(self, buffer) -> int:
        try:
            data = self.raw.read(len(buffer))
        except (OSError, EOFError, zlib.error) as exc:
            if not self.gzipped:
                raise
            reason = (
                "not a gzip file (the name ends in .gz)"
                if isinstance(exc, gzip.BadGzipFile) and "Not a gzipped file" in str(exc)
                else "the gzip data is damaged or cut short"
            )
            raise ImportFailed([RowError(self.name, None, None, reason)]) from None
        self.count += len(data)
        if self.count > self.limit:
            raise _too_large(self.name, self.limit)
        buffer[: len(data)] = data
        return len(data)


def _open_bytes(path: Path, limits: Limits, name: str) -> IO[bytes]:
    gzipped = path.name.lower().endswith(".gz")
    raw = gzip.open(path, "rb") if gzipped else open(path, "rb")  # noqa: SIM115 (closed by the caller)
    return io.BufferedReader(_LimitedReader(raw, limits.max_bytes, name, gzipped), buffer_size=1 << 20)


def _lines(path: Path, limits: Limits, name: str) -> Iterator[tuple[int, bytes]]:
    """Numbered raw lines (with their line ending). A line is read at most `max_line_bytes` at a time, so one
    huge line stops at the limit instead of filling memory. A UTF-8 byte-order mark (Excel's "CSV UTF-8",
    some JSONL writers) is dropped."""
    with _open_bytes(path, limits, name) as f:
        lineno = 0
        while raw := f.readline(limits.max_line_bytes + 1):
            lineno += 1
            if len(raw) > limits.max_line_bytes and not raw.endswith(b"\n"):
                raise ImportFailed(
                    [
                        RowError(
                            name,
                            lineno,
                            None,
                            f"line longer than the import limit of {limits.max_line_bytes:,} bytes",
                        )
                    ]
                )
            if lineno == 1:
                if raw.startswith(UTF8_BOM):
                    raw = raw[len(UTF8_BOM) :]
                elif raw.startswith(UTF16_BOMS):
                    raise ImportFailed([RowError(name, None, None, "the file is UTF-16 text; save it as UTF-8")])
            yield lineno, raw


def _rows_over_limit(name: str, lineno: int | None, limits: Limits) -> ImportFailed:
    return ImportFailed([RowError(name, lineno, None, f"more than the import limit of {limits.max_rows:,} rows")])


def _looks_utf16(raw: bytes) -> bool:
    return raw.count(b"\x00") * 4 > len(raw)


def _utf8_problem(raw: bytes, exc: UnicodeDecodeError) -> str:
    """Names the byte and guesses the encoding the file was saved in (a cheap guess: cp1252 decodes most
    Western European text that is not UTF-8)."""
    if _looks_utf16(raw):
        guess = "looks like UTF-16; "
    else:
        try:
            raw.decode("cp1252")
            guess = "looks like Windows-1252/Latin-1; "
        except UnicodeDecodeError:
            guess = ""
    return f"invalid UTF-8 at byte {exc.start} ({guess}save the file as UTF-8)"


UTF16_LINE = "the line is full of NUL bytes: the file looks like UTF-16; save it as UTF-8"


# ---- JSONL ----------------------------------------------------------------------------------------------

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _surrogate_in(value: Any) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if _SURROGATE.search(v):
                return True
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def _jsonl_line(raw: bytes) -> dict | RowProblem:
    if _looks_utf16(raw):
        return RowProblem(None, UTF16_LINE)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RowProblem(None, _utf8_problem(raw, exc))
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return RowProblem(None, f"malformed JSON ({exc.msg} at column {exc.colno})")
    except ValueError as exc:  # e.g. a number with more digits than Python converts
        return RowProblem(None, f"malformed JSON ({exc})")
    except RecursionError:
        return RowProblem(None, "malformed JSON (nested too deeply)")
    if not isinstance(obj, dict):
        return RowProblem(None, f"each line must be a JSON object, got {type(obj).__name__}")
    # "\ud800" alone is valid JSON but not Unicode: nothing could store or hash it.
    if _SURROGATE_ESCAPE.search(raw):
        for key, value in obj.items():
            if _surrogate_in(key):
                return RowProblem(None, f"a field name {_SURROGATE_TEXT}")
            if _surrogate_in(value):
                return RowProblem(key, _SURROGATE_TEXT)
    return obj


_SURROGATE_TEXT = "holds an unpaired surrogate (\\ud800–\\udfff), which is not Unicode text"
JSON_ARRAY = (
    "the file is one JSON array, not JSON Lines (one object per line); convert it, e.g. jq -c '.[]' in.json > out.jsonl"
)
JSON_PRETTY = "the file is pretty-printed JSON, not JSON Lines (one object per line); convert it, e.g. jq -c ."


def read_jsonl(path: Path, limits: Limits, name: str) -> Table:
    """A bad line is a row problem, not a file error: --skip-invalid can step over it like any bad row."""

    def rows() -> Iterator[tuple[int, dict | RowProblem]]:
        seen_text = False
        for lineno, raw in _lines(path, limits, name):
            # Blank lines count: a file of nothing but newlines stops at the row limit, not after gigabytes.
            if lineno > limits.max_rows:
                raise _rows_over_limit(name, lineno, limits)
            if not raw.strip():
                continue
            row = _jsonl_line(raw)
            if not seen_text and isinstance(row, RowProblem):
                if raw.lstrip()[:1] == b"[":
                    raise ImportFailed([RowError(name, lineno, None, JSON_ARRAY)])
                if raw.strip() == b"{":
                    raise ImportFailed([RowError(name, lineno, None, JSON_PRETTY)])
            seen_text = True
            yield lineno, row

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


# ---- CSV ------------------------------------------------------------------------------------------------


def _csv_problem(exc: csv.Error) -> str:
    text = str(exc)
    if text.startswith("new-line character seen in unquoted field"):
        return (
            "malformed CSV (a line break inside an unquoted cell; quote the cell, or save the file with "
            "LF or CRLF line endings)"
        )
    if text.startswith("field larger than field limit"):
        return "malformed CSV (a cell longer than the import's line limit)"
    return f"malformed CSV ({text})"


def _csv_records(path: Path, limits: Limits, name: str) -> Iterator[tuple[int, list[str]]]:
    """(first line, cells) for every CSV record, blank ones included; a record spanning several lines (a
    quoted cell with line breaks) is held to the line limit as a whole."""
    line = pending = 0

    def text_lines() -> Iterator[str]:
        nonlocal line, pending
        for line, raw in _lines(path, limits, name):  # noqa: B007 (`line` is read by the loop below)
            pending += len(raw)
            if pending > limits.max_line_bytes:
                raise ImportFailed(
                    [
                        RowError(
                            name,
                            line,
                            None,
                            f"CSV row longer than the import limit of {limits.max_line_bytes:,} bytes",
                        )
                    ]
                )
            if _looks_utf16(raw):
                raise ImportFailed([RowError(name, line, None, UTF16_LINE)])
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ImportFailed([RowError(name, line, None, _utf8_problem(raw, exc))]) from None

    # The module-wide cell limit (128 KiB by default) would refuse long answers; our own line limit rules.
    csv.field_size_limit(max(csv.field_size_limit(), limits.max_line_bytes))
    reader = csv.reader(text_lines(), strict=True)
    start = 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ImportFailed([RowError(name, line, None, _csv_problem(exc))]) from None
        pending = 0
        yield start, record
        start = line + 1


def read_csv(path: Path, limits: Limits, name: str) -> Table:
    header = next((cells for _, cells in _csv_records(path, limits, name)), None)
    if not header:
        return Table(name, "csv", [], iter(()), "line")
    columns = [c.strip() for c in header]
    if len(set(columns)) != len(columns):
        raise ImportFailed([RowError(name, 1, None, "the CSV header names a column twice")])

    def rows() -> Iterator[tuple[int, dict]]:
        records = _csv_records(path, limits, name)
        next(records)
        for count, (lineno, record) in enumerate(records, start=1):
            if count > limits.max_rows:  # blank records count, as in JSONL
                raise _rows_over_limit(name, lineno, limits)
            # A blank line, or a row of empty cells (",,", what spreadsheets leave below the data), holds nothing.
            if not "".join(record).strip():
                continue
            if len(record) != len(columns):
                raise ImportFailed(
                    [RowError(name, lineno, None, f"expected {len(columns)} cells, found {len(record)}")]
                )
            yield lineno, CsvRow(zip(columns, record, strict=True))

    return Table(name, "csv", columns, rows(), "line")


# ---- Arrow-based: Parquet and saved HF datasets ---------------------------------------------------------


def _needs_plain(arrow_type) -> bool:
    """Types whose Python values JSON cannot hold (timestamps, decimals, bytes), nested ones included."""
    import pyarrow as pa

    t = pa.types
    if t.is_temporal(arrow_type) or t.is_decimal(arrow_type):
        return True
    if t.is_binary(arrow_type) or t.is_large_binary(arrow_type) or t.is_fixed_size_binary(arrow_type):
        return True
    return any(_needs_plain(arrow_type.field(i).type) for i in range(arrow_type.num_fields))


def _plain(value: Any) -> Any:
    """JSON-safe: dates and times as ISO text, decimals as text, bytes as text when they are UTF-8 (writers
    that store strings as plain binary) and as a digest otherwise, so every row can be hashed and stored."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return f"binary data, sha256 {hashlib.sha256(value).hexdigest()}"
    return value


def _batch_rows(batches, schema, name: str, unit_start: int, what: str) -> Iterator[tuple[int, dict]]:
    import pyarrow as pa

    convert = any(_needs_plain(f.type) for f in schema)
    n = unit_start
    for batch in batches:
        try:
            batch.validate(full=True)
            rows = batch.to_pylist()
        except (pa.ArrowException, ValueError, UnicodeDecodeError, OSError):
            raise ImportFailed([RowError(name, n + 1, None, f"damaged {what} data", "row")]) from None
        for row in rows:
            n += 1
            yield n, _plain(row) if convert else row


def read_parquet(path: Path, limits: Limits, name: str) -> Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.stat().st_size > limits.max_bytes:
        raise _too_large(name, limits.max_bytes)
    try:
        pf = pq.ParquetFile(path)
        meta = pf.metadata
        unpacked = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        schema = pf.schema_arrow
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise ImportFailed([RowError(name, None, None, f"not a readable Parquet file ({exc})")]) from None
    # Parquet compresses too: what the row groups unpack to is held to the byte limit, like gunzipped text.
    if unpacked > limits.max_bytes:
        raise _too_large(name, limits.max_bytes)
    if meta.num_rows > limits.max_rows:
        raise _rows_over_limit(name, None, limits)

    def batches():
        try:
            yield from pf.iter_batches(batch_size=4096)
        except (pa.ArrowException, OSError):
            raise ImportFailed([RowError(name, None, None, "damaged Parquet data")]) from None

    return Table(name, "parquet", schema.names, _batch_rows(batches(), schema, name, 0, "Parquet"), "row")


def _inside(root: Path, base: Path, named: object) -> bool:
    """True when `named` (a path from the dataset's metadata, relative to `base`) stays inside `root`: no
    absolute paths, no `..`, no symlink that leads out."""
    if not isinstance(named, str) or not named or "\x00" in named or "\\" in named:
        return False
    pure = PurePosixPath(named)
    if pure.is_absolute() or ".." in pure.parts:
        return False
    return (base / pure).resolve().is_relative_to(root)


def _visible(name: str) -> bool:
    # macOS zips carry __MACOSX/ folders and "._name" files beside the real ones.
    return not name.startswith((".", "__MACOSX"))


def _not_a_dataset(name: str, why: str) -> ImportFailed:
    return ImportFailed([RowError(name, None, None, f"not a saved Hugging Face dataset ({why})")])


def _check_hf_metadata(root: Path, name: str) -> None:
    """Every path the JSON metadata names (dataset_dict.json splits, state.json data files) must stay inside
    the folder. The reader never opens them, but a dataset that points elsewhere is refused outright, and
    with the same words whatever is (or is not) at the place it names."""
    for meta in sorted(root.rglob("*.json")):
        if meta.name not in ("dataset_dict.json", "state.json") or not all(
            _visible(part) for part in meta.relative_to(root).parts
        ):
            continue
        relative = meta.relative_to(root).as_posix()
        if not meta.resolve().is_relative_to(root):
            raise ImportFailed([RowError(name, None, None, OUTSIDE)])
        if meta.stat().st_size > 1 << 20:
            raise _not_a_dataset(name, f"{relative} is too large")
        try:
            data = json.loads(meta.read_bytes())
        except (ValueError, RecursionError):
            raise _not_a_dataset(name, f"{relative} is not valid JSON") from None
        if not isinstance(data, dict):
            raise _not_a_dataset(name, f"{relative} is not a JSON object")
        listed = data.get("splits" if meta.name == "dataset_dict.json" else "_data_files") or []
        if not isinstance(listed, list):
            raise _not_a_dataset(name, f"{relative} is not valid")
        for item in listed:
            if isinstance(item, dict):  # state.json: {"filename": ...}
                item = item.get("filename")
            if not _inside(root, meta.parent, item):
                raise ImportFailed([RowError(name, None, None, OUTSIDE)])


def _arrow_files(folder: Path, root: Path, name: str) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix == ".arrow" and _visible(p.name))
    for f in files:
        if not f.resolve().is_relative_to(root):
            raise ImportFailed([RowError(name, None, None, OUTSIDE)])
    return [f for f in files if f.is_file()]


def _hf_splits(path: Path, name: str) -> list[tuple[str, list[Path]]]:
    """The dataset's splits and their Arrow files, told from the folder's layout (what `save_to_disk` writes):
    a `Dataset` is a folder with `state.json` and `data-*.arrow`; a `DatasetDict` has `dataset_dict.json` and
    one such folder per split. Train comes first, then the others by name."""
    root = path.resolve()
    if (root / "dataset_dict.json").is_file():
        folders = [d for d in sorted(root.iterdir()) if _visible(d.name) and d.is_dir()]
        for d in folders:
            if not d.resolve().is_relative_to(root):
                raise ImportFailed([RowError(name, None, None, OUTSIDE)])
        splits = [(d.name, _arrow_files(d, root, name)) for d in folders]
        splits = sorted(((s, f) for s, f in splits if f), key=lambda sf: (sf[0] != "train", sf[0]))
    elif (root / "state.json").is_file():
        splits = [(root.name, _arrow_files(root, root, name))]
    else:
        raise _not_a_dataset(name, "no dataset_dict.json or state.json")
    if not any(files for _, files in splits):
        raise _not_a_dataset(name, "no .arrow data files")
    return splits


def read_hf(path: Path, limits: Limits, name: str) -> Table:
    """Reads the Arrow files themselves (`datasets` writes Arrow IPC streams); `datasets.load_from_disk` is
    never called, since it would follow whatever paths an uploaded `dataset_dict.json` or `state.json` names."""
    import pyarrow as pa

    root = path.resolve()
    _check_hf_metadata(root, name)
    splits = _hf_splits(root, name)
    files = [f for _, fs in splits for f in fs]
    if sum(f.stat().st_size for f in files) > limits.max_bytes:
        raise _too_large(name, limits.max_bytes)
    tables = []
    for f in files:
        try:
            # Memory-mapped: the batches point into the file instead of being copied into memory.
            tables.append(pa.ipc.open_stream(pa.memory_map(str(f))).read_all())
        except (pa.ArrowException, OSError, ValueError):
            where = f.relative_to(root).as_posix()
            raise ImportFailed([RowError(name, None, None, f"not a readable Arrow file ({where})")]) from None
    total = sum(t.num_rows for t in tables)
    if total > limits.max_rows:
        raise _rows_over_limit(name, None, limits)
    columns = list(tables[0].schema.names) if tables else []

    def rows() -> Iterator[tuple[int, dict]]:
        n = 0
        while tables:
            table = tables.pop(0)  # a file read through is let go, and its mapped pages with it
            for number, row in _batch_rows(table.to_batches(max_chunksize=4096), table.schema, name, n, "Arrow"):
                n = number
                yield number, row

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
    if fmt == "hf" and not path.is_dir():
        raise ImportFailed([RowError(name, None, None, "is a file, not a saved Hugging Face dataset folder")])
    return READERS[fmt](path, limits, name)
