"""Reward models, each mode on the same data: a `reward` job through the real worker, and for the transformer
modes the same training called on TRL's RewardTrainer directly, each in its own process.

    .venv/bin/python bench/reward_models.py [--modes features,head,full,lora,qlora] [--data demo,synthetic]
        [--synthetic-pairs 2000] [--steps 10] [--batch-size 8] [--max-length N] [--model-dir PATH]

Prints one JSON line per figure (progress goes to stderr). Data sets, each a project in a temporary SQLite
database and data directory:
- demo: the demo project exactly as `manage.py seed_demo` builds it (feedback/demo/*.jsonl, its team's judgements);
  the generation job seed_demo queues is removed, so nothing generates (offline and fast).
- synthetic: N judged pairs with a known rule (the courteous answer beats the curt one; both carry the same facts
  and neutral filler, so length is not the cue), dialogue-like (one or two user turns, answers of 100–500
  characters), written as a Chatbot-Arena file and imported through the import service, so they reach the job
  through the real export.

Figures, per data set and mode:
- seconds_total (features): the child task's own seconds (result "seconds": files read, MiniLM loaded, every text
  embedded, classifier fitted, held-out pairs scored); via=job_wall adds the worker's prepare (the export), the
  child's start and the registration.
- seconds_per_step (transformer modes), via=job: the job's result, i.e. the wall time of `trainer.train()` divided
  by the steps it ran — the training loop only, after the model is loaded and the pairs tokenised (it includes the
  trainer's setup and the checkpoint every trainer saves at its last step). via=trl: the same measure of a plain
  `trl.RewardTrainer` in a fresh process of its own, on the job's exported training pairs tokenised the same way
  (training.reward.data.tokenize_pairs, distinct pad token) and the same config: steps, batch, learning rate (the
  mode's default), max_length, LoRA r/alpha/dropout on all linear layers with the score head in modules_to_save,
  NF4 for qlora, fp32 on CPU, gradient checkpointing only with --gradient-checkpointing, a checkpoint every
  trainer.save_steps (so at the last step, like the job). ratio_job_vs_direct = job / trl; the target is at most 1.10.
- peak_rss_mb: via=job, the job's child process (the one that trains and evaluates), read as
  getrusage(RUSAGE_CHILDREN).ru_maxrss in a worker process started for that one job (`Worker.run(once=True)` in a
  subprocess, which waits for its child); via=trl, getrusage(RUSAGE_SELF) of the direct process. Both include the
  model load; the job's also includes its evaluation (the saved model reloaded to score the held-out pairs).
- heldout_accuracy: the job's result (held-out prompts, data.test_fraction 0.2), with its bootstrap interval.

Jobs and direct runs of a mode run one after the other, so on a shared machine both see the same load and the
ratio stays meaningful while absolute seconds do not. The SmolLM2 checkpoint is converted once into var/models
and reused; --model-dir uses another local Hugging Face folder (the test suite's smoke run,
tests/bench/test_reward_models_smoke.py, uses a tiny random model).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODES = ("features", "head", "full", "lora", "qlora")
DATASETS = ("demo", "synthetic")
BENCH_MODEL = "bench-model"

# ---- synthetic pairs with a known rule ------------------------------------------------------------------------

TOPICS = [
    ("How do I reset my home router?", ["Unplug the router, wait about thirty seconds, then plug it back in.",
     "Wait until the status light stops blinking before you reconnect your laptop."]),
    ("Why does bread go stale?", ["Starch in the crumb slowly recrystallises and pushes the water out.",
     "Keeping it in a closed bag at room temperature slows that down more than the fridge does."]),
    ("How often should I water a cactus?", ["In summer, water it when the soil has dried out completely.",
     "In winter it rests, so once a month or even less is enough."]),
    ("What is the difference between weather and climate?", ["Weather is what the air does today or this week.",
     "Climate is the pattern of weather in a region averaged over thirty years or more."]),
    ("How do I get red wine out of a shirt?", ["Blot it straight away with cold water; do not rub it in.",
     "A little dish soap and a cold wash usually lift the rest of the stain."]),
    ("Can you explain compound interest?", ["Interest is added to the balance, and next time interest is paid on it.",
     "At five percent a year, a hundred euros grows to about one hundred and sixty-three in ten years."]),
    ("How do vaccines work?", ["A vaccine shows the immune system a harmless piece or copy of a germ.",
     "The body then keeps memory cells that react quickly if the real germ ever turns up."]),
    ("What should I pack for a weekend hike?", ["Take water, a warm layer, a rain jacket and some snacks.",
     "A map, a charged phone and a small first-aid kit are worth the weight."]),
    ("How do I boil an egg so the yolk stays soft?", ["Lower the egg into water that is already boiling.",
     "After six minutes, move it to cold water so it stops cooking."]),
    ("Why is the sky blue?", ["Air scatters short blue wavelengths of sunlight much more than red ones.",
     "That scattered blue light reaches your eyes from every part of the sky."]),
    ("How can I fall asleep faster?", ["Keep the same bedtime every day, even at weekends.",
     "Put screens away half an hour before bed and keep the room cool and dark."]),
    ("What is a prime number?", ["A prime is a whole number above one that only one and itself divide evenly.",
     "Two, three, five, seven and eleven are the first few."]),
    ("How do I write a clear email?", ["Put the request or the main point in the first sentence.",
     "Keep paragraphs short and say exactly what you need and by when."]),
    ("How does a bicycle stay upright?", ["Steering keeps moving the wheels back under the rider's weight.",
     "The faster you go, the smaller those corrections need to be."]),
    ("Why do cats purr?", ["Cats purr when they are content, but also to calm themselves when stressed.",
     "The sound comes from quick twitches of the muscles in the voice box."]),
    ("How do I start running as a beginner?", ["Alternate one minute of running with two minutes of walking.",
     "Run three times a week and add a little more running each week."]),
    ("How do I keep basil alive indoors?", ["Give it a bright window and water when the top of the soil feels dry.",
     "Pinch off the top leaves often so the plant grows bushy instead of tall."]),
    ("What does a CPU do?", ["The CPU follows a program's instructions one small step at a time.",
     "It does arithmetic, compares values and moves data between memory and devices."]),
    ("How do I make my phone battery last longer?", ["Lower the screen brightness and shorten the screen timeout.",
     "Apps that refresh in the background use a lot; turn that off for the ones you rarely open."]),
    ("How do I apologise to a friend?", ["Say clearly what you did and that you are sorry, without excuses.",
     "Ask what would help, and then do it."]),
]  # fmt: skip
NAMES = ["Ana", "Ben", "Chloe", "Dev", "Emi", "Farid", "Greta", "Hugo", "Ines", "Jon", "Kai", "Lena", "Marta",
         "Nils", "Olu", "Priya", "Quinn", "Rosa", "Sami", "Tess", "Uma", "Viktor", "Wen", "Yusuf", "Zoe"]  # fmt: skip
CONTEXTS = ["", "I'm a bit in a hurry. ", "My friend told me something different. ",
            "I've never done this before. ", "Asking for my kids. ", "Sorry if this is a silly question. ",
            "I tried searching but got confused. "]  # fmt: skip
FOLLOW_UPS = ["Could you say a bit more?", "And is there anything I should avoid?", "What would you do?",
              "Can you keep it simple?"]  # fmt: skip
COURTEOUS_OPEN = ["Happy to help!", "Great question, thanks for asking.", "Sure, let me walk you through it.",
                  "Of course, glad you asked."]  # fmt: skip
COURTEOUS_CLOSE = ["I hope this helps, and feel free to ask if anything is unclear.",
                   "Let me know how it goes; I'm glad to help further.", "Good luck, and thank you for asking!",
                   "Take care, and ask again any time."]  # fmt: skip
CURT_OPEN = ["Fine.", "Obviously.", "Ugh, this again.", "Look it up next time."]
CURT_CLOSE = ["Don't ask me again.", "Figure out the rest yourself.", "That's all you get.",
              "Honestly, that should have been obvious."]  # fmt: skip
FILLER = ["Most people get this right on the first try.", "It takes a few minutes at most.",
          "This works in most cases.", "The details can differ a little from case to case.",
          "Nothing special is needed for it.", "It is a common question."]  # fmt: skip


def _answer(rng: random.Random, facts: list[str], opener: list[str], closer: list[str]) -> str:
    """opener, the facts, neutral filler, closer: 100–500 characters, the length drawn independently of the tone."""
    target = rng.randint(100, 500)
    parts = [rng.choice(opener), *facts[: rng.randint(1, len(facts))]]
    fillers = rng.sample(FILLER, len(FILLER))
    close = rng.choice(closer)

    def text(extra: list[str] = ()) -> str:
        return " ".join([*parts, *extra, close])

    while fillers and (len(text()) < 100 or len(text(fillers[:1])) <= target):
        parts.append(fillers.pop(0))
    return text()


def synthetic_rows(n: int, *, seed: int = 0) -> list[dict]:
    """n judged pairs (Chatbot Arena columns) of unique conversations: the courteous answer always wins, and it
    sits on either side at random."""
    rng = random.Random(seed)  # noqa: S311 — test data, not secrets
    combos = len(TOPICS) * len(NAMES) * len(CONTEXTS) * (1 + len(FOLLOW_UPS))
    picks = rng.sample(range(combos), min(n, combos))
    rows = []
    for i in range(n):
        k = picks[i] if i < len(picks) else rng.randrange(combos)
        k, turn = divmod(k, 1 + len(FOLLOW_UPS))
        k, context = divmod(k, len(CONTEXTS))
        topic, name = divmod(k, len(NAMES))
        question, facts = TOPICS[topic]
        first = f"Hi, I'm {NAMES[name]}. {CONTEXTS[context]}{question}"
        if i >= combos:
            first += f" (asking again, #{i})"
        messages = [{"role": "user", "content": first}]
        if turn:
            messages += [
                {"role": "assistant", "content": f"{facts[0]} Is there anything else you would like to know?"},
                {"role": "user", "content": FOLLOW_UPS[turn - 1]},
            ]
        good = _answer(rng, facts, COURTEOUS_OPEN, COURTEOUS_CLOSE)
        bad = _answer(rng, facts, CURT_OPEN, CURT_CLOSE)
        good_first = rng.random() < 0.5
        rows.append(
            {
                "messages": messages,
                "model_a": "assistant-x",
                "response_a": good if good_first else bad,
                "model_b": "assistant-y",
                "response_b": bad if good_first else good,
                "winner": "model_a" if good_first else "model_b",
            }
        )
    return rows


# ---- setup ---------------------------------------------------------------------------------------------------


def say(message: str) -> None:
    print(f"[reward_models] {message}", file=sys.stderr, flush=True)


def emit(**figure) -> None:
    print(json.dumps({"bench": "reward_models", **figure}), flush=True)


def setup_django(workdir: Path | None = None, *, migrate: bool = True) -> None:
    """Django on the bench's own SQLite database and data directory (a worker subprocess inherits them)."""
    if workdir is not None:
        os.environ["JUROR_DATA_DIR"] = str(workdir / "data")
        os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TQDM_DISABLE="1")
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


