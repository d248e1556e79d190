"""One documented, validated dataclass per job kind.

`config_dict(config)` is what a job stores, so any response or model can be traced to the settings that made it.
Field docstrings are the help text of the /jobs/new form and of `submit_job KIND --list-config`; a nested
dataclass is a group of settings named with dots (`lora.r`). Which kind uses which config is in training.catalog.
This module stays importable without Django: the child process builds its config from it.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import inspect
import re
import textwrap
from dataclasses import dataclass
from datetime import date
from functools import cache
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import dacite

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
    """Nucleus sampling: each token is drawn from the smallest set of tokens whose probabilities add up to this
    (1: no cut-off; ignored at temperature 0)."""
    max_new_tokens: int = 128
    """Longest answer, in tokens; a response that reaches it is cut off there."""
    seed: int = 0
    """Seeds the sampling (each model and temperature gets its own seed from it) and the prompts=sample draw, so
    a job run again, or resumed, gives the same responses."""
    batch_size: int = 8
    """Sequences generated together; larger is faster until memory runs out."""
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
    """The kind's config from a dict; raises ConfigError naming the field on an unknown key or a wrong value.

    Nested settings come as nested objects (`{"lora": {"r": 16}}`) or as dotted keys (`{"lora.r": 16}`, what
    `--set` and the form send); a dotted key wins over the same setting inside an object."""
    from .catalog import KINDS  # lazily: the catalog imports the config classes from here

    if kind not in KINDS:
        raise ConfigError(f"unknown job kind {kind!r}; choose one of {', '.join(KINDS)}")
    return config_build(KINDS[kind].config, data, what=kind)


def config_build(cls: type, data: dict[str, Any] | Any | None, *, what: str = "") -> Any:
    """A config dataclass from a dict (see config_from); `what` names it in the unknown-key message. An instance
    of `cls` is returned as it is (it was validated when it was made)."""
    if isinstance(data, cls):
        return data
    if data is not None and not isinstance(data, dict):
        raise ConfigError("config must be a JSON object")
    unknown: list[str] = []
    data = _normalised(cls, data or {}, "", unknown)
    if unknown:
        raise ConfigError(f"unknown config key(s) for {what or cls.__name__}: {', '.join(sorted(unknown))}")
    try:
        return dacite.from_dict(cls, data, config=_hooks())
    except dacite.UnexpectedDataError as exc:  # _normalised finds these first; kept as a guard
        raise ConfigError(f"unknown config key(s) for {what or cls.__name__}: {', '.join(sorted(exc.keys))}") from None
    except dacite.WrongTypeError as exc:
        raise ConfigError(f"{exc.field_path}: expected {_type_name(exc.field_type)}, got {exc.value!r}") from None
    except dacite.DaciteError as exc:
        raise ConfigError(str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(str(exc)) from None


def _nested(data: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys (`lora.r`) moved into nested objects, applied after the plain keys so they override them."""
    out = copy.deepcopy({key: value for key, value in data.items() if "." not in str(key)})
    for key, value in data.items():
        if "." not in str(key):
            continue
        *parents, leaf = str(key).split(".")
        node = out
        for depth, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                path = ".".join(parents[: depth + 1])
                raise ConfigError(f"{path}: expected an object of settings, got {child!r}")
            node = child
        node[leaf] = value
    return out


def _normalised(cls: type, data: dict[str, Any], prefix: str, unknown: list[str]) -> dict[str, Any]:
    """`data` nested, with unknown keys collected by their dotted path, and a list of names given as one string
    (`--set models=my-model`) made a list of one; anything else that is not a list where a list is meant is
    refused, rather than read character by character."""
    data = _nested(data)
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in list(data.items()):
        path = f"{prefix}{key}"
        if key not in names:
            unknown.append(path)
            continue
        tp, _ = base_type(hints[key])
        if _is_config(tp):
            if isinstance(value, dict):
                data[key] = _normalised(tp, value, f"{path}.", unknown)
            elif not isinstance(value, tp):
                raise ConfigError(f"{path}: expected an object of settings, got {value!r}")
            continue
        if isinstance(value, bool) and tp in (int, float):
            # bool is an int to Python (and to dacite): `"lora.r": true` would otherwise be a rank of 1.
            raise ConfigError(f"{path}: expected {tp.__name__}, got {value!r}")
        item = _item_type(tp)
        if item is None or value is None or isinstance(value, list | tuple):
            continue
        if isinstance(value, str) and item is str:
            data[key] = [value]
        else:
            raise ConfigError(f"{path}: expected a list, got {value!r}")
    return data


