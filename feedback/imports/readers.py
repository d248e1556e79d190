"""Turns a file (JSONL or one JSON array, CSV, Parquet or a saved HF `datasets` folder) into numbered rows of
plain dicts.

Each reader reports the file's columns before any row, so the kind of data can be told from the columns,
and raises `ImportFailed` naming the line when the bytes themselves are bad (invalid UTF-8, malformed JSON
or CSV, over the size limits).

Text files are read from the (gunzipped) byte stream a bounded line at a time: the byte, line and row limits
count decompressed bytes as they arrive, so neither a compression bomb nor one enormous line is ever held in
memory whole; a JSON array is parsed as a stream of elements under the same limits (one element counts as one
line). A saved HF dataset is read from the Arrow files its folder holds; what its JSON metadata names
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
import struct
import sys
import zlib
from collections.abc import Callable, Iterator
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
    rows: Callable[[], Iterator[tuple[int, dict[str, Any] | RowProblem]]]
    """Reads the file from its start: (line or row number, the row, or the problem that kept it from being read).
    A callable, so an import's two passes (check, then write) share one opening of the file and its checks."""
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


def too_large_reason(limit: int) -> str:
    return f"file is larger than the import limit of {limit:,} bytes"


def too_large(name: str, limit: int) -> ImportFailed:
    return ImportFailed([RowError(name, None, None, too_large_reason(limit))])


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
            raise too_large(self.name, self.limit)
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


def _rows_over_limit(name: str, lineno: int | None, limits: Limits, unit: str = "line") -> ImportFailed:
    return ImportFailed([RowError(name, lineno, None, f"more than the import limit of {limits.max_rows:,} rows", unit)])


def _looks_utf16(raw: bytes) -> bool:
    return raw.count(b"\x00") * 4 > len(raw)


def _encoding_guess(raw: bytes) -> str:
    """A cheap guess at the encoding text that is not UTF-8 was saved in: cp1252 decodes most Western European
    text."""
    if _looks_utf16(raw):
        return "looks like UTF-16; "
    try:
        raw.decode("cp1252")
    except UnicodeDecodeError:
        return ""
    return "looks like Windows-1252/Latin-1; "


def _utf8_problem(raw: bytes, exc: UnicodeDecodeError) -> str:
    return f"invalid UTF-8 at byte {exc.start} ({_encoding_guess(raw)}save the file as UTF-8)"


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
    except ValueError:  # Python converts integers of at most 4,300 digits
        return RowProblem(None, "malformed JSON (a number too long to read)")
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
JSON_OBJECT = (
    "the file is one JSON object spread over several lines, not rows; give a JSON array of objects or JSON Lines "
    "(one object per line), e.g. jq -c '.data[]' in.json > out.jsonl when the rows sit under a key"
)


def _object_cut_at_line_end(raw: bytes) -> bool:
    """True for the first line of a pretty-printed object (`{`, or `{"data": [`): JSON cut short exactly where
    the line ends."""
    text = raw.decode("utf-8", "replace").strip()
    if not text.startswith("{"):
        return False
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return exc.pos >= len(text)
    except (ValueError, RecursionError):
        return False
    return False


def _jsonl_rows(path: Path, limits: Limits, name: str) -> Iterator[tuple[int, dict | RowProblem]]:
    seen = 0
    first: tuple[int, RowProblem] | None = None
    """The first line, when it is an object cut short where the line ends: the next line tells whether the
    file is one object spread over lines (it does not parse either) or JSON Lines with a bad first line."""
    for lineno, raw in _lines(path, limits, name):
        # Blank lines count: a file of nothing but newlines stops at the row limit, not after gigabytes.
        if lineno > limits.max_rows:
            raise _rows_over_limit(name, lineno, limits)
        if not raw.strip():
            continue
        row = _jsonl_line(raw)
        seen += 1
        if seen == 1 and isinstance(row, RowProblem) and _object_cut_at_line_end(raw):
            first = (lineno, row)
            continue
        if first:
            if isinstance(row, RowProblem):
                raise ImportFailed([RowError(name, first[0], None, JSON_OBJECT)])
            yield first
            first = None
        yield lineno, row
    if first:
        yield first


