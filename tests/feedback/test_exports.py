import csv
import datetime as dt
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from annotators.models import Membership
from feedback.assignment import assignment_claim
from feedback.exports.options import ExportOptions
from feedback.exports.service import ExportFailed, export_preferences
from feedback.labels import Judgement, label_submit
from feedback.models import Assignment, Comparison, Demonstration, Label
from tests.factories import MembershipFactory, ProjectFactory, PromptFactory, ResponseFactory, make_pair, make_ranking

pytestmark = pytest.mark.django_db


def label(comparison, member, choice, strength=None):
    """Labels `comparison` as `member`; shown in canonical order, so the display choice is the stored one."""
    now = timezone.now()
    lease = Assignment.objects.create(
        comparison=comparison,
        annotator=member.user,
        leased_at=now,
        expires_at=now + timedelta(minutes=10),
        display_order=[comparison.response_a_id, comparison.response_b_id],
    )
    label_submit(assignment=lease, annotator=member.user, judgement=Judgement(choice=choice, strength=strength))


@pytest.fixture
def project():
    return ProjectFactory(labels_per_item=3)


@pytest.fixture
def people(project):
    return [MembershipFactory(project=project) for _ in range(3)]


def load(path, fmt):
    import datasets

    if fmt == "hf":
        return datasets.load_from_disk(str(path))
    files = {s: str(path / f"{s}.{fmt}") for s in ("train", "test") if (path / f"{s}.{fmt}").exists()}
    return datasets.load_dataset({"jsonl": "json"}.get(fmt, fmt), data_files=files)


def all_rows(dataset) -> list[dict]:
    return [row for split in dataset for row in dataset[split]]


@pytest.mark.parametrize("fmt", ["hf", "parquet", "jsonl", "csv"])
def test_pairs_round_trip_equal_the_database(project, people, tmp_path, fmt):
    c1, c2, c3 = (make_pair(project) for _ in range(3))
    for p in people:
        label(c1, p, "a", strength=2)
    label(c2, people[0], "b")
    label(c2, people[1], "b")
    label(c2, people[2], "a")
    label(c3, people[0], "tie")  # excluded by default
    result = export_preferences(project=project, options=ExportOptions(format=fmt, test_fraction=0), out=tmp_path / "x")
    rows = sorted(all_rows(load(result.path, fmt)), key=lambda r: int(r["comparison_id"]))
    assert [int(r["comparison_id"]) for r in rows] == [c1.pk, c2.pk]
    first, second = rows
    assert (first["chosen"], first["rejected"]) == (c1.response_a.text, c1.response_b.text)
    assert (second["chosen"], second["rejected"]) == (c2.response_b.text, c2.response_a.text)
    assert first["prompt"] == c1.prompt.messages[0]["content"]
    assert int(first["num_labels"]) == 3 and float(first["agreement"]) == 1.0 and float(first["strength"]) == 2.0
    assert float(second["agreement"]) == pytest.approx(2 / 3, abs=1e-5)
    assert first["chosen_model"] == "model-x"


def test_conversational_style_keeps_messages(project, people, tmp_path):
    prompt = PromptFactory(
        project=project, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]
    )
    a, b = ResponseFactory(prompt=prompt), ResponseFactory(prompt=prompt)
    c = Comparison.objects.create(
        project=project, prompt=prompt, response_a=a, response_b=b, members_key=f"{a.pk},{b.pk}"
    )
    label(c, people[0], "a")
    result = export_preferences(
        project=project,
        options=ExportOptions(format="jsonl", style="conversational", test_fraction=0),
        out=tmp_path / "x",
    )
    row = json.loads((result.path / "train.jsonl").read_text())
    assert row["prompt"] == prompt.messages
    assert row["chosen"] == [{"role": "assistant", "content": a.text}]


