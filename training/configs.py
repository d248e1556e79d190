"""One documented, validated dataclass per job kind.

`asdict(config)` is what a job stores, so any response or model can be traced to the settings that made it.
Field docstrings are the help text of the /jobs/new form and of `submit_job KIND --list-config`.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import textwrap
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any, Literal, get_args, get_origin, get_type_hints

import dacite

from feedback.exports.options import ExportOptions

DEFAULT_BASE_MODEL = "smollm2-135m-instruct"
TEMPLATES = ("zero_shot", "few_shot", "cot")
PROMPT_SETS = ("all", "unlabelled", "tagged", "sample")


class ConfigError(ValueError):
    """A config that cannot run; the message names the field."""


@dataclass(frozen=True)
class NoopConfig:
    """Counts to `steps`, checkpointing after each one: checks that workers, heartbeats and resumes work."""

    steps: int = 5
    """Steps to count; the job checkpoints after each."""
    step_seconds: float = 0.2
    """Time each step takes."""
    fail: bool = False
    """Crash on every attempt (a poison job, to see that it fails after max attempts and others go on)."""

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError("steps must be at least 1")
        if self.step_seconds < 0:
            raise ConfigError("step_seconds must not be negative")


@dataclass(frozen=True)
class GenerateConfig:
    """Generates candidate responses for the project's prompts and turns them into comparisons."""

    models: tuple[str, ...] = (DEFAULT_BASE_MODEL,)
    """Registry names of base models or adapters; each answers every selected prompt."""
    prompts: Literal["all", "unlabelled", "tagged", "sample"] = "unlabelled"
    """Which prompts: all, unlabelled (no label yet), tagged (metadata tag, see `tag`), or a random sample."""
    tag: str = ""
    """With prompts=tagged: prompts whose metadata has this tag (in `tags`, or as `tag`)."""
    limit: int = 0
    """Use at most this many prompts (the sample size for prompts=sample); 0: no limit."""
    n: int = 2
    """Responses per prompt from each model at each temperature."""
    template: Literal["zero_shot", "few_shot", "cot"] = "zero_shot"
    """zero_shot; few_shot (k worked examples as earlier chat turns); cot (reason step by step, then answer)."""
    k: int = 2
    """few_shot: number of worked examples."""
    examples: tuple[dict, ...] = ()
    """few_shot: worked examples as {"prompt": "...", "response": "..."}; empty: the project's best-rated responses."""
    system: str = ""
    """Optional system message for every conversation."""
    temperatures: tuple[float, ...] = (0.7,)
    """Sampling temperatures; each is a variant (0: greedy)."""
    top_p: float = 0.95
    max_new_tokens: int = 128
    seed: int = 0
    batch_size: int = 8
    precision: Literal["auto", "fp32", "bf16", "nf4"] = "auto"
    """auto: fp32 on CPU (bf16 is slower there), bf16 on GPU; nf4: 4-bit with double quantisation."""
    comparisons: Literal["auto", "pairs", "ranking", "none"] = "auto"
    """How the new responses become comparisons; auto follows the project's comparison mode."""

    def __post_init__(self) -> None:
        checks = [
            (bool(self.models), "models must name at least one registered model"),
            (self.prompts != "tagged" or bool(self.tag), "tag is required when prompts=tagged"),
            (self.limit >= 0, "limit must not be negative"),
            (self.prompts != "sample" or self.limit > 0, "limit (the sample size) is required when prompts=sample"),
            (1 <= self.n <= 16, "n must be between 1 and 16"),
            (1 <= self.k <= 8, "k must be between 1 and 8"),
            (bool(self.temperatures), "temperatures must list at least one temperature"),
            (all(0 <= t <= 2 for t in self.temperatures), "temperatures must be between 0 and 2"),
            (0 < self.top_p <= 1, "top_p must be above 0 and at most 1"),
            (1 <= self.max_new_tokens <= 4096, "max_new_tokens must be between 1 and 4096"),
            (1 <= self.batch_size <= 256, "batch_size must be between 1 and 256"),
            (self.seed >= 0, "seed must not be negative"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        for i, example in enumerate(self.examples):
            if not isinstance(example, dict) or not {"prompt", "response"} <= example.keys():
                raise ConfigError(f"examples[{i}] must be an object with prompt and response")
            if not all(isinstance(example[key], str) and example[key].strip() for key in ("prompt", "response")):
                raise ConfigError(f"examples[{i}]: prompt and response must be non-empty text")


STORED_UPLOAD = re.compile(r"[0-9a-f]{32}/[A-Za-z0-9_-][A-Za-z0-9._-]{0,119}")
"""A stored upload as feedback.imports.uploads names it: a random token folder, then the file's cleaned name."""


@dataclass(frozen=True)
class ImportConfig:
    """Imports a file uploaded on a project's import page or through the API: uploads too large to import within
    the request are stored under the data directory and queued as this job (it is not started by hand)."""

    upload: str = ""
    """The stored upload, as `<token>/<file>` under the data directory's imports/<project id>/ folder."""
    name: str = ""
    """The file's name as it was uploaded; error messages name it."""
    format: Literal["auto", "jsonl", "csv", "parquet", "hf"] = "auto"
    """jsonl, csv, parquet or hf; auto: told from the file name."""
    source: str = ""
    """Who judged imported pairs; empty: a `source` column, else the file name."""
    skip_invalid: bool = False
    """Import the valid rows and list every skipped row; otherwise one bad row fails the job and nothing is written."""

    def __post_init__(self) -> None:
        if not STORED_UPLOAD.fullmatch(self.upload):
            raise ConfigError("upload must name a stored upload (<token>/<file>); imports are queued by uploading")
        if len(self.name) > 200:
            raise ConfigError("name must be at most 200 characters")
        if len(self.source) > 120:
            raise ConfigError("source must be at most 120 characters")


CONFIGS: dict[str, type] = {
    "generate": GenerateConfig,
    "export": ExportOptions,
    "import": ImportConfig,
    "noop": NoopConfig,
}
KIND_HELP = {
    "generate": "Generate candidate responses with models from the registry and make comparisons of them.",
    "export": "Write the preference dataset to the data directory (for projects too large for a download).",
    "import": "Import a large upload (queued by the project's import page and the API, not started here).",
    "noop": "Check the workers: count to N with a checkpoint per step.",
}
SUBMITTABLE = tuple(kind for kind in CONFIGS if kind != "import")
"""Kinds a person starts by naming a config (form, API, admin, submit_job). An import job starts from its upload
(feedback.imports.uploads), which alone knows the stored file; naming another job's upload would let one job
delete what the other still has to read."""


def _hooks() -> dacite.Config:
    # Values come from JSON, forms and `--set`: ints where floats are meant, lists where tuples are, ISO dates.
    return dacite.Config(
        strict=True,
        cast=[tuple],
        type_hooks={
            float: lambda v: float(v) if isinstance(v, int) and not isinstance(v, bool) else v,
            date: lambda v: date.fromisoformat(v) if isinstance(v, str) else v,
        },
    )


def config_from(kind: str, data: dict[str, Any] | None) -> Any:
    """The kind's config from a dict; raises ConfigError naming the field on an unknown key or a wrong value."""
    if kind not in CONFIGS:
        raise ConfigError(f"unknown job kind {kind!r}; choose one of {', '.join(CONFIGS)}")
    if data is not None and not isinstance(data, dict):
        raise ConfigError("config must be a JSON object")
    data = _lists_from_text(kind, data or {})
    try:
        return dacite.from_dict(CONFIGS[kind], data, config=_hooks())
    except dacite.UnexpectedDataError as exc:
        raise ConfigError(f"unknown config key(s) for {kind}: {', '.join(sorted(exc.keys))}") from None
    except dacite.WrongTypeError as exc:
        raise ConfigError(f"{exc.field_path}: expected {_type_name(exc.field_type)}, got {exc.value!r}") from None
    except dacite.DaciteError as exc:
        raise ConfigError(str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(str(exc)) from None


def _lists_from_text(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """A list of names given as one string (`--set models=my-model`) is a list of one; anything else that is
    not a list where a list is meant is refused, rather than read character by character."""
    data = dict(data)
    for spec in field_specs(kind):
        value = data.get(spec.name)
        if spec.item_type is None or value is None or isinstance(value, list | tuple):
            continue
        if isinstance(value, str) and spec.item_type is str:
            data[spec.name] = [value]
        else:
            raise ConfigError(f"{spec.name}: expected a list, got {value!r}")
    return data


def config_dict(config: Any) -> dict[str, Any]:
    """JSON-ready dict of a config (tuples as lists, dates as ISO text)."""
    if hasattr(config, "as_dict"):
        return config.as_dict()
    data = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(map(str, get_args(tp)))
    return getattr(tp, "__name__", str(tp))


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: Any
    default: Any
    help: str
    choices: tuple = ()
    item_type: Any = None


@cache
def field_specs(kind: str) -> list[FieldSpec]:
    """The kind's config fields with their types, defaults and docstrings, for forms and help text."""
    cls = CONFIGS[kind]
    hints = get_type_hints(cls)
    docs = _field_docs(cls)
    specs = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        choices = get_args(tp) if get_origin(tp) is Literal else ()
        item = get_args(tp)[0] if get_origin(tp) in (tuple, list) else None
        specs.append(FieldSpec(f.name, tp, default, docs.get(f.name, ""), choices, item))
    return specs


def _field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings (the string after a field) — Python keeps them only in the source."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, after in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs
