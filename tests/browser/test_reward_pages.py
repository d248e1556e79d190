"""A reward_eval job's page and a reward model's page in Chromium, from fixture data (nothing is trained): the
charts draw, nothing errs in the console, and the pairs two segment models disagree on are listed."""

import pytest

from feedback.models import Comparison
from tests.browser.test_annotate_in_chromium import sign_in
from tests.browser.test_pages_in_chromium import watch
from tests.training.reward_fixtures import (
    finished_reward_eval,
    labelled_project,
    manager_of,
    pair_rows,
    segment_reward_model,
)
from training.kinds.reward import MAX_PAIR_ITEMS

pytestmark = pytest.mark.django_db(transaction=True)


def test_where_a_child_and_an_adult_reward_model_disagree(page, live_server, artifacts, tmp_path):
    project = labelled_project(pairs=30)
    manager = manager_of(project)
    child = segment_reward_model(tmp_path, project, "kids-child", "audience=child", accuracy=0.9)
    adult = segment_reward_model(tmp_path, project, "kids-adult", "audience=adult", accuracy=0.4)
    rows = pair_rows(list(Comparison.objects.filter(project=project).order_by("id")))
    # The adult model prefers the other answer on the first 24 pairs.
    scores = {
        child.name: ([2.0 + i / 10 for i in range(30)], [0.0] * 30),
        adult.name: ([-1.0 - i / 10 if i < 24 else 1.0 for i in range(30)], [0.0] * 30),
    }
    job = finished_reward_eval(tmp_path / "eval", project, [child.name, adult.name], rows, scores)
    problems = watch(page)
    sign_in(page, live_server, manager)

    page.goto(f"{live_server.url}/jobs/{job.pk}/")
    table = page.locator(".models-table")
    assert table.get_by_role("link", name="kids-child").get_attribute("href") == "/models/kids-child/"
    assert "audience=adult" in table.inner_text()
    pair = page.locator("#disagreement-1")
    assert "80%" in pair.locator(".figures").inner_text()  # 24 of 30 pairs
    items = pair.locator("table.model-disagreements tbody tr, table.model-disagreements > tr")
    assert items.count() == MAX_PAIR_ITEMS
    first = pair.locator("details").first
    first.locator("summary").click()
    assert "kids-adult prefers it" in first.inner_text().lower()  # the role line is uppercased by CSS
    assert first.locator("script").count() == 0  # the answer's markup is text
    assert "<script>alert(23)</script>" in first.inner_text()
    page.screenshot(path=str(artifacts / "reward-eval-job.png"), full_page=True)

    page.locator(".models-table").get_by_role("link", name="kids-child").click()
    page.wait_for_url(f"{live_server.url}/models/kids-child/")
    charts = page.locator("[data-reward-charts] canvas")
    charts.first.wait_for()
    assert charts.count() == 4  # two evaluations (held-out; every pair in the reward_eval job), two charts each
    page.wait_for_function("window.Chart !== undefined")
    # Chart.js has drawn into both canvases (an undrawn one has no chart instance).
    assert page.evaluate(
        "[...document.querySelectorAll('[data-reward-charts] canvas')].every(c => window.Chart.getChart(c))"
    )
    compared = page.locator("#compared")
    assert "Compared with: kids-adult — disagree on 80% of 30 pairs" in " ".join(compared.inner_text().split())
    compared.get_by_role("link", name=f"reward_eval job #{job.pk}").click()
    page.wait_for_url(f"{live_server.url}/jobs/{job.pk}/")
    page.goto(f"{live_server.url}/models/kids-child/")
    page.get_by_role("link", name="Score responses").click()
    assert page.locator("input[name=config_model]").input_value() == "kids-child"
    assert problems == []