def read_jsonl(path: Path, limits: Limits, name: str) -> Table:
    """JSON Lines, or a file that is one JSON array of objects (AlpacaEval's `annotations.json`, many arena
    dumps), told apart by the first byte that is not blank. A bad line, or an element that is not an object or
    holds a lone surrogate, is a row problem, not a file error: --skip-invalid can step over it like any bad row.
    Bytes an array's parser cannot read past (malformed JSON, invalid UTF-8) fail the file, naming the row."""
    if _first_byte(path, limits, name) == b"[":
        unit = "row"

        def rows() -> Iterator[tuple[int, dict | RowProblem]]:
            return _array_rows(path, limits, name)
    else:
        unit = "line"

        def rows() -> Iterator[tuple[int, dict | RowProblem]]:
            return _jsonl_rows(path, limits, name)

    # The columns come from the first well-formed row; rows() restarts the file so nothing is read twice.
    first, problem = None, None
    for number, row in rows():
        if isinstance(row, dict):
            first = row
            break
        problem = problem or RowError(name, number, row.field, row.reason, unit)
    if first is None and problem:
        raise ImportFailed([problem])
    return Table(name, "jsonl", list(first) if first else [], rows, unit)


# ---- one JSON array -------------------------------------------------------------------------------------

_JSON_BLANK = b" \t\r\n"
MAX_DEPTH = 512
"""Deeper rows are refused: JSON Lines rows stop near Python's recursion limit (about 1,000) when they are read,
and every row is serialised again (hashing, storage), so this leaves room for the frames above it."""


def _first_byte(path: Path, limits: Limits, name: str) -> bytes:
    """The first byte after a UTF-8 byte-order mark and any blanks; b"" for a blank file, a UTF-16 one (whose
    error the JSON Lines reader gives), or one that is blank for longer than a line may be (the JSON Lines
    reader then counts its blank lines against the row limit)."""
    with _open_bytes(path, limits, name) as f:
        head = f.read(1 << 16)
        if head.startswith(UTF16_BOMS) or _looks_utf16(head):
            return b""
        chunk, seen = head.removeprefix(UTF8_BOM), len(head)
        while chunk:
            text = chunk.lstrip(_JSON_BLANK)
            if text:
                return text[:1]
            if seen > limits.max_line_bytes:
                return b""
            chunk = f.read(1 << 16)
            seen += len(chunk)
    return b""


_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _lone_surrogate(data: bytes, pos: int = 0) -> int:
    """Where the first lone half of a surrogate pair escaped as \\uXXXX starts (at or after `pos`), or -1. An
    escape after an odd run of backslashes is text ("\\\\ud800"); yajl would turn a lone high half into "?" and
    fail the whole file on a lone low half."""
    paired = 0
    for match in _SURROGATE_ESCAPE_BYTES.finditer(data):
        start = match.start()
        if start < paired:
            continue
        run = start
        while run and data[run - 1] == 0x5C:
            run -= 1
        if (start - run) % 2:
            continue
        if match.group()[3] in b"89abAB" and _LOW_SURROGATE.match(data, match.end()):
            paired = match.end() + 6
        elif start >= pos:
            return start
    return -1


_ESCAPED_QUOTE = re.compile(rb'(\\+)"')
_DIGITS = b"0123456789"
_DIGIT_MAP = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
"""Digits to "0", everything else to " ": a long run of digits is then found by a plain search."""


def _unescaped_quotes(data: bytes, start: int, end: int) -> int:
    """The double quotes in data[start:end] that open or close a string (not those escaped by an odd run of
    backslashes, which may begin before `start`)."""
    quotes = data.count(b'"', start, end)
    if quotes and data.find(b'\\"', 0, end) >= 0:
        for match in _ESCAPED_QUOTE.finditer(data, 0, end):
            if match.end() > start and len(match.group(1)) % 2:
                quotes -= 1
    return quotes


_HIGH_SURROGATE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}")
_LOW_SURROGATE = re.compile(rb"\\u[dD][c-fC-F][0-9a-fA-F]{2}")
REPLACEMENT_ESCAPE = b"\\ufffd"


