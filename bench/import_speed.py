"""Import throughput and memory, on SQLite and PostgreSQL. Prints one JSON line per figure:

- `import_speed`: rows/s importing 100k responses (one per row, 50k prompts × 2 models) through the same
  `data_import` the command, admin and API use, then again (everything already present), and the peak RSS of the
  process that did both.
- `import_job`: 2M response rows uploaded as the site and API take them (`upload_import`, which stores the file
  and queues an `import` job), imported by a worker (`run_worker`); rows/s from the upload to the job's end, the
  job's own rows/s, and the peak RSS of the job's child process (the target: under 500 MB).

    .venv/bin/python bench/import_speed.py [--rows 100000] [--job-rows 2000000] [--db sqlite,postgres]
        [--pg postgres://postgres@127.0.0.1:5432/juror_bench_import]

The PostgreSQL database named by --pg is created for the run and dropped afterwards, also when the run fails. A
smoke run at a tiny size is part of the test suite (tests/bench/test_import_speed_smoke.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PG_DEFAULT = "postgres://postgres@127.0.0.1:5432/juror_bench_import"
BENCH = {"direct": "import_speed", "job": "import_job"}


def make_file(path: Path, rows: int, *, words: int = 20) -> None:
    with open(path, "w") as f:
        for i in range(rows):
            prompt = f"Prompt number {i // 2}: explain idea {i // 2} in one paragraph."
            response = f"Answer {i} " + "lorem ipsum " * words
            f.write(json.dumps({"prompt": prompt, "response": response, "model": f"m{i % 2}"}) + "\n")


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: kilobytes


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def run_direct(url: str, path: Path, label: str) -> dict:
    setup_django(url)
    from feedback.imports.service import data_import
    from feedback.models import Project

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
        "peak_rss_mb": peak_rss_mb(),
    }


def run_job(url: str, path: Path, label: str) -> dict:
    setup_django(url)
    from django.core.files import File

    from feedback.imports.uploads import upload_import
    from feedback.models import Project
    from training.models import Job

    project = Project.objects.create(slug="bench-job", name="bench job", max_pairs_per_prompt=1)
    start = time.perf_counter()
    with open(path, "rb") as f:
        outcome = upload_import(project=project, upload=File(f, name=path.name))
    if outcome.job is None:
        raise SystemExit(f"{path.name} was imported in the request; lower JUROR_IMPORT_SYNC_MAX_BYTES")
    queued = time.perf_counter() - start
    worker = subprocess.run(  # noqa: S603 — this interpreter and this repository's manage.py
        [sys.executable, "manage.py", "run_worker", "--exit-when-idle", "--name", "bench"],
        cwd=ROOT,
        env=os.environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    job = Job.objects.get(pk=outcome.job.pk)
    if job.status != "succeeded":
        raise SystemExit(f"the import job {job.status}: {job.error}\n{worker.stderr[-3000:]}")
    log = "\n".join(job.log_lines.values_list("line", flat=True))
    child_rss = re.search(r"peak RSS ([0-9.]+) MB", log)
    rows = job.result["rows"]
    return {
        "bench": "import_job",
        "database": label,
        "rows": rows,
        "upload_seconds": round(queued, 2),
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
        "job_rows_per_s": job.result["rows_per_s"],
        "created": job.result["created"],
        "peak_rss_mb": float(child_rss.group(1)) if child_rss else None,
    }


def pg_database(url: str, *, create: bool) -> None:
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = sql.Identifier(parts.path.lstrip("/"))
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        if create:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(name))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000, help="rows for import_speed (0: skip it)")
    parser.add_argument("--job-rows", type=int, default=2_000_000, help="rows for import_job (0: skip it)")
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--pg", default=PG_DEFAULT, help="a scratch database, created and dropped by the run")
    parser.add_argument("--child", nargs=4, metavar=("FIGURE", "URL", "FILE", "LABEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        figure, url, path, label = args.child
        run = run_direct if figure == "direct" else run_job
        print(json.dumps(run(url, Path(path), label)), flush=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        if args.rows:
            files["direct"] = Path(tmp) / "responses.jsonl"
            make_file(files["direct"], args.rows)
        if args.job_rows:
            # Shorter answers than import_speed's: 2M rows stay under the default upload limit of 512 MiB.
            files["job"] = Path(tmp) / "upload.jsonl"
            make_file(files["job"], args.job_rows, words=5)
        env = {
            **os.environ,
            "JUROR_IMPORT_MAX_ROWS": str(max(2 * args.rows, args.job_rows, 2_000_000)),
            "JUROR_IMPORT_SYNC_MAX_BYTES": "0",  # the job figure always goes through a job, however small
            "TQDM_DISABLE": "1",
        }
        for db in [d.strip() for d in args.db.split(",") if d.strip()]:
            label = "sqlite" if db == "sqlite" else "postgresql"
            for figure, path in files.items():
                data = Path(tmp) / f"{db}-{figure}"
                data.mkdir()
                run_env = {**env, "JUROR_DATA_DIR": str(data)}
                if db == "sqlite":
                    url = f"sqlite:///{data}/bench.sqlite3"
                else:
                    url = args.pg
                    try:
                        pg_database(url, create=True)
                    except Exception as exc:  # noqa: BLE001 — no server: say so, go on with the rest
                        print(json.dumps({"bench": BENCH[figure], "database": label, "error": str(exc).strip()}))
                        continue
                try:
                    subprocess.run(  # noqa: S603
                        [sys.executable, __file__, "--child", figure, url, str(path), label], check=True, env=run_env
                    )
                finally:
                    if db != "sqlite":
                        pg_database(url, create=False)


if __name__ == "__main__":
    main()
