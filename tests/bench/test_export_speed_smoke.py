"""bench/export_speed.py at a tiny size: it builds its project and exports every kind in every format."""

import pytest

from tests.bench.benches import run_bench

pytestmark = pytest.mark.slow  # eight export processes, each importing Django and pyarrow: about ten seconds


def test_export_speed_at_30_labels_reports_every_kind_and_format():
    setup, *exports = run_bench("export_speed", "--labels", "30")
    assert setup["bench"] == "export_speed_setup" and setup["labels"] == 30
    kinds, formats = ("labels", "pairs"), ("parquet", "jsonl", "csv", "hf")
    assert [(line["kind"], line["format"]) for line in exports] == [(k, f) for k in kinds for f in formats]
    for line in exports:
        assert line["bench"] == "export_speed"
        assert set(line) >= {"rows", "seconds", "rows_per_s", "peak_rss_mb"}
    # 10 pairs × 3 annotators: every label is a row, every pair (none is tied 3 ways) is one.
    assert {line["kind"]: line["rows"] for line in exports if line["format"] == "jsonl"} == {"labels": 30, "pairs": 10}
    assert len({(line["kind"], line["rows"]) for line in exports}) == 2, "every format exports the same rows"