class _ElementReader:
    """What ijson reads: the decompressed bytes, without a byte-order mark, counted from where the current
    element began. ijson asks for more only once it has handed out every event of what it has, so the bytes
    read since the element's first event all belong to it: refusing when they pass the line limit never refuses
    an element within the limit, and stops a longer one within two buffers (128 KiB) of the limit, before the
    parser has buffered more of it.

    The same ordering tells which element holds something found in the bytes: those before it are handed out
    alone, and whichever element is being read when ijson asks again holds it. So are found
    - a lone surrogate escape ("\\ud800"), replaced once found (the row is refused, so the replacement is never
      stored): yajl would silently turn a lone high half into "?" and fail the whole file on a lone low half;
    - a whole number longer than Python converts (`sys.get_int_max_str_digits()`), which never reaches the
      parser: ijson's C backend hands on such a number as a NULL object, which crashes the process."""

    def __init__(self, f: IO[bytes], limit: int, name: str) -> None:
        self.f, self.limit, self.name = f, limit, name
        self.count = self.start = 0
        self.row = 1
        """The element being read, or the next one between elements."""
        self.lone_surrogates: set[int] = set()
        """Elements holding a lone surrogate escape."""
        self.rest = self.held = b""
        """Bytes read but not handed out: `rest` from a split, `held` a tail that may end inside an escape."""
        self.first = True
        self.escaped = False
        """The bytes handed out end in an odd run of backslashes, which escapes the next byte."""
        self.in_string = False
        """The bytes handed out end inside a JSON string."""
        self.digits = 0
        """The run of digits outside a string at the end of the bytes handed out."""
        self.long_number = False
        """What comes next is a number too long to convert."""

    def begin(self, row: int) -> None:
        self.row, self.start = row, self.count

    def _failed(self, reason: str) -> ImportFailed:
        return ImportFailed([RowError(self.name, self.row, None, reason, "row")])

    def read(self, size: int = -1) -> bytes:
        if self.count - self.start > self.limit:
            raise self._failed(f"array element longer than the import limit of {self.limit:,} bytes")
        if self.long_number:
            raise self._failed(self._long_number())
        data, self.rest = self.rest or self._fresh(size), b""
        before = b"\\" if self.escaped else b""
        at = _lone_surrogate(before + data, len(before)) - len(before)  # negative: none
        if at == 0:
            self.lone_surrogates.add(self.row)
            data = REPLACEMENT_ESCAPE + data[len(REPLACEMENT_ESCAPE) :]
            at = _lone_surrogate(data, len(REPLACEMENT_ESCAPE))
        if at > 0:
            data, self.rest = data[:at], data[at:]
        data = self._stop_before_long_number(before, data)
        # Where the bytes handed out leave the lexer: inside a string or not, after a backslash, after digits.
        if _unescaped_quotes(before + data, len(before), len(before) + len(data)) % 2:
            self.in_string = not self.in_string
        run = len(data) - len(data.rstrip(b"\\"))
        self.escaped = (run % 2 == 1) != (self.escaped and run == len(data))
        tail = len(data) - len(data.rstrip(_DIGITS))
        self.digits = 0 if self.in_string else self.digits + tail if tail == len(data) else tail
        self.count += len(data)
        return data

    @staticmethod
    def _long_number() -> str:
        return f"malformed JSON (a number of more than {sys.get_int_max_str_digits():,} digits)"

    def _stop_before_long_number(self, before: bytes, data: bytes) -> bytes:
        most = sys.get_int_max_str_digits()
        if not most:
            return data
        if self.digits and self.digits + len(data) - len(data.lstrip(_DIGITS)) > most:
            raise self._failed(self._long_number())
        if len(data) - len(data.translate(None, _DIGITS)) <= most:
            return data  # too few digits for a long run
        digits, run = data.translate(_DIGIT_MAP), b"0" * (most + 1)
        start = digits.find(run)
        while start >= 0:
            quotes = _unescaped_quotes(before + data, len(before), len(before) + start)
            if self.in_string == (quotes % 2 == 1):  # outside a string: a number
                if start == 0:
                    raise self._failed(self._long_number())
                self.long_number = True
                self.rest = data[start:] + self.rest
                return data[:start]
            end = digits.find(b" ", start)
            start = digits.find(run, end) if end >= 0 else -1
        return data

    def _fresh(self, size: int) -> bytes:
        """At most `size` more bytes of the file, less a tail that may end inside an escape or between the two
        halves of a pair (from the first backslash of the last 12 bytes), which comes first next time."""
        if size <= 0:
            return b""
        more = self.f.read(max(size - len(self.held), 1))
        data, self.held = self.held + more, b""
        if len(data) > size:
            data, self.held = data[:size], data[size:]
        if self.first and data:
            data, self.first = data.removeprefix(UTF8_BOM), False
        cut = data.find(b"\\", max(len(data) - 12, 0)) if more else -1
        if cut >= 6 and _HIGH_SURROGATE.fullmatch(data, cut - 6, cut):
            cut -= 6  # the first half of a pair stays with the second
        if cut > 0:
            data, self.held = data[:cut], data[cut:] + self.held
        return data


def _type_word(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null"}.get(
        type(value), "a number"
    )


