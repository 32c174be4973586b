"""Rating in a real browser: keyboard only, resume after a reload, and blinding in every byte.

The server is the real ``streamlit run app.py``; Chromium is driven by Playwright. Picking the
person in the demo picker stands in for signing in (a mouse action); everything after it is
done with the keyboard.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from conftest import ISSUER, OPERATOR, full_values, picker_place, sign_in, write_jsonl
from playwright.sync_api import Page, expect
from serving import chromium, serve

from study import audit_verify
from study.demo import COORDINATOR, DEMO_STUDY_ID, STATISTICIAN, read_raters
from study.instruments import get_builtin
from study.services import content, design, lifecycle, people, rating, studies
from study.services import instrument_library as instruments
from study.services.people import DEMO_ISSUER
from study.store import Store

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DEMO_RATER = "demo-rater-01"
PROGRESS = re.compile(r"Case (\d+) of (\d+)")
FIELDS = 2 * 5 + 1
"""Keyed fields of a sheet of the ayers_harm instrument with two responses: five items for each
response, then the pairwise choice."""


@pytest.fixture
def browser_page() -> Iterator[Page]:
    with chromium() as browser:
        yield browser.new_page(viewport={"width": 1400, "height": 1800})


def open_as(page: Page, url: str, place: str) -> None:
    """Open the app as the demo picker's person at ``place`` (``?person=N``, as the picker
    writes it and a bookmark keeps it); the keys then go to the page."""
    page.goto(f"{url}/?person={place}")
    expect(page.get_by_role("heading", name="Rate")).to_be_visible(timeout=90_000)


def demo_place(user_id: str) -> str:
    """``picker_place`` for the demo built on start, read from the demo's own files (the
    server holds the database)."""
    ids = sorted([COORDINATOR["user_id"], STATISTICIAN["user_id"]] + [
        str(r["user_id"]) for r in read_raters()
    ])  # fmt: skip
    return str(ids.index(user_id) + 1)


def progress(page: Page):
    """The rating screen's progress bar (a page being replaced may still show another)."""
    return page.get_by_test_id("stProgress").filter(has_text=PROGRESS)


def case_number(page: Page) -> tuple[int, int]:
    expect(progress(page)).to_have_count(1, timeout=30_000)
    progress_bar = progress(page)
    found = PROGRESS.search(progress_bar.inner_text())
    assert found, progress_bar.inner_text()
    return int(found.group(1)), int(found.group(2))


def unanswered(page: Page):
    """The sheet's fields without a value (Playwright's locators see into the sheet's shadow
    root)."""
    return page.locator('.sheet .field[data-answered="no"]')


IDLE = """() => !document.querySelector(
    '[data-testid="stStatusWidgetRunningIcon"], [data-testid="stElementContainer"][data-stale="true"]'
)"""
"""True when no script run is in flight and nothing on the page is stale from an earlier run."""


def settle(page: Page) -> None:
    """Wait until the app has finished its rerun and the sheet has taken its case."""
    page.wait_for_function(IDLE, timeout=30_000)


def rate_by_keyboard(page: Page, fields: int, choice: str = "A") -> None:
    """Answer every field with its first option (digit 1), the pairwise choice with a letter,
    and submit with Enter: the keys a rater presses. The sheet takes keys in the browser, so
    only Enter waits for the server."""
    expect(unanswered(page)).to_have_count(fields, timeout=30_000)
    settle(page)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    for _ in range(fields - 1):
        page.keyboard.press("1")
    page.keyboard.press(choice)
    expect(unanswered(page)).to_have_count(0)
    before = progress(page).inner_text()
    page.keyboard.press("Enter")
    expect(progress(page)).not_to_have_text(before, timeout=30_000)


