"""Answers rendered inert (``study.rendering.safe_html``): whatever the text, what reaches the
page holds no image, link, attribute or script, even when the page's own markdown renderer reads
the result again (Streamlit's ``st.markdown`` treats it as markdown with raw HTML allowed)."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from study.rendering import MODES, safe_html

# the page's renderer, approximated: CommonMark with raw HTML passed through
PAGE = MarkdownIt("commonmark", {"html": True})

NASTY = [
    '<img src="https://tracker.example/x.png">',
    "![x](https://tracker.example/p.png)",
    "[click](https://evil.example/)",
    "<https://evil.example/>",
    '<a href="javascript:alert(1)">x</a>',
    "<script>alert(1)</script>",
    "<iframe src=https://evil.example></iframe>",
    '<p onclick="alert(1)">x</p>',
    "[x][r]\n\n[r]: https://evil.example/",
    # a blank line inside a quoted or listed code block ends an HTML block, and the escaped text
    # after it must not be read as markdown again
    "> ```\n> a\n>\n> ![x](https://tracker.example/p.png)\n> ```",
    "- ```\n  a\n\n  [l](https://evil.example/)\n  ```",
    "See below\r\r![x](https://tracker.example/plain.png)",
    "| a |\n|---|\n| <img src=x> |",
]


def _reaches_the_page(text: str, mode: str) -> str:
    """What the browser gets: safe_html's output as the page's markdown renderer renders it."""
    return PAGE.render(safe_html(text, mode=mode))


class _Tags(HTMLParser):
    """Every element the browser would build from the HTML, with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, attrs))

    def handle_startendtag(self, tag, attrs):
        self.found.append((tag, attrs))


_TEXT_TAGS = {
    "p", "br", "strong", "em", "del", "s", "code", "pre", "blockquote", "hr", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip


def _inert(html: str) -> bool:
    """Only text-formatting elements, and no attribute at all (so no URL, handler or style)."""
    parser = _Tags()
    parser.feed(html)
    return all(tag in _TEXT_TAGS and not attrs for tag, attrs in parser.found)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("text", NASTY)
def test_nothing_in_an_answer_can_load_link_or_run(text, mode):
    assert _inert(_reaches_the_page(text, mode)), _reaches_the_page(text, mode)


_PIECES = [
    *"ab >-*`!#[]()<>:/\n\r\t|\\\"'=",
    "https://t.example/p.png",
    "img",
    "src",
    "```",
    "    ",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(_PIECES), max_size=40).map("".join),
    st.sampled_from(MODES),
)
def test_random_markdown_never_reaches_the_page_as_an_image_or_link(text, mode):
    assert _inert(_reaches_the_page(text, mode))


def test_the_text_itself_still_shows():
    shown = _reaches_the_page("**Take** 2 tablets\n\n- with water\n- after food", "markdown")
    assert "<strong>Take</strong>" in shown and "with water" in shown and "after food" in shown


def test_markdown_breaks_keeps_a_clinicians_paragraphs_that_markdown_runs_together():
    # K-QA's physicians (Manes et al. 2024) start each paragraph on a new line, no blank line
    answer = "Hi, thanks for asking.\nThe rash is likely **viral**.\nSee a doctor if it spreads."
    assert "<br>" not in _reaches_the_page(answer, "markdown")
    kept = _reaches_the_page(answer, "markdown_breaks")
    assert kept.count("<br>") == 2 and "<strong>viral</strong>" in kept
    # lists and blank-line paragraphs render as in markdown
    listed = "Take:\n\n- water\n- rest"
    assert _reaches_the_page(listed, "markdown_breaks") == _reaches_the_page(listed, "markdown")


def test_an_error_message_quoting_imported_text_forms_no_markup() -> None:
    """``st.error`` reads its text as Markdown: a refusal that quotes a study name or an arm label
    from a file must show those characters and fetch nothing (``pages.components.plain``)."""
    from markdown_it import MarkdownIt

    from pages.components.plain import plain

    hostile = "Study '![x](http://evil.example/a.png)' refused:\n<img src=http://evil.example/b>"
    html = MarkdownIt("commonmark", {"html": True}).render(plain(hostile))
    assert "<img" not in html and "evil.example/a.png" in html
    assert html.count("<br") == 1  # the line break is kept, as a break