def _parse_problem(exc: Exception) -> str:
    """ijson's C parser (yajl) says what went wrong and shows the text before the spot (marked with `^` on
    the line below): that text is the position it gives; it counts neither lines nor bytes."""
    message = exc.args[0] if exc.args else str(exc)
    raw = message if isinstance(message, bytes) else str(message).encode("utf-8", "replace")
    lines = raw.decode("utf-8", "replace").splitlines()
    what = lines[0].split(": ", 1)[-1].rstrip(".") if lines else "unreadable"
    if what == "premature EOF":
        return "the file ends inside the array (is it cut short?)"
    if what == "trailing garbage":
        return "more follows the array's closing ]; a .json file holds one array (or use JSON Lines)"
    if what == "invalid bytes in UTF8 string":
        context = raw.split(b"\n")[1] if raw.count(b"\n") > 1 else b""
        return f"invalid UTF-8 ({_encoding_guess(context.strip())}save the file as UTF-8)"
    # The caret stands just after the token yajl stopped at.
    caret = lines[2].index("^") if len(lines) > 2 and "^" in lines[2] else 0
    near = lines[1][:caret].strip()[-40:] if caret else ""
    word = re.split(r"[^A-Za-z]", near)[-1] + re.match(r"[A-Za-z]*", lines[1][caret:] if caret else "").group()
    if word in ("NaN", "Infinity"):
        return "malformed JSON (NaN or Infinity, which JSON does not allow)"
    return f"malformed JSON ({what}{f' at the end of: {near}' if near else ''})"


def _array_rows(path: Path, limits: Limits, name: str) -> Iterator[tuple[int, dict | RowProblem]]:
    """The elements of a file that is one JSON array, numbered from 1, built from ijson's events rather than
    with `ijson.items`, whose memory grows with the square of the nesting depth. Numbers that are not whole
    are read as floats, as `json` reads them (ijson's are Decimals, which JSON cannot store)."""
    import ijson

    number = 0
    with _open_bytes(path, limits, name) as f:
        source = _ElementReader(f, limits.max_line_bytes, name)
        events = ijson.basic_parse(source)
        closed = False

        def failed(reason: str) -> ImportFailed:
            if closed:
                return ImportFailed([RowError(name, None, None, f"after the array: {reason}")])
            return ImportFailed([RowError(name, number + 1, None, reason, "row")])

        try:
            next(events)  # the opening "[" (_first_byte saw it)
            stack: list[dict | list] = []
            keys: list[str | None] = []
            for event, value in events:
                if event == "map_key":
                    keys[-1] = value
                    continue
                if not stack:
                    if event == "end_array":
                        closed = True
                        continue
                    if number + 1 > limits.max_rows:
                        raise _rows_over_limit(name, number + 1, limits, "row")
                    source.begin(number + 1)
                if event == "start_map" or event == "start_array":
                    if len(stack) >= MAX_DEPTH:
                        raise failed(f"nested more than {MAX_DEPTH} levels deep")
                    container: dict | list = {} if event == "start_map" else []
                    if stack:
                        _put(stack[-1], keys[-1], container)
                    stack.append(container)
                    keys.append(None)
                    continue
                if event == "end_map" or event == "end_array":
                    value = stack.pop()
                    keys.pop()
                    if stack:
                        continue
                elif type(value) is decimal.Decimal:
                    value = float(value)  # 1e400 becomes inf, as with `json`; the row's checks refuse it
                if stack:
                    _put(stack[-1], keys[-1], value)
                    continue
                number += 1
                source.begin(number + 1)
                if number in source.lone_surrogates:
                    yield number, RowProblem(None, f"text {_SURROGATE_TEXT}")
                elif isinstance(value, dict):
                    yield number, value
                else:
                    yield (
                        number,
                        RowProblem(None, f"each element of the array must be an object, got {_type_word(value)}"),
                    )
        except ijson.JSONError as exc:
            raise failed(_parse_problem(exc)) from None
        except UnicodeDecodeError:
            # Bytes yajl lets through, such as a surrogate encoded as UTF-8 (b"\xed\xa0\x80").
            raise failed("invalid UTF-8 (save the file as UTF-8)") from None
        except decimal.InvalidOperation:
            raise failed("malformed JSON (a number out of range)") from None


def _put(container: dict | list, key: str | None, value: Any) -> None:
    if type(container) is dict:
        container[key] = value  # a repeated key keeps its last value, as with `json`
    else:
        container.append(value)


# ---- CSV ------------------------------------------------------------------------------------------------


def _csv_problem(exc: csv.Error) -> str:
    text = str(exc)
    if text.startswith("new-line character seen in unquoted field"):
        return (
            "malformed CSV (a line break inside an unquoted cell; quote the cell, or save the file with "
            "LF or CRLF line endings)"
        )
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
        return Table(name, "csv", [], lambda: iter(()), "line")
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

    return Table(name, "csv", columns, rows, "line")


