import argparse

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from feedback.imports.errors import ImportFailed
from feedback.imports.kinds import SOURCE_MAX
from feedback.imports.readers import FORMATS
from feedback.imports.service import data_import
from feedback.models import Project


class Command(BaseCommand):
    help = (
        "Import prompts, responses, preference pairs (TRL, HH-RLHF) or judged pairs (Chatbot Arena, AlpacaEval) "
        "from JSONL, CSV, Parquet or a saved HF datasets folder. Atomic: bad input writes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="a .jsonl/.csv/.parquet file (optionally .gz) or a save_to_disk folder")
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--create", action="store_true", help="create the project if it does not exist")
        parser.add_argument("--format", choices=FORMATS, help="default: from the file name")
        parser.add_argument("--source", help="who judged imported pairs (default: the file name)")
        parser.add_argument(
            "--skip-invalid", action="store_true", help="import the valid rows and report every skipped row"
        )
        parser.add_argument(
            "--progress",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="progress bars on stderr (default: when stderr is a terminal)",
        )

    def handle(self, *args, **opts):
        project = Project.objects.filter(slug=opts["project"]).first()
        if project is None and not opts["create"]:
            raise CommandError(f"no project '{opts['project']}' (add --create to create it)")
        if opts["source"] and len(opts["source"]) > SOURCE_MAX:
            raise CommandError(f"--source: at most {SOURCE_MAX} characters")
        try:
            # A new project is created in the import's transaction: a failed import leaves no empty project.
            with transaction.atomic():
                if project is None:
                    project = Project.objects.create(slug=opts["project"], name=opts["project"])
                with ProgressBars(self.stderr._out, opts["progress"]) as bars:
                    summary = data_import(
                        project=project,
                        path=opts["file"],
                        fmt=opts["format"],
                        skip_invalid=opts["skip_invalid"],
                        source=opts["source"],
                        progress=bars,
                    )
        except ImportFailed as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(str(summary))


class ProgressBars:
    """One tqdm bar per stage of the import (checking, writing, comparing), drawn on `stream` when asked, or when it
    is a terminal and the import takes more than half a second."""

    LABELS = {"checking": "checking rows", "writing": "writing rows", "comparing": "comparisons (prompts)"}

    def __init__(self, stream, wanted: bool | None) -> None:
        self.stream = stream
        self.on = wanted if wanted is not None else stream.isatty()
        self.delay = 0 if wanted else 0.5
        self.bar = None
        self.stage = ""

    def __enter__(self) -> "ProgressBars":
        return self

    def __exit__(self, *exc) -> None:
        self._close()

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if not self.on:
            return
        if stage != self.stage:
            from tqdm import tqdm

            self._close()
            self.stage = stage
            self.bar = tqdm(
                total=total,
                desc=self.LABELS.get(stage, stage),
                unit=" rows",
                file=self.stream,
                delay=self.delay,
                leave=True,
            )
            if stage == "comparing":
                self.bar.unit = " prompts"
        if total is not None and self.bar.total != total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
