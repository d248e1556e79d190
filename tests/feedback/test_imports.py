import gzip
import json

import pytest

from feedback.imports.errors import ImportFailed
from feedback.imports.readers import Limits
from feedback.imports.service import data_import
from feedback.models import Comparison, Label, Prompt, RankingItem, Response
from tests.factories import ProjectFactory

from .files import FORMATS, write_rows

pytestmark = pytest.mark.django_db

SKY = "Why is the sky blue?"


def counts(project) -> dict:
    return {
        "prompts": Prompt.objects.filter(project=project).count(),
        "responses": Response.objects.filter(prompt__project=project).count(),
        "comparisons": Comparison.objects.filter(project=project).count(),
        "labels": Label.objects.filter(comparison__project=project).count(),
    }


def run(project, rows, fmt, tmp_path, **kw):
    return data_import(project=project, path=write_rows(rows, fmt, tmp_path), **kw)


# ---- each kind in each format ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_prompts_import_text_and_messages(fmt, tmp_path):
    project = ProjectFactory()
    rows = [
        {"prompt": SKY, "messages": None},
        {"prompt": None, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]},
    ]
    summary = run(project, rows, fmt, tmp_path)
    assert summary.kind == "prompts"
    assert summary.imported == 2
    stored = sorted(Prompt.objects.filter(project=project).values_list("messages", flat=True), key=len)
    assert stored == [[{"role": "user", "content": SKY}], rows[1]["messages"]]


@pytest.mark.parametrize("fmt", FORMATS)
def test_responses_one_per_row_create_pairs_up_to_the_cap(fmt, tmp_path):
    project = ProjectFactory(max_pairs_per_prompt=2)
    rows = [{"prompt": SKY, "response": f"Answer {i}", "model": f"m{i}"} for i in range(4)]
    summary = run(project, rows, fmt, tmp_path)
    assert summary.kind == "responses"
    assert counts(project) == {"prompts": 1, "responses": 4, "comparisons": 2, "labels": 0}
    assert set(Response.objects.values_list("model", flat=True)) == {"m0", "m1", "m2", "m3"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_responses_list_column_with_models_and_settings(fmt, tmp_path):
    project = ProjectFactory()
    rows = [
        {
            "prompt": SKY,
            "responses": [
                {"response": "Rayleigh scattering.", "model": "big", "generation": {"temperature": 0.2}},
                {"response": "Because.", "model": "small", "generation": {"temperature": 1.0}},
                {"response": "Light scatters.", "model": "small", "generation": {"temperature": 1.0}},
            ],
        }
    ]
    run(project, rows, fmt, tmp_path)
    assert counts(project) == {"prompts": 1, "responses": 3, "comparisons": 3, "labels": 0}
    big = Response.objects.get(model="big")
    assert big.text == "Rayleigh scattering." and big.generation == {"temperature": 0.2}


def test_responses_in_ranking_mode_make_one_ranking(tmp_path):
    project = ProjectFactory(comparison_mode="ranking")
    rows = [{"prompt": SKY, "responses": ["one", "two", "three", "four"]}]
    run(project, rows, "jsonl", tmp_path)
    comparison = Comparison.objects.get(project=project)
    assert comparison.kind == "ranking"
    ranked = [i.response.text for i in RankingItem.objects.filter(comparison=comparison).select_related("response")]
    assert ranked == ["one", "two", "three", "four"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_trl_standard_preferences_keep_the_winner(fmt, tmp_path):
    project = ProjectFactory()
    rows = [
        {
            "prompt": SKY,
            "chosen": "Rayleigh scattering.",
            "rejected": "Paint.",
            "chosen_model": "a",
            "rejected_model": "b",
        }
    ]
    summary = run(project, rows, fmt, tmp_path, source="ultrafeedback")
    assert summary.kind == "preferences"
    label = Label.objects.get()
    c = label.comparison
    winner = c.response_a if label.choice == "a" else c.response_b
    assert winner.text == "Rayleigh scattering." and winner.model == "a"
    assert label.source == "ultrafeedback" and label.annotator is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_trl_conversational_preferences_with_and_without_prompt(fmt, tmp_path):
    project = ProjectFactory()
    user = [{"role": "user", "content": SKY}]
    rows = [
        {
            "prompt": user,
            "chosen": [{"role": "assistant", "content": "Scattering."}],
            "rejected": [{"role": "assistant", "content": "Magic."}],
        },
        {
            "prompt": None,
            "chosen": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
            "rejected": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}],
        },
    ]
    run(project, rows, fmt, tmp_path)
    assert counts(project) == {"prompts": 2, "responses": 4, "comparisons": 2, "labels": 2}
    implicit = Prompt.objects.get(messages=[{"role": "user", "content": "2+2?"}])
    label = Label.objects.get(comparison__prompt=implicit)
    winner = label.comparison.response_a if label.choice == "a" else label.comparison.response_b
    assert winner.text == "4"