# ---- Arrow-based: Parquet and saved HF datasets ---------------------------------------------------------

VALUE_BYTES = 8
"""What every value of a Parquet or Arrow row counts (each list element, struct, number or text, on top of a text's
own bytes) toward the byte and line limits: a file of millions of empty values decodes to memory too."""
SLICE_BYTES = 4 << 20
"""Rows are turned into Python values a slice of about this many decoded bytes at a time (at least one row)."""
PARQUET_BATCH_BYTES = 16 << 20
"""A Parquet batch holds about this many bytes, as the row groups declare them; never more than 4,096 rows."""


def _needs_plain(arrow_type) -> bool:
    """Types whose Python values JSON cannot hold (timestamps, decimals, bytes), nested ones included."""
    import pyarrow as pa

    t = pa.types
    if isinstance(arrow_type, pa.ExtensionType):
        return _needs_plain(arrow_type.storage_type)
    if t.is_dictionary(arrow_type):
        return _needs_plain(arrow_type.value_type)
    if t.is_temporal(arrow_type) or t.is_decimal(arrow_type):
        return True
    if t.is_binary(arrow_type) or t.is_large_binary(arrow_type) or t.is_fixed_size_binary(arrow_type):
        return True
    if t.is_binary_view(arrow_type):
        return True
    return any(_needs_plain(arrow_type.field(i).type) for i in range(arrow_type.num_fields))


def _unreadable_type(arrow_type) -> str | None:
    """The first type inside `arrow_type` the import does not read (unions, run-end encoding: a few bytes can stand
    for billions of values), or None."""
    import pyarrow as pa

    t = pa.types
    if isinstance(arrow_type, pa.ExtensionType):
        return _unreadable_type(arrow_type.storage_type)
    if t.is_union(arrow_type) or t.is_run_end_encoded(arrow_type):
        return str(arrow_type)
    if t.is_dictionary(arrow_type):
        return _unreadable_type(arrow_type.value_type)
    for i in range(arrow_type.num_fields):
        if found := _unreadable_type(arrow_type.field(i).type):
            return found
    return None


def _check_types(schema, name: str) -> None:
    for f in schema:
        if found := _unreadable_type(f.type):
            raise ImportFailed([RowError(name, None, f.name, f"holds a type the import does not read ({found})")])


def _value_count(array) -> int:
    """How many values `array` holds at every level, from the arrays' lengths alone (nothing is allocated)."""
    import pyarrow as pa

    if isinstance(array, pa.ExtensionArray):
        return _value_count(array.storage)
    if isinstance(array, pa.DictionaryArray):
        return len(array) + _value_count(array.dictionary)
    if isinstance(array, pa.StructArray):
        return len(array) + sum(_value_count(array.field(i)) for i in range(array.type.num_fields))
    if isinstance(array, pa.ListArray | pa.LargeListArray | pa.FixedSizeListArray):  # maps are lists
        return len(array) + _value_count(array.values)
    if isinstance(array, pa.ListViewArray | pa.LargeListViewArray):
        return len(array) + _value_count(array.values)
    return len(array)


def _fixed_size(arrow_type) -> int | None:
    """The decoded size of every value of a type whose values all weigh the same (numbers, nulls, structs of
    them), or None; a list of such values is then measured from its offsets alone."""
    import pyarrow as pa

    t = pa.types
    if isinstance(arrow_type, pa.ExtensionType):
        return _fixed_size(arrow_type.storage_type)
    if t.is_struct(arrow_type):
        children = [_fixed_size(arrow_type.field(i).type) for i in range(arrow_type.num_fields)]
        return None if None in children else VALUE_BYTES + sum(children)
    if t.is_fixed_size_list(arrow_type):
        child = _fixed_size(arrow_type.value_type)
        return None if child is None else VALUE_BYTES + arrow_type.list_size * child
    if t.is_fixed_size_binary(arrow_type):
        return VALUE_BYTES + arrow_type.byte_width
    if arrow_type.num_fields or t.is_dictionary(arrow_type):
        return None
    try:
        width = arrow_type.bit_width // 8
    except ValueError:  # text, binary
        return None
    return VALUE_BYTES + max(width - VALUE_BYTES, 0)


def _segment_sums(values, starts, ends):
    """values[starts[i]:ends[i]].sum() for every i, in int64."""
    import numpy as np

    if not len(values):
        return np.zeros(len(starts), dtype=np.int64)
    sums = np.add.reduceat(values, np.minimum(starts, len(values) - 1), dtype=np.int64)
    return np.where(ends > starts, sums, 0)


