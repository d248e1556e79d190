import pytest

from tests.factories import MembershipFactory, make_label, make_pair

pytestmark = pytest.mark.django_db(transaction=True)


def watch(page) -> list[str]:
    """Collects console errors and CSP violations: a page that works only with them switched off is broken."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return problems


def test_sign_in_and_see_my_projects(page, live_server, artifacts):
    membership = MembershipFactory(role="manager", project__name="Sky questions")
    make_label(make_pair(membership.project), choice="a", source="juror-team-demo")
    problems = watch(page)

    page.goto(live_server.url + "/")
    assert page.get_by_role("heading", name="Human feedback for language models").is_visible()
    page.screenshot(path=str(artifacts / "home-anonymous.png"), full_page=True)

    page.get_by_role("link", name="Sign in").first.click()
    page.get_by_label("Username").fill(membership.user.username)
    page.get_by_label("Password").fill("pw-for-tests-1")
    page.get_by_role("button", name="Sign in").click()

    page.wait_for_url(live_server.url + "/")
    card = page.locator(".project-card", has_text="Sky questions")
    assert card.is_visible()
    assert "1 / 1 complete" not in card.inner_text()  # one imported label is not k=3 labels
    assert page.evaluate("typeof window.htmx") == "object", "htmx must load under the CSP"
    page.screenshot(path=str(artifacts / "home.png"), full_page=True)

    card.click()
    assert page.get_by_role("heading", name="Labels by source").is_visible()
    assert page.get_by_text("juror-team-demo").is_visible()
    page.screenshot(path=str(artifacts / "project-dashboard.png"), full_page=True)
    assert problems == []