HH_CHOSEN = (
    "\n\nHuman: What can I cook with eggs and spinach?"
    "\n\nAssistant: An omelette, or a frittata."
    "\n\nHuman: How long does a frittata bake?"
    "\n\nAssistant: About 20 minutes at 180°C, until the centre is set."
)
HH_REJECTED = HH_CHOSEN.rsplit("\n\nAssistant:", 1)[0] + "\n\nAssistant: Two hours."


@pytest.mark.parametrize("fmt", FORMATS)
def test_hh_transcripts_split_into_shared_prefix_and_final_turns(fmt, tmp_path):
    project = ProjectFactory()
    run(project, [{"chosen": HH_CHOSEN, "rejected": HH_REJECTED}], fmt, tmp_path, source="hh-rlhf")
    prompt = Prompt.objects.get(project=project)
    assert prompt.messages == [
        {"role": "user", "content": "What can I cook with eggs and spinach?"},
        {"role": "assistant", "content": "An omelette, or a frittata."},
        {"role": "user", "content": "How long does a frittata bake?"},
    ]
    label = Label.objects.get()
    winner = label.comparison.response_a if label.choice == "a" else label.comparison.response_b
    loser = label.comparison.response_b if label.choice == "a" else label.comparison.response_a
    assert winner.text == "About 20 minutes at 180°C, until the centre is set."
    assert loser.text == "Two hours."
    assert label.source == "hh-rlhf"


def test_hh_real_shape_single_turn_and_text_with_blank_lines(tmp_path):
    project = ProjectFactory()
    chosen = "\n\nHuman: Write two lines.\n\nAssistant: Line one.\n\nLine two."
    rejected = "\n\nHuman: Write two lines.\n\nAssistant: No."
    run(project, [{"chosen": chosen, "rejected": rejected}], "jsonl", tmp_path)
    assert Response.objects.filter(text="Line one.\n\nLine two.").exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_arena_rows_with_ties_and_both_bad(fmt, tmp_path):
    project = ProjectFactory()
    rows = [
        {
            "model_a": "gpt",
            "model_b": "llama",
            "winner": w,
            "prompt": f"Q{i}",
            "response_a": f"A{i}",
            "response_b": f"B{i}",
        }
        for i, w in enumerate(["model_a", "model_b", "tie", "tie (bothbad)"])
    ]
    summary = run(project, rows, fmt, tmp_path, source="chatbot-arena")
    assert summary.kind == "arena"
    got = {}
    for label in Label.objects.select_related("comparison__response_a", "comparison__response_b", "comparison__prompt"):
        c = label.comparison
        winner = {"a": c.response_a.model, "b": c.response_b.model}.get(label.choice, label.choice)
        got[c.prompt.messages[-1]["content"]] = winner
    assert got == {"Q0": "gpt", "Q1": "llama", "Q2": "tie", "Q3": "both_bad"}


def test_arena_conversation_columns(tmp_path):
    project = ProjectFactory()
    q = {"role": "user", "content": "Hello?"}
    rows = [
        {
            "model_a": "x",
            "model_b": "y",
            "winner": "model_b",
            "conversation_a": [q, {"role": "assistant", "content": "Hi."}],
            "conversation_b": [q, {"role": "assistant", "content": "Hello! How can I help?"}],
        }
    ]
    run(project, rows, "jsonl", tmp_path)
    label = Label.objects.get()
    winner = label.comparison.response_a if label.choice == "a" else label.comparison.response_b
    assert (winner.model, winner.text) == ("y", "Hello! How can I help?")


