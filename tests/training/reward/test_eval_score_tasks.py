"""The reward_eval and score children on job folders written by hand, with stand-in reward models (the real
artifact is covered by one features-mode test at the end)."""

import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from training.runner import Context, Unrecoverable
from training.tasks import reward_eval, score
from training.train_configs import DataConfig, EvalConfig, RewardEvalConfig, ScoreConfig


class LengthModel:
    """Scores an answer by its length (or minus it): P(a beats b) = sigmoid(scale·(len a − len b))."""

    def __init__(self, scale: float = 1.0, ensemble: list[float] | None = None) -> None:
        self.scale = scale
        self.ensemble = ensemble
        self.calls: list[int] = []

    def score(self, prompts, responses, batch_size=16):
        assert len(prompts) == len(responses) and all(isinstance(p, list) for p in prompts)
        self.calls.append(len(responses))
        return [self.scale * len(r) for r in responses]

    def score_ensemble(self, prompts, responses, batch_size=16):
        if self.ensemble is None:
            raise ValueError("a head reward model has no ensemble (train mode=features with ensemble > 0)")
        return np.array([[s * len(r) for r in responses] for s in self.ensemble])


@pytest.fixture
def loaded(monkeypatch):
    """Stands in for training.reward.artifact.load_reward_model: folder name → model; records each call."""
    models: dict[str, LengthModel] = {}
    calls: list[dict] = []

    def load_reward_model(folder, base_path=None, **kwargs):
        calls.append({"folder": str(folder), "base_path": base_path, **kwargs})
        return models[Path(folder).name]

    fake = types.ModuleType("training.reward.artifact")
    fake.load_reward_model = load_reward_model
    monkeypatch.setitem(sys.modules, "training.reward.artifact", fake)
    return models, calls


def context(tmp_path: Path, config, inputs: dict) -> tuple[Context, list[dict]]:
    """A real Context whose config is the task's dataclass (the runner builds it from the job's JSON)."""
    workdir = tmp_path / "job"
    workdir.mkdir(exist_ok=True)
    (workdir / "inputs.json").write_text(json.dumps(inputs))
    spec = {"job_id": 1, "attempt": 1, "kind": "noop", "config": {}, "inputs": str(workdir / "inputs.json"),
            "workdir": str(workdir), "data_dir": str(tmp_path)}  # fmt: skip
    events: list[dict] = []
    ctx = Context(spec, events.append)
    ctx.config = config
    return ctx, events


def spec(name: str, tmp_path: Path, parent: dict | None = None) -> dict:
    return {"name": name, "kind": "reward", "base_path": str(tmp_path / "models" / name), "adapter_path": None,
            "convert": None, "parent": parent}  # fmt: skip


def pair(cid: int, chosen: str, rejected: str, *, outcome: str = "a", agreement: float = 1.0) -> dict:
    return {
        "prompt": [{"role": "user", "content": f"question {cid}"}],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
        "comparison_id": cid,
        "prompt_id": cid,
        "chosen_model": "x",
        "rejected_model": "y",
        "num_labels": 2,
        "agreement": agreement,
        "strength": None,
        "outcome": outcome,
    }


def write_dataset(tmp_path: Path, train: list[dict], test: list[dict], labels: list[dict], annotators: dict) -> Path:
    data = tmp_path / "job" / "data"
    for folder, split, rows in (("pairs", "train", train), ("pairs", "test", test), ("labels", "train", labels)):
        (data / folder).mkdir(parents=True, exist_ok=True)
        (data / folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "annotators.json").write_text(json.dumps(annotators))
    return data


@pytest.fixture
def dataset(tmp_path):
    # Longer answers win on train and on 3 of 4 test pairs; the children prefer the short answer on pair 4.
    train = [pair(1, "a long answer", "short"), pair(2, "much longer answer", "tiny")]
    test = [
        pair(3, "detailed reply", "ok"),
        pair(4, "brief", "rambling long answer", agreement=0.5),
        pair(5, "same", "same", outcome="tie"),
        pair(6, "a longer one", "no"),
    ]
    labels = [
        {"comparison_id": 4, "kind": "pair", "annotator": "kid", "source": "annotators", "choice": "a"},
        {"comparison_id": 4, "kind": "pair", "annotator": "grown", "source": "annotators", "choice": "b"},
        {"comparison_id": 3, "kind": "pair", "annotator": "grown", "source": "annotators", "choice": "a"},
        {"comparison_id": 1, "kind": "pair", "annotator": "source:judge", "source": "judge", "choice": "a"},
    ]
    annotators = {"kid": {"audience": "child"}, "grown": {"audience": "adult"}}
    return write_dataset(tmp_path, train, test, labels, annotators)


