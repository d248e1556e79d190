"""The `sft` kind's child: instruction tuning on the job folder's demonstrations (and, with data.include_chosen,
the chosen answers of preference pairs) with TRL's SFTTrainer, loss on the answer's tokens only.

Reads only files (training.policy.data); ctx.config is a training.train_configs.SftConfig. Rows go to TRL
tokenized, as prompt/completion (completion_mask → completion_only_loss): SmolLM2's chat template has no
`{% generation %}` markers, which assistant_only_loss needs, and TRL would cut long examples from their end.
Checkpoints go through JobCallback into ctx.checkpoint_dir; a resumed attempt continues from the last complete one.
The evaluation reads the saved folder back (training.policy.evaluation).
"""

from __future__ import annotations

import gc
import json
import time
from pathlib import Path

from training.runner import Context, Unrecoverable, write_atomic


def run(ctx: Context) -> dict:
    from datasets import Dataset
    from trl import SFTConfig

    from training.ml.trainer_callback import JobCallback, last_complete_checkpoint
    from training.policy.data import sft_examples, tokenize_sft
    from training.policy.model import load_policy, save_policy
    from training.policy.trainer import SFT_METRICS, policy_inputs, sft_trainer_class, train, training_args

    started = time.perf_counter()
    cfg = ctx.config
    data_dir = Path(ctx.inputs["data"])
    include_chosen = cfg.data.include_chosen
    train_examples, counts = sft_examples(
        data_dir, "train", include_chosen=include_chosen, max_examples=cfg.data.max_examples
    )
    test_examples, test_counts = sft_examples(data_dir, "test", include_chosen=include_chosen)
    ctx.log(f"{counts.rows} training rows → {counts.examples} examples {counts.by_source} ({counts.skipped} skipped)")
    if not train_examples:
        raise Unrecoverable("no training examples: write demonstrations, or set data.include_chosen")
    inputs = policy_inputs(ctx)
    ctx.progress(0, 1, f"loading {inputs.base_name} ({cfg.model.precision}, {cfg.model.method})")
    model, tokenizer, peft_config = load_policy(
        cfg.model, cfg.lora, base_path=inputs.base_path, start_from=inputs.start_from_path, seed=cfg.trainer.seed
    )
    rows, truncated = tokenize_sft(train_examples, tokenizer, cfg.model.max_length)
    test_rows, test_truncated = tokenize_sft(test_examples, tokenizer, cfg.model.max_length)
    ctx.log(f"{truncated} of {len(rows)} examples cut to {cfg.model.max_length} tokens (the prompt's start first)")
    resume = last_complete_checkpoint(ctx.checkpoint_dir)
    if resume is not None:
        ctx.log(f"resuming from {resume.name}")
    ctx.stop_if_asked()
    args = training_args(SFTConfig, cfg, ctx.checkpoint_dir, completion_only_loss=True, packing=False)
    trainer = sft_trainer_class()(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[JobCallback(ctx, metrics=SFT_METRICS)],
    )
    outcome = train(trainer, resume)
    ctx.stop_if_asked()  # SIGTERM: the callback saved a checkpoint and stopped the trainer
    meta = {
        "kind": "sft",
        "method": cfg.model.method,
        "precision": cfg.model.precision,
        "base": inputs.base_name,
        "start_from": inputs.start_from_name,
        "max_length": cfg.model.max_length,
    }
    folder = save_policy(ctx.workdir / "model", outcome.model, tokenizer, meta)
    ctx.artifact("model", folder, "policy")
    del trainer, model, outcome.model
    gc.collect()  # one model in memory at a time: the evaluation reloads the saved folder

    evaluation = evaluate_sft(ctx, folder, inputs, test_rows, batch_size=cfg.trainer.batch_size)
    evaluation["truncated"] = test_truncated
    path = ctx.workdir / "evaluation.json"
    write_atomic(path, json.dumps(evaluation))
    ctx.artifact("evaluation", path, "evaluation")
    ctx.progress(1, 1, "done")
    return {
        "method": cfg.model.method,
        "precision": cfg.model.precision,
        "steps": outcome.steps,
        "seconds_per_step": round(outcome.seconds_per_step, 4) if outcome.seconds_per_step else None,
        "resumed_from_step": outcome.resumed_from,
        "train_examples": counts.examples,
        "test_examples": test_counts.examples,
        "examples_by_source": counts.by_source,
        "skipped": counts.skipped,
        "truncated": truncated,
        "perplexity_before": evaluation["perplexity_before"],
        "perplexity_after": evaluation["perplexity_after"],
        "seconds": round(time.perf_counter() - started, 2),
    }


def evaluate_sft(ctx: Context, folder: Path, inputs, test_rows: list[dict], *, batch_size: int) -> dict:
    """Held-out perplexity of the demonstrated answers under the parent and the saved policy."""
    from training.policy.evaluation import answer_logps, parent_and_policy, perplexity, sft_sequences

    cfg = ctx.config
    sequences = sft_sequences(test_rows)
    ctx.progress(0, 2, f"perplexity of {len(sequences)} held-out answers")
    with parent_and_policy(folder, inputs, method=cfg.model.method, precision=cfg.model.precision) as (parent, policy):
        before = parent(lambda m: answer_logps(m, sequences, batch_size=batch_size)) if sequences else []
        ctx.progress(1, 2, "perplexity after training")
        after = policy(lambda m: answer_logps(m, sequences, batch_size=batch_size)) if sequences else []
    return {
        "kind": "sft",
        "split": "test",
        "n": len(sequences),
        "answer_tokens": sum(s.tokens for s in after),
        "perplexity_before": perplexity(before),
        "perplexity_after": perplexity(after),
    }
