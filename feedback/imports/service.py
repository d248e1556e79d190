"""The one import path behind the command, the admin upload, the API and the `import` job.

Memory stays bounded whatever the number of rows, because the file is read twice and never held:

1. **Check.** Every row is parsed and validated; what is kept is the errors (the first `ERRORS_KEPT` in
   full, and their count) and an 8-byte digest per judged row, which numbers identical rows (two votes). A bad
   file fails here, before anything is written.
2. **Write.** The file is read again and written in chunks of rows inside one transaction, with set-based
   queries (a constant number per chunk, not per row). The database is the index of what exists, so nothing
   grows with the file. Comparisons among a prompt's responses are made once every row is in, so the result
   does not depend on where chunks end.

A bad file, a stop request (`should_stop`) or a crash changes nothing, and importing a file again adds nothing.
"""

from __future__ import annotations

import hashlib
import itertools
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import Max

from feedback.comparisons import RANKING_MAX, comparisons_create
from feedback.hashing import canonical_json, members_key, messages_hash, text_hash
from feedback.models import Comparison, Label, Project, Prompt, RankingItem, Response

from .errors import ImportFailed, RowError, RowProblem
from .kinds import KINDS, PARSERS, SOURCE_MAX, JudgedPairRecord, Record, Reply, ResponsesRecord, detect_kind
from .readers import Limits, Table, open_table

CHUNK_ROWS = 2000
"""Rows written per chunk of the second pass."""
CHUNK_CHARS = 16_000_000
"""A chunk of very long rows is written before it reaches `CHUNK_ROWS`, so a chunk never holds much text."""
QUERY_CHUNK = 500
"""Values per `IN (…)` lookup."""
ERRORS_KEPT = 1000
"""Bad rows reported one by one; beyond these only their number is kept."""
CHECK_REPORT_EVERY = 10_000
ANALYSE_FIRST = 20_000
"""PostgreSQL's statistics are refreshed after this many rows, then each time the rows written double."""

Progress = Callable[[str, int, int | None], None]
"""Called as `progress(stage, done, total)`: stage "checking" (rows read; the total is known only at the end),
"writing" (rows written, of all rows), then "comparing" (prompts whose responses get comparisons, of those)."""


class ImportStopped(Exception):
    """`should_stop` answered true: the import stopped and wrote nothing."""


@dataclass
class ImportSummary:
    file: str
    kind: str
    rows: int = 0
    imported: int = 0
    already_present: int = 0
    skipped: list[RowError] = field(default_factory=list)
    """The first `ERRORS_KEPT` skipped rows."""
    skipped_count: int = 0
    """All skipped rows, listed or not."""
    created: dict[str, int] = field(
        default_factory=lambda: {"prompts": 0, "responses": 0, "comparisons": 0, "labels": 0}
    )

    @property
    def skipped_total(self) -> int:
        return self.skipped_count

    def as_dict(self) -> dict:
        return {
            "file": self.file,
            "kind": self.kind,
            "rows": self.rows,
            "imported": self.imported,
            "already_present": self.already_present,
            "skipped": self.skipped_total,
            "skipped_rows": [{"line": e.line, "field": e.field, "reason": e.reason} for e in self.skipped],
            "created": self.created,
        }

    def __str__(self) -> str:
        c = self.created
        text = (
            f"{self.file}: {self.kind}; {self.imported} rows imported, {self.skipped_total} skipped, "
            f"{self.already_present} already present (created {c['prompts']} prompts, {c['responses']} responses, "
            f"{c['comparisons']} comparisons, {c['labels']} labels)"
        )
        lines = [text, *(f"  skipped {e}" for e in self.skipped)]
        if self.skipped_total > len(self.skipped):
            lines.append(f"  … and {self.skipped_total - len(self.skipped):,} more skipped rows")
        return "\n".join(lines)


