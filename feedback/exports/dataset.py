"""The preference dataset: labels read from the database in chunks, filtered, aggregated per comparison, and
turned into plain rows. Exports write these rows; training jobs will read them the same way."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q, QuerySet

from annotators.models import Membership
from feedback.labels import ranking_pairs
from feedback.models import Comparison, Demonstration, Label, Project

from .options import ExportOptions

VOTES = ("a", "b", "tie", "both_bad")


def pseudonym(user_id: int | None, source: str = "") -> str:
    """Stable within this installation (keyed by SECRET_KEY), meaningless outside it."""
    if user_id is None:
        return f"source:{source}"
    digest = hmac.new(settings.SECRET_KEY.encode(), f"annotator:{user_id}".encode(), hashlib.sha256).hexdigest()
    return f"annotator:{digest[:12]}"


def split_of(prompt_hash: str, options: ExportOptions) -> str:
    """By prompt, so one prompt's rows are all in train or all in test; the seed reshuffles deterministically."""
    bucket = int(hashlib.sha256(f"{options.seed}:{prompt_hash}".encode()).hexdigest()[:8], 16) / 0x100000000
    return "test" if bucket < options.test_fraction else "train"


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
        gold = Label.objects.filter(comparison__project=project, annotator__isnull=False).exclude(
            comparison__gold_choice=""
        )
        totals: Counter = Counter()
        right: Counter = Counter()
        for annotator_id, choice, gold_choice in gold.values_list("annotator_id", "choice", "comparison__gold_choice"):
            totals[annotator_id] += 1
            right[annotator_id] += choice == gold_choice
        excluded |= {a for a, n in totals.items() if right[a] / n < options.min_gold_accuracy}
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
    if options.since:
        labels = labels.filter(created_at__date__gte=options.since)
    if options.until:
        labels = labels.filter(created_at__date__lte=options.until)
    excluded = excluded_annotators(project, options)
    if excluded:
        labels = labels.exclude(annotator_id__in=excluded)
    if options.segment:
        key, value = (part.strip() for part in options.segment.split("=", 1))
        labels = labels.filter(**{f"annotator__profile__attributes__{key}": value})
    return labels


@dataclass
class Unit:
    """One pair to aggregate: a pair comparison, or two responses of a ranking. `a` means x beat y."""

    comparison: Comparison
    x: int
    y: int
    votes: list[tuple[str, str, int | None]]  # (worker, vote, strength)

    @property
    def key(self) -> str:
        return f"{self.comparison.pk}:{self.x}:{self.y}"


def _comparisons(project: Project, options: ExportOptions) -> Iterator[list[Comparison]]:
    """Comparisons in id order, a chunk at a time, with what rows need already loaded."""
    qs = (
        Comparison.objects.filter(project=project)
        .select_related("prompt", "response_a", "response_b")
        .prefetch_related("ranking_items__response")
        .order_by("id")
    )
    last = 0
    while True:
        chunk = list(qs.filter(id__gt=last)[: options.chunk_size])
        if not chunk:
            return
        last = chunk[-1].pk
        yield chunk


def responses_of(comparison: Comparison) -> dict:
    if comparison.kind == Comparison.Kind.PAIR:
        return {r.pk: r for r in (comparison.response_a, comparison.response_b)}
    return {item.response_id: item.response for item in comparison.ranking_items.all()}


def _models_ok(comparison: Comparison, options: ExportOptions) -> bool:
    return not options.models or all(r.model in options.models for r in responses_of(comparison).values())


def labelled_chunks(project: Project, options: ExportOptions) -> Iterator[list[tuple[Comparison, list[Label]]]]:
    labels = filtered_labels(project, options)
    for chunk in _comparisons(project, options):
        chunk = [c for c in chunk if _models_ok(c, options)]
        by_comparison: dict[int, list[Label]] = defaultdict(list)
        for label in labels.filter(comparison_id__in=[c.pk for c in chunk]).order_by("id"):
            by_comparison[label.comparison_id].append(label)
        yield [(c, by_comparison[c.pk]) for c in chunk if by_comparison[c.pk]]