def test_a_demo_rater_rates_three_cases_by_keyboard_reloads_and_resumes_at_the_fourth(
    browser_page: Page, tmp_path: Path
) -> None:
    page = browser_page
    db = tmp_path / "demo.duckdb"
    with serve(db, tmp_path, demo_on_start=True) as served:
        open_as(page, served.url, demo_place(DEMO_RATER))
        start, total = case_number(page)
        # Enter with nothing picked: each field says what is missing, nothing is sent
        expect(unanswered(page)).to_have_count(FIELDS, timeout=30_000)
        settle(page)
        page.keyboard.press("Enter")
        expect(page.locator(".sheet .problem")).to_have_count(FIELDS)
        expect(page.locator(".sheet .problem").first).to_have_text("Required: pick a value.")
        assert case_number(page) == (start, total)
        # Backspace steps back to the field before: a digit then answers that field
        page.keyboard.press("1")
        page.keyboard.press("Backspace")
        expect(page.locator(".sheet .field.active")).to_have_attribute("data-field", "0")
        page.keyboard.press("2")
        expect(page.locator('.sheet .field[data-field="0"] .option.chosen')).to_contain_text("Poor")
        page.reload()
        expect(page.get_by_role("heading", name="Rate")).to_be_visible(timeout=30_000)
        # the reload keeps the pick: the case does not start afresh
        expect(page.locator('.sheet .field[data-field="0"] .option.chosen')).to_contain_text(
            "Poor", timeout=30_000
        )
        for done in range(1, 4):
            rate_by_keyboard(page, FIELDS - 1 if done == 1 else FIELDS)
            expect(progress(page)).to_contain_text(
                f"Case {start + done} of {total}", timeout=30_000
            )
        # the demo keeps who you are in the URL: a reload resumes as the same rater, no mouse
        page.reload()
        expect(page.get_by_role("heading", name="Rate")).to_be_visible(timeout=30_000)
        assert case_number(page) == (start + 3, total)
        expect(page.get_by_test_id("stException")).to_have_count(0)
    # what was stored is what the keys picked: digit 1 is each scale's first option (1 on quality
    # and empathy; 0, no harm / low / no, on the harm items), A is Response A; the first case
    # keeps the 2 ("Poor") typed on its first field before the reload
    with Store(db) as store:
        rater = sign_in(store, DEMO_RATER)
        rated = (
            rating.rater_queue(store, rater, DEMO_STUDY_ID)
            .filter(pl.col("shown_order").is_between(start, start + 2))
            .sort("shown_order")
            .get_column("assignment")
            .to_list()
        )
        stored = [rating.assignment_view(store, rater, DEMO_STUDY_ID, a)["values"] for a in rated]
    ones, zeros = {"Response A": 1, "Response B": 1}, {"Response A": 0, "Response B": 0}
    keyed = {
        "quality": ones,
        "empathy": ones,
        "harm_extent": zeros,
        "harm_likelihood": zeros,
        "could_cause_harm": zeros,
        "better_response": "A",
    }
    assert stored == [keyed | {"quality": {"Response A": 2, "Response B": 1}}, keyed, keyed]


# --- blinding in every byte ------------------------------------------------------------------

SECRETS = {
    "arm ids": ["arm-qx7-doctors", "arm-qx7-model"],
    "arm labels": ["Label-qx7 Doctors", "Label-qx7 Model"],
    "model name": ["model-qx7"],
    "model version": ["version-qx7-2026"],
    "answer ids": [f"ans-qx7-{c}-{w}" for c in (1, 2, 3) for w in ("doc", "llm")],
    "author ids": ["author-qx7"],
}
"""Distinctive values, so that any occurrence in what the browser receives is a leak."""

TRACKER = (
    "> ```\n> note\n>\n> ![chart](https://tracker.invalid/pixel.png)\n> ```\n\n"
    '<img src="https://tracker.invalid/raw.png"> [more](https://tracker.invalid/link)'
)
"""An answer that tries to make the rater's browser call out (an image in a quoted code block,
raw HTML, a link): none of it may load."""


