"""The reward-model kinds on the database side: `reward` (train, evaluate, register), `reward_eval` (evaluate
registered reward models on this project's preferences) and `score` (score responses, set priorities).

prepare() reads the database into files and inputs.json (layout in training.kinds.dataset); the children
(training.tasks.reward, reward_eval, score) never touch Django; finish() writes what they made back, inside
the transaction that marks the job succeeded.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from django.db.models import Q

from feedback.models import Comparison, Response
from training.models import Job, RegisteredModel, ResponseScore, RewardEvaluation
from training.registry import RegistryError, model_get, model_register_trained, model_spec

from .base import JobError, job_config
from .dataset import dataset_prepare

NEXT_PAIRS = 50
"""At most this many of the queue's next pairs make the active-learning figures: the first quarter of the
unlabelled pairs (so "next" never means all of them, which would show no effect), capped at 50."""
PRIORITY_SCALE = 1000
"""Comparison.priority is an integer: an uncertainty in [0, 1] is stored as round(1000 · uncertainty)."""
BATCH = 1000
MAX_PAIR_ITEMS = 20
"""How many of the items where two reward models disagree most a reward_eval job keeps in its result."""


def _inputs(workdir: Path) -> dict:
    return json.loads((Path(workdir) / "inputs.json").read_text(encoding="utf-8"))


def _json(path: Path) -> dict:
    if not path.exists():
        raise JobError(f"the job wrote no {path.name}; see its log")
    return json.loads(path.read_text(encoding="utf-8"))


def _jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _registered(name: str) -> RegisteredModel:
    try:
        return model_get(name)
    except RegistryError as exc:
        raise JobError(str(exc)) from None


def _spec(model: RegisteredModel) -> dict:
    """model_spec, its RegistryError (a path outside the data directory) a JobError: no attempt can fix it."""
    try:
        return model_spec(model)
    except RegistryError as exc:
        raise JobError(str(exc)) from None


def _reward_model(name: str) -> RegisteredModel:
    model = _registered(name)
    if model.kind != RegisteredModel.Kind.REWARD:
        raise JobError(f"{name} is a {model.get_kind_display().lower()}, not a reward model")
    return model


# ---- reward ---------------------------------------------------------------------------------------------


def reward_name(job: Job, config) -> str:
    """The registry name the trained model will get: the config's, or <project>-reward-<job id>."""
    return config.name or f"{job.project.slug}-reward-{job.pk}"


def needs_base(config) -> bool:
    """Every mode but features on MiniLM embeddings is built on the base LM (the body, or the encoder)."""
    return not (config.mode == "features" and config.model.encoder == "minilm")


def prepare_reward(job: Job, workdir: Path) -> dict:
    config = job_config(job)
    name = reward_name(job, config)
    # Checked before training, not only at registration: minutes (or hours) of training for a name that is
    # taken would be lost.
    if RegisteredModel.objects.filter(name=name).exists():
        raise JobError(f"a model called {name!r} is already registered; give the job another name")
    base = None
    if needs_base(config):
        model = _registered(config.model.base)
        if model.kind != RegisteredModel.Kind.BASE:
            raise JobError(
                f"model.base: {model.name} is a {model.get_kind_display().lower()}; a reward model is built on a "
                "base model"
            )
        base = _spec(model)
    data = dataset_prepare(job, workdir, config.data, need="train")
    return {**data, "base": base, "project": job.project.slug, "models": [], "name": name}


def finish_reward(job: Job, workdir: Path, result: dict) -> dict:
    config = job_config(job)
    inputs = _inputs(workdir)
    evaluation = _json(Path(workdir) / "evaluation.json")
    parent = _registered(inputs["base"]["name"]) if inputs.get("base") else None
    try:
        model = model_register_trained(
            name=inputs["name"],
            folder=Path(workdir) / "model",
            kind=RegisteredModel.Kind.REWARD,
            parent=parent,
            job=job,
            config=job.config,
            metrics={**result, "evaluation": evaluation},
            dataset_sha256=inputs["dataset_sha256"],
            quantisation="nf4" if config.mode == "qlora" else "",
        )
    except RegistryError as exc:
        raise JobError(f"the model was trained but could not be registered: {exc}") from None
    _evaluation_store(model, job, split="test", evaluation=evaluation, dataset_sha256=inputs["dataset_sha256"])
    return {**result, "model": model.name}


