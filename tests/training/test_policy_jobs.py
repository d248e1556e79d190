"""Policy jobs through real `run_worker` processes: a DPO job killed mid-training resumes from its last complete
checkpoint and registers its adapter; SFT then DPO from the SFT adapter, then a merged export, run as jobs."""

import hashlib
import signal

import pytest

from feedback.models import Demonstration, Prompt
from tests.factories import MembershipFactory
from tests.training.reward.helpers import tiny_base
from tests.training.reward_fixtures import labelled_project
from tests.training.workers import wait_for
from training.jobs import job_dir, job_submit
from training.ml.trainer_callback import last_complete_checkpoint
from training.models import Job, RegisteredModel
from training.registry import model_path, model_register
from training.worker import Worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.model]

SMALL = {"model.precision": "fp32", "model.max_length": 64, "lora.r": 4, "trainer.batch_size": 2}


@pytest.fixture
def base(tmp_path):
    return model_register(name="tiny-base", source=str(tiny_base(tmp_path / "tiny-src")))


def status(job: Job) -> str:
    job.refresh_from_db()
    return job.status


def checkpoint_step(job: Job) -> int:
    found = last_complete_checkpoint(job_dir(job) / "checkpoint", discard_incomplete=False)
    return int(found.name.rsplit("-", 1)[1]) if found else 0


def test_a_sigkilled_dpo_job_resumes_from_its_last_checkpoint_and_registers_its_adapter(workers, base):
    project = labelled_project(pairs=16)
    config = {**SMALL, "model.base": "tiny-base", "trainer.max_steps": 300, "trainer.save_steps": 3}
    job = job_submit(kind="dpo", project=project, config={**config, "data.test_fraction": 0.25})
    doomed = workers.start(name="doomed")
    wait_for(lambda: checkpoint_step(job) >= 3, timeout=180, what="a complete checkpoint")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=10)
    killed_at = checkpoint_step(job)
    assert killed_at < 300
    workers.start(name="rescuer")
    wait_for(lambda: status(job) in ("succeeded", "failed"), timeout=400, what="the rescued job to end")
    assert job.status == "succeeded", job.error
    assert job.attempt == 2 and killed_at <= job.result["resumed_from_step"] < 300
    assert job.result["steps"] == 300
    adapter = RegisteredModel.objects.get(job=job)
    assert (adapter.kind, adapter.parent, adapter.name) == ("adapter", base, f"{project.slug}-dpo-{job.pk}")
    manifest = job_dir(job) / "data" / "pairs" / "manifest.json"
    assert adapter.dataset_sha256 == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert (model_path(adapter) / "adapter_config.json").exists()
    assert adapter.metrics["evaluation"] and job.result["reward_accuracy"] is not None


def test_sft_then_dpo_from_its_adapter_then_a_merged_export_run_as_jobs(settings, base):
    project = labelled_project(pairs=12)
    author = MembershipFactory(project=project).user
    for prompt in Prompt.objects.filter(project=project):
        Demonstration.objects.create(prompt=prompt, author=author, text=f"A careful answer to {prompt.pk}.")

    def run(kind: str, **config) -> Job:
        job = job_submit(kind=kind, project=project, config=config)
        assert Worker(name="inline").run(once=True) == 1
        job.refresh_from_db()
        assert job.status == "succeeded", job.error
        return job

    sft = run("sft", **SMALL, **{"model.base": "tiny-base", "trainer.max_steps": 4, "data.test_fraction": 0.3})
    assert sft.result["perplexity_after"] < sft.result["perplexity_before"]  # it learned the demonstrations
    sft_adapter = RegisteredModel.objects.get(job=sft)
    dpo = run(
        "dpo", **SMALL, **{"model.base": "tiny-base", "model.start_from": sft_adapter.name, "trainer.max_steps": 3}
    )
    dpo_adapter = RegisteredModel.objects.get(job=dpo)
    assert dpo_adapter.parent == base and dpo.result["reference"].endswith(sft_adapter.name)
    merge = run("merge", adapter=dpo_adapter.name)
    merged = RegisteredModel.objects.get(job=merge)
    assert (merged.kind, merged.name) == ("base", f"{dpo_adapter.name}-merged")
    assert merge.result["same_next_token"] == 1.0
    assert (model_path(merged) / "config.json").exists()
