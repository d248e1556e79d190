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
@given(
    data=st.binary(max_size=400),
    suffix=st.sampled_from([".jsonl", ".json", ".csv", ".parquet", ".jsonl.gz", ".json.gz", ".csv.gz"]),
    gzipped=st.booleans(),
)
def test_random_bytes_never_crash_the_import(tmp_path, data, suffix, gzipped):
    """`gzipped`: the bytes are really gzipped, so a .gz file's garbage reaches the parser too."""
    import gzip

    project = ProjectFactory()
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(gzip.compress(data) if gzipped and suffix.endswith(".gz") else data)
    _check(project, path)


# Pieces that steer random bytes into the JSON array reader's corners: escapes and surrogate halves, long digit
# runs (numbers Python will not convert, or text), nesting, NaN, byte-order marks and bytes that are not UTF-8.
JSON_PIECES = st.sampled_from(
    [
        b'"',
        b"\\",
        b'\\"',
        b"\\ud83d",
        b"\\ude00",
        b"\\ud83d\\ude00",
        b"\\u00e9",
        b"9" * 4301,
        b"1.5",
        b"-",
        b"1e999",
        b"NaN",
        b"[" * 600,
        b"]",
        b"{",
        b"}",
        b",",
        b":",
        b'"prompt"',
        b'{"prompt": "Q", "chosen": "A", "rejected": "B"}',
        b"\n",
        b"\xef\xbb\xbf",
        b"\xe9",
        b"\xed\xa0\x80",
        b"\x00",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    pieces=st.lists(JSON_PIECES | st.binary(max_size=20), max_size=30),
    suffix=st.sampled_from([".json", ".json.gz"]),
)
def test_random_json_arrays_never_crash_the_import(tmp_path, pieces, suffix):
    """A file that starts with "[" is read as one array (ijson's C parser, fed by our own reader)."""
    import gzip

    data = b"[" + b"".join(pieces)
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    _check(ProjectFactory(), path)


PATHS = st.sampled_from(["train", "data-00000-of-00001.arrow", "/etc/passwd", "..", "../x", "a/../../b", "", "/"])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    marker=st.sampled_from(["dataset_dict.json", "state.json"]),
    meta=JSONISH
    | st.fixed_dictionaries({"splits": st.lists(PATHS | st.text(max_size=10), max_size=3)})
    | st.fixed_dictionaries(
        {"_data_files": st.lists(st.fixed_dictionaries({"filename": PATHS}) | JSONISH, max_size=3)}
    ),
    arrow=st.binary(max_size=200) | st.none(),
)
def test_random_zipped_datasets_never_crash_the_import(tmp_path, marker, meta, arrow):
    """Whatever a zipped dataset's metadata says, and whatever its Arrow file holds: rows or our own error."""
    import io
    import json
    import shutil
    import uuid
    import zipfile

    from feedback.imports.uploads import _unzip_dataset

    work = tmp_path / uuid.uuid4().hex
    work.mkdir()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr(f"ds/{marker}", json.dumps(meta))
        if arrow is not None:
            z.writestr("ds/train/data-00000-of-00001.arrow" if marker == "dataset_dict.json" else "ds/x.arrow", arrow)
    (work / "ds.zip").write_bytes(buffer.getvalue())
    try:
        folder = _unzip_dataset(work / "ds.zip", work / "dataset", "ds.zip", 10**6)
        data_import(project=ProjectFactory(), path=folder, fmt="hf", display_name="ds.zip")
    except ImportFailed as exc:
        assert exc.message.startswith("ds.zip")
    finally:
        shutil.rmtree(work)


@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    rows=st.lists(st.dictionaries(COLUMNS, JSONISH, min_size=1, max_size=5), min_size=1, max_size=4),
    as_array=st.booleans(),
)
def test_random_rows_never_crash_the_import(tmp_path, rows, as_array):
    """FUZZ_EXAMPLES=5000 for a longer hunt; CI runs 200. The rows are written as JSON Lines or as one array."""
    import json

    project = ProjectFactory()
    if as_array:
        path = tmp_path / "rows.json"
        path.write_text(json.dumps(rows, indent=1))
    else:
        path = tmp_path / "rows.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    _check(project, path)
