"""Configs of the training kinds (reward models now; SFT, DPO and PPO reuse the parts).

Training configs nest: which preferences (`data`), which model and how it loads (`model`), the adapter
(`lora`), the optimiser (`trainer`), the evaluation (`eval`). Every field's docstring is its help text in the
/jobs/new form and in `submit_job KIND --list-config`, where nested fields are named `lora.r`.
This module stays importable without Django: the child process builds its config from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from feedback.exports.options import SEGMENT, ExportOptions

from .configs import DEFAULT_BASE_MODEL, ConfigError

MODES = ("features", "head", "full", "lora", "qlora")
NAME = re.compile(r"[A-Za-z0-9_-]+")
"""A registry name (training.registry.SLUG): ASCII only, so no look-alike of another model's name gets through."""
MAX_SEED = 2**32 - 1
"""numpy and torch refuse larger seeds (transformers' set_seed seeds both)."""
MAX_TEXT = 200_000
"""Characters per text sent to the scoring API (a reward model reads at most its max_length tokens of it)."""
DEFAULT_LEARNING_RATES = {"head": 1e-3, "full": 1e-5, "lora": 1e-4, "qlora": 2e-4}


def _name_checks(name: str) -> list[tuple[bool, str]]:
    """A trained model's registry name: the registry's own rule, checked before hours of training, not after."""
    return [
        (len(name) <= 100, "name must be at most 100 characters"),
        (not name or bool(NAME.fullmatch(name)), "name: ASCII letters, digits, - and _"),
    ]


def _check(checks: list[tuple[bool, str]]) -> None:
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


@dataclass(frozen=True)
class DataConfig:
    """Which of the project's preferences train and test the model (the same filters as an export)."""

    aggregation: Literal["majority", "dawid_skene"] = "majority"
    """How several labels of one pair become one outcome: majority vote, or Dawid–Skene (reliable annotators
    count for more)."""
    min_agreement: float = 0.0
    """Leave out pairs whose outcome has less agreement than this (share of votes; Dawid–Skene: posterior)."""
    min_labels: int = 1
    """Leave out pairs with fewer labels than this."""
    sources: tuple[str, ...] = ()
    """Label sources: "annotators" and/or imported judges' names. Empty: all."""
    segment: str = ""
    """key=value: only labels from annotators with this segment attribute (one reward model per audience)."""
    segment_key: str = ""
    """An annotator attribute (e.g. audience) to break the evaluation down by; empty: the key of `segment`."""
    ties: Literal["exclude", "equal"] = "exclude"
    """Ties: left out, or trained towards equal scores (each tie as a pair both ways, at half weight)."""
    weighting: Literal["none", "agreement"] = "none"
    """none: every pair counts the same; agreement: a pair weighs its outcome's agreement (with
    aggregation=dawid_skene, the annotators' reliability-weighted posterior)."""
    margin: bool = False
    """Use the labels' strength (1–3) as a margin the chosen score must clear."""
    test_fraction: float = 0.2
    """Share of prompts held out for evaluation; a prompt's pairs are never in both splits."""
    seed: int = 0
    """Changes which prompts are held out, deterministically."""
    max_pairs: int = 0
    """Train on at most this many pairs (the first ones, in a fixed order); 0: all."""

    def __post_init__(self) -> None:
        _check(
            [
                (0 <= self.min_agreement <= 1, "data.min_agreement must be between 0 and 1"),
                (self.min_labels >= 1, "data.min_labels must be at least 1"),
                (
                    not self.segment or bool(SEGMENT.match(self.segment)),
                    "data.segment is key=value, e.g. audience=child",
                ),
                (not self.segment_key or "=" not in self.segment_key, "data.segment_key is an attribute name"),
                (0 <= self.test_fraction < 1, "data.test_fraction must be at least 0 and below 1"),
                (self.seed >= 0, "data.seed must not be negative"),
                (self.max_pairs >= 0, "data.max_pairs must not be negative"),
            ]
        )

    def export_options(self, *, kind: str = "pairs") -> ExportOptions:
        """The export these settings select, as files the child reads (the one preference-dataset definition)."""
        return ExportOptions(
            kind=kind,
            format="jsonl",
            style="conversational",
            aggregation=self.aggregation,
            include_ties=self.ties == "equal",
            min_agreement=self.min_agreement,
            min_labels=self.min_labels,
            segment=self.segment,
            sources=self.sources,
            test_fraction=self.test_fraction,
            seed=self.seed,
        )

    @property
    def breakdown_key(self) -> str:
        return self.segment_key or self.segment.partition("=")[0]