def eval_config(**kwargs) -> RewardEvalConfig:
    return RewardEvalConfig(
        models=("longer", "shorter"), data=DataConfig(segment_key="audience"), eval=EvalConfig(bootstrap=200), **kwargs
    )


def test_reward_eval_writes_one_evaluation_per_model_and_where_they_disagree(tmp_path, dataset, loaded):
    models, calls = loaded
    models["longer"], models["shorter"] = LengthModel(1.0), LengthModel(-1.0)
    base = {"name": "base-lm", "kind": "base", "base_path": str(tmp_path / "base"), "adapter_path": None,
            "convert": None}  # fmt: skip
    inputs = {"data": str(dataset), "models": [spec("longer", tmp_path, parent=base), spec("shorter", tmp_path)]}
    ctx, events = context(tmp_path, eval_config(split="test"), inputs)
    result = reward_eval.run(ctx)

    assert result["longer"]["accuracy"] == pytest.approx(2 / 3) and result["longer"]["n"] == 3
    assert result["shorter"]["accuracy"] == pytest.approx(1 / 3)
    assert set(result["longer"]) == {"accuracy", "accuracy_ci", "ece", "n"}
    report = json.loads((ctx.workdir / "evaluation.json").read_text())
    assert report["split"] == "test" and set(report["models"]) == {"longer", "shorter"}
    longer = report["models"]["longer"]
    assert longer["ties"] == 1
    assert [d["comparison_id"] for d in longer["disagreements"]] == [4]  # sigmoid(5 − 19) ≈ 0: confidently wrong
    assert {g["value"]: g["agreement"] for g in longer["by_segment"]["groups"]} == {"child": 0.0, "adult": 1.0}
    (comparison,) = report["comparison"]["pairs"]
    assert comparison["models"] == ["longer", "shorter"] and comparison["disagreement"] == pytest.approx(0.75)
    assert calls[0]["base_path"] == str(tmp_path / "base") and calls[1]["base_path"] is None
    assert calls[0]["folder"].endswith("models/longer")
    assert {"type": "artifact", "name": "evaluation", "path": str(ctx.workdir / "evaluation.json"),
            "kind": "evaluation"} in events  # fmt: skip
    progress = [e for e in events if e["type"] == "progress"]
    assert progress[-1]["current"] == progress[-1]["total"] == 16  # 4 pairs × 2 answers × 2 models


def test_reward_eval_scores_each_distinct_text_once(tmp_path, dataset, loaded):
    models, _ = loaded
    models["longer"] = LengthModel()
    inputs = {"data": str(dataset), "models": [spec("longer", tmp_path)]}
    ctx, _ = context(tmp_path, eval_config(split="all"), inputs)
    result = reward_eval.run(ctx)
    assert result["longer"]["n"] == 5  # train and test, less the tie
    assert models["longer"].calls == [11]  # 12 answers in one call; "same" answers pair 5 on both sides
    report = json.loads((ctx.workdir / "evaluation.json").read_text())
    assert report["comparison"] is None


def test_reward_eval_without_pairs_fails_at_once(tmp_path, loaded):
    data = write_dataset(tmp_path, [], [], [], {})
    ctx, _ = context(tmp_path, eval_config(split="all"), {"data": str(data), "models": [spec("x", tmp_path)]})
    with pytest.raises(Unrecoverable, match="no preference pairs"):
        reward_eval.run(ctx)


def test_a_missing_model_folder_fails_at_once(tmp_path, dataset, monkeypatch):
    def load_reward_model(folder, base_path=None, **kwargs):
        raise FileNotFoundError(f"{folder} is not a reward model (no juror_reward.json)")

    fake = types.ModuleType("training.reward.artifact")
    fake.load_reward_model = load_reward_model
    monkeypatch.setitem(sys.modules, "training.reward.artifact", fake)
    ctx, _ = context(tmp_path, eval_config(), {"data": str(dataset), "models": [spec("gone", tmp_path)]})
    with pytest.raises(Unrecoverable, match="reward model 'gone'.*no juror_reward.json"):
        reward_eval.run(ctx)


