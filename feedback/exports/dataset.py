"""The preference dataset: labels read from the database in chunks, filtered, aggregated per comparison, and
turned into plain rows. Exports write these rows; training jobs will read them the same way."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from functools import lru_cache

from django.conf import settings
from django.db.models import Q, QuerySet, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from annotators.models import Membership
from feedback.annotation import gold_accuracy_by_annotator
from feedback.labels import ranking_pairs
from feedback.models import Comparison, Demonstration, Label, Project, RankingItem

from .options import ExportOptions
from .sql import IsoTimestamp

VOTES = ("a", "b", "tie", "both_bad")


@lru_cache(maxsize=4096)
def pseudonym(user_id: int | None, source: str = "") -> str:
    """Stable within this installation (keyed by SECRET_KEY), meaningless outside it."""
    if user_id is None:
        return f"source:{source}"
    digest = hmac.new(settings.SECRET_KEY.encode(), f"annotator:{user_id}".encode(), hashlib.sha256).hexdigest()
    return f"annotator:{digest[:12]}"


# Rows arrive grouped by comparison, so a small cache catches the repeats and memory stays flat.
@lru_cache(maxsize=4096)
def _bucket(seed: int, prompt_hash: str) -> float:
    return int(hashlib.sha256(f"{seed}:{prompt_hash}".encode()).hexdigest()[:8], 16) / 0x100000000


def split_of(prompt_hash: str, options: ExportOptions) -> str:
    """By prompt, so one prompt's rows are all in train or all in test; the seed reshuffles deterministically."""
    return "test" if _bucket(options.seed, prompt_hash) < options.test_fraction else "train"


def excluded_annotators(project: Project, options: ExportOptions) -> set[int]:
    excluded = set(
        Membership.objects.filter(project=project, excluded_from_exports=True).values_list("user_id", flat=True)
    )
    if options.exclude:
        excluded |= set(
            Membership.objects.filter(project=project, user__username__in=options.exclude).values_list(
                "user_id", flat=True
            )
        )
    if options.min_gold_accuracy is not None:
        accuracy = gold_accuracy_by_annotator(project)
        excluded |= {a for a, (right, n) in accuracy.items() if right / n < options.min_gold_accuracy}
    return excluded


def filtered_labels(project: Project, options: ExportOptions) -> QuerySet[Label]:
    labels = Label.objects.filter(comparison__project=project)
    if options.sources:
        wanted = Q(pk__in=[])
        if "annotators" in options.sources:
            wanted |= Q(annotator__isnull=False)
        others = [s for s in options.sources if s != "annotators"]
        if others:
            wanted |= Q(annotator__isnull=True, source__in=others)
        labels = labels.filter(wanted)
    return _dated_people_filters(labels, project, options, person="annotator")


def _dated_people_filters(qs: QuerySet, project: Project, options: ExportOptions, *, person: str) -> QuerySet:
    """Date range, excluded people and segment: the same rules for labels (annotator) and demonstrations (author)."""
    if options.since:
        qs = qs.filter(created_at__date__gte=options.since)
    if options.until:
        qs = qs.filter(created_at__date__lte=options.until)
    excluded = excluded_annotators(project, options)
    if excluded:
        qs = qs.exclude(**{f"{person}_id__in": excluded})
    if options.segment:
        # The person's segment in this project (their membership here), never one set in another project.
        key, value = (part.strip() for part in options.segment.split("=", 1))
        # KeyTextTransform names the key as a key: `attributes__<key>` would read a key called "isnull",
        # "contains" or "regex" as that lookup on the whole field.
        # (Cast: an annotation of a JSON key still compares as JSON.)
        segment_value = Cast(KeyTextTransform(key, "attributes"), TextField())
        in_segment = Membership.objects.annotate(segment_value=segment_value).filter(
            project=project, segment_value=value
        )
        qs = qs.filter(**{f"{person}_id__in": in_segment.values("user_id")})
    return qs


