"""The reward-model evaluation's figures, on hand-built rows whose answers are known."""

import math

import numpy as np
import pytest
from sklearn.calibration import calibration_curve

from training.reward.evaluation import bootstrap_ci, calibration, compare, evaluate
from training.train_configs import EvalConfig

CONFIG = EvalConfig(bootstrap=400, confidence=0.95, bins=10, confident=0.8)


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def row(cid: int, *, outcome: str = "a", agreement: float = 1.0, num_labels: int = 2, text: str = "") -> dict:
    return {
        "prompt": [{"role": "user", "content": f"prompt {cid} {text}"}],
        "chosen": [{"role": "assistant", "content": f"chosen {cid} {text}"}],
        "rejected": [{"role": "assistant", "content": f"rejected {cid}"}],
        "comparison_id": cid,
        "prompt_id": 100 + cid,
        "chosen_model": "m1",
        "rejected_model": "m2",
        "num_labels": num_labels,
        "agreement": agreement,
        "strength": None,
        "outcome": outcome,
    }


def label(cid: int, annotator: str, choice: str, *, source: str = "annotators", kind: str = "pair") -> dict:
    return {"comparison_id": cid, "annotator": annotator, "choice": choice, "source": source, "kind": kind}


def run(rows, diffs, *, labels=(), annotators=None, config=CONFIG, segment_key=""):
    """Scores with the given chosen − rejected differences (rejected scores 0)."""
    return evaluate(
        rows, list(diffs), [0.0] * len(diffs), labels=list(labels), annotators=annotators or {}, config=config,
        segment_key=segment_key,
    )  # fmt: skip


def test_a_model_right_70_percent_of_the_time_at_p_07_is_perfectly_calibrated():
    rows = [row(i) for i in range(100)]
    diffs = [logit(0.7)] * 70 + [-logit(0.7)] * 30  # P(chosen) 0.7 on 70 rows, 0.3 (wrong side) on 30
    result = run(rows, diffs)
    assert result["accuracy"] == pytest.approx(0.7)
    assert result["ece"] == pytest.approx(0.0, abs=1e-9)
    filled = sorted(
        (round(b["mean_predicted"], 6), b["n"], round(b["observed"], 6)) for b in result["reliability"] if b["n"]
    )
    assert filled == [(0.3, 100, 0.3), (0.7, 100, 0.7)]
    assert len(result["reliability"]) == 10 and sum(b["n"] for b in result["reliability"]) == 200


def test_an_overconfident_model_has_the_gap_as_its_calibration_error():
    rows = [row(i) for i in range(100)]
    diffs = [logit(0.9)] * 60 + [-logit(0.9)] * 40  # says 0.9, right 60% of the time
    result = run(rows, diffs)
    assert result["ece"] == pytest.approx(0.3)
    filled = sorted(
        (round(b["mean_predicted"], 6), b["n"], round(b["observed"], 6)) for b in result["reliability"] if b["n"]
    )
    assert filled == [(0.1, 100, 0.4), (0.9, 100, 0.6)]


def test_calibration_counts_each_pair_both_ways_so_always_saying_yes_is_not_calibrated():
    # The winner is always `chosen`: one-sided, every outcome would be 1 and p = 1 would look perfect.
    ece, bins = calibration(np.full(50, 0.999), bins=10)
    assert ece == pytest.approx(0.001)
    ece, _ = calibration(np.full(50, 0.6), bins=10)  # right every time, yet only 60% sure
    assert ece == pytest.approx(0.4)


def test_reliability_bins_agree_with_scikit_learns_calibration_curve():
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, 500)
    ece, bins = calibration(p, bins=8)
    y_true = np.concatenate([np.ones(500), np.zeros(500)])
    y_prob = np.concatenate([p, 1 - p])
    observed, predicted = calibration_curve(y_true, y_prob, n_bins=8, strategy="uniform")
    ours = [b for b in bins if b["n"]]
    assert [b["observed"] for b in ours] == pytest.approx(list(observed))
    assert [b["mean_predicted"] for b in ours] == pytest.approx(list(predicted))
    counts = np.array([b["n"] for b in ours])
    assert ece == pytest.approx(float(np.sum(counts / counts.sum() * np.abs(observed - predicted))))


