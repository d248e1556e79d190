import os
from datetime import date
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from feedback.exports.options import AGGREGATIONS, FORMATS, KINDS, ExportOptions
from feedback.exports.service import ExportFailed, export_preferences
from feedback.models import Project


def push_to_hub(folder: Path, repo_id: str) -> str:
    """Uploads the export folder (data, card, manifest) as a private dataset repository."""
    if not os.environ.get("HF_TOKEN"):
        raise CommandError("--push-to-hub needs HF_TOKEN in the environment (a write token from the Hub)")
    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True"):
        raise CommandError("--push-to-hub cannot run with HF_HUB_OFFLINE set")
    from huggingface_hub import HfApi

    api = HfApi(token=os.environ["HF_TOKEN"])
    try:
        api.create_repo(repo_id, repo_type="dataset", private=True, exist_ok=True)
        commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset")
    except Exception as exc:  # network or permission problems: say so in one line
        raise CommandError(f"push to {repo_id} failed: {exc}") from None
    return f"Pushed to https://huggingface.co/datasets/{repo_id} ({commit.oid[:8]})"


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


class Command(BaseCommand):
    help = (
        "Export a project's labels as a dataset: TRL preference pairs, KTO rows, raw labels, rankings or SFT "
        "demonstrations, as a HF datasets folder, Parquet, JSONL or CSV, with a dataset card and a manifest."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True)
        parser.add_argument("--out", required=True, help="a new (or empty) folder")
        parser.add_argument("--format", choices=FORMATS, default="hf")
        parser.add_argument("--kind", choices=KINDS, default="pairs")
        parser.add_argument("--style", choices=["standard", "conversational"], default="standard")
        parser.add_argument("--aggregation", choices=AGGREGATIONS, default="majority")
        parser.add_argument("--include-ties", action="store_true")
        parser.add_argument("--include-both-bad", action="store_true")
        parser.add_argument("--min-agreement", type=float, default=0.0)
        parser.add_argument("--min-labels", type=int, default=1)
        parser.add_argument("--min-gold-accuracy", type=float)
        parser.add_argument("--since", type=date.fromisoformat, help="YYYY-MM-DD")
        parser.add_argument("--until", type=date.fromisoformat, help="YYYY-MM-DD")
        parser.add_argument("--segment", default="", help="key=value, e.g. expertise=expert")
        parser.add_argument("--models", default="", help="comma-separated model names")
        parser.add_argument("--sources", default="", help='comma-separated: "annotators" and/or imported sources')
        parser.add_argument("--exclude", default="", help="comma-separated usernames")
        parser.add_argument("--test-fraction", type=float, default=0.1)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--push-to-hub",
            metavar="REPO_ID",
            help="also upload the folder as a Hub dataset (needs HF_TOKEN and network)",
        )

    def handle(self, *args, **o):
        project = Project.objects.filter(slug=o["project"]).first()
        if project is None:
            raise CommandError(f"no project '{o['project']}'")
        try:
            options = ExportOptions(
                kind=o["kind"],
                format=o["format"],
                style=o["style"],
                aggregation=o["aggregation"],
                include_ties=o["include_ties"],
                include_both_bad=o["include_both_bad"],
                min_agreement=o["min_agreement"],
                min_labels=o["min_labels"],
                min_gold_accuracy=o["min_gold_accuracy"],
                since=o["since"],
                until=o["until"],
                segment=o["segment"],
                models=_csv(o["models"]),
                sources=_csv(o["sources"]),
                exclude=_csv(o["exclude"]),
                test_fraction=o["test_fraction"],
                seed=o["seed"],
            )
            result = export_preferences(project=project, options=options, out=Path(o["out"]))
        except (ValueError, ExportFailed) as exc:
            raise CommandError(str(exc)) from None
        counts = ", ".join(f"{split} {n}" for split, n in result.rows.items())
        self.stdout.write(f"Exported {options.kind} as {options.format} to {result.path}: {counts} rows")
        if o["push_to_hub"]:
            self.stdout.write(push_to_hub(result.path, o["push_to_hub"]))
