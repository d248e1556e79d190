"""Annotation under load: N simulated annotators drive the API (next item, then a label) against Juror
served by gunicorn, on SQLite as shipped and on PostgreSQL. Prints one JSON line per figure:

- labels/s and p50/p95/p99 latency (ms) of `next` and `label` at N = 1, 8, 32 (no think time);
- next-item latency with 10k and with 1M comparisons in the project, and their ratio;
- a reconciliation: labels acknowledged = labels stored, errors, over-assigned items.

    .venv/bin/python bench/annotation_load.py [--db sqlite,postgres] [--seconds 10] [--levels 1,8,32]
        [--small 10000] [--big 1000000] [--rounds 200] [--pg postgres://postgres@127.0.0.1:5432/juror_bench_load]

Each request loop is bounded in time and talks only to 127.0.0.1. The PostgreSQL database is created for the
run and dropped after it, also when the run fails or is stopped. A smoke run at a tiny size is part of the test
suite (tests/bench/test_annotation_load_smoke.py).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PG_SERVER = "postgres://postgres@127.0.0.1:5432"
PG_DB = "juror_bench_load"
LEVELS = (1, 8, 32)


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- database set-up (in this process, through Django) ------------------------------------------------


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def insert_select(model, values: dict[str, str], source: str, params: list | tuple = ()) -> None:
    """INSERT INTO the model's table, every column but the id, SELECT `values` FROM `source`.

    `values` maps column names to SQL expressions (a literal % written %%). Every other column gets what the ORM
    would store: the default the model declares, the time for auto_now(_add) fields, NULL where the field allows
    it. The column list comes from the model, so a field added later is filled in; one that has no default and is
    not nullable stops the bench here, named, instead of as a NOT NULL failure in the SQL."""
    from django.db import connection
    from django.utils import timezone

    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    unknown = set(values) - {f.column for f in fields}
    if unknown:
        raise ValueError(f"{model.__name__} has no column {', '.join(sorted(unknown))}")
    columns, exprs, defaults = [], [], []
    for field in fields:
        columns.append(connection.ops.quote_name(field.column))
        if field.column in values:
            exprs.append(values[field.column])
            continue
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            value = timezone.now()
        else:
            value = field.get_default()  # "" for a text field without a default, as the ORM stores it
        if value is None and not field.null:
            raise ValueError(f"{model.__name__}.{field.name} has no default: give it a value in the bench's insert")
        exprs.append("%s")
        defaults.append(field.get_db_prep_save(value, connection))
    with connection.cursor() as c:
        c.execute(
            f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)} ({', '.join(columns)}) "
            f"SELECT {', '.join(exprs)} FROM {source}",
            [*defaults, *params],
        )


def grow(project_id: int, n: int, start: int) -> None:
    """Adds n prompts with one pair each, in SQL (an ORM loop would take an hour at 1M)."""
    from django.db import connection, transaction

    from feedback.models import Comparison, Prompt, Response

    if n <= 0:
        return
    pg = connection.vendor == "postgresql"
    series = (
        f"SELECT generate_series({start}, {start + n - 1}) AS n"
        if pg
        else f"WITH RECURSIVE s(n) AS (SELECT {start} UNION ALL SELECT n + 1 FROM s WHERE n < {start + n - 1}) "
        "SELECT n FROM s"
    )
    pad = "lpad(n::text, 63, '0')" if pg else "printf('%%063d', n)"
    msg = (
        "jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'Load question ' || n))"
        if pg
        else "json_array(json_object('role', 'user', 'content', 'Load question ' || n))"
    )
    with transaction.atomic():
        with connection.cursor() as c:
            c.execute("SELECT COALESCE(MAX(id), 0) FROM feedback_prompt")
            last = c.fetchone()[0]
        insert_select(
            Prompt,
            {"project_id": str(project_id), "messages": msg, "content_hash": f"'q' || {pad}"},
            f"({series}) AS g",
        )
        for model in ("m0", "m1"):
            insert_select(
                Response,
                {
                    "prompt_id": "id",
                    "text": f"'Answer from {model} to question ' || id",
                    "model": f"'{model}'",
                    "content_hash": f"'{model}' || substr(content_hash, 3)",
                },
                "feedback_prompt WHERE id > %s ORDER BY id",
                [last],
            )
        insert_select(
            Comparison,
            {
                "project_id": str(project_id),
                "prompt_id": "p.id",
                "kind": "'pair'",
                "response_a_id": "a.id",
                "response_b_id": "b.id",
                "members_key": "a.id || ',' || b.id",
            },
            "feedback_prompt p JOIN feedback_response a ON a.prompt_id = p.id AND a.model = 'm0' "
            "JOIN feedback_response b ON b.prompt_id = p.id AND b.model = 'm1' WHERE p.id > %s",
            [last],
        )
    if pg:
        with connection.cursor() as c:
            c.execute("ANALYZE")


def seed(users: int) -> tuple[int, list[str]]:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from annotators.models import Membership
    from feedback.models import Project

    project = Project.objects.create(slug="load", name="Load", labels_per_item=3, lease_minutes=10)
    tokens = []
    for i in range(users):
        user = get_user_model().objects.create(username=f"annotator{i}")
        Membership.objects.create(user=user, project=project)
        tokens.append(Token.objects.create(user=user).key)
    return project.id, tokens


def reconcile(project_id: int) -> dict:
    from django.db.models import Count, Q

    from feedback.models import Assignment, Comparison, Label

    labels = Label.objects.filter(comparison__project_id=project_id).count()
    over = (
        Assignment.objects.filter(comparison__project_id=project_id)
        .values("comparison")
        .annotate(live=Count("id", filter=~Q(status="skipped")))
        .filter(live__gt=3)
        .count()
    )
    drift = (
        Comparison.objects.filter(project_id=project_id).annotate(n=Count("labels")).exclude(n=models_F("label_count"))
    )
    return {"labels_stored": labels, "over_assigned": over, "counter_drift": drift.count()}


def models_F(name):  # noqa: N802 - reads like the ORM's F
    from django.db.models import F

    return F(name)


# ---- the load ------------------------------------------------------------------------------------------


class Annotator(threading.Thread):
    def __init__(self, port: int, token: str, until: float, combined: bool = False) -> None:
        super().__init__(daemon=True)
        self.port, self.token, self.until, self.combined = port, token, until, combined
        self.next_ms: list[float] = []
        self.label_ms: list[float] = []
        self.labels = 0
        self.errors: list[str] = []

    def request(self, conn, method, path, body=None, headers=None):
        start = time.perf_counter()
        conn.request(method, path, body=body, headers={"Authorization": f"Token {self.token}", **(headers or {})})
        response = conn.getresponse()
        data = response.read()
        return response.status, data, (time.perf_counter() - start) * 1000

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        item = None
        suffix = "?next=1" if self.combined else ""
        try:
            while time.perf_counter() < self.until:
                if item is None:
                    status, data, ms = self.request(conn, "GET", "/api/v1/projects/load/next/")
                    self.next_ms.append(ms)
                    if status == 204:
                        break
                    if status != 200:
                        self.errors.append(f"next {status}")
                        continue
                    item = json.loads(data)
                body = json.dumps({"choice": "a" if item["assignment_id"] % 2 else "b", "time_spent_ms": 1000})
                status, data, ms = self.request(
                    conn,
                    "POST",
                    f"/api/v1/assignments/{item['assignment_id']}/label/{suffix}",
                    body,
                    {"Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())},
                )
                self.label_ms.append(ms)
                if status != 201:
                    self.errors.append(f"label {status}")
                    item = None
                    continue
                self.labels += 1
                # Combined mode: the label's answer carries the next item (null when none is left).
                item = json.loads(data).get("next") if self.combined else None
                if self.combined and item is None:
                    break
        except OSError as exc:
            self.errors.append(repr(exc))
        finally:
            conn.close()


def drive(port: int, tokens: list[str], n: int, seconds: float, combined: bool = False) -> dict:
    until = time.perf_counter() + seconds
    workers = [Annotator(port, tokens[i], until, combined) for i in range(n)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join(seconds + 60)
    elapsed = time.perf_counter() - start
    nexts = [x for w in workers for x in w.next_ms]
    labels = [x for w in workers for x in w.label_ms]
    return {
        "labels": sum(w.labels for w in workers),
        "labels_per_s": round(sum(w.labels for w in workers) / elapsed, 1),
        "next_ms": {"p50": pct(nexts, 0.5), "p95": pct(nexts, 0.95), "p99": pct(nexts, 0.99)},
        "label_ms": {"p50": pct(labels, 0.5), "p95": pct(labels, 0.95), "p99": pct(labels, 0.99)},
        "errors": sum(len(w.errors) for w in workers),
        "error_samples": sorted({e for w in workers for e in w.errors})[:3],
    }


def next_latency(port: int, token: str, rounds: int = 200) -> tuple[float, int]:
    """Median ms of `next` over `rounds` items labelled one at a time, and how many labels were acknowledged."""
    w = Annotator(port, token, time.perf_counter() + 120)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times, labelled = [], 0
    for _ in range(rounds):
        status, data, ms = w.request(conn, "GET", "/api/v1/projects/load/next/")
        if status != 200:
            break  # 204: nothing left for this annotator
        times.append(ms)
        item = json.loads(data)
        status, _, _ = w.request(
            conn,
            "POST",
            f"/api/v1/assignments/{item['assignment_id']}/label/",
            json.dumps({"choice": "a"}),
            {"Content-Type": "application/json"},
        )
        labelled += status == 201
    conn.close()
    if not times:
        raise RuntimeError("no item was served for the next-latency figure")
    return statistics.median(times), labelled


def serve(url: str, data_dir: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "JUROR_DATA_DIR": data_dir, "DEBUG": "0"}
    proc = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--worker-class",
            "gthread",
            "--workers",
            os.environ.get("BENCH_WORKERS", "3"),
            "--threads",
            os.environ.get("BENCH_THREADS", "8"),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("gunicorn did not start")


def run_child(label: str, url: str, args: argparse.Namespace) -> None:
    setup_django(url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    project_id, tokens = seed(max(args.levels) + 2)
    grow(project_id, args.small, 0)
    if args.fail_after_setup:
        raise RuntimeError("annotation_load: failing after set-up, as --fail-after-setup asks")
    with tempfile.TemporaryDirectory() as data_dir:
        proc, port = serve(url, data_dir)
        try:
            sent = 0
            for mode in ("separate", "combined"):
                # separate: GET next, then POST label; combined: POST label?next=1 returns the next item, which
                # is what the annotate page does (one round trip per item).
                for n in args.levels:
                    figures = drive(port, tokens, n, args.seconds, combined=mode == "combined")
                    sent += figures["labels"]
                    line = {"bench": "annotation_load", "db": label, "mode": mode, "annotators": n}
                    print(json.dumps({**line, "seconds": args.seconds, **figures}), flush=True)
            small, labelled = next_latency(port, tokens[-2], args.rounds)
            sent += labelled
            grow(project_id, args.big - args.small, args.small)
            large, labelled = next_latency(port, tokens[-1], args.rounds)
            sent += labelled
            print(
                json.dumps(
                    {
                        "bench": "annotation_next_vs_size",
                        "db": label,
                        "comparisons_small": args.small,
                        "comparisons_big": args.big,
                        "next_ms_p50_small": round(small, 2),
                        "next_ms_p50_big": round(large, 2),
                        "ratio": round(large / small, 2),
                    }
                ),
                flush=True,
            )
        finally:
            proc.terminate()
            proc.wait(10)
    print(
        json.dumps(
            {"bench": "annotation_reconcile", "db": label, "labels_acknowledged": sent, **reconcile(project_id)}
        ),
        flush=True,
    )


def _stop_on_sigterm(signum, frame) -> None:
    # As an exception, so the finally blocks stop gunicorn and drop the PostgreSQL database.
    raise SystemExit(128 + signum)


def pg_database(url: str, *, create: bool) -> None:
    """Drops the PostgreSQL database that `url` names, then creates it afresh when asked."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = sql.Identifier(unquote(parts.path.lstrip("/")))
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        # FORCE: a crashed run may leave connections behind (a gunicorn worker still shutting down).
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        if create:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--seconds", type=float, default=10, help="length of each load level")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)), help="annotators at once, per level")
    parser.add_argument("--small", type=int, default=10_000, help="comparisons in the project during the load")
    parser.add_argument("--big", type=int, default=1_000_000, help="comparisons for the second next-latency figure")
    parser.add_argument("--rounds", type=int, default=200, help="items labelled for each next-latency figure")
    parser.add_argument("--pg", default=f"{PG_SERVER}/{PG_DB}", help="PostgreSQL database to create, use and drop")
    parser.add_argument("--fail-after-setup", action="store_true", help="crash once the database is built (tests)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.levels = [int(n) for n in args.levels.split(",")]
    if not 0 < args.small <= args.big:
        parser.error("--small must be positive and at most --big")
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    if args.child:
        run_child(args.child[0], args.child[1], args)
        return
    for db in args.db.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            url = args.pg if db == "postgres" else f"sqlite:///{tmp}/load.sqlite3"
            if db == "postgres":
                pg_database(url, create=True)
            try:
                child = subprocess.Popen(
                    [sys.executable, __file__, "--child", db, url, *sys.argv[1:]],
                    env={**os.environ, "JUROR_DATA_DIR": tmp},
                )
                try:
                    if child.wait():
                        raise SystemExit(f"annotation_load on {db} failed (exit {child.returncode})")
                finally:
                    if child.poll() is None:  # we were stopped: stop it too, then drop its database
                        child.terminate()
                        child.wait(30)
            finally:
                if db == "postgres":
                    pg_database(url, create=False)


if __name__ == "__main__":
    main()