@dataclass(slots=True)
class Item:
    """A comparison as exports need it; plain values, not ORM objects, so a million rows stay fast."""

    id: int
    kind: str
    prompt_id: int
    prompt_hash: str
    messages: list[dict] | None = None
    responses: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> (text, model)
    response_a: int | None = None
    response_b: int | None = None


@dataclass(slots=True)
class LabelRow:
    id: int
    annotator_id: int | None
    source: str
    choice: str
    ranking: list | None
    strength: int | None
    rationale: str
    shown_left_id: int | None
    time_spent_ms: int | None
    created_at: str
    """ISO 8601, UTC, computed by the database (see sql.py)."""


LABEL_FIELDS = [f.name for f in fields(LabelRow)]


@dataclass
class Unit:
    """One pair to aggregate: a pair comparison, or two responses of a ranking. `a` means x beat y."""

    item: Item
    x: int
    y: int
    votes: list[tuple[str, str, int | None]]  # (worker, vote, strength)

    @property
    def key(self) -> str:
        return f"{self.item.id}:{self.x}:{self.y}"


def _items(project: Project, options: ExportOptions, *, texts: bool) -> Iterator[list[Item]]:
    """Comparisons in id order, a chunk at a time; with `texts`, their prompt and responses too."""
    base = ["id", "kind", "prompt_id", "prompt__content_hash", "response_a_id", "response_b_id"]
    extra = ["prompt__messages", "response_a__text", "response_a__model", "response_b__text", "response_b__model"]
    qs = Comparison.objects.filter(project=project).order_by("id").values_list(*base, *(extra if texts else []))
    last = 0
    while True:
        chunk = list(qs.filter(id__gt=last)[: options.chunk_size])
        if not chunk:
            return
        last = chunk[-1][0]
        items = []
        for row in chunk:
            item = Item(
                id=row[0], kind=row[1], prompt_id=row[2], prompt_hash=row[3], response_a=row[4], response_b=row[5]
            )
            if texts:
                item.messages = row[6]
                if item.kind == Comparison.Kind.PAIR:
                    item.responses = {row[4]: (row[7], row[8]), row[5]: (row[9], row[10])}
            items.append(item)
        rankings = [i for i in items if i.kind == Comparison.Kind.RANKING]
        if rankings and (texts or options.models):
            by_id = {i.id: i for i in rankings}
            for cid, rid, text, model in (
                RankingItem.objects.filter(comparison_id__in=by_id)
                .order_by("comparison_id", "position")
                .values_list("comparison_id", "response_id", "response__text", "response__model")
            ):
                by_id[cid].responses[rid] = (text, model)
        yield items


def _models_ok(item: Item, options: ExportOptions) -> bool:
    return not options.models or all(model in options.models for _, model in item.responses.values())


def labelled_chunks(
    project: Project, options: ExportOptions, *, texts: bool = True
) -> Iterator[list[tuple[Item, list[LabelRow]]]]:
    labels = (
        filtered_labels(project, options)
        .annotate(created_iso=IsoTimestamp("created_at"))
        .order_by("id")
        .values_list(*LABEL_FIELDS[1:-1], "created_iso", "comparison_id", "id")
    )
    for chunk in _items(project, options, texts=texts or bool(options.models)):
        chunk = [i for i in chunk if _models_ok(i, options)]
        if not chunk:
            continue
        by_item: dict[int, list[LabelRow]] = defaultdict(list)
        for *values, comparison_id, label_id in labels.filter(comparison_id__in=[i.id for i in chunk]):
            by_item[comparison_id].append(LabelRow(label_id, *values))
        yield [(i, by_item[i.id]) for i in chunk if by_item[i.id]]


