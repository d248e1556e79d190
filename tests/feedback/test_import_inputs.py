"""What real and hostile files do to an import: uploads that point outside themselves, compression bombs,
damaged archives, text PostgreSQL cannot store, byte-order marks and other encodings, JSON-looking text, HH
transcripts as published, empty answers in judged pairs, long file names, and the messy shapes of public files."""

import gzip
import io
import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from feedback.annotation import annotator_progress
from feedback.assignment import assignment_claim, assignment_queue
from feedback.exports.options import ExportOptions
from feedback.exports.service import export_preferences
from feedback.imports.errors import ImportFailed
from feedback.imports.readers import Limits
from feedback.imports.service import data_import
from feedback.models import Comparison, Label, Project, Prompt, Response
from tests.factories import MembershipFactory, ProjectFactory
from training.worker import database_url

from .files import write_rows

pytestmark = pytest.mark.django_db

BASE_DIR = Path(__file__).resolve().parents[2]
OUTSIDE = "the dataset names a file outside the upload"


def texts(project) -> list[str]:
    return sorted(m["content"] for p in Prompt.objects.filter(project=project) for m in p.messages)


def rejected(path, expected: str, project=None, **kw) -> ImportFailed:
    project = project or ProjectFactory()
    with pytest.raises(ImportFailed) as info:
        data_import(project=project, path=path, **kw)
    assert expected in info.value.message, info.value.message
    assert not Prompt.objects.filter(project=project).exists()
    return info.value


@pytest.fixture
def manager():
    membership = MembershipFactory(project=ProjectFactory(slug="mine"), role="manager")
    client = APIClient()
    client.force_authenticate(membership.user)
    return client, membership.project


def post(client, project, name: str, body: bytes, **data):
    f = io.BytesIO(body)
    f.name = name
    return client.post(f"/api/v1/projects/{project.slug}/import/", {"file": f, **data}, format="multipart")


def zip_of(entries: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buffer.getvalue()


# ---- 1. a saved dataset in an upload reads nothing outside it ------------------------------------------------


@pytest.fixture
def elsewhere(tmp_path):
    """Another project's export on the same disk: a saved DatasetDict with a secret in it."""
    import datasets

    path = tmp_path / "other-project-export"
    datasets.DatasetDict({"train": datasets.Dataset.from_list([{"prompt": "SECRET of beta"}])}).save_to_disk(str(path))
    return path


def test_api_zip_whose_splits_name_another_folder_imports_nothing(manager, elsewhere):
    client, project = manager
    body = zip_of({"ds/dataset_dict.json": json.dumps({"splits": [str(elsewhere / "train")]})})
    r = post(client, project, "ds.zip", body)
    assert r.status_code == 400
    assert r.json()["detail"] == f"ds.zip: {OUTSIDE}"
    assert b"SECRET" not in r.content and str(elsewhere).encode() not in r.content
    assert not Prompt.objects.exists()


@pytest.mark.parametrize(
    "named",
    ["/etc/passwd", "/etc", "/no/such/file", "../../../../../../etc/passwd", "data/../../state.json"],
)
def test_api_zip_whose_state_json_names_outside_files_answers_the_same_words(manager, named):
    """A file, a folder, nothing at all: one answer, which says nothing about what is there."""
    client, project = manager
    state = {"_data_files": [{"filename": named}], "_split": None}
    r = post(client, project, "ds.zip", zip_of({"ds/state.json": json.dumps(state)}))
    assert r.status_code == 400
    assert r.json() == {
        "detail": f"ds.zip: {OUTSIDE}",
        "errors": [{"file": "ds.zip", "line": None, "field": None, "reason": OUTSIDE, "unit": "line"}],
    }
    assert b"root" not in r.content
    assert not Prompt.objects.exists()


def test_zip_holding_a_symlink_is_refused(manager):
    client, project = manager
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        link = zipfile.ZipInfo("ds/data-00000-of-00001.arrow")
        link.external_attr = (0o120777 << 16) | 0x20
        z.writestr(link, "/etc/passwd")
        z.writestr("ds/state.json", json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}))
    r = post(client, project, "ds.zip", buffer.getvalue())
    assert r.status_code == 400
    assert "symbolic link" in r.json()["detail"]


def test_saved_dataset_with_a_data_file_linked_outside_is_refused(elsewhere, tmp_path):
    import datasets

    mine = tmp_path / "mine"
    datasets.Dataset.from_list([{"prompt": "mine"}]).save_to_disk(str(mine))
    arrow = next(mine.glob("*.arrow"))
    arrow.unlink()
    arrow.symlink_to(next((elsewhere / "train").glob("*.arrow")))
    rejected(mine, OUTSIDE)


def test_zipped_dataset_from_a_mac_with_its_junk_imports(manager, tmp_path):
    """Finder adds __MACOSX/ and ._ files; the dataset is read from its Arrow files, split by split."""
    import datasets

    client, project = manager
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list([{"prompt": "train q"}]),
            "test": datasets.Dataset.from_list([{"prompt": "test q"}]),
        }
    ).save_to_disk(str(tmp_path / "ds"))
    entries = {str(p.relative_to(tmp_path)): p.read_bytes() for p in (tmp_path / "ds").rglob("*") if p.is_file()}
    entries["__MACOSX/ds/train/._data-00000-of-00001.arrow"] = b"\x00\x05\x16\x07junk"
    entries["ds/train/._data-00000-of-00001.arrow"] = b"\x00\x05\x16\x07junk"
    r = post(client, project, "ds.zip", zip_of(entries))
    assert r.status_code == 201, r.content
    assert texts(project) == ["test q", "train q"]