def default_limits() -> Limits:
    return Limits(settings.JUROR_IMPORT_MAX_BYTES, settings.JUROR_IMPORT_MAX_ROWS)


def _quiet(stage: str, done: int, total: int | None) -> None:
    pass


def _never() -> bool:
    return False


def data_import(
    *,
    project: Project,
    path: Path,
    fmt: str | None = None,
    skip_invalid: bool = False,
    source: str | None = None,
    display_name: str | None = None,
    limits: Limits | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ImportSummary:
    """Imports one file into `project`; raises ImportFailed (nothing written) on bad input, and ImportStopped
    (nothing written) when `should_stop()` turns true, which it is asked between chunks.

    `source` names who judged imported pairs (default: the file name without extension); a `source` column
    overrides it per row.
    """
    limits = limits or default_limits()
    progress = progress or _quiet
    should_stop = should_stop or _never
    table, kind = _open(path, fmt, limits, display_name)
    source = source or _default_source(table.name)
    parser = PARSERS[kind]
    checked = _check(table, parser, source, progress, should_stop)
    if checked.rows == 0:
        raise ImportFailed([RowError(table.name, None, None, "the file has no rows")])
    if checked.error_count and not skip_invalid:
        raise ImportFailed(
            checked.errors,
            "nothing was imported; fix the file, or skip invalid rows (--skip-invalid) to import the valid ones",
            total=checked.error_count,
        )
    summary = ImportSummary(table.name, kind, rows=checked.rows)
    summary.skipped, summary.skipped_count = checked.errors, checked.error_count
    with transaction.atomic():
        _write(project, table, parser, source, checked, summary, progress, should_stop, chunk_rows)
    return summary


def _open(path: Path, fmt: str | None, limits: Limits, display_name: str | None) -> tuple[Table, str]:
    table = open_table(Path(path), fmt, limits, display_name)
    if not table.columns:
        raise ImportFailed([RowError(table.name, None, None, "the file has no rows")])
    kind = detect_kind(table.columns)
    if kind is None:
        raise ImportFailed(
            [
                RowError(
                    table.name,
                    None,
                    None,
                    f"cannot tell what the file holds from its columns {table.columns}; expected one of: "
                    + "; ".join(KINDS.values()),
                )
            ]
        )
    return table, kind


def _default_source(name: str) -> str:
    # A label's source holds 120 characters; a long file name is cut rather than refused.
    return (Path(name.removesuffix(".gz")).stem or "import")[:SOURCE_MAX]


def _row_digest(row_json: str) -> int:
    return int.from_bytes(hashlib.blake2b(row_json.encode("utf-8"), digest_size=8).digest(), "little")


# ---- pass 1: check ---------------------------------------------------------------------------------------


@dataclass
class _Checked:
    rows: int = 0
    valid: int = 0
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    repeated: frozenset[int] = frozenset()
    """Digests of judged rows that occur more than once in the file."""


def _check(table: Table, parser, source: str, progress: Progress, should_stop: Callable[[], bool]) -> _Checked:
    checked = _Checked()
    digests = array("Q")
    for lineno, row in table.rows():
        checked.rows += 1
        if checked.rows % CHECK_REPORT_EVERY == 0:
            progress("checking", checked.rows, None)
            if should_stop():
                raise ImportStopped
        try:
            if isinstance(row, RowProblem):
                raise row
            record = parser(row, source)
        except RowProblem as problem:
            checked.error_count += 1
            if len(checked.errors) < ERRORS_KEPT:
                checked.errors.append(RowError(table.name, lineno, problem.field, problem.reason, table.unit))
            continue
        checked.valid += 1
        if isinstance(record, JudgedPairRecord):
            digests.append(_row_digest(canonical_json(row)))
    checked.repeated = _repeated(digests)
    progress("checking", checked.rows, checked.rows)
    return checked


def _repeated(digests: array) -> frozenset[int]:
    """The values that occur more than once, found by sorting 8 bytes a row rather than with a set of rows."""
    if len(digests) < 2:
        return frozenset()
    import numpy as np

    ordered = np.sort(np.frombuffer(digests, dtype=np.uint64))
    return frozenset(int(d) for d in np.unique(ordered[1:][ordered[1:] == ordered[:-1]]))


# ---- pass 2: write ---------------------------------------------------------------------------------------


@dataclass
class _Write:
    project: Project
    summary: ImportSummary
    prompts_before: int
    """Prompts and responses with higher ids were created by this import (its rows count as imported)."""
    responses_before: int
    responses_prompts: array = field(default_factory=lambda: array("q"))
    """Prompts of response rows, whose comparisons are made once every row is in."""


def _write(
    project: Project,
    table: Table,
    parser,
    source: str,
    checked: _Checked,
    summary: ImportSummary,
    progress: Progress,
    should_stop: Callable[[], bool],
    chunk_rows: int,
) -> None:
    state = _Write(
        project,
        summary,
        prompts_before=Prompt.objects.aggregate(m=Max("id"))["m"] or 0,
        responses_before=Response.objects.aggregate(m=Max("id"))["m"] or 0,
    )
    # Identical rows in one file are distinct judgements (two votes); the occurrence number keeps them apart
    # while a re-import of the whole file maps each row onto its earlier self.
    occurrences: dict[int, int] = defaultdict(int)
    batch: list[tuple[Record, str | None]] = []
    chars = rows = valid = 0
    analyse_at = ANALYSE_FIRST
    for _, row in table.rows():
        rows += 1
        try:
            if isinstance(row, RowProblem):
                raise row
            record = parser(row, source)
        except RowProblem:
            continue
        valid += 1
        label_key = None
        if isinstance(record, JudgedPairRecord):
            row_json = canonical_json(row)
            digest = _row_digest(row_json)
            n = 1
            if digest in checked.repeated:
                occurrences[digest] += 1
                n = occurrences[digest]
            label_key = text_hash(f"{record.source}\x00{row_json}\x00{n}")
        batch.append((record, label_key))
        chars += _chars(record)
        if len(batch) >= chunk_rows or chars >= CHUNK_CHARS:
            _write_chunk(state, batch)
            batch, chars = [], 0
            if rows >= analyse_at:
                _analyse()
                analyse_at *= 2
            progress("writing", rows, checked.rows)
            if should_stop():
                raise ImportStopped
    if batch:
        _write_chunk(state, batch)
    if (rows, valid) != (checked.rows, checked.valid):
        raise ImportFailed([RowError(table.name, None, None, "the file changed while it was being imported")])
    progress("writing", rows, checked.rows)
    if rows >= ANALYSE_FIRST:
        _analyse()
    _compare_responses(state, progress, should_stop)


def _analyse() -> None:
    """Fresh planner statistics for the tables this import fills, inside its transaction (PostgreSQL).

    PostgreSQL plans with the statistics a table had before the transaction began: to it, a table that has grown
    by a million rows since is still empty, and the lookup of a chunk's prompts by (project, hash) scans every
    prompt of the project instead of using the unique index, so each chunk takes longer than the last. ANALYZE
    in the transaction counts the transaction's own rows. Its lock is held until the commit, so a second large
    import at the same time does not wait for it: that one goes on with the statistics there are."""
    if connection.vendor != "postgresql":
        return
    tables = ", ".join(
        connection.ops.quote_name(m._meta.db_table) for m in (Prompt, Response, Comparison, RankingItem, Label)
    )
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('lock_timeout'), set_config('lock_timeout', '200ms', true)")
            (before, _), *_ = cursor.fetchall()
            cursor.execute(f"ANALYZE {tables}")
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [before])
    except OperationalError:  # another transaction holds the lock: the savepoint is rolled back, the import goes on
        pass


