"""The bundle's HTML report in headless Chromium, opened from a file:// URL as an author would:
no console errors, no request leaving the file, every figure drawn, untrusted text (model
names, prompts, labels, reasons) shown as text, never run, and at 1,280 px no word broken inside
a table cell and no table wider than the page unless it scrolls in its own box."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import (
    CASES,
    OPERATOR,
    RATERS,
    answers_rows,
    full_values,
    make_draft,
    sign_in,
    write_jsonl,
)
from playwright.sync_api import Page
from serving import chromium

from study.services import content, design, exports, lifecycle
from study.services import rating as rating_service
from study.store import Store

DEMO = "demo-patient-questions"
HOSTILE = {
    "label": '<img src=x onerror="window.__pwned=1">',
    "model_name": "</script><script>window.__pwned=2</script>",
    "model_version": "v1<svg onload=window.__pwned=3>",
    "prompt": "<script>window.__pwned=4</script> & answer",
    "reason": '<b onmouseover="window.__pwned=5">odd</b>',
}


@pytest.fixture
def page() -> Iterator[Page]:
    with chromium() as browser:
        yield browser.new_page(viewport={"width": 1280, "height": 1000})


def open_report(page: Page, path: Path) -> dict[str, list[str]]:
    """Open ``path``; return the console messages, page errors and requests beyond the file."""
    seen: dict[str, list[str]] = {"console": [], "errors": [], "requests": [], "dialogs": []}
    page.on("console", lambda m: seen["console"].append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda exc: seen["errors"].append(str(exc)))
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    url = path.resolve().as_uri()
    page.on("request", lambda r: seen["requests"].append(r.url) if r.url != url else None)
    page.goto(url)
    page.wait_for_load_state("load")
    return seen


def drawn_figures(page: Page) -> dict[str, int]:
    """Each figure's title -> the number of plotly SVG layers drawn in it."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('.figure')].every(d => d.querySelector('.main-svg'))",
        timeout=30_000,
    )
    return page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('.figure')]"
        ".map(d => [d.dataset.title, d.querySelectorAll('.main-svg').length]))"
    )


BROKEN_WORDS = r"""
() => {
  // A word: letters, digits and underscores, with . , : or an apostrophe inside (0.0001,
  // don't, 12:30). The normal line-breaking rules (UAX #14) allow no break inside one; a break
  // there is a word cut in two (overflow-wrap:anywhere, word-break:break-all, hyphens:auto).
  // Breaks after a hyphen or a slash, or at a space, are ordinary line breaks and are allowed.
  const word = /[\p{L}\p{N}_]+(?:[.,:'\u2019][\p{L}\p{N}_]+)*/gu;
  const broken = [];
  for (const cell of document.querySelectorAll("td, th")) {
    const walk = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walk.nextNode(); node; node = walk.nextNode()) {
      for (const m of node.data.matchAll(word)) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        // a word on one line gives one box, or several side by side on that line (one per
        // inline box); a word cut across lines gives boxes whose middles are a line apart
        const boxes = [...range.getClientRects()].filter((r) => r.width > 0 && r.height > 0);
        if (boxes.length < 2) continue;
        const middles = boxes.map((r) => (r.top + r.bottom) / 2);
        const height = Math.min(...boxes.map((r) => r.height));
        if (Math.max(...middles) - Math.min(...middles) > height / 2) {
          broken.push(`${m[0]} (in "${cell.textContent.trim().slice(0, 60)}")`);
        }
      }
    }
  }
  return broken;
}
"""

TOO_WIDE = r"""
() => {
  // Each table lies within the body's content box, or scrolls sideways inside a box of its own
  // (.table-wrap, overflow-x auto) that does; and the page itself never scrolls sideways.
  const style = getComputedStyle(document.body);
  const right = document.body.getBoundingClientRect().right - parseFloat(style.paddingRight);
  const wide = [];
  for (const table of document.querySelectorAll("table")) {
    if (!table.getClientRects().length) continue; // not shown (a closed <details>)
    const box = table.parentElement.closest(".table-wrap");
    const scrolls = box && ["auto", "scroll"].includes(getComputedStyle(box).overflowX);
    const edge = (scrolls ? box : table).getBoundingClientRect().right;
    if (edge > right + 0.5) {
      const head = [...table.querySelectorAll("th")].map((th) => th.textContent).join("|");
      wide.push(`${head || table.textContent.slice(0, 60)}: right edge ${edge} > ${right}`);
    }
  }
  const page = document.documentElement.scrollWidth;
  if (page > window.innerWidth) wide.push(`the page is ${page} px wide`);
  return wide;
}
"""

SENTINELS = """
() => {
  // a narrow cell that cuts its words anywhere, and a wide table with no box of its own
  const cut = document.createElement("table");
  cut.className = "sentinel";
  cut.innerHTML = '<tr><td style="width:3em;max-width:3em;word-break:break-all">' +
    "better_response krippendorff_alpha</td></tr>";
  const wide = document.createElement("table");
  wide.className = "sentinel";
  wide.style.width = "2000px";
  wide.innerHTML = "<tr><th>sentinel</th></tr>";
  document.body.append(cut, wide);
}
"""


