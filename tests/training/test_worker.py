"""Workers as separate processes on the test database: exactly-once, SIGKILL, SIGTERM, cancel, poison jobs.

The noop kind records which attempt ran which step in its job folder, so the tests can tell a resume from a
restart and prove no step ran twice.
"""

import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import pytest
from django.conf import settings
from django.core.management import call_command

from tests.factories import ProjectFactory
from tests.training.workers import BASE_DIR, wait_for
from training.jobs import job_cancel, job_dir, job_submit
from training.models import Job
from training.worker import Worker, child_command

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def noop(project, **config) -> Job:
    return job_submit(kind="noop", project=project, config=config)


def steps_run(job: Job) -> list[tuple[int, int]]:
    """(step, attempt) for every step the job's children completed, in order."""
    path = job_dir(job) / "checkpoint" / "steps.log"
    if not path.exists():
        return []
    return [tuple(map(int, line.split())) for line in path.read_text().splitlines()]


def status(job: Job) -> str:
    job.refresh_from_db()
    return job.status


def test_a_worker_runs_a_job_in_a_child_and_records_progress_metrics_and_log(settings):
    settings.JUROR_JOB_HEARTBEAT_SECONDS = 0.2
    job = noop(ProjectFactory(), steps=3, step_seconds=0.05)
    assert Worker(name="inline").run(once=True) == 1
    job.refresh_from_db()
    assert job.status == "succeeded"
    assert (job.progress_current, job.progress_total, job.progress_message) == (3, 3, "step 3 of 3")
    assert job.result == {"steps": 3, "resumed_after": 0}
    series = list(job.metrics.filter(name="value").order_by("step").values_list("step", "value"))
    assert series == [(1, 1.0), (2, 2.0), (3, 3.0)]
    assert job.log_lines.filter(line__contains="attempt 1 claimed by inline").exists()
    assert job.finished_at and job.heartbeat_at


def test_two_workers_run_each_of_many_jobs_exactly_once(workers):
    project = ProjectFactory()
    jobs = [noop(project, steps=1, step_seconds=0) for _ in range(24)]
    a = workers.start("--exit-when-idle", name="a")
    b = workers.start("--exit-when-idle", name="b")
    assert a.wait(timeout=240) == 0 and b.wait(timeout=240) == 0
    for job in jobs:
        job.refresh_from_db()
        assert (job.status, job.attempt) == ("succeeded", 1), job.error
        assert steps_run(job) == [(1, 1)]
    ran_by = {job.worker for job in jobs}
    assert ran_by == {"a", "b"}, "both workers should have taken jobs"


def test_a_sigkilled_worker_s_job_is_resumed_from_its_checkpoint_by_another_worker(workers):
    job = noop(ProjectFactory(), steps=12, step_seconds=0.3)
    doomed = workers.start(name="doomed")
    wait_for(lambda: len(steps_run(job)) >= 3, what="three steps done")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=10)
    killed_at = len(steps_run(job))
    time.sleep(1.0)
    assert len(steps_run(job)) == killed_at, "the child must die with its worker"
    assert status(job) == "running"  # until the lease runs out
    rescuer = workers.start(name="rescuer")  # it takes the job over once the dead worker's lease runs out
    wait_for(lambda: status(job) == "succeeded", timeout=60, what="the rescue")
    assert rescuer.poll() is None
    job.refresh_from_db()
    assert (job.status, job.attempt, job.worker) == ("succeeded", 2, "rescuer")
    resumed_after = job.result["resumed_after"]
    assert resumed_after >= 3
    steps = steps_run(job)
    assert [s for s, _ in steps if s > resumed_after] == list(range(resumed_after + 1, 13))
    assert {a for s, a in steps if s > resumed_after} == {2}
    assert job.log_lines.filter(line__contains="doomed stopped heartbeating").exists()


def test_sigterm_checkpoints_requeues_and_exits_cleanly(workers):
    job = noop(ProjectFactory(), steps=40, step_seconds=0.2)
    worker = workers.start(name="polite")
    wait_for(lambda: len(steps_run(job)) >= 2, what="two steps done")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, workers.output(worker)
    job.refresh_from_db()
    assert (job.status, job.requeues, job.failed_attempts) == ("queued", 1, 0)
    saved = json.loads((job_dir(job) / "checkpoint" / "state.json").read_text())["step"]
    assert saved == len(steps_run(job)) >= 2
    assert "handed back" in " ".join(job.log_lines.values_list("line", flat=True))
    Job.objects.filter(pk=job.pk).update(config={**job.config, "step_seconds": 0})
    next_worker = workers.start("--exit-when-idle", name="next")
    assert next_worker.wait(timeout=60) == 0
    job.refresh_from_db()
    assert job.status == "succeeded" and job.result["resumed_after"] == saved


