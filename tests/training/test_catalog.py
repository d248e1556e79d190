"""The catalog of job kinds: every kind is complete, its child side imports without Django, and a new kind is one
record that the form, `submit_job`, the job page and the child all pick up."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest
from django.core.management import call_command

from tests.factories import MembershipFactory, ProjectFactory
from tests.training.workers import BASE_DIR
from training import catalog
from training.catalog import KINDS, KindSpec, resolve, submittable_kinds
from training.configs import ConfigError, GenerateConfig, config_fields, config_undocumented, field_specs
from training.jobs import job_submit
from training.models import Job
from training.runner import Context
from training.train_configs import RewardConfig

CHILD_MODULES = ["training.runner", "training.configs", "training.train_configs", "training.catalog"]


@pytest.mark.parametrize("name", list(KINDS))
def test_every_kind_is_complete(name):
    spec = KINDS[name]
    assert spec.name == name and spec.help.strip()
    assert dataclasses.is_dataclass(spec.config)
    assert config_undocumented(spec.config) == [], f"{name}: settings without a docstring"
    assert all(field.help for field in field_specs(name))
    for hook in (spec.entry, spec.prepare, spec.finish, *([spec.ended] if spec.ended else [])):
        assert callable(resolve(hook)), hook


def test_the_child_side_of_every_kind_imports_without_django():
    modules = CHILD_MODULES + [spec.entry.partition(":")[0] for spec in KINDS.values()]
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))))"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    out = subprocess.run(  # noqa: S603 — our own interpreter
        [sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout.splitlines()[-1]) == []


def test_the_submittable_kinds_leave_out_import():
    kinds = submittable_kinds()
    assert kinds == [
        "generate",
        "reward",
        "reward_eval",
        "score",
        "sft",
        "dpo",
        "merge",
        "export",
        "noop",
    ]  # the form's order
    assert not KINDS["import"].submittable and KINDS["import"].long_transaction


def test_resolve_refuses_what_is_not_module_function():
    with pytest.raises(ValueError, match="module:function"):
        resolve("training.tasks.noop.run")
    with pytest.raises(AttributeError):
        resolve("training.tasks.noop:nothing_here")


def test_the_child_gets_its_config_as_the_validated_dataclass(tmp_path):
    spec = {"job_id": 1, "attempt": 1, "kind": "generate", "config": {"max_new_tokens": 9, "temperatures": [0, 1]},
            "workdir": str(tmp_path / "job"), "data_dir": str(tmp_path)}  # fmt: skip
    ctx = Context(spec, events=lambda event: None)
    assert isinstance(ctx.config, GenerateConfig)
    assert (ctx.config.max_new_tokens, ctx.config.temperatures, ctx.config.top_p) == (9, (0.0, 1.0), 0.95)
    with pytest.raises(ConfigError, match="n must be between 1 and 16"):
        Context({**spec, "config": {"n": 0}}, events=lambda event: None)


def _run_child(tmp_path, **spec) -> tuple[int, list[dict]]:
    spec = {"job_id": 1, "attempt": 1, "workdir": str(tmp_path / "job"), "data_dir": str(tmp_path), **spec}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    events = tmp_path / "events.jsonl"
    env = {**os.environ, "JUROR_EVENTS_FILE": str(events)}
    env.pop("JUROR_EVENTS_FD", None)
    child = subprocess.run(  # noqa: S603 — our own interpreter and module
        [sys.executable, "-m", "training.runner", str(path)], cwd=BASE_DIR, env=env, capture_output=True, timeout=120
    )
    return child.returncode, [json.loads(line) for line in events.read_text().splitlines()]


def test_the_runner_refuses_a_spec_outside_the_catalog_or_with_a_bad_config_without_retrying(tmp_path):
    code, events = _run_child(tmp_path, kind="shell", config={})
    assert code == 1 and events[-1]["retry"] is False and "unknown job kind 'shell'" in events[-1]["message"]
    code, events = _run_child(tmp_path, kind="noop", config={"steps": 0})
    assert code == 1 and events[-1] == {
        "type": "error",
        "message": "bad job spec: steps must be at least 1",
        "retry": False,
    }
    code, events = _run_child(tmp_path, kind="noop", config={"steps": 1, "step_seconds": 0})
    assert code == 0 and events[-1] == {"type": "result", "result": {"steps": 1, "resumed_after": 0}}


# A new kind is one record: here a test-only kind with the nested reward config reaches every surface.
@pytest.fixture
def nested_kind(monkeypatch):
    spec = KindSpec(name="nested_test", config=RewardConfig, help="A kind with nested settings.", entry="x:y")
    monkeypatch.setitem(catalog.KINDS, spec.name, spec)
    return spec


@pytest.mark.django_db
def test_submit_job_sets_and_lists_nested_settings(nested_kind, capsys):
    project = ProjectFactory(slug="nest")
    call_command("submit_job", "nested_test", "--project", "nest", "--list-config")
    listed = capsys.readouterr().out.splitlines()
    assert "lora.r = 16  # Rank of the adapter's matrices." in listed
    assert (
        "trainer.learning_rate = 0.0  # 0: the mode's default (head 1e-3, full 1e-5, lora 1e-4, qlora 2e-4; features: fitted by L-BFGS)."
        in listed
    )  # noqa: E501
    assert any(line.startswith("# lora: The LoRA adapter") for line in listed)
    call_command(
        "submit_job", "nested_test", "--project", "nest", "--set", "lora.r=8", "--set", "data.sources=annotators"
    )
    job = Job.objects.get(project=project)
    assert job.config["lora"] == {"r": 8, "alpha": 32, "dropout": 0.0}
    assert job.config["data"]["sources"] == ["annotators"]


@pytest.mark.django_db
def test_submit_job_names_a_nested_key_it_does_not_know(nested_kind):
    from django.core.management.base import CommandError

    ProjectFactory(slug="nest")
    with pytest.raises(CommandError, match=r"unknown config key\(s\) for nested_test: lora\.rank"):
        call_command("submit_job", "nested_test", "--project", "nest", "--set", "lora.rank=8")
    assert not Job.objects.exists()


@pytest.fixture
def manager():
    return MembershipFactory(role="manager", project=ProjectFactory(slug="alpha")).user


@pytest.mark.django_db
def test_the_form_shows_a_nested_config_as_fieldsets(client, manager, nested_kind):
    client.force_login(manager)
    page = client.get("/jobs/new/?kind=nested_test", headers={"HX-Request": "true"}).content.decode()
    assert 'name="config_lora.r"' in page and 'name="config_trainer.learning_rate"' in page
    assert "<legend><code>lora</code>" in page
    assert "The LoRA adapter (modes lora and qlora)" in page  # the nested dataclass's docstring
    assert "Rank of the adapter&#x27;s matrices." in page  # a nested field's docstring


def _nested_form_data() -> dict:
    data = {"kind": "nested_test", "project": "alpha"}
    for spec in config_fields(RewardConfig):
        value = spec.default
        if isinstance(value, tuple):
            value = ", ".join(map(str, value))
        if isinstance(value, bool):
            if not value:
                continue
            value = "on"
        data[f"config_{spec.name}"] = value
    return data


@pytest.mark.django_db
def test_a_nested_error_lands_on_its_field_and_a_good_form_queues_nested_config(client, manager, nested_kind):
    client.force_login(manager)
    bad = client.post("/jobs/new/", {**_nested_form_data(), "config_lora.r": "0"})
    assert bad.status_code == 200 and not Job.objects.exists()
    form = bad.context["form"]
    assert form.errors["config_lora.r"] == ["lora.r must be between 1 and 512"]
    ok = client.post("/jobs/new/", {**_nested_form_data(), "config_lora.r": "4", "config_data.margin": "on"})
    job = Job.objects.get()
    assert ok.status_code == 302
    assert (job.kind, job.config["lora"]["r"], job.config["data"]["margin"]) == ("nested_test", 4, True)


@pytest.mark.django_db
def test_the_job_page_shows_a_nested_config_with_dotted_names(client, manager, nested_kind):
    job = job_submit(kind="nested_test", project=manager.memberships.get().project, config={"lora.r": 8})
    client.force_login(manager)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "<td>lora.r</td><td><code>8</code></td>" in page
    assert "<td>trainer.learning_rate</td>" in page and "<td>lora</td>" not in page