def blinded_study(store: Store, folder: Path) -> str:
    """A study in rating whose arms, models, answers and authors carry ``SECRETS``; its raters
    are demo-issuer people, so the demo picker can sign them in."""
    study = studies.create_study(store, OPERATOR, "Blinding probe", study_id="blinding-probe")
    for n in (1, 2):
        people.ensure_user(
            store,
            OPERATOR,
            issuer=DEMO_ISSUER,
            subject=f"probe-rater-{n}",
            user_id=f"probe-rater-{n}",
            display_name=f"Probe Rater {n}",
        )
        people.grant_role(store, OPERATOR, study, f"probe-rater-{n}", "rater")
    people.ensure_user(store, OPERATOR, issuer=ISSUER, subject="author-qx7", user_id="author-qx7")
    arms = [
        {"arm_id": "arm-qx7-doctors", "kind": "clinician", "label": "Label-qx7 Doctors",
         "author_role": "GP"},
        {"arm_id": "arm-qx7-model", "kind": "llm", "label": "Label-qx7 Model",
         "model_name": "model-qx7", "model_version": "version-qx7-2026"},
    ]  # fmt: skip
    cases = [{"case_id": f"probe-{c}", "question": f"Probe question {c}?"} for c in (1, 2, 3)]
    answers = []
    for c in (1, 2, 3):
        answers.append(
            {"answer_id": f"ans-qx7-{c}-doc", "case_id": f"probe-{c}", "arm_id": "arm-qx7-doctors",
             "text": f"Doctor's advice for case {c}.\n\n{TRACKER}", "author_id": "author-qx7"}
        )  # fmt: skip
        answers.append(
            {"answer_id": f"ans-qx7-{c}-llm", "case_id": f"probe-{c}", "arm_id": "arm-qx7-model",
             "text": f"Assistant's advice for case {c}.", "generated_at": "2026-01-02",
             "prompt": "Answer the patient."}
        )  # fmt: skip
    content.import_arms(store, OPERATOR, study, write_jsonl(folder / "arms.jsonl", arms))
    content.import_cases(store, OPERATOR, study, write_jsonl(folder / "cases.jsonl", cases))
    content.import_answers(store, OPERATOR, study, write_jsonl(folder / "answers.jsonl", answers))
    harm = get_builtin("ayers_harm")
    key, version = instruments.add_instrument(store, OPERATOR, harm)
    instruments.attach_instrument(store, OPERATOR, study, key, version)
    design.lock_protocol(store, OPERATOR, study, {"primary_item": "quality", "margin": 0.5})
    design.make_assignments(
        store, OPERATOR, study, raters=["probe-rater-1", "probe-rater-2"], raters_per_case=2, seed=7
    )
    lifecycle.start_rating(store, OPERATOR, study)
    return study


def test_nothing_the_browser_receives_names_the_source(browser_page: Page, tmp_path: Path) -> None:
    db = tmp_path / "probe.duckdb"
    with Store(db) as store:
        blinded_study(store, tmp_path)
    place = picker_place(db, "probe-rater-1")
    page = browser_page
    frames: list[bytes] = []

    def record(socket) -> None:
        for event in ("framereceived", "framesent"):
            socket.on(event, lambda payload: frames.append(
                payload if isinstance(payload, bytes) else payload.encode()
            ))  # fmt: skip

    page.on("websocket", record)
    outside: list[str] = []
    page.on(
        "request",
        lambda request: (
            None
            if request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:"))
            else outside.append(request.url)
        ),
    )
    with serve(db, tmp_path, demo_on_start=False) as served:
        open_as(page, served.url, place)
        start, total = case_number(page)
        rate_by_keyboard(page, FIELDS)
        expect(progress(page)).to_contain_text(f"Case {start + 1} of {total}")
        # open the list of rated cases and the flag form too: more of the page to inspect (the
        # flag form is the sheet's own, opened by F)
        page.get_by_text("Revise a case you have rated").click()
        settle(page)
        page.evaluate("document.activeElement && document.activeElement.blur()")
        page.keyboard.press("f")
        expect(page.locator(".sheet input.reason")).to_be_visible()
        page.wait_for_timeout(500)
        # the sheet lives in a shadow root, which page.content() leaves out
        html = page.content() + page.locator(".sheet").inner_html()
        url = page.url
    assert len(frames) > 10, "the websocket was not recorded"
    assert outside == [], f"the page called out: {outside}"
    received = b"\n".join(frames)
    leaks = {
        what: [s for s in values if s.encode() in received or s in html or s in url]
        for what, values in SECRETS.items()
    }
    assert leaks == {what: [] for what in SECRETS}
    # the check can fail: the answers' text did arrive, and with it their neutral labels
    assert b"Assistant's advice for case" in received and "Response A" in html
    with Store(db) as store:
        stored = store.read("SELECT count(*) FROM ratings").item()
    assert stored > 0


