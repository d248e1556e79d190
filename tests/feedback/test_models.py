"""The invariants the database enforces by itself, whatever code writes."""

import pytest
from django.db import IntegrityError, transaction

from feedback.hashing import members_key
from feedback.models import Comparison, Prompt, RankingItem, Response
from tests.factories import ProjectFactory, PromptFactory, ResponseFactory, make_pair

pytestmark = pytest.mark.django_db


def test_a_pair_is_stored_once_whatever_its_order():
    c = make_pair()
    with pytest.raises(IntegrityError), transaction.atomic():
        Comparison.objects.create(
            project=c.project,
            prompt=c.prompt,
            response_a=c.response_a,
            response_b=c.response_b,
            members_key=members_key([c.response_b_id, c.response_a_id]),
        )


def test_pairs_must_be_in_canonical_order():
    prompt = PromptFactory()
    a, b = ResponseFactory(prompt=prompt), ResponseFactory(prompt=prompt)
    with pytest.raises(IntegrityError), transaction.atomic():
        Comparison.objects.create(
            project=prompt.project, prompt=prompt, response_a=b, response_b=a, members_key=f"{b.id},{a.id}"
        )


def test_both_responses_must_answer_the_comparisons_prompt():
    prompt = PromptFactory()
    other = PromptFactory(project=prompt.project)
    a, b = ResponseFactory(prompt=prompt), ResponseFactory(prompt=other)
    with pytest.raises(IntegrityError), transaction.atomic():
        Comparison.objects.create(
            project=prompt.project, prompt=prompt, response_a=a, response_b=b, members_key=members_key([a.id, b.id])
        )
    assert not Comparison.objects.exists()


def test_comparison_project_must_be_the_prompts():
    prompt = PromptFactory()
    a, b = ResponseFactory(prompt=prompt), ResponseFactory(prompt=prompt)
    with pytest.raises(IntegrityError), transaction.atomic():
        Comparison.objects.create(
            project=ProjectFactory(), prompt=prompt, response_a=a, response_b=b, members_key=members_key([a.id, b.id])
        )


def test_updating_a_comparison_to_a_foreign_response_is_refused():
    c = make_pair()
    stranger = ResponseFactory(prompt=PromptFactory(project=c.project))
    with pytest.raises(IntegrityError), transaction.atomic():
        Comparison.objects.filter(pk=c.pk).update(response_b=stranger)


def test_ranking_items_must_answer_the_same_prompt():
    prompt = PromptFactory()
    rs = [ResponseFactory(prompt=prompt) for _ in range(3)]
    ranking = Comparison.objects.create(
        project=prompt.project, prompt=prompt, kind="ranking", members_key=members_key([r.id for r in rs])
    )
    for n, r in enumerate(rs):
        RankingItem.objects.create(comparison=ranking, response=r, position=n)
    with pytest.raises(IntegrityError), transaction.atomic():
        RankingItem.objects.create(comparison=ranking, response=ResponseFactory(), position=3)


def test_a_response_cannot_move_to_another_prompt():
    r = ResponseFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Response.objects.filter(pk=r.pk).update(prompt=PromptFactory())


def test_duplicate_prompt_and_response_hashes_are_refused():
    prompt = PromptFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Prompt.objects.create(project=prompt.project, messages=prompt.messages, content_hash=prompt.content_hash)
    r = ResponseFactory(prompt=prompt)
    with pytest.raises(IntegrityError), transaction.atomic():
        Response.objects.create(prompt=prompt, text=r.text, model=r.model, content_hash=r.content_hash)
