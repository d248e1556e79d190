"""Uploaded files (admin, API) go through the same `data_import` as the command, from a temporary copy."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

from django.core.files.uploadedfile import UploadedFile

from feedback.models import Project

from .errors import ImportFailed, RowError
from .service import ImportSummary, data_import, default_limits


def upload_import(
    *,
    project: Project,
    upload: UploadedFile,
    fmt: str | None = None,
    skip_invalid: bool = False,
    source: str | None = None,
) -> ImportSummary:
    """A saved HF dataset is a folder, so it arrives zipped; everything else is imported as the file it is."""
    name = Path(upload.name or "upload").name
    limits = default_limits()
    if upload.size and upload.size > limits.max_bytes:
        raise ImportFailed(
            [RowError(name, None, None, f"file is larger than the import limit of {limits.max_bytes:,} bytes")]
        )
    with tempfile.TemporaryDirectory(prefix="juror-import-") as tmp:
        path = Path(tmp) / name
        with open(path, "wb") as f:
            for chunk in upload.chunks():
                f.write(chunk)
        if name.lower().endswith(".zip"):
            path = _unzip_dataset(path, Path(tmp) / "dataset", name, limits.max_bytes)
            fmt = fmt or "hf"
        return data_import(
            project=project,
            path=path,
            fmt=fmt,
            skip_invalid=skip_invalid,
            source=source,
            display_name=name,
            limits=limits,
        )


def _unzip_dataset(path: Path, dest: Path, name: str, max_bytes: int) -> Path:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ImportFailed([RowError(name, None, None, "not a readable zip file")]) from None
    with archive:
        if sum(i.file_size for i in archive.infolist()) > max_bytes:
            raise ImportFailed(
                [RowError(name, None, None, f"unzips to more than the import limit of {max_bytes:,} bytes")]
            )
        for info in archive.infolist():
            target = (dest / info.filename).resolve()
            if not target.is_relative_to(dest.resolve()):
                raise ImportFailed([RowError(name, None, info.filename, "zip entry points outside the archive")])
        archive.extractall(dest)
    # save_to_disk folders zipped with their top folder: import from the folder that holds the dataset files.
    for marker in ("dataset_dict.json", "state.json"):
        found = sorted(dest.rglob(marker), key=lambda p: len(p.parts))
        if found:
            return found[0].parent
    raise ImportFailed([RowError(name, None, None, "the zip holds no saved Hugging Face dataset")])
