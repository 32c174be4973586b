"""Retake the rater guide's screenshots (docs/img/*.png) from the demo app in headless Chromium.

Run ``.venv/bin/python docs/screenshots.py`` after a change to the rating screen. It serves the
app on a throwaway demo database (as the browser tests do, ``tests/serving.py``), opens it as
the demo rater ``demo-rater-01`` through the demo's picker (``?person=N``) and saves PNGs at a
laptop's 1,280 x 800 px.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent / "tests"))
sys.path.insert(0, str(DOCS.parent))

from PIL import Image  # noqa: E402
from playwright.sync_api import Page, expect  # noqa: E402
from serving import chromium, serve  # noqa: E402

from study.demo import COORDINATOR, STATISTICIAN, read_raters  # noqa: E402

IMG = DOCS / "img"
LAPTOP = {"width": 1280, "height": 800}
IDLE = """() => !document.querySelector(
    '[data-testid="stStatusWidgetRunningIcon"], [data-testid="stElementContainer"][data-stale="true"]'
)"""


def demo_place(user_id: str) -> str:
    """The picker's ``?person=`` for a demo person: the operator is 0, then the people by id."""
    ids = sorted(
        [COORDINATOR["user_id"], STATISTICIAN["user_id"]]
        + [str(r["user_id"]) for r in read_raters()]
    )
    return str(ids.index(user_id) + 1)


def open_rate(page: Page, url: str, user_id: str) -> None:
    page.goto(f"{url}/?person={demo_place(user_id)}")
    expect(page.get_by_role("heading", name="Rate")).to_be_visible(timeout=90_000)
    expect(page.locator('.sheet .field[data-answered="no"]').first).to_be_visible(timeout=30_000)
    page.wait_for_function(IDLE, timeout=30_000)
    page.evaluate("document.activeElement && document.activeElement.blur()")


def shoot(page: Page, name: str) -> None:
    """Save the viewport as ``docs/img/NAME``, reduced to 64 colours: a flat user interface
    loses nothing visible, and the file shrinks to about a third."""
    page.wait_for_timeout(600)  # the sheet's scroll and Streamlit's fade-in
    path = IMG / name
    page.screenshot(path=str(path))
    Image.open(path).quantize(colors=64, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def main() -> None:
    IMG.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        os.environ["CLINVAL_AUDIT_KEY_FILE"] = str(tmp / "audit.key")
        with serve(tmp / "demo.duckdb", tmp, demo_on_start=True) as served, chromium() as browser:
            page = browser.new_page(viewport=LAPTOP)
            open_rate(page, served.url, "demo-rater-01")
            shoot(page, "rate-case.png")
            for _ in range(3):
                page.keyboard.press("2")
            shoot(page, "rate-keys.png")
            page.keyboard.press("c")
            page.keyboard.type("Response A does not say when to seek urgent care.")
            shoot(page, "rate-comment.png")
            page.keyboard.press("Escape")
            page = browser.new_page(viewport=LAPTOP)
            open_rate(page, served.url, "demo-rater-05")
            page.get_by_test_id("stSelectbox").filter(has_text="Study").click()
            page.get_by_role("option", name=re.compile("rubric", re.I)).click()
            expect(page.get_by_role("heading", name="Conversation")).to_be_visible(timeout=30_000)
            expect(page.locator('.sheet .field[data-answered="no"]').first).to_be_visible()
            page.wait_for_function(IDLE, timeout=30_000)
            page.evaluate("document.activeElement && document.activeElement.blur()")
            shoot(page, "rate-conversation.png")
            page.keyboard.press("Y")  # the first criterion met: the sheet scrolls to the next
            shoot(page, "rate-rubric.png")


if __name__ == "__main__":
    main()
