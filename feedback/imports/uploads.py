"""Uploaded files (admin, API) go through the same `data_import` as the command, from a copy stored under the data
directory: imported in the request when small, by an `import` job when large."""

from __future__ import annotations

import errno
import gzip
import lzma
import re
import shutil
import stat
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from feedback.models import Project
from training.configs import STORED_UPLOAD
from training.jobs import job_submit
from training.models import Job

from .errors import ImportFailed, RowError
from .readers import Limits, too_large
from .service import ImportSummary, Progress, data_import, default_limits

IMPORTS_DIR = "imports"
"""Stored uploads live in `<data dir>/imports/<project id>/<token>/`."""
JOB_MARKER = ".job"
"""Names the job that will read the folder; an uploaded file's stored name never starts with a dot."""
ORPHAN_SECONDS = 24 * 3600


@dataclass(frozen=True)
class UploadOutcome:
    summary: ImportSummary | None = None
    """What was imported, when the upload was small enough to import in the request."""
    job: Job | None = None
    """The queued `import` job, for an upload over JUROR_IMPORT_SYNC_MAX_BYTES."""


def upload_import(
    *,
    project: Project,
    upload: UploadedFile,
    fmt: str | None = None,
    skip_invalid: bool = False,
    source: str | None = None,
    user: AbstractBaseUser | None = None,
) -> UploadOutcome:
    """Stores the upload under the data directory; imports it at once when it is small (its size unpacked at most
    JUROR_IMPORT_SYNC_MAX_BYTES), else queues an `import` job for it, so no web request runs for minutes.

    A saved HF dataset is a folder, so it arrives zipped; everything else is imported as the file it is. The
    stored copy of a small upload is removed before this returns; a job's is removed when the job ends."""
    # Control characters (a NUL above all: PostgreSQL stores none) never reach a message or a job's config.
    name = (re.sub(r"[\x00-\x1f\x7f]", "", Path(upload.name or "").name) or "upload")[:200]
    limits = default_limits()
    if upload.size and upload.size > limits.max_bytes:
        raise too_large(name, limits.max_bytes)
    _stored_uploads_sweep(project.pk)
    token = uuid.uuid4().hex
    # The folder is ours (project id, random token), and the client's name only lends its letters to the file's.
    path = stored_upload_path(project.pk, f"{token}/{_safe_name(name)}")
    path.parent.mkdir(parents=True)
    job = None
    try:
        with open(path, "wb") as f:
            written = 0
            for chunk in upload.chunks():
                written += len(chunk)
                if written > limits.max_bytes:
                    raise too_large(name, limits.max_bytes)
                f.write(chunk)
        if _unpacked_size(path, settings.JUROR_IMPORT_SYNC_MAX_BYTES) <= settings.JUROR_IMPORT_SYNC_MAX_BYTES:
            summary = stored_upload_import(
                project=project, path=path, name=name, fmt=fmt, skip_invalid=skip_invalid, source=source, limits=limits
            )
            return UploadOutcome(summary=summary)
        config = {
            "upload": f"{token}/{path.name}",
            "name": name,
            "format": fmt or "auto",
            "source": source or "",
            "skip_invalid": skip_invalid,
        }
        with transaction.atomic():  # no worker sees the job before its folder names it
            queued = job_submit(kind="import", project=project, config=config, user=user)
            (path.parent / JOB_MARKER).write_text(str(queued.pk))
        job = queued
        return UploadOutcome(job=job)
    finally:
        if job is None:
            shutil.rmtree(path.parent, ignore_errors=True)


def stored_upload_path(project_id: int, upload: str) -> Path:
    """Where a stored upload lies: `<data dir>/imports/<project id>/<token>/<file>`. `upload` is the job config's
    "<token>/<file>"; anything that would leave the project's folder is refused."""
    root = (Path(settings.JUROR_DATA_DIR) / IMPORTS_DIR / str(int(project_id))).resolve()
    parts = PurePosixPath(upload).parts
    path = root.joinpath(*parts).resolve() if len(parts) == 2 else root
    if path.parent.parent != root or not STORED_UPLOAD.fullmatch(upload):
        raise ImportFailed([RowError(upload[:200], None, None, "not a stored upload of this project")])
    return path


