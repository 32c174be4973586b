"""The bundle's HTML report in headless Chromium, opened from a file:// URL as an author would:
no console errors, no request leaving the file, every figure drawn, and untrusted text (model
names, prompts, labels, reasons) shown as text, never run."""

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
        yield browser.new_page(viewport={"width": 1200, "height": 1000})


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
