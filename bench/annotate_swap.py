"""Submit-to-next-visible in a real browser: Debian's Chromium labels items on the annotate page with the
keyboard, and the page itself times each swap (Enter keydown to the next item painted). Prints one JSON line.

    .venv/bin/python bench/annotate_swap.py [--items 60] [--warmup 5] [--pairs 2000]

Target: median under 150 ms on this machine. The next item is leased and rendered ahead, so the swap does not
wait for the server; the bench also reports how long the label post itself took, for comparison. A smoke run
at a tiny size is part of the test suite (tests/bench/test_annotate_swap_smoke.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(Path(__file__).resolve().parent), str(ROOT)]


TIMER = """
window.__swaps = []; window.__posts = [];
document.addEventListener('keydown', (e) => { if (e.key === 'Enter') window.__t0 = performance.now(); }, true);
new MutationObserver(() => {
  const el = document.querySelector('#current .item');
  if (!el || el.dataset.assignment === window.__last || window.__t0 === undefined) return;
  window.__last = el.dataset.assignment;
  const t0 = window.__t0;
  requestAnimationFrame(() => requestAnimationFrame(() => window.__swaps.push(performance.now() - t0)));
}).observe(document.getElementById('current'), {childList: true, subtree: true});
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) if (e.name.endsWith('/label/')) window.__posts.push(e.duration);
}).observe({type: 'resource', buffered: true});
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=60, help="items labelled in the browser")
    parser.add_argument("--warmup", type=int, default=5, help="first swaps left out (page and server warming up)")
    parser.add_argument("--pairs", type=int, default=2000, help="pairs in the project")
    args = parser.parse_args()
    if not 0 <= args.warmup < args.items < args.pairs:
        parser.error("need 0 <= --warmup < --items < --pairs")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/swap.sqlite3"
        env = {**os.environ, "DATABASE_URL": url, "JUROR_DATA_DIR": tmp}
        seed = (
            "import annotation_load as al; from django.core.management import call_command; "
            f"call_command('migrate', verbosity=0); pid, _ = al.seed(1); al.grow(pid, {args.pairs}, 0); "
            "from django.contrib.auth import get_user_model; u = get_user_model().objects.get(username='annotator0'); "
            "u.set_password('swap-bench-pass-1'); u.save()"
        )
        subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sys; sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'bench')!r}]; "
                "import os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings'); import django; "
                f"django.setup(); {seed}",
            ],
            check=True,
            env=env,
            cwd=ROOT,
        )
        import annotation_load as al

        server, port = al.serve(url, tmp)
        try:
            from playwright.sync_api import sync_playwright

            from tests.browser import chromium

            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium.EXECUTABLE, args=chromium.ARGS)
                page = browser.new_page()
                base = f"http://127.0.0.1:{port}"
                page.goto(base + "/accounts/login/")
                page.get_by_label("Username").fill("annotator0")
                page.get_by_label("Password").fill("swap-bench-pass-1")
                page.keyboard.press("Enter")
                page.wait_for_url(base + "/")
                page.goto(base + "/annotate/load/")
                page.evaluate(TIMER)
                for n in range(args.items):
                    page.wait_for_function("() => document.querySelector('#ahead .item') !== null")
                    page.keyboard.press("1" if n % 2 else "2")
                    page.keyboard.press("Enter")
                    page.wait_for_function(f"() => window.__swaps.length > {n}")
                swaps = page.evaluate("window.__swaps")
                posts = page.evaluate("window.__posts")
                browser.close()
        finally:
            server.terminate()
            server.wait(10)
    swaps = swaps[args.warmup :]  # the first few warm up the page and the server
    print(
        json.dumps(
            {
                "bench": "annotate_swap",
                "items": len(swaps),
                "submit_to_next_visible_ms": {
                    "p50": round(statistics.median(swaps), 1),
                    "p95": round(sorted(swaps)[int(0.95 * len(swaps)) - 1], 1),
                },
                "label_post_ms_p50": round(statistics.median(posts), 1) if posts else None,
                "target_ms": 150,
            }
        )
    )


if __name__ == "__main__":
    main()
