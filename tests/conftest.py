import os

import pytest
from django.db import connection

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """On SQLite the test database is a file, not memory: workers and job children are other processes and
    must open the same database the test wrote."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3") and not db.get("TEST", {}).get("NAME"):
        db.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")


@pytest.fixture(autouse=True)
def _data_dir(settings, tmp_path):
    """Each test writes models, exports and demo logins under its own data directory."""
    settings.JUROR_DATA_DIR = tmp_path / "data"


def pytest_collection_modifyitems(config, items):
    # Tests for one database's behaviour (PostgreSQL's row locks, SQLite's single writer) are deselected on the
    # other rather than skipped.
    other = "sqlite" if connection.vendor == "postgresql" else "postgres"
    config.hook.pytest_deselected(items=[i for i in items if other in i.keywords])
    items[:] = [i for i in items if other not in i.keywords]


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hashing():
    """PBKDF2 at production strength costs ~0.4 s per user; tests create hundreds."""
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
