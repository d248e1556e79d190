"""Builds large projects fast (bulk inserts), for query-count tests and benchmarks."""

from feedback.hashing import members_key, messages_hash, text_hash
from feedback.models import Comparison, Project, Prompt, Response

BATCH = 5000


def bulk_pairs(project: Project, n: int, start: int = 0) -> None:
    """n prompts with two responses and one pair each."""
    for lo in range(start, start + n, BATCH):
        hi = min(lo + BATCH, start + n)
        prompts = Prompt.objects.bulk_create(
            [
                Prompt(project=project, messages=m, content_hash=messages_hash(m))
                for m in ([{"role": "user", "content": f"Bulk question {i}?"}] for i in range(lo, hi))
            ]
        )
        responses = Response.objects.bulk_create(
            [
                Response(prompt=p, text=t, model=f"m{j}", content_hash=text_hash(t))
                for p in prompts
                for j, t in enumerate((f"First answer to {p.pk}.", f"Second answer to {p.pk}."))
            ]
        )
        Comparison.objects.bulk_create(
            [
                Comparison(project=project, prompt=p, response_a=a, response_b=b, members_key=members_key([a.pk, b.pk]))
                for p, a, b in zip(prompts, responses[::2], responses[1::2], strict=True)
            ]
        )
