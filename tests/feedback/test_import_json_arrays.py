"""A file that is one JSON array (AlpacaEval's `annotations.json`, arena dumps) imports as it is: element by
element, under the same limits as JSON Lines, and every kind of bad input is our own error naming the row."""

import gzip
import io
import json

import pytest
from rest_framework.test import APIClient

from feedback.imports.errors import ImportFailed
from feedback.imports.readers import MAX_DEPTH, Limits, open_table
from feedback.imports.service import data_import
from feedback.models import Comparison, Label, Prompt, Response
from tests.factories import MembershipFactory, ProjectFactory

from .files import write_rows

pytestmark = pytest.mark.django_db


def rejected(path, expected: str, **kw) -> ImportFailed:
    project = ProjectFactory()
    with pytest.raises(ImportFailed) as info:
        data_import(project=project, path=path, **kw)
    assert expected in info.value.message, info.value.message
    assert not Prompt.objects.filter(project=project).exists()
    return info.value


def write(tmp_path, name: str, body: bytes | str):
    path = tmp_path / name
    body = body.encode() if isinstance(body, str) else body
    path.write_bytes(gzip.compress(body) if name.endswith(".gz") else body)
    return path


def outcomes(project) -> list[tuple[str, str, str]]:
    """(prompt, what won: its text or "tie", source) for every imported label."""
    result = []
    for label in Label.objects.filter(comparison__project=project).select_related(
        "comparison__prompt", "comparison__response_a", "comparison__response_b"
    ):
        c = label.comparison
        won = {"a": c.response_a.text, "b": c.response_b.text}.get(label.choice, label.choice)
        result.append((c.prompt.messages[-1]["content"], won, label.source))
    return sorted(result)


# ---- AlpacaEval's annotations.json, as published --------------------------------------------------------------

ALPACA = [
    {
        "instruction": "What are the names of some famous actors that started their careers on Broadway?",
        "input": None,
        "output_1": "Hugh Jackman, Sarah Jessica Parker and Lin-Manuel Miranda.",
        "generator_1": "gpt4_1106_preview",
        "output_2": "Meryl Streep.",
        "generator_2": "Mixtral-8x7B-Instruct-v0.1",
        "dataset": "helpful_base",
        "annotator": "alpaca_eval_gpt4",
        "preference": 1.0,
        "price_per_example": 0.01359,
        "time_per_example": 1.1367828846,
        "raw_completion": {
            "concise_explanation": "Output (a) names more actors.",
            "ordered_models": [{"model": "M", "rank": 1}, {"model": "m", "rank": 2}],
        },
    },
    {
        "instruction": "How did US states get their names?",
        "input": None,
        "output_1": "From the people who lived there.",
        "generator_1": "gpt4_1106_preview",
        "output_2": "Many come from Native American words; others honour monarchs or places in Europe.",
        "generator_2": "Mixtral-8x7B-Instruct-v0.1",
        "dataset": "helpful_base",
        "annotator": "alpaca_eval_gpt4",
        "preference": 2.0,
        "price_per_example": 0.01218,
        "time_per_example": 0.9,
        "raw_completion": {"concise_explanation": "(b) explains.", "ordered_models": []},
    },
    {
        "instruction": "Hi, my sister and her girlfriends want me to play kickball with them.",
        "input": None,
        "output_1": "Sounds fun! Kickball is like baseball with a big ball.",
        "generator_1": "gpt4_1106_preview",
        "output_2": "Kickball is played like baseball, but you kick a rubber ball.",
        "generator_2": "Mixtral-8x7B-Instruct-v0.1",
        "dataset": "helpful_base",
        "annotator": "weighted_alpaca_eval_gpt4_turbo",
        "preference": 1.5,
        "price_per_example": 0.0,
        "time_per_example": 0.0,
        "raw_completion": None,
    },
    {
        "instruction": "Write a haiku about the sea.",
        "input": None,
        "output_1": "Waves fold into foam / the tide keeps its quiet count / salt on the cold stones",
        "generator_1": "gpt4_1106_preview",
        "output_2": "",
        "generator_2": "Mixtral-8x7B-Instruct-v0.1",
        "dataset": "vicuna",
        "annotator": "alpaca_eval_gpt4",
        "preference": 1.0,
        "price_per_example": 0.00721,
        "time_per_example": 0.5,
        "raw_completion": {"concise_explanation": "(b) is empty.", "ordered_models": [{"model": "M", "rank": 1}]},
    },
]


