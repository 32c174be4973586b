"""Exports (``study.services.exports``): the ratings in long format, with arms and the chosen
answer, as an audited read."""

from __future__ import annotations

import polars as pl
from conftest import OPERATOR, full_values, sign_in

from analysis import columns as col
from study import audit_verify
from study.services import exports
from study.services import rating as rating_service


def test_export_is_long_format_with_arms_and_the_chosen_answer(store, rating):
    r1 = sign_in(store, "r1")
    view = rating_service.next_assignment(store, r1, rating)
    rating_service.submit_rating(
        store,
        r1,
        rating,
        view["assignment"],
        {
            **full_values(quality_a=5, quality_b=2, better="B"),
            "comment": {"Response B": "clear"},
        },
        seconds=12.5,
    )
    # the study is still blind: only the operator at the command line exports it now
    export = exports.export_ratings_long(store, OPERATOR, rating)
    for name in (col.STUDY, col.CASE, col.ARM, col.ANSWER, col.RATER, col.ITEM, col.VALUE):
        assert name in export.columns
    assert export.height == 4
    quality = export.filter(pl.col(col.ITEM) == "quality").sort(col.POSITION)
    shown = {p["label"]: p["presentation"] for p in view["presentations"]}
    answers = store.read(
        "SELECT p.label, a.arm_id, a.answer_id FROM presentations p JOIN answers a"
        " ON a.study = p.study AND a.answer_id = p.answer_id WHERE p.assignment = $a"
        " ORDER BY p.position",
        {"a": view["assignment"]},
    )
    assert quality.select(col.LABEL, col.ARM, col.ANSWER).rows() == answers.rows()
    assert quality.get_column(col.VALUE).to_list() == [5.0, 2.0]
    assert quality.get_column(col.SECONDS).to_list() == [12.5, 12.5]
    better = export.filter(pl.col(col.ITEM) == "better").row(0, named=True)
    assert (better["value_text"], better[col.ARM], better["chosen_answer"]) == (
        "B",
        None,
        answers.row(1)[2],
    )
    assert better["chosen_arm"] == answers.row(1)[1]
    comment = export.filter(pl.col(col.ITEM) == "comment").row(0, named=True)
    assert comment["value_text"] == "clear" and comment[col.VALUE] is None
    assert len(shown) == 2
    last = store.read("SELECT action, actor FROM audit_events ORDER BY seq DESC LIMIT 1")
    assert last.rows() == [("ratings.export", "system:cli:tests")]
    assert audit_verify.verify(store).ok


HOSTILE = [
    "<script>fetch('http://evil.example/s')</script>",
    "<img src=http://evil.example/i.png>",
    "![harm](http://evil.example/m.png)",
    "[click](javascript:alert(1)) | a cell | `code` *bold* _x_",
    "Line one\n\n# Heading\n- item <b>&amp;</b>",
]


def test_the_codebook_markdown_shows_imported_wording_as_text_and_forms_nothing() -> None:
    """Issue 19 item 6: wording, labels, titles and the study name are inert in codebook.md:
    rendered as a Markdown viewer with raw HTML on would (markdown-it, GFM tables), no tag, image
    or link forms, and each text reads back whole."""
    from html.parser import HTMLParser

    from markdown_it import MarkdownIt

    from study.exporting import codebook_markdown

    bad = " ".join(HOSTILE)
    book = {
        "study": bad,
        "unit_of_observation": "one rating",
        "rows": 1,
        "formats": {"csv": "text"},
        "variables": [
            {
                "name": "value",
                "stata_spss_name": "value",
                "formats": ["csv"],
                "type": "float",
                "label": bad,
                "description": bad,
                "values": [{"value": 1, "label": bad}],
            }
        ],
        "items": [
            {
                "key": "harm`x",
                "instrument": bad,
                "instrument_version": bad,
                "prompt": bad,
                "help": bad,
                "type": "likert",
                "level": "ordinal",
                "direction": "higher",
                "scope": "answer",
                "required": True,
                "options": [{"value": 1, "label": bad}],
            }
        ],
        "instruments": [
            {
                "key": "k`<img src=x>",
                "version": 1,
                "title": bad,
                "citation": bad,
                "content_hash": "h",
            }
        ],
        "naming": "names as given",
        "csv_text": "text as given",
    }
    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(codebook_markdown(book))

    class Tags(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[tuple[str, list]] = []
            self.text: list[str] = []

        def handle_starttag(self, tag, attrs):
            self.tags.append((tag, attrs))

        def handle_data(self, data):
            self.text.append(data)

    parsed = Tags()
    parsed.feed(html)
    formed = {tag for tag, _ in parsed.tags}
    assert formed <= {
        "h1",
        "h2",
        "h3",
        "p",
        "ul",
        "li",
        "code",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
    }, formed
    assert all(attrs in ([], [("style", "text-align:left")]) for _, attrs in parsed.tags)
    shown = "".join(parsed.text)
    flat = " ".join(bad.split())
    assert shown.count(flat) >= 8  # study, label, description, value, wording, help, option...
