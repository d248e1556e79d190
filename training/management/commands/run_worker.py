"""`manage.py run_worker [--once]`: the background worker that runs generation, training and export jobs."""

from django.core.management.base import BaseCommand

from training.worker import Worker


class Command(BaseCommand):
    help = (
        "Run queued jobs, each in a child process, until stopped (SIGTERM or Ctrl-C hands the running job back "
        "at its next checkpoint). Start as many workers as you like, on one machine or several sharing the database."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Run at most one job, then exit.")
        parser.add_argument("--exit-when-idle", action="store_true", help="Exit when no job is waiting.")
        parser.add_argument("--name", help="Worker name in job logs (default host:pid).")

    def handle(self, *args, **opts):
        worker = Worker(name=opts.get("name"), echo=self.stdout)
        worker.install_signal_handlers()
        self.stdout.write(f"worker {worker.name} waiting for jobs")
        ran = worker.run(once=opts["once"], exit_when_idle=opts["exit_when_idle"])
        self.stdout.write(f"worker {worker.name} stopped after {ran} job{'s' if ran != 1 else ''}")
