"""The `reward` kind's child: trains a reward model on the job folder's exported pairs, saves it, evaluates it.

Reads only files (training.reward.files); ctx.config is a training.train_configs.RewardConfig. Transformer modes
checkpoint through JobCallback into ctx.checkpoint_dir and a resumed attempt continues from the last complete
checkpoint; features mode takes seconds and resumes through its embedding cache instead.
The evaluation scores the held-out split with the model as reloaded from its saved folder, so the figures are
those of the artifact the registry keeps, not of an in-memory model that might differ from it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from training.reward.data import PairCounts, pairs_from_rows, prompt_messages
from training.reward.files import load_annotators, load_labels, load_pairs, text_of
from training.runner import Context, Unrecoverable, write_atomic


def _ensure_base(ctx: Context, spec: dict) -> Path:
    """The base model's folder, converting SmolLM2's GGUF once (like the generate kind)."""
    from training.tasks.generate import _ensure_checkpoint

    _ensure_checkpoint(ctx, spec)
    return Path(spec["base_path"])


def _counts_log(ctx: Context, counts: PairCounts) -> None:
    ctx.log(
        f"{counts.rows} training rows → {counts.pairs} pairs (ties: {counts.ties_excluded} left out, "
        f"{counts.ties_as_equal} as equal)"
    )


def _train_features(ctx: Context, pairs, base: dict | None, counts: PairCounts) -> tuple[Path, object, dict]:
    import numpy as np

    from training.reward.artifact import load_reward_model, save_features
    from training.reward.features import DEFAULT_L2, EmbeddingCache, embed_texts, fit_pairs, make_encoder

    cfg = ctx.config
    base_path = None
    if cfg.model.encoder == "lm":
        if base is None:
            raise Unrecoverable("encoder=lm needs a base model (model.base)")
        if base.get("adapter_path"):
            raise Unrecoverable("encoder=lm needs a base without an adapter: register the merged model")
        base_path = _ensure_base(ctx, base)
    ctx.progress(0, 1, f"loading the {cfg.model.encoder} encoder")
    encoder = make_encoder(
        cfg.model.encoder, max_length=cfg.model.max_length, base_path=base_path, base_name=base["name"] if base else ""
    )
    ctx.stop_if_asked()
    cache_dir = ctx.data_dir / "cache" / "embeddings"
    cache = EmbeddingCache(cache_dir, encoder.id)
    prompts = [p.prompt for p in pairs]
    texts = encoder.texts(prompts + prompts, [p.chosen for p in pairs] + [p.rejected for p in pairs])
    n = len(pairs)
    counts.truncated = sum(encoder.cut[i] or encoder.cut[n + i] for i in range(n))
    ctx.log(f"{counts.truncated} of {n} pairs cut at the start to fit the encoder; none dropped")
    emb, stats = embed_texts(
        encoder, texts, cache=cache, progress=lambda done, total: ctx.progress(done, total, f"embedding {done}/{total}")
    )
    ctx.log(f"embedded {stats.embedded} new texts of {stats.texts} in {stats.seconds:.1f}s ({encoder.id})")
    ctx.metric(1, embedded=stats.embedded, embed_seconds=stats.seconds)
    ctx.stop_if_asked()
    chosen, rejected = emb[: len(pairs)], emb[len(pairs) :]
    l2 = cfg.trainer.weight_decay or DEFAULT_L2
    ctx.progress(0, 1 + cfg.ensemble, "fitting the classifier")
    fit = fit_pairs(
        chosen,
        rejected,
        pairs,
        l2=l2,
        ensemble=cfg.ensemble,
        seed=cfg.trainer.seed,
        on_member=lambda k, n: ctx.progress(1 + k, 1 + n, f"ensemble member {k}/{n}"),
    )
    ctx.metric(2, loss=fit.train_loss, accuracy=fit.train_accuracy, iterations=fit.iterations)
    folder = save_features(
        ctx.workdir / "model",
        fit,
        encoder=encoder,
        encoder_kind=cfg.model.encoder,
        base=base["name"] if base and cfg.model.encoder == "lm" else None,
        max_length=cfg.model.max_length,
        l2=float(l2),
    )
    model = load_reward_model(folder, base_path, cache_dir=cache_dir, encoder=encoder)
    extra = {"steps": fit.iterations, "embedded": stats.embedded, "train_accuracy": round(fit.train_accuracy, 4)}
    extra["weight_norm"] = float(np.linalg.norm(fit.weight))
    return folder, model, extra


def _merged_base(ctx: Context, spec: dict) -> Path:
    """A base registered as base + adapter, merged once into the job folder (head/full only: their artifact is
    self-contained, so the merged copy is not needed after the job)."""
    from training.ml.loading import load_causal_lm, load_tokenizer

    out = ctx.workdir / "base-merged"
    if not (out / "config.json").exists():
        base_path = _ensure_base(ctx, spec)
        ctx.log(f"merging {spec['name']}'s adapter into its base (once)")
        model = load_causal_lm(base_path, precision="fp32", adapter=spec["adapter_path"], merge=True)
        tmp = out.with_name("base-merged.tmp")
        model.save_pretrained(tmp, safe_serialization=True)
        load_tokenizer(base_path).save_pretrained(tmp)
        tmp.rename(out)
    return out


def _train_transformer(ctx: Context, pairs, base: dict | None, counts: PairCounts) -> tuple[Path, object, dict]:
    from training.ml.trainer_callback import JobCallback, last_complete_checkpoint
    from training.reward.artifact import load_reward_model, save_transformer
    from training.reward.data import tokenize_pairs
    from training.reward.transformer import build_model, train_transformer

    cfg = ctx.config
    if base is None:
        raise Unrecoverable(f"mode={cfg.mode} needs a base model (model.base)")
    if base.get("adapter_path"):
        if cfg.mode in ("lora", "qlora"):
            raise Unrecoverable(f"mode={cfg.mode} needs a base without an adapter: register the merged model")
        base_path = _merged_base(ctx, base)
    else:
        base_path = _ensure_base(ctx, base)
    ctx.progress(0, 1, f"loading {base['name']} ({cfg.mode})")
    model, tokenizer = build_model(cfg, base_path)
    rows, counts.truncated = tokenize_pairs(pairs, tokenizer, cfg.model.max_length, margins=cfg.data.margin)
    ctx.log(f"{counts.truncated} of {len(rows)} pairs cut to their last {cfg.model.max_length} tokens; none dropped")
    resume = last_complete_checkpoint(ctx.checkpoint_dir)
    if resume is not None:
        ctx.log(f"resuming from {resume.name}")
    ctx.stop_if_asked()
    callback = JobCallback(ctx)
    outcome = train_transformer(
        cfg,
        base_path=base_path,
        rows=rows,
        output_dir=ctx.checkpoint_dir,
        callbacks=[callback],
        resume_from=resume,
        built=(model, tokenizer),
    )
    ctx.stop_if_asked()  # SIGTERM: the callback saved a checkpoint and stopped the trainer
    folder = save_transformer(
        ctx.workdir / "model",
        outcome.model,
        tokenizer,
        mode=cfg.mode,
        base=base["name"],
        max_length=cfg.model.max_length,
    )
    del model, outcome.model
    reloaded = load_reward_model(folder, base_path)
    extra = {
        "steps": outcome.steps,
        "seconds_per_step": round(outcome.seconds_per_step, 4) if outcome.seconds_per_step else None,
        "resumed_from_step": outcome.resumed_from,
    }
    return folder, reloaded, extra


def run(ctx: Context) -> dict:
    from training.reward.evaluation import evaluate

    started = time.perf_counter()
    cfg = ctx.config
    data_dir = Path(ctx.inputs["data"])
    train_rows, test_rows = load_pairs(data_dir, "train"), load_pairs(data_dir, "test")
    pairs, counts = pairs_from_rows(train_rows, cfg.data)
    _counts_log(ctx, counts)
    if not pairs:
        raise Unrecoverable("no training pairs: the filters left none (see data.* in the config)")
    base = ctx.inputs.get("base")
    if cfg.mode == "features":
        folder, model, extra = _train_features(ctx, pairs, base, counts)
    else:
        folder, model, extra = _train_transformer(ctx, pairs, base, counts)
    ctx.artifact("model", folder, "reward-model")

    ctx.progress(0, 1, f"scoring {len(test_rows)} held-out pairs")
    prompts = [prompt_messages(r["prompt"]) for r in test_rows]
    batch = cfg.trainer.batch_size * 2
    chosen = model.score(prompts, [text_of(r["chosen"]) for r in test_rows], batch_size=batch) if test_rows else []
    rejected = model.score(prompts, [text_of(r["rejected"]) for r in test_rows], batch_size=batch) if test_rows else []
    evaluation = evaluate(
        test_rows,
        chosen,
        rejected,
        labels=load_labels(data_dir),
        annotators=load_annotators(data_dir),
        config=cfg.eval,
        segment_key=cfg.data.breakdown_key,
    )
    path = ctx.workdir / "evaluation.json"
    write_atomic(path, json.dumps(evaluation))
    ctx.artifact("evaluation", path, "evaluation")
    ctx.progress(1, 1, "done")
    return {
        "mode": cfg.mode,
        "train_pairs": counts.pairs,
        "test_pairs": len(test_rows),
        "dropped_pairs": 0,  # we truncate (keeping the end) instead of dropping
        "truncated_pairs": counts.truncated,
        "ties": {"excluded": counts.ties_excluded, "as_equal": counts.ties_as_equal},
        "accuracy": evaluation.get("accuracy"),
        "accuracy_ci": evaluation.get("accuracy_ci"),
        "ece": evaluation.get("ece"),
        "seconds": round(time.perf_counter() - started, 2),
        **extra,
    }