def test_saved_dataset_in_shards_keeps_every_row_in_order(tmp_path):
    import datasets

    project = ProjectFactory()
    datasets.Dataset.from_list([{"prompt": f"q{i:02d}"} for i in range(10)]).save_to_disk(
        str(tmp_path / "ds"), num_shards=3
    )
    summary = data_import(project=project, path=tmp_path / "ds", skip_invalid=True)
    assert summary.imported == 10
    ordered = Prompt.objects.filter(project=project).order_by("id")
    assert [p.messages[0]["content"] for p in ordered] == [f"q{i:02d}" for i in range(10)]


# ---- 2. compression bombs stop early, in bounded memory --------------------------------------------------------


def gzip_bomb(path: Path, head: bytes, chunk: bytes, times: int, tail: bytes = b"") -> Path:
    """A gzip file of head + chunk × times + tail, small on disk and made in a blink: each part is deflated
    once from a fresh state (full flush), so repeating the chunk's compressed bytes repeats the chunk."""

    def deflated(data: bytes) -> bytes:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        return c.compress(data) + c.flush(zlib.Z_FULL_FLUSH)

    crc = zlib.crc32(head)
    for _ in range(times):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(tail, crc)
    size = len(head) + len(chunk) * times + len(tail)
    block = deflated(chunk)
    with open(path, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + deflated(head))
        for _ in range(times):
            f.write(block)
        f.write(deflated(tail) + zlib.compressobj(9, zlib.DEFLATED, -15).flush())
        f.write(struct.pack("<II", crc, size & 0xFFFFFFFF))
    return path


MIB = 1 << 20
BOMBS = {
    # one 400 MiB line: read whole, it took a web worker to 3 GB
    "line.jsonl.gz": (b'{"prompt": "', b"a" * MIB, 400, b'"}\n', "line 1: line longer than the import limit"),
    # 600 MiB of newlines: read line by line, it outlived gunicorn's timeout
    "newlines.jsonl.gz": (b'{"prompt": "x"}\n', b"\n" * MIB, 600, b"", "more than the import limit of"),
    # one CSV row whose quoted cell runs over 400 MiB of short lines
    "cell.csv.gz": (
        b'prompt,response\n"',
        (b"a" * 1023 + b"\n") * 1024,
        400,
        b'",b\n',
        "CSV row longer than the import limit",
    ),
    # one 400 MiB element of a JSON array: ijson would buffer the whole string
    "element.json.gz": (
        b'[{"prompt": "ok"},\n {"prompt": "',
        b"a" * MIB,
        400,
        b'"}]',
        "row 2: array element longer than the import limit",
    ),
}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", BOMBS)
def test_decompression_bombs_stop_early_in_bounded_memory(tmp_path, name):
    head, chunk, times, tail, expected = BOMBS[name]
    path = gzip_bomb(tmp_path / name, head, chunk, times, tail)
    assert path.stat().st_size < 2 * MIB
    peak_mib, done = peak_import(path)  # the default limits: 512 MiB, 2,000,000 rows, 16 MiB lines
    assert done.stdout.split()[-1] == "1", done.stdout + done.stderr  # CommandError
    assert expected in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert peak_mib < 500, f"peak RSS {peak_mib:.0f} MiB"
    assert not Project.objects.filter(slug="bombed").exists()


def test_blank_lines_count_toward_the_row_limit(tmp_path):
    path = tmp_path / "blank.jsonl"
    path.write_bytes(b'{"prompt": "x"}\n' + b"\n" * 10)
    rejected(path, "blank.jsonl, line 4: more than the import limit of 3 rows", limits=Limits(10**6, 3))


def test_line_limit_names_the_line(tmp_path):
    path = tmp_path / "long.jsonl"
    path.write_bytes(b'{"prompt": "ok"}\n{"prompt": "' + b"a" * 2000 + b'"}\n')
    rejected(
        path, "long.jsonl, line 2: line longer than the import limit of 1,000 bytes", limits=Limits(10**6, 10, 1000)
    )


def test_a_line_at_the_limit_imports(tmp_path):
    line = b'{"prompt": "' + b"a" * 80 + b'"}'
    path = tmp_path / "exact.jsonl"
    path.write_bytes(line + b"\n")
    summary = data_import(project=ProjectFactory(), path=path, limits=Limits(10**6, 10, len(line) + 1))
    assert summary.imported == 1


def test_csv_cell_longer_than_csvs_own_default_limit_imports(tmp_path):
    """Python's csv refuses cells over 128 KiB by default; a long answer is not an error."""
    project = ProjectFactory()
    path = write_rows([{"prompt": "Q", "response": "long " * 60_000}], "csv", tmp_path)
    assert data_import(project=project, path=path).imported == 1
    assert len(Response.objects.get().text) == 300_000


# ---- 3. damaged archives are a 400, never a 500 ---------------------------------------------------------------


def test_api_jsonl_gz_that_is_not_gzip_is_a_400(manager):
    client, project = manager
    r = post(client, project, "p.jsonl.gz", b'{"prompt": "plain text, not gzip"}\n')
    assert r.status_code == 400
    assert r.json()["detail"] == "p.jsonl.gz: not a gzip file (the name ends in .gz)"