def _evaluation_store(
    model: RegisteredModel, job: Job, *, split: str, evaluation: dict, dataset_sha256: str
) -> RewardEvaluation:
    row, _ = RewardEvaluation.objects.update_or_create(
        model=model,
        project=job.project,
        job=job,
        defaults={
            "split": split,
            "n": int(evaluation.get("n") or 0),
            "accuracy": _finite(evaluation.get("accuracy")),
            "ece": _finite(evaluation.get("ece")),
            "evaluation": evaluation,
            "dataset_sha256": dataset_sha256 or "",
        },
    )
    return row


def _finite(value) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


# ---- reward_eval ----------------------------------------------------------------------------------------


def prepare_reward_eval(job: Job, workdir: Path) -> dict:
    config = job_config(job)
    specs = [_spec(_reward_model(name)) for name in config.models]
    data = dataset_prepare(job, workdir, config.data, need="test" if config.split == "test" else "any")
    return {**data, "base": None, "project": job.project.slug, "models": specs}


def finish_reward_eval(job: Job, workdir: Path, result: dict) -> dict:
    """Stores each model's evaluation on this project and returns the job's result: `models_table` (one row per
    model, best first: accuracy with its CI, ECE, n, and what it was trained as) and, with two or more models,
    `disagreement` (the child's comparison: for every two models their disagreement rate, Spearman and the items
    where they part ways, at most MAX_PAIR_ITEMS each). The child's per-model headline figures are the table's
    rows, so they are not kept twice."""
    config = job_config(job)
    inputs = _inputs(workdir)
    written = _json(Path(workdir) / "evaluation.json")
    evaluations = written.get("models") or {}
    table = []
    for name, evaluation in evaluations.items():
        model = RegisteredModel.objects.filter(name=name, kind=RegisteredModel.Kind.REWARD).first()
        if model is not None:  # removed from the registry while the job ran: nothing to attach the figures to
            _evaluation_store(
                model, job, split=config.split, evaluation=evaluation, dataset_sha256=inputs["dataset_sha256"]
            )
        trained = (model.config or {}) if model else {}
        table.append(
            {
                "model": name,
                "registered": model is not None,
                "mode": trained.get("mode") or "",
                "segment": (trained.get("data") or {}).get("segment") or "",
                "n": evaluation.get("n"),
                "accuracy": evaluation.get("accuracy"),
                "accuracy_ci": evaluation.get("accuracy_ci"),
                "ece": evaluation.get("ece"),
            }
        )
    table.sort(key=lambda row: -(row["accuracy"] if row["accuracy"] is not None else -1))
    out = {key: value for key, value in result.items() if key not in evaluations}
    out["models_table"] = table
    comparison = written.get("comparison")
    if comparison and comparison.get("pairs"):
        # job.result is read on every poll of the job page: the items are capped (the file keeps them all).
        out["disagreement"] = {
            "models": comparison.get("models") or [],
            "pairs": [{**pair, "items": (pair.get("items") or [])[:MAX_PAIR_ITEMS]} for pair in comparison["pairs"]],
        }
    return out


# ---- score ----------------------------------------------------------------------------------------------


