"""The `export` kind's child: the preference dataset written by a worker, for projects too large for a download.

Unlike the ML tasks it sets Django up, because the rows it streams come straight from the database; the
import happens here, after setup, which is why this module imports nothing of Django at the top.
"""

from __future__ import annotations

import json

from training.runner import Context


def run(ctx: Context) -> dict:
    import django

    django.setup()
    from django.conf import settings

    from feedback.exports.requests import export_zip
    from feedback.exports.service import export_preferences
    from feedback.models import Project
    from training.configs import config_from

    settings.JUROR_DATA_DIR = ctx.data_dir
    options = config_from("export", ctx.config)
    project = Project.objects.get(slug=ctx.inputs["project"])
    out = ctx.workdir / "export"
    if (out / "manifest.json").exists():  # an earlier attempt finished writing: the folder is complete
        ctx.log(f"export already written to {out}")
        rows = json.loads((out / "manifest.json").read_text())["rows"]
    else:
        ctx.progress(0, 1, f"exporting {options.kind} as {options.format}")
        result = export_preferences(project=project, options=options, out=out)
        rows = result.rows
    ctx.artifact(f"{options.kind}-{options.format}", out, "export")
    # The zip is what people download from the job page; writing it here keeps big zips out of web requests.
    archive = ctx.workdir / f"{project.slug}-{options.kind}-{options.format}.zip"
    if not archive.exists():
        partial = archive.with_name(archive.name + ".partial")
        export_zip(out, partial, top=f"{project.slug}-{options.kind}")
        partial.rename(archive)
    ctx.artifact(archive.name, archive, "export-zip")
    ctx.progress(1, 1, f"{sum(rows.values())} rows")
    return {"rows": rows, "path": str(out.relative_to(ctx.data_dir))}
