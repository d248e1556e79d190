"""bench/generation.py pointed at a tiny random model: plain generate and a generation job, a few tokens."""

import pytest

from tests.bench.benches import run_bench
from tests.training.checkpoints import tiny_checkpoint

pytestmark = [pytest.mark.model, pytest.mark.slow]


def test_generation_bench_on_a_tiny_model_reports_every_figure(tmp_path):
    model_dir = tiny_checkpoint(tmp_path / "tiny")
    lines = run_bench(
        "generation",
        *("--prompts", "2", "--max-new-tokens", "4", "--rounds", "1", "--precisions", "fp32"),
        *("--model-dir", str(model_dir)),
    )
    figures = [(line["figure"], line.get("via")) for line in lines]
    assert figures == [
        ("tokens_per_s", "model.generate"),
        ("tokens_per_s", "job"),
        ("tokens_per_s", "job_wall"),
        ("ratio_job_vs_generate", None),
    ]
    for line in lines:
        assert line["bench"] == "generation"
        assert (line["model"], line["precision"], line["batch"], line["max_new_tokens"]) == (
            "bench-model",
            "fp32",
            2,
            4,
        )
        assert line["value"] > 0