RESPONSES = [
    {"id": 10, "prompt": [{"role": "user", "content": "hi"}], "text": "hello there"},
    {"id": 11, "prompt": [{"role": "user", "content": "hi"}], "text": "yo"},
    {"id": 12, "prompt": [{"role": "user", "content": "hi"}], "text": "hey"},
]


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_score_writes_each_responses_score_and_answers_the_api_items(tmp_path, loaded):
    models, _ = loaded
    models["rm"] = LengthModel(0.5)
    items = ({"prompt": "hi", "response": "abcd"}, {"prompt": [{"role": "user", "content": "hi"}], "a": "ab", "b": "a"})
    config = ScoreConfig(model="rm", items=items)
    ctx, events = context(tmp_path, config, {"models": [spec("rm", tmp_path)], "responses": RESPONSES})
    result = score.run(ctx)
    assert lines(ctx.workdir / "scores.jsonl") == [
        {"response_id": 10, "score": 5.5},
        {"response_id": 11, "score": 1.0},
        {"response_id": 12, "score": 1.5},
    ]
    assert result["items"] == [
        {"score": 2.0},
        {"score_a": 1.0, "score_b": 0.5, "p_a": pytest.approx(1 / (1 + math.exp(-0.5)))},
    ]
    assert result["responses"] == 3 and "prioritised" not in result
    assert not (ctx.workdir / "priorities.jsonl").exists()
    assert any(e["type"] == "artifact" and e["name"] == "scores" for e in events)


def test_score_prioritises_pairs_with_a_small_score_gap(tmp_path, loaded):
    models, _ = loaded
    models["rm"] = LengthModel(1.0)
    comparisons = [{"id": 1, "a": 10, "b": 11}, {"id": 2, "a": 11, "b": 12}, {"id": 3, "a": 12, "b": 12}]
    inputs = {"models": [spec("rm", tmp_path)], "responses": RESPONSES, "comparisons": comparisons}
    ctx, _ = context(tmp_path, ScoreConfig(model="rm", prioritise="gap"), inputs)
    result = score.run(ctx)
    got = {row["comparison_id"]: row["uncertainty"] for row in lines(ctx.workdir / "priorities.jsonl")}
    assert got[3] == pytest.approx(1.0)  # equal scores: a coin flip
    assert got[2] == pytest.approx(1 - abs(2 / (1 + math.exp(1)) - 1))  # one character apart
    assert got[1] == pytest.approx(1 - abs(2 / (1 + math.exp(-9)) - 1)) and got[1] < 0.001  # nine apart: sure
    assert result["prioritised"] == 3
    first = (ctx.workdir / "priorities.jsonl").read_bytes()
    score.run(ctx)  # a resumed attempt writes the same files
    assert (ctx.workdir / "priorities.jsonl").read_bytes() == first


def test_score_prioritises_by_the_spread_of_the_ensemble(tmp_path, loaded):
    models, _ = loaded
    models["rm"] = LengthModel(1.0, ensemble=[1.0, -1.0, 0.0])
    comparisons = [{"id": 1, "a": 10, "b": 11}, {"id": 2, "a": 12, "b": 12}]
    inputs = {"models": [spec("rm", tmp_path)], "responses": RESPONSES, "comparisons": comparisons}
    ctx, _ = context(tmp_path, ScoreConfig(model="rm", prioritise="ensemble"), inputs)
    score.run(ctx)
    got = {row["comparison_id"]: row["uncertainty"] for row in lines(ctx.workdir / "priorities.jsonl")}
    sig = 1 / (1 + math.exp(-9))
    assert got[1] == pytest.approx(2 * float(np.std([sig, 1 - sig, 0.5])))  # members split: very uncertain
    assert got[2] == pytest.approx(0.0)  # same answer: every member says 0.5


def test_ensemble_priorities_need_a_model_with_an_ensemble(tmp_path, loaded):
    models, _ = loaded
    models["rm"] = LengthModel(1.0)
    inputs = {"models": [spec("rm", tmp_path)], "responses": RESPONSES, "comparisons": [{"id": 1, "a": 10, "b": 11}]}
    ctx, _ = context(tmp_path, ScoreConfig(model="rm", prioritise="ensemble"), inputs)
    with pytest.raises(Unrecoverable, match="'rm' has no bootstrap ensemble.*prioritise=gap"):
        score.run(ctx)


