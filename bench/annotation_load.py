"""Annotation under load: N simulated annotators drive the API (next item, then a label) against Juror
served by gunicorn, on SQLite as shipped and on PostgreSQL. Prints one JSON line per figure:

- labels/s and p50/p95/p99 latency (ms) of `next` and `label` at N = 1, 8, 32 (no think time);
- next-item latency with 10k and with 1M comparisons in the project, and their ratio;
- a reconciliation: labels acknowledged = labels stored, errors, over-assigned items.

    .venv/bin/python bench/annotation_load.py [--db sqlite,postgres] [--seconds 10] [--big 1000000]

Each request loop is bounded in time and talks only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

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


def grow(project_id: int, n: int, start: int) -> None:
    """Adds n prompts with one pair each, in SQL (an ORM loop would take an hour at 1M)."""
    from django.db import connection, transaction

    pg = connection.vendor == "postgresql"
    series = (
        f"SELECT generate_series({start}, {start + n - 1}) AS n"
        if pg
        else f"WITH RECURSIVE s(n) AS (SELECT {start} UNION ALL SELECT n + 1 FROM s WHERE n < {start + n - 1}) "
        "SELECT n FROM s"
    )
    pad = "lpad(n::text, 63, '0')" if pg else "printf('%063d', n)"
    msg = (
        "jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'Load question ' || n))"
        if pg
        else "json_array(json_object('role', 'user', 'content', 'Load question ' || n))"
    )
    with transaction.atomic(), connection.cursor() as c:
        c.execute("SELECT COALESCE(MAX(id), 0) FROM feedback_prompt")
        last = c.fetchone()[0]
        c.execute(
            f"INSERT INTO feedback_prompt (project_id, messages, metadata, content_hash, created_at) "
            f"SELECT {project_id}, {msg}, '{{}}', 'q' || {pad}, CURRENT_TIMESTAMP FROM ({series}) AS g"
        )
        for model in ("m0", "m1"):
            c.execute(
                "INSERT INTO feedback_response (prompt_id, text, model, generation, content_hash, created_at) "
                f"SELECT id, 'Answer from {model} to question ' || id, '{model}', '{{}}', "
                f"'{model}' || substr(content_hash, 3), CURRENT_TIMESTAMP "
                "FROM feedback_prompt WHERE id > %s ORDER BY id",
                [last],
            )
        c.execute(
            "INSERT INTO feedback_comparison (project_id, prompt_id, kind, response_a_id, response_b_id, members_key,"
            " priority, label_count, gold_choice, created_at) "
            f"SELECT {project_id}, p.id, 'pair', a.id, b.id, a.id || ',' || b.id, 0, 0, '', CURRENT_TIMESTAMP "
            "FROM feedback_prompt p JOIN feedback_response a ON a.prompt_id = p.id AND a.model = 'm0' "
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


def next_latency(port: int, token: str, rounds: int = 200) -> float:
    w = Annotator(port, token, time.perf_counter() + 120)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    for _ in range(rounds):
        status, data, ms = w.request(conn, "GET", "/api/v1/projects/load/next/")
        times.append(ms)
        item = json.loads(data)
        w.request(
            conn,
            "POST",
            f"/api/v1/assignments/{item['assignment_id']}/label/",
            json.dumps({"choice": "a"}),
            {"Content-Type": "application/json"},
        )
    conn.close()
    return statistics.median(times)


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


def run_child(label: str, url: str, seconds: float, big: int) -> None:
    setup_django(url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    project_id, tokens = seed(max(LEVELS) + 2)
    grow(project_id, 10_000, 0)
    with tempfile.TemporaryDirectory() as data_dir:
        proc, port = serve(url, data_dir)
        try:
            sent = 0
            for mode in ("separate", "combined"):
                # separate: GET next, then POST label; combined: POST label?next=1 returns the next item, which
                # is what the annotate page does (one round trip per item).
                for n in LEVELS:
                    figures = drive(port, tokens, n, seconds, combined=mode == "combined")
                    sent += figures["labels"]
                    line = {"bench": "annotation_load", "db": label, "mode": mode, "annotators": n, "seconds": seconds}
                    print(json.dumps({**line, **figures}), flush=True)
            small = next_latency(port, tokens[-2])
            grow(project_id, big - 10_000, 10_000)
            large = next_latency(port, tokens[-1])
            print(
                json.dumps(
                    {
                        "bench": "annotation_next_vs_size",
                        "db": label,
                        "next_ms_p50_10k": round(small, 2),
                        f"next_ms_p50_{big // 1000}k": round(large, 2),
                        "ratio": round(large / small, 2),
                    }
                ),
                flush=True,
            )
            sent += 400
        finally:
            proc.terminate()
            proc.wait(10)
    print(
        json.dumps(
            {"bench": "annotation_reconcile", "db": label, "labels_acknowledged": sent, **reconcile(project_id)}
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child[0], args.child[1], args.seconds, args.big)
        return
    for db in args.db.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            if db == "postgres":
                import psycopg

                with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
                    conn.execute(f"DROP DATABASE IF EXISTS {PG_DB}")
                    conn.execute(f"CREATE DATABASE {PG_DB}")
                url = f"{PG_SERVER}/{PG_DB}"
            else:
                url = f"sqlite:///{tmp}/load.sqlite3"
            env = {**os.environ, "JUROR_DATA_DIR": tmp}
            cmd = [sys.executable, __file__, "--child", db, url, "--seconds", str(args.seconds), "--big", str(args.big)]
            subprocess.run(cmd, check=True, env=env)
            if db == "postgres":
                with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
                    conn.execute(f"DROP DATABASE IF EXISTS {PG_DB}")


if __name__ == "__main__":
    main()