def units_of(item: Item, labels: list[LabelRow]) -> list[Unit]:
    if item.kind == Comparison.Kind.PAIR:
        votes = [
            (pseudonym(lab.annotator_id, lab.source), lab.choice, lab.strength) for lab in labels if lab.choice in VOTES
        ]
        return [Unit(item, item.response_a, item.response_b, votes)] if votes else []
    units: dict[tuple[int, int], Unit] = {}
    for lab in labels:
        if not lab.ranking:
            continue
        worker = pseudonym(lab.annotator_id, lab.source)
        for first, second, outcome in ranking_pairs(lab.ranking):
            x, y = sorted((first, second))
            vote = "tie" if outcome == "tie" else ("a" if first == x else "b")
            units.setdefault((x, y), Unit(item, x, y, [])).votes.append((worker, vote, None))
    return list(units.values())


def majority(votes: list[tuple[str, str, int | None]]) -> tuple[str, float]:
    counts = Counter(v for _, v, _ in votes)
    top = max(counts.values())
    winners = [v for v in VOTES if counts.get(v) == top]
    # A split decision between the two answers is no preference: it counts as a tie.
    outcome = winners[0] if len(winners) == 1 else "tie"
    return outcome, top / len(votes)


def dawid_skene(project: Project, options: ExportOptions) -> dict[str, tuple[str, float]]:
    """Fits crowd-kit's Dawid–Skene over every filtered vote: each worker (annotator or imported source) gets a
    confusion matrix, so reliable people count for more. Returns unit key → (outcome, posterior)."""
    import pandas as pd
    from crowdkit.aggregation import DawidSkene

    tasks, workers, votes = [], [], []
    for chunk in labelled_chunks(project, options):
        for item, labels in chunk:
            for unit in units_of(item, labels):
                for worker, vote, _ in unit.votes:
                    tasks.append(unit.key)
                    workers.append(worker)
                    votes.append(vote)
    if not tasks:
        return {}
    frame = pd.DataFrame({"task": tasks, "worker": workers, "label": votes})
    model = DawidSkene(n_iter=100).fit(frame)
    probas = model.probas_
    return {task: (label, float(probas.at[task, label])) for task, label in model.labels_.items()}


def aggregated_units(project: Project, options: ExportOptions) -> Iterator[tuple[Unit, str, float]]:
    """Every unit that passes the filters, with its outcome and agreement, in a stable order."""
    fitted = dawid_skene(project, options) if options.aggregation == "dawid_skene" else None
    for chunk in labelled_chunks(project, options):
        for item, labels in chunk:
            for unit in units_of(item, labels):
                if len(unit.votes) < options.min_labels:
                    continue
                outcome, agreement = fitted[unit.key] if fitted is not None else majority(unit.votes)
                if agreement < options.min_agreement:
                    continue
                if outcome == "tie" and not options.include_ties:
                    continue
                if outcome == "both_bad" and not options.include_both_bad:
                    continue
                yield unit, outcome, agreement


# ---- rows per kind --------------------------------------------------------------------------------------


def _prompt_text(messages: list[dict]) -> str:
    """Standard style is plain text: a one-turn prompt is its text; longer ones keep their turns, labelled."""
    if len(messages) == 1:
        return messages[0]["content"]
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)


def _reply(text: str, options: ExportOptions):
    return text if options.style == "standard" else [{"role": "assistant", "content": text}]


def _prompt(messages: list[dict], options: ExportOptions):
    return _prompt_text(messages) if options.style == "standard" else messages


def pair_rows(project: Project, options: ExportOptions) -> Iterator[tuple[str, dict]]:
    for unit, outcome, agreement in aggregated_units(project, options):
        item = unit.item
        x, y = unit.x, unit.y
        if outcome == "b":
            x, y = y, x
        (x_text, x_model), (y_text, y_model) = item.responses[x], item.responses[y]
        agreeing = [s for _, v, s in unit.votes if v == outcome and s is not None]
        row = {
            "prompt": _prompt(item.messages, options),
            "chosen": _reply(x_text, options),
            "rejected": _reply(y_text, options),
            "comparison_id": item.id,
            "prompt_id": item.prompt_id,
            "chosen_model": x_model,
            "rejected_model": y_model,
            "chosen_response_id": x,
            "rejected_response_id": y,
            "num_labels": len(unit.votes),
            "agreement": round(agreement, 6),
            "strength": round(sum(agreeing) / len(agreeing), 6) if agreeing else None,
            "outcome": {"a": "chosen", "b": "chosen"}.get(outcome, outcome),
        }
        if options.segment:
            row["segment"] = options.segment
        yield split_of(item.prompt_hash, options), row