@pytest.mark.parametrize("fmt", FORMATS)
def test_alpaca_eval_preferences_including_draws(fmt, tmp_path):
    project = ProjectFactory()
    rows = [
        {
            "instruction": f"Task {i}",
            "output_1": f"one {i}",
            "generator_1": "g1",
            "output_2": f"two {i}",
            "generator_2": "g2",
            "preference": p,
        }
        for i, p in enumerate([1.0, 2.0, 1.5])
    ]
    summary = run(project, rows, fmt, tmp_path, source="alpaca-eval-gpt4")
    assert summary.kind == "alpaca_eval"
    outcomes = {}
    for label in Label.objects.select_related("comparison__response_a", "comparison__response_b"):
        c = label.comparison
        outcomes[c.prompt.messages[0]["content"]] = {"a": c.response_a.model, "b": c.response_b.model}.get(
            label.choice, label.choice
        )
    assert outcomes == {"Task 0": "g1", "Task 1": "g2", "Task 2": "tie"}
    assert set(Label.objects.values_list("source", flat=True)) == {"alpaca-eval-gpt4"}


# ---- idempotency and dedupe ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_reimporting_the_same_file_adds_nothing(fmt, tmp_path):
    project = ProjectFactory()
    rows = [
        {"model_a": "x", "model_b": "y", "winner": "model_a", "prompt": "Q", "response_a": "A", "response_b": "B"},
        {"model_a": "x", "model_b": "y", "winner": "model_a", "prompt": "Q", "response_a": "A", "response_b": "B"},
    ]
    path = write_rows(rows, fmt, tmp_path)
    first = data_import(project=project, path=path)
    before = counts(project)
    again = data_import(project=project, path=path)
    assert before == {"prompts": 1, "responses": 2, "comparisons": 1, "labels": 2}  # two identical votes are two votes
    assert counts(project) == before
    assert (first.imported, again.imported, again.already_present) == (2, 0, 2)


def test_pair_is_one_row_whatever_its_order(tmp_path):
    project = ProjectFactory()
    rows = [
        {"prompt": "Q", "chosen": "A", "rejected": "B"},
        {"prompt": "Q", "chosen": "B", "rejected": "A"},
    ]
    run(project, rows, "jsonl", tmp_path)
    assert Comparison.objects.filter(project=project).count() == 1
    assert sorted(Label.objects.values_list("choice", flat=True)) == ["a", "b"]


def test_same_prompt_in_another_project_is_separate(tmp_path):
    p1, p2 = ProjectFactory(), ProjectFactory()
    path = write_rows([{"prompt": SKY}], "jsonl", tmp_path)
    data_import(project=p1, path=path)
    data_import(project=p2, path=path)
    assert Prompt.objects.filter(project=p1).count() == Prompt.objects.filter(project=p2).count() == 1


def test_same_judged_file_in_two_projects_gives_each_its_labels(tmp_path):
    """Imported labels are keyed by source and row; that key must not make project B's import a no-op."""
    p1, p2 = ProjectFactory(), ProjectFactory()
    rows = [
        {
            "prompt": SKY,
            "response_a": "Rayleigh scattering.",
            "response_b": "Magic.",
            "model_a": "m1",
            "model_b": "m2",
            "winner": "model_a",
        },
        {"prompt": "2+2?", "response_a": "4", "response_b": "5", "model_a": "m1", "model_b": "m2", "winner": "tie"},
    ]
    path = write_rows(rows, "jsonl", tmp_path)
    data_import(project=p1, path=path)
    second = data_import(project=p2, path=path)
    assert second.created["labels"] == 2
    assert counts(p1) == counts(p2) == {"prompts": 2, "responses": 4, "comparisons": 2, "labels": 2}
    again = data_import(project=p2, path=path)
    assert again.created["labels"] == 0 and again.already_present == 2
    assert counts(p2)["labels"] == 2


# ---- bad input: one clear message, nothing written -------------------------------------------------------


def assert_rejected(project, path, expected: str, **kw):
    before = counts(project)
    with pytest.raises(ImportFailed) as info:
        data_import(project=project, path=path, **kw)
    assert expected in info.value.message, info.value.message
    assert counts(project) == before
    return info.value


