import factory
from django.contrib.auth import get_user_model

from annotators.models import Membership
from feedback.hashing import members_key, messages_hash, text_hash
from feedback.models import Comparison, Label, Project, Prompt, RankingItem, Response


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests-1")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    slug = factory.Sequence(lambda n: f"project-{n}")
    name = factory.Sequence(lambda n: f"Project {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    project = factory.SubFactory(ProjectFactory)
    role = Membership.Role.ANNOTATOR


class PromptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prompt

    project = factory.SubFactory(ProjectFactory)
    messages = factory.Sequence(lambda n: [{"role": "user", "content": f"Question {n}?"}])
    content_hash = factory.LazyAttribute(lambda o: messages_hash(o.messages))


class ResponseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Response

    prompt = factory.SubFactory(PromptFactory)
    text = factory.Sequence(lambda n: f"Answer {n}.")
    model = "model-x"
    content_hash = factory.LazyAttribute(lambda o: text_hash(o.text))


def make_pair(project: Project | None = None) -> Comparison:
    prompt = PromptFactory(project=project or ProjectFactory())
    a, b = ResponseFactory(prompt=prompt), ResponseFactory(prompt=prompt)
    return Comparison.objects.create(
        project=prompt.project,
        prompt=prompt,
        response_a=a,
        response_b=b,
        members_key=members_key([a.id, b.id]),
    )


def make_label(comparison: Comparison, choice: str = "a", source: str = "test-source") -> Label:
    return Label.objects.create(comparison=comparison, choice=choice, source=source)


def make_ranking(project: Project, n: int = 4, **comparison_fields) -> Comparison:
    """An N-way ranking task over n fresh responses to one prompt."""
    prompt = PromptFactory(project=project)
    responses = [ResponseFactory(prompt=prompt) for _ in range(n)]
    ranking = Comparison.objects.create(
        project=project,
        prompt=prompt,
        kind="ranking",
        members_key=members_key([r.id for r in responses]),
        **comparison_fields,
    )
    RankingItem.objects.bulk_create(
        RankingItem(comparison=ranking, response=r, position=i) for i, r in enumerate(responses)
    )
    return ranking
