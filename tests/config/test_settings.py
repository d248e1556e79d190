import os
import subprocess
import sys

import pytest

STRONG_KEY = "k" * 20 + "Zq8#w!pL0-x7@vB2^nR5&tY9*uE3(iO6)" + "m" * 10


def manage(*args, **env):
    full_env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "DEBUG", "JUROR_ENV", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    full_env.update(env)
    return subprocess.run([sys.executable, "manage.py", *args], capture_output=True, text=True, env=full_env)


@pytest.mark.slow
def test_production_refuses_the_default_secret_key():
    result = manage("check", JUROR_ENV="production")
    assert result.returncode != 0
    assert "JUROR_ENV=production needs SECRET_KEY" in result.stderr


@pytest.mark.slow
def test_production_refuses_debug():
    result = manage("check", JUROR_ENV="production", SECRET_KEY=STRONG_KEY, DEBUG="1")
    assert result.returncode != 0 and "DEBUG must be off" in result.stderr


@pytest.mark.slow
def test_check_deploy_is_clean_in_production_mode():
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        JUROR_ENV="production",
        SECRET_KEY=STRONG_KEY,
        ALLOWED_HOSTS="juror.example.org",
    )
    assert result.returncode == 0, result.stderr + result.stdout


@pytest.mark.slow
def test_debug_is_off_unless_asked():
    show = ["shell", "--no-imports", "-c", "from django.conf import settings; print(settings.DEBUG)"]
    assert manage(*show).stdout.strip() == "False"
    assert manage(*show, DEBUG="1").stdout.strip() == "True"


@pytest.mark.slow
def test_sqlite_runs_in_wal_mode(tmp_path):
    db = tmp_path / "wal.sqlite3"
    show = [
        "shell",
        "--no-imports",
        "-c",
        "from django.db import connection; c = connection.cursor(); "
        "c.execute('PRAGMA journal_mode'); print(c.fetchone()[0])",
    ]
    assert manage(*show, DATABASE_URL=f"sqlite:///{db}").stdout.strip() == "wal"


def test_the_web_process_never_imports_torch(tmp_path):
    """Pages, the API and the admin load without torch or transformers: heavy work belongs to the worker."""
    code = (
        "import django, sys; django.setup(); "
        "import config.urls, training.admin, training.views, training.api, feedback.admin; "
        "from django.test import Client; Client().get('/'); "
        "print(sorted(m for m in ('torch', 'transformers', 'peft', 'trl') if m in sys.modules))"
    )
    out = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "JUROR_DATA_DIR": str(tmp_path)},
    )
    assert out.stdout.strip() == "[]"


def test_a_lease_the_heartbeat_cannot_keep_is_refused_at_start():
    result = manage("check", JUROR_JOB_LEASE_SECONDS="10", JUROR_JOB_HEARTBEAT_SECONDS="5")
    assert result.returncode != 0
    assert "JUROR_JOB_LEASE_SECONDS must be more than 3 × JUROR_JOB_HEARTBEAT_SECONDS" in result.stderr
    assert manage("check", JUROR_WORKER_LAUNCHER="mpi").returncode != 0