def test_a_pair_whose_response_was_not_sent_fails_at_once(tmp_path, loaded):
    loaded[0]["rm"] = LengthModel()
    inputs = {"models": [spec("rm", tmp_path)], "responses": RESPONSES, "comparisons": [{"id": 7, "a": 10, "b": 99}]}
    ctx, _ = context(tmp_path, ScoreConfig(model="rm", prioritise="gap"), inputs)
    with pytest.raises(Unrecoverable, match="comparison 7: response 99"):
        score.run(ctx)


TOPICS = ["bake bread", "fix a bike", "plant tomatoes", "tie a tie", "learn chess", "paint a wall", "boil an egg",
          "sew a button", "change a tyre", "write a poem"]  # fmt: skip


def helpful(topic: str) -> str:
    return f"Sure! To {topic}, start by gathering what you need, then follow these steps carefully one by one."


def curt(topic: str) -> str:
    return "No."


@pytest.mark.model
@pytest.mark.slow
def test_a_saved_features_model_is_evaluated_and_scores_through_the_real_loader(tmp_path):
    """The real artifact: a MiniLM features model whose weight points from curt refusals to helpful answers."""
    from training.reward.artifact import load_reward_model, save_features
    from training.reward.features import FeatureFit, MiniLMEncoder

    encoder = MiniLMEncoder(max_length=128)
    prompts = [[{"role": "user", "content": f"How do I {t}?"}] for t in TOPICS[:5]]
    good = encoder.embed(encoder.texts(prompts, [helpful(t) for t in TOPICS[:5]]))
    bad = encoder.embed(encoder.texts(prompts, [curt(t) for t in TOPICS[:5]]))
    weight = (good - bad).mean(axis=0) * 20
    rng = np.random.default_rng(0)
    members = weight + rng.normal(0, 0.5, (4, weight.size))
    fit = FeatureFit(weight=weight, ensemble=members, iterations=0, train_accuracy=1.0, train_loss=0.0)
    folder = save_features(tmp_path / "models" / "rm", fit, encoder=encoder, encoder_kind="minilm", base=None,
                           max_length=128)  # fmt: skip

    test = [pair(i, helpful(t), curt(t)) for i, t in enumerate(TOPICS[5:])]
    test[0] = pair(0, curt(TOPICS[5]), helpful(TOPICS[5]))  # people preferred the curt one here, once
    for row, topic in zip(test, TOPICS[5:], strict=True):
        row["prompt"] = [{"role": "user", "content": f"How do I {topic}?"}]
    labels = [{"comparison_id": 0, "kind": "pair", "annotator": "kid", "source": "annotators", "choice": "a"}]
    data = write_dataset(tmp_path, [], test, labels, {"kid": {"audience": "child"}})
    config = RewardEvalConfig(models=("rm",), split="test", data=DataConfig(segment_key="audience", test_fraction=0.2))
    ctx, _ = context(tmp_path, config, {"data": str(data), "models": [spec("rm", tmp_path)]})
    result = reward_eval.run(ctx)
    assert result["rm"]["n"] == 5 and result["rm"]["accuracy"] == pytest.approx(0.8)
    report = json.loads((ctx.workdir / "evaluation.json").read_text())
    assert [d["comparison_id"] for d in report["models"]["rm"]["disagreements"]] == [0]
    assert report["models"]["rm"]["annotators"] == [{"annotator": "kid", "n": 1, "agreement": 0.0, "segment": "child"}]

    responses = [{"id": i, "prompt": [{"role": "user", "content": "How do I learn chess?"}], "text": text}
                 for i, text in enumerate([helpful("learn chess"), curt("learn chess")])]  # fmt: skip
    inputs = {"models": [spec("rm", tmp_path)], "responses": responses, "comparisons": [{"id": 9, "a": 0, "b": 1}]}
    ctx, _ = context(tmp_path, ScoreConfig(model="rm", prioritise="ensemble"), inputs)
    score.run(ctx)
    stored = [row["score"] for row in lines(ctx.workdir / "scores.jsonl")]
    direct = load_reward_model(folder).score([r["prompt"] for r in responses], [r["text"] for r in responses])
    assert stored == pytest.approx(direct) and stored[0] > stored[1]
    (priority,) = lines(ctx.workdir / "priorities.jsonl")
    assert priority["comparison_id"] == 9 and 0 <= priority["uncertainty"] <= 1
