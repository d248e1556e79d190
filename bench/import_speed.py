"""Import throughput: rows/s importing 100k responses (one per row, 50k prompts × 2 models) on SQLite and
PostgreSQL, through the same `data_import` the command, admin and API use. Prints one JSON line per database.

    .venv/bin/python bench/import_speed.py [--rows 100000] [--postgres postgres://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_file(path: Path, rows: int) -> None:
    with open(path, "w") as f:
        for i in range(rows):
            prompt = f"Prompt number {i // 2}: explain idea {i // 2} in one paragraph."
            f.write(
                json.dumps({"prompt": prompt, "response": f"Answer {i} " + "lorem ipsum " * 20, "model": f"m{i % 2}"})
                + "\n"
            )


def run_one(database_url: str, path: Path, label: str) -> dict:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    from feedback.imports.service import data_import
    from feedback.models import Project

    call_command("migrate", verbosity=0)
    project = Project.objects.create(slug="bench", name="bench", max_pairs_per_prompt=1)
    start = time.perf_counter()
    summary = data_import(project=project, path=path)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    again = data_import(project=project, path=path)
    reimport = time.perf_counter() - start
    return {
        "bench": "import_speed",
        "database": label,
        "rows": summary.rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(summary.rows / seconds),
        "created": summary.created,
        "reimport_rows_per_s": round(again.rows / reimport),
        "reimport_created": sum(again.created.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--postgres",
        default="postgres://postgres@127.0.0.1:5432/postgres",
        help="server URL; a scratch database juror_bench is created and dropped there",
    )
    parser.add_argument("--child", nargs=3, metavar=("URL", "FILE", "LABEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child[0], Path(args.child[1]), args.child[2])), flush=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "responses.jsonl"
        make_file(data, args.rows)
        env = {**os.environ, "JUROR_DATA_DIR": tmp, "JUROR_IMPORT_MAX_ROWS": str(args.rows * 2)}
        runs = [(f"sqlite:///{tmp}/bench.sqlite3", "sqlite")]
        import psycopg

        try:
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute("DROP DATABASE IF EXISTS juror_bench")
                conn.execute("CREATE DATABASE juror_bench")
            runs.append((args.postgres.rsplit("/", 1)[0] + "/juror_bench", "postgresql"))
        except psycopg.OperationalError as exc:
            print(json.dumps({"bench": "import_speed", "database": "postgresql", "error": str(exc).strip()}))
        for url, label in runs:
            subprocess.run([sys.executable, __file__, "--child", url, str(data), label], check=True, env=env)
        if len(runs) > 1:
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute("DROP DATABASE IF EXISTS juror_bench")


if __name__ == "__main__":
    main()
