"""Reward jobs through real `run_worker` processes: a LoRA reward model killed (SIGKILL) or stopped (SIGTERM)
mid-training resumes from its last complete checkpoint, and what it registers carries its provenance; a features
model trained on one project is evaluated on another and sets the pairs' priorities for active learning."""

import json
import signal

import pytest

from feedback.models import Comparison
from tests.training.checkpoints import tiny_checkpoint
from tests.training.reward_fixtures import labelled_project
from tests.training.workers import wait_for
from training.jobs import job_dir, job_submit
from training.ml.trainer_callback import last_complete_checkpoint
from training.models import Job, RegisteredModel, ResponseScore, RewardEvaluation
from training.registry import model_path, model_register
from training.worker import Worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.model]


@pytest.fixture
def tiny_base(tmp_path):
    return model_register(name="tiny-base", source=str(tiny_checkpoint(tmp_path / "tiny-src")))


def lora_job(project, **trainer) -> Job:
    config = {
        "mode": "lora",
        "model.base": "tiny-base",
        "model.max_length": 64,
        "lora.r": 4,
        "trainer.batch_size": 2,
        "trainer.save_steps": 3,
        "data.test_fraction": 0.25,
        "eval.bootstrap": 50,
        **{f"trainer.{k}": v for k, v in trainer.items()},
    }
    return job_submit(kind="reward", project=project, config=config)


def status(job: Job) -> str:
    job.refresh_from_db()
    return job.status


def checkpoint_step(job: Job) -> int:
    found = last_complete_checkpoint(job_dir(job) / "checkpoint", discard_incomplete=False)
    return int(found.name.rsplit("-", 1)[1]) if found else 0


def test_a_sigkilled_reward_job_resumes_from_its_last_complete_checkpoint_and_registers_with_provenance(
    workers, tiny_base
):
    project = labelled_project(pairs=16)
    job = lora_job(project, max_steps=400)
    doomed = workers.start(name="doomed")
    wait_for(lambda: checkpoint_step(job) >= 3, timeout=180, what="a complete checkpoint")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=10)
    assert status(job) == "running"
    killed_at = checkpoint_step(job)
    assert killed_at < 400
    workers.start(name="rescuer")
    wait_for(lambda: status(job) in ("succeeded", "failed"), timeout=400, what="the rescued job to end")
    assert job.status == "succeeded", job.error
    assert job.attempt == 2
    resumed = job.result["resumed_from_step"]
    assert killed_at <= resumed < 400
    assert job.result["steps"] == 400
    # The second attempt's curve starts where the checkpoint left off, not at step 1.
    second = job.metrics.filter(attempt=2, name="loss").order_by("step").values_list("step", flat=True)
    assert second and second[0] > resumed

    model = RegisteredModel.objects.get(job=job)
    assert (model.kind, model.parent, model.name) == ("reward", tiny_base, f"{project.slug}-reward-{job.pk}")
    assert model.config["mode"] == "lora" and model.config["lora"]["r"] == 4
    manifest = job_dir(job) / "data" / "pairs" / "manifest.json"
    import hashlib

    assert model.dataset_sha256 == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert model.metrics["evaluation"]["n"] == job.result["test_pairs"]
    assert RewardEvaluation.objects.filter(model=model, project=project, job=job).exists()
    assert (model_path(model) / "adapter_config.json").exists()


def test_sigterm_saves_a_checkpoint_hands_the_reward_job_back_and_the_next_worker_resumes_there(workers, tiny_base):
    project = labelled_project(pairs=16)
    job = lora_job(project, max_steps=400)
    polite = workers.start(name="polite")
    wait_for(lambda: checkpoint_step(job) >= 3, timeout=180, what="a complete checkpoint")
    polite.send_signal(signal.SIGTERM)
    assert polite.wait(timeout=60) == 0, workers.output(polite)
    job.refresh_from_db()
    assert (job.status, job.requeues, job.failed_attempts) == ("queued", 1, 0)
    saved = checkpoint_step(job)
    assert 3 <= saved < 400
    nxt = workers.start("--exit-when-idle", name="next")
    assert nxt.wait(timeout=400) == 0, workers.output(nxt)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    assert job.result["resumed_from_step"] == saved


def test_a_features_model_is_evaluated_on_another_project_and_orders_its_pairs_by_uncertainty(settings):
    trained_on = labelled_project(slug="kids", pairs=24)
    job = job_submit(
        kind="reward", project=trained_on, config={"mode": "features", "ensemble": 4, "eval.bootstrap": 50}
    )
    assert Worker(name="inline").run(once=True) == 1
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    model = RegisteredModel.objects.get(job=job)
    assert model.parent is None and model.metrics["evaluation"]["n"] == job.result["test_pairs"]

    other = labelled_project(slug="grown-ups", pairs=10, votes=("b", "b", "a"))
    check = job_submit(kind="reward_eval", project=other, config={"models": [model.name], "eval.bootstrap": 50})
    assert Worker(name="inline").run(once=True) == 1
    check.refresh_from_db()
    assert check.status == "succeeded", check.error
    evaluation = RewardEvaluation.objects.get(model=model, project=other)
    assert evaluation.n == 10
    assert json.dumps(evaluation.evaluation)  # stored whole, for the model page

    from tests.factories import make_pair

    fresh = [make_pair(other) for _ in range(5)]
    score = job_submit(kind="score", project=other, config={"model": model.name, "prioritise": "ensemble"})
    assert Worker(name="inline").run(once=True) == 1
    score.refresh_from_db()
    assert score.status == "succeeded", score.error
    assert ResponseScore.objects.filter(model=model, response__prompt__project=other).count() >= 30
    priorities = list(Comparison.objects.filter(pk__in=[c.pk for c in fresh]).values_list("priority", flat=True))
    assert any(p > 0 for p in priorities) and all(0 <= p <= 1000 for p in priorities)