def _row_sizes(array):
    """Each value's decoded size: its text or binary bytes, fixed-width bytes, and VALUE_BYTES for the value itself
    and for everything nested in it. Computed from lengths and offsets, so a dictionary value used a million times
    counts a million times without being copied once, and a list of numbers or nulls is measured from its offsets."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    t = pa.types
    n = len(array)
    if isinstance(array, pa.ExtensionArray):
        return _row_sizes(array.storage)
    kind = array.type
    fixed = _fixed_size(kind)
    if n == 0 or fixed is not None:
        return np.full(n, fixed or VALUE_BYTES, dtype=np.int64)
    valid = None if array.null_count == 0 else array.is_valid().to_numpy(zero_copy_only=False)
    if isinstance(array, pa.DictionaryArray):
        sizes = _row_sizes(array.dictionary)[array.indices.fill_null(0).to_numpy(zero_copy_only=False)]
    elif t.is_string(kind) or t.is_large_string(kind) or t.is_binary(kind) or t.is_large_binary(kind):
        sizes = pc.binary_length(array).fill_null(0).to_numpy(zero_copy_only=False) + VALUE_BYTES
    elif t.is_string_view(kind) or t.is_binary_view(kind):
        # Each view is 16 bytes starting with its int32 length.
        views = np.frombuffer(array.buffers()[1], dtype=np.int32).reshape(-1, 4)
        sizes = views[array.offset : array.offset + n, 0].astype(np.int64) + VALUE_BYTES
    elif isinstance(array, pa.StructArray):
        sizes = np.full(n, VALUE_BYTES, dtype=np.int64)
        for i in range(kind.num_fields):
            sizes += _row_sizes(array.field(i))
    elif isinstance(array, pa.FixedSizeListArray):
        width = kind.list_size
        child = _row_sizes(array.values)[array.offset * width : (array.offset + n) * width]
        sizes = (child.reshape(n, width).sum(axis=1) if width else np.zeros(n, dtype=np.int64)) + VALUE_BYTES
    elif isinstance(array, pa.ListArray | pa.LargeListArray | pa.ListViewArray | pa.LargeListViewArray):
        starts = array.offsets.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        if isinstance(array, pa.ListViewArray | pa.LargeListViewArray):
            starts = starts[:n]
            ends = starts + array.sizes.fill_null(0).to_numpy(zero_copy_only=False)
        else:
            starts, ends = starts[:-1], starts[1:]
        child_fixed = _fixed_size(kind.value_type)
        if child_fixed is not None:
            sizes = (ends - starts) * child_fixed + VALUE_BYTES
        else:
            sizes = _segment_sums(_row_sizes(array.values), starts, ends) + VALUE_BYTES
    else:
        raise ValueError(f"unmeasured type {kind}")
    sizes = sizes.astype(np.int64, copy=False)
    if valid is not None:
        sizes = np.where(valid, sizes, VALUE_BYTES)
    return sizes


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


def _batch_rows(batches, name: str, limits: Limits, what: str) -> Iterator[tuple[int, dict]]:
    """The rows of `batches`, numbered from 1, held to the limits before they become Python values: each batch is
    validated, its values counted (refused if they could not fit in what is left of the byte limit), then each
    row's decoded size (`_row_sizes`) counts toward JUROR_IMPORT_MAX_BYTES, and a row or one of its values over
    JUROR_IMPORT_MAX_LINE_BYTES is refused, naming the row and the field."""
    import numpy as np
    import pyarrow as pa

    n = used = 0
    for batch in batches:
        rows = batch.num_rows
        try:
            batch.validate(full=True)
            if VALUE_BYTES * sum(_value_count(c) for c in batch.columns) > limits.max_bytes - used:
                raise too_large(name, limits.max_bytes)  # before anything is measured or copied
            cells = [_row_sizes(c) for c in batch.columns]
        except (pa.ArrowException, ValueError, IndexError, OSError):
            raise ImportFailed([RowError(name, n + 1, None, f"damaged {what} data", "row")]) from None
        totals = np.sum(cells, axis=0) if cells else np.zeros(rows, dtype=np.int64)
        line = limits.max_line_bytes
        over = [(int(np.argmax(c > line)), i) for i, c in enumerate(cells) if c.max(initial=0) > line]
        long_row = int(np.argmax(totals > line)) if totals.max(initial=0) > line else None
        summed = used + np.cumsum(totals)
        past = int(np.argmax(summed > limits.max_bytes)) if rows and summed[-1] > limits.max_bytes else None
        first_bad = min([r for r, _ in over] + [r for r in (long_row, past) if r is not None], default=None)
        end = rows if first_bad is None else first_bad
        start = 0
        convert = any(_needs_plain(f.type) for f in batch.schema)
        while start < end:
            stop = max(start + 1, int(np.searchsorted(summed, summed[start] - totals[start] + SLICE_BYTES, "right")))
            stop = min(stop, end)
            try:
                values = batch.slice(start, stop - start).to_pylist()
            except (pa.ArrowException, ValueError, UnicodeDecodeError, OSError):
                raise ImportFailed([RowError(name, n + 1, None, f"damaged {what} data", "row")]) from None
            for row in values:
                n += 1
                yield n, _plain(row) if convert else row
            start = stop
        if first_bad is not None:
            row = n + 1
            fields = [batch.schema.names[i] for r, i in over if r == first_bad]
            if fields:
                reason = f"value longer than the import limit of {limits.max_line_bytes:,} bytes"
                raise ImportFailed([RowError(name, row, fields[0], reason, "row")])
            if first_bad == long_row:
                reason = f"row longer than the import limit of {limits.max_line_bytes:,} bytes"
                raise ImportFailed([RowError(name, row, None, reason, "row")])
            raise ImportFailed([RowError(name, row, None, too_large_reason(limits.max_bytes), "row")])
        used = int(summed[-1]) if rows else used


def parquet_unpacked_size(meta) -> int:
    """What a Parquet file's metadata says it unpacks to, at least: the row groups' and column chunks' uncompressed
    sizes, and VALUE_BYTES for every value (fixed-size binary values count their width). A dictionary-encoded
    column can decode to far more, which only reading it tells (`_batch_rows` counts it as it streams)."""
    schema = meta.schema
    declared = chunks = values = 0
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        declared += group.total_byte_size
        for j in range(group.num_columns):
            column = group.column(j)
            chunks += column.total_uncompressed_size
            width = schema.column(j).length if schema.column(j).physical_type == "FIXED_LEN_BYTE_ARRAY" else 0
            values += column.num_values * (VALUE_BYTES + (width or 0))
    return max(declared, chunks, values)


def read_parquet(path: Path, limits: Limits, name: str) -> Table:
    """Reads text and binary columns as dictionaries (the values stay as the file has them, once each), in batches
    of about PARQUET_BATCH_BYTES as declared, so a value repeated by a dictionary page is never copied before
    `_batch_rows` has counted it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.stat().st_size > limits.max_bytes:
        raise too_large(name, limits.max_bytes)
    try:
        meta = pq.read_metadata(path)
        leaves = [meta.schema.column(i) for i in range(meta.num_columns)]
        as_dictionary = [
            c.path
            for c in leaves
            if c.physical_type == "BYTE_ARRAY" and c.logical_type.type in ("STRING", "NONE", "JSON", "BSON", "ENUM")
        ]
        pf = pq.ParquetFile(path, metadata=meta, read_dictionary=as_dictionary)
        schema = pf.schema_arrow
        unpacked = parquet_unpacked_size(meta)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise ImportFailed([RowError(name, None, None, f"not a readable Parquet file ({exc})")]) from None
    # Parquet compresses too: what the row groups unpack to is held to the byte limit, like gunzipped text.
    if unpacked > limits.max_bytes:
        raise too_large(name, limits.max_bytes)
    if meta.num_rows > limits.max_rows:
        raise _rows_over_limit(name, None, limits)
    _check_types(schema, name)
    batch_size = max(1, min(4096, PARQUET_BATCH_BYTES * max(meta.num_rows, 1) // max(unpacked, 1)))

    def batches():
        try:
            yield from pf.iter_batches(batch_size=batch_size)
        except (pa.ArrowException, OSError):
            raise ImportFailed([RowError(name, None, None, "damaged Parquet data")]) from None

    return Table(name, "parquet", schema.names, lambda: _batch_rows(batches(), name, limits, "Parquet"), "row")


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


def _ipc_batch_header(metadata: bytes, dictionary: bool) -> tuple[int, int, bool]:
    """(rows, bytes its buffers declare, compressed) of an Arrow IPC record batch or dictionary batch, read by hand
    from the message's flatbuffer (pyarrow exposes none of it before decoding the body), as Arrow's
    format/Message.fbs lays it out: Message {version, header_type, header, bodyLength, custom_metadata};
    DictionaryBatch {id, data: RecordBatch, isDelta}; RecordBatch {length, nodes, buffers: [Buffer {offset,
    length}], compression: BodyCompression, variadicBufferCounts}. A batch is compressed exactly when its
    `compression` field is present. Out-of-range offsets raise struct.error."""

    def u32(at: int) -> int:
        return struct.unpack_from("<I", metadata, at)[0]

    def table(at: int):
        vtable = at - struct.unpack_from("<i", metadata, at)[0]
        vtable_size = struct.unpack_from("<H", metadata, vtable)[0]

        def field(i: int) -> int | None:
            if 4 + 2 * i + 2 > vtable_size:
                return None
            offset = struct.unpack_from("<H", metadata, vtable + 4 + 2 * i)[0]
            return at + offset if offset else None

        return field

    def child(at: int | None) -> int:
        if at is None:
            raise struct.error("missing table")
        return at + u32(at)

    header = child(table(u32(0))(2))
    if dictionary:
        header = child(table(header)(1))
    batch = table(header)
    rows = struct.unpack_from("<q", metadata, batch(0))[0] if batch(0) is not None else 0
    declared = 0
    if (buffers := batch(2)) is not None:
        vector = child(buffers)
        for k in range(u32(vector)):
            _, length = struct.unpack_from("<qq", metadata, vector + 4 + 16 * k)
            if length < 0:
                raise struct.error("negative buffer length")
            declared += length
    return rows, declared, batch(3) is not None


def _arrow_scan(f: Path, where: str, limits: Limits, name: str) -> int:
    """Reads an Arrow stream's messages without decoding a body: refuses compressed batches (zstd makes 2 GB of
    text 69 KB, and pyarrow would inflate each batch whole), and bodies smaller than their buffers claim. `datasets`
    writes uncompressed streams, which the reader then maps without copying. Returns the rows the batches hold."""
    import pyarrow as pa

    def unreadable(why: str = "") -> ImportFailed:
        return ImportFailed([RowError(name, None, None, f"not a readable Arrow file ({where}{why})")])

    rows = 0
    try:
        messages = pa.ipc.MessageReader.open_stream(pa.memory_map(str(f)))
        schema = pa.ipc.read_schema(messages.read_next_message())
        _check_types(schema, name)
        for message in messages:
            if message.type not in ("record batch", "dictionary"):
                raise unreadable()
            length, declared, compressed = _ipc_batch_header(
                message.metadata.to_pybytes(), message.type == "dictionary"
            )
            if compressed:
                reason = f"the Arrow file {where} is compressed; save the dataset uncompressed (save_to_disk does)"
                raise ImportFailed([RowError(name, None, None, reason)])
            if declared > (message.body.size if message.body else 0) or length < 0:
                raise unreadable()
            if declared > limits.max_bytes:
                raise too_large(name, limits.max_bytes)
            rows += length if message.type == "record batch" else 0
    except (pa.ArrowException, OSError, ValueError, StopIteration, struct.error):
        raise unreadable() from None
    return rows


def read_hf(path: Path, limits: Limits, name: str) -> Table:
    """Reads the Arrow files themselves (`datasets` writes Arrow IPC streams); `datasets.load_from_disk` is
    never called, since it would follow whatever paths an uploaded `dataset_dict.json` or `state.json` names.
    Each file is first scanned message by message (`_arrow_scan`), then read a batch at a time, memory-mapped."""
    import pyarrow as pa

    root = path.resolve()
    _check_hf_metadata(root, name)
    splits = _hf_splits(root, name)
    files = [(f, f.relative_to(root).as_posix()) for _, fs in splits for f in fs]
    if sum(f.stat().st_size for f, _ in files) > limits.max_bytes:
        raise too_large(name, limits.max_bytes)
    total = sum(_arrow_scan(f, where, limits, name) for f, where in files)
    if total > limits.max_rows:
        raise _rows_over_limit(name, None, limits)
    try:
        columns = list(pa.ipc.open_stream(pa.memory_map(str(files[0][0]))).schema.names)
    except (pa.ArrowException, OSError, ValueError):
        raise ImportFailed([RowError(name, None, None, f"not a readable Arrow file ({files[0][1]})")]) from None

    def batches():
        for f, where in files:
            try:
                # Memory-mapped: the batches point into the file instead of being copied into memory.
                yield from pa.ipc.open_stream(pa.memory_map(str(f)))
            except (pa.ArrowException, OSError, ValueError):
                raise ImportFailed([RowError(name, None, None, f"not a readable Arrow file ({where})")]) from None

    return Table(name, "hf", columns, lambda: _batch_rows(batches(), name, limits, "Arrow"), "row")


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