def base_model(model_dir: Path | None) -> str:
    """The registry name of the base LM: SmolLM2 (converted once into var/models, linked into the data
    directory) or the --model-dir folder registered as bench-model."""
    from django.conf import settings

    if model_dir:
        from training.registry import model_register

        return model_register(name=BENCH_MODEL, source=str(model_dir.resolve())).name
    from training.ml.smollm2 import convert_smollm2
    from training.registry import DEFAULT_BASE_MODEL

    path = convert_smollm2(ROOT / "var" / "models" / "smollm2-135m-instruct")
    models = Path(settings.JUROR_DATA_DIR) / "models"
    models.mkdir(parents=True, exist_ok=True)
    (models / DEFAULT_BASE_MODEL).symlink_to(path)
    return DEFAULT_BASE_MODEL


def load_demo() -> str:
    """The demo project as seed_demo builds it, without the generation job it queues."""
    from django.core.management import call_command

    from feedback.models import Project
    from training.models import Job

    call_command("seed_demo", stdout=io.StringIO())
    project = Project.objects.get(slug="demo")
    Job.objects.filter(project=project).delete()
    return project.slug


def load_synthetic(n: int, folder: Path) -> str:
    from feedback.imports.service import data_import
    from feedback.models import Project

    project = Project.objects.create(slug="synthetic", name="Synthetic: the courteous answer wins")
    path = folder / "synthetic.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in synthetic_rows(n)), encoding="utf-8")
    started = time.perf_counter()
    summary = data_import(project=project, path=path, source="synthetic-rule")
    say(f"imported {summary.imported} synthetic pairs in {time.perf_counter() - started:.1f}s")
    return project.slug


