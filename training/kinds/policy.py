"""The policy kinds on the database side: `sft` and `dpo` (train a policy, evaluate it, register it) and `merge`
(fold a registered LoRA adapter into its base and register the standalone model).

prepare() checks every model and name the job will need before any training starts (a mistake found after an
hour of training costs the hour), writes the dataset files (training.kinds.dataset) and returns inputs.json:
{"data", "dataset_sha256", "base": model spec, "start_from": model spec or None, "project", "name"}. The
children (training.tasks.sft, dpo, merge) read only those files; finish() registers what they wrote in
workdir/model with its provenance, inside the transaction that marks the job succeeded.
"""

from __future__ import annotations

import json
from pathlib import Path

from training.models import Job, RegisteredModel
from training.registry import SLUG, RegistryError, model_get, model_register_trained, model_spec

from .base import JobError, job_config
from .dataset import dataset_prepare, demonstrations_prepare

MAX_LINEAGE = 32
"""How far up a model's ancestry the provenance follows (a guard: a registry edited by hand could loop)."""


def _registered(name: str, setting: str) -> RegisteredModel:
    try:
        return model_get(name)
    except RegistryError as exc:
        raise JobError(f"{setting}: {exc}") from None


def _spec(model: RegisteredModel) -> dict:
    """model_spec, its RegistryError (a path outside the data directory) a JobError: no attempt can fix it."""
    try:
        return model_spec(model)
    except RegistryError as exc:
        raise JobError(str(exc)) from None


def _kind_name(model: RegisteredModel) -> str:
    return model.get_kind_display().lower()


def _free_name(name: str) -> str:
    """The trained model's name, checked before training, not only at registration: minutes (or hours) of
    training for a name that is taken or unusable would be lost."""
    if not SLUG.fullmatch(name) or len(name) > 100:
        raise JobError(f"{name!r} is not a usable model name: letters, digits, - and _ only, at most 100 characters")
    if RegisteredModel.objects.filter(name=name).exists():
        raise JobError(f"a model called {name!r} is already registered; give the job another name")
    return name


def policy_base(name: str) -> RegisteredModel:
    """model.base: a registered base model. An adapter or a reward model there gets a message saying what to
    name instead."""
    model = _registered(name, "model.base")
    if model.kind == RegisteredModel.Kind.ADAPTER:
        raise JobError(
            f"model.base: {name} is a LoRA adapter, not a base model; set model.base={model.parent.name} "
            f"(its base) and model.start_from={name} to continue training it"
        )
    if model.kind != RegisteredModel.Kind.BASE:
        raise JobError(
            f"model.base: {name} is a {_kind_name(model)}, which scores answers but cannot write them; a policy is "
            "trained from a base model (a causal LM, e.g. smollm2-135m-instruct)"
        )
    return model


def policy_start(name: str, base: RegisteredModel) -> RegisteredModel | None:
    """model.start_from: empty, or a registered adapter whose parent is model.base (its weights only fit that
    base)."""
    if not name:
        return None
    model = _registered(name, "model.start_from")
    if model.kind != RegisteredModel.Kind.ADAPTER:
        hint = f"; to train it further, set model.base={name}" if model.kind == RegisteredModel.Kind.BASE else ""
        raise JobError(f"model.start_from: {name} is a {_kind_name(model)}, not a LoRA adapter{hint}")
    if model.parent_id != base.pk:
        raise JobError(
            f"model.start_from: {name} is an adapter of {model.parent.name}, not of model.base={base.name}; "
            f"set model.base={model.parent.name}"
        )
    return model


def lineage(model: RegisteredModel) -> list[str]:
    """The model's ancestry, itself first: an adapter's base, and for a base that a job made from another model
    (a merge, a full fine-tune) the ancestry that job recorded in its config's `origin`."""
    names: list[str] = []
    current: RegisteredModel | None = model
    while current is not None and len(names) < MAX_LINEAGE:
        names.append(current.name)
        if current.parent_id:
            current = current.parent
            continue
        origin = current.config.get("origin") if isinstance(current.config, dict) else None
        recorded = origin.get("lineage") if isinstance(origin, dict) else None
        if isinstance(recorded, list):
            names.extend(str(n) for n in recorded[1 : MAX_LINEAGE - len(names) + 1])
        break
    return names


def _inputs(workdir: Path) -> dict:
    return json.loads((Path(workdir) / "inputs.json").read_text(encoding="utf-8"))


def _evaluation(workdir: Path) -> dict:
    path = Path(workdir) / "evaluation.json"
    if not path.exists():
        raise JobError("the job wrote no evaluation.json; see its log")
    return json.loads(path.read_text(encoding="utf-8"))


