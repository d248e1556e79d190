"""Nested configs: dotted keys and nested objects in, JSON-ready nested dicts out, flattened specs for forms."""

import json
from dataclasses import dataclass, field
from datetime import date

import pytest

from feedback.exports.options import ExportOptions
from training.configs import (
    ConfigError,
    config_build,
    config_dict,
    config_fields,
    config_flat,
    config_from,
    config_groups,
    config_undocumented,
)
from training.forms import _field_named
from training.train_configs import LoraConfig, RewardConfig, RewardEvalConfig, ScoreConfig


def test_dotted_keys_and_nested_objects_build_the_same_config():
    dotted = config_build(RewardConfig, {"lora.r": 8, "trainer.learning_rate": 1e-4, "data.sources": ["judge"]})
    nested = config_build(RewardConfig, {"lora": {"r": 8}, "trainer": {"learning_rate": 1e-4}, "data": {"sources": ["judge"]}})  # fmt: skip
    assert dotted == nested
    assert dotted.lora == LoraConfig(r=8) and dotted.data.sources == ("judge",)


def test_a_dotted_key_overrides_the_same_setting_in_an_object():
    config = config_build(RewardConfig, {"lora": {"r": 4, "alpha": 8}, "lora.r": 16})
    assert (config.lora.r, config.lora.alpha) == (16, 8)


def test_unknown_keys_are_named_by_their_dotted_path():
    with pytest.raises(ConfigError) as caught:
        config_build(RewardConfig, {"lora.rank": 8, "data": {"sorces": []}, "modee": "x"}, what="reward")
    assert str(caught.value) == "unknown config key(s) for reward: data.sorces, lora.rank, modee"


def test_wrong_values_in_nested_settings_name_their_path():
    with pytest.raises(ConfigError, match=r"^lora\.r: expected int, got 'x'$"):
        config_build(RewardConfig, {"lora.r": "x"})
    with pytest.raises(ConfigError, match=r"^lora: expected an object of settings, got 5$"):
        config_build(RewardConfig, {"lora": 5})
    with pytest.raises(ConfigError, match=r"^lora: expected an object of settings"):
        config_build(RewardConfig, {"lora": 5, "lora.r": 3})
    with pytest.raises(ConfigError, match=r"^lora\.r must be between 1 and 512$"):
        config_build(RewardConfig, {"lora.r": 0})
    with pytest.raises(ConfigError, match=r"^data\.min_labels: expected a list|^data\.sources: expected a list"):
        config_build(RewardConfig, {"data.sources": 3})


def test_a_single_name_where_a_nested_list_is_meant_is_a_list_of_one():
    assert config_build(RewardConfig, {"data.sources": "annotators"}).data.sources == ("annotators",)
    assert config_build(RewardEvalConfig, {"models": "rm-1"}).models == ("rm-1",)


@dataclass(frozen=True)
class Window:
    """When."""

    since: date | None = None
    """First day."""
    days: tuple[int, ...] = (1, 2)
    """Days."""


@dataclass(frozen=True)
class Outer:
    """Test config."""

    name: str = "x"
    """Name."""
    window: Window = field(default_factory=lambda: Window(days=(3,)))
    """The window."""


def test_config_dict_is_nested_and_json_ready_and_builds_the_same_config_again():
    config = config_build(Outer, {"window.since": "2024-05-01", "window.days": [4, 5]})
    assert config.window == Window(since=date(2024, 5, 1), days=(4, 5))
    stored = config_dict(config)
    assert stored == {"name": "x", "window": {"since": "2024-05-01", "days": [4, 5]}}
    assert json.loads(json.dumps(stored)) == stored
    assert config_build(Outer, stored) == config
    reward = config_build(RewardConfig, {"data.sources": ["a"], "lora.r": 4})
    assert config_build(RewardConfig, json.loads(json.dumps(config_dict(reward)))) == reward


def test_config_flat_gives_dotted_keys():
    assert config_flat({"name": "x", "window": {"since": None, "days": [1]}, "empty": {}}) == {
        "name": "x",
        "window.since": None,
        "window.days": [1],
        "empty": {},
    }


def test_field_specs_flatten_nested_configs_with_their_defaults_and_groups():
    specs = {spec.name: spec for spec in config_fields(Outer)}
    assert list(specs) == ["name", "window.since", "window.days"]
    # The parent's default_factory decides the nested defaults, not the nested class alone.
    assert specs["window.days"].default == (3,) and specs["window.days"].item_type is int
    assert (specs["window.since"].group, specs["window.since"].help) == ("window", "First day.")
    groups = config_groups(Outer)
    assert [(g.name, g.help, [f.name for f in g.fields]) for g in groups] == [
        ("", "", ["name"]),
        ("window", "When.", ["window.since", "window.days"]),
    ]


def test_reward_config_groups_carry_their_dataclass_docstrings():
    groups = {g.name: g for g in config_groups(RewardConfig)}
    assert list(groups) == ["", "data", "model", "lora", "trainer", "eval"]
    assert groups["lora"].help.startswith("The LoRA adapter (modes lora and qlora)")
    lora = {f.name: f for f in groups["lora"].fields}
    assert lora["lora.r"].default == 16 and lora["lora.r"].help == "Rank of the adapter's matrices."
    assert groups["model"].fields[1].choices == ("minilm", "lm")


@pytest.mark.parametrize("cls", [RewardConfig, RewardEvalConfig, ScoreConfig, ExportOptions])
def test_every_setting_has_a_docstring(cls):
    assert config_undocumented(cls) == []


def test_undocumented_settings_are_found_nested_too():
    @dataclass(frozen=True)
    class Inner:
        a: int = 1

    @dataclass(frozen=True)
    class Top:
        inner: Inner = field(default_factory=Inner)

    assert config_undocumented(Top) == ["inner", "inner.a"]


def test_generate_settings_that_had_no_help_have_it_now():
    help_of = {spec.name: spec.help for spec in config_fields(config_from("generate", {}).__class__)}
    for name in ("top_p", "max_new_tokens", "seed", "batch_size"):
        assert help_of[name], name


def test_an_error_message_is_matched_to_the_longest_field_it_names():
    names = ["n", "name", "lora.r", "lora.rank", "examples"]
    assert _field_named("lora.r must be between 1 and 512", names) == "lora.r"
    assert _field_named("lora.rank: expected int, got 'x'", names) == "lora.rank"
    assert _field_named("n must be between 1 and 16", names) == "n"
    assert _field_named("name must be at most 100 characters", names) == "name"
    assert _field_named("examples[0] must be an object", names) == "examples"
    assert _field_named("nothing to score", names) is None