def test_cancel_stops_a_running_job_within_seconds(workers):
    job = noop(ProjectFactory(), steps=200, step_seconds=0.1)
    worker = workers.start(name="w")
    wait_for(lambda: steps_run(job), what="the job to start")
    asked = time.monotonic()
    job_cancel(job)
    wait_for(lambda: status(job) == "cancelled", timeout=10, what="the cancel")
    assert time.monotonic() - asked < 5
    stopped_at = len(steps_run(job))
    time.sleep(0.5)
    assert len(steps_run(job)) == stopped_at  # the child is gone
    assert worker.poll() is None  # the worker lives on for the next job
    follow_up = noop(job.project, steps=1, step_seconds=0)
    wait_for(lambda: status(follow_up) == "succeeded", timeout=30, what="the next job")


def test_a_poison_job_fails_after_max_attempts_while_the_others_succeed(workers):
    project = ProjectFactory()
    good_before = noop(project, steps=1, step_seconds=0)
    poison = noop(project, fail=True)
    good_after = [noop(project, steps=1, step_seconds=0) for _ in range(3)]
    worker = workers.start("--exit-when-idle", JUROR_JOB_MAX_ATTEMPTS="3")
    assert worker.wait(timeout=120) == 0
    poison.refresh_from_db()
    assert (poison.status, poison.attempt) == ("failed", 3)
    assert poison.error == "failed after 3 attempts: RuntimeError: this job is set to fail (noop with fail=true)"
    assert all(status(j) == "succeeded" for j in [good_before, *good_after])


def _submit(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "submit_job", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_submit_job_wait_exits_zero_on_success_and_non_zero_on_failure(workers):
    project = ProjectFactory(slug="waiting")
    workers.start(name="w")
    env = workers.env()
    ok = _submit("noop", "--project", "waiting", "--set", "steps=2", "--set", "step_seconds=0.1", "--wait", env=env)
    assert ok.returncode == 0, ok.stderr
    job_id = int(ok.stdout.splitlines()[0])
    assert Job.objects.get(pk=job_id).status == "succeeded"
    assert "succeeded" in ok.stdout
    bad = _submit("noop", "--project", "waiting", "--set", "fail=true", "--wait", env=env)
    assert bad.returncode != 0
    assert "failed after" in bad.stderr
    refused = _submit("noop", "--project", "waiting", "--set", "steps=-1", env=env)
    assert refused.returncode != 0 and "steps must be at least 1" in refused.stderr
    assert Job.objects.filter(project=project).count() == 2


def test_submit_job_reads_a_config_file_and_set_overrides_it(tmp_path):
    project = ProjectFactory(slug="configured")
    path = tmp_path / "noop.json"
    path.write_text(json.dumps({"steps": 9, "step_seconds": 0.5}))
    call_command("submit_job", "noop", "--project", "configured", "--config", str(path), "--set", "steps=4")
    assert Job.objects.get(project=project).config == {"steps": 4, "step_seconds": 0.5, "fail": False}


def test_an_export_job_writes_the_dataset_as_an_artifact(settings):
    from tests.factories import make_label, make_pair

    project = ProjectFactory()
    comparison = make_pair(project=project)
    make_label(comparison, choice="a")
    job = job_submit(kind="export", project=project, config={"format": "jsonl", "test_fraction": 0})
    Worker(name="inline").run(once=True)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    artifact = job.artifacts.get(kind="export")
    folder = settings.JUROR_DATA_DIR / artifact.path
    rows = [json.loads(line) for line in (folder / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["chosen"] == comparison.response_a.text
    assert job.result["rows"] == {"train": 1}
    assert artifact.size_bytes > 0
    archive = job.artifacts.get(kind="export-zip")
    with zipfile.ZipFile(settings.JUROR_DATA_DIR / archive.path) as zipped:
        assert f"{project.slug}-pairs/train.jsonl" in zipped.namelist()


def test_the_child_starts_through_accelerate_only_for_distributed_kinds_on_several_gpus(settings, tmp_path):
    spec = tmp_path / "spec.json"
    settings.JUROR_WORKER_LAUNCHER = "auto"
    assert child_command(spec, distributed=True, gpus=1)[1:3] == ["-m", "training.runner"]
    assert child_command(spec, distributed=False, gpus=4)[1:3] == ["-m", "training.runner"]
    multi = child_command(spec, distributed=True, gpus=4)
    assert multi[1:3] == ["-m", "accelerate.commands.launch"] and multi[-3:] == ["-m", "training.runner", str(spec)]
    assert "--num_processes" in multi and "4" in multi
    settings.JUROR_WORKER_LAUNCHER = "python"
    assert child_command(spec, distributed=True, gpus=4)[1:3] == ["-m", "training.runner"]


def test_a_sigkilled_worker_leaves_no_orphan_child(workers):
    job = noop(ProjectFactory(), steps=100, step_seconds=0.2)
    worker = workers.start(name="w")
    wait_for(lambda: steps_run(job), what="the job to start")
    children = subprocess.run(  # noqa: S603, S607
        ["pgrep", "-P", str(worker.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert children, "the job runs in a child process"
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)

    def gone() -> bool:
        return not any(os.path.exists(f"/proc/{pid}") and _alive(pid) for pid in children)

    wait_for(gone, timeout=10, what="the child to die with its worker")


def _alive(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_settings_keep_the_lease_longer_than_the_heartbeat():
    assert settings.JUROR_JOB_LEASE_SECONDS > 3 * settings.JUROR_JOB_HEARTBEAT_SECONDS