def test_ties_and_both_bad_on_request(project, people, tmp_path):
    tie, bad = make_pair(project), make_pair(project)
    label(tie, people[0], "tie")
    label(bad, people[0], "both_bad")
    opts = ExportOptions(format="jsonl", test_fraction=0, include_ties=True, include_both_bad=True)
    rows = [
        json.loads(line)
        for line in (export_preferences(project=project, options=opts, out=tmp_path / "x").path / "train.jsonl")
        .read_text(encoding="utf-8")
        .splitlines()
    ]
    assert sorted(r["outcome"] for r in rows) == ["both_bad", "tie"]


def test_filters_reconcile_with_the_database(project, people, tmp_path):
    pairs = [make_pair(project) for _ in range(6)]
    for i, c in enumerate(pairs):
        for p in people[: 1 + i % 3]:  # 1, 2 or 3 labels each
            label(c, p, "a" if p is not people[2] else "b")

    def count(**kw):
        opts = ExportOptions(format="jsonl", test_fraction=0, **kw)
        out = tmp_path / f"x{len(list(tmp_path.iterdir()))}"
        return export_preferences(project=project, options=opts, out=out).rows["train"]

    labelled = Comparison.objects.filter(project=project, label_count__gte=1).count()
    assert count() == labelled == 6
    assert count(min_labels=2) == Comparison.objects.filter(project=project, label_count__gte=2).count() == 4
    # With three votes the third annotator disagrees: agreement 2/3.
    assert count(min_agreement=0.9) == 4
    Membership.objects.filter(pk=people[0].pk).update(excluded_from_exports=True)
    # Left: people[1] says "a" on four pairs, people[2] says "b" on two of them, which become ties.
    with_people_1 = Comparison.objects.filter(labels__annotator=people[1].user).distinct().count()
    assert count(include_ties=True) == with_people_1 == 4
    assert count() == 2
    assert count(exclude=(people[1].user.username,)) == 2  # people[2]'s two "b" votes


def test_overlap_never_duplicates_a_pair(project, people, tmp_path):
    c = make_pair(project)
    for p in people:
        label(c, p, "a")
    result = export_preferences(
        project=project, options=ExportOptions(format="jsonl", test_fraction=0), out=tmp_path / "x"
    )
    assert result.rows == {"train": 1}


def test_sources_and_dates(project, people, tmp_path):
    imported, own = make_pair(project), make_pair(project)
    Label.objects.create(comparison=imported, source="arena", choice="a")
    label(own, people[0], "b")

    def rows(**kw):
        out = tmp_path / f"x{len(list(tmp_path.iterdir()))}"
        return export_preferences(
            project=project, options=ExportOptions(format="jsonl", test_fraction=0, **kw), out=out
        ).rows["train"]

    assert rows() == 2
    assert rows(sources=("annotators",)) == 1
    assert rows(sources=("arena",)) == 1
    tomorrow = timezone.now().date() + timedelta(days=1)
    assert rows(since=tomorrow) == 0


def segmented_ids(project, tmp_path, segment="expertise=expert", kind="pairs"):
    out = tmp_path / f"seg{len(list(tmp_path.iterdir()))}"
    options = ExportOptions(kind=kind, format="jsonl", test_fraction=0, segment=segment)
    result = export_preferences(project=project, options=options, out=out)
    path = result.path / "train.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []
    return [(r.get("comparison_id"), r.get("segment")) for r in rows]


def test_segment_filter_adds_a_column(project, people, tmp_path):
    c1, c2 = make_pair(project), make_pair(project)
    Membership.objects.filter(pk=people[0].pk).update(attributes={"expertise": "expert"})
    label(c1, people[0], "a")
    label(c2, people[1], "a")
    assert segmented_ids(project, tmp_path) == [(c1.pk, "expertise=expert")]


@pytest.mark.parametrize("key", ["isnull", "contains", "regex", "gt", "in", "has_key"])
def test_segment_keys_named_like_lookups_are_keys(project, people, tmp_path, key):
    """A segment called "isnull" or "regex" filters on that key, not on the whole attributes field."""
    c1, c2 = make_pair(project), make_pair(project)
    Membership.objects.filter(pk=people[0].pk).update(attributes={key: "1"})
    Membership.objects.filter(pk=people[1].pk).update(attributes={"other": "1"})
    label(c1, people[0], "a")
    label(c2, people[1], "a")
    assert segmented_ids(project, tmp_path, segment=f"{key}=1") == [(c1.pk, f"{key}=1")]


