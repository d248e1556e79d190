"""The /jobs/new form, generated from the kind's config dataclass: one field per config key, its default as the
initial value and its docstring as help text, so a new config key shows up in the form without template work.
A nested dataclass (`lora`, `trainer`) is a fieldset whose fields are named with dots (`config_lora.r`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from django import forms

from .catalog import KINDS, submittable_kinds
from .configs import ConfigError, FieldSpec, base_type, config_build, config_fields, config_groups
from .registry import model_names

LONG_TEXT = {"system", "examples"}
"""Text settings (by their last name) that get a text area."""


def _form_field(spec: FieldSpec) -> forms.Field:
    tp, optional = base_type(spec.type)
    short = spec.name.rsplit(".", 1)[-1]
    common = {"help_text": spec.help, "label": short.replace("_", " ").capitalize()}
    if spec.choices:
        return forms.ChoiceField(choices=[(c, c) for c in spec.choices], initial=spec.default, **common)
    if tp is bool:
        return forms.BooleanField(required=False, initial=spec.default, **common)
    if tp is int:
        return forms.IntegerField(required=not optional, initial=spec.default, **common)
    if tp is float:
        return forms.FloatField(required=not optional, initial=spec.default, **common)
    if tp is date:
        return forms.DateField(
            required=False, initial=spec.default, widget=forms.DateInput(attrs={"type": "date"}), **common
        )
    if spec.item_type is dict:
        initial = json.dumps(list(spec.default), indent=1) if spec.default else ""
        return forms.CharField(required=False, initial=initial, widget=forms.Textarea(attrs={"rows": 3}), **common)
    if spec.item_type is not None:
        initial = ", ".join(str(v) for v in spec.default)
        return forms.CharField(required=False, initial=initial, **common)
    widget = forms.Textarea(attrs={"rows": 2}) if short in LONG_TEXT else None
    return forms.CharField(required=False, initial=spec.default, widget=widget, strip=True, **common)


def _config_value(spec: FieldSpec, value: Any) -> Any:
    """Form value → config value: lists from comma-separated text, examples from JSON."""
    if spec.item_type is dict:
        if not value:
            return []
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"not valid JSON: {exc.msg} (line {exc.lineno})") from None
        if not isinstance(parsed, list):
            raise forms.ValidationError('a JSON list of objects, e.g. [{"prompt": "...", "response": "..."}]')
        return parsed
    if spec.item_type is not None:
        items = [v.strip() for v in (value or "").split(",") if v.strip()]
        if spec.item_type in (int, float):
            try:
                return [spec.item_type(v) for v in items]
            except ValueError:
                raise forms.ValidationError("numbers separated by commas") from None
        return items
    if isinstance(value, date):
        return value.isoformat()
    return value


@dataclass(frozen=True)
class Fieldset:
    """A group of config fields as the template shows it: the top-level settings (no legend), then one per
    nested config, its legend the group's dotted name and its docstring."""

    name: str
    help: str
    fields: list


def _field_named(message: str, names: list[str]) -> str | None:
    """The setting a ConfigError message starts with ("lora.r must be…", "examples[0] must…", "n: expected…"):
    the longest name followed by something that cannot continue a name."""
    for name in sorted(names, key=len, reverse=True):
        rest = message[len(name) : len(name) + 1]
        if message.startswith(name) and not (rest.isalnum() or rest in ("_", ".")):
            return name
    return None


class JobForm(forms.Form):
    """The kind and project come first; the rest are the kind's config fields, added in __init__."""

    def __init__(self, *args, kind: str, projects, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind
        self.config_class = KINDS[kind].config
        self.specs = list(config_fields(self.config_class))
        self.fields["project"] = forms.ModelChoiceField(queryset=projects, to_field_name="slug", empty_label=None)
        for spec in self.specs:
            self.fields[f"config_{spec.name}"] = _form_field(spec)
        if "config_models" in self.fields and kind == "generate":
            names = ", ".join(model_names())
            self.fields["config_models"].help_text += f" Registered: {names}."

    def config_fields(self) -> list:
        return [self[f"config_{spec.name}"] for spec in self.specs]

    def config_fieldsets(self) -> list[Fieldset]:
        return [
            Fieldset(group.name, group.help, [self[f"config_{spec.name}"] for spec in group.fields])
            for group in config_groups(self.config_class)
        ]

    def clean(self):
        data = super().clean()
        config = {}
        for spec in self.specs:
            key = f"config_{spec.name}"
            if key in self.errors:
                continue
            try:
                config[spec.name] = _config_value(spec, data.get(key))
            except forms.ValidationError as exc:
                self.add_error(key, exc)
        if not self.errors:
            try:
                config_build(self.config_class, config, what=self.kind)
            except ConfigError as exc:
                # Messages name their field ("n must be between 1 and 16", "lora.r must be…"): show them there.
                name = _field_named(str(exc), [s.name for s in self.specs])
                self.add_error(f"config_{name}" if name else None, str(exc))
        self.config = config  # dotted keys for nested settings; job_submit (config_from) nests them
        return data


def job_initial(query, kind: str) -> dict:
    """Initial values from the page's query string, so a link can open the form ready to go: `project=SLUG` and
    any of the kind's settings as `config_<name>` (`config_model=NAME`, `config_models=A&config_models=B` or
    `config_models=A,B`, `config_lora.r=8`). Names the kind does not have, and values that do not parse, are
    ignored: the form then shows the default, and validation still happens on submit."""
    initial: dict = {}
    if query.get("project"):
        initial["project"] = query["project"]
    for spec in config_fields(KINDS[kind].config):
        key = f"config_{spec.name}"
        values = [v for v in query.getlist(key) if v != ""] if hasattr(query, "getlist") else [query.get(key)]
        values = [v for v in values if v is not None]
        if not values:
            continue
        if spec.item_type is not None and spec.item_type is not dict:
            initial[key] = ", ".join(values)
            continue
        try:
            value = _form_field(spec).to_python(values[-1])
        except forms.ValidationError:
            continue
        if spec.choices and value not in spec.choices:
            continue
        initial[key] = value
    return initial


def kind_choices() -> list[tuple[str, str]]:
    return [(kind, KINDS[kind].help) for kind in submittable_kinds()]
