"""An annotator's session in Debian's Chromium, keyboard only, checked against the database."""

import pytest

from feedback.models import Assignment, Comparison, Demonstration, Label
from tests.factories import MembershipFactory, PromptFactory, ResponseFactory, make_pair, make_ranking

from .test_pages_in_chromium import watch

pytestmark = pytest.mark.django_db(transaction=True)


def sign_in(page, live_server, user):
    page.goto(live_server.url + "/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill("pw-for-tests-1")
    page.keyboard.press("Enter")
    page.wait_for_url(live_server.url + "/")


def current_id(page) -> str:
    return page.locator("#current .item").get_attribute("data-assignment")


def next_item(page, before: str) -> str:
    page.wait_for_function(
        "(before) => { const el = document.querySelector('#current .item'); return el && el.dataset.assignment !== before; }",
        arg=before,
    )
    return current_id(page)


def test_keyboard_session_labels_undoes_skips_ranks_and_writes(page, live_server, artifacts):
    member = MembershipFactory(
        project__slug="kbd", project__labels_per_item=1, project__guidelines="Prefer **correct** answers."
    )
    pairs = [make_pair(member.project) for _ in range(6)]
    ranking = make_ranking(member.project, priority=-1)  # after the pairs
    problems = watch(page)
    sign_in(page, live_server, member.user)
    page.goto(live_server.url + "/annotate/kbd/")
    page.screenshot(path=str(artifacts / "annotate.png"), full_page=True)

    labelled = []
    item = current_id(page)
    for n in range(5):
        page.keyboard.press("1" if n % 2 else "2")
        page.keyboard.press("w")
        page.keyboard.press("Enter")
        labelled.append(item)
        item = next_item(page, item)
    page.wait_for_function("() => document.querySelector('#ahead .item') !== null")
    assert Label.objects.filter(annotator=member.user).count() == 5

    page.keyboard.press("u")  # undo the fifth
    item = next_item(page, item)
    assert item == labelled[-1]
    assert Label.objects.filter(annotator=member.user).count() == 4

    page.keyboard.press("s")  # skip it, with a reason
    page.keyboard.type("not my field")
    page.keyboard.press("Enter")
    item = next_item(page, item)
    skipped = Assignment.objects.get(pk=labelled[-1])
    assert (skipped.status, skipped.skip_reason) == ("skipped", "not my field")

    page.keyboard.press("3")  # the sixth pair: a tie
    page.keyboard.press("Enter")
    item = next_item(page, item)
    assert page.locator("#current .item").get_attribute("data-kind") == "ranking"

    # Write a better answer, starting from answer B, before ranking.
    page.get_by_text("Write a better answer").click()
    page.locator("#current select.based-on").select_option(label="answer B")
    box = page.locator("#current textarea[name=text]")
    box.press("End")
    box.type(" — with a kigo for the season.")
    page.locator("#current .demo button[type=submit]").click()
    page.locator("#current .demo-status").get_by_text("Saved").wait_for()
    box.press("Escape")
    page.locator("body").click(position={"x": 5, "y": 5})

    page.keyboard.press("c")  # rank 1
    page.keyboard.press("a")  # rank 2
    page.keyboard.press("Shift+D")  # tied with a
    page.keyboard.press("b")  # rank 3
    page.screenshot(path=str(artifacts / "annotate-ranking.png"), full_page=True)
    page.keyboard.press("Enter")
    page.get_by_text("All done here").wait_for()

    labels = Label.objects.filter(annotator=member.user)
    assert labels.filter(choice__in=["a", "b", "tie"]).count() == 5
    assert labels.filter(comparison__in=pairs, choice="tie").count() == 1
    ranked = labels.get(comparison=ranking)
    shown = Assignment.objects.get(annotator=member.user, comparison=ranking).display_order
    assert ranked.ranking == [[shown[2]], [shown[0], shown[3]], [shown[1]]]
    demo = Demonstration.objects.get()
    based_on = ResponseFactory._meta.model.objects.get(pk=shown[1])
    assert demo.based_on_id == shown[1] and demo.text == based_on.text + " — with a kigo for the season."
    assert all(label.time_spent_ms is not None for label in labels)
    assert problems == []


PAYLOADS = [
    "<script>window.pwned = 1</script>",
    '<img src=x onerror="window.pwned = 1">',
    '<svg onload="window.pwned = 1"></svg>',
    '<div hx-get="/api/v1/projects/" hx-trigger="load">htmx payload</div>',
    "[click me](javascript:window.pwned=1)",
    "![x](https://example.invalid/tracker.png)",
]


def test_hostile_text_does_nothing_in_the_browser(page, live_server):
    member = MembershipFactory(project__slug="xss", project__guidelines=PAYLOADS[3])
    prompt = PromptFactory(project=member.project, messages=[{"role": "user", "content": "\n\n".join(PAYLOADS)}])
    a = ResponseFactory(prompt=prompt, text="\n\n".join(PAYLOADS))
    b = ResponseFactory(prompt=prompt, text="Plain answer with `<script>` in code.")
    Comparison.objects.create(
        project=member.project, prompt=prompt, response_a=a, response_b=b, members_key=f"{a.pk},{b.pk}"
    )
    sign_in(page, live_server, member.user)
    requests = []
    dialogs = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(live_server.url + "/annotate/xss/")
    page.get_by_text("Plain answer with").wait_for()
    page.locator("details.guidelines summary").click()
    page.get_by_text("click me").first.click()
    page.wait_for_timeout(500)
    assert page.evaluate("window.pwned") is None
    assert dialogs == []
    assert not [u for u in requests if "/api/v1/" in u or "example.invalid" in u]