def _chars(record: Record) -> int:
    return sum(len(m["content"]) for m in record.messages) + sum(len(r.text) for r in _replies(record))


def _chunks(items: Iterable, size: int = QUERY_CHUNK) -> Iterator[list]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _replies(record: Record) -> list[Reply]:
    if isinstance(record, ResponsesRecord):
        return record.replies
    if isinstance(record, JudgedPairRecord):
        return [record.first, record.second]
    return []


def _write_chunk(state: _Write, batch: list[tuple[Record, str | None]]) -> None:
    project, summary = state.project, state.summary
    records = [r for r, _ in batch]
    new_rows = [False] * len(records)  # whether the row added something

    # 1. Prompts, by content hash; the first row of a new prompt gives its metadata.
    prompt_hash = [messages_hash(r.messages) for r in records]
    prompt_ids: dict[str, int] = {}
    for chunk in _chunks(set(prompt_hash)):
        prompt_ids.update(
            Prompt.objects.filter(project=project, content_hash__in=chunk).values_list("content_hash", "id")
        )
    to_create: dict[str, Prompt] = {}
    for r, h in zip(records, prompt_hash, strict=True):
        if h not in prompt_ids:
            to_create.setdefault(h, Prompt(project=project, messages=r.messages, metadata=r.metadata, content_hash=h))
    for obj in Prompt.objects.bulk_create(to_create.values(), batch_size=1000):
        prompt_ids[obj.content_hash] = obj.id
    summary.created["prompts"] += len(to_create)
    pids = [prompt_ids[h] for h in prompt_hash]
    for i, pid in enumerate(pids):
        new_rows[i] = pid > state.prompts_before

    # 2. Responses, by (prompt, model, text hash).
    response_keys = [
        [(pid, rep.model, text_hash(rep.text)) for rep in _replies(r)] for r, pid in zip(records, pids, strict=True)
    ]
    response_ids: dict[tuple[int, str, str], int] = {}
    for chunk in _chunks({key for keys in response_keys for key in keys}):
        found = Response.objects.filter(
            prompt_id__in={pid for pid, _, _ in chunk}, content_hash__in={h for _, _, h in chunk}
        ).values_list("prompt_id", "model", "content_hash", "id")
        for pid, model, h, rid in found:
            response_ids[(pid, model, h)] = rid
    new_responses: dict[tuple[int, str, str], Response] = {}
    for r, keys in zip(records, response_keys, strict=True):
        for key, rep in zip(keys, _replies(r), strict=True):
            if key not in response_ids:
                new_responses.setdefault(
                    key,
                    Response(
                        prompt_id=key[0], text=rep.text, model=rep.model, generation=rep.generation, content_hash=key[2]
                    ),
                )
    for obj in Response.objects.bulk_create(new_responses.values(), batch_size=1000):
        response_ids[(obj.prompt_id, obj.model, obj.content_hash)] = obj.id
    summary.created["responses"] += len(new_responses)
    for i, (r, keys) in enumerate(zip(records, response_keys, strict=True)):
        if isinstance(r, ResponsesRecord):
            if any(response_ids[k] > state.responses_before for k in keys):
                new_rows[i] = True
            state.responses_prompts.append(pids[i])

    # 3. The judged pairs' own comparisons.
    judged = [i for i, r in enumerate(records) if isinstance(r, JudgedPairRecord)]
    pair_of = {i: (pids[i], members_key([response_ids[k] for k in response_keys[i]])) for i in judged}
    comparison_ids: dict[tuple[int, str], int] = {}
    for chunk in _chunks(set(pair_of.values())):
        found = Comparison.objects.filter(
            prompt_id__in={pid for pid, _ in chunk}, members_key__in={key for _, key in chunk}
        ).values_list("prompt_id", "members_key", "id")
        for pid, key, cid in found:
            comparison_ids[(pid, key)] = cid
    wanted: list[tuple[int, list[int]]] = []
    for i in judged:
        if pair_of[i] not in comparison_ids:
            comparison_ids[pair_of[i]] = 0  # wanted; its id comes below
            wanted.append((pids[i], sorted(response_ids[k] for k in response_keys[i])))
    created = comparisons_create(project=project, wanted=wanted)
    for obj, (pid, _) in zip(created, wanted, strict=True):
        comparison_ids[(pid, obj.members_key)] = obj.id
    summary.created["comparisons"] += len(created)

    # 4. Imported labels, keyed by source and row so a re-import adds none; the same file imported into
    # another project is that project's labels, so only this project's keys count as present.
    present: set[str] = set()
    for chunk in _chunks(key for _, key in batch if key):
        present.update(
            Label.objects.filter(comparison__project=project, import_key__in=chunk).values_list("import_key", flat=True)
        )
    labels = []
    for i in judged:
        r, key = batch[i]
        if key in present:
            continue
        present.add(key)
        first_id, second_id = (response_ids[k] for k in response_keys[i])
        choice = {"tie": Label.Choice.TIE, "both_bad": Label.Choice.BOTH_BAD}.get(r.outcome)
        if choice is None:
            winner = first_id if r.outcome == "first" else second_id
            choice = Label.Choice.A if winner == min(first_id, second_id) else Label.Choice.B
        labels.append(Label(comparison_id=comparison_ids[pair_of[i]], source=r.source, choice=choice, import_key=key))
        new_rows[i] = True
    Label.objects.bulk_create(labels, batch_size=1000)
    summary.created["labels"] += len(labels)

    summary.imported += sum(new_rows)
    summary.already_present += len(records) - sum(new_rows)


