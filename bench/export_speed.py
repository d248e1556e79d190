"""Export throughput and memory: builds a project with 1M labels (333,334 pairs × 3 annotators) on SQLite and
exports it in every format, each export in its own process. Prints one JSON line per (kind, format): rows,
seconds, rows/s and the process's peak RSS.

    .venv/bin/python bench/export_speed.py [--labels 1000000] [--kinds labels,pairs] [--formats parquet,jsonl,csv,hf]

Target: at least 100k rows/s for Parquet and peak RSS under 500 MB at 1M labels. A smoke run at a tiny size
(`--labels 30`) is part of the test suite (tests/bench/test_export_speed_smoke.py).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]
ANNOTATORS = 3


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def build(labels: int) -> None:
    from annotation_load import grow, insert_select
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import transaction

    from annotators.models import Membership
    from feedback.models import Comparison, Label, Project

    call_command("migrate", verbosity=0)
    project = Project.objects.create(slug="export", name="Export bench", labels_per_item=ANNOTATORS)
    users = [get_user_model().objects.create(username=f"bench{i}") for i in range(ANNOTATORS)]
    for user in users:
        Membership.objects.create(user=user, project=project)
    grow(project.id, -(-labels // ANNOTATORS), 0)
    with transaction.atomic():
        for user in users:
            # Mostly "a", a third "b", so majority and agreement have work to do.
            insert_select(
                Label,
                {
                    "comparison_id": "id",
                    "annotator_id": str(user.id),
                    "choice": f"CASE WHEN (id + {user.id}) %% 3 = 0 THEN 'b' ELSE 'a' END",
                    "strength": "2",
                    "shown_left_id": "response_a_id",
                    "time_spent_ms": "1500",
                },
                "feedback_comparison WHERE project_id = %s",
                [project.id],
            )
        Comparison.objects.filter(project=project).update(label_count=ANNOTATORS)


def export_once(kind: str, fmt: str, out: str) -> None:
    from feedback.exports.options import ExportOptions
    from feedback.exports.service import export_preferences
    from feedback.models import Project

    start = time.perf_counter()
    result = export_preferences(
        project=Project.objects.get(slug="export"), options=ExportOptions(kind=kind, format=fmt), out=Path(out)
    )
    seconds = time.perf_counter() - start
    rows = sum(result.rows.values())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "bench": "export_speed",
                "kind": kind,
                "format": fmt,
                "rows": rows,
                "seconds": round(seconds, 2),
                "rows_per_s": round(rows / seconds) if seconds else None,
                "peak_rss_mb": round(peak_mb, 1),
            }
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--labels", type=int, default=1_000_000)
    parser.add_argument("--kinds", default="labels,pairs")
    parser.add_argument("--formats", default="parquet,jsonl,csv,hf")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, kind, fmt, out = args.child
        setup_django(url)
        export_once(kind, fmt, out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/export.sqlite3"
        env = {**os.environ, "JUROR_DATA_DIR": tmp, "HF_DATASETS_CACHE": f"{tmp}/hf-cache"}
        os.environ.update(env)
        setup_django(url)
        started = time.perf_counter()
        build(args.labels)
        print(
            json.dumps(
                {
                    "bench": "export_speed_setup",
                    "labels": args.labels,
                    "seconds": round(time.perf_counter() - started, 1),
                }
            ),
            flush=True,
        )
        for kind in args.kinds.split(","):
            for fmt in args.formats.split(","):
                out = f"{tmp}/out-{kind}-{fmt}"
                subprocess.run([sys.executable, __file__, "--child", url, kind, fmt, out], check=True, env=env)


if __name__ == "__main__":
    main()