def test_the_probe_study_can_be_rated_through_the_services(tmp_path: Path) -> None:
    # the probe's own ground, checked without a browser: its raters can rate it
    with Store(tmp_path / "probe.duckdb") as store:
        study = blinded_study(store, tmp_path)
        rater = sign_in(store, "probe-rater-1")
        view = rating.next_assignment(store, rater, study)
        assert [p["label"] for p in view["presentations"]] == ["Response A", "Response B"]
        values = full_values() | {
            "empathy": {"Response A": 3, "Response B": 3},
            "harm_extent": {"Response A": 0, "Response B": 0},
            "harm_likelihood": {"Response A": 0, "Response B": 0},
            "could_cause_harm": {"Response A": 0, "Response B": 0},
            "better_response": "A",
        }
        values.pop("better")
        rating.submit_rating(store, rater, study, view["assignment"], values)


def test_a_rating_acknowledged_on_screen_survives_a_sigkill_of_the_server(
    browser_page: Page, tmp_path: Path
) -> None:
    import signal

    db = tmp_path / "kill.duckdb"
    page = browser_page
    with serve(db, tmp_path, demo_on_start=True) as served:
        open_as(page, served.url, demo_place(DEMO_RATER))
        start, _ = case_number(page)
        rate_by_keyboard(page, FIELDS)
        # the acknowledgement: the toast and the next case
        expect(page.get_by_text("Saved.")).to_be_visible(timeout=30_000)
        expect(progress(page)).to_contain_text(f"Case {start + 1} of")
        served.process.send_signal(signal.SIGKILL)
        served.process.wait(timeout=10)
    with Store(db) as store:
        done = store.read(
            "SELECT count(*) FROM assignments WHERE rater = $r AND done", {"r": DEMO_RATER}
        ).item()
        report = audit_verify.verify(store)
    assert done == start  # the cases done before, and the one acknowledged
    assert report.ok, report.problem


def test_a_demo_rater_grades_a_conversation_s_criteria_by_keyboard(
    browser_page: Page, tmp_path: Path
) -> None:
    # the synthetic rubric study of the demo, a two-turn conversation per case, each
    # criterion of the case marked met (Y) or not met (N) for each response
    from study.demo import RUBRIC_STUDY_ID

    page = browser_page
    db = tmp_path / "demo.duckdb"
    with serve(db, tmp_path, demo_on_start=True) as served:
        open_as(page, served.url, demo_place("demo-rater-05"))
        # choosing the study is the one mouse action, as picking the person is
        page.get_by_test_id("stSelectbox").filter(has_text="Study").click()
        page.get_by_role("option", name=re.compile("rubric", re.I)).click()
        expect(page.get_by_role("heading", name="Conversation")).to_be_visible(timeout=30_000)
        expect(page.get_by_test_id("stChatMessage")).not_to_have_count(0)
        start, total = case_number(page)
        fields = unanswered(page).count()
        assert fields >= 4 and fields % 2 == 0  # the same criteria for Response A and B
        settle(page)
        page.evaluate("document.activeElement && document.activeElement.blur()")
        marks = ["Y" if n % 3 else "N" for n in range(fields)]
        for key in marks:
            page.keyboard.press(key)
        expect(unanswered(page)).to_have_count(0)
        page.keyboard.press("Enter")
        expect(progress(page)).to_contain_text(f"Case {start + 1} of {total}", timeout=30_000)
    with Store(db) as store:
        stored = store.read(
            "SELECT r.value_text, a.presented_at IS NOT NULL AS stamped FROM ratings r"
            " JOIN assignments a ON a.id = r.assignment"
            " WHERE a.study = $s AND a.rater = 'demo-rater-05' ORDER BY r.slot",
            {"s": RUBRIC_STUDY_ID},
        ).rows()
        assert audit_verify.verify(store).ok
    labels = [json.loads(text) for text, _ in stored]
    assert [met for label in labels for met in label.values()] == [m == "Y" for m in marks]
    assert all(stamped for _, stamped in stored)  # time on task ran from the first showing


