"""The job state machine, called directly: claims, leases, fencing, retries, cancel."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import ProjectFactory
from training.configs import ConfigError
from training.jobs import (
    JobStateError,
    job_cancel,
    job_claim,
    job_fail,
    job_heartbeat,
    job_progress,
    job_requeue,
    job_retry,
    job_submit,
    job_succeed,
)
from training.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_retry_delay(settings):
    settings.JUROR_JOB_RETRY_DELAY_SECONDS = 0
    settings.JUROR_JOB_MAX_ATTEMPTS = 3


def noop(project=None, **config) -> Job:
    return job_submit(kind="noop", project=project or ProjectFactory(), config=config)


def expire(job: Job) -> None:
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))


def test_submit_stores_the_validated_config_with_defaults():
    job = noop(steps=2)
    assert job.status == "queued"
    assert job.config == {"steps": 2, "step_seconds": 0.2, "fail": False}


def test_submit_refuses_a_bad_config_and_creates_nothing():
    with pytest.raises(ConfigError, match="unknown config key"):
        noop(stepz=2)
    with pytest.raises(ConfigError, match="steps must be at least 1"):
        noop(steps=0)
    with pytest.raises(ConfigError, match="unknown job kind"):
        job_submit(kind="train-everything", project=ProjectFactory(), config={})
    assert Job.objects.count() == 0


def test_claim_takes_the_oldest_job_once_and_sets_a_lease():
    first, second = noop(), noop()
    claimed = job_claim(worker="w1")
    assert claimed.pk == first.pk
    assert (claimed.status, claimed.attempt, claimed.worker) == ("running", 1, "w1")
    assert claimed.lease_expires_at > timezone.now()
    assert job_claim(worker="w2").pk == second.pk
    assert job_claim(worker="w3") is None


def test_a_job_whose_worker_stopped_heartbeating_is_taken_over_with_the_next_attempt():
    job = noop()
    stale = job_claim(worker="dead")
    expire(job)
    taken = job_claim(worker="alive")
    assert (taken.pk, taken.attempt, taken.worker) == (job.pk, 2, "alive")
    # The old holder's writes are fenced off: its attempt no longer holds the job.
    assert job_heartbeat(stale) == "lost"
    assert job_progress(stale, current=5, total=5) is False
    assert job_succeed(stale, result={"from": "stale"}) is False
    assert job_succeed(taken, result={"ok": True}) is True
    job.refresh_from_db()
    assert (job.status, job.result) == ("succeeded", {"ok": True})


def test_a_lost_job_that_used_up_its_attempts_fails_with_the_reason_instead_of_running_forever():
    job = noop()
    for _ in range(3):
        job_claim(worker="flaky")
        expire(job)
    assert job_claim(worker="next") is None
    job.refresh_from_db()
    assert job.status == "failed"
    assert "gave up after 3 attempts" in job.error and "flaky stopped heartbeating" in job.error


def test_a_crash_is_retried_until_max_attempts_then_fails():
    job = noop()
    for expected in ("retrying", "retrying", "failed"):
        claimed = job_claim(worker="w")
        assert job_fail(claimed, error="RuntimeError: boom") == expected
    job.refresh_from_db()
    assert job.status == "failed"
    assert job.error == "failed after 3 attempts: RuntimeError: boom"


def test_a_clean_hand_back_does_not_count_against_max_attempts():
    job = noop()
    for _ in range(5):
        assert job_requeue(job_claim(worker="w"), reason="shutting down")
    job.refresh_from_db()
    assert (job.status, job.attempt, job.failed_attempts) == ("queued", 5, 0)
    claimed = job_claim(worker="w")
    assert job_fail(claimed, error="boom") == "retrying"


def test_retry_delay_grows_with_each_failure(settings):
    settings.JUROR_JOB_RETRY_DELAY_SECONDS = 10
    job = noop()
    job_fail(job_claim(worker="w"), error="boom")
    job.refresh_from_db()
    assert 9 <= (job.run_after - timezone.now()).total_seconds() <= 10.01  # the database clock: ms precision
    assert job_claim(worker="w") is None  # not before its back-off


def test_cancel_of_a_queued_job_is_immediate():
    job = job_cancel(noop())
    assert job.status == "cancelled"
    assert job_claim(worker="w") is None


def test_cancel_of_a_running_job_reaches_its_worker_through_the_heartbeat():
    job = noop()
    claimed = job_claim(worker="w")
    assert job_heartbeat(claimed) == "ok"
    assert job_cancel(job).cancel_requested
    assert job_heartbeat(claimed) == "cancel"


def test_cancel_of_a_running_job_whose_worker_is_gone_is_immediate():
    job = noop()
    job_claim(worker="gone")
    expire(job)
    assert job_cancel(job).status == "cancelled"


def test_finished_jobs_cannot_be_cancelled_and_succeeded_ones_not_retried():
    job = noop()
    job_succeed(job_claim(worker="w"))
    with pytest.raises(JobStateError, match="only queued or running"):
        job_cancel(job)
    with pytest.raises(JobStateError, match="only failed or cancelled"):
        job_retry(job)


def test_retry_gives_a_failed_job_a_fresh_set_of_attempts_and_keeps_the_attempt_counting():
    job = noop()
    for _ in range(3):
        job_fail(job_claim(worker="w"), error="boom")
    job.refresh_from_db()
    assert job.status == "failed"
    job_retry(job)
    claimed = job_claim(worker="w")
    assert claimed.attempt == 4  # the fencing token never goes back
    assert job_fail(claimed, error="boom") == "retrying"


def test_a_cancel_that_arrives_while_an_attempt_ends_wins_over_hand_back_and_retry():
    for end in (lambda j: job_requeue(j, reason="shutdown"), lambda j: job_fail(j, error="boom")):
        job = noop()
        claimed = job_claim(worker="w")
        job_cancel(job)
        end(claimed)
        job.refresh_from_db()
        assert (job.status, job.cancel_requested) == ("cancelled", False)
        assert job_claim(worker="w") is None


def test_a_queued_job_flagged_for_cancel_is_cancelled_not_run():
    job = noop()
    Job.objects.filter(pk=job.pk).update(cancel_requested=True)  # a cancel that raced a hand-back
    assert job_claim(worker="w") is None
    job.refresh_from_db()
    assert job.status == "cancelled"


def test_lease_times_come_from_the_database_clock(monkeypatch):
    """A worker whose clock runs an hour fast still sets leases by the database's time."""
    noop()
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + timedelta(hours=1))
    claimed = job_claim(worker="fast-clock")
    lease = (claimed.lease_expires_at - real_now()).total_seconds()
    assert 55 < lease < 65


def test_a_list_given_as_one_name_is_a_list_of_one_and_other_text_is_refused():
    assert noop_config_of("generate", {"models": "my-model"})["models"] == ["my-model"]
    with pytest.raises(ConfigError, match="temperatures: expected a list, got '0.7'"):
        noop_config_of("generate", {"temperatures": "0.7"})
    with pytest.raises(ConfigError, match="seed must not be negative"):
        noop_config_of("generate", {"seed": -1})


def noop_config_of(kind: str, config: dict) -> dict:
    return job_submit(kind=kind, project=ProjectFactory(), config=config).config
