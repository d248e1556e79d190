"""What the sft and dpo children share around TRL's trainers: the job's inputs resolved to folders, the trainer
classes adjusted for processed rows and CPU QLoRA, the training run with resume, and the metrics' names."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.ml.hf_training import checkpoint_step, fp32_trainable, trainer_kwargs
from training.ml.trainer_callback import DEFAULT_METRICS
from training.runner import Unrecoverable

if TYPE_CHECKING:
    from training.runner import Context

SFT_METRICS: Mapping[str, str] = {**DEFAULT_METRICS, "mean_token_accuracy": "token_accuracy", "entropy": "entropy"}
DPO_METRICS: Mapping[str, str] = {
    **DEFAULT_METRICS,  # rewards/accuracies → accuracy, rewards/margins → margin
    "rewards/chosen": "reward_chosen",
    "rewards/rejected": "reward_rejected",
}


@dataclass(frozen=True)
class PolicyInputs:
    """The job's models as folders on this machine."""

    base_name: str
    base_path: Path
    start_from_name: str | None
    start_from_path: Path | None


def policy_inputs(ctx: Context) -> PolicyInputs:
    """The base (converting SmolLM2's GGUF once, like the generate kind) and the adapter to continue, if any."""
    from training.tasks.generate import _ensure_checkpoint

    base = ctx.inputs.get("base")
    if not base:
        raise Unrecoverable("a policy job needs a base model (model.base)")
    if base.get("adapter_path"):
        raise Unrecoverable(f"{base['name']} is a base with an adapter: register the merged model as the base")
    _ensure_checkpoint(ctx, base)
    start = ctx.inputs.get("start_from")
    start_path = None
    if start:
        if not start.get("adapter_path"):
            raise Unrecoverable(f"model.start_from={start['name']} is not an adapter")
        if Path(start["base_path"]).resolve() != Path(base["base_path"]).resolve():
            raise Unrecoverable(f"model.start_from={start['name']} is an adapter of another base than {base['name']}")
        start_path = Path(start["adapter_path"])
    return PolicyInputs(base["name"], Path(base["base_path"]), start["name"] if start else None, start_path)


def training_args(config_cls, cfg, output_dir: Path, **extra):
    """TRL's config class (SFTConfig, DPOConfig) with the shared settings (training.ml.hf_training) and `extra`."""
    return config_cls(
        **trainer_kwargs(cfg.trainer, output_dir=output_dir, learning_rate=cfg.learning_rate),
        max_length=None,  # rows arrive tokenized and cut to fit (training.policy.data)
        **extra,
    )


def _keep_fp32_on_cpu(trainer) -> None:
    if (getattr(trainer.model, "is_loaded_in_4bit", False) or getattr(trainer.model, "is_loaded_in_8bit", False)) and (
        not trainer.args.bf16
    ):
        fp32_trainable(trainer.model)  # TRL's __init__ just cast the adapters to bf16


def sft_trainer_class():
    """TRL's SFTTrainer with trainable weights kept in fp32 on CPU (imported lazily: TRL is heavy)."""
    from trl import SFTTrainer

    class PolicySFTTrainer(SFTTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            _keep_fp32_on_cpu(self)

    return PolicySFTTrainer


def dpo_trainer_class():
    """TRL's DPOTrainer taking processed rows (prompt_ids, chosen_ids, rejected_ids: TRL 1.16 always tokenizes
    text itself) and keeping trainable weights in fp32 on CPU."""
    from trl import DPOTrainer

    class PolicyDPOTrainer(DPOTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            _keep_fp32_on_cpu(self)

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            if "prompt_ids" in dataset.column_names:
                return dataset
            return super()._prepare_dataset(dataset, processing_class, args, dataset_name)

    return PolicyDPOTrainer


@dataclass
class TrainOutcome:
    model: Any
    steps: int
    seconds: float
    seconds_per_step: float | None
    resumed_from: int | None


def train(trainer, resume_from: Path | None) -> TrainOutcome:
    """Runs the trainer (from `resume_from`, a complete checkpoint, when given) and times the steps it ran."""
    start_step = checkpoint_step(resume_from) or 0
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    seconds = time.perf_counter() - started
    steps = trainer.state.global_step
    done = steps - start_step
    return TrainOutcome(
        trainer.model, steps, seconds, seconds / done if done > 0 else None, start_step if resume_from else None
    )
