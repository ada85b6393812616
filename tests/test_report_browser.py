"""The dataset browser driven in headless Chromium from file://: search, filter, navigate, images load.

Nothing may reach the network and no dialog may open: hostile concepts stay text.
"""

import os
import shutil

import pytest

from seeing_sound.report import write_report
from test_report import SCRIPT, _build

CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report_browser")
    _build(tmp)
    return write_report(tmp / "dataset", tmp / "pool", tmp / "site", title="Demo <pairs>")


@pytest.fixture()
def page(site):
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright to drive Chromium")
    if CHROMIUM is None:
        pytest.skip("chromium not installed (apt-get install chromium); the browser check did not run")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        pg = browser.new_page(viewport={"width": 1200, "height": 1400})
        pg.requests, pg.dialogs, pg.errors = [], [], []
        pg.on("request", lambda r: pg.requests.append(r.url))
        pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
        pg.on("pageerror", lambda e: pg.errors.append(str(e)))
        pg.goto(site.resolve().as_uri(), wait_until="load")
        yield pg
        browser.close()


def _results(pg) -> list[str]:
    return pg.locator("#results li").all_inner_texts()


def test_search_filter_and_navigate(page):
    pg = page
    assert pg.title() == "Demo <pairs>"
    status = pg.locator("#search-status")
    assert "3 pairs indexed" in status.inner_text()
    pg.locator("#search").fill("purr")
    assert status.inner_text() == "1 of 3 pairs match"
    assert len(_results(pg)) == 1 and "cat" in _results(pg)[0] and "cat: purring" in _results(pg)[0]
    pg.locator("#search").fill(":")  # every concept here has one
    assert status.inner_text() == "3 of 3 pairs match" and len(_results(pg)) == 3
    pg.locator("#search").fill("no such sound")
    assert status.inner_text() == "0 of 3 pairs match" and not _results(pg)
    pg.locator("button.chip", has_text="dog: barking").click()  # a common concept, one click
    assert pg.locator("#search").input_value() == "dog: barking" and len(_results(pg)) == 1
    # navigate: the result links to the dog's card on its shard's page
    pg.locator("#results a", has_text="dog").click()
    pg.wait_for_load_state("load")
    assert pg.url.endswith("report/pages/shard-000000.html#shard-000000-000001")
    card = pg.locator("#shard-000000-000001")
    assert "dog: barking" in card.inner_text()
    # a spectrogram thumbnail (and the photo) actually decoded from their relative links
    for img in (card.locator("img.spec").first, card.locator(".image img")):
        img.scroll_into_view_if_needed()
        img.wait_for(state="visible")
        pg.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=img.element_handle(), timeout=10_000)
    assert card.locator("img.spec").first.evaluate("el => [el.naturalWidth, el.naturalHeight]") == [160, 64]
    pg.locator("nav a", has_text="shard-000001").first.click()
    pg.wait_for_load_state("load")
    assert pg.url.endswith("report/pages/shard-000001.html") and "evil" in pg.locator("main").inner_text()
    assert all(u.startswith("file://") for u in pg.requests), [u for u in pg.requests if not u.startswith("file:")]
    assert not pg.dialogs and not pg.errors


def test_hostile_concept_stays_text(page):
    pg = page
    scripts_before = pg.locator("script").count()
    pg.locator("#search").fill("<script>")
    assert pg.locator("#search-status").inner_text() == "1 of 3 pairs match"
    tag = pg.locator("#results .tag").first
    assert tag.inner_text() == SCRIPT and tag.evaluate("el => el.children.length") == 0
    assert pg.locator("script").count() == scripts_before == 2
    chip = pg.locator("button.chip", has_text="<script>")
    chip.click()  # the chip's data-q is the same text, as an attribute
    assert pg.locator("#search").input_value() == SCRIPT and len(_results(pg)) == 1
    assert not pg.dialogs and not pg.errors
