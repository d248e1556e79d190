"""How well a reward model agrees with the people who labelled the pairs: the figures of evaluation.json.

Plain data in, a JSON-ready dict out (numpy, scipy and scikit-learn only; no torch, no Django), so a training
job, the reward_eval job and the tests all compute the same numbers from the exported files.

Conventions, used throughout:
- A pair row (the export's `pairs` kind) has `chosen` and `rejected`; the model's P(chosen wins) is
  sigmoid(score_chosen − score_rejected), the Bradley–Terry reading of two scalar rewards.
- The model "prefers" the answer with the higher score; exactly equal scores are a coin flip and count as half
  right, so a constant model scores 0.5 rather than 0 or 1.
- Rows whose outcome is a tie (or both bad) say nothing about which answer is better: they are not scored for
  accuracy or calibration, but their labels still count in the label-level figures.
- Label-level figures (by segment, by source, per annotator) map each a/b label onto its pair row through
  `chosen_side`: pairs are stored with response a's id below b's, so the row's chosen/rejected response ids
  say which side `chosen` is.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats
from scipy.special import expit

from .files import text_of

if TYPE_CHECKING:
    from training.train_configs import EvalConfig

MAX_DISAGREEMENTS = 50
TEXT_CHARS = 300
SEED = 0
NO_PREFERENCE = ("tie", "both_bad")
LEVELS = ("unanimous", "majority", "split", "single")


def p_chosen(chosen_scores: Sequence[float], rejected_scores: Sequence[float]) -> np.ndarray:
    """P(chosen beats rejected) under Bradley–Terry: sigmoid of the score difference (expit never overflows)."""
    return expit(np.asarray(chosen_scores, dtype=float) - np.asarray(rejected_scores, dtype=float))


def _right(diff: np.ndarray) -> np.ndarray:
    """1 where the model prefers the first answer, 0 where the second, 0.5 on an exact tie of scores."""
    return np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5))


def bootstrap_ci(values: Sequence[float], *, config: EvalConfig, seed: int = SEED) -> list[float] | None:
    """Percentile bootstrap interval of the mean (scipy.stats.bootstrap), seeded so reruns agree.

    None when there is nothing to estimate (no values, or eval.bootstrap = 0). Constant values (including a
    single one) give [mean, mean]: every resample has that mean, which is what the percentile bootstrap returns;
    scipy instead warns and returns NaN for them. Percentile rather than BCa: BCa's jackknife costs O(n²) on the
    tens of thousands of labels a project can have, and degenerates at accuracies of exactly 0 or 1."""
    data = np.asarray(values, dtype=float)
    if data.size == 0 or config.bootstrap == 0:
        return None
    mean = float(data.mean())
    if np.all(data == data[0]):
        return [mean, mean]
    result = stats.bootstrap(
        (data,),
        np.mean,
        n_resamples=config.bootstrap,
        confidence_level=config.confidence,
        method="percentile",
        vectorized=True,
        batch=max(1, 4_000_000 // data.size),  # at most ~32 MB of resampled data at a time
        rng=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return [float(low), float(high)]


def calibration(p: Sequence[float], *, bins: int) -> tuple[float | None, list[dict]]:
    """Expected calibration error and reliability-diagram bins of P(chosen wins), over the non-tie pairs.

    Every pair is counted in both orientations, (p, chosen won = 1) and (1 − p, rejected won = 0): the winner is
    always `chosen`, so the one-sided outcomes would all be 1 and a model that says 0.99 for everything would
    look perfectly calibrated. Symmetric, the diagram asks the real question: of the answers given probability
    p of winning, did a share p win?

    Bins are computed here rather than with sklearn.calibration.calibration_curve because the diagram needs each
    bin's edges and count (for the ECE weights and the plot), which calibration_curve does not return; the
    binning is calibration_curve's uniform one (a value on an inner edge goes to the lower bin)."""
    p = np.asarray(p, dtype=float)
    if p.size == 0:
        return None, []
    probs = np.concatenate([p, 1.0 - p])
    outcome = np.concatenate([np.ones_like(p), np.zeros_like(p)])
    edges = np.linspace(0.0, 1.0, bins + 1)
    # calibration_curve's binning, so the two agree; rounded first so that p and 1 − p computed from the same
    # score gap (0.8999… and 0.9000…1) land in the same bin when they sit on an edge.
    index = np.searchsorted(edges[1:-1], np.round(probs, 9))
    ece = 0.0
    table = []
    for b in range(bins):
        mask = index == b
        n = int(mask.sum())
        mean_predicted = float(probs[mask].mean()) if n else None
        observed = float(outcome[mask].mean()) if n else None
        if n:
            ece += n / probs.size * abs(mean_predicted - observed)
        table.append(
            {
                "lo": float(edges[b]),
                "hi": float(edges[b + 1]),
                "n": n,
                "mean_predicted": mean_predicted,
                "observed": observed,
            }
        )
    return float(ece), table