def test_segment_is_the_one_set_in_the_exported_project(project, people, tmp_path):
    """A person who is an expert in another project is not one here, and the other way round."""
    other = ProjectFactory()
    MembershipFactory(project=other, user=people[0].user, attributes={"expertise": "expert"})
    MembershipFactory(project=other, user=people[1].user)
    Membership.objects.filter(pk=people[1].pk).update(attributes={"expertise": "expert"})
    here, there = make_pair(project), make_pair(other)
    label(here, people[0], "a")
    label(here, people[1], "a")
    label(there, people[0], "a")
    label(there, people[1], "a")
    assert segmented_ids(project, tmp_path) == [(here.pk, "expertise=expert")]
    labels_here = segmented_ids(project, tmp_path, kind="labels")
    assert len(labels_here) == 1  # people[1]'s label only
    assert segmented_ids(other, tmp_path) == [(there.pk, "expertise=expert")]
    assert len(segmented_ids(other, tmp_path, kind="labels")) == 1  # people[0]'s label only


def test_segment_filters_demonstrations_by_their_authors_membership(project, people, tmp_path):
    c = make_pair(project)
    for p, text in ((people[0], "By an expert."), (people[1], "By a novice.")):
        Demonstration.objects.create(prompt=c.prompt, comparison=c, based_on=c.response_a, author=p.user, text=text)
    Membership.objects.filter(pk=people[0].pk).update(attributes={"expertise": "expert"})
    # people[1] is an expert elsewhere only.
    MembershipFactory(user=people[1].user, attributes={"expertise": "expert"})
    options = ExportOptions(kind="demonstrations", format="jsonl", test_fraction=0, segment="expertise=expert")
    result = export_preferences(project=project, options=options, out=tmp_path / "d")
    rows = [json.loads(line) for line in (result.path / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["messages"][-1]["content"] for r in rows] == ["By an expert."]


def test_gold_accuracy_threshold_excludes_careless_annotators(project, people, tmp_path):
    gold = make_pair(project)
    Comparison.objects.filter(pk=gold.pk).update(gold_choice="a")
    gold.refresh_from_db()
    regular = make_pair(project)
    label(gold, people[0], "a")
    label(gold, people[1], "b")  # wrong on gold
    label(regular, people[1], "b")
    opts = ExportOptions(format="jsonl", test_fraction=0, min_gold_accuracy=0.5)
    result = export_preferences(project=project, options=opts, out=tmp_path / "x")
    ids = [
        json.loads(line)["comparison_id"]
        for line in (result.path / "train.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert ids == [gold.pk]


def test_dawid_skene_weights_reliable_annotators(project, people, tmp_path):
    pairs = [make_pair(project) for _ in range(12)]
    # Two careful annotators follow the truth; the third always says "a".
    truth = {c.pk: ("a" if i % 2 else "b") for i, c in enumerate(pairs)}
    for c in pairs:
        label(c, people[0], truth[c.pk])
        label(c, people[1], truth[c.pk])
        label(c, people[2], "a")

    def export(aggregation, name):
        opts = ExportOptions(format="jsonl", test_fraction=0, aggregation=aggregation)
        path = export_preferences(project=project, options=opts, out=tmp_path / name).path / "train.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]

    def winner(row):
        c = Comparison.objects.get(pk=row["comparison_id"])
        return "a" if row["chosen"] == c.response_a.text else "b"

    ds, mv = export("dawid_skene", "ds"), export("majority", "mv")
    assert {r["comparison_id"]: winner(r) for r in ds} == truth
    # Majority sees 2 of 3 votes on the "b" pairs; Dawid–Skene learns the third annotator says "a" regardless.
    assert {r["agreement"] for r in mv if truth[r["comparison_id"]] == "b"} == {round(2 / 3, 6)}
    assert all(r["agreement"] > 0.99 for r in ds)


def test_splits_are_by_prompt_and_deterministic(project, people, tmp_path):
    for _ in range(40):
        c = make_pair(project)
        label(c, people[0], "a")
    opts = ExportOptions(format="jsonl", test_fraction=0.3)
    first = export_preferences(project=project, options=opts, out=tmp_path / "a")
    again = export_preferences(project=project, options=opts, out=tmp_path / "b")
    train = {
        json.loads(line)["prompt_id"] for line in (first.path / "train.jsonl").read_text(encoding="utf-8").splitlines()
    }
    test = {
        json.loads(line)["prompt_id"] for line in (first.path / "test.jsonl").read_text(encoding="utf-8").splitlines()
    }
    assert train and test and not train & test
    assert first.files == again.files  # same sha256 for every file, card and data alike
    reseeded = export_preferences(
        project=project, options=ExportOptions(format="jsonl", test_fraction=0.3, seed=1), out=tmp_path / "c"
    )
    assert {
        json.loads(line)["prompt_id"]
        for line in (reseeded.path / "test.jsonl").read_text(encoding="utf-8").splitlines()
    } != test


@pytest.mark.parametrize("fmt", ["hf", "parquet", "jsonl", "csv"])
def test_reruns_are_byte_identical(project, people, tmp_path, fmt):
    for _ in range(5):
        label(make_pair(project), people[0], "a")
    opts = ExportOptions(format=fmt)
    one = export_preferences(project=project, options=opts, out=tmp_path / "one")
    two = export_preferences(project=project, options=opts, out=tmp_path / "two")
    assert one.files == two.files
    manifest = json.loads((one.path / "manifest.json").read_text())
    assert manifest["files"] == one.files and sum(manifest["rows"].values()) == 5


def test_csv_neutralises_formulas_and_jsonl_keeps_text_exact(project, people, tmp_path):
    prompt = PromptFactory(project=project, messages=[{"role": "user", "content": '=HYPERLINK("http://evil")'}])
    a = ResponseFactory(prompt=prompt, text="+1 and 'quotes' \"and\" émoji 🙂\n\tnew line")
    b = ResponseFactory(prompt=prompt, text="@SUM(A1)")
    c = Comparison.objects.create(
        project=project, prompt=prompt, response_a=a, response_b=b, members_key=f"{a.pk},{b.pk}"
    )
    label(c, people[0], "a")
    csv_out = export_preferences(
        project=project, options=ExportOptions(format="csv", test_fraction=0), out=tmp_path / "c"
    )
    (row,) = list(csv.DictReader((csv_out.path / "train.csv").read_text(encoding="utf-8").splitlines()))
    assert row["prompt"].startswith("'=") and row["chosen"].startswith("'+1") and row["rejected"] == "'@SUM(A1)"
    jsonl = export_preferences(
        project=project, options=ExportOptions(format="jsonl", test_fraction=0), out=tmp_path / "j"
    )
    exact = json.loads((jsonl.path / "train.jsonl").read_text(encoding="utf-8"))
    assert (exact["prompt"], exact["chosen"], exact["rejected"]) == (prompt.messages[0]["content"], a.text, b.text)


def test_kto_rows(project, people, tmp_path):
    c = make_pair(project)
    label(c, people[0], "b")
    result = export_preferences(
        project=project, options=ExportOptions(kind="kto", format="jsonl", test_fraction=0), out=tmp_path / "x"
    )
    rows = [json.loads(line) for line in (result.path / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted((r["completion"], r["label"]) for r in rows) == sorted(
        [(c.response_b.text, True), (c.response_a.text, False)]
    )


def test_raw_labels_are_pseudonymised(project, people, tmp_path):
    c = make_pair(project)
    label(c, people[0], "a", strength=3)
    result = export_preferences(
        project=project, options=ExportOptions(kind="labels", format="jsonl", test_fraction=0), out=tmp_path / "x"
    )
    (row,) = [json.loads(line) for line in (result.path / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert row["annotator"].startswith("annotator:") and people[0].user.username not in row["annotator"]
    assert row["choice"] == "a" and row["strength"] == 3 and row["time_spent_ms"] is not None
    assert row["shown_left_response_id"] in (c.response_a_id, c.response_b_id)
    assert row["created_at"].endswith("Z")  # ISO 8601 in UTC, millisecond precision (the database rounds)
    exported = dt.datetime.fromisoformat(row["created_at"].replace("Z", "+00:00"))
    assert abs(exported - Label.objects.get().created_at) < dt.timedelta(milliseconds=1)


def test_rankings_and_their_pairs(project, people, tmp_path):
    ranking = make_ranking(project, n=3)
    lease = assignment_claim(annotator=people[0].user, project=project)
    label_submit(assignment=lease, annotator=people[0].user, judgement=Judgement(choice=["b", ["a", "c"]]))
    result = export_preferences(
        project=project, options=ExportOptions(kind="rankings", format="jsonl", test_fraction=0), out=tmp_path / "r"
    )
    (row,) = [json.loads(line) for line in (result.path / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert row["ranks"] == [1, 2, 2] and row["comparison_id"] == ranking.pk
    pairs = export_preferences(
        project=project, options=ExportOptions(format="jsonl", test_fraction=0, include_ties=True), out=tmp_path / "p"
    )
    outcomes = sorted(
        json.loads(line)["outcome"] for line in (pairs.path / "train.jsonl").read_text(encoding="utf-8").splitlines()
    )
    assert outcomes == ["chosen", "chosen", "tie"]  # b > a, b > c, a = c


def test_demonstrations_for_sft(project, people, tmp_path):
    c = make_pair(project)
    Demonstration.objects.create(
        prompt=c.prompt, comparison=c, based_on=c.response_a, author=people[0].user, text="Ideal."
    )
    result = export_preferences(
        project=project,
        options=ExportOptions(kind="demonstrations", format="jsonl", test_fraction=0),
        out=tmp_path / "d",
    )
    (row,) = [json.loads(line) for line in (result.path / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert row["messages"] == [*c.prompt.messages, {"role": "assistant", "content": "Ideal."}]
    assert row["based_on_response_id"] == c.response_a_id


def test_card_and_manifest(project, people, tmp_path):
    label(make_pair(project), people[0], "a")
    result = export_preferences(project=project, options=ExportOptions(format="parquet"), out=tmp_path / "x")
    card = (result.path / "README.md").read_text()
    assert project.name in card and 'load_dataset("parquet"' in card and "DPOTrainer" in card
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert set(manifest["files"]) == {"README.md", "train.parquet", "test.parquet"}


def test_refuses_a_folder_that_is_not_empty_and_bad_options(project, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(ExportFailed, match="not empty"):
        export_preferences(project=project, options=ExportOptions(), out=tmp_path / "x")
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="min_agreement"):
        ExportOptions(min_agreement=2)


def test_export_command_writes_and_explains_push_without_token(project, people, tmp_path, monkeypatch, capsys):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    label(make_pair(project), people[0], "a")
    call_command("export_preferences", "--project", project.slug, "--out", str(tmp_path / "x"), "--format", "parquet")
    assert "Exported pairs as parquet" in capsys.readouterr().out
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(CommandError, match="needs HF_TOKEN"):
        call_command(
            "export_preferences", "--project", project.slug, "--out", str(tmp_path / "y"), "--push-to-hub", "me/data"
        )
    with pytest.raises(CommandError, match="min_agreement"):
        call_command(
            "export_preferences", "--project", project.slug, "--out", str(tmp_path / "z"), "--min-agreement", "4"
        )


@pytest.mark.parametrize("segment", ["expertise", "a__b=c", "annotator__password=x", "=x"])
def test_segment_must_be_a_plain_key_value(segment):
    with pytest.raises(ValueError, match="segment is key=value"):
        ExportOptions(segment=segment)