def config_dict(config: Any) -> dict[str, Any]:
    """JSON-ready nested dict of a config (tuples as lists, dates as ISO text); what a job stores."""
    if hasattr(config, "as_dict"):
        return config.as_dict()
    return {f.name: _json_ready(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _json_ready(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_dict(value)
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, date):
        return value.isoformat()
    return value


def config_flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A stored (nested) config as dotted keys → values, e.g. for the job page: {"lora.r": 16, ...}."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            flat.update(config_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(map(str, get_args(tp)))
    return getattr(tp, "__name__", str(tp))


def base_type(tp: Any) -> tuple[Any, bool]:
    """(type, optional) for `X | None`."""
    if get_origin(tp) in (Union, UnionType):
        args = [a for a in get_args(tp) if a is not NoneType]
        return (args[0] if len(args) == 1 else tp), True
    return tp, False


def _is_config(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _item_type(tp: Any) -> Any:
    return get_args(tp)[0] if get_origin(tp) in (tuple, list) and get_args(tp) else None


@dataclass(frozen=True)
class FieldSpec:
    """One setting as forms and help text show it."""

    name: str
    """Dotted path from the config's top: `steps`, `lora.r`."""
    type: Any
    """The annotation (`int`, `float | None`, `Literal[...]`, `tuple[str, ...]`)."""
    default: Any
    """The default, as the config's own default makes it (a nested default_factory's values included)."""
    help: str
    """The field's docstring."""
    choices: tuple = ()
    """A Literal's values."""
    item_type: Any = None
    """For a tuple or list: the type of its items."""
    group: str = ""
    """Dotted path of the nested config this setting is in (`lora`); empty at the top level."""


@dataclass(frozen=True)
class GroupSpec:
    """A nested config (`lora`, `trainer`) as one fieldset: its settings under a legend."""

    name: str
    """Dotted path (`lora`; `a.b` deeper down); empty for the top-level settings."""
    help: str
    """The nested dataclass's docstring (or, without one, the docstring of the field that holds it)."""
    fields: tuple[FieldSpec, ...]


def field_specs(kind: str) -> list[FieldSpec]:
    """The kind's settings, nested ones flattened to dotted names, with types, defaults and docstrings."""
    from .catalog import KINDS

    return list(config_fields(KINDS[kind].config))


def field_groups(kind: str) -> list[GroupSpec]:
    """The kind's settings by group: the top-level ones first (group ""), then each nested config."""
    from .catalog import KINDS

    return config_groups(KINDS[kind].config)


@cache
def config_fields(cls: type) -> tuple[FieldSpec, ...]:
    """A config dataclass's settings, nested dataclasses flattened to dotted names (`lora.r`)."""
    return tuple(_fields(cls, _default_instance(cls), ""))


def config_groups(cls: type) -> list[GroupSpec]:
    """config_fields in groups, in the order the dataclasses declare them; a group of no settings is left out."""
    helps = {"": ""} | {name: help for name, help in _nested_helps(cls, "")}
    grouped: dict[str, list[FieldSpec]] = {name: [] for name in helps}
    for spec in config_fields(cls):
        grouped[spec.group].append(spec)
    return [GroupSpec(name, helps[name], tuple(specs)) for name, specs in grouped.items() if specs]


def config_undocumented(cls: type, prefix: str = "") -> list[str]:
    """Dotted names of the settings (nested configs themselves included) that have no docstring."""
    docs = _field_docs(cls)
    hints = get_type_hints(cls)
    missing = []
    for f in dataclasses.fields(cls):
        if not docs.get(f.name):
            missing.append(f"{prefix}{f.name}")
        tp, _ = base_type(hints[f.name])
        if _is_config(tp):
            missing += config_undocumented(tp, f"{prefix}{f.name}.")
    return missing


def _default_instance(cls: type) -> Any:
    try:
        return cls()
    except (TypeError, ValueError):  # a config with a required setting has no default instance
        return None


def _fields(cls: type, defaults: Any, prefix: str) -> list[FieldSpec]:
    hints = get_type_hints(cls)
    docs = _field_docs(cls)
    specs: list[FieldSpec] = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        base, _ = base_type(tp)
        if defaults is not None:
            default = getattr(defaults, f.name)
        elif f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        if _is_config(base):
            nested = default if isinstance(default, base) else _default_instance(base)
            specs += _fields(base, nested, f"{prefix}{f.name}.")
            continue
        choices = get_args(base) if get_origin(base) is Literal else ()
        specs.append(
            FieldSpec(
                f"{prefix}{f.name}", tp, default, docs.get(f.name, ""), choices, _item_type(base), prefix.rstrip(".")
            )
        )
    return specs


def _nested_helps(cls: type, prefix: str) -> list[tuple[str, str]]:
    hints = get_type_hints(cls)
    docs = _field_docs(cls)
    out = []
    for f in dataclasses.fields(cls):
        base, _ = base_type(hints[f.name])
        if _is_config(base):
            name = f"{prefix}{f.name}"
            out.append((name, _class_doc(base) or docs.get(f.name, "")))
            out += _nested_helps(base, f"{name}.")
    return out


def _class_doc(cls: type) -> str:
    """The class's own docstring; dataclass() makes up "Name(field: type, ...)" for one without, which is none."""
    doc = cls.__dict__.get("__doc__") or ""
    if doc.startswith(f"{cls.__name__}("):
        return ""
    return " ".join(doc.split())


@cache
def _field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings (the string after a field) — Python keeps them only in the source. Fields a
    dataclass inherits keep the docstrings their base class gives them."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is not object and dataclasses.is_dataclass(klass):
            docs.update(_own_field_docs(klass))
    return docs


def _own_field_docs(cls: type) -> dict[str, str]:
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
