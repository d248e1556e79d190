"""What every transformers/TRL trainer a job runs has in common (reward models, SFT, DPO): the device rules, the
arguments that make checkpoints resumable through JobCallback, and the undoing of TRL's bf16 cast on CPU.

torch and transformers are imported inside the functions so importing this module stays cheap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from training.train_configs import TrainerConfig


def on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def fp32_trainable(model) -> None:
    """Casts trainable parameters to fp32. TRL's trainers cast a quantised model's trainable parameters to bf16 (the
    QLoRA paper's choice); with bf16=False on CPU the fp32 activations then meet bf16 weights and the forward
    crashes, so a CPU run casts them back right after the trainer's __init__."""
    import torch

    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.to(torch.float32)


def trainer_kwargs(trainer: TrainerConfig, *, output_dir: Path, learning_rate: float) -> dict[str, Any]:
    """TrainingArguments fields shared by every job's trainer: the optimiser from the config, a checkpoint every
    trainer.save_steps kept whole for resuming (JobCallback rotates them), fp32 on CPU, logs every step."""
    import torch

    gpu = on_gpu()
    return {
        "output_dir": str(output_dir),
        "per_device_train_batch_size": trainer.batch_size,
        "gradient_accumulation_steps": trainer.gradient_accumulation,
        "num_train_epochs": trainer.epochs,
        "max_steps": trainer.max_steps or -1,
        "learning_rate": learning_rate,
        "weight_decay": trainer.weight_decay,
        "seed": trainer.seed,
        "save_strategy": "steps",
        "save_steps": trainer.save_steps,
        "save_total_limit": None,  # JobCallback removes old checkpoints once the new one is marked complete
        "logging_steps": 1,
        "logging_strategy": "steps",
        "report_to": [],
        "bf16": gpu and torch.cuda.is_bf16_supported(),  # fp32 on CPU: bf16 is emulated there and slower
        "fp16": False,
        "use_cpu": not gpu,
        # Off unless asked: a speed loss at these sizes (TRL defaults it on); on, it trades time for memory.
        "gradient_checkpointing": trainer.gradient_checkpointing,
        "gradient_checkpointing_kwargs": {"use_reentrant": False} if trainer.gradient_checkpointing else None,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,  # the job page shows progress; bars would fill the job log
        "save_only_model": False,  # optimizer and scheduler state, so a resumed run continues exactly
    }


def checkpoint_step(checkpoint: Path | None) -> int | None:
    """The global step a checkpoint folder was saved at (None for no checkpoint)."""
    if checkpoint is None:
        return None
    return json.loads((Path(checkpoint) / "trainer_state.json").read_text()).get("global_step", 0)
