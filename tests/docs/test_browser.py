"""The built site in a real browser: headless Debian Chromium driven by Playwright.

Opens the home page, a worked example and an API page from a local HTTP server, checks that
MathJax typeset every formula (an ``mjx-container`` inside every ``.arithmatex`` element, no raw
``$$`` or ``\\(`` left in the text), that no console error, page error or failed request
occurred and that nothing outside localhost was requested, and saves full-page screenshots to
``artifacts/screenshots/``.

Install the browser with ``bash scripts/install_browser.sh`` (Debian ``chromium`` + the
``playwright`` package; never ``playwright install``).
"""

import functools
import http.server
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / "artifacts" / "screenshots"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
PAGES = {  # screenshot name -> path in the site
    "home": "",
    "worked-example": "examples/worked_example/",
    "api-advantages": "api/advantages/",
}

pytestmark = pytest.mark.browser


def _playwright():
    if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
        pytest.skip(f"{CHROMIUM} is missing: run `bash scripts/install_browser.sh` "
                    "(apt-get install chromium) to enable the browser test")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is missing: run `bash scripts/install_browser.sh` "
                    "(pip install playwright; no `playwright install` needed)")
    return sync_playwright


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def served_site(built_site):
    handler = functools.partial(_QuietHandler, directory=str(built_site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


_TYPESET_DONE = """() => {
  const formulas = document.querySelectorAll('.arithmatex');
  const rendered = document.querySelectorAll('.arithmatex mjx-container');
  return window.MathJax && MathJax.startup && MathJax.startup.document
         && formulas.length > 0 && rendered.length >= formulas.length;
}"""

_MATH_REPORT = """() => {
  const formulas = [...document.querySelectorAll('.arithmatex')];
  const raw = formulas.filter(el => !el.querySelector('mjx-container')).map(el => el.textContent);
  const errors = [...document.querySelectorAll('mjx-merror, [data-mjx-error]')]
                 .map(el => el.getAttribute('data-mjx-error') || el.textContent);
  const text = document.querySelector('article') ? document.querySelector('article').innerText : '';
  return {formulas: formulas.length,
          containers: document.querySelectorAll('mjx-container').length,
          unrendered: raw, tex_errors: errors, text: text};
}"""


def test_pages_render_math_without_console_errors(served_site):
    sync_playwright = _playwright()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    host = urlparse(served_site).netloc
    reports = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            for name, path in PAGES.items():
                page = context.new_page()
                problems: list[str] = []
                page.on("console", lambda msg, problems=problems: problems.append(
                    f"console {msg.type}: {msg.text}") if msg.type in ("error", "warning") else None)
                page.on("pageerror", lambda error, problems=problems: problems.append(f"page error: {error}"))
                page.on("requestfailed", lambda request, problems=problems: problems.append(
                    f"request failed: {request.url} ({request.failure})"))
                page.on("response", lambda response, problems=problems: problems.append(
                    f"HTTP {response.status}: {response.url}") if response.status >= 400 else None)

                def only_localhost(route, problems=problems):
                    if urlparse(route.request.url).netloc == host:
                        route.continue_()
                    else:
                        problems.append(f"external request: {route.request.url}")
                        route.abort()

                page.route("**/*", only_localhost)
                page.goto(served_site + path, wait_until="load")
                page.wait_for_function(_TYPESET_DONE, timeout=30_000)
                page.wait_for_timeout(300)  # let a late typeset pass or console message arrive
                report = page.evaluate(_MATH_REPORT)
                page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
                reports[name] = (report, problems)
                page.close()
        finally:
            browser.close()

    for name, (report, problems) in reports.items():
        assert report["containers"] > 0, f"{name}: no MathJax output (mjx-container) on the page"
        assert not report["unrendered"], f"{name}: formulas MathJax did not render: {report['unrendered'][:5]}"
        assert not report["tex_errors"], f"{name}: TeX errors: {report['tex_errors'][:5]}"
        for raw in ("$$", "\\(", "\\["):
            assert raw not in report["text"], f"{name}: raw {raw!r} left in the page text"
        assert not problems, f"{name}: browser problems: {problems}"
    for name in PAGES:
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000, f"{name}: empty screenshot"


def test_every_page_typesets_its_math(served_site, built_site):
    """Every page of the site (API pages hold other authors' docstrings): no TeX error, no
    formula left untypeset, no raw ``$$``, no page error (no screenshots: kept fast)."""
    sync_playwright = _playwright()
    paths = sorted(str(page.parent.relative_to(built_site)) + "/"
                   for page in built_site.rglob("index.html") if page.parent != built_site)
    failures = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
            page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
            for path in [""] + paths:
                errors.clear()
                page.goto(served_site + path, wait_until="load")
                page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                                       timeout=30_000)
                page.evaluate("() => MathJax.startup.promise")
                report = page.evaluate(_MATH_REPORT)
                problems = [*errors]
                if report["unrendered"]:
                    problems.append(f"untypeset: {report['unrendered'][:3]}")
                if report["tex_errors"]:
                    problems.append(f"TeX errors: {report['tex_errors'][:3]}")
                if "$$" in report["text"]:
                    problems.append("raw $$ in the text")
                if problems:
                    failures[path or "home"] = problems
        finally:
            browser.close()
    assert not failures, f"pages whose math did not render cleanly: {failures}"
