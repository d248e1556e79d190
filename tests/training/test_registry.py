"""The model registry: what registering copies, what it refuses, and the default base model."""

import pytest
from django.core.management import CommandError, call_command

from tests.training.checkpoints import tiny_checkpoint
from training.models import RegisteredModel
from training.registry import RegistryError, model_default, model_get, model_register, model_spec

pytestmark = pytest.mark.django_db


def test_registering_a_local_folder_copies_weights_configs_and_tokenizer_but_no_code(tmp_path, settings):
    source = tiny_checkpoint(tmp_path / "src")
    (source / "modeling_evil.py").write_text("import os; os.system('echo pwned')")
    (source / "pytorch_model.bin").write_bytes(b"pickle")
    model = model_register(name="tiny", source=str(source))
    copied = {p.name for p in (settings.JUROR_DATA_DIR / model.path).iterdir()}
    assert "model.safetensors" in copied and "config.json" in copied and "tokenizer.json" in copied
    assert "modeling_evil.py" not in copied and "pytorch_model.bin" not in copied
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(source)
    assert model.parameter_count == sum(p.numel() for p in loaded.parameters())
    assert model.source == f"local:{source.resolve()}"


def test_a_folder_without_safetensors_is_refused_and_nothing_is_registered(tmp_path, settings):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(RegistryError, match="no \\*.safetensors weights"):
        model_register(name="pickled", source=str(folder))
    assert not RegisteredModel.objects.exists()
    assert not (settings.JUROR_DATA_DIR / "models").exists() or not any((settings.JUROR_DATA_DIR / "models").iterdir())


def test_names_must_be_unique_and_slug_like(tmp_path):
    source = tiny_checkpoint(tmp_path / "src")
    model_register(name="tiny", source=str(source))
    with pytest.raises(RegistryError, match="already registered"):
        model_register(name="tiny", source=str(source))
    with pytest.raises(RegistryError, match="not a usable name"):
        model_register(name="../escape", source=str(source))


def test_an_adapter_needs_its_base(tmp_path):
    with pytest.raises(RegistryError, match="needs --parent"):
        model_register(name="lora", source=str(tmp_path), kind="adapter")


def test_a_hub_id_without_a_network_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RegistryError, match="HF_HUB_OFFLINE=1"):
        model_register(name="remote", source="HuggingFaceTB/SmolLM2-135M-Instruct", hub=True)


def test_the_default_base_model_registers_itself_on_first_use():
    assert not RegisteredModel.objects.exists()
    model = model_get("smollm2-135m-instruct")
    assert model == model_default()
    assert RegisteredModel.objects.count() == 1
    assert model_spec(model)["convert"] == "smollm2"


def test_an_unknown_name_lists_what_is_registered():
    with pytest.raises(RegistryError, match="no registered model called 'nope'; registered: smollm2-135m-instruct"):
        model_get("nope")


def test_register_model_command(tmp_path):
    source = tiny_checkpoint(tmp_path / "src")
    call_command("register_model", "tiny", str(source))
    assert RegisteredModel.objects.get(name="tiny").parameter_count > 0
    with pytest.raises(CommandError, match="already registered"):
        call_command("register_model", "tiny", str(source))
