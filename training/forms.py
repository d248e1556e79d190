"""The /jobs/new form, generated from the kind's config dataclass: one field per config key, its default as the
initial value and its docstring as help text, so a new config key shows up in the form without template work."""

from __future__ import annotations

import json
from datetime import date
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

from django import forms

from .configs import KIND_HELP, SUBMITTABLE, ConfigError, FieldSpec, config_from, field_specs
from .registry import model_names

LONG_TEXT = {"system", "examples"}


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(type, optional) for `X | None`."""
    if get_origin(tp) in (Union, UnionType):
        args = [a for a in get_args(tp) if a is not NoneType]
        return args[0], True
    return tp, False


def _form_field(spec: FieldSpec) -> forms.Field:
    tp, optional = _base_type(spec.type)
    common = {"help_text": spec.help, "label": spec.name.replace("_", " ").capitalize()}
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
    widget = forms.Textarea(attrs={"rows": 2}) if spec.name in LONG_TEXT else None
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
            raise forms.ValidationError('a JSON list of {"prompt": ..., "response": ...}')
        return parsed
    if spec.item_type is not None:
        items = [v.strip() for v in (value or "").split(",") if v.strip()]
        if spec.item_type is float:
            try:
                return [float(v) for v in items]
            except ValueError:
                raise forms.ValidationError("numbers separated by commas") from None
        return items
    if isinstance(value, date):
        return value.isoformat()
    return value


class JobForm(forms.Form):
    """The kind and project come first; the rest are the kind's config fields, added in __init__."""

    def __init__(self, *args, kind: str, projects, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind
        self.specs = field_specs(kind)
        self.fields["project"] = forms.ModelChoiceField(queryset=projects, to_field_name="slug", empty_label=None)
        for spec in self.specs:
            self.fields[f"config_{spec.name}"] = _form_field(spec)
        if "config_models" in self.fields and kind == "generate":
            names = ", ".join(model_names())
            self.fields["config_models"].help_text += f" Registered: {names}."

    def config_fields(self):
        return [self[f"config_{spec.name}"] for spec in self.specs]

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
                config_from(self.kind, config)
            except ConfigError as exc:
                # Messages name their field ("n must be between 1 and 16"): show them next to it.
                name = next((s.name for s in self.specs if str(exc).startswith(s.name)), None)
                self.add_error(f"config_{name}" if name else None, str(exc))
        self.config = config
        return data


def kind_choices() -> list[tuple[str, str]]:
    return [(kind, KIND_HELP[kind]) for kind in SUBMITTABLE]