def test_the_bootstrap_interval_contains_the_accuracy_and_narrows_with_more_pairs():
    def ci(n):
        rows = [row(i) for i in range(n)]
        result = run(rows, [1.0 if i % 4 else -1.0 for i in range(n)])  # 3 of 4 right
        assert result["accuracy"] == pytest.approx(0.75)
        low, high = result["accuracy_ci"]
        assert low < 0.75 < high
        return high - low

    small, large = ci(20), ci(800)
    assert large < small / 3  # width shrinks like 1/√n: √40 ≈ 6.3
    assert ci(20) == small  # seeded: the same rows give the same interval


def test_bootstrap_edge_cases_have_no_interval_or_a_point():
    assert bootstrap_ci([], config=CONFIG) is None
    assert bootstrap_ci([1.0, 1.0, 1.0], config=CONFIG) == [1.0, 1.0]
    assert bootstrap_ci([0.0], config=CONFIG) == [0.0, 0.0]
    assert bootstrap_ci([0.0, 1.0], config=EvalConfig(bootstrap=0)) is None
    empty = run([], [])
    assert (empty["n"], empty["accuracy"], empty["accuracy_ci"], empty["ece"]) == (0, None, None, None)


def test_ties_are_not_scored_for_accuracy_or_calibration():
    rows = [row(1), row(2), row(3, outcome="tie"), row(4, outcome="both_bad")]
    result = run(rows, [2.0, 1.0, -9.0, -9.0])
    assert (result["n"], result["ties"], result["accuracy"]) == (2, 2, 1.0)
    assert sum(b["n"] for b in result["reliability"]) == 4  # two pairs, both ways
    assert result["scores"] == {"chosen": [2.0, 1.0], "rejected": [0.0, 0.0]}
    assert result["disagreements"] == []


def test_equal_scores_count_as_half_right():
    result = run([row(1), row(2)], [0.0, 0.0])
    assert result["accuracy"] == 0.5


def test_accuracy_by_agreement_level():
    rows = [
        row(1, agreement=1.0, num_labels=3),
        row(2, agreement=1.0, num_labels=2),
        row(3, agreement=2 / 3, num_labels=3),
        row(4, agreement=0.5, num_labels=4),
        row(5, agreement=1.0, num_labels=1),
    ]
    result = run(rows, [1.0, 1.0, -1.0, 1.0, -1.0])
    levels = {g["level"]: (g["n"], g["accuracy"]) for g in result["by_agreement"]}
    assert levels == {"unanimous": (2, 1.0), "majority": (1, 0.0), "split": (1, 1.0), "single": (1, 0.0)}
    assert [g["level"] for g in result["by_agreement"]] == ["unanimous", "majority", "split", "single"]


def test_agreement_with_each_annotator_maps_a_and_b_through_the_outcome():
    # Row 1: outcome a, so chosen = response a. Row 2: outcome b, so chosen = response b. Row 3: a tie (chosen = a).
    rows = [row(1, outcome="a"), row(2, outcome="b"), row(3, outcome="tie")]
    diffs = [1.0, 1.0, -1.0]  # the model prefers chosen, chosen, rejected (= response b on row 3)
    labels = [
        label(1, "ann", "a"),  # prefers chosen: agrees
        label(2, "ann", "b"),  # prefers chosen (b): agrees
        label(3, "ann", "a"),  # prefers a = chosen: model says b, disagrees
        label(1, "bob", "b"),  # prefers rejected: disagrees
        label(2, "bob", "b"),  # agrees
        label(3, "bob", "b"),  # prefers b = rejected, as does the model: agrees
        label(3, "bob", "tie"),  # no preference: not counted
        label(99, "bob", "a"),  # a comparison outside the rows: not counted
    ]
    result = run(rows, diffs, labels=labels)
    assert result["annotators"] == [
        {"annotator": "ann", "n": 3, "agreement": pytest.approx(2 / 3)},
        {"annotator": "bob", "n": 3, "agreement": pytest.approx(2 / 3)},
    ]
    assert result["labels"] == 6


def test_an_export_that_says_chosen_maps_labels_through_the_majority_of_their_votes():
    rows = [row(1, outcome="chosen"), row(2, outcome="chosen")]
    labels = [label(1, "x", "b"), label(1, "y", "b"), label(1, "z", "a"), label(2, "x", "a")]
    result = run(rows, [1.0, 1.0], labels=labels)  # row 1's chosen is b (2 votes to 1), row 2's is a
    assert {a["annotator"]: a["agreement"] for a in result["annotators"]} == {"x": 1.0, "y": 1.0, "z": 0.0}


