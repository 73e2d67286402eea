"""Load an HTML file in Debian's headless chromium (deploy/stack.sh installs it) through Playwright.

Chromium is started with everything that would reach out on its own turned
off, and a fresh profile, so that the only request a page makes is its own.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import BrowserContext, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass
class PageLoad:
    url: str
    seconds: float  # from navigation to the load event
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    features: list[str] = field(default_factory=list)  # data-feature of each visible feature section
    verdict: str = ""


def chromium_missing() -> str | None:
    if shutil.which(CHROMIUM) is None:
        return f"{CHROMIUM} is not installed: run 'make stack-up' (it installs Debian's chromium) or " \
               "'apt-get install -y chromium'"
    return None


@contextmanager
def chromium() -> Iterator[BrowserContext]:
    with tempfile.TemporaryDirectory(prefix="driftline-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield context
        finally:
            context.close()


def load(context: BrowserContext, path: Path, screenshot: Path | None = None) -> PageLoad:
    """Open a report in a new page: what it requested and logged, its feature sections, its verdict."""
    url = path.resolve().as_uri()
    page = context.new_page()
    result = PageLoad(url=url, seconds=0.0)
    page.on("request", lambda r: result.requests.append(r.url))
    page.on("console", lambda m: result.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: result.page_errors.append(str(e)))
    started = time.perf_counter()
    page.goto(url, wait_until="load")
    result.seconds = time.perf_counter() - started
    result.features = [el.get_attribute("data-feature") for el in page.query_selector_all("section.feature")
                       if el.is_visible()]
    verdict = page.query_selector("#decision .verdict")
    result.verdict = verdict.inner_text() if verdict else ""
    if screenshot is not None:
        page.screenshot(path=str(screenshot), full_page=True)
    page.close()
    return result