def units_of(comparison: Comparison, labels: list[Label]) -> list[Unit]:
    if comparison.kind == Comparison.Kind.PAIR:
        votes = [
            (pseudonym(lab.annotator_id, lab.source), lab.choice, lab.strength) for lab in labels if lab.choice in VOTES
        ]
        return [Unit(comparison, comparison.response_a_id, comparison.response_b_id, votes)] if votes else []
    units: dict[tuple[int, int], Unit] = {}
    for lab in labels:
        if not lab.ranking:
            continue
        worker = pseudonym(lab.annotator_id, lab.source)
        for first, second, outcome in ranking_pairs(lab.ranking):
            x, y = sorted((first, second))
            vote = "tie" if outcome == "tie" else ("a" if first == x else "b")
            units.setdefault((x, y), Unit(comparison, x, y, [])).votes.append((worker, vote, None))
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
        for comparison, labels in chunk:
            for unit in units_of(comparison, labels):
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
        for comparison, labels in chunk:
            for unit in units_of(comparison, labels):
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
        c = unit.comparison
        responses = responses_of(c)
        chosen, rejected = (
            (responses[unit.y], responses[unit.x]) if outcome == "b" else (responses[unit.x], responses[unit.y])
        )
        agreeing = [s for _, v, s in unit.votes if v == outcome and s is not None]
        row = {
            "prompt": _prompt(c.prompt.messages, options),
            "chosen": _reply(chosen.text, options),
            "rejected": _reply(rejected.text, options),
            "comparison_id": c.pk,
            "prompt_id": c.prompt_id,
            "chosen_model": chosen.model,
            "rejected_model": rejected.model,
            "num_labels": len(unit.votes),
            "agreement": round(agreement, 6),
            "strength": round(sum(agreeing) / len(agreeing), 6) if agreeing else None,
            "outcome": {"a": "chosen", "b": "chosen"}.get(outcome, outcome),
        }
        if options.segment:
            row["segment"] = options.segment
        yield split_of(c.prompt.content_hash, options), row


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
    for chunk in labelled_chunks(project, options):
        for comparison, labels in chunk:
            for lab in labels:
                row = {
                    "label_id": lab.pk,
                    "comparison_id": comparison.pk,
                    "prompt_id": comparison.prompt_id,
                    "kind": comparison.kind,
                    "annotator": pseudonym(lab.annotator_id, lab.source),
                    "source": lab.source or "annotators",
                    "choice": lab.choice,
                    "ranking": json.dumps(lab.ranking) if lab.ranking else None,
                    "strength": lab.strength,
                    "rationale": lab.rationale,
                    "shown_left_response_id": lab.shown_left_id,
                    "time_spent_ms": lab.time_spent_ms,
                    "created_at": lab.created_at.isoformat(),
                }
                if options.segment:
                    row["segment"] = options.segment
                yield split_of(comparison.prompt.content_hash, options), row


def ranking_rows(project: Project, options: ExportOptions) -> Iterator[tuple[str, dict]]:
    for chunk in labelled_chunks(project, options):
        for comparison, labels in chunk:
            if comparison.kind != Comparison.Kind.RANKING:
                continue
            responses = responses_of(comparison)
            for lab in labels:
                if not lab.ranking:
                    continue
                order = [(rank, rid) for rank, group in enumerate(lab.ranking, start=1) for rid in group]
                yield (
                    split_of(comparison.prompt.content_hash, options),
                    {
                        "comparison_id": comparison.pk,
                        "prompt_id": comparison.prompt_id,
                        "prompt": comparison.prompt.messages,
                        "completions": [responses[rid].text for _, rid in order],
                        "models": [responses[rid].model for _, rid in order],
                        "ranks": [rank for rank, _ in order],
                        "annotator": pseudonym(lab.annotator_id, lab.source),
                        "source": lab.source or "annotators",
                    },
                )


def demonstration_rows(project: Project, options: ExportOptions) -> Iterator[tuple[str, dict]]:
    demos = Demonstration.objects.filter(prompt__project=project).select_related("prompt").order_by("id")
    if options.since:
        demos = demos.filter(created_at__date__gte=options.since)
    if options.until:
        demos = demos.filter(created_at__date__lte=options.until)
    excluded = excluded_annotators(project, options)
    if excluded:
        demos = demos.exclude(author_id__in=excluded)
    if options.segment:
        key, value = (part.strip() for part in options.segment.split("=", 1))
        demos = demos.filter(**{f"author__profile__attributes__{key}": value})
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