# --- the rater's keys, messages where the eye is, drafts, the side-by-side sheet ---------------

LAPTOP = {"width": 1280, "height": 800}
REVISING = re.compile(r"Revising rated case (\d+) of (\d+)")


@pytest.fixture
def laptop_page() -> Iterator[Page]:
    with chromium() as browser:
        yield browser.new_page(viewport=LAPTOP)


def in_view(page: Page, locator) -> bool:
    """Whether the element is wholly inside the viewport."""
    box = locator.bounding_box()
    size = page.viewport_size
    assert box is not None and size is not None
    return box["y"] >= 0 and box["y"] + box["height"] <= size["height"]


def shows_part(page: Page, locator, at_least: float = 80) -> bool:
    """Whether at least ``at_least`` px of the element's height is inside the viewport."""
    box = locator.bounding_box()
    size = page.viewport_size
    assert box is not None and size is not None
    top, bottom = max(box["y"], 0), min(box["y"] + box["height"], size["height"])
    return bottom - top >= min(at_least, box["height"])


def at_a_fresh_case(page: Page, url: str) -> tuple[int, int]:
    """Open the demo's rater, wait for their next case's sheet to take keys (nothing picked,
    nothing focused) and return its place, ``case_number``."""
    open_as(page, url, demo_place(DEMO_RATER))
    place = case_number(page)
    expect(unanswered(page)).to_have_count(FIELDS, timeout=30_000)
    settle(page)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    return place


def test_the_case_just_rated_is_revised_by_keyboard_and_counts_agree_after_a_skip(
    laptop_page: Page, tmp_path: Path
) -> None:
    page = laptop_page
    db = tmp_path / "demo.duckdb"
    with serve(db, tmp_path, demo_on_start=True) as served:
        open_as(page, served.url, demo_place(DEMO_RATER))
        start, total = case_number(page)
        rate_by_keyboard(page, FIELDS)
        expect(progress(page)).to_contain_text(f"Case {start + 1} of {total}")
        settle(page)
        # R: the case just rated, numbered as the picker numbers it (the last of those rated)
        page.keyboard.press("r")
        revising = page.get_by_test_id("stProgress").filter(has_text=REVISING)
        expect(revising).to_have_text(re.compile(f"Revising rated case {start} of {start}"))
        expect(unanswered(page)).to_have_count(0)  # its stored values
        settle(page)
        page.keyboard.press("2")  # the first field: quality from "1" to "2"
        page.keyboard.press("Enter")
        expect(progress(page)).to_contain_text(f"Case {start + 1} of {total}", timeout=30_000)
        # a skip by keyboard: the skipped case leaves the count; the picker, the bar and the
        # revision header count the same cases
        settle(page)
        page.keyboard.press("s")
        expect(page.locator(".sheet input.reason")).to_be_focused()
        page.keyboard.type("Outside my specialty")
        page.keyboard.press("Enter")
        expect(progress(page)).to_contain_text(f"Case {start + 1} of {total - 1}", timeout=30_000)
        page.get_by_text("Revise a case you have rated").click()
        expect(page.get_by_text(f"Rated case (1 to {start},")).to_be_visible()
        expect(page.get_by_test_id("stException")).to_have_count(0)
    with Store(db) as store:
        revisions = store.read(
            "SELECT r.revision, r.value_num FROM ratings r JOIN assignments a"
            " ON a.id = r.assignment WHERE a.rater = $r AND a.shown_order = $o"
            " AND r.item_key = 'quality' ORDER BY r.slot, r.revision",
            {"r": DEMO_RATER, "o": start},
        ).rows()
        skipped = store.read("SELECT kind, reason FROM case_flags").rows()
        assert audit_verify.verify(store).ok
    assert (2, 2.0) in revisions and (1, 1.0) in revisions
    assert skipped == [("skip", "Outside my specialty")]


