"""Workers as separate processes on the test database: exactly-once, SIGKILL, SIGTERM, cancel, poison jobs.

The noop kind records which attempt ran which step in its job folder, so the tests can tell a resume from a
restart and prove no step ran twice.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import pytest
from django.core.management import call_command

from tests.factories import ProjectFactory
from tests.training.workers import BASE_DIR, wait_for
from training.jobs import job_cancel, job_claim, job_dir, job_submit
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
    child = _job_child(doomed)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=10)
    wait_for(lambda: not _alive(child), timeout=10, what="the child to die with its worker")
    killed_at = len(steps_run(job))  # final: nothing of attempt 1 is left to write a step
    assert killed_at < 12
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
    assert [s for s, a in steps if a == 1] == list(range(1, killed_at + 1))
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
    child = _job_child(worker)
    asked = time.monotonic()
    job_cancel(job)
    wait_for(lambda: status(job) == "cancelled", timeout=10, what="the cancel")
    assert time.monotonic() - asked < 5
    wait_for(lambda: not _alive(child), timeout=10, what="the child to stop")
    assert len(steps_run(job)) < 200
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
    assert child_command(spec, distributed=True, gpus=1)[1:] == ["-m", "training.runner", str(spec)]
    assert child_command(spec, distributed=False, gpus=4)[1:] == ["-m", "training.runner", str(spec)]
    multi = child_command(spec, distributed=True, gpus=4)
    assert multi[1:4] == ["-m", "training.runner", "--exec"]  # the launcher dies with the worker
    assert multi[5:7] == ["-m", "accelerate.commands.launch"] and multi[-3:] == ["-m", "training.runner", str(spec)]
    assert "--num_processes" in multi and "4" in multi
    settings.JUROR_WORKER_LAUNCHER = "python"
    assert child_command(spec, distributed=True, gpus=4)[1:] == ["-m", "training.runner", str(spec)]


def test_a_distributed_kind_runs_through_accelerate_launch_and_reports_back(settings, monkeypatch):
    """The launcher path for real, on CPU with one process: the wrapper, the launcher, the rank, its events."""
    from training import catalog

    monkeypatch.setitem(catalog.KINDS, "noop", dataclasses.replace(catalog.KINDS["noop"], distributed=True))
    settings.JUROR_WORKER_LAUNCHER = "accelerate"
    settings.JUROR_ACCELERATE_ARGS = "--cpu --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no"
    settings.JUROR_JOB_HEARTBEAT_SECONDS = 0.3
    job = noop(ProjectFactory(), steps=3, step_seconds=0.05)
    Worker(name="launcher").run(once=True)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error + "\n".join(job.log_lines.values_list("line", flat=True))
    assert (job.progress_current, job.result) == (3, {"steps": 3, "resumed_after": 0})
    assert job.metrics.filter(name="value").count() == 3
    assert (job_dir(job) / f"events-{job.attempt}.jsonl").exists()


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


def _job_child(worker: subprocess.Popen) -> int:
    """The pid of the worker's job child (`python -m training.runner …`)."""

    def child() -> int | None:
        pids = subprocess.run(  # noqa: S603, S607
            ["pgrep", "-P", str(worker.pid), "-f", "training.runner"], capture_output=True, text=True, check=False
        ).stdout.split()
        return int(pids[0]) if len(pids) == 1 else None

    return wait_for(child, timeout=10, what="the job's child process")


def _alive(pid: str | int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_worker_cut_off_from_the_database_stops_its_child_before_its_lease_runs_out(settings, monkeypatch):
    from django.db import OperationalError

    settings.JUROR_JOB_LEASE_SECONDS = 1.5
    settings.JUROR_JOB_HEARTBEAT_SECONDS = 0.25
    job = noop(ProjectFactory(), steps=100, step_seconds=0.1)
    claimed = job_claim(worker="cut-off")

    def unreachable(job):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr("training.worker.job_heartbeat", unreachable)
    children = []

    class Watched(Worker):
        def _spawn(self, attempt, *args, **kwargs):
            super()._spawn(attempt, *args, **kwargs)
            children.append(attempt.child)

    started = time.monotonic()
    assert Watched(name="cut-off").run_job(claimed) == "lost"
    assert time.monotonic() - started < 10
    (child,) = children
    # Killed and reaped, with its whole process group: nothing is left running beside the next holder.
    assert child.returncode == -signal.SIGKILL
    with pytest.raises(ProcessLookupError):
        os.killpg(child.pid, 0)
    assert len(steps_run(job)) < 100
    assert status(job) == "running"  # the row is the next worker's to take over once the lease ends


def test_the_worker_loop_survives_a_database_that_fails_and_comes_back(settings, monkeypatch):
    from django.db import OperationalError

    settings.JUROR_WORKER_POLL_SECONDS = 0.05
    job = noop(ProjectFactory(), steps=1, step_seconds=0)
    calls = []

    def flaky_claim(*, worker):
        calls.append(worker)
        if len(calls) == 1:
            raise OperationalError("database is locked")
        return job_claim(worker=worker)

    monkeypatch.setattr("training.worker.job_claim", flaky_claim)
    assert Worker(name="w").run(exit_when_idle=True) == 1
    assert status(job) == "succeeded" and len(calls) == 3


def test_metrics_that_are_not_numbers_are_left_out_and_said_in_the_log(tmp_path):
    from training.runner import Context

    events = []
    spec = {
        "job_id": 1,
        "attempt": 1,
        "kind": "noop",
        "config": {},
        "workdir": str(tmp_path / "job"),
        "data_dir": str(tmp_path),
    }
    ctx = Context(spec, events.append)
    ctx.metric(3, loss=float("nan"), reward=0.5, kl=float("inf"))
    assert events == [{"type": "metric", "step": 3, "values": {"reward": 0.5}}]


def test_the_child_gets_the_same_database_url_with_only_the_name_changed():
    from training.worker import url_for_database

    url = "postgres://juror:p%40ss%2Fw@db.example.org:6432/juror?sslmode=require"
    assert (
        url_for_database(url, "test_juror")
        == "postgres://juror:p%40ss%2Fw@db.example.org:6432/test_juror?sslmode=require"
    )
