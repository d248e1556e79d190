"""Runs a bench as a person would (`python bench/<name>.py …`, a separate process) and reads what it prints."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]


def load_bench(name: str):
    """bench/<name>.py as a module, without putting bench/ on sys.path for the whole test session."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench_command(name: str, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / "bench" / f"{name}.py"), *args]


def run_bench(name: str, *args: str, timeout: float = 300, **env: str) -> list[dict]:
    """The bench's stdout as JSON objects, one a line; fails the test if it exits non-zero or prints anything
    else on stdout (progress and warnings belong on stderr)."""
    done = subprocess.run(  # noqa: S603 — this interpreter and a bench of this repository
        bench_command(name, *args),
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stderr[-6000:]}"
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert lines, f"{name} printed nothing:\n{done.stderr[-6000:]}"
    figures = []
    for line in lines:
        try:
            figures.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise AssertionError(f"{name} printed a line that is not JSON: {line!r}") from exc
    assert all(isinstance(f, dict) for f in figures), figures
    return figures


def postgres_url(name: str) -> str:
    """A database called `name` on the PostgreSQL server the tests run against (DATABASE_URL)."""
    return urlunsplit(urlsplit(os.environ["DATABASE_URL"])._replace(path="/" + name))


def postgres_database_exists(url: str) -> bool:
    import psycopg

    parts = urlsplit(url)
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [parts.path.lstrip("/")]).fetchone()
    return found is not None


def postgres_count(url: str, table: str) -> int:
    """Rows in `table` of the database at `url`; 0 while the database or the table does not exist yet."""
    import psycopg
    from psycopg import sql

    try:
        with psycopg.connect(url, autocommit=True) as conn:
            return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]
    except psycopg.Error:
        return 0


def descendants(pid: int) -> set[int]:
    """Every process started, directly or not, by `pid`."""
    table = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True, check=True).stdout
    children: dict[int, list[int]] = {}
    for row in table.splitlines():
        child, parent = map(int, row.split())
        children.setdefault(parent, []).append(child)
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