def test_alpaca_eval_annotations_json_imports_whole(tmp_path):
    project = ProjectFactory()
    path = write(tmp_path, "annotations.json", json.dumps(ALPACA, indent=4))
    summary = data_import(project=project, path=path)
    assert (summary.kind, summary.rows, summary.imported, summary.skipped_total) == ("alpaca_eval", 4, 4, 0)
    assert outcomes(project) == [
        ("Hi, my sister and her girlfriends want me to play kickball with them.", "tie", ALPACA[2]["annotator"]),
        ("How did US states get their names?", ALPACA[1]["output_2"], "alpaca_eval_gpt4"),
        (
            "What are the names of some famous actors that started their careers on Broadway?",
            ALPACA[0]["output_1"],
            "alpaca_eval_gpt4",
        ),
        ("Write a haiku about the sea.", ALPACA[3]["output_1"], "alpaca_eval_gpt4"),
    ]
    # The empty answer lost: it is stored and counted, and never served.
    empty = Response.objects.get(prompt__project=project, text="")
    assert empty.model == "Mixtral-8x7B-Instruct-v0.1"
    assert Comparison.objects.get(prompt=empty.prompt).servable is False
    assert data_import(project=project, path=path).imported == 0


def test_json_array_and_json_lines_of_the_same_rows_make_the_same_database(tmp_path):
    rows = [*ALPACA, {**ALPACA[0], "metadata": {"score": 0.25, "big": 2**70, "tags": ["a", None]}}]
    rows[-1]["instruction"] = "Name one famous Broadway actor."

    def snapshot(project):
        prompts = {p.pk: p for p in Prompt.objects.filter(project=project)}
        return {
            "prompts": sorted(json.dumps([p.messages, p.metadata], sort_keys=True) for p in prompts.values()),
            "responses": sorted(
                (prompts[r.prompt_id].messages[-1]["content"], r.text, r.model)
                for r in Response.objects.filter(prompt__project=project)
            ),
            "comparisons": sorted(
                (c.response_a.text, c.response_b.text, c.servable)
                for c in Comparison.objects.filter(project=project).select_related("response_a", "response_b")
            ),
            "labels": sorted(
                (label.choice, label.source, label.import_key)
                for label in Label.objects.filter(comparison__project=project)
            ),
        }

    as_lines = ProjectFactory()
    data_import(project=as_lines, path=write_rows(rows, "jsonl", tmp_path / "lines", name="annotations"))
    expected = snapshot(as_lines)
    # Label import keys are unique across projects, so the first project goes before the second comes.
    as_lines.delete()
    as_array = ProjectFactory()
    data_import(project=as_array, path=write_rows(rows, "json", tmp_path / "array", name="annotations"))
    assert snapshot(as_array) == expected
    # Decimals from ijson became floats, as `json` reads them, so the metadata is stored alike.
    stored = Prompt.objects.get(project=as_array, metadata__has_key="score").metadata
    assert stored == {"score": 0.25, "big": 2**70, "tags": ["a", None]} and isinstance(stored["score"], float)
    # The same label keys: the JSON Lines re-imported over the array adds nothing.
    again = data_import(project=as_array, path=tmp_path / "lines" / "annotations.jsonl")
    assert (again.imported, again.already_present) == (0, len(rows))


