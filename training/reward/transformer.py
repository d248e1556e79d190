"""Transformer reward models (modes head, full, lora, qlora): a sequence classifier on the base causal LM, trained
with TRL 1.16's RewardTrainer on pairs we tokenize and truncate ourselves.

What we change in TRL, and why:
- The dataset arrives processed (chosen_ids/rejected_ids) and max_length=None: TRL drops over-length pairs; ours
  are already cut to their last max_length tokens (training.reward.data).
- Sample weights (ties at half weight, agreement weighting) go through the collator into compute_loss.
- For quantised models TRL casts trainable parameters to bf16 (the QLoRA paper's choice); with bf16=False on CPU
  the fp32 activations then meet bf16 weights and the forward crashes, so on CPU we cast them back to fp32.
- The pad token must differ from EOS (SmolLM2 pads with <|im_end|>): the classifier reads the score at the last
  token that is not pad, which with pad == EOS is not the real end of the text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.ml.hf_training import checkpoint_step, fp32_trainable, on_gpu, trainer_kwargs

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

    from training.train_configs import RewardConfig

NEW_PAD = "<|pad|>"
PAD_CANDIDATES = ("<|endoftext|>", "<pad>", "<|pad|>")
"""Existing tokens that chat templates do not emit, tried (in order) before a new token is added: reusing one
keeps the embedding matrix — and so a LoRA base — unchanged."""


def ensure_distinct_pad(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Gives the tokenizer a pad token different from EOS; returns True when a new token was added (the model's
    embeddings must then be resized)."""
    if tokenizer.pad_token is not None and tokenizer.pad_token != tokenizer.eos_token:
        return False
    vocab = tokenizer.get_vocab()
    for candidate in PAD_CANDIDATES:
        if candidate in vocab and candidate not in (tokenizer.eos_token, tokenizer.bos_token):
            tokenizer.pad_token = candidate
            return False
    tokenizer.add_special_tokens({"pad_token": NEW_PAD})
    return True


def _quantization_config():
    import torch
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if on_gpu() else torch.float32
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
    )


def load_classifier(base_path: str | Path, tokenizer: PreTrainedTokenizerBase, *, quantized: bool) -> PreTrainedModel:
    """AutoModelForSequenceClassification (one output) on the causal LM in base_path, fp32 (4-bit NF4 body when
    `quantized`), with the tokenizer's pad token: embeddings resized if the tokenizer grew, config.pad_token_id
    set so the score is read at the last real token."""
    import torch
    from transformers import AutoModelForSequenceClassification
    from trl.trainer.reward_trainer import suppress_seqcls_warning

    from training.ml.loading import _checkpoint_dir

    kwargs: dict[str, Any] = {
        "num_labels": 1,
        "use_safetensors": True,
        "trust_remote_code": False,
        "dtype": torch.float32,
        "device_map": {"": 0} if on_gpu() else "cpu",
    }
    if quantized:
        kwargs["quantization_config"] = _quantization_config()
    with suppress_seqcls_warning():  # score.weight missing and lm_head unexpected are the point of this load
        model = AutoModelForSequenceClassification.from_pretrained(_checkpoint_dir(base_path), **kwargs)
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def lora_config(cfg: RewardConfig):
    from peft import LoraConfig, TaskType

    return LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules="all-linear",
        # The score head is new and random: it must train in full and be saved with the adapter, or a reload gets
        # a fresh random head (random rewards).
        modules_to_save=["score"],
    )


def build_model(cfg: RewardConfig, base_path: str | Path) -> tuple[Any, PreTrainedTokenizerBase]:
    """The model to train for cfg.mode, and its tokenizer (with a distinct pad token)."""
    from transformers import AutoTokenizer, set_seed

    from training.ml.loading import _existing_dir

    set_seed(cfg.trainer.seed)  # the score head is initialised at random
    tokenizer = AutoTokenizer.from_pretrained(_existing_dir(base_path), trust_remote_code=False)
    ensure_distinct_pad(tokenizer)
    model = load_classifier(base_path, tokenizer, quantized=cfg.mode == "qlora")
    if cfg.mode == "head":
        for name, param in model.named_parameters():
            param.requires_grad = name.startswith("score.")
    elif cfg.mode in ("lora", "qlora"):
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(cfg))
        if cfg.mode == "qlora" and not on_gpu():
            _fp32_trainable(model)
    else:
        for param in model.parameters():
            param.requires_grad = True
    # bitsandbytes on CPU repacks 4-bit weights for good after a no-grad forward in eval() mode; a model that will
    # be trained stays in train() mode (dropout is disabled by the trainer).
    model.train()
    return model, tokenizer


