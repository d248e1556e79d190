"""bench/annotate_swap.py at a tiny size: Chromium labels a few items and the page times each swap."""

import pytest

from tests.bench.benches import run_bench

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_annotate_swap_labels_a_few_items_and_reports_the_swap_times():
    (line,) = run_bench("annotate_swap", "--items", "6", "--warmup", "1", "--pairs", "20", BENCH_WORKERS="1")
    assert line["bench"] == "annotate_swap"
    assert line["items"] == 5
    assert set(line["submit_to_next_visible_ms"]) == {"p50", "p95"}
    assert line["submit_to_next_visible_ms"]["p50"] > 0
    assert set(line) >= {"label_post_ms_p50", "target_ms"}
