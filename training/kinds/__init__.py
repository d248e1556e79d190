"""The job kinds' database side: `prepare`, `finish` and `ended` of each kind, in `training/kinds/<kind>.py`.

Which kind uses which is recorded in training.catalog (one record per kind); the worker imports these modules
through it, by name, so this package's own import stays light.
"""

from __future__ import annotations

from .base import JobError

__all__ = ["JobError"]
