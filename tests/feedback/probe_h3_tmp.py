import json
import pytest
from django.test import Client
from rest_framework.test import APIClient
from feedback.assignment import assignment_claim
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, make_pair
from training.models import Job, RegisteredModel

pytestmark = pytest.mark.django_db(transaction=True)

def test_probe():
    a = ProjectFactory(slug="alpha")
    ann = MembershipFactory(project=a, role="annotator").user
    man = MembershipFactory(project=a, role="manager").user
    staff = UserFactory(is_staff=True)
    make_pair(a); make_pair(a)
    lease = assignment_claim(annotator=ann, project=a)
    job = Job.objects.create(kind="noop", project=a, config={"steps": 1})
    RegisteredModel.objects.create(name="tiny", path="models/tiny")
    out = []
    def probe(user, method, url, **kw):
        c = Client(raise_request_exception=False)
        c.force_login(user)
        try:
            r = getattr(c, method)(url, **kw)
            out.append(f"{r.status_code} {r.get('Content-Type','')[:20]:20} {method} {url[:70]!r} {kw.get('data','')!s:.60}")
        except Exception as e:
            out.append(f"EXC {type(e).__name__} {method} {url[:70]!r} {e!s:.80}")
    deep = "[" * 100000 + "]" * 100000
    for u in ["/api/v1/projects/%00/", "/api/v1/projects/%00/stats/", "/api/v1/models/%00/", "/api/v1/jobs/%00/",
              "/api/v1/jobs/?project=%00", "/api/v1/jobs/?status=%00", "/api/v1/projects/?limit=99999999999999999999",
              "/api/v1/projects/?offset=99999999999999999999", "/api/v1/jobs/?limit=99999999999999999999",
              "/api/v1/jobs/?offset=99999999999999999999", "/api/v1/jobs/99999999999999999999/",
              "/api/v1/jobs/²/", "/api/v1/assignments/²/label/", "/api/v1/nope/", "/annotate/%00/", "/projects/%00/",
              "/projects/%00/export/", "/projects/%00/members/", "/jobs/?project=%00", "/jobs/new/?project=%00",
              "/jobs/new/?kind=%00", "/invite/%00/", "/api/v1/projects/alpha/next/?x=%00", "/api/v1/schema/?format=%00",
              "/api/v1/schema/?lang=%00", "/api/v1/models/?limit=-1", "/admin/feedback/project/%00/change/",
              "/admin/feedback/project/?q=%00", "/api/v1/projects/alpha/?format=%00"]:
        probe(man, "get", u)
    probe(man, "delete", "/api/v1/projects/alpha/")
    probe(man, "get", "/api/v1/projects/alpha/import/")
    probe(man, "patch", "/api/v1/projects/alpha/", data={"lease_minutes": 0}, content_type="application/json")
    probe(man, "patch", "/api/v1/projects/alpha/", data={"labels_per_item": 0}, content_type="application/json")
    probe(man, "patch", "/api/v1/projects/alpha/", data={"gold_rate": 2}, content_type="application/json")
    probe(man, "patch", "/api/v1/projects/alpha/", data={"max_pairs_per_prompt": 0}, content_type="application/json")
    probe(man, "patch", "/api/v1/projects/alpha/", data={"labels_per_item": 99999}, content_type="application/json")
    probe(man, "patch", "/api/v1/projects/alpha/", data={"name": "x\u0000"}, content_type="application/json")
    probe(man, "patch", "/api/v1/projects/alpha/", data=deep, content_type="application/json")
    probe(man, "patch", "/api/v1/projects/alpha/", data='{"gold_rate": NaN}', content_type="application/json")
    probe(man, "patch", "/api/v1/projects/alpha/", data='{"gold_rate": 1e400}', content_type="application/json")
    probe(man, "patch", "/api/v1/projects/alpha/", data='{"name": "\\ud800"}', content_type="application/json")
    probe(man, "patch", "/api/v1/projects/alpha/", data=b'\xff\xfe', content_type="application/json")
    probe(man, "patch", "/api/v1/projects/alpha/", data=b'x' * (11 * 1024 * 1024), content_type="application/json")
    probe(man, "post", "/api/v1/projects/alpha/export/", data=b'x' * (11 * 1024 * 1024), content_type="application/x-www-form-urlencoded")
    probe(man, "post", "/api/v1/projects/alpha/export/", data={"segment": "\u0000"}, content_type="application/json")
    probe(man, "post", "/api/v1/projects/alpha/export/", data={"seed": 10**30}, content_type="application/json")
    probe(man, "post", "/api/v1/projects/alpha/export/", data={"models": ["\u0000"]}, content_type="application/json")
    probe(man, "post", "/api/v1/jobs/", data={"kind": "noop", "project": "alpha", "config": {"x\u0000": "\u0000"}}, content_type="application/json")
    probe(man, "post", "/api/v1/jobs/", data={"kind": "noop", "project": "\u0000"}, content_type="application/json")
    probe(man, "post", "/api/v1/jobs/", data={"kind": "noop", "project": "alpha", "config": {"steps": 10**30}}, content_type="application/json")
    probe(man, "post", "/api/v1/jobs/", data={"kind": "generate", "project": "alpha", "config": {"limit": 10**30}}, content_type="application/json")
    probe(staff, "post", "/api/v1/projects/", data={"slug": "x" * 100, "name": "n"}, content_type="application/json")
    lu = f"/api/v1/assignments/{lease.pk}/label/"
    probe(ann, "post", lu, data={"choice": json.loads("[" * 900 + "]" * 900)}, content_type="application/json")
    probe(ann, "post", lu, data='{"choice": ' + deep + '}', content_type="application/json")
    probe(ann, "post", lu, data={"choice": "a\u0000"}, content_type="application/json")
    probe(ann, "post", lu, data={"choice": "a", "time_spent_ms": 10**30}, content_type="application/json")
    probe(ann, "post", lu, data={"choice": "a", "rationale": "\u0000"}, content_type="application/json")
    probe(ann, "post", lu, data={"choice": "a"}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k" * 200)
    probe(ann, "post", lu, data={"choice": "a"}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k\u0000")
    probe(ann, "post", "/annotate/alpha/label/", data={"assignment_id": "²", "choice": "a"})
    probe(ann, "post", "/annotate/alpha/label/", data={"assignment_id": "9" * 25, "choice": "a"})
    probe(ann, "post", "/annotate/alpha/label/", data={"assignment_id": str(lease.pk), "choice": "a", "time_spent_ms": "²"})
    probe(ann, "post", "/annotate/alpha/skip/", data={"assignment_id": "9" * 25, "reason": "\u0000"})
    probe(ann, "post", "/annotate/alpha/flag/", data={"assignment_id": str(lease.pk), "reason": "\u0000", "note": "\u0000"})
    probe(ann, "post", "/annotate/alpha/demonstration/", data={"assignment_id": str(lease.pk), "text": "x\u0000", "based_on": "²"})
    probe(ann, "post", "/annotate/alpha/label/", data={"assignment_id": str(lease.pk), "choice": "a", "idempotency_key": "k" * 300})
    probe(ann, "get", "/api/v1/projects/alpha/next/")
    probe(man, "post", "/jobs/new/", data={"kind": "noop", "project": "\u0000"})
    probe(man, "post", "/jobs/new/", data={"kind": "generate", "project": "alpha", "config_limit": "9"*30})
    probe(man, "get", "/jobs/99999999999999999999/")
    probe(man, "get", "/jobs/1/artifacts/99999999999999999999/")
    probe(man, "get", "/projects/alpha/members/99999999999999999999/")
    probe(ann, "get", "/api/v1/projects/alpha/next/?x=\u0000")
    probe(ann, "post", "/annotate/alpha/flag/", data={"assignment_id": str(lease.pk), "reason": "broken", "note": "\u0000"})
    probe(ann, "post", "/annotate/alpha/skip/", data={"assignment_id": str(lease.pk), "reason": "x\u0000"})
    probe(ann, "post", "/annotate/alpha/demonstration/", data={"assignment_id": str(lease.pk), "text": "x\u0000"})
    probe(ann, "post", "/annotate/alpha/label/", data=b"x=" + b"y" * (11 * 1024 * 1024), content_type="application/x-www-form-urlencoded")
    probe(man, "post", "/api/v1/projects/alpha/import/", data={"file": ("a.jsonl", b"{}"), "source": "x" * (11 * 1024 * 1024)})
    probe(man, "post", "/api/v1/jobs/", data=b"kind=noop&project=alpha&x=" + b"y" * (11 * 1024 * 1024), content_type="application/x-www-form-urlencoded")
    probe(ann, "get", "/api/v1/projects/?limit=99999999999999999999&offset=99999999999999999999")
    probe(ann, "put", "/api/v1/nope/")
    probe(ann, "post", "/api/v1/projects/alpha/next/")
    print("\n".join(out))
    open("/tmp/h3/probe.txt", "a").write("\n".join(out) + "\n\n")