_fp32_trainable = fp32_trainable  # undoes RewardTrainer's bf16 cast for quantised models (training.ml.hf_training)


def weighted_trainer_class():
    """RewardTrainer with per-pair weights (imported lazily: TRL is heavy)."""
    import torch
    from trl import RewardTrainer
    from trl.trainer.reward_trainer import DataCollatorForPreference

    class WeightedCollator(DataCollatorForPreference):
        def torch_call(self, examples):
            batch = super().torch_call(examples)
            batch["weight"] = torch.tensor([float(e.get("weight", 1.0)) for e in examples], dtype=torch.float)
            return batch

    class WeightedRewardTrainer(RewardTrainer):
        """RewardTrainer whose loss is mean(weight · −log σ(r_c − r_r − margin)); with all weights 1 it is TRL's."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if getattr(self.model, "is_loaded_in_4bit", False) and not self.args.bf16:
                _fp32_trainable(self.model)  # TRL's __init__ just cast them to bf16

        def _set_signature_columns_if_needed(self):
            if self._signature_columns is None:
                self._signature_columns = ["chosen_ids", "rejected_ids", "margin", "weight"]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            mode = "train" if self.model.training else "eval"
            weight = inputs.pop("weight", None)
            margin = inputs.pop("margin", None)
            outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], use_cache=False)
            chosen, rejected = torch.chunk(outputs.logits.squeeze(-1), chunks=2)
            diff = chosen - rejected
            per_pair = -torch.nn.functional.logsigmoid(diff - margin if margin is not None else diff)
            loss = (per_pair * weight).mean() if weight is not None else per_pair.mean()
            with torch.no_grad():
                self._metrics[mode]["accuracy"].append((diff > 0).float().mean().item())
                self._metrics[mode]["margin"].append(diff.mean().item())
                self._metrics[mode]["mean_reward"].append(outputs.logits.mean().item())
            return (loss, outputs) if return_outputs else loss

    return WeightedRewardTrainer, WeightedCollator


def training_args(cfg: RewardConfig, output_dir: Path):
    from trl import RewardConfig as TRLRewardConfig

    return TRLRewardConfig(
        **trainer_kwargs(cfg.trainer, output_dir=output_dir, learning_rate=cfg.learning_rate),
        max_length=None,  # we truncate (keeping the end) instead of TRL dropping long pairs
        disable_dropout=True,
        remove_unused_columns=True,
        center_rewards_coefficient=None,
    )


@dataclass
class TrainOutcome:
    model: Any
    tokenizer: PreTrainedTokenizerBase
    steps: int
    seconds: float
    seconds_per_step: float | None
    resumed_from: int | None


def train_transformer(
    cfg: RewardConfig,
    *,
    base_path: str | Path,
    rows: list[dict],
    output_dir: Path,
    callbacks: list[TrainerCallback] | None = None,
    resume_from: Path | None = None,
    built: tuple[Any, PreTrainedTokenizerBase] | None = None,
) -> TrainOutcome:
    """Trains the reward model for cfg.mode on tokenized rows (training.reward.data.tokenize_pairs); checkpoints go
    to output_dir, a resumed run continues from `resume_from`. `built` passes a (model, tokenizer) from
    build_model whose rows were tokenized with that tokenizer."""
    from datasets import Dataset

    model, tokenizer = built or build_model(cfg, base_path)
    args = training_args(cfg, output_dir)
    trainer_cls, collator_cls = weighted_trainer_class()
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        data_collator=collator_cls(pad_token_id=tokenizer.pad_token_id),
        callbacks=callbacks or [],
    )
    started = time.perf_counter()
    start_step = checkpoint_step(resume_from) or 0
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    seconds = time.perf_counter() - started
    steps = trainer.state.global_step
    done = steps - start_step
    trained = trainer.model
    trained.eval()
    return TrainOutcome(
        trained, tokenizer, steps, seconds, seconds / done if done > 0 else None, start_step if resume_from else None
    )