@dataclass(frozen=True)
class ModelConfig:
    """The model the reward model is built from."""

    base: str = DEFAULT_BASE_MODEL
    """Registry name of the causal LM: the body of head/full/lora/qlora, and the encoder when encoder=lm."""
    encoder: Literal["minilm", "lm"] = "minilm"
    """features mode: minilm (all-MiniLM-L6-v2 sentence embeddings, shipped offline) or lm (the base model's
    mean-pooled last hidden states)."""
    max_length: int = 256
    """Tokens per prompt+response; longer ones keep their end (the last turns and the answer), never dropped."""

    def __post_init__(self) -> None:
        _check([(16 <= self.max_length <= 8192, "model.max_length must be between 16 and 8192")])


@dataclass(frozen=True)
class LoraConfig:
    """The LoRA adapter (modes lora and qlora): on every linear layer, with the score head trained in full."""

    r: int = 16
    """Rank of the adapter's matrices."""
    alpha: int = 32
    """Scale: the update is multiplied by alpha / r."""
    dropout: float = 0.0
    """Dropout on the adapter's input (0 keeps training deterministic)."""

    def __post_init__(self) -> None:
        _check(
            [
                (1 <= self.r <= 512, "lora.r must be between 1 and 512"),
                (1 <= self.alpha <= 4096, "lora.alpha must be between 1 and 4096"),
                (0 <= self.dropout < 1, "lora.dropout must be at least 0 and below 1"),
            ]
        )


@dataclass(frozen=True)
class TrainerConfig:
    """The optimiser and its schedule."""

    epochs: float = 1.0
    """Passes over the training pairs (features mode: over the embeddings)."""
    max_steps: int = 0
    """Stop after this many optimiser steps; 0: run the epochs."""
    learning_rate: float = 0.0
    """0: the mode's default (head 1e-3, full 1e-5, lora 1e-4, qlora 2e-4; features: fitted by L-BFGS)."""
    batch_size: int = 8
    """Pairs per optimiser step."""
    gradient_accumulation: int = 1
    """Batches whose gradients add up before a step."""
    weight_decay: float = 0.0
    """Decoupled weight decay (AdamW); features mode: L2 strength of the classifier."""
    gradient_checkpointing: bool = False
    """Transformer modes: recompute activations in the backward pass instead of keeping them. Measured on SmolLM2
    QLoRA at 256 tokens × 8 pairs on CPU: peak 9.5 GB → 5.8 GB, 11 → 16 s per step."""
    save_steps: int = 20
    """Checkpoint every this many steps; a resumed job continues from the last complete one."""
    seed: int = 0
    """Seeds initialisation and batch order."""

    def __post_init__(self) -> None:
        _check(
            [
                (0 < self.epochs <= 100, "trainer.epochs must be above 0 and at most 100"),
                (0 <= self.max_steps <= 10_000_000, "trainer.max_steps must be between 0 and 10000000"),
                (0 <= self.learning_rate <= 1, "trainer.learning_rate must be between 0 and 1"),
                (1 <= self.batch_size <= 1024, "trainer.batch_size must be between 1 and 1024"),
                (1 <= self.gradient_accumulation <= 1024, "trainer.gradient_accumulation must be 1–1024"),
                (self.weight_decay >= 0, "trainer.weight_decay must not be negative"),
                (self.save_steps >= 1, "trainer.save_steps must be at least 1"),
                (0 <= self.seed <= MAX_SEED, f"trainer.seed must be between 0 and {MAX_SEED}"),
            ]
        )


