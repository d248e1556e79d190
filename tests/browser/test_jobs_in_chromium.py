import pytest

from tests.browser.test_annotate_in_chromium import sign_in
from tests.browser.test_pages_in_chromium import watch
from tests.factories import MembershipFactory
from training.jobs import job_claim, job_submit
from training.models import JobMetric

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_running_job_s_charts_draw_and_follow_new_metrics(page, live_server, artifacts):
    manager = MembershipFactory(role="manager").user
    job = job_submit(kind="noop", project=manager.memberships.get().project, config={"steps": 50})
    claimed = job_claim(worker="browser-test")
    JobMetric.objects.bulk_create(
        [JobMetric(job=job, attempt=1, step=s, name="loss", value=2 / s) for s in range(1, 20)]
    )
    problems = watch(page)
    sign_in(page, live_server, manager)
    page.goto(f"{live_server.url}/jobs/{job.pk}/")
    charts = page.locator("#charts figure.chart canvas")
    charts.first.wait_for()
    assert charts.count() == 1
    assert page.evaluate("typeof window.Chart") == "function", "Chart.js must load from our static files"
    # A metric reported while the page is open appears at the next poll, without a reload.
    JobMetric.objects.create(job=claimed, attempt=1, step=1, name="reward", value=0.5)
    page.locator("#charts figcaption", has_text="reward").wait_for(timeout=8000)
    assert charts.count() == 2
    page.screenshot(path=str(artifacts / "job-live.png"), full_page=True)
    assert problems == []
