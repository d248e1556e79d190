from django.core.management.base import BaseCommand, CommandError

from feedback.imports.errors import ImportFailed
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

    def handle(self, *args, **opts):
        project = Project.objects.filter(slug=opts["project"]).first()
        if project is None:
            if not opts["create"]:
                raise CommandError(f"no project '{opts['project']}' (add --create to create it)")
            project = Project.objects.create(slug=opts["project"], name=opts["project"])
        try:
            summary = data_import(
                project=project,
                path=opts["file"],
                fmt=opts["format"],
                skip_invalid=opts["skip_invalid"],
                source=opts["source"],
            )
        except ImportFailed as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(str(summary))