@pytest.mark.parametrize("damage", ["cut", "crc"])
def test_api_damaged_gzip_is_a_400(manager, damage):
    client, project = manager
    body = gzip.compress(b'{"prompt": "one"}\n' * 1000)
    body = body[: len(body) // 2] if damage == "cut" else body[:-8] + b"\x00\x00\x00\x00" + body[-4:]
    r = post(client, project, "p.jsonl.gz", body)
    assert r.status_code == 400
    assert r.json()["detail"] == "p.jsonl.gz: the gzip data is damaged or cut short"
    assert not Prompt.objects.filter(project=project).exists()


def test_api_zip_with_a_bad_crc_is_a_400(manager, tmp_path):
    import datasets

    client, project = manager
    datasets.Dataset.from_list([{"prompt": "q"}]).save_to_disk(str(tmp_path / "ds"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
        for p in sorted((tmp_path / "ds").iterdir()):
            z.write(p, f"ds/{p.name}")
    body = bytearray(buffer.getvalue())
    at = body.index(b"ARROW1") if b"ARROW1" in body else body.index(b"prompt")
    body[at] ^= 0xFF  # one flipped byte inside a stored entry: its CRC no longer matches
    r = post(client, project, "ds.zip", bytes(body))
    assert r.status_code == 400
    assert "the zip is damaged" in r.json()["detail"]


def test_api_file_that_is_not_a_zip_is_a_400(manager):
    client, project = manager
    r = post(client, project, "ds.zip", b"PK\x03\x04 not really")
    assert r.status_code == 400 and r.json()["detail"] == "ds.zip: not a readable zip file"


# ---- 4. NUL and other text no database can store --------------------------------------------------------------

NUL = "a\x00b"
NUL_ROWS = [
    ({"prompt": NUL}, "prompt"),
    ({"messages": [{"role": "user", "content": NUL}]}, "messages"),
    ({"prompt": "Q", "metadata": {NUL: 1}}, "metadata"),
    ({"prompt": "Q", "metadata": {"k": ["x", {"deep": NUL}]}}, "metadata"),
    ({"prompt": "Q", "response": NUL}, "response"),
    ({"prompt": "Q", "response": "A", "model": NUL}, "model"),
    ({"prompt": "Q", "response": "A", "generation": {"stop": [NUL]}}, "generation"),
    ({"prompt": "Q", "chosen": NUL, "rejected": "B"}, "chosen"),
    ({"chosen": f"\n\nHuman: {NUL}\n\nAssistant: A", "rejected": f"\n\nHuman: {NUL}\n\nAssistant: B"}, "chosen"),
    (
        {"prompt": "Q", "model_a": "x", "model_b": "y", "winner": "tie", "response_a": "A", "response_b": NUL},
        "response_b",
    ),
    ({"prompt": "Q", "chosen": "A", "rejected": "B", "source": NUL}, "source"),
]


@pytest.mark.parametrize(("row", "field"), NUL_ROWS, ids=[f for _, f in NUL_ROWS])
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_nul_in_any_stored_text_is_a_row_problem_naming_the_field(tmp_path, fmt, row, field):
    good = {k: v.replace("\x00", "") if isinstance(v, str) else v for k, v in row.items()}
    good = json.loads(json.dumps(good).replace("\\u0000", ""))
    path = write_rows([good, row], fmt, tmp_path)
    where = "" if fmt == "csv" else "line 2, "  # a CSV row of transcripts spans several lines
    rejected(path, f"{where}field '{field}': contains a NUL character (\\u0000), which cannot be stored")
    summary = data_import(project=ProjectFactory(), path=path, skip_invalid=True)
    assert summary.imported == 1 and summary.skipped[0].field == field


@pytest.mark.postgres
def test_api_nul_in_imported_text_is_a_400_on_postgresql(manager):
    client, project = manager
    body = (
        json.dumps({"prompt": "fine"})
        + "\n"
        + json.dumps({"prompt": "Q\u0000", "metadata": {"k\u0000": "v"}})
        + "\n"
        + json.dumps({"prompt": "Q", "metadata": {"k\u0000": "v"}})
        + "\n"
    ).encode()
    r = post(client, project, "nul.jsonl", body)
    assert r.status_code == 400
    assert [(e["line"], e["field"]) for e in r.json()["errors"]] == [(2, "prompt"), (3, "metadata")]
    r = post(client, project, "nul.jsonl", body, skip_invalid="true")
    assert r.status_code == 201 and r.json()["imported"] == 1


def test_unpaired_surrogate_anywhere_in_a_line_is_a_row_problem(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"prompt": "ok"}\n{"prompt": "fine", "unused": "\\ud800"}\n{"prompt": "\\udfff"}\n')
    summary = data_import(project=ProjectFactory(), path=path, skip_invalid=True)
    assert summary.imported == 1
    assert [(e.line, e.field) for e in summary.skipped] == [(2, "unused"), (3, "prompt")]
    assert "unpaired surrogate" in summary.skipped[0].reason


def test_nan_in_metadata_is_a_row_problem(tmp_path):
    path = tmp_path / "nan.jsonl"
    path.write_text('{"prompt": "ok"}\n{"prompt": "Q", "metadata": {"score": NaN}}\n')
    rejected(path, "line 2, field 'metadata': holds NaN or Infinity")


# ---- 5. byte-order marks and other encodings ------------------------------------------------------------------

BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize("name", ["bom.jsonl", "bom.csv", "bom.jsonl.gz", "bom.csv.gz"])
def test_utf8_bom_is_accepted(tmp_path, name):
    body = b'{"prompt": "caf\xc3\xa9"}\r\n' if ".jsonl" in name else b"prompt\r\ncaf\xc3\xa9\r\n"
    body = BOM + body
    path = tmp_path / name
    path.write_bytes(gzip.compress(body) if name.endswith(".gz") else body)
    project = ProjectFactory()
    assert data_import(project=project, path=path).imported == 1
    assert texts(project) == ["café"]


@pytest.mark.parametrize("name", ["latin.jsonl", "latin.csv"])
def test_invalid_utf8_names_the_line_and_guesses_the_encoding(tmp_path, name):
    body = (
        b'{"prompt": "ok"}\n{"prompt": "caf\xe9 \x93quoted\x94"}\n'
        if name.endswith(".jsonl")
        else b"prompt\nok\ncaf\xe9\n"
    )
    path = tmp_path / name
    path.write_bytes(body)
    line = 2 if name.endswith(".jsonl") else 3
    rejected(path, f"{name}, line {line}: invalid UTF-8 at byte")
    rejected(path, "(looks like Windows-1252/Latin-1; save the file as UTF-8)")


@pytest.mark.parametrize("bom", [True, False])
def test_utf16_file_says_so(tmp_path, bom):
    text = "prompt\r\nhello\r\n"
    path = tmp_path / "wide.csv"
    path.write_bytes(text.encode("utf-16") if bom else text.encode("utf-16-le"))
    rejected(path, "UTF-16")


# ---- 6. text that looks like JSON is text, except in CSV cells meant for lists --------------------------------

JSONISH = [
    "[0] why is the sky blue?",
    "[INST] Tell me a joke [/INST]",
    '[{"role": "user", "content": "x"}]',
    "{braces}",
]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "hf"])
def test_text_starting_with_a_bracket_is_text(tmp_path, fmt):
    project = ProjectFactory()
    rows = [{"prompt": p, "response": f"answer to {p}"} for p in JSONISH]
    rows.append({"prompt": "Q", "response": "[1, 2, 3]"})
    summary = data_import(project=project, path=write_rows(rows, fmt, tmp_path))
    assert summary.imported == 5
    assert texts(project) == sorted([*JSONISH, "Q"])
    assert Response.objects.filter(text="[1, 2, 3]").exists()


def test_preference_texts_starting_with_a_bracket_are_text(tmp_path):
    project = ProjectFactory()
    rows = [{"prompt": "Q", "chosen": '["a", "list"]', "rejected": "[citation needed]"}]
    data_import(project=project, path=write_rows(rows, "jsonl", tmp_path))
    assert set(Response.objects.values_list("text", flat=True)) == {'["a", "list"]', "[citation needed]"}


def test_csv_cells_of_list_fields_still_carry_json(tmp_path):
    project = ProjectFactory()
    path = tmp_path / "cells.csv"
    path.write_text(
        "prompt,messages,response,metadata\n"
        '"[0] why?",,A,"{""k"": 1}"\n'
        ',"[{""role"": ""user"", ""content"": ""from messages""}]",B,\n'
        '"[{""role"": ""user"", ""content"": ""prompt as messages""}]",,C,\n'
    )
    assert data_import(project=project, path=path).imported == 3
    assert texts(project) == ["[0] why?", "from messages", "prompt as messages"]
    assert Prompt.objects.get(messages__0__content="[0] why?").metadata == {"k": 1}


def test_csv_malformed_json_in_a_list_only_field_is_still_an_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text('messages,response\n"[{oops",A\n')
    rejected(path, "line 2, field 'messages': malformed JSON in the cell")


# ---- 7. HH-RLHF as published -----------------------------------------------------------------------------------

HH_TWO_ASSISTANTS = (
    "\n\nHuman: Can you recommend a book?"
    "\n\nAssistant: Sure, what do you like?"
    "\n\nAssistant: For example, mysteries or history?"
    "\n\nHuman: History."
    "\n\nAssistant: "
)


def test_hh_consecutive_assistant_turns_merge_and_the_prompt_alternates(tmp_path):
    project = ProjectFactory()
    rows = [{"chosen": HH_TWO_ASSISTANTS + "Try 'SPQR'.", "rejected": HH_TWO_ASSISTANTS + "No."}]
    data_import(project=project, path=write_rows(rows, "jsonl", tmp_path))
    messages = Prompt.objects.get(project=project).messages
    assert messages == [
        {"role": "user", "content": "Can you recommend a book?"},
        {"role": "assistant", "content": "Sure, what do you like?\n\nFor example, mysteries or history?"},
        {"role": "user", "content": "History."},
    ]
    # Chat templates (TRL's, Llama's, Mistral's) need user and assistant turns to alternate.
    roles = [m["role"] for m in messages]
    assert roles == ["user", "assistant"] * (len(roles) // 2) + ["user"]
    assert Label.objects.count() == 1


def test_hh_conversational_export_alternates(tmp_path):
    project = ProjectFactory()
    rows = [{"chosen": HH_TWO_ASSISTANTS + "Try 'SPQR'.", "rejected": HH_TWO_ASSISTANTS + "No."}]
    data_import(project=project, path=write_rows(rows, "jsonl", tmp_path), source="hh")
    result = export_preferences(
        project=project,
        options=ExportOptions(format="jsonl", style="conversational", test_fraction=0),
        out=tmp_path / "out",
    )
    row = json.loads((result.path / "train.jsonl").read_text().splitlines()[0])
    conversation = row["prompt"] + row["chosen"]
    assert [m["role"] for m in conversation] == ["user", "assistant", "user", "assistant"]


def test_hh_divergence_names_the_turn(tmp_path):
    chosen = "\n\nHuman: A\n\nAssistant: B\n\nHuman: C\n\nAssistant: D\n\nHuman: E\n\nAssistant: F"
    other = chosen.replace("Human: C", "Human: c").rsplit("F", 1)[0] + "G"
    path = write_rows([{"chosen": chosen, "rejected": other}], "jsonl", tmp_path)
    rejected(
        path,
        "field 'rejected': chosen and rejected transcripts diverge before their last turn (they first "
        "differ at turn 3, Human)",
    )


def test_conversations_divergence_names_the_message(tmp_path):
    q = {"role": "user", "content": "Q"}
    rows = [
        {
            "model_a": "x",
            "model_b": "y",
            "winner": "model_a",
            "conversation_a": [q, {"role": "assistant", "content": "1"}, q, {"role": "assistant", "content": "2"}],
            "conversation_b": [q, {"role": "assistant", "content": "9"}, q, {"role": "assistant", "content": "3"}],
        }
    ]
    rejected(write_rows(rows, "jsonl", tmp_path), "diverge before their last turn (they first differ at message 2)")


# ---- 8. judged pairs keep empty answers, which are never served -----------------------------------------------

ARENA = [
    {
        "model_a": "gpt",
        "model_b": "llama",
        "winner": "model_a",
        "prompt": "Q1",
        "response_a": "An answer",
        "response_b": "",
    },
    {
        "model_a": "gpt",
        "model_b": "llama",
        "winner": "model_b",
        "prompt": "Q2",
        "response_a": "One",
        "response_b": "Two",
    },
]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_arena_empty_answer_is_stored_labelled_and_never_served(tmp_path, fmt):
    project = ProjectFactory()
    annotator = MembershipFactory(project=project).user
    summary = data_import(project=project, path=write_rows(ARENA, fmt, tmp_path), source="arena")
    assert summary.imported == 2 and not summary.skipped
    empty = Response.objects.get(prompt__project=project, text="")
    assert empty.model == "llama"
    unserved = Comparison.objects.get(project=project, prompt=empty.prompt)
    assert unserved.servable is False
    assert Label.objects.filter(comparison=unserved, source="arena").count() == 1
    served = [a.comparison_id for a in assignment_queue(annotator=annotator, project=project, size=5)]
    assert unserved.pk not in served and len(served) == 1
    result = export_preferences(
        project=project, options=ExportOptions(format="jsonl", test_fraction=0), out=tmp_path / "x"
    )
    rows = [json.loads(line) for line in (result.path / "train.jsonl").read_text().splitlines()]
    assert {"prompt": "Q1", "chosen": "An answer", "rejected": ""}.items() <= next(
        r for r in rows if r["prompt"] == "Q1"
    ).items()
    assert len(rows) == 2


def test_api_next_never_serves_a_pair_with_an_empty_side(manager, tmp_path):
    client, project = manager
    body = json.dumps(ARENA[0]).encode() + b"\n"
    assert post(client, project, "arena.jsonl", body).status_code == 201
    assert client.get(f"/api/v1/projects/{project.slug}/next/").status_code == 204
    stats = client.get(f"/api/v1/projects/{project.slug}/stats/").json()
    assert stats["labels"]["by_source"] == {"arena": 1}
    assert stats["comparisons"]["unlabelled"] == 0 and stats["comparisons"]["never_served"] == 1
    client.force_login(project.memberships.get(role="manager").user)
    page = client.get(f"/projects/{project.slug}/").content.decode()
    assert "Never served (empty answer)" in page


@pytest.mark.parametrize(
    "row",
    [
        {"instruction": "T", "output_1": "", "generator_1": "a", "output_2": "B", "generator_2": "b", "preference": 2},
        {"prompt": "T", "chosen": "B", "rejected": "  \n"},
        {"chosen": "\n\nHuman: T\n\nAssistant: B", "rejected": "\n\nHuman: T\n\nAssistant:"},
        {
            "model_a": "a",
            "model_b": "b",
            "winner": "model_b",
            "conversation_a": [{"role": "user", "content": "T"}, {"role": "assistant", "content": ""}],
            "conversation_b": [{"role": "user", "content": "T"}, {"role": "assistant", "content": "B"}],
        },
    ],
    ids=["alpaca_eval", "preferences", "hh", "arena-conversations"],
)
def test_every_judged_kind_keeps_an_empty_answer(tmp_path, row):
    project = ProjectFactory()
    data_import(project=project, path=write_rows([row], "jsonl", tmp_path))
    assert Response.objects.filter(prompt__project=project, text="").count() == 1
    assert list(Comparison.objects.values_list("servable", flat=True)) == [False]
    assert Label.objects.count() == 1


def test_unserved_pairs_are_not_counted_as_an_annotators_remaining_work(tmp_path):
    project = ProjectFactory()
    annotator = MembershipFactory(project=project).user
    data_import(project=project, path=write_rows(ARENA, "jsonl", tmp_path))
    assert annotator_progress(annotator=annotator, project=project)["remaining"] == 1


def test_responses_kind_still_refuses_empty_text(tmp_path):
    rejected(write_rows([{"prompt": "Q", "response": ""}], "jsonl", tmp_path), "field 'response': empty text")


def test_a_later_import_that_pairs_an_empty_response_never_serves_it(tmp_path):
    project = ProjectFactory()
    annotator = MembershipFactory(project=project).user
    data_import(project=project, path=write_rows([ARENA[0]], "jsonl", tmp_path / "a"))
    more = [{"prompt": "Q1", "response": "A third answer", "model": "new"}]
    data_import(project=project, path=write_rows(more, "jsonl", tmp_path / "b"))
    by_servable = dict(
        (servable, sorted(Response.objects.get(pk=rid).text for rid in (a, b)))
        for servable, a, b in Comparison.objects.values_list("servable", "response_a", "response_b")
        if servable
    )
    assert by_servable == {True: ["A third answer", "An answer"]}
    assert Comparison.objects.filter(project=project, servable=False).count() == 2
    lease = assignment_claim(annotator=annotator, project=project)
    assert lease is not None and lease.comparison.servable
    assert assignment_claim(annotator=annotator, project=project) is None


def test_empty_response_shows_as_empty():
    assert str(Response(text="")) == "(empty response)"


# ---- 9. a long file name is a recognisable source -------------------------------------------------------------


def test_api_file_name_of_200_characters_makes_a_source_that_fits(manager):
    client, project = manager
    name = "judged-by-" + "x" * 184 + ".jsonl"
    assert len(name) == 200
    r = post(client, project, name, b'{"prompt": "Q", "chosen": "A", "rejected": "B"}\n')
    assert r.status_code == 201, r.content
    source = Label.objects.get().source
    assert len(source) <= 120 and source.startswith("judged-by-xxx")


# ---- 10. a failed `import_data --create` creates nothing ------------------------------------------------------


def test_failed_import_with_create_leaves_no_project(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": ""}\n')
    with pytest.raises(CommandError, match="empty text"):
        call_command("import_data", str(path), project="brand-new", create=True)
    assert not Project.objects.filter(slug="brand-new").exists()
    path.write_text('{"prompt": "fine"}\n')
    call_command("import_data", str(path), project="brand-new", create=True, stdout=io.StringIO())
    assert Prompt.objects.filter(project__slug="brand-new").count() == 1


# ---- public files as they come --------------------------------------------------------------------------------


def test_crlf_and_trailing_blank_lines_in_jsonl(tmp_path):
    path = tmp_path / "win.jsonl"
    path.write_bytes(b'{"prompt": "one"}\r\n{"prompt": "two"}\r\n\r\n\r\n')
    project = ProjectFactory()
    assert data_import(project=project, path=path).imported == 2
    assert texts(project) == ["one", "two"]


def test_csv_from_a_spreadsheet(tmp_path):
    """CRLF endings, a carriage return and a line break inside quoted cells, numbers as model names, and the
    empty rows a spreadsheet leaves below the data."""
    path = tmp_path / "sheet.csv"
    path.write_bytes(
        b"prompt,response,model\r\n"
        b'"Line one\r\nline two",A,7\r\n'
        b'Q,"cell with a \r carriage return",2024\r\n'
        b",,\r\n,,\r\n\r\n"
    )
    project = ProjectFactory()
    assert data_import(project=project, path=path).imported == 2
    assert texts(project) == ["Line one\r\nline two", "Q"]
    assert set(Response.objects.values_list("model", flat=True)) == {"7", "2024"}
    assert Response.objects.filter(text="cell with a \r carriage return").exists()


def test_bare_carriage_return_outside_quotes_is_explained(tmp_path):
    path = tmp_path / "mac.csv"
    path.write_bytes(b"prompt\rone\rtwo\r")
    rejected(path, "mac.csv, line 1: malformed CSV (a line break inside an unquoted cell")


@pytest.mark.parametrize(("fmt", "names"), [("jsonl", (1, 2.5)), ("parquet", (1, 2)), ("parquet", (7.0, 2.5))])
def test_numbers_as_model_names(tmp_path, fmt, names):
    project = ProjectFactory()
    a, b = names
    rows = [{"model_a": a, "model_b": b, "winner": "model_a", "prompt": "Q", "response_a": "A", "response_b": "B"}]
    data_import(project=project, path=write_rows(rows, fmt, tmp_path))
    expected = {str(int(n)) if float(n).is_integer() else str(n) for n in names}
    assert set(Response.objects.values_list("model", flat=True)) == expected


def test_parquet_with_timestamps_and_bytes_imports(tmp_path):
    import datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "typed.parquet"
    table = pa.table(
        {
            "prompt": pa.array([b"as bytes", b"more"], pa.binary()),
            "tstamp": pa.array([datetime.datetime(2024, 1, 1), datetime.datetime(2024, 1, 2)], pa.timestamp("us")),
        }
    )
    pq.write_table(table, path)
    project = ProjectFactory()
    assert data_import(project=project, path=path).imported == 2
    assert texts(project) == ["as bytes", "more"]


def test_a_json_file_that_is_one_array_imports(tmp_path):
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps([{"prompt": "a"}, {"prompt": "b"}], indent=2))
    project = ProjectFactory()
    assert data_import(project=project, path=path).imported == 2
    assert texts(project) == ["a", "b"]


def test_a_pretty_printed_json_object_is_explained(tmp_path):
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps({"prompt": "a"}, indent=2))
    rejected(path, "annotations.json, line 1: the file is one JSON object spread over several lines, not rows")


def test_json_text_in_a_list_field_outside_csv_says_where_json_text_is_read(tmp_path):
    path = write_rows([{"messages": json.dumps([{"role": "user", "content": "x"}])}], "jsonl", tmp_path)
    rejected(
        path, "field 'messages': expected a non-empty list of messages, got text (JSON inside a string is read only"
    )


def test_zip_entry_climbing_out_is_refused(manager):
    client, project = manager
    r = post(client, project, "ds.zip", zip_of({"../../evil/state.json": "{}"}))
    assert r.status_code == 400
    assert r.json()["detail"] == "ds.zip, field '../../evil/state.json': zip entry points outside the archive"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("[" * 100_000 + "]" * 100_000, "malformed JSON (nested too deeply)"),
        ('{"prompt": "Q", "metadata": {"n": ' + "9" * 5000 + "}}", "malformed JSON (a number too long to read)"),
    ],
    ids=["deep", "digits"],
)
def test_pathological_json_is_a_row_problem(tmp_path, line, expected):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "ok"}\n' + line + "\n")
    rejected(path, f"line 2: {expected}")