@dataclass(frozen=True)
class EvalConfig:
    """How the held-out pairs are judged."""

    bootstrap: int = 1000
    """Bootstrap resamples for confidence intervals."""
    confidence: float = 0.95
    """Confidence level of the intervals."""
    bins: int = 10
    """Bins of the reliability diagram (and of the expected calibration error)."""
    confident: float = 0.8
    """A disagreement with the human majority is listed when the model's probability for the other answer is at
    least this."""

    def __post_init__(self) -> None:
        _check(
            [
                (0 <= self.bootstrap <= 100_000, "eval.bootstrap must be between 0 and 100000"),
                (0.5 <= self.confidence < 1, "eval.confidence must be at least 0.5 and below 1"),
                (2 <= self.bins <= 100, "eval.bins must be between 2 and 100"),
                (0.5 <= self.confident < 1, "eval.confident must be at least 0.5 and below 1"),
            ]
        )


@dataclass(frozen=True)
class RewardConfig:
    """Trains a reward model on the project's preferences, evaluates it on held-out prompts and registers it."""

    mode: Literal["features", "head", "full", "lora", "qlora"] = "features"
    """features: a Bradley–Terry classifier on frozen embeddings (seconds on CPU); head: the score layer of a
    sequence classifier on the base LM; full: every weight; lora: LoRA adapters plus the score layer; qlora: the
    same on a 4-bit NF4 base."""
    name: str = ""
    """Registry name of the trained model; empty: <project>-reward-<job id>."""
    ensemble: int = 0
    """features mode: also fit this many bootstrap classifiers, whose spread measures uncertainty (active
    learning); 0: none."""
    data: DataConfig = field(default_factory=DataConfig)
    """Which preferences."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The model it is built from."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """The adapter (lora, qlora)."""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    """The optimiser."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """The evaluation."""

    def __post_init__(self) -> None:
        _check(
            [
                *_name_checks(self.name),
                (0 <= self.ensemble <= 64, "ensemble must be between 0 and 64"),
                (self.ensemble == 0 or self.mode == "features", "ensemble is for mode=features"),
            ]
        )

    @property
    def learning_rate(self) -> float:
        return self.trainer.learning_rate or DEFAULT_LEARNING_RATES.get(self.mode, 0.0)


@dataclass(frozen=True)
class RewardEvalConfig:
    """Evaluates registered reward models on this project's preferences (a model trained on one project can be
    checked on another); with two or more models, shows where they disagree."""

    models: tuple[str, ...] = ()
    """Registry names of reward models."""
    split: Literal["all", "test"] = "all"
    """all: every pair that passes the filters; test: only the held-out prompts (data.test_fraction, data.seed)."""
    data: DataConfig = field(default_factory=DataConfig)
    """Which preferences."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """The evaluation."""

    def __post_init__(self) -> None:
        _check(
            [
                (bool(self.models), "models must name at least one registered reward model"),
                (len(self.models) <= 8, "models: at most 8 at once"),
                (self.split != "test" or self.data.test_fraction > 0, "split=test needs data.test_fraction above 0"),
            ]
        )


@dataclass(frozen=True)
class ScoreConfig:
    """Scores responses with a registered reward model: the project's responses (stored with the model's name),
    or the texts sent to the scoring API; optionally sets comparison priorities for active learning."""

    model: str = ""
    """Registry name of the reward model."""
    responses: Literal["all", "unscored", "none"] = "unscored"
    """Which of the project's responses to score and store: all, those without a score from this model, or none
    (only `items`)."""
    items: tuple[dict, ...] = ()
    """Texts to score, as sent to POST /api/v1/models/<name>/score/: {"prompt": text or messages, "response":
    text}, or a pair {"prompt", "a", "b"}, each text at most 200,000 characters; the scores are the job's result."""
    prioritise: Literal["off", "gap", "ensemble"] = "off"
    """Active learning: set unlabelled pairs' priority from the model's uncertainty, so annotators see the most
    informative first. gap: a small score difference; ensemble: disagreement across the model's bootstrap
    ensemble (features models trained with ensemble > 0)."""
    batch_size: int = 16
    """Texts per forward pass."""

    def __post_init__(self) -> None:
        _check(
            [
                (bool(self.model), "model must name a registered reward model"),
                (len(self.items) <= 1000, "items: at most 1000 per request"),
                (self.responses != "none" or bool(self.items) or self.prioritise != "off", "nothing to score"),
                (1 <= self.batch_size <= 256, "batch_size must be between 1 and 256"),
            ]
        )
        for i, item in enumerate(self.items):
            if (
                not isinstance(item, dict)
                or "prompt" not in item
                or not ({"response"} <= item.keys() or {"a", "b"} <= item.keys())
            ):
                raise ConfigError(f"items[{i}] must be {{prompt, response}} or {{prompt, a, b}}")
            # Checked here, not in the child: a value it cannot read would fail every attempt with a traceback.
            if problem := _item_problem(item):
                raise ConfigError(f"items[{i}].{problem}")


