import os
from pathlib import Path

import pytest

from . import chromium

# Playwright's sync API runs an event loop in the test thread for the whole session; the ORM calls in these
# tests (and pytest-django's fixtures around them) are still synchronous, which is what Django's guard is about.
# Subprocesses that run `check --deploy` drop this variable (tests/config/test_settings.py).
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Debian's Chromium, never a downloaded browser."""
    return {**browser_type_launch_args, "executable_path": chromium.EXECUTABLE, "args": chromium.ARGS}


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)
