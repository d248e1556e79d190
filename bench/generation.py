"""Generation speed: SmolLM2-135M-Instruct batch generation in fp32 and 4-bit NF4, through a generation job
(worker, child process, checkpoints, database) beside plain `model.generate` on the same batch.

    .venv/bin/python bench/generation.py [--prompts 8] [--max-new-tokens 64] [--rounds 2] [--precisions fp32,nf4]
        [--model-dir PATH]

Prints one JSON line per figure. "job" is the job's own tokens/s over its generate calls (what the job page
shows); "job_wall" also counts the child's start and the model load; ratio_job_vs_generate compares "job"
with plain model.generate on the same prompts, settings and batch, measured in the same run. The SmolLM2
checkpoint is converted once into var/models (about 20 s) and reused; --model-dir measures another local
Hugging Face folder instead (the test suite's smoke run, tests/bench/test_generation_smoke.py, uses a tiny random
model).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPTS = [
    "Explain why the sky is blue to a ten-year-old.",
    "Give three tips for writing a clear email.",
    "What is the difference between weather and climate?",
    "Write a haiku about autumn rain.",
    "How do vaccines train the immune system?",
    "Suggest a name for a bakery that sells only bread.",
    "Why do cats purr?",
    "Summarise the plot of Romeo and Juliet in two sentences.",
    "What should I pack for a weekend hike?",
    "How does a bicycle stay upright?",
    "Explain compound interest with an example.",
    "What is a prime number?",
]


def emit(**figure) -> None:
    print(json.dumps({"bench": "generation", **figure}), flush=True)


def setup_django(workdir: Path) -> None:
    os.environ["JUROR_DATA_DIR"] = str(workdir / "data")
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TQDM_DISABLE="1")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def checkpoint() -> Path:
    from training.ml.smollm2 import convert_smollm2

    return convert_smollm2(ROOT / "var" / "models" / "smollm2-135m-instruct")


def plain_generate(path: Path, precision: str, conversations: list, max_new_tokens: int) -> float:
    """tokens/s of one model.generate call on the whole batch, as a user of transformers would write it."""
    import torch

    from training.ml.loading import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(path)
    model = load_causal_lm(path, precision=precision)
    texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    torch.manual_seed(0)
    started = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            **batch, max_new_tokens=max_new_tokens, do_sample=True, temperature=0.7, top_p=0.95, top_k=0,
            pad_token_id=tokenizer.pad_token_id,
        )  # fmt: skip
    seconds = time.perf_counter() - started
    new = out[:, batch["input_ids"].shape[1] :]
    eos = tokenizer.eos_token_id
    tokens = 0
    for row in new.tolist():
        tokens += row.index(eos) + 1 if eos in row else len(row)
    return tokens / seconds


def job_generate(model: str, precision: str, n_prompts: int, max_new_tokens: int) -> tuple[float, float]:
    from feedback.models import Project
    from training.jobs import job_submit
    from training.worker import Worker

    project = Project.objects.get(slug="bench")
    config = {
        "models": [model],
        "prompts": "all",
        "limit": n_prompts,
        "n": 1,
        "temperatures": [0.7],
        "max_new_tokens": max_new_tokens,
        "batch_size": n_prompts,
        "precision": precision,
        "comparisons": "none",
    }
    job = job_submit(kind="generate", project=project, config=config)
    started = time.perf_counter()
    Worker(name="bench").run(once=True)
    wall = time.perf_counter() - started
    job.refresh_from_db()
    if job.status != "succeeded":
        raise SystemExit(f"bench job failed: {job.error}")
    return job.result["tokens_per_s"], job.result["new_tokens"] / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=8, help="batch size (prompts answered at once)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="repeat and keep the best of each")
    parser.add_argument("--precisions", default="fp32,nf4", help="comma-separated: fp32, bf16, nf4")
    parser.add_argument("--model-dir", type=Path, help="a local Hugging Face folder to use instead of SmolLM2")
    args = parser.parse_args()
    if not 0 < args.prompts <= len(PROMPTS):
        parser.error(f"--prompts must be between 1 and {len(PROMPTS)}")
    with tempfile.TemporaryDirectory(prefix="juror-bench-") as tmp:
        workdir = Path(tmp)
        setup_django(workdir)
        from django.conf import settings

        from feedback.hashing import messages_hash
        from feedback.models import Project, Prompt

        if args.model_dir:
            from training.registry import model_register

            registered = model_register(name="bench-model", source=str(args.model_dir.resolve()))
            model, path = registered.name, Path(settings.JUROR_DATA_DIR) / registered.path
        else:
            from training.registry import DEFAULT_BASE_MODEL

            path = checkpoint()
            models = Path(settings.JUROR_DATA_DIR) / "models"
            models.mkdir(parents=True)
            (models / DEFAULT_BASE_MODEL).symlink_to(path)
            model = DEFAULT_BASE_MODEL
        project = Project.objects.create(slug="bench", name="Bench")
        conversations = [[{"role": "user", "content": text}] for text in PROMPTS[: args.prompts]]
        Prompt.objects.bulk_create(
            [Prompt(project=project, messages=c, content_hash=messages_hash(c)) for c in conversations]
        )
        for precision in args.precisions.split(","):
            plain, job, job_wall = 0.0, 0.0, 0.0
            for _ in range(args.rounds):
                plain = max(plain, plain_generate(path, precision, conversations, args.max_new_tokens))
                inner, wall = job_generate(model, precision, args.prompts, args.max_new_tokens)
                job, job_wall = max(job, inner), max(job_wall, wall)
            common = {
                "model": model,
                "precision": precision,
                "batch": args.prompts,
                "max_new_tokens": args.max_new_tokens,
            }
            emit(figure="tokens_per_s", via="model.generate", value=round(plain, 1), **common)
            emit(figure="tokens_per_s", via="job", value=round(job, 1), **common)
            emit(figure="tokens_per_s", via="job_wall", value=round(job_wall, 1), **common)
            emit(figure="ratio_job_vs_generate", value=round(job / plain, 3), **common)


if __name__ == "__main__":
    main()