# ---- the job -------------------------------------------------------------------------------------------------


def run_job(slug: str, config: dict) -> tuple[object, float, float]:
    """Queues a reward job and runs it in a worker process of its own; returns the job, the worker's wall seconds
    and the child's peak RSS (MB)."""
    from feedback.models import Project
    from training.jobs import job_submit

    job = job_submit(kind="reward", project=Project.objects.get(slug=slug), config=config)
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 — this interpreter and this file
        [sys.executable, __file__, "--run-worker"], cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False
    )
    wall = time.perf_counter() - started
    job.refresh_from_db()
    if done.returncode != 0 or job.status != "succeeded":
        tail = list(job.log_lines.order_by("-id").values_list("line", flat=True)[:40])
        log = "\n".join(reversed(tail))
        raise SystemExit(f"bench job #{job.pk} ({config['mode']}) {job.status}: {job.error}\n{log}")
    rss = json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_mb"]
    return job, wall, rss


def worker_once() -> None:
    """--run-worker: one job, then the peak RSS of the child it waited for (the worker's own is not counted)."""
    setup_django(migrate=False)
    from training.worker import Worker

    Worker(name="bench", echo=sys.stderr).run(once=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"peak_rss_mb": round(peak, 1)}), flush=True)


# ---- TRL's RewardTrainer, called directly ----------------------------------------------------------------------


