"""`manage.py submit_job KIND --project SLUG [--config F.json] [--set k=v ...] [--wait]`.

Nested settings are named with dots: `--set lora.r=16` overrides `{"lora": {"r": 8}}` from the --config file.
"""

import json
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from feedback.models import Project
from training.catalog import KINDS, submittable_kinds
from training.configs import ConfigError, config_groups
from training.jobs import job_submit
from training.models import Job


def parse_set(items: list[str]) -> dict:
    """`key=value` pairs (`lora.r=16` for a nested setting); a value that reads as JSON (numbers, true, lists) is
    taken as such, else as text."""
    values = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--set {item!r}: expected key=value")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        except RecursionError:
            raise CommandError(f"--set {key.strip()}: the value nests too deeply") from None
        values[key.strip()] = value
    return values


class Command(BaseCommand):
    help = "Queue a job (prints its id); with --wait, follow it and exit non-zero unless it succeeds."

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=sorted(submittable_kinds()))
        parser.add_argument("--project", required=True, help="Project slug.")
        parser.add_argument("--config", type=Path, help="JSON file with config values.")
        parser.add_argument(
            "--set", action="append", default=[], metavar="KEY=VALUE", help="Config value, e.g. lora.r=16 (repeat)."
        )
        parser.add_argument("--wait", action="store_true", help="Show progress until the job ends.")
        parser.add_argument("--list-config", action="store_true", help="Print the kind's config keys and stop.")

    def handle(self, *args, **opts):
        kind = opts["kind"]
        if opts["list_config"]:
            self._list_config(kind)
            return
        project = Project.objects.filter(slug=opts["project"]).first()
        if project is None:
            raise CommandError(f"no project with slug {opts['project']!r}")
        config: dict = {}
        if opts["config"]:
            try:
                config = json.loads(opts["config"].read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise CommandError(f"{opts['config']}: {exc}") from None
            if not isinstance(config, dict):
                raise CommandError(f"{opts['config']}: expected a JSON object of config values")
        config.update(parse_set(opts["set"]))
        try:
            job = job_submit(kind=kind, project=project, config=config)
        except ConfigError as exc:
            raise CommandError(f"{kind} config: {exc}") from None
        self.stdout.write(str(job.pk))
        if opts["wait"]:
            self._follow(job)

    def _list_config(self, kind: str) -> None:
        """`name = default  # help`, one a line; a nested config's settings under a comment naming the group."""
        for group in config_groups(KINDS[kind].config):
            if group.name:
                self.stdout.write(f"\n# {group.name}: {group.help}" if group.help else f"\n# {group.name}")
            for spec in group.fields:
                self.stdout.write(f"{spec.name} = {json.dumps(spec.default, default=str)}  # {spec.help}")

    def _follow(self, job: Job) -> None:
        # The raw stream under Django's OutputWrapper: the wrapper ends every write with a newline, and tqdm
        # redraws its bar in place with \r.
        with tqdm(total=0, desc=f"job #{job.pk} {job.kind}", unit="step", file=self.stderr._out) as bar:
            while True:
                job.refresh_from_db()
                if job.progress_total and bar.total != job.progress_total:
                    bar.total = job.progress_total
                bar.n = job.progress_current
                bar.set_postfix_str(f"{job.status} {job.progress_message}"[:60], refresh=False)
                bar.refresh()
                if job.is_finished:
                    break
                time.sleep(1)
        if job.status != Job.Status.SUCCEEDED:
            raise CommandError(f"job #{job.pk} {job.status}: {job.error or 'no reason recorded'}")
        self.stdout.write(f"job #{job.pk} succeeded: {json.dumps(job.result, default=str)}")
