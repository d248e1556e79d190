import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("annotators", "0004_membership_excluded_from_exports")]
AFTER = [("annotators", "0006_delete_profile")]


@pytest.fixture
def executor(transactional_db):
    executor = MigrationExecutor(connection)
    yield executor
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def migrate(executor, targets):
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_segments_move_from_the_profile_to_every_membership_and_back(executor):
    apps = migrate(executor, BEFORE)
    User, Project = apps.get_model("auth", "User"), apps.get_model("feedback", "Project")
    Profile, Membership = apps.get_model("annotators", "Profile"), apps.get_model("annotators", "Membership")
    kim, lee, max_ = (User.objects.create(username=name) for name in ("kim", "lee", "max"))
    first, second = Project.objects.create(slug="first", name="First"), Project.objects.create(slug="second", name="S")
    Profile.objects.create(user=kim, attributes={"expertise": "expert"})
    Profile.objects.create(user=lee, attributes={})
    Profile.objects.create(user=max_, attributes=["not", "an", "object"])
    for user in (kim, lee, max_):
        for project in (first, second):
            Membership.objects.create(user=user, project=project)

    apps = migrate(executor, AFTER)
    Membership = apps.get_model("annotators", "Membership")
    segments = {(m.user.username, m.project.slug): m.attributes for m in Membership.objects.select_related()}
    assert segments == {
        ("kim", "first"): {"expertise": "expert"},
        ("kim", "second"): {"expertise": "expert"},
        ("lee", "first"): {},
        ("lee", "second"): {},
        ("max", "first"): {},
        ("max", "second"): {},
    }
    assert "annotators_profile" not in connection.introspection.table_names()

    # Backwards, a person's segments are merged into one profile again (a later membership wins a key).
    Membership.objects.filter(user__username="kim", project__slug="second").update(
        attributes={"expertise": "novice", "audience": "adult"}
    )
    apps = migrate(executor, BEFORE)
    Profile = apps.get_model("annotators", "Profile")
    assert {p.user.username: p.attributes for p in Profile.objects.select_related()} == {
        "kim": {"expertise": "novice", "audience": "adult"}
    }