def test_flag_by_keyboard_a_refused_flag_is_said_in_view_and_the_case_stays(
    tmp_path: Path,
) -> None:
    db = tmp_path / "demo.duckdb"
    with chromium() as browser, serve(db, tmp_path, demo_on_start=True) as served:
        # a laptop's 900 px screen
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        open_as(page, served.url, demo_place(DEMO_RATER))
        start, total = case_number(page)
        expect(unanswered(page)).to_have_count(FIELDS, timeout=30_000)
        settle(page)
        page.keyboard.press("1")  # a pick made before the flag stays
        page.keyboard.press("f")
        reason = page.locator(".sheet input.reason")
        expect(reason).to_be_focused()
        page.keyboard.press("Enter")  # no reason
        problem = page.locator(".sheet .mark .problem")
        expect(problem).to_have_text("A flag needs a reason: type it here, then press Enter.")
        assert in_view(page, problem) and in_view(page, reason)
        page.keyboard.type("The question is cut off")
        page.keyboard.press("Enter")
        expect(page.get_by_text("Flagged.")).to_be_visible(timeout=30_000)
        expect(page.locator(".sheet .mark")).to_have_count(0)
        assert case_number(page) == (start, total)  # a flagged case stays to be rated
        expect(unanswered(page)).to_have_count(FIELDS - 1)
        expect(page.get_by_test_id("stException")).to_have_count(0)
    with Store(db) as store:
        flags = store.read("SELECT kind, reason FROM case_flags").rows()
    assert flags == [("flag", "The question is cut off")]


def test_a_reload_mid_case_keeps_the_picks_and_the_rating_is_stored_once(
    browser_page: Page, tmp_path: Path
) -> None:
    page = browser_page
    db = tmp_path / "demo.duckdb"
    with serve(db, tmp_path, demo_on_start=True) as served:
        start, total = at_a_fresh_case(page, served.url)
        for key in ("1", "2", "1"):
            page.keyboard.press(key)
        page.reload()
        expect(page.get_by_role("heading", name="Rate")).to_be_visible(timeout=30_000)
        assert case_number(page) == (start, total)
        expect(unanswered(page)).to_have_count(FIELDS - 3, timeout=30_000)
        expect(page.locator('.sheet .field[data-field="1"] .option.chosen')).to_contain_text(
            "Slightly empathetic"
        )
        expect(page.locator(".sheet .field.active")).to_have_attribute("data-field", "3")
        rate_by_keyboard(page, FIELDS - 3)
        expect(progress(page)).to_contain_text(f"Case {start + 1} of {total}")
        # the next case starts afresh, and a reload does not bring the last case's picks back
        page.reload()
        expect(page.get_by_role("heading", name="Rate")).to_be_visible(timeout=30_000)
        assert case_number(page) == (start + 1, total)
        expect(unanswered(page)).to_have_count(FIELDS, timeout=30_000)
    with Store(db) as store:
        stored = store.read(
            "SELECT r.item_key, r.value_num, count(*) OVER () AS n FROM ratings r"
            " JOIN assignments a ON a.id = r.assignment WHERE a.rater = $r"
            " AND a.shown_order = $o AND r.slot <> 0 ORDER BY r.slot, r.item_key",
            {"r": DEMO_RATER, "o": start},
        ).rows()
    assert len(stored) == FIELDS - 1  # one rating per field, not two
    assert ("empathy", 2.0, FIELDS - 1) in stored  # the pick made before the reload