def _register(**kwargs) -> RegisteredModel:
    try:
        return model_register_trained(**kwargs)
    except RegistryError as exc:
        raise JobError(f"the model was made but could not be registered: {exc}") from None


# ---- sft, dpo -------------------------------------------------------------------------------------------


def policy_name(job: Job, config) -> str:
    """The registry name the trained policy will get: the config's, or <project>-<kind>-<job id>."""
    return config.name or f"{job.project.slug}-{job.kind}-{job.pk}"


def _policy_models(job: Job, config) -> dict:
    name = _free_name(policy_name(job, config))
    base = policy_base(config.model.base)
    start = policy_start(config.model.start_from, base)
    return {
        "base": _spec(base),
        "start_from": _spec(start) if start else None,
        "project": job.project.slug,
        "name": name,
    }


def prepare_sft(job: Job, workdir: Path) -> dict:
    """Checks the models and the name, then writes data/demonstrations (and data/pairs with
    data.include_chosen)."""
    config = job_config(job)
    models = _policy_models(job, config)
    return {**demonstrations_prepare(job, workdir, config.data), **models}


def prepare_dpo(job: Job, workdir: Path) -> dict:
    """Checks the models and the name, then writes data/pairs (with labels and annotators, as a reward job)."""
    config = job_config(job)
    models = _policy_models(job, config)
    return {**dataset_prepare(job, workdir, config.data, need="train"), **models}


def finish_sft(job: Job, workdir: Path, result: dict) -> dict:
    return _finish_policy(job, workdir, result)


def finish_dpo(job: Job, workdir: Path, result: dict) -> dict:
    return _finish_policy(job, workdir, result)


def _finish_policy(job: Job, workdir: Path, result: dict) -> dict:
    """Registers workdir/model: method=lora as an adapter whose parent is the base (quantisation nf4 when it was
    trained on the 4-bit base); method=full as a new base model whose config records where it came from."""
    config = job_config(job)
    inputs = _inputs(workdir)
    evaluation = _evaluation(workdir)
    base = _registered(inputs["base"]["name"], "model.base")
    common = {
        "name": inputs["name"],
        "folder": Path(workdir) / "model",
        "job": job,
        "metrics": {**result, "evaluation": evaluation},
        "dataset_sha256": inputs["dataset_sha256"],
    }
    if config.model.method == "lora":
        model = _register(
            **common,
            kind=RegisteredModel.Kind.ADAPTER,
            parent=base,
            config=job.config,
            quantisation="nf4" if config.model.precision == "nf4" else "",
        )
    else:
        # A full fine-tune holds every weight itself: a base with no registry parent (nothing to load it onto),
        # whose origin is kept with its config.
        origin = {"kind": job.kind, "base": base.name, "lineage": [inputs["name"], *lineage(base)]}
        model = _register(
            **common, kind=RegisteredModel.Kind.BASE, parent=None, config={**job.config, "origin": origin}
        )
    return {**result, "model": model.name}


# ---- merge ----------------------------------------------------------------------------------------------


def merge_name(config) -> str:
    return config.name or f"{config.adapter}-merged"


def prepare_merge(job: Job, workdir: Path) -> dict:
    """Checks that the adapter is one (with its base registered) and that the merged model's name is free."""
    config = job_config(job)
    adapter = _registered(config.adapter, "adapter")
    if adapter.kind != RegisteredModel.Kind.ADAPTER:
        raise JobError(
            f"adapter: {adapter.name} is a {_kind_name(adapter)}, not a LoRA adapter; only an adapter can be merged "
            "into its base"
        )
    name = _free_name(merge_name(config))
    return {
        "data": None,
        "dataset_sha256": adapter.dataset_sha256 or "",
        "base": _spec(adapter.parent),
        "adapter": _spec(adapter),
        "project": job.project.slug,
        "name": name,
        "lineage": [name, *lineage(adapter)],
    }


def finish_merge(job: Job, workdir: Path, result: dict) -> dict:
    """Registers the merged folder as a base model (it loads alone); its config records the adapter, its base and
    their ancestry, and it keeps the adapter's dataset hash (the merged weights learned from that data)."""
    inputs = _inputs(workdir)
    adapter = inputs["adapter"]["name"]
    origin = {"kind": "merge", "adapter": adapter, "base": inputs["base"]["name"], "lineage": inputs["lineage"]}
    model = _register(
        name=inputs["name"],
        folder=Path(workdir) / "model",
        kind=RegisteredModel.Kind.BASE,
        parent=None,
        job=job,
        config={**job.config, "origin": origin},
        metrics=result,
        dataset_sha256=inputs["dataset_sha256"] or "",
    )
    return {**result, "model": model.name}
