"""bench/annotation_load.py at a tiny size (about a second per load level) on SQLite, and on PostgreSQL when the
tests run there; its SQL insert follows the models; a crashed or stopped run drops its PostgreSQL database."""

import os
import signal
import subprocess

import pytest

from feedback.models import Comparison, Project, Prompt, Response
from tests.bench.benches import (
    ROOT,
    alive,
    bench_command,
    descendants,
    load_bench,
    postgres_count,
    postgres_database_exists,
    postgres_url,
    run_bench,
)
from tests.training.workers import wait_for

annotation_load = load_bench("annotation_load")

TINY = ("--seconds", "1", "--levels", "1,4", "--small", "300", "--big", "600", "--rounds", "20")
SMALL_SERVER = {"BENCH_WORKERS": "1", "BENCH_THREADS": "4"}  # starts in a second on two cores


def check_figures(lines: list[dict], db: str) -> None:
    load = [line for line in lines if line["bench"] == "annotation_load"]
    assert [(line["mode"], line["annotators"]) for line in load] == [
        ("separate", 1),
        ("separate", 4),
        ("combined", 1),
        ("combined", 4),
    ]
    for line in load:
        assert line["db"] == db
        assert set(line) >= {"labels", "labels_per_s", "next_ms", "label_ms", "errors"}
        assert set(line["next_ms"]) == set(line["label_ms"]) == {"p50", "p95", "p99"}
        assert line["labels"] > 0 and line["errors"] == 0, line
    (size,) = [line for line in lines if line["bench"] == "annotation_next_vs_size"]
    assert (size["comparisons_small"], size["comparisons_big"]) == (300, 600)
    assert size["next_ms_p50_small"] > 0 and size["next_ms_p50_big"] > 0 and "ratio" in size
    (reconcile,) = [line for line in lines if line["bench"] == "annotation_reconcile"]
    assert reconcile["labels_acknowledged"] == reconcile["labels_stored"] > 0
    assert (reconcile["over_assigned"], reconcile["counter_drift"]) == (0, 0)


@pytest.mark.django_db
def test_grow_fills_every_column_the_model_declares():
    project = Project.objects.create(slug="grown", name="Grown")
    annotation_load.grow(project.id, 3, 0)
    annotation_load.grow(project.id, 2, 3)
    pairs = list(Comparison.objects.filter(project=project).select_related("response_a", "response_b"))
    assert len(pairs) == 5 and Prompt.objects.filter(project=project).count() == 5
    assert all(p.kind == "pair" and p.servable and p.label_count == 0 and p.gold_choice == "" for p in pairs)
    assert {(p.response_a.model, p.response_b.model) for p in pairs} == {("m0", "m1")}
    response = pairs[0].response_a
    assert (response.reasoning, response.generation, response.job_id) == ("", {}, None)
    assert response.created_at is not None


def test_insert_select_names_a_required_field_it_was_given_no_value_for():
    with pytest.raises(ValueError, match=r"Response\.prompt has no default"):
        annotation_load.insert_select(Response, {"text": "'x'"}, "feedback_prompt")
    with pytest.raises(ValueError, match="Response has no column nonsense"):
        annotation_load.insert_select(Response, {"nonsense": "1"}, "feedback_prompt")


@pytest.mark.slow
def test_annotation_load_at_a_tiny_size_on_sqlite():
    check_figures(run_bench("annotation_load", "--db", "sqlite", *TINY, **SMALL_SERVER), "sqlite")


@pytest.mark.postgres
@pytest.mark.slow
def test_annotation_load_at_a_tiny_size_on_postgresql():
    url = postgres_url(f"juror_bench_smoke_{os.getpid()}")
    check_figures(run_bench("annotation_load", "--db", "postgres", "--pg", url, *TINY, **SMALL_SERVER), "postgres")
    assert not postgres_database_exists(url)


@pytest.mark.postgres
def test_a_crashed_run_drops_the_postgresql_database_it_created():
    url = postgres_url(f"juror_bench_crash_{os.getpid()}")
    done = subprocess.run(  # noqa: S603
        bench_command("annotation_load", "--db", "postgres", "--pg", url, "--small", "10", "--fail-after-setup"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "failing after set-up, as --fail-after-setup asks" in done.stderr  # so the database had been built
    assert not postgres_database_exists(url)


@pytest.mark.postgres
def test_a_stopped_run_stops_its_server_and_drops_the_postgresql_database_it_created():
    url = postgres_url(f"juror_bench_stop_{os.getpid()}")
    # Long levels, so the run is in the middle of its load when it is stopped.
    run = subprocess.Popen(  # noqa: S603
        bench_command("annotation_load", "--db", "postgres", "--pg", url, "--seconds", "600", "--small", "100"),
        cwd=ROOT,
        env={**os.environ, **SMALL_SERVER},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: postgres_count(url, "feedback_label"), timeout=120, what="labels through the bench's server")
        started = descendants(run.pid)  # the bench's child, gunicorn and its workers
        assert len(started) >= 3, started
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=60) != 0
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    wait_for(lambda: not any(alive(pid) for pid in started), timeout=30, what="the bench's processes to end")
    assert not postgres_database_exists(url)
