"""The reward model artifact: a folder the registry stores, and the one loader that scores with it.

Layout (`juror_reward.json` names the mode and what loading needs):
- features: classifier.safetensors (weight, bias, optional ensemble); the encoder is the MiniLM package or the
  base LM (encoder=lm), never copied;
- head/full: the sequence classifier's save_pretrained, with its tokenizer;
- lora/qlora: the peft adapter (score head included through modules_to_save) and tokenizer; the base comes from
  the registry parent (`base_path`).
Every folder is written under a temporary name and renamed, so the registry never copies half a model.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from training.reward.data import chat_ids
from training.runner import write_folder_atomic

if TYPE_CHECKING:
    from training.reward.features import Encoder, FeatureFit

MANIFEST = "juror_reward.json"
CLASSIFIER = "classifier.safetensors"
FORMAT = 1


def _manifest(mode: str, **fields: Any) -> str:
    return json.dumps({"format": FORMAT, "mode": mode, **fields}, indent=2, sort_keys=True)


def save_features(
    folder: Path, fit: FeatureFit, *, encoder: Encoder, encoder_kind: str, base: str | None, max_length: int, **extra
) -> Path:
    """Writes a features-mode reward model: the classifier's vectors and how to rebuild the encoder."""
    from safetensors.numpy import save_file

    def write(tmp: Path) -> None:
        tensors = {"weight": fit.weight.astype(np.float32), "bias": np.zeros(1, dtype=np.float32)}
        if fit.ensemble is not None:
            tensors["ensemble"] = fit.ensemble.astype(np.float32)
        save_file(tensors, str(tmp / CLASSIFIER))
        (tmp / MANIFEST).write_text(
            _manifest(
                "features",
                encoder=encoder_kind,
                encoder_id=encoder.id,
                dim=int(fit.weight.shape[0]),
                ensemble=0 if fit.ensemble is None else int(fit.ensemble.shape[0]),
                base=base if encoder_kind == "lm" else None,
                max_length=max_length,
                pad_token=None,
                **extra,
            )
        )

    return write_folder_atomic(folder, write)


def save_transformer(folder: Path, model, tokenizer, *, mode: str, base: str | None, max_length: int, **extra) -> Path:
    """Writes a head/full classifier (whole) or a lora/qlora adapter with its score head, plus the tokenizer."""

    def write(tmp: Path) -> None:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        (tmp / MANIFEST).write_text(
            _manifest(
                mode,
                encoder=None,
                base=base,
                max_length=max_length,
                pad_token=tokenizer.pad_token,
                quantization="nf4" if mode == "qlora" else None,
                **extra,
            )
        )

    return write_folder_atomic(folder, write)


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a reward model (no {MANIFEST})")
    return json.loads(path.read_text(encoding="utf-8"))


class RewardModel(ABC):
    """A loaded reward model: a scalar score per (conversation, response); P(a beats b) = sigmoid(s_a − s_b)."""

    def __init__(self, meta: dict) -> None:
        self.meta = meta
        self.mode: str = meta["mode"]

    @abstractmethod
    def score(self, prompts: Sequence[list[dict]], responses: Sequence[str], batch_size: int = 16) -> list[float]:
        """One score per response to its conversation."""

    def score_ensemble(
        self, prompts: Sequence[list[dict]], responses: Sequence[str], batch_size: int = 16
    ) -> np.ndarray:
        """[members, n] scores of a features model's bootstrap ensemble."""
        raise ValueError(f"a {self.mode} reward model has no ensemble (train mode=features with ensemble > 0)")


