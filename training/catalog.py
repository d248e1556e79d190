"""Every job kind, one record each: its config, help text, child entry point and database-side hooks.

Adding a kind is one `KindSpec` in `KINDS` (plus the modules it names). The worker, the runner, the /jobs/new
form, the API, the admin and `submit_job` all read this table, so nothing else has to agree with it.

This module stays importable without Django: the child process (training.runner) reads `entry` from it. The
Django-side callables are therefore named as "module:function" strings, imported only when `resolve` is asked
for them (on the worker).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from feedback.exports.options import ExportOptions

from .configs import GenerateConfig, ImportConfig, NoopConfig
from .train_configs import DpoConfig, MergeConfig, RewardConfig, RewardEvalConfig, ScoreConfig, SftConfig

NOTHING_TO_PREPARE = "training.kinds.base:nothing_to_prepare"
RESULT_AS_IS = "training.kinds.base:result_as_is"


@dataclass(frozen=True)
class KindSpec:
    """What a job kind is, on both sides of the child process."""

    name: str
    """The kind's name, as stored on the job (`Job.kind`) and typed after `submit_job`."""
    config: type
    """The config dataclass: every field documented, validated in `__post_init__`; nested dataclasses are groups."""
    help: str
    """One line for the kind picker of the form and for docs."""
    entry: str
    """`module:function` the child runs with a `training.runner.Context`; Django-free (the runner's allowlist)."""
    prepare: str = NOTHING_TO_PREPARE
    """`module:function` `(job, workdir) -> dict` on the worker (Django side), once per job: its result is the
    child's `ctx.inputs`; files it writes into `workdir` are the child's data."""
    finish: str = RESULT_AS_IS
    """`module:function` `(job, workdir, result) -> dict`: writes what the child made into the database, in the
    transaction that marks the job succeeded; its return value is the job's result."""
    ended: str | None = None
    """`module:function` `(job) -> None` called once the job has ended on a worker (succeeded, failed or
    cancelled), e.g. to remove its inputs."""
    distributed: bool = False
    """Starts through `accelerate launch` when the worker has several GPUs."""
    long_transaction: bool = False
    """The child writes in one long transaction. On SQLite that holds the only write lock, so the worker's
    heartbeats wait for its own child: the worker keeps it running instead of giving up on it. Only for
    idempotent kinds."""
    submittable: bool = True
    """Started by a person naming a config (form, API, admin, submit_job). An import job starts from its upload
    (feedback.imports.uploads), which alone knows the stored file; naming another job's upload would let one job
    delete what the other still has to read."""


KINDS: dict[str, KindSpec] = {
    spec.name: spec
    for spec in (
        KindSpec(
            name="generate",
            config=GenerateConfig,
            help="Generate candidate responses with models from the registry and make comparisons of them.",
            entry="training.tasks.generate:run",
            prepare="training.kinds.generate:prepare_generate",
            finish="training.kinds.generate:finish_generate",
        ),
        KindSpec(
            name="reward",
            config=RewardConfig,
            help="Train a reward model on the project's preferences, evaluate it on held-out prompts, register it.",
            entry="training.tasks.reward:run",
            prepare="training.kinds.reward:prepare_reward",
            finish="training.kinds.reward:finish_reward",
        ),
        KindSpec(
            name="reward_eval",
            config=RewardEvalConfig,
            help="Evaluate registered reward models on this project's preferences (and where they disagree).",
            entry="training.tasks.reward_eval:run",
            prepare="training.kinds.reward:prepare_reward_eval",
            finish="training.kinds.reward:finish_reward_eval",
        ),
        KindSpec(
            name="score",
            config=ScoreConfig,
            help="Score responses with a reward model; optionally serve the pairs it is least sure of first.",
            entry="training.tasks.score:run",
            prepare="training.kinds.reward:prepare_score",
            finish="training.kinds.reward:finish_score",
        ),
        KindSpec(
            name="sft",
            config=SftConfig,
            help="Instruction-tune a policy on the project's demonstrations (LoRA on a 4-bit base by default).",
            entry="training.tasks.sft:run",
            prepare="training.kinds.policy:prepare_sft",
            finish="training.kinds.policy:finish_sft",
        ),
        KindSpec(
            name="dpo",
            config=DpoConfig,
            help="Align a policy to the project's preferences with DPO, evaluate it and register its adapter.",
            entry="training.tasks.dpo:run",
            prepare="training.kinds.policy:prepare_dpo",
            finish="training.kinds.policy:finish_dpo",
        ),
        KindSpec(
            name="merge",
            config=MergeConfig,
            help="Merge a LoRA adapter into its base and register the standalone model (plain transformers loads it).",
            entry="training.tasks.merge:run",
            prepare="training.kinds.policy:prepare_merge",
            finish="training.kinds.policy:finish_merge",
        ),
        KindSpec(
            name="export",
            config=ExportOptions,
            help="Write the preference dataset to the data directory (for projects too large for a download).",
            entry="training.tasks.export:run",
            prepare="training.kinds.export:prepare_export",
        ),
        KindSpec(
            name="import",
            config=ImportConfig,
            help="Import a large upload (queued by the project's import page and the API, not started here).",
            entry="training.tasks.imports:run",
            prepare="training.kinds.imports:prepare_import",
            ended="training.kinds.imports:end_import",
            long_transaction=True,
            submittable=False,
        ),
        KindSpec(
            name="noop",
            config=NoopConfig,
            help="Check the workers: count to N with a checkpoint per step.",
            entry="training.tasks.noop:run",
        ),
    )
}


def kind_get(name: str) -> KindSpec:
    """The kind's record; KeyError naming the known kinds for a name that is none of them."""
    try:
        return KINDS[name]
    except KeyError:
        raise KeyError(f"unknown job kind {name!r}; choose one of {', '.join(KINDS)}") from None


def submittable_kinds() -> list[str]:
    """Kinds a person starts by naming a config, in the catalog's order (the form's order)."""
    return [name for name, spec in KINDS.items() if spec.submittable]


@cache
def resolve(dotted: str) -> Callable[..., Any]:
    """The function a "module:function" string names, imported on first use (Django-side modules import
    Django models, which the child must never load)."""
    module, sep, name = dotted.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"{dotted!r} is not module:function")
    target = getattr(importlib.import_module(module), name)
    if not callable(target):
        raise TypeError(f"{dotted} is not callable")
    return target
