import json

from django.core.management.base import BaseCommand, CommandError

from feedback.models import Project
from feedback.selectors import project_stats


class Command(BaseCommand):
    help = "Print a project's counts: prompts, responses, comparisons, labels by choice and source, jobs."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **opts):
        project = Project.objects.filter(slug=opts["project"]).first()
        if project is None:
            raise CommandError(f"no project '{opts['project']}'")
        stats = project_stats(project)
        if opts["json"]:
            self.stdout.write(json.dumps(stats, sort_keys=True))
            return
        c, lab = stats["comparisons"], stats["labels"]
        lines = [
            f"project      {project.slug} ({project.name})",
            f"prompts      {stats['prompts']}",
            f"responses    {stats['responses']} from {len(stats['models'])} models",
            f"comparisons  {c['total']} ({c['pairs']} pairs, {c['rankings']} rankings; "
            f"{c['unlabelled']} not yet annotated, {c['complete']} with k={project.labels_per_item} annotator labels)",
            f"labels       {lab['total']}"
            + "".join(f"\n  {k:<14} {v}" for k, v in lab["by_choice"].items())
            + "".join(f"\n  from {k}: {v}" for k, v in lab["by_source"].items()),
            "jobs         " + (", ".join(f"{k} {v}" for k, v in sorted(stats["jobs"].items())) or "none"),
        ]
        self.stdout.write("\n".join(lines))
