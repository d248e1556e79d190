"""The job kinds the worker runs, by name (the names in training.configs.CONFIGS and training.runner.ENTRIES)."""

from __future__ import annotations

from .base import JobError, Kind, nothing_to_prepare, result_as_is
from .export import prepare_export
from .generate import finish_generate, prepare_generate
from .imports import end_import, prepare_import

KINDS: dict[str, Kind] = {
    "noop": Kind(prepare=nothing_to_prepare, finish=result_as_is),
    "generate": Kind(prepare=prepare_generate, finish=finish_generate),
    "export": Kind(prepare=prepare_export, finish=result_as_is),
    "import": Kind(prepare=prepare_import, finish=result_as_is, ended=end_import, long_transaction=True),
}

__all__ = ["KINDS", "JobError", "Kind"]