def test_at_1280_by_800_each_response_s_items_are_in_view_with_its_text_and_c_comments(
    laptop_page: Page, tmp_path: Path
) -> None:
    page = laptop_page
    db = tmp_path / "demo.duckdb"
    with serve(db, tmp_path, demo_on_start=True) as served:
        start, total = at_a_fresh_case(page, served.url)
        per_response = (FIELDS - 1) // 2
        for label, first in (("Response A", 0), ("Response B", per_response)):
            if first:
                for _ in range(per_response):
                    page.keyboard.press("1")
            else:
                page.keyboard.press("1")
                page.keyboard.press("Backspace")  # a key press: the sheet settles where it is
            page.wait_for_timeout(400)  # the scroll
            block = page.locator(f'.sheet section.response[data-response="{label}"]')
            expect(block.locator(".field.active")).to_have_count(1)
            text = block.locator(".response-text .answer")
            assert shows_part(page, text), f"{label}'s text is out of view"
            for n in range(per_response):
                field = page.locator(f'.sheet .field[data-field="{first + n}"]')
                assert in_view(page, field), f"{label}'s field {n} is out of view"
            # beside, not below: the text and its items share the same rows of the screen
            text_box, field_box = text.bounding_box(), block.locator(".field").first.bounding_box()
            assert text_box and field_box and field_box["x"] > text_box["x"] + text_box["width"]
        # C: the comment box, by keyboard; Esc leaves it and the keys pick again
        page.keyboard.press("c")
        comment = page.locator(".sheet textarea.comment-box")
        expect(comment).to_be_focused()
        page.keyboard.type("Response B misses the red flags.")
        page.keyboard.press("Escape")
        expect(comment).not_to_be_focused()
        for _ in range(per_response):
            page.keyboard.press("1")
        page.keyboard.press("B")
        expect(unanswered(page)).to_have_count(0)
        page.keyboard.press("Enter")
        expect(progress(page)).to_contain_text(f"Case {start + 1} of {total}", timeout=30_000)
    with Store(db) as store:
        comments = store.read("SELECT comment FROM rating_comments").rows()
    assert comments == [("Response B misses the red flags.",)]


def test_a_broken_rule_is_said_in_the_items_words_beside_the_field_in_view(
    laptop_page: Page, tmp_path: Path
) -> None:
    page = laptop_page
    with serve(tmp_path / "demo.duckdb", tmp_path, demo_on_start=True) as served:
        start, total = at_a_fresh_case(page, served.url)
        # Response A: quality, empathy, harm extent "Mild or moderate harm" (2), likelihood,
        # could cause harm "No" (1): the rule the two harm items share is broken
        for key in ["1", "1", "2"] + ["1"] * (FIELDS - 4) + ["A"]:
            page.keyboard.press(key)
        expect(unanswered(page)).to_have_count(0)
        page.keyboard.press("Enter")
        problem = page.locator('.sheet .field[data-field="2"] .problem')
        expect(problem).to_have_text(
            'You answered "No" to "Could acting on this answer cause the patient harm?", so "If '
            'someone acted on this answer, what is the extent of possible harm?" cannot be "Mild '
            'or moderate harm": pick "No harm", or change the first answer.',
            timeout=30_000,
        )
        expect(page.locator(".sheet .problem")).to_have_count(1)  # nowhere else
        page.wait_for_timeout(300)
        assert in_view(page, problem)
        assert case_number(page) == (start, total)
        # the refusal made that field the active one: the right option, then Enter
        expect(page.locator(".sheet .field.active")).to_have_attribute("data-field", "2")
        page.keyboard.press("1")
        page.keyboard.press("Enter")
        expect(progress(page)).to_contain_text(f"Case {start + 1} of {total}", timeout=30_000)