class FeatureRewardModel(RewardModel):
    def __init__(
        self, meta: dict, weight: np.ndarray, ensemble: np.ndarray | None, encoder: Encoder, cache_dir: Path | None
    ) -> None:
        super().__init__(meta)
        self.weight = weight
        self.ensemble = ensemble
        self.encoder = encoder
        self.cache_dir = cache_dir

    def embeddings(self, prompts: Sequence[list[dict]], responses: Sequence[str]) -> np.ndarray:
        from training.reward.features import EmbeddingCache, embed_texts

        cache = EmbeddingCache(self.cache_dir, self.encoder.id) if self.cache_dir else None
        emb, _ = embed_texts(self.encoder, self.encoder.texts(prompts, responses), cache=cache)
        return emb

    def score(self, prompts, responses, batch_size: int = 16) -> list[float]:
        return [float(s) for s in self.embeddings(prompts, responses) @ self.weight]

    def score_ensemble(self, prompts, responses, batch_size: int = 16) -> np.ndarray:
        if self.ensemble is None:
            return super().score_ensemble(prompts, responses, batch_size)
        return self.ensemble.astype(np.float32) @ self.embeddings(prompts, responses).T


class TransformerRewardModel(RewardModel):
    def __init__(self, meta: dict, model, tokenizer) -> None:
        super().__init__(meta)
        self.model = model.eval()
        self.tokenizer = tokenizer

    def score(self, prompts, responses, batch_size: int = 16) -> list[float]:
        return score_with(self.model, self.tokenizer, prompts, responses, self.meta["max_length"], batch_size)


def score_with(model, tokenizer, prompts, responses, max_length: int, batch_size: int = 16) -> list[float]:
    """Scores with a sequence classifier: each conversation cut to its last max_length tokens (as in training),
    right-padded with the (distinct) pad token, the score read at the last real token."""
    import torch

    seqs = [chat_ids(tokenizer, p, r, max_length)[0] for p, r in zip(prompts, responses, strict=True)]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))  # similar lengths share a batch
    out = [0.0] * len(seqs)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            width = max(len(seqs[i]) for i in idx)
            ids = torch.full((len(idx), width), tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                ids[row, : len(seqs[i])] = torch.tensor(seqs[i])
                mask[row, : len(seqs[i])] = 1
            with torch.no_grad():
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, 0]
            for row, i in enumerate(idx):
                out[i] = float(logits[row].float())
    finally:
        model.train(was_training)
    return out


def load_reward_model(
    folder: str | Path,
    base_path: str | Path | None = None,
    *,
    cache_dir: Path | None = None,
    encoder: Encoder | None = None,
) -> RewardModel:
    """Loads a reward model folder; lora/qlora and features with encoder=lm need the base model's folder.

    cache_dir: where features models keep embeddings (the job's data dir cache); encoder: an already loaded
    encoder of the same id, to skip loading it twice."""
    folder = Path(folder)
    meta = read_manifest(folder)
    mode = meta["mode"]
    if mode == "features":
        from safetensors.numpy import load_file

        from training.reward.features import make_encoder

        tensors = load_file(str(folder / CLASSIFIER))
        if encoder is None or encoder.id != meta["encoder_id"]:
            encoder = make_encoder(
                meta["encoder"], max_length=meta["max_length"], base_path=base_path, base_name=meta.get("base") or ""
            )
        if encoder.id != meta["encoder_id"]:
            raise ValueError(f"{folder} was trained on encoder {meta['encoder_id']}, this one is {encoder.id}")
        return FeatureRewardModel(meta, tensors["weight"], tensors.get("ensemble"), encoder, cache_dir)

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    if mode in ("head", "full"):
        import torch
        from transformers import AutoModelForSequenceClassification

        from training.reward.transformer import on_gpu

        model = AutoModelForSequenceClassification.from_pretrained(
            folder,
            dtype=torch.float32,
            use_safetensors=True,
            trust_remote_code=False,
            device_map={"": 0} if on_gpu() else "cpu",
        )
        return TransformerRewardModel(meta, model, tokenizer)
    if mode in ("lora", "qlora"):
        if base_path is None:
            raise ValueError(f"a {mode} reward model needs its base model's folder (base_path)")
        from peft import PeftModel

        from training.ml.loading import _adapter_dir
        from training.reward.transformer import load_classifier

        base = load_classifier(base_path, tokenizer, quantized=mode == "qlora")
        # The adapter's modules_to_save brings back the trained score head; without it the head stays random.
        model = PeftModel.from_pretrained(base, _adapter_dir(folder), is_trainable=False)
        return TransformerRewardModel(meta, model, tokenizer)
    raise ValueError(f"unknown reward model mode {mode!r} in {folder}")