def _item_problem(item: dict) -> str | None:
    """What is wrong with one scoring item's values (its keys are checked already), or None."""
    prompt = item["prompt"]
    if isinstance(prompt, str):
        texts = {"prompt": prompt}
    elif isinstance(prompt, list) and prompt:
        texts = {}
        for j, message in enumerate(prompt):
            if not (
                isinstance(message, dict)
                and isinstance(message.get("role"), str)
                and isinstance(message.get("content"), str)
            ):
                return f"prompt[{j}] must be a message {{role, content}} with text values"
            texts[f"prompt[{j}].content"] = message["content"]
    else:
        return "prompt must be text or a non-empty list of chat messages {role, content}"
    for key in ("response",) if "response" in item else ("a", "b"):
        if not isinstance(item[key], str):
            return f"{key} must be text, got {type(item[key]).__name__}"
        texts[key] = item[key]
    for key, text in texts.items():
        if len(text) > MAX_TEXT:
            return f"{key} is {len(text):,} characters; at most {MAX_TEXT:,}"
    return None


# ---- policies (SFT, DPO) --------------------------------------------------------------------------------------

POLICY_LEARNING_RATES = {"lora": 2e-4, "full": 1e-5}
DPO_LOSSES = ("sigmoid", "ipo", "hinge", "robust", "sigmoid_norm")


@dataclass(frozen=True)
class PolicyModelConfig:
    """The policy: a base model from the registry, how it is loaded, and what of it learns."""

    base: str = DEFAULT_BASE_MODEL
    """Registry name of the base model (a base, not an adapter: to continue an adapter, name it in start_from)."""
    precision: Literal["nf4", "bf16", "fp32"] = "nf4"
    """nf4: the base in 4-bit NF4 (QLoRA); bf16 or fp32: full precision (bf16 only pays off on a GPU)."""
    method: Literal["lora", "full"] = "lora"
    """lora: train LoRA adapters on every linear layer (registered as an adapter of the base); full: every weight
    (registered as a new base model; not with nf4)."""
    start_from: str = ""
    """A registered adapter of the same base to continue (e.g. DPO from an SFT adapter); empty: a fresh adapter."""
    max_length: int = 512
    """Tokens per prompt + answer; longer examples keep the end of the prompt and the whole answer where they fit."""

    def __post_init__(self) -> None:
        _check(
            [
                (16 <= self.max_length <= 8192, "model.max_length must be between 16 and 8192"),
                (not (self.method == "full" and self.precision == "nf4"), "model.method=full needs fp32 or bf16"),
                (not (self.method == "full" and self.start_from), "model.start_from continues an adapter: method=lora"),
                (len(self.start_from) <= 100, "model.start_from must be at most 100 characters"),
            ]
        )