# ---- 9. Arrow and Parquet bombs: compressed batches, dictionary pages, cells over the line limit -------------------


def arrow_stream(batch_text: str, times: int, compression: str | None = "zstd") -> bytes:
    """An Arrow IPC stream of `times` one-cell batches, each compressed once and repeated as bytes, so a stream that
    inflates to gigabytes is made in a blink."""
    import pyarrow as pa

    schema = pa.schema([("prompt", pa.large_string())])
    options = pa.ipc.IpcWriteOptions(compression=compression)

    def stream(batches: int) -> bytes:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, schema, options=options) as w:
            for _ in range(batches):
                w.write_batch(pa.record_batch([pa.array([batch_text], pa.large_string())], schema=schema))
        return sink.getvalue().to_pybytes()

    empty, one = stream(0), stream(1)
    head, eos = empty[:-8], empty[-8:]
    return head + one[len(head) : -8] * times + eos


def saved_dataset_entries(arrow: bytes) -> dict[str, bytes | str]:
    return {
        "ds/dataset_dict.json": json.dumps({"splits": ["train"]}),
        "ds/train/state.json": json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}),
        "ds/train/data-00000-of-00001.arrow": arrow,
    }


def parquet_dictionary_bomb(path: Path, rows: int, size: int) -> Path:
    """One text of `size` bytes stored once in a dictionary page, used by every row: a few hundred bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    prompt = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array(["q" * size]))
    pq.write_table(pa.table({"prompt": prompt}), path, compression="zstd")
    return path


def stored_files() -> list[Path]:
    imports = Path(settings.JUROR_DATA_DIR) / "imports"
    return [p for p in imports.rglob("*") if p.is_file()] if imports.exists() else []


def peak_import(path: Path) -> tuple[float, subprocess.CompletedProcess]:
    """Imports `path` with `import_data` in a child of a small Python (default limits), whose RUSAGE_CHILDREN is then
    that import's peak alone: (peak RSS in MiB, the run)."""
    measure = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "print('maxrss_kib', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, 'rc', r.returncode)"
    )
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "JUROR_DATA_DIR": str(settings.JUROR_DATA_DIR),
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    for key in ("JUROR_IMPORT_MAX_BYTES", "JUROR_IMPORT_MAX_ROWS", "JUROR_IMPORT_MAX_LINE_BYTES"):
        env.pop(key, None)
    command = [sys.executable, "manage.py", "import_data", "--project", "bombed", "--create", str(path)]
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", measure, *command], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    words = done.stdout.split()
    return int(words[words.index("maxrss_kib") + 1]) / 1024, done


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("bomb", ["zstd-arrow", "parquet-dictionary"])
def test_arrow_and_parquet_bombs_stop_early_in_bounded_memory(tmp_path, bomb):
    if bomb == "zstd-arrow":
        # 20 batches of one 100 MiB cell, 69 KB on disk: read whole, it took an import to 2.3 GB.
        for name, data in saved_dataset_entries(arrow_stream("a" * (100 * MIB), 20)).items():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_bytes(data if isinstance(data, bytes) else data.encode())
        path, expected = tmp_path / "ds", "is compressed; save the dataset uncompressed"
    else:
        # 800 rows of one 1 MB dictionary value, 517 bytes on disk: read 4,096 rows a batch, it took 1 GB.
        path = parquet_dictionary_bomb(tmp_path / "bomb.parquet", 800, 1_000_000)
        expected = "file is larger than the import limit of 536,870,912 bytes"
    assert sum(p.stat().st_size for p in [path, *path.rglob("*")] if p.is_file()) < 100_000
    peak_mib, done = peak_import(path)
    assert done.stdout.split()[-1] == "1", done.stdout + done.stderr  # CommandError
    assert expected in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert peak_mib < 500, f"peak RSS {peak_mib:.0f} MiB"
    assert not Project.objects.filter(slug="bombed").exists()


