"""The export kind: prepare() writes the dataset into the job's folder (once), the child only zips it."""

import json
import zipfile

import pytest

from tests.factories import ProjectFactory, make_label, make_pair
from training.jobs import job_dir, job_submit
from training.kinds.export import prepare_export
from training.runner import Context
from training.tasks import export as export_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def job():
    project = ProjectFactory(slug="exp")
    make_label(make_pair(project=project), choice="a")
    return job_submit(kind="export", project=project, config={"format": "jsonl", "test_fraction": 0})


def _prepared(job) -> Context:
    workdir = job_dir(job)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "inputs.json").write_text(json.dumps(prepare_export(job, workdir)))
    spec = {"job_id": job.pk, "attempt": 1, "kind": "export", "config": job.config,
            "inputs": str(workdir / "inputs.json"), "workdir": str(workdir), "data_dir": str(workdir.parent.parent)}  # fmt: skip
    return Context(spec, events=lambda event: None)


def test_prepare_writes_the_export_into_the_job_folder(job):
    inputs = prepare_export(job, job_dir(job))
    folder = job_dir(job) / "export"
    assert inputs == {"project": "exp", "rows": {"train": 1}}
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["rows"] == {"train": 1} and "train.jsonl" in manifest["files"]
    assert len((folder / "train.jsonl").read_text().splitlines()) == 1


def test_prepare_again_reuses_a_complete_export_and_redoes_a_half_written_one(job):
    folder = job_dir(job) / "export"
    prepare_export(job, job_dir(job))
    written = (folder / "manifest.json").stat().st_mtime_ns
    (folder / "mine.txt").write_text("kept: the folder is complete")
    prepare_export(job, job_dir(job))
    assert (folder / "manifest.json").stat().st_mtime_ns == written and (folder / "mine.txt").exists()

    (folder / "manifest.json").unlink()  # as if the folder had been left half-written
    prepare_export(job, job_dir(job))
    assert (folder / "manifest.json").exists() and not (folder / "mine.txt").exists()


def test_the_child_zips_the_prepared_export_and_reports_it(job, monkeypatch):
    ctx = _prepared(job)
    events = []
    ctx._emit = events.append
    # The child reads files only: a database query here would fail the test.
    monkeypatch.setattr("django.db.backends.utils.CursorWrapper.execute", _no_queries)
    result = export_task.run(ctx)
    workdir = job_dir(job)
    assert result == {"rows": {"train": 1}, "path": str((workdir / "export").relative_to(workdir.parent.parent))}
    artifacts = {e["kind"]: e for e in events if e["type"] == "artifact"}
    assert artifacts["export"]["name"] == "pairs-jsonl"
    with zipfile.ZipFile(artifacts["export-zip"]["path"]) as zipped:
        assert {"exp-pairs/train.jsonl", "exp-pairs/manifest.json"} <= set(zipped.namelist())


def _no_queries(*args, **kwargs):
    raise AssertionError("the export child queried the database")


def test_the_child_fails_without_retry_when_the_export_is_gone(job):
    import shutil

    from training.runner import Unrecoverable

    ctx = _prepared(job)
    shutil.rmtree(job_dir(job) / "export")
    with pytest.raises(Unrecoverable, match="missing or incomplete"):
        export_task.run(ctx)