def test_ranking_labels_are_left_out_of_the_label_figures():
    rows = [row(1), row(1)]  # one ranking comparison gives several pair rows with one comparison_id
    result = run(rows, [1.0, 1.0], labels=[label(1, "ann", "a", kind="ranking"), label(1, "ann", "", kind="ranking")])
    assert result["annotators"] == [] and result["by_source"] == [] and result["labels"] == 0


def test_label_agreement_by_segment_and_by_source():
    rows = [row(1), row(2)]
    diffs = [1.0, -1.0]  # right on 1, wrong on 2
    labels = [
        label(1, "kid1", "a"),
        label(2, "kid1", "a"),
        label(2, "kid2", "a"),
        label(1, "adult", "a"),
        label(1, "source:gpt", "b", source="gpt-judge"),
        label(2, "source:gpt", "b", source="gpt-judge"),
        label(1, "nobody", "a", source=""),  # a member without the attribute
    ]
    annotators = {"kid1": {"audience": "child"}, "kid2": {"audience": "child"}, "adult": {"audience": "adult"},
                  "nobody": {}}  # fmt: skip
    result = run(rows, diffs, labels=labels, annotators=annotators, segment_key="audience")
    groups = {g["value"]: (g["n"], g["agreement"]) for g in result["by_segment"]["groups"]}
    assert groups == {"child": (3, pytest.approx(1 / 3)), "adult": (1, 1.0)}
    assert result["by_segment"]["key"] == "audience" and result["by_segment"]["unassigned"] == 3
    sources = {s["source"]: (s["n"], s["agreement"]) for s in result["by_source"]}
    assert sources == {"annotators": (5, pytest.approx(3 / 5)), "gpt-judge": (2, 0.5)}
    assert all(s["ci"] is None or s["ci"][0] <= s["agreement"] <= s["ci"][1] for s in result["by_source"])
    segments = {a["annotator"]: a["segment"] for a in result["annotators"]}
    assert segments["kid1"] == "child" and segments["source:gpt"] is None
    assert run(rows, diffs, labels=labels, annotators=annotators)["by_segment"] is None


def test_confident_disagreements_are_listed_worst_first_with_short_texts():
    rows = [row(i, agreement=0.75, text="x" * 500) for i in range(5)]
    p = [0.3, 0.05, 0.9, 0.2, 0.15]  # 0.2 is exactly 1 − confident: listed
    result = run(rows, [logit(v) for v in p])
    listed = result["disagreements"]
    assert [d["comparison_id"] for d in listed] == [1, 4, 3]
    assert [d["p_model"] for d in listed] == pytest.approx([0.05, 0.15, 0.2])
    first = listed[0]
    assert (first["prompt_id"], first["human_agreement"]) == (101, 0.75)
    assert first["prompt"].startswith("prompt 1 x") and len(first["prompt"]) == 300
    assert first["chosen"].startswith("chosen 1") and first["rejected"] == "rejected 1"
    assert result["confidently_wrong"] == 3


def test_the_disagreement_list_stops_at_fifty():
    rows = [row(i) for i in range(80)]
    result = run(rows, [-5.0 - i / 10 for i in range(80)])
    assert len(result["disagreements"]) == 50 and result["confidently_wrong"] == 80
    assert result["disagreements"][0]["comparison_id"] == 79


def test_the_evaluation_is_plain_json():
    import json

    rows = [row(1), row(2, outcome="tie")]
    result = run(rows, [1.0, 0.5], labels=[label(1, "a", "a")], annotators={"a": {"k": "v"}}, segment_key="k")
    assert json.loads(json.dumps(result)) == result


def test_two_segment_models_disagree_where_their_preferences_part():
    rows = [row(i) for i in range(4)]
    child = ([2.0, 1.0, -1.0, 0.5], [0.0] * 4)
    adult = ([2.0, -3.0, 1.0, 0.4], [0.0] * 4)
    result = compare(rows, {"child": child, "adult": adult})
    assert result["models"] == ["child", "adult"]
    (pair,) = result["pairs"]
    assert pair["models"] == ["child", "adult"] and pair["n"] == 4
    assert pair["disagreement"] == pytest.approx(0.5)
    # Row 1: sigmoid(1) vs sigmoid(-3) is the larger gap, so it comes first; rows 0 and 3 agree.
    assert [item["comparison_id"] for item in pair["items"]] == [1, 2]
    assert pair["items"][0]["p_chosen"]["adult"] == pytest.approx(1 / (1 + math.e**3))
    assert compare(rows, {"only": child})["pairs"] == []
