"""bench/import_speed.py at a tiny size: the direct import and the import through a job (upload, worker, child)
both report their figures, on SQLite, and on PostgreSQL when the tests run there (its database is dropped)."""

import os

import pytest

from tests.bench.benches import postgres_database_exists, postgres_url, run_bench

pytestmark = pytest.mark.slow  # a worker and its child, each starting Django: about ten seconds


def check_figures(lines: list[dict], database: str) -> None:
    direct, job = lines
    assert (direct["bench"], job["bench"]) == ("import_speed", "import_job")
    assert direct["database"] == job["database"] == database
    assert set(direct) >= {"rows", "seconds", "rows_per_s", "reimport_rows_per_s", "peak_rss_mb", "created"}
    assert direct["rows"] == 40 and direct["created"]["responses"] == 40 and direct["reimport_created"] == 0
    assert set(job) >= {"rows", "seconds", "rows_per_s", "job_rows_per_s", "peak_rss_mb", "created"}
    assert job["rows"] == 60 and job["created"]["responses"] == 60
    assert job["peak_rss_mb"] > 0, "the job's child reports its peak RSS"


def test_import_speed_at_a_tiny_size_on_sqlite():
    check_figures(run_bench("import_speed", "--rows", "40", "--job-rows", "60", "--db", "sqlite"), "sqlite")


@pytest.mark.postgres
def test_import_speed_at_a_tiny_size_on_postgresql():
    url = postgres_url(f"juror_bench_import_smoke_{os.getpid()}")
    lines = run_bench("import_speed", "--rows", "40", "--job-rows", "60", "--db", "postgres", "--pg", url)
    check_figures(lines, "postgresql")
    assert not postgres_database_exists(url)