def prepare_score(job: Job, workdir: Path) -> dict:
    config = job_config(job)
    model = _reward_model(config.model)
    if config.prioritise == "ensemble" and not (model.config or {}).get("ensemble"):
        raise JobError(
            f"prioritise=ensemble needs a features reward model trained with ensemble > 0; {model.name} has no "
            "ensemble (use prioritise=gap)"
        )
    project = job.project
    wanted = Q(pk__in=[])
    if config.responses != "none":
        wanted = Q(prompt__project=project)
        if config.responses == "unscored":
            wanted &= ~Q(pk__in=ResponseScore.objects.filter(model=model).values("response_id"))
    comparisons: list[dict] = []
    if config.prioritise != "off":
        # The pairs the assignment engine would serve that nobody has labelled yet; gold items keep their own
        # schedule (gold_rate) and rankings have no single score gap.
        comparisons = [
            {"id": cid, "a": a, "b": b}
            for cid, a, b in Comparison.objects.filter(
                project=project,
                kind=Comparison.Kind.PAIR,
                label_count=0,
                servable=True,
                gold_choice="",
                response_a__isnull=False,
                response_b__isnull=False,
            )
            .order_by("id")
            .values_list("id", "response_a_id", "response_b_id")
        ]
        # A pair's two answers must be scored to know its gap, whichever responses were asked for.
        wanted |= Q(pk__in=[i for c in comparisons for i in (c["a"], c["b"])])
    responses = [
        {"id": rid, "prompt": messages, "text": text}
        for rid, messages, text in Response.objects.filter(wanted)
        .order_by("id")
        .values_list("id", "prompt__messages", "text")
    ]
    if not responses and not config.items:
        which = {"all": "has no responses", "unscored": f"has no response without a score from {model.name}"}
        raise JobError(
            f"nothing to score: project {project.slug} {which.get(config.responses, 'has no unlabelled pairs')}"
        )
    return {
        "data": None,
        "dataset_sha256": None,
        "base": None,
        "project": project.slug,
        "models": [_spec(model)],
        "responses": responses,
        "comparisons": comparisons,
    }


def finish_score(job: Job, workdir: Path, result: dict) -> dict:
    config = job_config(job)
    inputs = _inputs(workdir)
    model = _reward_model(config.model)
    asked = {r["id"] for r in inputs.get("responses", [])}
    # Only responses prepare() handed out (this project's): a child cannot write scores anywhere else.
    scores = [
        ResponseScore(response_id=row["response_id"], model=model, score=float(row["score"]), job=job)
        for row in _jsonl(Path(workdir) / "scores.jsonl")
        if row.get("response_id") in asked and _finite(row.get("score")) is not None
    ]
    for start in range(0, len(scores), BATCH):
        ResponseScore.objects.bulk_create(
            scores[start : start + BATCH],
            update_conflicts=True,
            unique_fields=["response", "model"],
            update_fields=["score", "job", "created_at"],
        )
    out = {**result, "scored": len(scores)}
    if config.prioritise != "off":
        out["prioritised"] = _prioritise(job, workdir, inputs, model)
    return out


def _prioritise(job: Job, workdir: Path, inputs: dict, model: RegisteredModel) -> dict:
    """Sets the unlabelled pairs' priority from the model's uncertainty, so the queue serves the most
    informative first; returns the effect: the mean uncertainty of the next pairs served, before and after."""
    asked = {c["id"] for c in inputs.get("comparisons", [])}
    uncertainty = {
        row["comparison_id"]: min(1.0, max(0.0, float(row["uncertainty"])))
        for row in _jsonl(Path(workdir) / "priorities.jsonl")
        if row.get("comparison_id") in asked and _finite(row.get("uncertainty")) is not None
    }
    rows = list(
        Comparison.objects.filter(project=job.project, pk__in=list(uncertainty)).only("id", "priority", "label_count")
    )
    before = [c.id for c in sorted(rows, key=_queue_order)]
    changed = []
    for c in rows:
        new = round(PRIORITY_SCALE * uncertainty[c.id])
        if new != c.priority:
            c.priority = new
            changed.append(c)
    Comparison.objects.bulk_update(changed, ["priority"], batch_size=BATCH)
    after = [c.id for c in sorted(rows, key=_queue_order)]
    n = min(NEXT_PAIRS, max(1, len(rows) // 4))

    def mean(ids: list[int]) -> float | None:
        return round(sum(uncertainty[i] for i in ids) / len(ids), 4) if ids else None

    return {
        "model": model.name,
        "pairs": len(rows),
        "changed": len(changed),
        "next": n,
        "uncertainty_all": mean(before),
        "uncertainty_next_before": mean(before[:n]),
        "uncertainty_next_after": mean(after[:n]),
    }


def _queue_order(c: Comparison) -> tuple:
    """The assignment engine's order (feedback.assignment): highest priority, most labels, oldest."""
    return (-c.priority, -c.label_count, c.id)
