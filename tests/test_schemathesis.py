"""Schemathesis against the OpenAPI schema, in-process through the WSGI app: a short, deterministic run of every
operation as an annotator and as a manager (token auth), with data that fits the schema and data that does not,
on random ids and on real ones. The only check is the one that matters here: no answer is a 5xx."""

import os

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode

from feedback.assignment import assignment_queue
from feedback.models import Project
from tests.factories import MembershipFactory, ProjectFactory, make_pair, make_ranking
from training.models import Job, RegisteredModel

pytestmark = pytest.mark.django_db

# Small, so the suite stays fast; JUROR_SCHEMATHESIS_EXAMPLES=100 runs a deeper search by hand.
MAX_EXAMPLES = int(os.environ.get("JUROR_SCHEMATHESIS_EXAMPLES", "6"))
RUN = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,  # the same cases on every run, so a failure here is a failure everywhere
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: failures are reported as found, and fast
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def wsgi_app():
    """Django's WSGI app on the test database. Like Django's test client, it must not close the connection at
    the start and end of each request: that connection holds the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield WSGIHandler()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def world():
    alpha = ProjectFactory(slug="alpha", name="Alpha", labels_per_item=2)
    for _ in range(4):
        make_pair(alpha)
    make_ranking(alpha, n=3)
    annotator = MembershipFactory(project=alpha, role="annotator").user
    manager = MembershipFactory(project=alpha, role="manager").user
    lease = assignment_queue(annotator=annotator, project=alpha, size=1)[0]
    job = Job.objects.create(kind="noop", project=alpha, config={"steps": 1})
    RegisteredModel.objects.create(name="tiny", path="models/tiny")
    return {
        "alpha": alpha,
        "annotator": annotator,
        "manager": manager,
        # Real ids for the second pass, so the operations reach their views and not only their 404s.
        "path_parameters": {"slug": "alpha", "id": job.pk, "name": "tiny"},
        "label_id": lease.pk,
    }


def _fuzz(schema, headers: dict, world: dict) -> list[str]:
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        real = dict(world["path_parameters"])
        if operation.path.startswith("/api/v1/assignments/"):
            real["id"] = world["label_id"]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for path_parameters in (None, real):
                strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

                @RUN
                @given(case=strategy)
                def call(case):
                    case.call_and_validate(headers=headers, checks=[not_a_server_error])
                    # A PATCH may have renamed the project; the next case should still find it.
                    Project.objects.filter(pk=world["alpha"].pk).update(slug="alpha")

                try:
                    call()
                except Unsatisfiable:
                    continue  # nothing to mutate: a GET whose only parameter is the fixed id
                except (Exception, FailureGroup) as exc:  # collected: one run reports every failing operation
                    ids = "real" if path_parameters else "random"
                    failures.append(f"{operation.label} ({mode}, {ids} ids): {_describe(exc)}")
    return failures


def _describe(exc: BaseException) -> str:
    """A failure's own text, which for schemathesis holds the request that reproduces it (as a curl line)."""
    if isinstance(exc, BaseExceptionGroup):
        return "\n".join([str(exc), *(_describe(e) for e in exc.exceptions)])
    return f"{type(exc).__name__}: {exc}"


@pytest.mark.slow
@pytest.mark.parametrize("role", ["annotator", "manager"])
def test_the_api_never_answers_a_server_error(world, wsgi_app, role):
    token = Token.objects.create(user=world[role])
    headers = {"Authorization": f"Token {token.key}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", wsgi_app, headers=headers)
    assert len(list(schema.get_all_operations())) >= 15
    failures = _fuzz(schema, headers, world)
    assert not failures, "\n\n".join(failures)