def kto_rows(project: Project, options: ExportOptions) -> Iterator[tuple[str, dict]]:
    """Unpaired rows: the winner desirable, the loser not; both-bad pairs give two undesirable rows. Ties say
    nothing about either answer on its own, so they give no rows."""
    for split, pair in pair_rows(project, options):
        if pair["outcome"] == "tie":
            continue
        for completion, model, good in (
            (pair["chosen"], pair["chosen_model"], pair["outcome"] == "chosen"),
            (pair["rejected"], pair["rejected_model"], False),
        ):
            row = {
                "prompt": pair["prompt"],
                "completion": completion,
                "label": good,
                "comparison_id": pair["comparison_id"],
                "prompt_id": pair["prompt_id"],
                "model": model,
                "num_labels": pair["num_labels"],
                "agreement": pair["agreement"],
            }
            if options.segment:
                row["segment"] = options.segment
            yield split, row


def label_rows(project: Project, options: ExportOptions) -> Iterator[tuple[str, dict]]:
    for chunk in labelled_chunks(project, options, texts=False):
        for item, labels in chunk:
            split = split_of(item.prompt_hash, options)
            for lab in labels:
                row = {
                    "label_id": lab.id,
                    "comparison_id": item.id,
                    "prompt_id": item.prompt_id,
                    "kind": item.kind,
                    "annotator": pseudonym(lab.annotator_id, lab.source),
                    "source": lab.source or "annotators",
                    "choice": lab.choice,
                    "ranking": json.dumps(lab.ranking) if lab.ranking else None,
                    "strength": lab.strength,
                    "rationale": lab.rationale,
                    "shown_left_response_id": lab.shown_left_id,
                    "time_spent_ms": lab.time_spent_ms,
                    "created_at": lab.created_at,
                }
                if options.segment:
                    row["segment"] = options.segment
                yield split, row


def ranking_rows(project: Project, options: ExportOptions) -> Iterator[tuple[str, dict]]:
    for chunk in labelled_chunks(project, options):
        for item, labels in chunk:
            if item.kind != Comparison.Kind.RANKING:
                continue
            for lab in labels:
                if not lab.ranking:
                    continue
                order = [(rank, rid) for rank, group in enumerate(lab.ranking, start=1) for rid in group]
                yield (
                    split_of(item.prompt_hash, options),
                    {
                        "comparison_id": item.id,
                        "prompt_id": item.prompt_id,
                        "prompt": item.messages,
                        "completions": [item.responses[rid][0] for _, rid in order],
                        "models": [item.responses[rid][1] for _, rid in order],
                        "ranks": [rank for rank, _ in order],
                        "annotator": pseudonym(lab.annotator_id, lab.source),
                        "source": lab.source or "annotators",
                    },
                )


def demonstration_rows(project: Project, options: ExportOptions) -> Iterator[tuple[str, dict]]:
    demos = Demonstration.objects.filter(prompt__project=project).select_related("prompt").order_by("id")
    demos = _dated_people_filters(demos, project, options, person="author")
    for demo in demos.iterator(chunk_size=options.chunk_size):
        yield (
            split_of(demo.prompt.content_hash, options),
            {
                "messages": [*demo.prompt.messages, {"role": "assistant", "content": demo.text}],
                "demonstration_id": demo.pk,
                "prompt_id": demo.prompt_id,
                "based_on_response_id": demo.based_on_id,
                "author": pseudonym(demo.author_id),
                "created_at": demo.created_at.isoformat(),
            },
        )


ROWS = {
    "pairs": pair_rows,
    "kto": kto_rows,
    "labels": label_rows,
    "rankings": ranking_rows,
    "demonstrations": demonstration_rows,
}