def _compare_responses(state: _Write, progress: Progress, should_stop: Callable[[], bool]) -> None:
    """New pairs (up to the project's cap) or a ranking among each prompt's responses, old and new, decided with
    every row in: prompt by prompt, so the outcome is the same however the rows were chunked."""
    project = state.project
    pids = _unique(state.responses_prompts)
    state.responses_prompts = array("q")
    done = 0
    for chunk in _chunks(pids):
        existing: dict[int, set[str]] = defaultdict(set)
        pair_count: dict[int, int] = defaultdict(int)
        for pid, key, kind in Comparison.objects.filter(prompt_id__in=chunk).values_list(
            "prompt_id", "members_key", "kind"
        ):
            existing[pid].add(key)
            pair_count[pid] += kind == Comparison.Kind.PAIR
        by_prompt: dict[int, list[int]] = defaultdict(list)
        for pid, rid in Response.objects.filter(prompt_id__in=chunk).order_by("id").values_list("prompt_id", "id"):
            by_prompt[pid].append(rid)
        wanted = [
            (pid, ids)
            for pid in chunk
            for ids in _new_comparisons(project, by_prompt[pid], existing[pid], pair_count[pid])
        ]
        state.summary.created["comparisons"] += len(comparisons_create(project=project, wanted=wanted))
        done += len(chunk)
        progress("comparing", done, len(pids))
        if should_stop():
            raise ImportStopped


def _new_comparisons(project: Project, ids: list[int], existing: set[str], pairs: int) -> list[list[int]]:
    """The comparisons a prompt's responses (`ids`, oldest first) still need: one ranking of up to RANKING_MAX in a
    ranking project (when the prompt has none yet), else pairs in order up to the project's cap."""
    if project.comparison_mode == Project.ComparisonMode.RANKING and len(ids) >= 3:
        has_ranking = any(k.count(",") >= 2 for k in existing)
        return [] if has_ranking else [ids[:RANKING_MAX]]
    wanted = []
    for a, b in itertools.combinations(ids, 2):
        if pairs >= project.max_pairs_per_prompt:
            break
        if members_key([a, b]) not in existing:
            wanted.append(sorted([a, b]))
            pairs += 1
    return wanted


def _unique(values: array) -> list[int]:
    if not values:
        return []
    import numpy as np

    return [int(v) for v in np.unique(np.frombuffer(values, dtype=np.int64))]
