import pytest


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory):
    """SmolLM2-135M-Instruct as a safetensors checkpoint, converted from its GGUF once per test session (~30 s)."""
    from training.ml.smollm2 import convert_smollm2

    return convert_smollm2(tmp_path_factory.mktemp("smollm2") / "SmolLM2-135M-Instruct")


@pytest.fixture
def workers(tmp_path):
    """Starts `run_worker` processes on the test database; any still running are killed afterwards."""
    from tests.training.workers import Workers

    pool = Workers(tmp_path)
    yield pool
    pool.stop_all()
