"""Exports asked for over HTTP (API, project page, admin): validated options in, a zip of the export out."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path
from typing import IO

from django.conf import settings
from django.http import FileResponse

from feedback.models import Project

from .options import ExportOptions
from .service import ExportResult, export_preferences


def options_from(values: dict) -> ExportOptions:
    """ExportOptions from ExportRequestSerializer's validated data; raises ValueError on inconsistent options."""
    lists = {key: tuple(values.get(key) or ()) for key in ("models", "sources", "exclude")}
    return ExportOptions(**{**values, **lists})


def export_zip(folder: Path, dest: IO[bytes] | Path, *, top: str) -> None:
    """Zips an export folder (data, card, manifest) under one top-level folder name."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
            archive.write(path, f"{top}/{path.relative_to(folder).as_posix()}")


def export_zip_response(*, project: Project, options: ExportOptions) -> FileResponse:
    """Writes the export under the data directory (kept, so a download can be repeated) and streams it zipped."""
    root = Path(settings.JUROR_DATA_DIR) / "exports" / project.slug
    root.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix=f"{options.kind}-{options.format}-", dir=root))
    result: ExportResult = export_preferences(project=project, options=options, out=out)
    buffer = io.BytesIO()
    export_zip(result.path, buffer, top=f"{project.slug}-{options.kind}")
    buffer.seek(0)
    name = f"{project.slug}-{options.kind}-{options.format}.zip"
    return FileResponse(buffer, as_attachment=True, filename=name, content_type="application/zip")