def test_arena_conversations_array_imports(tmp_path):
    def conversation(answer: str) -> list[dict]:
        return [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": answer}]

    rows = [
        {
            "question_id": "a1b2",
            "model_a": "vicuna-13b",
            "model_b": "koala-13b",
            "winner": "model_b",
            "judge": "arena_user_973",
            "conversation_a": conversation("5"),
            "conversation_b": conversation("4"),
            "turn": 1,
            "anony": True,
            "language": "English",
            "tstamp": 1682351591.1322,
            "openai_moderation": {"categories": {"harassment": False}, "flagged": False},
            "toxic_chat_tag": {"roberta-large": {"flagged": False, "probability": 0.008}},
        },
        {
            "question_id": "c3d4",
            "model_a": "gpt-4",
            "model_b": "claude-v1",
            "winner": "tie (bothbad)",
            "conversation_a": conversation("Four."),
            "conversation_b": conversation("It is four."),
        },
    ]
    project = ProjectFactory()
    summary = data_import(project=project, path=write(tmp_path, "arena.json.gz", json.dumps(rows)), source="arena")
    assert (summary.kind, summary.imported) == ("arena", 2)
    assert outcomes(project) == [("What is 2+2?", "4", "arena"), ("What is 2+2?", "both_bad", "arena")]


@pytest.mark.parametrize("name", ["prompts.json", "prompts.json.gz", "prompts.jsonl"])
def test_any_json_file_that_is_one_array_imports(tmp_path, name):
    """A byte-order mark and blank lines before the array, and a .jsonl that is really one array."""
    path = write(tmp_path, name, b'\xef\xbb\xbf\r\n\n  [\n  {"prompt": "caf\xc3\xa9"},\n  {"prompt": "two"}\n]\n')
    project = ProjectFactory()
    assert data_import(project=project, path=path).imported == 2
    assert sorted(p.messages[0]["content"] for p in Prompt.objects.filter(project=project)) == ["café", "two"]


def test_a_json_file_of_json_lines_stays_json_lines(tmp_path):
    path = write(tmp_path, "lines.json", '{"prompt": "one"}\n{"prompt": "two"}\n')
    table = open_table(path, None, Limits(10**6, 10))
    assert table.unit == "line"
    assert data_import(project=ProjectFactory(), path=path).imported == 2


@pytest.mark.parametrize(
    "body",
    [{"data": [{"prompt": "a"}]}, {"prompt": "a"}],
    ids=["rows-under-a-key", "one-record"],
)
def test_a_json_file_that_is_one_object_is_explained(tmp_path, body):
    path = write(tmp_path, "dump.json", json.dumps(body, indent=2))
    rejected(path, "dump.json, line 1: the file is one JSON object spread over several lines, not rows")


def test_api_upload_of_a_json_array(tmp_path):
    membership = MembershipFactory(project=ProjectFactory(slug="mine"), role="manager")
    client = APIClient()
    client.force_authenticate(membership.user)
    f = io.BytesIO(json.dumps(ALPACA).encode())
    f.name = "annotations.json"
    r = client.post("/api/v1/projects/mine/import/", {"file": f}, format="multipart")
    assert r.status_code == 201, r.content
    assert r.json()["imported"] == 4


# ---- bad elements are rows; bad bytes name the row --------------------------------------------------------------


def test_an_element_that_is_not_an_object_is_a_row_problem(tmp_path):
    path = write(tmp_path, "mixed.json", '[{"prompt": "one"}, ["a", "list"], "text", 3, null, {"prompt": "two"}]')
    error = rejected(path, "mixed.json, row 2: each element of the array must be an object, got a list")
    assert error.total == 4
    assert [(e.line, e.unit) for e in error.errors] == [(2, "row"), (3, "row"), (4, "row"), (5, "row")]
    summary = data_import(project=ProjectFactory(), path=path, skip_invalid=True)
    assert summary.imported == 2 and summary.skipped_total == 4


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('[{"prompt": "a"},\n {"prompt": "b"},\n {"prompt": }]', "row 3: malformed JSON (unallowed token"),
        ('[{"prompt": "a"}, {"prompt": "b"},]', "row 3: malformed JSON (unallowed token"),
        ('[{"prompt": "a"}, {"prompt": "b"', "row 2: the file ends inside the array (is it cut short?)"),
        ('[{"prompt": "a"}]\n[{"prompt": "b"}]\n', "x.json: after the array: more follows the array's closing ]"),
        ('[{"prompt": "a", "metadata": {"score": NaN}}]', "row 1: malformed JSON (NaN or Infinity"),
        ('[{"prompt": "a", "metadata": {"score": -Infinity}}]', "row 1: malformed JSON (NaN or Infinity"),
        ('[{"prompt": "a", "metadata": {"n": 1e999999999999999999999}}]', "row 1: malformed JSON (a number out of"),
        ('[{"prompt": "a"}, {"prompt": "b", "n": ' + "9" * 5000 + "}]", "row 2: malformed JSON (a number of more"),
        ('[{"prompt": "a"}, ' + "[" * 100_000 + "]" * 100_000 + "]", f"row 2: nested more than {MAX_DEPTH} levels"),
    ],
    ids=["token", "trailing-comma", "cut-short", "two-arrays", "nan", "infinity", "exponent", "digits", "deep"],
)
def test_malformed_json_names_the_row(tmp_path, body, expected):
    rejected(write(tmp_path, "x.json", body), expected)


