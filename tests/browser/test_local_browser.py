"""Real-browser tests of the live page and the report (headless Debian Chromium + playwright).

A real program runs under ``pyrospan-run --local``; the test opens the address the
launcher prints, watches spans arrive without reloading, opens flame graphs, then opens
the written report from disk with the network unused.  Chromium comes from the Debian
package (.ci/run installs it); without it these tests fail, they do not skip.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers import PROGRAMS, PYROSPAN_RUN, clean_env

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Dialog, Locator

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 20_000


class LocalRun:
    """``pyrospan-run --local`` running tests/programs/local_app.py with two span names."""

    def __init__(self, tmp_path: Path, first: str, second: str, status: int = 0) -> None:
        self.control = tmp_path / "control"
        self.control.mkdir()
        self.report = tmp_path / "report"
        self.process = subprocess.Popen(
            [
                *(PYROSPAN_RUN, "--local", "--report-dir", str(self.report), sys.executable),
                *(str(PROGRAMS / "local_app.py"), str(self.control), str(status), first, second),
            ],
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stderr is not None
        self.first_line = self.process.stderr.readline()  # printed before the program starts
        found = re.search(r"live span profiles at (http://127\.0\.0\.1:\d+/) ", self.first_line)
        assert found, self.first_line + "".join(self.process.communicate(timeout=30))
        self.url = found[1]

    def go(self) -> None:
        """Let the program start making spans."""
        (self.control / "go").touch()

    def stop(self) -> tuple[int, str]:
        """Let the program finish; the launcher's exit status and everything it printed."""
        (self.control / "stop").touch()
        _, err = self.process.communicate(timeout=60)
        return self.process.returncode, self.first_line + err


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium package "
            "(`make chromium` installs it; `make test` runs it first)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Tab:
    """A fresh page that records dialogs, script errors and every request it makes."""

    def __init__(self, browser: Browser) -> None:
        from playwright.sync_api import Browser

        assert isinstance(browser, Browser)
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.requests: list[str] = []

        def on_dialog(dialog: Dialog) -> None:
            self.dialogs.append(dialog.message)
            dialog.dismiss()

        self.page.on("dialog", on_dialog)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("request", lambda request: self.requests.append(request.url))

    def frame(self, name: str) -> Locator:
        """The flame graph frames named exactly ``name``."""
        return self.page.locator("#flame .frame").filter(
            has_text=re.compile(f"^{re.escape(name)}$")
        )

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tabs(browser: Browser) -> Iterator[list[Tab]]:
    opened: list[Tab] = []
    yield opened
    for tab in opened:
        tab.close()


def open_tab(tabs: list[Tab], browser: Browser, url: str) -> Tab:
    tab = Tab(browser)
    tabs.append(tab)
    tab.page.goto(url)
    return tab


def test_live_page_fills_as_spans_arrive_and_the_report_works_offline(
    tmp_path: Path, browser: Browser, tabs: list[Tab]
) -> None:
    from playwright.sync_api import expect

    run = LocalRun(tmp_path, "POST /checkout", "POST /login", status=3)
    try:
        tab = open_tab(tabs, browser, run.url)
        page = tab.page
        expect(page.locator("#status")).to_contain_text("Live: 0 root spans")
        expect(page.locator("#groups tbody")).to_contain_text("No root spans yet")
        run.go()  # from here on spans arrive; the page must show them without a reload

        group = page.locator('#groups tbody tr[data-view="name:POST /checkout"]')
        expect(group).to_be_visible(timeout=WAIT_MS)
        group.click()
        expect(page.locator("#flame-title")).to_have_text(
            re.compile(r"All \d+ spans named POST /checkout")
        )
        expect(tab.frame("price_cart")).to_be_visible(timeout=WAIT_MS)

        # One span: the oldest /login span listed (its profile has surely been uploaded).
        page.locator("#spans tbody tr").filter(has_text="POST /login").last.click()
        expect(page.locator("#flame-title")).to_contain_text("Span POST /login (")
        expect(tab.frame("hash_password")).to_be_visible(timeout=WAIT_MS)
        expect(tab.frame("price_cart")).to_have_count(0)

        page.click("#show-process")
        expect(page.locator("#flame-title")).to_have_text("Whole process")
        expect(tab.frame("price_cart")).to_be_visible(timeout=WAIT_MS)
        expect(tab.frame("hash_password")).to_be_visible()
        tab.frame("main").first.click()  # zoom into main: it becomes the top frame
        expect(page.locator("#reset-zoom")).to_be_visible()
        expect(tab.frame("all")).to_have_count(0)
        page.click("#reset-zoom")
        expect(tab.frame("all")).to_have_count(1)
    finally:
        status, err = run.stop()
    assert status == 3, err
    expect(page.locator("#status")).to_contain_text("Disconnected", timeout=WAIT_MS)
    assert tab.errors == [] and tab.dialogs == []

    report = open_tab(tabs, browser, (run.report / "report.html").as_uri())
    page = report.page
    expect(page.locator("#status")).to_contain_text("Exit status 3")
    page.locator("#spans tbody tr").filter(has_text="POST /login").first.click()
    expect(report.frame("hash_password")).to_be_visible()
    page.locator('#groups tbody tr[data-view="name:POST /checkout"]').click()
    expect(report.frame("price_cart")).to_be_visible()
    assert report.requests == [(run.report / "report.html").as_uri()]  # nothing else fetched
    assert report.errors == [] and report.dialogs == []


def test_hostile_span_names_show_as_text_and_never_run(
    tmp_path: Path, browser: Browser, tabs: list[Tab]
) -> None:
    from playwright.sync_api import expect

    names = ("<script>alert(1)</script>", "<img src=x onerror=alert(2)>")
    run = LocalRun(tmp_path, *names)
    run.go()
    try:
        live = open_tab(tabs, browser, run.url)
        expect(live.page.locator("#groups tbody tr")).to_have_count(2, timeout=WAIT_MS)
        check_names_are_text(live, names)
    finally:
        status, err = run.stop()
    assert status == 0, err
    assert names[0] not in (run.report / "report.html").read_text()
    report = open_tab(tabs, browser, (run.report / "report.html").as_uri())
    check_names_are_text(report, names)
    # The dialog listener works: a real alert is seen.
    report.page.evaluate("alert('probe')")
    assert report.dialogs == ["probe"]


def check_names_are_text(tab: Tab, names: tuple[str, str]) -> None:
    """Each name shows as its own text, opens its flame graph, and no markup came of it."""
    from playwright.sync_api import expect

    page = tab.page
    cells = page.locator("#groups tbody td.name").all_text_contents()
    assert set(cells[::2]) == set(names), cells  # every other cell: name, then top functions
    page.locator("#groups tbody tr").filter(has_text=names[0]).click()
    expect(page.locator("#flame-title")).to_contain_text(f"spans named {names[0]}")
    expect(page.locator("#flame .frame").first).to_be_visible()
    assert page.locator("img").count() == 0
    assert page.locator("script").count() == 2  # the data block and the page's own script
    assert tab.dialogs == [] and tab.errors == []