def test_api_zip_of_a_compressed_arrow_stream_is_a_400_and_nothing_is_written(manager):
    client, project = manager
    body = zip_of(saved_dataset_entries(arrow_stream("a" * (20 * MIB), 3)))
    assert len(body) < 10_000
    r = post(client, project, "bomb.zip", body)
    assert r.status_code == 400, r.content
    assert r.json()["detail"] == (
        "bomb.zip: the Arrow file train/data-00000-of-00001.arrow is compressed; save the dataset uncompressed "
        "(save_to_disk does)"
    )
    assert not Prompt.objects.filter(project=project).exists()
    assert stored_files() == []


def test_api_parquet_dictionary_bomb_is_a_400_and_nothing_is_written(manager, settings, tmp_path):
    settings.JUROR_IMPORT_MAX_BYTES = 64 * MIB
    client, project = manager
    body = parquet_dictionary_bomb(tmp_path / "bomb.parquet", 800, 1_000_000).read_bytes()
    r = post(client, project, "bomb.parquet", body)
    assert r.status_code == 400, r.content
    assert r.json()["detail"] == "bomb.parquet, row 68: file is larger than the import limit of 67,108,864 bytes"
    assert not Prompt.objects.filter(project=project).exists()
    assert stored_files() == []


def test_uncompressed_arrow_stream_with_more_rows_than_the_limit_stops_before_reading(tmp_path):
    arrow = arrow_stream("q", 5, compression=None)
    for name, data in saved_dataset_entries(arrow).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data if isinstance(data, bytes) else data.encode())
    rejected(tmp_path / "ds", "ds: more than the import limit of 4 rows", limits=Limits(10**6, 4))
    project = ProjectFactory()
    assert data_import(project=project, path=tmp_path / "ds", limits=Limits(10**6, 5)).imported == 5


