"""Creates the demo project with real SmolLM2 generations, the team's judgements and a handful of
demonstrations (so every job kind, SFT included, runs on it out of the box), and the demo users.

Passwords come from JUROR_ADMIN_PASSWORD / JUROR_ANNOTATOR_PASSWORD, or are generated once and kept in
<data dir>/demo-logins.json (mode 600) so that re-running prints logins that still work.
"""

import json
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from annotators.models import Membership
from feedback.hashing import messages_hash
from feedback.imports.errors import ImportFailed
from feedback.imports.service import data_import
from feedback.models import Comparison, Demonstration, Project, Prompt

DEMO_DIR = Path(__file__).resolve().parent.parent.parent / "demo"
GUIDELINES = """\
Compare the two answers to the same prompt and pick the one a careful, helpful assistant would give.

- **Correct first**: a wrong fact or a wrong number loses to a plain but right answer.
- **Then helpful**: answers the question that was asked, at the level of the person asking
  (a seven-year-old needs a different answer than a physicist).
- **Safe**: advice that could hurt someone is always worse.
- Choose **tie** when neither is better, **both bad** when neither is acceptable.
"""
DEMO_JOB = {"prompts": "all", "limit": 3, "n": 2, "template": "cot", "max_new_tokens": 96, "temperatures": [0.8]}
USERS = [
    ("admin", True, Membership.Role.MANAGER),
    ("annotator1", False, Membership.Role.ANNOTATOR),
    ("annotator2", False, Membership.Role.ANNOTATOR),
]


class Command(BaseCommand):
    help = (
        "Create the demo project (prompts, SmolLM2 answers, team judgements) and users admin, annotator1, annotator2."
    )

    def handle(self, *args, **opts):
        logins = self._passwords()
        with transaction.atomic():
            project, _ = Project.objects.get_or_create(
                slug="demo",
                defaults={
                    "name": "Demo: everyday assistant answers",
                    "guidelines": GUIDELINES,
                    "labels_per_item": 2,
                    "max_pairs_per_prompt": 1,
                    "gold_rate": 0.1,
                    "show_gold_accuracy": True,
                },
            )
            User = get_user_model()
            for username, staff, role in USERS:
                user, created = User.objects.get_or_create(
                    username=username, defaults={"is_staff": staff, "is_superuser": staff}
                )
                if created or username in logins["from_env"]:
                    user.set_password(logins["passwords"][username])
                    user.save()
                Membership.objects.get_or_create(user=user, project=project, defaults={"role": role})
            try:
                for name, source in (("generations.jsonl", None), ("judgements.jsonl", "juror-team-demo")):
                    summary = data_import(project=project, path=DEMO_DIR / name, source=source)
                    self.stdout.write(str(summary))
            except ImportFailed as exc:
                raise CommandError(exc.message) from None
            self._mark_gold(project)
            self._add_demonstrations(project)
            self._queue_demo_job(project)
        self.stdout.write("Demo logins (sign in at /accounts/login/):")
        for username, _, role in USERS:
            self.stdout.write(f"  {username:<11} {logins['passwords'][username]:<16} ({role})")

    def _mark_gold(self, project: Project) -> None:
        """Prompts marked "gold" in the demo data become gold items, answered as the team judged them."""
        for comparison in Comparison.objects.filter(project=project, prompt__metadata__gold=True, gold_choice=""):
            team = comparison.labels.filter(source="juror-team-demo").first()
            if team and team.choice in ("a", "b"):
                comparison.gold_choice = team.choice
                comparison.save(update_fields=["gold_choice"])

    def _add_demonstrations(self, project: Project) -> None:
        """The team's good answers to some demo prompts (demonstrations.jsonl: the prompt's messages with the
        answer as the last assistant message, the SFT export's own shape), written by admin; a re-run adds none
        twice."""
        author = get_user_model().objects.get(username="admin")
        added = 0
        with open(DEMO_DIR / "demonstrations.jsonl", encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                *messages, answer = json.loads(line)["messages"]
                prompt = Prompt.objects.filter(project=project, content_hash=messages_hash(messages)).first()
                if prompt is None or answer.get("role") != "assistant":
                    raise CommandError(f"demonstrations.jsonl line {number}: not an answer to a demo prompt")
                _, created = Demonstration.objects.get_or_create(prompt=prompt, author=author, text=answer["content"])
                added += created
        self.stdout.write(f"{added} demonstrations added")

    def _queue_demo_job(self, project: Project) -> None:
        """A first generation job, so the demo shows one finished within a minute of the worker starting:
        SmolLM2 answers three prompts twice with chain of thought, and the answers become new pairs."""
        from training.jobs import job_submit
        from training.models import Job

        if Job.objects.filter(project=project).exists():
            return
        job = job_submit(kind="generate", project=project, config=DEMO_JOB)
        self.stdout.write(f"Queued demo generation job #{job.pk}; the worker runs it (see /jobs/{job.pk}/).")

    def _passwords(self) -> dict:
        store = Path(settings.JUROR_DATA_DIR) / "demo-logins.json"
        saved = json.loads(store.read_text()) if store.exists() else {}
        env = {
            "admin": os.environ.get("JUROR_ADMIN_PASSWORD"),
            "annotator1": os.environ.get("JUROR_ANNOTATOR_PASSWORD"),
            "annotator2": os.environ.get("JUROR_ANNOTATOR_PASSWORD"),
        }
        passwords = {u: env[u] or saved.get(u) or secrets.token_urlsafe(9) for u, _, _ in USERS}
        if passwords != saved:
            store.parent.mkdir(parents=True, exist_ok=True)
            store.touch(mode=0o600)
            store.write_text(json.dumps(passwords))
        return {"passwords": passwords, "from_env": {u for u, v in env.items() if v}}