GOOD = {"prompt": "Fine prompt", "response": "Fine answer"}


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"prompt": "Q", "response": ""}, "line 2, field 'response': empty text"),
        ({"prompt": "Q", "response": "   "}, "line 2, field 'response': empty text"),
        ({"prompt": "Q", "response": 42}, "line 2, field 'response': expected text, got a number"),
        ({"prompt": "", "response": "A"}, "line 2, field 'prompt': empty text"),
        ({"prompt": "Q", "response": None}, "line 2, field 'response': missing"),
        (
            {"prompt": [{"role": "robot", "content": "x"}], "response": "A"},
            "line 2, field 'prompt': message 1 has role 'robot'",
        ),
        (
            {"prompt": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], "response": "A"},
            "line 2, field 'prompt': the last message of a prompt must be the user's",
        ),
        ({"prompt": "Q", "response": "A", "metadata": [1]}, "line 2, field 'metadata': expected an object"),
    ],
)
def test_bad_rows_name_file_line_and_field_and_write_nothing(row, expected, tmp_path):
    project = ProjectFactory()
    path = write_rows([GOOD, row], "jsonl", tmp_path)
    assert_rejected(project, path, f"data.jsonl, {expected}")


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            {"chosen": "\n\nHuman: Hi\n\nAssistant: A", "rejected": "\n\nAssistant: B"},
            "field 'rejected': transcript starts with an 'Assistant:' turn",
        ),
        (
            {
                "chosen": "\n\nHuman: Hi\n\nAssistant: A\n\nHuman: More\n\nAssistant: B",
                "rejected": "\n\nHuman: Hi\n\nAssistant: X\n\nHuman: More\n\nAssistant: C",
            },
            "field 'rejected': chosen and rejected transcripts diverge before their last turn (they first differ at "
            "turn 2, Assistant)",
        ),
        (
            {"chosen": "\n\nHuman: \n\nAssistant: A", "rejected": "\n\nHuman: \n\nAssistant: B"},
            "field 'chosen': turn 1 is empty",
        ),
        (
            {"chosen": "\n\nHuman: Hi", "rejected": "\n\nHuman: Hi\n\nAssistant: B"},
            "field 'chosen': transcript does not end with an 'Assistant:' turn",
        ),
        (
            {"chosen": "\n\nHuman: Hi\n\nAssistant: Same", "rejected": "\n\nHuman: Hi\n\nAssistant: Same"},
            "the two responses are identical",
        ),
    ],
)
def test_bad_hh_transcripts(row, expected, tmp_path):
    project = ProjectFactory()
    good = {"chosen": "\n\nHuman: Hey\n\nAssistant: Hello", "rejected": "\n\nHuman: Hey\n\nAssistant: Bye"}
    path = write_rows([good, row], "jsonl", tmp_path)
    assert_rejected(project, path, f"line 2, {expected}" if "field" in expected else expected)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            {"model_a": "x", "model_b": "y", "winner": "model_c", "prompt": "Q", "response_a": "A", "response_b": "B"},
            "field 'winner': 'model_c' is not one of",
        ),
        (
            {
                "instruction": "Q",
                "output_1": "A",
                "generator_1": "x",
                "output_2": "B",
                "generator_2": "y",
                "preference": 3,
            },
            "field 'preference': 3 is not 1, 2 or 1.5",
        ),
    ],
)
def test_bad_judged_pairs(row, expected, tmp_path):
    project = ProjectFactory()
    path = write_rows([row], "jsonl", tmp_path)
    assert_rejected(project, path, f"line 1, {expected}")


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "broken.jsonl",
            b'{"prompt": "ok"}\n{"prompt": "oops",}\n',
            "broken.jsonl, line 2: malformed JSON (Expecting property name",
        ),
        ("latin1.jsonl", b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n', "latin1.jsonl, line 2: invalid UTF-8"),
        ("bad.csv", b"prompt,response\nQ,A\nQ,caf\xe9\n", "bad.csv, line 3: invalid UTF-8"),
        ("ragged.csv", b"prompt,response\nQ,A\nQ,A,extra\n", "ragged.csv, line 3: expected 2 cells, found 3"),
        ("multi.csv", b'prompt,response\n"two\nlines",A\nQ,""\n', "multi.csv, line 4, field 'response': empty text"),
        ("fake.parquet", b"hello", "fake.parquet: not a readable Parquet file"),
        ("empty.jsonl", b"", "empty.jsonl: the file has no rows"),
    ],
)
def test_bad_files_name_the_line_and_write_nothing(tmp_path, name, content, expected):
    """Malformed JSON (line and column), invalid UTF-8, ragged or multi-line CSV rows, a file that is not
    Parquet, an empty file."""
    path = tmp_path / name
    path.write_bytes(content)
    assert_rejected(ProjectFactory(), path, expected)


def test_unknown_columns_are_explained(tmp_path):
    project = ProjectFactory()
    path = write_rows([{"question": "Q", "answer": "A"}], "jsonl", tmp_path)
    assert_rejected(project, path, "cannot tell what the file holds from its columns ['question', 'answer']")