@pytest.mark.parametrize("fmt", ["parquet", "hf"])
def test_a_cell_over_the_line_limit_names_the_row_and_field(tmp_path, fmt):
    rows = [
        {"prompt": "fine", "messages": None},
        {"prompt": None, "messages": [{"role": "user", "content": "x" * 2000}]},
    ]
    path = write_rows(rows, fmt, tmp_path)
    limits = Limits(10**7, 100, max_line_bytes=1000)
    rejected(
        path, f"{path.name}, row 2, field 'messages': value longer than the import limit of 1,000 bytes", limits=limits
    )
    # The same bytes spread over several cells of one row: the row is held to the limit, as a line is.
    rows = [{"prompt": "a" * 600, "system": "b" * 600}]
    path = write_rows(rows, fmt, tmp_path / "spread")
    rejected(path, f"{path.name}, row 1: row longer than the import limit of 1,000 bytes", limits=limits)


def test_parquet_dictionary_value_over_the_line_limit_names_the_row(tmp_path):
    path = parquet_dictionary_bomb(tmp_path / "long.parquet", 3, 20_000)
    rejected(
        path,
        "long.parquet, row 1, field 'prompt': value longer than the import limit of 10,000 bytes",
        limits=Limits(10**9, 100, max_line_bytes=10_000),
    )