def chosen_side(row: dict, votes: Counter | None = None) -> str | None:
    """Which response (a or b) the row's `chosen` is.

    From the outcome when it says (a, b; a tie or both-bad row keeps a as `chosen`). An export that writes
    "chosen" for either side gets it from the comparison's a/b `votes` instead: the side with more votes, which
    is exactly the majority outcome (a split between a and b would have been a tie) and, with Dawid–Skene,
    almost always the side its posterior chose. None when neither says (equal votes): the row's labels are then
    left out."""
    if row.get("chosen_response_id") is not None and row.get("rejected_response_id") is not None:
        # A pair is stored with response a's id below b's, so the ids say which side `chosen` is.
        return "a" if row["chosen_response_id"] < row["rejected_response_id"] else "b"
    outcome = row.get("outcome")
    if outcome == "b":
        return "b"
    if outcome in ("a", *NO_PREFERENCE):
        return "a"
    if votes and votes["a"] != votes["b"]:
        return "a" if votes["a"] > votes["b"] else "b"
    return None


def agreement_level(row: dict) -> str:
    """unanimous (every vote for the outcome), majority (more than half), split (half or less), or single
    (one label: agreement 1.0 by construction, so it would flatter "unanimous"). Agreement is the export's: the
    vote share, or with Dawid–Skene the outcome's posterior (where 0.999 counts as unanimous)."""
    if (row.get("num_labels") or 0) == 1:
        return "single"
    agreement = row.get("agreement")
    if agreement is None:
        return "split"
    if agreement >= 0.999:
        return "unanimous"
    return "majority" if agreement > 0.5 else "split"


@dataclass(frozen=True)
class Vote:
    """One annotator's a/b label on a scored pair row, and whether the model sided with it (0, 0.5 or 1)."""

    label: dict
    row: int
    prefers_chosen: bool
    model_agrees: float


def label_votes(rows: Sequence[dict], labels: Iterable[dict], diff: np.ndarray) -> list[Vote]:
    """The labels that can be held against the model: choice a or b, on a pair comparison among `rows`.

    Ranking labels are left out (a ranking comparison becomes several pair rows with one comparison_id, and a
    ranking label is not an a/b choice); so are ties and both-bad votes, which prefer neither answer."""
    by_comparison = {}
    for i, row in enumerate(rows):
        by_comparison.setdefault(row.get("comparison_id"), i)
    usable = [
        label
        for label in labels
        if label.get("kind") != "ranking"
        and label.get("choice") in ("a", "b")
        and label.get("comparison_id") in by_comparison
    ]
    counts: dict[object, Counter] = defaultdict(Counter)
    for label in usable:
        counts[label["comparison_id"]][label["choice"]] += 1
    votes = []
    for label in usable:
        i = by_comparison[label["comparison_id"]]
        side = chosen_side(rows[i], counts[label["comparison_id"]])
        if side is None:
            continue
        prefers_chosen = label["choice"] == side
        agrees = _right(diff[i : i + 1])[0] if prefers_chosen else 1.0 - _right(diff[i : i + 1])[0]
        votes.append(Vote(label, i, prefers_chosen, float(agrees)))
    return votes