def test_parquet_rows_are_numbered(tmp_path):
    project = ProjectFactory()
    path = write_rows([GOOD, {"prompt": "Q", "response": " "}], "parquet", tmp_path)
    assert_rejected(project, path, "data.parquet, row 2, field 'response': empty text")


def test_row_limit(tmp_path):
    project = ProjectFactory()
    path = write_rows([{"prompt": f"Q{i}"} for i in range(5)], "jsonl", tmp_path)
    assert_rejected(project, path, "line 4: more than the import limit of 3 rows", limits=Limits(10**6, 3))


def test_byte_limit_stops_a_gzip_bomb(tmp_path):
    project = ProjectFactory()
    path = tmp_path / "bomb.jsonl.gz"
    line = (json.dumps({"prompt": "x" * 1000}) + "\n").encode()
    with gzip.open(path, "wb") as f:
        for _ in range(20_000):  # 20 MB unpacked, ~60 kB packed
            f.write(line)
    assert path.stat().st_size < 200_000
    assert_rejected(
        project,
        path,
        "bomb.jsonl.gz: file is larger than the import limit of 1,000,000 bytes",
        limits=Limits(1_000_000, 10**7),
    )


def test_gzipped_file_within_limits_imports(tmp_path):
    project = ProjectFactory()
    path = tmp_path / "ok.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps({"prompt": SKY}) + "\n")
    assert data_import(project=project, path=path).imported == 1


# ---- skip-invalid ----------------------------------------------------------------------------------------


def test_skip_invalid_imports_valid_rows_and_reports_each_skipped_row(tmp_path):
    project = ProjectFactory()
    rows = [
        {"chosen": "\n\nHuman: A\n\nAssistant: good", "rejected": "\n\nHuman: A\n\nAssistant: bad"},
        {"chosen": "\n\nHuman: B", "rejected": "\n\nHuman: B\n\nAssistant: bad"},
        {
            "chosen": "\n\nHuman: C\n\nAssistant: x\n\nHuman: D\n\nAssistant: y",
            "rejected": "\n\nHuman: C\n\nAssistant: z\n\nHuman: D\n\nAssistant: w",
        },
        {"chosen": "\n\nHuman: E\n\nAssistant: good", "rejected": "\n\nHuman: E\n\nAssistant: bad"},
    ]
    path = write_rows(rows, "jsonl", tmp_path)
    summary = data_import(project=project, path=path, skip_invalid=True)
    assert (summary.imported, len(summary.skipped), summary.already_present) == (2, 2, 0)
    assert [(e.line, e.field) for e in summary.skipped] == [(2, "chosen"), (3, "rejected")]
    assert "skipped data.jsonl, line 2, field 'chosen': transcript does not end with an 'Assistant:' turn" in str(
        summary
    )
    assert counts(project)["labels"] == 2
    again = data_import(project=project, path=path, skip_invalid=True)
    assert (again.imported, len(again.skipped), again.already_present) == (0, 2, 2)


def test_skip_invalid_steps_over_malformed_json_lines(tmp_path):
    project = ProjectFactory()
    path = tmp_path / "messy.jsonl"
    path.write_bytes(b'{"prompt": "one"}\n{"prompt": "two",\n{"prompt": "caf\xe9"}\n[1, 2]\n{"prompt": "three"}\n')
    summary = data_import(project=project, path=path, skip_invalid=True)
    assert summary.imported == 2
    assert [(e.line, e.reason.split(" (")[0]) for e in summary.skipped] == [
        (2, "malformed JSON"),
        (3, "invalid UTF-8 at byte 15"),
        (4, "each line must be a JSON object, got list"),
    ]


def test_a_file_of_only_bad_lines_names_the_first(tmp_path):
    project = ProjectFactory()
    path = tmp_path / "junk.jsonl"
    path.write_text("junk\nmore junk\n")
    assert_rejected(project, path, "junk.jsonl, line 1: malformed JSON")


def test_import_of_a_dataset_dict_reads_every_split(tmp_path):
    import datasets

    project = ProjectFactory()
    path = tmp_path / "dd"
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list([{"prompt": "train q"}]),
            "test": datasets.Dataset.from_list([{"prompt": "test q"}]),
        }
    ).save_to_disk(str(path))
    assert data_import(project=project, path=path).imported == 2