def layout_problems(page: Page) -> dict[str, list[str]]:
    """Words cut inside table cells and tables wider than the page, every <details> opened so
    that the tables folded inside are measured too. The check first proves that it can fail:
    a cell with ``word-break: break-all`` and a 2,000 px table, added to the page for a moment,
    must be found (a check that finds nothing on a page built to fail checks nothing)."""
    page.evaluate("() => document.querySelectorAll('details').forEach((d) => (d.open = true))")
    page.evaluate(SENTINELS)
    cut, wide = page.evaluate(BROKEN_WORDS), page.evaluate(TOO_WIDE)
    page.evaluate("() => document.querySelectorAll('.sentinel').forEach((t) => t.remove())")
    assert any(w.startswith("krippendorff_alpha") for w in cut), cut
    assert any(w.startswith("sentinel:") for w in wide), wide
    assert any("the page is" in w for w in wide), wide
    return {"broken words": page.evaluate(BROKEN_WORDS), "too wide": page.evaluate(TOO_WIDE)}


def test_the_demo_report_renders_offline_with_its_figures(
    page: Page, demo_db: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "bundle"
    folder.mkdir()
    with Store(demo_db) as store:
        exports.write_bundle(store, OPERATOR, DEMO, folder, formats=["csv"], boot=200)
    seen = open_report(page, folder / "report.html")
    figures = drawn_figures(page)
    assert seen["errors"] == []
    assert [m for m in seen["console"] if m.startswith(("error", "warning"))] == []
    assert seen["requests"] == [], "the report must not fetch anything"
    assert all(layers > 0 for layers in figures.values())
    titles = " | ".join(figures)
    for expected in (
        "Krippendorff's alpha per item",
        "mean difference: test arm minus reference arm",
        "risk difference: test arm minus reference arm",
        "Which response is better",
        "quality: distribution by arm",
    ):
        assert expected in titles
    # the primary result's forest plot shows both methods of the plan (mixed, then t)
    forest = page.locator('.figure[data-title^="mean difference"]')
    assert forest.locator(".ytick").count() >= 3
    text = page.locator("body").inner_text()
    for heading in ("Flow of cases and raters", "Deviations from the protocol", "TRIPOD-LLM items"):
        assert heading in text
    assert "demo-llm-2026-06-01" in text  # the model version, in the TRIPOD-LLM table
    assert "to be completed by the authors" in text
    # the distributions name the options by their labels, in the scale's order
    ticks = page.evaluate(
        """() => [...document.querySelectorAll(
            '.figure[data-title="quality: distribution by arm"] .xtick text')]
            .map((t) => t.textContent)"""
    )
    assert ticks == ["Very poor", "Poor", "Acceptable", "Good", "Very good"]
    # at 1,280 px: no word cut inside a table cell, no table beyond the page
    assert page.viewport_size == {"width": 1280, "height": 1000}
    assert layout_problems(page) == {"broken words": [], "too wide": []}
    assert [m for m in seen["console"] if m.startswith(("error", "warning"))] == []
    assert seen["errors"] == []


def hostile_study(store: Store, folder: Path) -> str:
    """The ``rating`` study of conftest with hostile provenance text, rated, one case flagged."""
    arms_file = folder / "arms.jsonl"
    answers = answers_rows()
    for row in answers:
        if row["arm_id"] == "llm":
            row["prompt"] = HOSTILE["prompt"]
    study = make_draft(store, folder)
    # replace the drafted arms' provenance before the lock: a fresh study with hostile text
    coordinator = sign_in(store, "coordinator")
    content.remove_answers(store, coordinator, study, [a["answer_id"] for a in answers])
    content.remove_arms(store, coordinator, study, ["clin", "llm"])
    arms = [
        {"arm_id": "clin", "kind": "clinician", "label": HOSTILE["label"], "author_role": "GP"},
        {
            "arm_id": "llm",
            "kind": "llm",
            "label": "LLM",
            "model_name": HOSTILE["model_name"],
            "model_version": HOSTILE["model_version"],
        },
    ]
    content.import_arms(store, coordinator, study, write_jsonl(arms_file, arms))
    content.import_answers(store, coordinator, study, write_jsonl(folder / "a2.jsonl", answers))
    design.lock_protocol(store, coordinator, study, {"primary_item": "quality", "margin": 0.5})
    design.make_assignments(
        store, coordinator, study, raters=list(RATERS), raters_per_case=2, seed=3
    )
    lifecycle.start_rating(store, coordinator, study)
    for n, rater in enumerate(RATERS):
        caller = sign_in(store, rater)
        view = rating_service.next_assignment(store, caller, study)
        if n == 0:
            rating_service.flag_case(store, caller, study, view["assignment"], HOSTILE["reason"])
        rating_service.submit_rating(
            store, caller, study, view["assignment"], full_values(), seconds=5
        )
    assert len(CASES) == 4
    return study


def test_untrusted_text_in_the_report_is_shown_never_run(
    page: Page, store: Store, tmp_path: Path
) -> None:
    study = hostile_study(store, tmp_path)
    folder = tmp_path / "bundle"
    folder.mkdir()
    exports.write_bundle(store, OPERATOR, study, folder, formats=["csv"], boot=50)
    seen = open_report(page, folder / "report.html")
    drawn_figures(page)
    page.mouse.move(300, 300)
    assert page.evaluate("() => window.__pwned") is None
    assert seen["errors"] == [] and seen["dialogs"] == [] and seen["requests"] == []
    assert [m for m in seen["console"] if m.startswith("error")] == []
    text = page.locator("body").inner_text()
    for value in HOSTILE.values():
        assert value in text, value
    # a long unbroken token (a hostile model name) widens its column; its table scrolls in its box
    assert layout_problems(page) == {"broken words": [], "too wide": []}