def _source(label: dict) -> str:
    return label.get("source") or "annotators"


def _groups(votes: Iterable[Vote], key, *, config: EvalConfig, name: str) -> list[dict]:
    grouped: dict[str, list[float]] = defaultdict(list)
    for vote in votes:
        value = key(vote)
        if value is not None:
            grouped[str(value)].append(vote.model_agrees)
    return [
        {
            name: value,
            "n": len(agrees),
            "agreement": float(np.mean(agrees)),
            "ci": bootstrap_ci(agrees, config=config),
        }
        for value, agrees in sorted(grouped.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    ]


def prompt_text(prompt) -> str:
    """A prompt cell as text: a one-turn conversation is its text, longer ones keep their turns, labelled."""
    if isinstance(prompt, str):
        return prompt
    if len(prompt) == 1:
        return prompt[0].get("content", "")
    return "\n\n".join(f"{m.get('role', '').capitalize()}: {m.get('content', '')}" for m in prompt)


def _texts(row: dict) -> dict:
    return {
        "prompt": prompt_text(row.get("prompt") or "")[:TEXT_CHARS],
        "chosen": text_of(row.get("chosen"))[:TEXT_CHARS],
        "rejected": text_of(row.get("rejected"))[:TEXT_CHARS],
    }


def _round(values: np.ndarray, digits: int = 6) -> list[float]:
    return [round(float(v), digits) for v in values]


def evaluate(
    rows: list[dict],
    chosen_scores: list[float],
    rejected_scores: list[float],
    *,
    labels: list[dict],
    annotators: dict,
    config: EvalConfig,
    segment_key: str,
) -> dict:
    """One reward model's evaluation on exported pair rows: the evaluation.json that the reward model's page and
    the API show.

    `labels` are the export's label rows (any split: only those on comparisons in `rows` count), `annotators`
    maps a pseudonym to its membership attributes, and `segment_key` names the attribute to break label-level
    agreement down by (empty: no by_segment, which is then None)."""
    if not (len(rows) == len(chosen_scores) == len(rejected_scores)):
        raise ValueError(f"{len(rows)} rows but {len(chosen_scores)} chosen and {len(rejected_scores)} rejected scores")
    chosen = np.asarray(chosen_scores, dtype=float)
    rejected = np.asarray(rejected_scores, dtype=float)
    diff = chosen - rejected
    p = expit(diff)
    scored = np.array([row.get("outcome") not in NO_PREFERENCE for row in rows], dtype=bool)
    right = _right(diff)

    accuracy_values = right[scored]
    ece, reliability = calibration(p[scored], bins=config.bins)

    levels: dict[str, list[float]] = defaultdict(list)
    for i in np.flatnonzero(scored):
        levels[agreement_level(rows[i])].append(right[i])
    by_agreement = [
        {
            "level": level,
            "n": len(levels[level]),
            "accuracy": float(np.mean(levels[level])),
            "ci": bootstrap_ci(levels[level], config=config),
        }
        for level in LEVELS
        if levels[level]
    ]

    votes = label_votes(rows, labels, diff)
    by_segment = None
    if segment_key:

        def segment_of(vote: Vote):
            return (annotators.get(vote.label.get("annotator")) or {}).get(segment_key)

        by_segment = {
            "key": segment_key,
            "groups": _groups(votes, segment_of, config=config, name="value"),
            "unassigned": sum(1 for v in votes if segment_of(v) is None),
        }

    per_annotator: dict[str, list[float]] = defaultdict(list)
    for vote in votes:
        per_annotator[vote.label.get("annotator") or ""].append(vote.model_agrees)
    annotator_rows = []
    for name, agrees in sorted(per_annotator.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        entry = {"annotator": name, "n": len(agrees), "agreement": float(np.mean(agrees))}
        if segment_key:
            entry["segment"] = (annotators.get(name) or {}).get(segment_key)
        annotator_rows.append(entry)

    # Confidently wrong: the model gives the human-chosen answer at most 1 − confident, i.e. it prefers the other
    # one with probability ≥ confident. Worst (lowest P(chosen)) first; ties by row order, so the list is stable.
    wrong = [i for i in np.flatnonzero(scored) if p[i] <= 1.0 - config.confident + 1e-12]
    wrong.sort(key=lambda i: (p[i], i))
    disagreements = [
        {
            "comparison_id": rows[i].get("comparison_id"),
            "prompt_id": rows[i].get("prompt_id"),
            "p_model": float(p[i]),
            "human_agreement": rows[i].get("agreement"),
            "num_labels": rows[i].get("num_labels"),
            "chosen_model": rows[i].get("chosen_model"),
            "rejected_model": rows[i].get("rejected_model"),
            **_texts(rows[i]),
        }
        for i in wrong[:MAX_DISAGREEMENTS]
    ]

    n = int(scored.sum())
    return {
        "n": n,
        "ties": int(len(rows) - n),
        "accuracy": float(accuracy_values.mean()) if n else None,
        "accuracy_ci": bootstrap_ci(accuracy_values, config=config),
        "confidence": config.confidence,
        "ece": ece,
        "reliability": reliability,
        "scores": {"chosen": _round(chosen[scored]), "rejected": _round(rejected[scored])},
        "by_agreement": by_agreement,
        "by_segment": by_segment,
        "by_source": _groups(votes, lambda v: _source(v.label), config=config, name="source"),
        "annotators": annotator_rows,
        "labels": len(votes),
        "disagreements": disagreements,
        "confidently_wrong": len(wrong),
    }


def compare(rows: list[dict], scores: dict[str, tuple[Sequence[float], Sequence[float]]], *, top: int = 20) -> dict:
    """Where reward models part ways on the same rows (e.g. one trained on children's labels, one on adults').

    `scores` maps a model's name to its (chosen, rejected) scores on `rows`. For every two models: the share of
    rows where they prefer different answers (an exact tie of scores counts as half a disagreement), the mean
    absolute difference of their P(chosen), the rank correlation of their score differences, and the `top` rows
    where they disagree most (they prefer different answers; largest gap in P(chosen) first). Tie rows count
    too: two models can disagree where people saw no difference."""
    names = list(scores)
    probs = {}
    for name in names:
        chosen, rejected = scores[name]
        if not (len(chosen) == len(rejected) == len(rows)):
            raise ValueError(f"{name}: scores do not match the {len(rows)} rows")
        probs[name] = p_chosen(chosen, rejected)
    pairs = []
    for first, second in combinations(names, 2):
        p1, p2 = probs[first], probs[second]
        sides1, sides2 = _right(p1 - 0.5), _right(p2 - 0.5)
        disagree = np.abs(sides1 - sides2)  # 1: opposite answers, 0.5: one of them undecided
        gap = np.abs(p1 - p2)
        order = sorted(np.flatnonzero(disagree == 1.0), key=lambda i: (-gap[i], i))[:top]
        correlation = None
        if len(rows) >= 2 and np.ptp(p1) > 0 and np.ptp(p2) > 0:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rho = stats.spearmanr(p1, p2).statistic
            correlation = None if math.isnan(rho) else float(rho)
        pairs.append(
            {
                "models": [first, second],
                "n": len(rows),
                "disagreement": float(disagree.mean()) if len(rows) else None,
                "mean_abs_difference": float(gap.mean()) if len(rows) else None,
                "spearman": correlation,
                "items": [
                    {
                        "comparison_id": rows[i].get("comparison_id"),
                        "prompt_id": rows[i].get("prompt_id"),
                        "outcome": rows[i].get("outcome"),
                        "human_agreement": rows[i].get("agreement"),
                        "p_chosen": {first: float(p1[i]), second: float(p2[i])},
                        **_texts(rows[i]),
                    }
                    for i in order
                ],
            }
        )
    return {"models": names, "pairs": pairs}
