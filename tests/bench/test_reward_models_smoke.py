"""bench/reward_models.py on tiny data and a tiny random model: a features job (the real MiniLM), a LoRA job and
the same LoRA training on TRL's RewardTrainer directly, two steps each."""

import math

import pytest

from tests.bench.benches import load_bench, run_bench
from tests.training.checkpoints import tiny_checkpoint

pytestmark = [pytest.mark.model, pytest.mark.slow]


def test_reward_models_bench_on_a_tiny_model_reports_every_figure(tmp_path):
    model_dir = tiny_checkpoint(tmp_path / "tiny")
    lines = run_bench(
        "reward_models",
        *("--modes", "features,lora", "--data", "synthetic", "--synthetic-pairs", "40"),
        *("--steps", "2", "--batch-size", "4", "--max-length", "64", "--model-dir", str(model_dir)),
        timeout=240,
    )
    figures = [(line["mode"], line["figure"], line.get("via")) for line in lines]
    assert figures == [
        ("features", "seconds_total", "job"),
        ("features", "seconds_total", "job_wall"),
        ("features", "peak_rss_mb", "job"),
        ("features", "heldout_accuracy", "job"),
        ("lora", "seconds_per_step", "job"),
        ("lora", "seconds_per_step", "trl"),
        ("lora", "peak_rss_mb", "job"),
        ("lora", "peak_rss_mb", "trl"),
        ("lora", "ratio_job_vs_direct", None),
        ("lora", "heldout_accuracy", "job"),
    ]
    for line in lines:
        assert line["bench"] == "reward_models"
        assert line["data"] == "synthetic"
        # 40 pairs on 40 prompts, a fifth held out by prompt: both splits have pairs, and together all 40.
        assert line["train_pairs"] > 0 and line["test_pairs"] > 0
        assert line["train_pairs"] + line["test_pairs"] == 40
        value = line["value"]
        assert isinstance(value, int | float) and math.isfinite(value), line
        if line["figure"] == "heldout_accuracy":
            assert 0 <= value <= 1
            low, high = line["ci"]
            assert 0 <= low <= value <= high <= 1
        else:
            assert value > 0, line
        if line["mode"] == "lora":
            assert (line["model"], line["steps"], line["batch"], line["max_length"]) == ("bench-model", 2, 4, 64)
    rss = {line["via"]: line["value"] for line in lines if line["figure"] == "peak_rss_mb" and line["mode"] == "lora"}
    assert rss["job"] > 100 and rss["trl"] > 100  # torch alone is more than that: the process was measured
    assert next(line for line in lines if line["figure"] == "ratio_job_vs_direct")["target"] == 1.10


def test_synthetic_pairs_follow_the_rule_and_look_like_dialogue():
    bench = load_bench("reward_models")
    rows = bench.synthetic_rows(300, seed=1)
    assert len({str(r["messages"]) for r in rows}) == 300  # one prompt per pair: the held-out split is by prompt
    assert {r["winner"] for r in rows} == {"model_a", "model_b"}  # the better answer is not always on one side
    for row in rows:
        better, worse = (row["response_a"], row["response_b"])[:: 1 if row["winner"] == "model_a" else -1]
        assert 100 <= len(better) <= 500 and 100 <= len(worse) <= 500
        assert better.startswith(tuple(bench.COURTEOUS_OPEN)) and better.endswith(tuple(bench.COURTEOUS_CLOSE))
        assert worse.startswith(tuple(bench.CURT_OPEN)) and worse.endswith(tuple(bench.CURT_CLOSE))
