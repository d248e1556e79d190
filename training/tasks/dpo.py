"""The `dpo` kind's child: direct preference optimisation on the job folder's preference pairs with TRL's
DPOTrainer.

Reads only files (training.policy.data); ctx.config is a training.train_configs.DpoConfig. The reference model:
- method=lora: none is loaded (ref_model=None). TRL 1.16 computes the reference log-probs with the adapter
  switched off — the same (4-bit) base, no second copy — or, continuing a start_from adapter, with a frozen copy
  of that adapter ("ref", a few MB), so the reference is the policy DPO started from.
- method=full: TRL loads a second full copy of the base as the reference; unavoidable (the base's weights are the
  ones that change), and the reason LoRA is the default.
Rows go to TRL tokenized and cut to fit (TRL would cut each sequence from its end). Checkpoints through
JobCallback; the evaluation reads the saved folder back (training.policy.evaluation).
"""

from __future__ import annotations

import gc
import json
import time
from pathlib import Path

from training.runner import Context, Unrecoverable, write_atomic


def run(ctx: Context) -> dict:
    from datasets import Dataset
    from trl import DPOConfig

    from training.ml.trainer_callback import JobCallback, last_complete_checkpoint
    from training.policy.data import preferences, tokenize_preferences
    from training.policy.model import load_policy, save_policy
    from training.policy.trainer import DPO_METRICS, dpo_trainer_class, policy_inputs, train, training_args

    started = time.perf_counter()
    cfg = ctx.config
    data_dir = Path(ctx.inputs["data"])
    pairs, counts = preferences(data_dir, "train", max_pairs=cfg.data.max_pairs)
    test_pairs, test_counts = preferences(data_dir, "test")
    ctx.log(f"{counts.rows} training rows → {counts.examples} pairs ({counts.skipped} without a preference skipped)")
    if not pairs:
        raise Unrecoverable("no training pairs: the filters left none (see data.* in the config)")
    inputs = policy_inputs(ctx)
    ctx.progress(0, 1, f"loading {inputs.base_name} ({cfg.model.precision}, {cfg.model.method})")
    model, tokenizer, peft_config = load_policy(
        cfg.model, cfg.lora, base_path=inputs.base_path, start_from=inputs.start_from_path, seed=cfg.trainer.seed
    )
    rows, truncated = tokenize_preferences(pairs, tokenizer, cfg.model.max_length)
    test_rows, test_truncated = tokenize_preferences(test_pairs, tokenizer, cfg.model.max_length)
    ctx.log(f"{truncated} of {len(rows)} pairs cut to {cfg.model.max_length} tokens (the prompt's start first)")
    resume = last_complete_checkpoint(ctx.checkpoint_dir)
    if resume is not None:
        ctx.log(f"resuming from {resume.name}")
    ctx.stop_if_asked()
    args = training_args(
        DPOConfig,
        cfg,
        ctx.checkpoint_dir,
        beta=cfg.beta,
        loss_type=[cfg.loss_type],
        disable_dropout=True,
        precompute_ref_log_probs=False,
    )
    trainer = dpo_trainer_class()(
        model=model,
        ref_model=None,  # LoRA: the adapter switched off; full: TRL loads the copy it needs
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[JobCallback(ctx, metrics=DPO_METRICS)],
    )
    reference = "a full copy of the base" if trainer.ref_model is not None else "the adapter switched off"
    if trainer.ref_model is None and "ref" in getattr(trainer.model, "peft_config", {}):
        reference = f"a frozen copy of {inputs.start_from_name}"
    ctx.log(f"reference model: {reference}")
    outcome = train(trainer, resume)
    ctx.stop_if_asked()  # SIGTERM: the callback saved a checkpoint and stopped the trainer
    meta = {
        "kind": "dpo",
        "method": cfg.model.method,
        "precision": cfg.model.precision,
        "base": inputs.base_name,
        "start_from": inputs.start_from_name,
        "max_length": cfg.model.max_length,
        "beta": cfg.beta,
        "loss_type": cfg.loss_type,
    }
    folder = save_policy(ctx.workdir / "model", outcome.model, tokenizer, meta)
    ctx.artifact("model", folder, "policy")
    del trainer, model, outcome.model
    gc.collect()  # the reference copy (full) and the trained model go before the evaluation reloads

    evaluation = evaluate_dpo(ctx, folder, inputs, test_rows, batch_size=cfg.trainer.batch_size)
    evaluation["truncated"] = test_truncated
    path = ctx.workdir / "evaluation.json"
    write_atomic(path, json.dumps(evaluation))
    ctx.artifact("evaluation", path, "evaluation")
    ctx.progress(1, 1, "done")
    return {
        "method": cfg.model.method,
        "precision": cfg.model.precision,
        "reference": reference,
        "steps": outcome.steps,
        "seconds_per_step": round(outcome.seconds_per_step, 4) if outcome.seconds_per_step else None,
        "resumed_from_step": outcome.resumed_from,
        "train_examples": counts.examples,
        "test_examples": test_counts.examples,
        "skipped": counts.skipped,
        "truncated": truncated,
        "perplexity_before": evaluation["perplexity_before"],
        "perplexity_after": evaluation["perplexity_after"],
        "reward_accuracy": evaluation["reward_accuracy"],
        "reward_margin": evaluation["reward_margin"],
        "seconds": round(time.perf_counter() - started, 2),
    }


def evaluate_dpo(ctx: Context, folder: Path, inputs, test_rows: list[dict], *, batch_size: int) -> dict:
    """Held-out perplexity of the chosen answers under the parent and the saved policy, and the implicit reward's
    accuracy and mean margin (the parent is DPO's reference)."""
    from training.policy.evaluation import (
        answer_logps,
        implicit_rewards,
        parent_and_policy,
        perplexity,
        preference_sequences,
    )

    cfg = ctx.config
    chosen, rejected = preference_sequences(test_rows)
    n = len(chosen)

    def score(model):
        both = answer_logps(model, chosen + rejected, batch_size=batch_size)
        return both[:n], both[n:]

    ctx.progress(0, 2, f"scoring {n} held-out pairs")
    with parent_and_policy(folder, inputs, method=cfg.model.method, precision=cfg.model.precision) as (parent, policy):
        ref_c, ref_r = parent(score) if n else ([], [])
        ctx.progress(1, 2, "scoring with the trained policy")
        pol_c, pol_r = policy(score) if n else ([], [])
    rewards = implicit_rewards(pol_c, pol_r, ref_c, ref_r, beta=cfg.beta)
    return {
        "kind": "dpo",
        "split": "test",
        "n": n,
        "answer_tokens": sum(s.tokens for s in pol_c),
        "perplexity_before": perplexity(ref_c),
        "perplexity_after": perplexity(pol_c),
        "reward_accuracy": rewards["accuracy"],
        "reward_margin": rewards["margin"],
        "beta": cfg.beta,
    }