def direct(spec_path: Path) -> None:
    """--direct SPEC: trains as a TRL user would, on the job's exported pairs and config (no Django here)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, TaskType
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BitsAndBytesConfig
    from trl import RewardConfig, RewardTrainer

    from training.configs import config_build
    from training.reward.data import pairs_from_rows, tokenize_pairs
    from training.reward.files import load_pairs
    from training.reward.transformer import ensure_distinct_pad
    from training.train_configs import RewardConfig as JobRewardConfig

    spec = json.loads(spec_path.read_text())
    cfg = config_build(JobRewardConfig, spec["config"])
    base = spec["base_path"]
    gpu = torch.cuda.is_available()
    bf16 = gpu and torch.cuda.is_bf16_supported()

    tokenizer = AutoTokenizer.from_pretrained(base)
    ensure_distinct_pad(tokenizer)
    pairs, _ = pairs_from_rows(load_pairs(Path(spec["data"]), "train"), cfg.data)
    rows, _ = tokenize_pairs(pairs, tokenizer, cfg.model.max_length, margins=False)
    rows = [{"chosen_ids": r["chosen_ids"], "rejected_ids": r["rejected_ids"]} for r in rows]

    kwargs = {"num_labels": 1, "dtype": torch.float32, "device_map": {"": 0} if gpu else "cpu"}
    if cfg.mode == "qlora":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if gpu else torch.float32,
        )
    torch.manual_seed(cfg.trainer.seed)
    model = AutoModelForSequenceClassification.from_pretrained(base, **kwargs)
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    if cfg.mode == "head":
        for name, param in model.named_parameters():
            param.requires_grad = name.startswith("score.")
    peft_config = None
    if cfg.mode in ("lora", "qlora"):
        peft_config = LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules="all-linear",
            modules_to_save=["score"],
        )
    args = RewardConfig(
        output_dir=spec["output_dir"],
        per_device_train_batch_size=cfg.trainer.batch_size,
        gradient_accumulation_steps=cfg.trainer.gradient_accumulation,
        max_steps=cfg.trainer.max_steps,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.trainer.weight_decay,
        seed=cfg.trainer.seed,
        save_strategy="steps",
        save_steps=cfg.trainer.save_steps,
        logging_steps=1,
        report_to=[],
        bf16=bf16,
        use_cpu=not gpu,
        gradient_checkpointing=cfg.trainer.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if cfg.trainer.gradient_checkpointing else None,
        max_length=cfg.model.max_length,  # rows are already cut to it: TRL drops none
        disable_tqdm=True,
    )
    trainer = RewardTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    if cfg.mode == "qlora" and not bf16:
        # TRL casts a quantised model's trainable weights to bf16; an fp32 CPU forward then fails.
        for param in trainer.model.parameters():
            if param.requires_grad and param.dtype != torch.float32:
                param.data = param.data.to(torch.float32)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    steps = trainer.state.global_step
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds_per_step": seconds / steps, "steps": steps, "peak_rss_mb": round(peak, 1)}))


def run_direct(job, base_path: str, out: Path) -> dict:
    from training.jobs import job_dir

    workdir = job_dir(job)
    spec = out / f"direct-{job.pk}.json"
    spec.write_text(
        json.dumps(
            {
                "config": job.config,
                "base_path": base_path,
                "data": str(workdir / "data"),
                "output_dir": str(out / f"direct-{job.pk}"),
            }
        )
    )
    done = subprocess.run(  # noqa: S603 — this interpreter and this file
        [sys.executable, __file__, "--direct", str(spec)], cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"the direct TRL run of job #{job.pk} failed (exit {done.returncode}); see stderr")
    # The checkpoints of both sides are only needed for timing: a full-mode pair of them is ~3 GB.
    shutil.rmtree(out / f"direct-{job.pk}", ignore_errors=True)
    shutil.rmtree(workdir / "checkpoint", ignore_errors=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- main ----------------------------------------------------------------------------------------------------


def bench_mode(data: str, slug: str, mode: str, args, base: str, out: Path) -> None:
    from training.registry import model_get, model_spec

    config: dict = {
        "mode": mode,
        "trainer": {"batch_size": args.batch_size, "gradient_checkpointing": args.gradient_checkpointing},
    }
    if args.max_length:
        config["model"] = {"max_length": args.max_length}
    if mode != "features":
        config.setdefault("model", {})["base"] = base
        config["trainer"]["max_steps"] = args.steps
    say(f"{data}/{mode}: job")
    job, wall, rss = run_job(slug, config)
    result = job.result
    common = {
        "data": data,
        "mode": mode,
        "model": "all-MiniLM-L6-v2" if mode == "features" else base,
        "train_pairs": result["train_pairs"],
        "test_pairs": result["test_pairs"],
    }
    if mode == "features":
        emit(figure="seconds_total", via="job", value=result["seconds"], **common)
        emit(figure="seconds_total", via="job_wall", value=round(wall, 2), **common)
        emit(figure="peak_rss_mb", via="job", value=rss, **common)
    else:
        common.update(steps=result["steps"], batch=args.batch_size, max_length=job.config["model"]["max_length"])
        say(f"{data}/{mode}: TRL's RewardTrainer directly")
        plain = run_direct(job, model_spec(model_get(base))["base_path"], out)
        emit(figure="seconds_per_step", via="job", value=result["seconds_per_step"], **common)
        emit(figure="seconds_per_step", via="trl", value=round(plain["seconds_per_step"], 4), **common)
        emit(figure="peak_rss_mb", via="job", value=rss, **common)
        emit(figure="peak_rss_mb", via="trl", value=plain["peak_rss_mb"], **common)
        ratio = result["seconds_per_step"] / plain["seconds_per_step"]
        emit(figure="ratio_job_vs_direct", value=round(ratio, 3), target=1.10, **common)
    emit(figure="heldout_accuracy", via="job", value=result["accuracy"], ci=result["accuracy_ci"], **common)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--data", default=",".join(DATASETS), help="comma-separated: demo, synthetic")
    parser.add_argument("--synthetic-pairs", type=int, default=2000, help="pairs in the synthetic set")
    parser.add_argument("--steps", type=int, default=10, help="optimiser steps of the transformer modes")
    parser.add_argument("--batch-size", type=int, default=8, help="pairs per step")
    parser.add_argument("--max-length", type=int, default=0, help="tokens per text; 0: the job's default")
    parser.add_argument(
        "--gradient-checkpointing", action="store_true", help="transformer modes: trade time for memory (both sides)"
    )
    parser.add_argument("--model-dir", type=Path, help="a local Hugging Face folder to use instead of SmolLM2")
    parser.add_argument("--run-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--direct", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_worker:
        return worker_once()
    if args.direct:
        return direct(args.direct)
    modes = args.modes.split(",")
    datasets = args.data.split(",")
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    if unknown := set(datasets) - set(DATASETS):
        parser.error(f"unknown data: {', '.join(sorted(unknown))}")
    if args.synthetic_pairs < 10 or args.steps < 1:
        parser.error("--synthetic-pairs must be at least 10 and --steps at least 1")
    with tempfile.TemporaryDirectory(prefix="juror-bench-") as tmp:
        workdir = Path(tmp)
        setup_django(workdir)
        base = base_model(args.model_dir) if set(modes) - {"features"} else ""
        for data in datasets:
            slug = load_demo() if data == "demo" else load_synthetic(args.synthetic_pairs, workdir)
            for mode in modes:
                bench_mode(data, slug, mode, args, base, workdir)


if __name__ == "__main__":
    main()
