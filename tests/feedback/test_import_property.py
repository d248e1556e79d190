"""Any bytes in: either validated rows, or our own ImportFailed naming the file; never another exception."""

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedback.imports.errors import ImportFailed
from feedback.imports.service import data_import
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
COLUMNS = st.sampled_from(
    [
        "prompt",
        "messages",
        "response",
        "responses",
        "chosen",
        "rejected",
        "model_a",
        "model_b",
        "winner",
        "response_a",
        "response_b",
        "conversation_a",
        "conversation_b",
        "instruction",
        "output_1",
        "output_2",
        "preference",
        "metadata",
        "source",
        "generation",
    ]
)


def _check(project, path):
    try:
        data_import(project=project, path=path)
    except ImportFailed as exc:
        assert exc.message.startswith(path.name)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".jsonl", ".csv", ".parquet"]))
def test_random_bytes_never_crash_the_import(tmp_path, data, suffix):
    project = ProjectFactory()
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    _check(project, path)


@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(rows=st.lists(st.dictionaries(COLUMNS, JSONISH, min_size=1, max_size=5), min_size=1, max_size=4))
def test_random_rows_never_crash_the_import(tmp_path, rows):
    """FUZZ_EXAMPLES=5000 for a longer hunt; CI runs 200."""
    import json

    project = ProjectFactory()
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    _check(project, path)