def conversations(n: int) -> list[dict]:
    return [
        {
            "messages": [
                {"role": "system", "content": f"System {i}. " + "s" * 300},
                {"role": "user", "content": f"Question {i}: " + "lorem ipsum " * (300 + i)},
            ],
            "source": "bench",
        }
        for i in range(n)
    ]


@pytest.mark.parametrize("fmt", ["parquet", "hf"])
def test_columnar_files_of_long_texts_and_messages_import_as_jsonl_does(tmp_path, fmt):
    rows = conversations(400)
    expected, got = ProjectFactory(), ProjectFactory()
    assert data_import(project=expected, path=write_rows(rows, "jsonl", tmp_path / "j")).imported == 400
    assert data_import(project=got, path=write_rows(rows, fmt, tmp_path / "c")).imported == 400

    def stored(project):
        return list(Prompt.objects.filter(project=project).order_by("id").values_list("messages", "metadata"))

    assert stored(got) == stored(expected)
    assert [m for m, _ in stored(got)] == [r["messages"] for r in rows]


def test_api_zipped_saved_dataset_and_parquet_still_import(manager, tmp_path):
    client, project = manager
    rows = conversations(300)
    path = write_rows(rows, "hf", tmp_path / "hf", name="ds")
    body = zip_of({str(p.relative_to(path.parent)): p.read_bytes() for p in path.rglob("*") if p.is_file()})
    r = post(client, project, "ds.zip", body)
    assert r.status_code in (201, 202), r.content
    if r.status_code == 201:
        assert Prompt.objects.filter(project=project).count() == 300
    r = post(client, project, "c.parquet", write_rows(rows[:10], "parquet", tmp_path).read_bytes())
    assert r.status_code == 201, r.content


ZIP_SHAPES = {
    "a file, then a folder of the same name": {"ds/train": "x", "ds/train/state.json": "{}"},
    "a folder, then a file of the same name": {"ds/train/": "", "ds/train": "x"},
    "a name of 300 characters": {"ds/" + "a" * 300 + ".json": "x", "ds/state.json": "{}"},
    "1,500 folders deep": {"/".join(["a"] * 1500) + "/state.json": "{}"},
}


@pytest.mark.parametrize("shape", ZIP_SHAPES)
def test_api_zip_whose_entries_the_file_system_refuses_is_a_400(manager, shape):
    client, project = manager
    r = post(client, project, "ds.zip", zip_of(ZIP_SHAPES[shape]))
    assert r.status_code == 400, r.content
    detail = r.json()["detail"]
    assert detail.startswith("ds.zip, field '"), detail
    assert "a file in the zip cannot be unpacked" in detail
    assert str(settings.JUROR_DATA_DIR) not in r.content.decode() and len(detail) < 500
    assert not Prompt.objects.filter(project=project).exists()
    assert stored_files() == []
