"""Reward-model test data without training anything: a labelled project, a fake trained model folder (small
safetensors files), an evaluation.json in the contract's shape."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from annotators.models import Membership
from feedback.models import Comparison, Label, Project
from tests.factories import MembershipFactory, ProjectFactory, make_pair


def labelled_project(*, slug: str = "kids", pairs: int = 12, votes: tuple[str, ...] = ("a", "a", "b")) -> Project:
    """A project with three annotators (two children, one adult) who each label every pair: `votes[i]` is
    annotator i's choice, the same on every pair."""
    project = ProjectFactory(slug=slug, name=slug.capitalize())
    people = [
        MembershipFactory(project=project, attributes={"audience": audience}).user
        for audience in ("child", "child", "adult")
    ]
    for _ in range(pairs):
        pair = make_pair(project)
        for person, choice in zip(people, votes, strict=True):
            Label.objects.create(comparison=pair, annotator=person, choice=choice)
        Comparison.objects.filter(pk=pair.pk).update(label_count=len(people))
    return project


def manager_of(project: Project):
    return MembershipFactory(project=project, role=Membership.Role.MANAGER).user


def fake_reward_folder(folder: Path, *, mode: str = "features", dim: int = 8) -> Path:
    """What training.tasks.reward leaves in workdir/model for mode=features: juror_reward.json and the
    classifier's weights as safetensors (a few hundred bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    save_file(
        {"weight": rng.normal(size=dim).astype(np.float32), "bias": np.zeros(1, dtype=np.float32)},
        str(folder / "classifier.safetensors"),
    )
    (folder / "juror_reward.json").write_text(
        json.dumps({"mode": mode, "encoder": "minilm", "base": None, "max_length": 256, "pad_token": None})
    )
    return folder


def evaluation_fixture(comparison_ids: list[int], *, accuracy: float = 0.75) -> dict:
    """One evaluation in the contract's shape (training.reward.evaluation writes the real ones)."""
    first = comparison_ids[0] if comparison_ids else 1
    return {
        "n": 40,
        "ties": 2,
        "accuracy": accuracy,
        "accuracy_ci": [accuracy - 0.12, min(1.0, accuracy + 0.1)],
        "confidence": 0.95,
        "ece": 0.083,
        "reliability": [
            {"lo": i / 5, "hi": (i + 1) / 5, "n": 8, "mean_predicted": i / 5 + 0.1, "observed": min(1, i / 5 + 0.15)}
            for i in range(5)
        ],
        "scores": {"chosen": [0.9, 1.2, 0.4, 2.0, 1.1], "rejected": [-0.3, 0.1, 0.5, -1.0, 0.2]},
        "by_agreement": [
            {"level": "unanimous", "n": 20, "accuracy": 0.85, "ci": [0.7, 0.95]},
            {"level": "majority", "n": 20, "accuracy": 0.65, "ci": [0.45, 0.8]},
        ],
        "by_segment": {
            "key": "audience",
            "groups": [
                {"value": "child", "n": 80, "agreement": 0.8, "ci": [0.7, 0.88]},
                {"value": "adult", "n": 40, "agreement": 0.3, "ci": [0.18, 0.45]},
            ],
            "unassigned": 0,
        },
        "by_source": [{"source": "annotators", "n": 120, "agreement": 0.63, "ci": [0.55, 0.71]}],
        "annotators": [
            {"annotator": "annotator:0123456789ab", "n": 40, "agreement": 0.82, "segment": "child"},
            {"annotator": "annotator:ba9876543210", "n": 40, "agreement": 0.31, "segment": "adult"},
        ],
        "labels": 120,
        "disagreements": [
            {
                "comparison_id": first,
                "prompt_id": 1,
                "p_model": 0.08,
                "human_agreement": 1.0,
                "num_labels": 3,
                "chosen_model": "model-x",
                "rejected_model": "model-y",
                "prompt": "What do <b>whales</b> eat?",
                "chosen": "Krill, mostly.",
                "rejected": "Whales eat <script>alert(1)</script> rocks.",
            }
        ],
        "confidently_wrong": 1,
    }


def segment_reward_model(folder: Path, project: Project, name: str, segment: str, *, accuracy: float = 0.75):
    """A features reward model trained on one annotator segment (data.segment=audience=child), as a finished
    reward job registers it: provenance, and its held-out evaluation on `project` (for the model page's charts)."""
    from training.models import Job, RewardEvaluation
    from training.registry import model_register_trained

    config = {"mode": "features", "name": name, "data": {"segment": segment}}
    job = Job.objects.create(kind="reward", project=project, status="succeeded", config=config)
    evaluation = evaluation_fixture(list(Comparison.objects.filter(project=project).values_list("id", flat=True)))
    evaluation["accuracy"] = accuracy
    model = model_register_trained(
        name=name,
        folder=fake_reward_folder(folder / name),
        kind="reward",
        parent=None,
        job=job,
        config=config,
        metrics={"accuracy": accuracy, "evaluation": evaluation},
        dataset_sha256="cd" * 32,
    )
    RewardEvaluation.objects.create(
        model=model, project=project, job=job, split="test", n=40, accuracy=accuracy, ece=0.083, evaluation=evaluation
    )
    return model


def pair_rows(comparisons: list[Comparison]) -> list[dict]:
    """Pair rows as the export writes them (the columns training.reward.evaluation.compare reads), with markup
    in the texts: pages must quote it."""
    return [
        {
            "comparison_id": c.id,
            "prompt_id": c.prompt_id,
            "outcome": "chosen",
            "agreement": 2 / 3,
            "prompt": [{"role": "user", "content": f"Why is the sky blue? <b>#{i}</b>"}],
            "chosen": [{"role": "assistant", "content": f"Because of the sun {i}."}],
            "rejected": [{"role": "assistant", "content": f"Rayleigh <script>alert({i})</script> scattering."}],
        }
        for i, c in enumerate(comparisons)
    ]


def finished_reward_eval(workdir: Path, project: Project, models: list[str], rows: list[dict], scores: dict):
    """A succeeded reward_eval job on `project`, finished (training.kinds.reward.finish_reward_eval) from an
    evaluation.json in the child's real shape: evaluation_fixture per model and compare() on `rows`."""
    from training.kinds.reward import finish_reward_eval
    from training.models import Job
    from training.reward.evaluation import compare

    job = Job.objects.create(kind="reward_eval", project=project, status="running", config={"models": models})
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "inputs.json").write_text(json.dumps({"dataset_sha256": "ef" * 32, "models": []}))
    ids = [r["comparison_id"] for r in rows]
    accuracies = [0.9, 0.25, 0.5, 0.6]
    written = {
        "split": "all",
        "models": {name: evaluation_fixture(ids, accuracy=accuracies[i % 4]) for i, name in enumerate(models)},
        "comparison": compare(rows, scores, top=len(rows)) if len(models) > 1 else None,
    }
    (workdir / "evaluation.json").write_text(json.dumps(written))
    headline = {name: {"accuracy": e["accuracy"], "n": e["n"]} for name, e in written["models"].items()}
    result = finish_reward_eval(job, workdir, headline)
    Job.objects.filter(pk=job.pk).update(status="succeeded", result=result)
    job.refresh_from_db()
    return job
