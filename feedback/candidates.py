"""Generated candidates in, comparisons out: what a generation job hands back to the annotation loop.

Kept apart from imports because generated responses carry a job and their variant (model × sampling
settings), and the pairs worth showing are those across variants: the same model twice at one temperature
teaches less than two models, or two temperatures, side by side.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Count, Exists, OuterRef

from .comparisons import RANKING_MAX, comparisons_create
from .hashing import members_key, response_hash
from .models import Comparison, Label, Project, Prompt, Response


@dataclass(frozen=True)
class Candidate:
    prompt_id: int
    text: str
    model: str
    variant: str
    """Which model × settings made it; pairs are drawn across variants first."""
    reasoning: str = ""
    generation: dict = field(default_factory=dict)


def prompts_select(*, project: Project, which: str, tag: str = "", limit: int = 0, seed: int = 0) -> list[dict]:
    """Prompts for generation as [{id, messages}]: all, unlabelled, tagged, or a seeded random sample."""
    prompts = Prompt.objects.filter(project=project).order_by("id")
    if which == "unlabelled":
        prompts = prompts.filter(~Exists(Label.objects.filter(comparison__prompt=OuterRef("pk"))))
    rows = list(prompts.values("id", "messages", "metadata"))
    if which == "tagged":
        rows = [r for r in rows if _has_tag(r["metadata"], tag)]
    if which == "sample":
        rows = sorted(
            random.Random(seed).sample(  # noqa: S311 — a reproducible sample, not a secret
                rows, min(limit, len(rows))
            ),
            key=lambda r: r["id"],
        )
    if limit:
        rows = rows[:limit]
    return [{"id": r["id"], "messages": r["messages"]} for r in rows]


def _has_tag(metadata: dict, tag: str) -> bool:
    # Tags are free-form metadata: {"tags": [...]}, {"tags": "a,b"} or {"tag": "a"} all occur in imported files.
    tags = metadata.get("tags", metadata.get("tag", []))
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",")]
    return isinstance(tags, list) and tag in tags


def responses_best_rated(*, project: Project, limit: int) -> list[dict]:
    """The project's most-preferred responses as [{prompt_id, messages, text, wins, losses}], best first.

    Score: (wins + 1) / (wins + losses + 2) over pair labels (a smoothed win rate, so one lucky win does not
    outrank ten wins out of eleven); only responses that won at least once qualify, one per prompt.
    """
    wins: dict[int, int] = defaultdict(int)
    losses: dict[int, int] = defaultdict(int)
    labels = Label.objects.filter(comparison__project=project, comparison__kind=Comparison.Kind.PAIR)
    for choice, winner_side, loser_side in (("a", "response_a", "response_b"), ("b", "response_b", "response_a")):
        grouped = labels.filter(choice=choice).values_list(f"comparison__{winner_side}", f"comparison__{loser_side}")
        for winner, loser, n in grouped.annotate(n=Count("id")).order_by():
            wins[winner] += n
            losses[loser] += n
    ranked = sorted(
        (rid for rid in wins), key=lambda rid: (-(wins[rid] + 1) / (wins[rid] + losses[rid] + 2), -wins[rid], rid)
    )
    responses = Response.objects.in_bulk(ranked[: limit * 4])
    best, seen_prompts = [], set()
    for rid in ranked:
        response = responses.get(rid)
        if response is None or response.prompt_id in seen_prompts:
            continue
        seen_prompts.add(response.prompt_id)
        best.append(
            {
                "prompt_id": response.prompt_id,
                # System messages stay out: chat templates accept one only at the very start of a conversation.
                "messages": [m for m in response.prompt.messages if m.get("role") != "system"],
                "text": response.text,
                "wins": wins[rid],
                "losses": losses[rid],
            }
        )
        if len(best) == limit:
            break
    return best


def candidates_add(*, project: Project, job_id: int, candidates: list[Candidate], comparisons: str) -> dict[str, int]:
    """Stores the candidates as responses of the job, then pairs or ranks each prompt's new responses.

    `comparisons`: "pairs", "ranking" or "none". Call inside a transaction; a candidate whose text the same
    model already gave for that prompt is not stored twice (the response is reused).
    """
    prompt_ids = {c.prompt_id for c in candidates}
    existing = {
        (pid, model, h): rid
        for pid, model, h, rid in Response.objects.filter(prompt_id__in=prompt_ids).values_list(
            "prompt_id", "model", "content_hash", "id"
        )
    }
    new: dict[tuple, Response] = {}
    for c in candidates:
        key = (c.prompt_id, c.model, response_hash(c.text, c.reasoning))
        if key not in existing and key not in new:
            new[key] = Response(
                prompt_id=c.prompt_id,
                text=c.text,
                reasoning=c.reasoning,
                model=c.model,
                generation=c.generation,
                job_id=job_id,
                content_hash=key[2],
            )
    for obj in Response.objects.bulk_create(new.values(), batch_size=500):
        existing[(obj.prompt_id, obj.model, obj.content_hash)] = obj.id
    # A response that two variants both gave (the same text at two temperatures) counts once, for the first
    # variant that gave it: a comparison of a response with itself is meaningless and the database refuses it.
    by_prompt: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    placed: set[int] = set()
    for c in candidates:
        rid = existing[(c.prompt_id, c.model, response_hash(c.text, c.reasoning))]
        if rid not in placed:
            placed.add(rid)
            by_prompt[c.prompt_id][c.variant].append(rid)
    made = 0
    if comparisons != "none":
        made = _compare(project, by_prompt, ranking=comparisons == "ranking")
    return {"responses": len(new), "comparisons": made}


def _spread(variants: dict[str, list[int]]) -> list[int]:
    """Response ids round-robin across variants, so the first few come from as many variants as there are."""
    lists = list(variants.values())
    return [rid for group in itertools.zip_longest(*lists) for rid in group if rid is not None]


def _pairs(variants: dict[str, list[int]]) -> list[tuple[int, int]]:
    variant_of = {rid: name for name, ids in variants.items() for rid in ids}
    ordered = _spread(variants)
    pairs = list(itertools.combinations(ordered, 2))
    # Cross-variant pairs first; within each group, the round-robin order keeps every variant represented.
    return sorted(pairs, key=lambda p: variant_of[p[0]] == variant_of[p[1]])


def _compare(project: Project, by_prompt: dict[int, dict[str, list[int]]], *, ranking: bool) -> int:
    taken = defaultdict(set)
    for pid, key in Comparison.objects.filter(prompt_id__in=by_prompt).values_list("prompt_id", "members_key"):
        taken[pid].add(key)
    wanted: list[tuple[int, list[int]]] = []
    for pid, variants in sorted(by_prompt.items()):
        ids = _spread(variants)
        if ranking and len(ids) >= 3:
            chosen = [ids[:RANKING_MAX]]
        else:
            chosen = [list(p) for p in _pairs(variants)][: project.max_pairs_per_prompt]
        for members in chosen:
            key = members_key(members)
            if key not in taken[pid]:
                taken[pid].add(key)
                wanted.append((pid, sorted(members)))
    return len(comparisons_create(project=project, wanted=wanted))