def test_malformed_json_shows_the_text_where_the_parser_stopped(tmp_path):
    """yajl counts neither lines nor bytes: it shows the text up to where it stopped (line breaks as spaces)."""
    path = write(tmp_path, "x.json", '[{"prompt": "a"},\n {"prompt" "b"}]')
    error = rejected(path, "x.json, row 2: malformed JSON (object key and value must be separated by a colon")
    assert error.message.endswith('at the end of: "prompt": "a"},  {"prompt" "b")')


def test_invalid_utf8_names_the_row_and_guesses_the_encoding(tmp_path):
    path = write(tmp_path, "latin.json", b'[{"prompt": "ok"}, {"prompt": "caf\xe9 \x93quoted\x94"}]')
    rejected(path, "latin.json, row 2: invalid UTF-8 (looks like Windows-1252/Latin-1; save the file as UTF-8)")
    rejected(write(tmp_path, "cesu.json", b'[{"prompt": "\xed\xa0\x80"}]'), "cesu.json, row 1: invalid UTF-8")


def test_utf16_array_says_so(tmp_path):
    rejected(write(tmp_path, "wide.json", '[{"prompt": "a"}]'.encode("utf-16-le")), "looks like UTF-16")


def test_a_lone_surrogate_is_a_row_problem_and_a_pair_is_text(tmp_path):
    body = (
        '[{"prompt": "fine \\ud83d\\ude00"},\n'  # a pair: one emoji
        ' {"prompt": "half \\ud83d"},\n'  # a lone high half, which yajl would turn into "?"
        ' {"prompt": "x", "unused": "\\udc00"},\n'  # a lone low half, which would fail the whole file
        ' {"prompt": "escaped \\\\ud800"}]'  # not an escape: a backslash, then text
    )
    path = write(tmp_path, "s.json", body)
    error = rejected(path, "s.json, row 2: text holds an unpaired surrogate")
    assert [e.line for e in error.errors] == [2, 3]
    project = ProjectFactory()
    assert data_import(project=project, path=path, skip_invalid=True).imported == 2
    stored = sorted(p.messages[0]["content"] for p in Prompt.objects.filter(project=project))
    assert stored == ["escaped \\ud800", "fine \U0001f600"]


def test_digits_in_text_are_text_however_long(tmp_path):
    digits = "3" + "1415926535" * 600
    path = write(tmp_path, "pi.json", json.dumps([{"prompt": "Print pi.", "response": digits}]))
    data_import(project=ProjectFactory(), path=path)
    assert Response.objects.get().text == digits


def test_nesting_as_deep_as_the_limit_imports(tmp_path):
    nested: list = []
    for _ in range(MAX_DEPTH - 3):
        nested = [nested]
    path = write(tmp_path, "deep.json", json.dumps([{"prompt": "Q", "metadata": {"n": nested}}]))
    assert data_import(project=ProjectFactory(), path=path).imported == 1


# ---- the limits of JSON Lines, per element ------------------------------------------------------------------------


def test_elements_count_toward_the_row_limit(tmp_path):
    path = write(tmp_path, "many.json", json.dumps([{"prompt": str(i)} for i in range(5)]))
    rejected(path, "many.json, row 4: more than the import limit of 3 rows", limits=Limits(10**6, 3))


def test_an_element_longer_than_the_line_limit_is_refused_by_its_number(tmp_path):
    """ijson reads 64 KiB at a time, so an element is held to the limit to within a buffer or two."""
    limit = 10_000
    near = {"prompt": "a" * (limit - 100)}
    huge = {"prompt": "b" * (limit + 300_000)}
    path = write(tmp_path, "long.json.gz", json.dumps([near, near, huge, near]))
    rejected(
        path,
        "long.json.gz, row 3: array element longer than the import limit of 10,000 bytes",
        limits=Limits(10**7, 10, limit),
    )
    path = write(tmp_path, "fits.json", json.dumps([{"prompt": f"{i} {near['prompt']}"} for i in range(30)]))
    assert data_import(project=ProjectFactory(), path=path, limits=Limits(10**7, 30, limit)).imported == 30


def test_the_byte_limit_counts_decompressed_bytes(tmp_path):
    path = write(tmp_path, "big.json.gz", json.dumps([{"prompt": "x" * 500}] * 100))
    assert path.stat().st_size < 2_000
    rejected(path, "big.json.gz: file is larger than the import limit of 10,000 bytes", limits=Limits(10_000, 1000))
