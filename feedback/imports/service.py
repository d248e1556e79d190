"""The one import path behind the command, the admin upload and the API.

Rows are parsed and validated in full before anything is written; the writes then happen in one
transaction with set-based queries (a constant number per chunk of rows, not per row), so a bad file
changes nothing and a 100k-row file takes seconds.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction

from feedback.comparisons import RANKING_MAX, comparisons_create
from feedback.hashing import canonical_json, members_key, messages_hash, text_hash
from feedback.models import Comparison, Label, Project, Prompt, Response

from .errors import ImportFailed, RowError, RowProblem
from .kinds import KINDS, PARSERS, JudgedPairRecord, Record, Reply, ResponsesRecord, detect_kind
from .readers import Limits, open_table

CHUNK = 500


@dataclass
class ImportSummary:
    file: str
    kind: str
    rows: int = 0
    imported: int = 0
    already_present: int = 0
    skipped: list[RowError] = field(default_factory=list)
    created: dict[str, int] = field(
        default_factory=lambda: {"prompts": 0, "responses": 0, "comparisons": 0, "labels": 0}
    )

    def as_dict(self) -> dict:
        return {
            "file": self.file,
            "kind": self.kind,
            "rows": self.rows,
            "imported": self.imported,
            "already_present": self.already_present,
            "skipped": len(self.skipped),
            "skipped_rows": [{"line": e.line, "field": e.field, "reason": e.reason} for e in self.skipped],
            "created": self.created,
        }

    def __str__(self) -> str:
        c = self.created
        text = (
            f"{self.file}: {self.kind}; {self.imported} rows imported, {len(self.skipped)} skipped, "
            f"{self.already_present} already present (created {c['prompts']} prompts, {c['responses']} responses, "
            f"{c['comparisons']} comparisons, {c['labels']} labels)"
        )
        return "\n".join([text, *(f"  skipped {e}" for e in self.skipped)])


def default_limits() -> Limits:
    return Limits(settings.JUROR_IMPORT_MAX_BYTES, settings.JUROR_IMPORT_MAX_ROWS)


def data_import(
    *,
    project: Project,
    path: Path,
    fmt: str | None = None,
    skip_invalid: bool = False,
    source: str | None = None,
    display_name: str | None = None,
    limits: Limits | None = None,
) -> ImportSummary:
    """Imports one file into `project`; raises ImportFailed (nothing written) on bad input.

    `source` names who judged imported pairs (default: the file name without extension); a `source` column
    overrides it per row.
    """
    table = open_table(Path(path), fmt, limits or default_limits(), display_name)
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
    source = source or Path(table.name.removesuffix(".gz")).stem or "import"
    summary = ImportSummary(table.name, kind)
    parser = PARSERS[kind]
    records: list[tuple[int, Record, str]] = []
    errors: list[RowError] = []
    seen_rows: dict[str, int] = defaultdict(int)
    for lineno, row in table.rows:
        summary.rows += 1
        try:
            if isinstance(row, RowProblem):
                raise row
            record = parser(row, source)
        except RowProblem as problem:
            errors.append(RowError(table.name, lineno, problem.field, problem.reason, table.unit))
            continue
        # Identical rows in one file are distinct judgements (two votes); the occurrence number keeps them
        # apart while a re-import of the whole file maps each row onto its earlier self.
        row_key = canonical_json(row)
        seen_rows[row_key] += 1
        records.append((lineno, record, f"{row_key}\x00{seen_rows[row_key]}"))
    if summary.rows == 0:
        raise ImportFailed([RowError(table.name, None, None, "the file has no rows")])
    if errors and not skip_invalid:
        raise ImportFailed(
            errors, "nothing was imported; fix the file, or skip invalid rows (--skip-invalid) to import the valid ones"
        )
    summary.skipped = errors
    with transaction.atomic():
        _write(project, records, summary)
    return summary


def _chunks(items: Iterable, size: int = CHUNK) -> Iterator[list]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _replies(record: Record) -> list[Reply]:
    if isinstance(record, ResponsesRecord):
        return record.replies
    if isinstance(record, JudgedPairRecord):
        return [record.first, record.second]
    return []


def _write(project: Project, records: list[tuple[int, Record, str]], summary: ImportSummary) -> None:
    new_rows: set[int] = set()  # indexes of records that added something

    # 1. Prompts, by content hash.
    prompt_hash = [messages_hash(r.messages) for _, r, _ in records]
    prompt_ids: dict[str, int] = {}
    for chunk in _chunks(set(prompt_hash)):
        prompt_ids.update(
            Prompt.objects.filter(project=project, content_hash__in=chunk).values_list("content_hash", "id")
        )
    to_create: dict[str, Prompt] = {}
    for i, (_, r, _) in enumerate(records):
        h = prompt_hash[i]
        if h not in prompt_ids:
            new_rows.add(i)
            to_create.setdefault(h, Prompt(project=project, messages=r.messages, metadata=r.metadata, content_hash=h))
    for obj in Prompt.objects.bulk_create(to_create.values(), batch_size=1000):
        prompt_ids[obj.content_hash] = obj.id
    summary.created["prompts"] = len(to_create)

    # 2. Responses, by (prompt, model, text hash).
    response_keys: list[list[tuple[int, str, str]]] = []
    for i, (_, r, _) in enumerate(records):
        pid = prompt_ids[prompt_hash[i]]
        response_keys.append([(pid, rep.model, text_hash(rep.text)) for rep in _replies(r)])
    response_ids: dict[tuple[int, str, str], int] = {}
    touched_prompts = {prompt_ids[h] for h in prompt_hash}
    for chunk in _chunks(touched_prompts):
        for pid, model, h, rid in Response.objects.filter(prompt_id__in=chunk).values_list(
            "prompt_id", "model", "content_hash", "id"
        ):
            response_ids[(pid, model, h)] = rid
    new_responses: dict[tuple[int, str, str], Response] = {}
    for i, (_, r, _) in enumerate(records):
        for key, rep in zip(response_keys[i], _replies(r), strict=True):
            if key not in response_ids:
                if not isinstance(r, JudgedPairRecord):
                    new_rows.add(i)
                new_responses.setdefault(
                    key,
                    Response(
                        prompt_id=key[0], text=rep.text, model=rep.model, generation=rep.generation, content_hash=key[2]
                    ),
                )
    for obj in Response.objects.bulk_create(new_responses.values(), batch_size=1000):
        response_ids[(obj.prompt_id, obj.model, obj.content_hash)] = obj.id
    summary.created["responses"] = len(new_responses)

    # 3. Comparisons: the judged pairs themselves, and new pairs or rankings among each prompt's responses.
    existing: dict[int, set[str]] = defaultdict(set)
    pair_count: dict[int, int] = defaultdict(int)
    comparison_ids: dict[tuple[int, str], int] = {}
    for chunk in _chunks(touched_prompts):
        for pid, key, kind, cid in Comparison.objects.filter(prompt_id__in=chunk).values_list(
            "prompt_id", "members_key", "kind", "id"
        ):
            existing[pid].add(key)
            comparison_ids[(pid, key)] = cid
            pair_count[pid] += kind == Comparison.Kind.PAIR
    wanted: list[tuple[int, list[int]]] = []

    def want(pid: int, ids: list[int]) -> None:
        key = members_key(ids)
        if key not in existing[pid]:
            existing[pid].add(key)
            wanted.append((pid, sorted(ids)))
            if len(ids) == 2:
                pair_count[pid] += 1

    for i, (_, r, _) in enumerate(records):
        if isinstance(r, JudgedPairRecord):
            ids = [response_ids[k] for k in response_keys[i]]
            want(response_keys[i][0][0], ids)
    responses_prompts = sorted(
        {prompt_ids[prompt_hash[i]] for i, (_, r, _) in enumerate(records) if isinstance(r, ResponsesRecord)}
    )
    by_prompt: dict[int, list[int]] = defaultdict(list)
    for chunk in _chunks(responses_prompts):
        for pid, rid in Response.objects.filter(prompt_id__in=chunk).order_by("id").values_list("prompt_id", "id"):
            by_prompt[pid].append(rid)
    for pid in responses_prompts:
        ids = by_prompt[pid]
        if project.comparison_mode == Project.ComparisonMode.RANKING and len(ids) >= 3:
            if not any(k.count(",") >= 2 for k in existing[pid]):  # no ranking yet
                want(pid, ids[:RANKING_MAX])
            continue
        for a, b in itertools.combinations(ids, 2):
            if pair_count[pid] >= project.max_pairs_per_prompt:
                break
            want(pid, [a, b])
    created = comparisons_create(project=project, wanted=wanted)
    for obj, (pid, _) in zip(created, wanted, strict=True):
        comparison_ids[(pid, obj.members_key)] = obj.id
    summary.created["comparisons"] = len(created)

    # 4. Imported labels, keyed by source and row so a re-import adds none.
    label_keys: dict[int, str] = {}
    for i, (_, r, row_key) in enumerate(records):
        if isinstance(r, JudgedPairRecord):
            label_keys[i] = text_hash(f"{r.source}\x00{row_key}")
    present: set[str] = set()
    for chunk in _chunks(label_keys.values()):
        present.update(Label.objects.filter(import_key__in=chunk).values_list("import_key", flat=True))
    labels = []
    for i, key in label_keys.items():
        if key in present:
            continue
        present.add(key)
        r = records[i][1]
        first_id, second_id = (response_ids[k] for k in response_keys[i])
        pid = response_keys[i][0][0]
        cid = comparison_ids[(pid, members_key([first_id, second_id]))]
        choice = {"tie": Label.Choice.TIE, "both_bad": Label.Choice.BOTH_BAD}.get(r.outcome)
        if choice is None:
            winner = first_id if r.outcome == "first" else second_id
            choice = Label.Choice.A if winner == min(first_id, second_id) else Label.Choice.B
        labels.append(Label(comparison_id=cid, source=r.source, choice=choice, import_key=key))
        new_rows.add(i)
    Label.objects.bulk_create(labels, batch_size=1000)
    summary.created["labels"] = len(labels)

    summary.imported = len(new_rows)
    summary.already_present = len(records) - len(new_rows)