def stored_upload_import(
    *,
    project: Project,
    path: Path,
    name: str,
    fmt: str | None = None,
    skip_invalid: bool = False,
    source: str | None = None,
    limits: Limits | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ImportSummary:
    """Imports a stored upload (in the request, or in an `import` job's child); a zip is unpacked beside it."""
    limits = limits or default_limits()
    if path.name.lower().endswith(".zip"):
        dest = path.parent / "dataset"
        shutil.rmtree(dest, ignore_errors=True)  # left by an earlier attempt of the same job
        path = _unzip_dataset(path, dest, name, limits.max_bytes)
        fmt = fmt or "hf"
    return data_import(
        project=project,
        path=path,
        fmt=fmt,
        skip_invalid=skip_invalid,
        source=source,
        display_name=name,
        limits=limits,
        progress=progress,
        should_stop=should_stop,
    )


def stored_upload_discard(project_id: int, upload: str) -> None:
    """Removes a stored upload's folder (the file, and a zip's unpacked dataset)."""
    try:
        folder = stored_upload_path(project_id, upload).parent
    except ImportFailed:
        return
    shutil.rmtree(folder, ignore_errors=True)


def _stored_uploads_sweep(project_id: int) -> None:
    """Removes what no job will read: uploads whose job has ended (a job cancelled before any worker took it),
    and folders without a job left by a crash in the middle of an upload."""
    root = Path(settings.JUROR_DATA_DIR) / IMPORTS_DIR / str(int(project_id))
    if not root.is_dir():
        return
    jobs: dict[int, Path] = {}
    for folder in root.iterdir():
        marker = folder / JOB_MARKER
        if folder.is_symlink() or not folder.is_dir():
            continue
        if marker.is_file() and (text := marker.read_text().strip()).isascii() and text.isdigit():
            jobs[int(text)] = folder
        elif time.time() - folder.stat().st_mtime > ORPHAN_SECONDS:
            shutil.rmtree(folder, ignore_errors=True)
    status = dict(Job.objects.filter(pk__in=jobs).values_list("pk", "status"))
    for pk, folder in jobs.items():
        if status.get(pk) in (Job.Status.QUEUED, Job.Status.RUNNING):
            continue
        # No row yet: another upload's transaction has written the marker and not committed its job.
        if pk not in status and time.time() - folder.stat().st_mtime <= ORPHAN_SECONDS:
            continue
        shutil.rmtree(folder, ignore_errors=True)


def _safe_name(name: str) -> str:
    """The client's file name reduced to letters, digits, `.`, `_` and `-`, its extensions kept (they tell the
    format), at most 120 characters."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    if len(cleaned) > 120:
        suffix = "".join(PurePosixPath(cleaned).suffixes[-2:])[-40:]
        cleaned = cleaned[: 120 - len(suffix)] + suffix
    return cleaned or "upload"


def _unpacked_size(path: Path, enough: int) -> int:
    """The upload's size as the import will read it, counted no further than `enough` + 1 bytes: gunzipped, the
    sum of a zip's entries, a Parquet file's uncompressed row groups. A file that cannot be measured counts as
    its own size, and the import in the request then says what is wrong with it."""
    size = path.stat().st_size
    lower = path.name.lower()
    try:
        if lower.endswith(".gz"):
            unpacked = 0
            with gzip.open(path, "rb") as f:
                while unpacked <= enough and (chunk := f.read(1 << 20)):
                    unpacked += len(chunk)
            return max(size, unpacked)
        if lower.endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                return max(size, sum(i.file_size for i in archive.infolist()))
        if lower.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            from .readers import parquet_unpacked_size

            return max(size, parquet_unpacked_size(pq.read_metadata(path)))
    except Exception:  # noqa: BLE001 — damaged or not what its name says: the import names the problem
        return size
    return size


MAX_ZIP_ENTRIES = 10_000
"""A saved dataset is a few files per split; ten thousand is far beyond any real one."""


def _unzip_dataset(path: Path, dest: Path, name: str, max_bytes: int) -> Path:
    """Extracts an uploaded zip into `dest` by hand, entry by entry: names must stay inside, links are refused,
    and the byte limit counts what is actually unpacked (a zip can understate its sizes). A damaged zip (bad
    CRC, cut short, encrypted, an unknown compression) is our own error, never a 500."""

    def refuse(reason: str, entry: str | None = None) -> ImportFailed:
        return ImportFailed([RowError(name, None, entry, reason)])

    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        raise refuse("not a readable zip file") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ZIP_ENTRIES:
            raise refuse(f"the zip holds more than {MAX_ZIP_ENTRIES:,} files")
        if sum(i.file_size for i in infos) > max_bytes:
            raise refuse(f"unzips to more than the import limit of {max_bytes:,} bytes")
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        unpacked = 0
        bad_names = {errno.EEXIST, errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ENOENT, errno.ELOOP}
        unpackable = (
            "a file in the zip cannot be unpacked (its name is too long or too deeply nested, or names both a file "
            "and a folder)"
        )
        for info in infos:
            try:
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise refuse("the zip holds a symbolic link; zip the files themselves", info.filename)
                parts = PurePosixPath(info.filename).parts
                if (
                    not parts
                    or PurePosixPath(info.filename).is_absolute()
                    or ".." in parts
                    or "\\" in info.filename
                    or "\x00" in info.filename
                ):
                    raise refuse("zip entry points outside the archive", info.filename)
                if len(parts) > 64:  # a saved dataset is a few folders deep; pathlib makes folders by recursion
                    raise OSError(errno.ENAMETOOLONG, "nested too deeply")
                target = root.joinpath(*parts)
                if not target.resolve().is_relative_to(root):
                    raise refuse("zip entry points outside the archive", info.filename)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with archive.open(info) as src, open(target, "wb") as out:
                        while chunk := src.read(1 << 20):
                            unpacked += len(chunk)
                            if unpacked > max_bytes:
                                raise refuse(f"unzips to more than the import limit of {max_bytes:,} bytes")
                            out.write(chunk)
                except RuntimeError:  # zipfile's words for an encrypted entry
                    raise refuse("the zip is password-protected", info.filename) from None
                except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, lzma.LZMAError, ValueError):
                    raise refuse("the zip is damaged (a file in it does not unpack, or fails its CRC check)") from None
            except OSError as exc:
                # A name used both as a file and as a folder, too long, or nested too deep for the file system.
                if exc.errno not in bad_names:
                    raise
                entry = info.filename if len(info.filename) <= 200 else info.filename[:200] + "…"
                raise refuse(unpackable, entry) from None
    # save_to_disk folders zipped with their top folder: import from the folder that holds the dataset files.
    for marker in ("dataset_dict.json", "state.json"):
        found = sorted(
            (p for p in dest.rglob(marker) if "__MACOSX" not in p.relative_to(dest).parts),
            key=lambda p: len(p.parts),
        )
        if found:
            return found[0].parent
    raise refuse("the zip holds no saved Hugging Face dataset")
