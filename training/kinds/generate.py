"""The `generate` kind on the database side: which prompts and models go in, which responses come out."""

from __future__ import annotations

import json
from pathlib import Path

from feedback.candidates import Candidate, candidates_add, prompts_select, responses_best_rated
from training.configs import GenerateConfig
from training.models import Job, RegisteredModel
from training.registry import RegistryError, model_get, model_record_parameters, model_spec

from .base import JobError, job_config


def prepare_generate(job: Job, workdir: Path) -> dict:
    config: GenerateConfig = job_config(job)
    prompts = prompts_select(
        project=job.project, which=config.prompts, tag=config.tag, limit=config.limit, seed=config.seed
    )
    if not prompts:
        raise JobError(f"no prompts to answer: the selection prompts={config.prompts} matches none in this project")
    try:
        models = [model_spec(model_get(name)) for name in config.models]
    except RegistryError as exc:
        raise JobError(str(exc)) from None
    examples: list[dict] = []
    if config.template == "few_shot":
        if config.examples:
            examples = [
                {"prompt_id": None, "messages": [{"role": "user", "content": e["prompt"]}], "text": e["response"]}
                for e in config.examples
            ]
        else:
            # One more than k, so a prompt that is itself among the best still gets k others.
            examples = responses_best_rated(project=job.project, limit=config.k + 1)
        if not examples:
            raise JobError(
                "few_shot needs worked examples: the project has no response that won a comparison yet; "
                "give some in the config's `examples`"
            )
    return {"prompts": prompts, "models": models, "examples": examples}


def finish_generate(job: Job, workdir: Path, result: dict) -> dict:
    config: GenerateConfig = job_config(job)
    inputs = json.loads((workdir / "inputs.json").read_text())
    by_name = {m["name"]: m for m in inputs["models"]}
    candidates = []
    with open(workdir / "generations.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if not row["text"].strip():
                continue  # an empty answer is nothing to judge
            spec = by_name[row["model"]]
            generation = {
                "job": job.pk,
                "model": row["model"],
                "adapter": row["model"] if spec["adapter_path"] else None,
                "template": config.template,
                "k": row["shots"],
                "system": config.system,
                "temperature": row["temperature"],
                "top_p": config.top_p,
                "max_new_tokens": config.max_new_tokens,
                "seed": config.seed,
                "sample": row["sample"],
                "precision": result.get("precision"),
                "new_tokens": row["new_tokens"],
            }
            candidates.append(
                Candidate(
                    prompt_id=row["prompt_id"],
                    text=row["text"],
                    reasoning=row["reasoning"],
                    model=row["model"],
                    variant=f"{row['model']}@{row['temperature']}",
                    generation=generation,
                )
            )
    mode = config.comparisons if config.comparisons != "auto" else job.project.comparison_mode
    made = candidates_add(project=job.project, job_id=job.pk, candidates=candidates, comparisons=mode)
    for spec in inputs["models"]:
        count = result.get("parameters", {}).get(spec["name"])
        if count and spec["kind"] == RegisteredModel.Kind.BASE:
            model_record_parameters(spec["name"], count)
    return {**result, **made, "empty": result.get("sequences", 0) - len(candidates)}
