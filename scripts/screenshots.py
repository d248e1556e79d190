"""Takes the screenshots in docs/images from a running Juror with the demo data (scripts/run).

.venv/bin/python scripts/screenshots.py http://127.0.0.1:8000 var/demo-logins.json
"""

import json
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "images"


def sign_in(browser, base: str, username: str, password: str, width: int = 1280):
    page = browser.new_page(viewport={"width": width, "height": 800})
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/")
    return page


def main(base: str, logins_file: str) -> None:
    logins = json.loads(Path(logins_file).read_text())
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium.EXECUTABLE, args=chromium.ARGS)
        page = sign_in(browser, base, "admin", logins["admin"])
        page.screenshot(path=str(OUT / "home.png"))
        page.goto(f"{base}/projects/demo/")
        page.screenshot(path=str(OUT / "project-dashboard.png"), full_page=True)
        page.goto(f"{base}/projects/demo/export/")
        page.screenshot(path=str(OUT / "export.png"), full_page=True)
        page.goto(f"{base}/projects/demo/members/")
        page.screenshot(path=str(OUT / "members.png"), full_page=True)
        page.goto(f"{base}/jobs/")
        page.screenshot(path=str(OUT / "jobs.png"))
        page.goto(f"{base}/jobs/new/")
        page.screenshot(path=str(OUT / "job-new.png"), full_page=True)
        page.goto(f"{base}/jobs/1/")  # the demo's generation job (seed_demo queues it; the worker runs it)
        page.wait_for_timeout(500)  # the charts draw after load
        page.screenshot(path=str(OUT / "job-detail.png"), full_page=True)
        page.goto(f"{base}/projects/demo/")
        page.get_by_role("link", name="Import data").click()
        page.locator("input[type=file]").set_input_files(
            files=[
                {
                    "name": "messy.jsonl",
                    "mimeType": "application/json",
                    "buffer": b'{"prompt": "Fine"}\n{"prompt": ""}\n',
                }
            ]
        )
        page.get_by_role("button", name="Import").click()
        page.screenshot(path=str(OUT / "admin-import-error.png"))

        page = sign_in(browser, base, "annotator2", logins["annotator2"])
        page.goto(f"{base}/annotate/")
        page.screenshot(path=str(OUT / "annotate-home.png"))
        page.goto(f"{base}/annotate/demo/")
        page.keyboard.press("1")
        page.keyboard.press("w")
        page.screenshot(path=str(OUT / "annotate.png"), full_page=True)
        page.keyboard.press("?")
        page.screenshot(path=str(OUT / "annotate-keys.png"))
        narrow = sign_in(browser, base, "annotator2", logins["annotator2"], width=420)
        narrow.goto(f"{base}/annotate/demo/")
        narrow.screenshot(path=str(OUT / "annotate-narrow.png"))
        browser.close()


if __name__ == "__main__":
    from tests.browser import chromium

    main(*sys.argv[1:3])
