import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from annotators.models import Membership
from feedback.models import Comparison, Label, Project, Prompt
from tests.factories import ProjectFactory
from training.models import Job

from .files import write_rows

pytestmark = pytest.mark.django_db


def test_import_data_creates_the_project_and_prints_a_summary(tmp_path, capsys):
    path = write_rows([{"prompt": "Q", "response": "A"}, {"prompt": "Q", "response": "B"}], "jsonl", tmp_path)
    call_command("import_data", str(path), "--project", "new-one", "--create")
    out = capsys.readouterr().out
    assert "2 rows imported, 0 skipped, 0 already present" in out
    assert Comparison.objects.filter(project__slug="new-one").count() == 1


def test_import_data_unknown_project_fails_without_create(tmp_path):
    path = write_rows([{"prompt": "Q"}], "jsonl", tmp_path)
    with pytest.raises(CommandError, match="no project 'nope'"):
        call_command("import_data", str(path), "--project", "nope")
    assert not Project.objects.exists()


def test_import_data_bad_file_is_a_command_error_and_writes_nothing(tmp_path):
    project = ProjectFactory()
    path = write_rows([{"prompt": "Q"}, {"prompt": ""}], "jsonl", tmp_path)
    with pytest.raises(CommandError, match=r"data.jsonl, line 2, field 'prompt': empty text"):
        call_command("import_data", str(path), "--project", project.slug)
    assert not Prompt.objects.exists()


def test_import_data_skip_invalid_reports_skipped_rows(tmp_path, capsys):
    project = ProjectFactory()
    path = write_rows([{"prompt": "Q"}, {"prompt": ""}], "jsonl", tmp_path)
    call_command("import_data", str(path), "--project", project.slug, "--skip-invalid")
    out = capsys.readouterr().out
    assert "1 rows imported, 1 skipped" in out and "skipped data.jsonl, line 2, field 'prompt': empty text" in out


@pytest.mark.slow
def test_import_data_exit_status_and_one_line_reason_from_the_shell(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}", "JUROR_DATA_DIR": str(tmp_path)}

    def manage(*args):
        return subprocess.run([sys.executable, "manage.py", *args], capture_output=True, text=True, env=env)

    assert manage("migrate", "-v0").returncode == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\nnot json\n')
    result = manage("import_data", str(bad), "--project", "cli", "--create")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "CommandError: bad.jsonl, line 2: malformed JSON (Expecting value at column 1); nothing was imported; "
        "fix the file, or skip invalid rows (--skip-invalid) to import the valid ones"
    ]
    good = write_rows([{"prompt": "ok"}], "jsonl", tmp_path)
    result = manage("import_data", str(good), "--project", "cli")  # the failed import created no project
    assert result.returncode == 1 and "no project 'cli'" in result.stderr
    result = manage("import_data", str(good), "--project", "cli", "--create")
    assert result.returncode == 0 and "1 rows imported" in result.stdout


def test_seed_demo_creates_users_project_and_labelled_data(capsys, monkeypatch):
    monkeypatch.setenv("JUROR_ADMIN_PASSWORD", "admin-pass-123")
    monkeypatch.setenv("JUROR_ANNOTATOR_PASSWORD", "annot-pass-123")
    call_command("seed_demo")
    out = capsys.readouterr().out
    assert "admin       admin-pass-123" in out
    User = get_user_model()
    assert User.objects.get(username="admin").check_password("admin-pass-123")
    assert User.objects.get(username="annotator1").check_password("annot-pass-123")
    assert User.objects.get(username="admin").is_staff
    roles = dict(Membership.objects.filter(project__slug="demo").values_list("user__username", "role"))
    assert roles == {"admin": "manager", "annotator1": "annotator", "annotator2": "annotator"}
    demo = Project.objects.get(slug="demo")
    assert Prompt.objects.filter(project=demo).count() >= 40
    assert Label.objects.filter(comparison__project=demo, source="juror-team-demo").count() >= 40
    korean = [
        p
        for p in Prompt.objects.filter(project=demo)
        if any("\uac00" <= ch <= "\ud7a3" for ch in p.messages[-1]["content"])
    ]
    assert len(korean) >= 3
    assert Comparison.objects.filter(project=demo).exclude(gold_choice="").count() == 3
    demo_job = Job.objects.get(project=demo)
    assert (demo_job.kind, demo_job.status, demo_job.config["template"]) == ("generate", "queued", "cot")
    call_command("seed_demo")  # idempotent
    assert Label.objects.filter(comparison__project=demo).count() == 40
    assert Job.objects.filter(project=demo).count() == 1


def test_seed_demo_generated_passwords_are_kept_for_reruns(capsys, monkeypatch):
    monkeypatch.delenv("JUROR_ADMIN_PASSWORD", raising=False)
    monkeypatch.delenv("JUROR_ANNOTATOR_PASSWORD", raising=False)
    call_command("seed_demo")
    first = capsys.readouterr().out
    call_command("seed_demo")
    second = capsys.readouterr().out
    line = next(line for line in first.splitlines() if line.strip().startswith("annotator1"))
    assert line in second
    password = line.split()[1]
    assert get_user_model().objects.get(username="annotator1").check_password(password)


def test_project_stats_text_and_json(tmp_path, capsys):
    project = ProjectFactory(slug="stats")
    rows = [{"prompt": "Q", "chosen": "A", "rejected": "B"}, {"prompt": "R", "chosen": "C", "rejected": "D"}]
    call_command("import_data", str(write_rows(rows, "jsonl", tmp_path)), "--project", project.slug, "--source", "hh")
    capsys.readouterr()
    call_command("project_stats", "--project", "stats", "--json")
    stats = json.loads(capsys.readouterr().out)
    assert stats["prompts"] == 2 and stats["comparisons"]["pairs"] == 2
    assert stats["labels"]["total"] == 2 and stats["labels"]["by_source"] == {"hh": 2}
    call_command("project_stats", "--project", "stats")
    text = capsys.readouterr().out
    assert "prompts      2" in text and "from hh: 2" in text
    with pytest.raises(CommandError, match="no project 'missing'"):
        call_command("project_stats", "--project", "missing")