@dataclass(frozen=True)
class SftDataConfig:
    """What the policy imitates: the project's demonstrations, and optionally the answers people chose."""

    include_chosen: bool = False
    """Also train on the chosen answer of every preference pair (the same filters as data of a reward job)."""
    segment: str = ""
    """key=value: only demonstrations (and labels) from annotators with this segment attribute."""
    test_fraction: float = 0.1
    """Share of prompts held out for evaluation (perplexity on held-out answers)."""
    seed: int = 0
    """Changes which prompts are held out, deterministically."""
    max_examples: int = 0
    """Train on at most this many examples; 0: all."""

    def __post_init__(self) -> None:
        _check(
            [
                (not self.segment or bool(SEGMENT.match(self.segment)), "data.segment is key=value, e.g. age=child"),
                (0 <= self.test_fraction < 1, "data.test_fraction must be at least 0 and below 1"),
                (0 <= self.seed <= MAX_SEED, f"data.seed must be between 0 and {MAX_SEED}"),
                (self.max_examples >= 0, "data.max_examples must not be negative"),
            ]
        )


@dataclass(frozen=True)
class SftConfig:
    """Instruction tuning: TRL's SFTTrainer on the project's demonstrations ("write a better answer"), loss on the
    assistant's tokens only; registers the adapter (or model) with its provenance."""

    name: str = ""
    """Registry name of the trained policy; empty: <project>-sft-<job id>."""
    data: SftDataConfig = field(default_factory=SftDataConfig)
    """Which examples."""
    model: PolicyModelConfig = field(default_factory=PolicyModelConfig)
    """The policy."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """The adapter (method=lora)."""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    """The optimiser (learning_rate 0: 2e-4 for LoRA, 1e-5 for full)."""

    def __post_init__(self) -> None:
        _check(_name_checks(self.name))

    @property
    def learning_rate(self) -> float:
        return self.trainer.learning_rate or POLICY_LEARNING_RATES[self.model.method]


@dataclass(frozen=True)
class DpoConfig:
    """Direct preference optimisation: TRL's DPOTrainer on the project's preference pairs. With LoRA the reference
    is the same base with the adapter switched off (no second copy in memory)."""

    name: str = ""
    """Registry name of the trained policy; empty: <project>-dpo-<job id>."""
    beta: float = 0.1
    """How far the policy may move from the reference (higher: closer to it)."""
    loss_type: Literal["sigmoid", "ipo", "hinge", "robust", "sigmoid_norm"] = "sigmoid"
    """sigmoid (the DPO paper), ipo, hinge (SLiC), robust (noisy labels), sigmoid_norm (length-normalised)."""
    data: DataConfig = field(default_factory=DataConfig)
    """Which preferences (ties are left out: they say nothing about which answer to prefer)."""
    model: PolicyModelConfig = field(default_factory=PolicyModelConfig)
    """The policy."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """The adapter (method=lora)."""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    """The optimiser (learning_rate 0: 2e-4 for LoRA, 1e-5 for full)."""

    def __post_init__(self) -> None:
        _check(
            [
                *_name_checks(self.name),
                (0 < self.beta <= 100, "beta must be above 0 and at most 100"),
                (self.data.ties == "exclude", "data.ties must be exclude for DPO"),
            ]
        )

    @property
    def learning_rate(self) -> float:
        return self.trainer.learning_rate or POLICY_LEARNING_RATES[self.model.method]


# ---- merged exports ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MergeConfig:
    """Folds a registered LoRA adapter into its base model's weights and registers the result as a standalone base
    model (safetensors that plain transformers loads): once merged, the adapter costs nothing per token."""

    adapter: str = ""
    """Registry name of the LoRA adapter to merge (its base comes from the registry)."""
    name: str = ""
    """Registry name of the merged model; empty: <adapter>-merged."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """The merged weights' dtype: fp32, or bf16 (half the size; merged in fp32 first, then rounded)."""

    def __post_init__(self) -> None:
        _check(
            [
                (bool(self.adapter), "adapter must name a registered LoRA adapter"),
                (len(self.adapter) <= 100, "adapter must be at most 100 characters"),
                *_name_checks(self.name),
            ]
        )
