"""features mode: the Bradley–Terry fit (ties, weights, margins), the embedding cache, and a real MiniLM run on a
preference with a known rule."""

import json

import numpy as np
import pytest

from tests.training.reward.helpers import make_context, polite_rows, tiny_base, write_data
from training.reward.data import Pair
from training.reward.features import EmbeddingCache, Encoder, embed_texts, fit_bradley_terry, fit_pairs


def _decided(n=40, seed=0):
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3)) * 0.1
    d[:, 0] = np.abs(d[:, 0]) + 0.5  # chosen always higher on feature 0
    return d


def test_the_fit_learns_the_deciding_feature():
    w, _ = fit_bradley_terry(_decided())
    assert w[0] > 1 and abs(w[0]) > 5 * max(abs(w[1]), abs(w[2]))


def test_ties_as_equal_targets_pull_their_difference_to_zero_where_wins_would_push_it():
    decided = _decided()
    along = np.array([[0.0, 1.0, 0.0]] * 20)  # these pairs differ on feature 1
    wins, _ = fit_bradley_terry(np.vstack([decided, along]))
    # A tie is the pair both ways at half weight (training.reward.data): P = 0.5 is its optimum.
    ties, _ = fit_bradley_terry(
        np.vstack([decided, along, -along]), weights=np.r_[np.ones(len(decided)), np.full(40, 0.5)]
    )
    assert wins[1] > 1 and abs(ties[1]) < 0.05


def test_weights_decide_between_contradicting_pairs():
    d = np.array([[1.0, 0.0], [-1.0, 0.0]])
    heavy_first, _ = fit_bradley_terry(d, weights=np.array([0.9, 0.1]))
    heavy_second, _ = fit_bradley_terry(d, weights=np.array([0.1, 0.9]))
    assert heavy_first[0] > 0.5 and heavy_second[0] < -0.5


def test_a_margin_demands_a_larger_score_gap():
    d = _decided()
    plain, _ = fit_bradley_terry(d)
    strong, _ = fit_bradley_terry(d, margins=np.full(len(d), 3.0))
    assert np.mean(d @ strong) > np.mean(d @ plain)


class CountingEncoder(Encoder):
    id = "counting:1"
    dim = 2

    def __init__(self):
        self.seen = 0

    def texts(self, prompts, answers):
        return list(answers)

    def embed(self, texts):
        self.seen += len(texts)
        return np.array([[len(t), t.count("a")] for t in texts], dtype=np.float32)


def test_the_cache_embeds_each_text_once_across_jobs(tmp_path):
    encoder = CountingEncoder()
    texts = ["abc", "aaa", "abc", "b"]
    first, stats = embed_texts(encoder, texts, cache=EmbeddingCache(tmp_path, encoder.id))
    assert stats.embedded == 3 and encoder.seen == 3  # the duplicate once
    again, stats = embed_texts(encoder, texts + ["new"], cache=EmbeddingCache(tmp_path, encoder.id))  # a new job
    assert stats.embedded == 1 and encoder.seen == 4
    assert np.array_equal(again[:4], first)
    assert len(list(tmp_path.rglob("*.safetensors"))) == 2
    other = CountingEncoder()
    other.id = "counting:2"  # another encoder never reads these
    embed_texts(other, texts, cache=EmbeddingCache(tmp_path, other.id))
    assert other.seen == 3


def test_an_ensemble_fits_one_vector_per_bootstrap_member():
    d = _decided()
    pairs = [Pair([], "c", "r") for _ in range(len(d))]
    fit = fit_pairs(d, np.zeros_like(d), pairs, l2=1e-3, ensemble=4, seed=1)
    assert fit.ensemble.shape == (4, 3) and fit.train_accuracy == 1.0
    assert len({tuple(np.round(m, 6)) for m in fit.ensemble}) == 4


@pytest.mark.model
@pytest.mark.slow
def test_minilm_features_learn_a_known_rule_and_reload_to_the_same_scores(tmp_path):
    """The rule: the polite answer wins. 240 training pairs, 80 held-out pairs on other prompts."""
    from training.reward.artifact import load_reward_model
    from training.tasks import reward

    data = write_data(tmp_path / "jobdata", polite_rows(240), polite_rows(80, seed=1, start=10_000))
    ctx = make_context(tmp_path, {"mode": "features", "ensemble": 3, "eval": {"bootstrap": 200}}, data=data)
    result = reward.run(ctx)
    assert result["accuracy"] > 0.8 and result["train_pairs"] == 240 and result["test_pairs"] == 80
    evaluation = json.loads((ctx.workdir / "evaluation.json").read_text())
    assert evaluation["n"] == 80 and evaluation["accuracy"] == result["accuracy"]
    kinds = [(e["name"], e["kind"]) for e in ctx.events if e["type"] == "artifact"]
    assert kinds == [("model", "reward-model"), ("evaluation", "evaluation")]
    assert any(e["type"] == "progress" and e["message"].startswith("embedding") for e in ctx.events)

    # The saved folder scores like the job's evaluation did, with a fresh encoder, and has its ensemble.
    rows = polite_rows(5, seed=7, start=20_000)
    prompts = [r["prompt"] for r in rows]
    polite = [r["chosen"][0]["content"] for r in rows]
    rude = [r["rejected"][0]["content"] for r in rows]
    model = load_reward_model(ctx.workdir / "model")
    assert all(p > r for p, r in zip(model.score(prompts, polite), model.score(prompts, rude), strict=True))
    assert model.score_ensemble(prompts, polite).shape == (3, 5)
    cached = load_reward_model(ctx.workdir / "model", cache_dir=ctx.data_dir / "cache" / "embeddings")
    assert cached.score(prompts, polite) == pytest.approx(model.score(prompts, polite), abs=1e-5)

    # A second job on the same texts embeds nothing new.
    again = make_context(tmp_path / "again", {"mode": "features", "eval": {"bootstrap": 50}}, data=data)
    again.data_dir = ctx.data_dir
    assert reward.run(again)["embedded"] == 0


@pytest.mark.model
@pytest.mark.slow
def test_lm_features_pool_real_tokens_only_and_reload_identically(tmp_path):
    from training.reward.artifact import load_reward_model
    from training.reward.features import LMEncoder
    from training.tasks import reward

    base = tiny_base(tmp_path / "base", pad_is_eos=True)
    encoder = LMEncoder(base, name="tiny", max_length=64, batch_size=2)
    prompts = [[{"role": "user", "content": "Hi?"}]] * 2
    texts = encoder.texts(prompts, ["Yes.", "A much longer answer that pads the first one. " * 2])
    alone = encoder.embed(texts[:1])
    together = encoder.embed(texts)  # the first text is padded with EOS ids here
    assert np.allclose(alone[0], together[0], atol=1e-5)

    data = write_data(tmp_path / "jobdata", polite_rows(16), polite_rows(6, seed=1, start=100))
    ctx = make_context(
        tmp_path, {"mode": "features", "model": {"encoder": "lm", "max_length": 64}}, data=data, base=base
    )
    result = reward.run(ctx)
    assert result["train_pairs"] == 16
    assert json.loads((ctx.workdir / "model" / "juror_reward.json").read_text())["base"] == "tiny"
    rows = polite_rows(4, seed=3, start=500)
    prompts = [r["prompt"] for r in rows]
    answers = [r["chosen"][0]["content"] for r in rows]
    first = load_reward_model(ctx.workdir / "model", base_path=base).score(prompts, answers)
    second = load_reward_model(ctx.workdir / "model", base_path=base).score(prompts, answers)
    assert first == pytest.approx(second, abs=1e-6)
