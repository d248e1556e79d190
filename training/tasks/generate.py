"""The `generate` kind's child: every selected prompt, answered n times by each model at each temperature.

Each finished batch is a checkpoint file (written under a temporary name, then renamed); a resumed attempt
skips the batches on disk and samples the rest with the seeds they would have had, so a job killed halfway
ends with the same responses as one that never stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from training.configs import GenerateConfig
from training.ml.prompting import Example, build_messages, split_reasoning
from training.runner import Context, Unrecoverable, write_atomic


def _examples(inputs: dict) -> list[Example]:
    return [Example(prompt=e["messages"], response=e["text"]) for e in inputs.get("examples", [])]


@dataclass(frozen=True)
class Sequence:
    """One sequence to generate: which prompt, which of its n samples, the chat messages, how many examples."""

    prompt_id: int
    sample: int
    messages: list[dict]
    shots: int


def conversations_for(ctx: Context) -> list[Sequence]:
    """Every sequence one variant generates, in a fixed order.

    Few-shot: a prompt whose only candidate examples are its own answers gets none and is asked zero-shot
    (its responses record k=0), rather than failing the whole job."""
    cfg: GenerateConfig = ctx.config
    pool = _examples(ctx.inputs)
    ids = [e["prompt_id"] for e in ctx.inputs.get("examples", [])]
    out = []
    for prompt in ctx.inputs["prompts"]:
        shots = ()
        if cfg.template == "few_shot":
            # A prompt never serves as its own worked example.
            shots = [ex for ex, pid in zip(pool, ids, strict=True) if pid != prompt["id"]][: cfg.k]
        template = "zero_shot" if cfg.template == "few_shot" and not shots else cfg.template
        try:
            messages = build_messages(prompt["messages"], template=template, examples=shots, system=cfg.system)
        except ValueError as exc:  # the same on every attempt: fail the job now, naming the prompt
            raise Unrecoverable(f"prompt {prompt['id']}: {exc}") from None
        out.extend(Sequence(prompt["id"], i, messages, len(shots)) for i in range(cfg.n))
    return out


def _batch_file(ctx: Context, variant: int, batch: int) -> Path:
    return ctx.checkpoint_dir / f"v{variant:02d}-b{batch:05d}.jsonl"


def _done_batches(ctx: Context, variant: int, n_batches: int) -> int:
    done = 0
    while done < n_batches and _batch_file(ctx, variant, done).exists():
        done += 1
    return done


def _ensure_checkpoint(ctx: Context, spec: dict) -> None:
    if spec["convert"] == "smollm2" and not (Path(spec["base_path"]) / "config.json").exists():
        from training.ml.smollm2 import convert_smollm2

        ctx.log(f"converting SmolLM2 from its GGUF into {spec['base_path']} (once)")
        convert_smollm2(Path(spec["base_path"]))


def _row(cfg: GenerateConfig, item: Sequence, model: str, temperature: float, out) -> dict:
    reasoning, answer = split_reasoning(out.text) if cfg.template == "cot" else ("", out.text.strip())
    return {
        "prompt_id": item.prompt_id,
        "model": model,
        "temperature": temperature,
        "sample": item.sample,
        "text": answer,
        "reasoning": reasoning,
        "new_tokens": out.new_tokens,
        "shots": item.shots,
    }


def run(ctx: Context) -> dict:
    from training.ml.generation import SamplingSettings, generate_batches
    from training.ml.loading import load_causal_lm, load_tokenizer, parameter_count, resolve_precision

    cfg: GenerateConfig = ctx.config
    if cfg.template == "few_shot" and len(ctx.inputs.get("examples", [])) < 1:
        raise Unrecoverable("few_shot needs worked examples: none were given and the project has no rated responses")
    work = conversations_for(ctx)
    batch_size = cfg.batch_size
    n_batches = -(-len(work) // batch_size)
    variants = [(m, t) for m in ctx.inputs["models"] for t in cfg.temperatures]
    total = len(variants) * len(work)
    precision = resolve_precision(cfg.precision)
    skips = [_done_batches(ctx, v, n_batches) for v in range(len(variants))]
    ctx.progress(min(sum(skips) * batch_size, total), total, "starting")
    step = 0
    tokens = 0
    seconds = 0.0
    sizes: dict[str, int] = {}
    loaded: tuple[str, object, object] | None = None
    for v, (spec, temperature) in enumerate(variants):
        skip = skips[v]
        step += skip
        if skip == n_batches:
            continue
        if loaded is None or loaded[0] != spec["name"]:
            loaded = model = None  # free the previous model before the next one loads
            _ensure_checkpoint(ctx, spec)
            sizes[spec["name"]] = parameter_count(spec["base_path"])
            model = load_causal_lm(
                spec["base_path"],
                precision=precision,
                adapter=spec["adapter_path"],
                merge=spec["adapter_path"] is not None,
            )
            loaded = (spec["name"], load_tokenizer(spec["base_path"]), model)
        _, tokenizer, model = loaded
        ctx.log(f"{spec['name']} at temperature {temperature}: {n_batches - skip} batches ({precision})")
        settings = SamplingSettings(
            max_new_tokens=cfg.max_new_tokens,
            temperature=temperature,
            top_p=cfg.top_p,
            seed=cfg.seed + 7919 * v,
        )
        started = time.perf_counter()
        batches = generate_batches(
            model, tokenizer, [item.messages for item in work], settings, batch_size=batch_size, skip_batches=skip
        )
        for b, outputs in enumerate(batches, start=skip):
            elapsed = time.perf_counter() - started
            chunk = work[b * batch_size : (b + 1) * batch_size]
            rows = [_row(cfg, item, spec["name"], temperature, out) for item, out in zip(chunk, outputs, strict=True)]
            write_atomic(_batch_file(ctx, v, b), "".join(json.dumps(r) + "\n" for r in rows))
            batch_tokens = sum(r["new_tokens"] for r in rows)
            tokens += batch_tokens
            seconds += elapsed
            step += 1
            ctx.metric(step, tokens_per_s=batch_tokens / max(elapsed, 1e-9), new_tokens=batch_tokens)
            ctx.progress(
                min(step * batch_size, total), total, f"{spec['name']} T={temperature}: batch {b + 1}/{n_batches}"
            )
            ctx.stop_if_asked()
            started = time.perf_counter()
    generations = ctx.workdir / "generations.jsonl"
    # Written whole and renamed: the database side reads this file after the child exits, never half of it.
    parts = [_batch_file(ctx, v, b).read_text(encoding="utf-8") for v in range(len(variants)) for b in range(n_batches)]
    write_atomic(generations, "".join(parts))
    ctx.artifact("generations", generations, "generations")
    return {
        "sequences": total,
        "new_tokens": tokens,
        "tokens_per_s": round(tokens / seconds, 2) if seconds else None,
        "precision": precision,
        "parameters": sizes,
    }
