"""The web view in a real browser: headless Chromium from Debian's packages (``/usr/bin/chromium``,
which ``.ci/run`` installs) driven by Playwright. Playwright never downloads a browser here: it is
always given ``executable_path``. Without Chromium these tests are skipped, and pytest's summary
says why.

Each test opens a page, asserts on what a person sees, checks that the page raised no error, ran
no script and opened no dialog (hostile names included), and saves a screenshot under the test's
temporary directory. With ``DSREPO_DOCS_SCREENSHOT=PATH`` the history test also writes the
screenshot used in ``docs/serve.md`` (``docs/img/history.png``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import BIG_FOLDER, HOSTILE, Served

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=(
        f"browser tests skipped: no headless Chromium at {CHROMIUM} "
        "(apt-get install chromium; .ci/run installs it)"
    ),
)

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="browser tests skipped: playwright is not installed"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            yield b
        finally:
            b.close()


class Tab:
    """A page with a record of what went wrong in it."""

    def __init__(self, page: Any, base: str, shots: Path) -> None:
        self.page, self.base, self.shots = page, base, shots
        self.problems: list[str] = []
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on(
            "console",
            lambda msg: (
                self.problems.append(f"console {msg.type}: {msg.text}")
                if msg.type in ("error", "warning")
                else None
            ),
        )

        def on_dialog(dialog: Any) -> None:
            self.problems.append(f"dialog: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)

    def open(self, path: str) -> Any:
        response = self.page.goto(self.base + path)
        assert response is not None and response.status == 200, path
        return self.page

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 1000
        return path


@pytest.fixture
def tab(browser: Any, served: Served, tmp_path: Path) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    t = Tab(context.new_page(), served.url, tmp_path)
    try:
        yield t
    finally:
        context.close()
    assert not t.problems, t.problems


def test_home(tab: Tab) -> None:
    page = tab.open("/")
    expect = sync_api.expect
    expect(page.locator("h1")).to_have_text("Versions")
    branches = page.locator("section.branches a.ref")
    expect(branches).to_have_text(["b1", "b2", "b3", "feature/x", "main"])
    expect(page.locator("section.tags")).to_contain_text("first release <i>x</i>")
    expect(page.locator("section.latest tr")).to_have_count(10)
    tab.shot("home")
    page.locator("section.branches a.ref", has_text="feature/x").click()
    expect(page.locator("h1")).to_have_text("History of feature/x")
    assert page.url.endswith("/log/feature%2Fx")


def test_history_graph(tab: Tab, served: Served) -> None:
    page = tab.open("/log")
    expect = sync_api.expect
    nodes = page.locator("svg.graph circle")
    expect(nodes).to_have_count(len(served.sample.ids))
    rows = page.locator("li.row.commit")
    expect(rows).to_have_count(len(served.sample.ids))
    # each node sits on its row: the SVG and the list are laid out with the same heights
    for i in range(len(served.sample.ids)):
        node, row = nodes.nth(i).bounding_box(), rows.nth(i).bounding_box()
        assert abs((node["y"] + node["height"] / 2) - (row["y"] + row["height"] / 2)) <= 2
    tab.shot("history")
    docs = os.environ.get("DSREPO_DOCS_SCREENSHOT")
    if docs:
        page.set_viewport_size({"width": 1000, "height": 480})
        page.screenshot(path=docs, clip={"x": 0, "y": 0, "width": 1000, "height": 480})
    octopus = served.sample.ids["octopus"]
    page.locator(f'svg.graph a[href="/v/{octopus}"]').click()
    expect(page.locator("h1")).to_have_text("octopus: b1 b2 b3")


def test_merge_version(tab: Tab, served: Served) -> None:
    page = tab.open(f"/v/{served.sample.ids['merge']}")
    expect = sync_api.expect
    expect(page.locator("h1")).to_have_text("merge feature/x")
    expect(page.locator("section.changes h3")).to_have_count(2)
    parent2 = page.locator("section.parent-2")
    expect(parent2).to_contain_text("Against parent 2")
    expect(parent2.locator(".n-removed")).to_have_text("1")
    expect(parent2.locator("td.path")).to_contain_text(["README.md", "data/blob.bin"])
    tab.shot("merge")
    raw = tab.open(f"/v/{served.sample.ids['raw']}")
    meta = raw.locator(".metadata")
    expect(meta).to_contain_text("<b>mallory</b>")  # shown as text, not markup
    expect(meta.locator("table table th", has_text="seed")).to_have_count(1)
    expect(raw.locator("td.git")).to_contain_text("0123456789abcdef")
    tab.shot("version-metadata")


def test_folder(tab: Tab) -> None:
    page = tab.open("/tree/main/many")
    expect = sync_api.expect
    expect(page.locator("tr.file")).to_have_count(500)
    expect(page.locator(".facts-line")).to_contain_text(f"{BIG_FOLDER:,} entries")
    tab.shot("folder")
    page.locator("a[rel=next]").first.click()
    expect(page.locator("tr.file").first).to_contain_text("f00500.txt")
    page.locator("tr.file a", has_text="f00777.txt").click()
    expect(page.locator("section.preview")).to_contain_text("file 777")


def test_hostile_name_is_text(tab: Tab) -> None:
    page = tab.open("/tree/main/odd")
    link = page.locator("tr.file a")
    sync_api.expect(link).to_have_text(HOSTILE)
    assert page.locator("img").count() == 0
    link.click()
    sync_api.expect(page.locator("section.preview")).to_contain_text("hostile name")
    tab.shot("hostile")


def test_image(tab: Tab) -> None:
    page = tab.open("/blob/main/images/c01/cat.png")
    img = page.locator("img.image")
    sync_api.expect(img).to_be_visible()
    page.wait_for_load_state("load")
    assert img.evaluate("i => [i.complete, i.naturalWidth, i.naturalHeight]") == [True, 32, 24]
    tab.shot("image")


def test_csv(tab: Tab) -> None:
    page = tab.open("/blob/main/labels/train.csv")
    expect = sync_api.expect
    expect(page.locator("table.schema td code")).to_have_text(["int", "string", "float"])
    expect(page.locator("table.data tbody tr")).to_have_count(3)
    expect(page.locator("table.data tbody tr").nth(1)).to_contain_text("dog")
    tab.shot("csv")


def test_compare(tab: Tab) -> None:
    page = tab.open("/compare")
    page.fill("form.compare-form input[name=a]", "v1")
    page.fill("form.compare-form input[name=b]", "feature/x")
    page.click("form.compare-form button")
    expect = sync_api.expect
    expect(page.locator("h1")).to_have_text("Compare")
    assert page.url.endswith("/compare/v1...feature%2Fx")
    expect(page.locator("table.changelist td.path")).to_have_text(["labels/extra.csv"])
    expect(page.locator(".n-added")).to_have_text("1")
    tab.shot("compare")
