"""Answers are untrusted input: turn their text into HTML that can do nothing but show text.

An LLM answer (or a pasted clinician answer) may carry raw HTML, scripts, images or links. An
image or any remote resource would make the rater's browser call out when the answer is shown:
a privacy leak, and a source leak (the address can name the model's vendor). So raw HTML is
never passed through, images become a bracketed note with their alt text, links become their
text, and the result is sanitised once more with an allow-list (``nh3``, the Ammonia sanitiser)
that admits no attribute at all, so no URL can survive in the output.

Three modes, chosen by the protocol: ``"plain"`` shows the text as written (line breaks kept);
``"markdown"`` renders CommonMark (emphasis, lists, code, tables, quotes, headings), which runs
lines separated by a single line break into one paragraph; ``"markdown_breaks"`` renders the
same and keeps each single line break as one (many clinicians' answers, K-QA's physicians'
among them, start each paragraph on a new line without a blank line between).

>>> safe_html('<img src="https://tracker.example/x.png"> **Take** [this](https://x.example)')
'<p>&lt;img src="https://tracker.example/x.png"&gt; <strong>Take</strong> this</p>'
>>> safe_html("![chart](https://x.example/c.png)")
'<p>[image not shown: chart]</p>'
>>> safe_html("a < b\\nnext line", mode="plain")
'<p>a &lt; b<br>next line</p>'
>>> safe_html("- one\\n- two")
'<ul>&#10;<li>one</li>&#10;<li>two</li>&#10;</ul>'
>>> safe_html("**First** paragraph.\\nSecond paragraph.", mode="markdown_breaks")
'<p><strong>First</strong> paragraph.<br>&#10;Second paragraph.</p>'
"""

from __future__ import annotations

import functools
import html
import re
from typing import Any, Literal

import nh3
from markdown_it import MarkdownIt

Mode = Literal["plain", "markdown", "markdown_breaks"]
MODES: tuple[Mode, ...] = ("plain", "markdown", "markdown_breaks")

_ALLOWED_TAGS = {
    "p", "br", "strong", "em", "del", "code", "pre", "blockquote", "hr",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip


def _markdown(*, breaks: bool = False) -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": breaks})
    md.enable("table")
    md.enable("strikethrough")

    def image(renderer, tokens, idx, options, env):  # noqa: ARG001
        alt = tokens[idx].content or "no description"
        return html.escape(f"[image not shown: {alt}]")

    def link_open(renderer, tokens, idx, options, env):  # noqa: ARG001
        return ""

    def link_close(renderer, tokens, idx, options, env):  # noqa: ARG001
        return ""

    md.add_render_rule("image", image)
    md.add_render_rule("link_open", link_open)
    md.add_render_rule("link_close", link_close)
    return md


_MD = _markdown()
_MD_BREAKS = _markdown(breaks=True)


# Pure, and called on every rerun of the rating screen for the same question and answers (which
# every rater of a case sees too): cached.
@functools.lru_cache(maxsize=1024)
def safe_html(text: str, *, mode: Mode = "markdown") -> str:
    """HTML for ``text`` that holds no raw HTML, image, link, URL attribute or script.

    ``mode``: ``"markdown"`` renders CommonMark with raw HTML shown as text, images as
    "[image not shown: alt]" and links as their text; ``"markdown_breaks"`` the same, with each
    single line break kept; ``"plain"`` escapes everything and keeps line breaks. Either way the output passes an allow-list sanitiser that keeps only text
    formatting tags, without attributes.
    """
    if mode == "plain":
        body = "<br>".join(html.escape(line) for line in _LINE_BREAK.split(text))
        rendered = f"<p>{body}</p>"
    elif mode == "markdown":
        rendered = _MD.render(text)
    elif mode == "markdown_breaks":
        rendered = _MD_BREAKS.render(text)
    else:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    cleaned = nh3.clean(
        rendered, tags=_ALLOWED_TAGS, attributes={}, url_schemes=set(), link_rel=None
    ).strip()
    # One line: the page hands this to a markdown renderer as raw HTML, and a blank line (or a
    # lone carriage return) would end that HTML block and let the text after it, escaped here,
    # be read as markdown again (an image in a quoted code block would load). As a character
    # reference the line break survives inside <pre> and is white space elsewhere.
    return _LINE_BREAK.sub("&#10;", cleaned)


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#!|~:$])")
_MARKDOWN_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_LINE_START = re.compile(r"^(\d*)([-+.)])")


def markdown_text(text: Any) -> str:
    r"""``text`` as inert Markdown on one line: it reads as the same characters and forms nothing.

    Study names, instrument wording, option labels, arm and case ids, file names come from files
    and forms: unescaped, ``<script>`` or ``<img src=http://...>`` is raw HTML to a Markdown
    viewer (``codebook.md``) and ``![x](http://...)`` an image it fetches; on a screen too, as
    Streamlit's ``st.markdown``, headers, captions, alerts and widget labels read Markdown (with
    ``:color[...]`` and ``:material/...:`` directives and ``$...$`` math besides).

    Each character that opens inline markup (emphasis, code, links and images, tables,
    strikethrough, an autolink's scheme, Streamlit's directives and math) is backslash-escaped,
    as CommonMark allows for any ASCII punctuation, and so is a list marker at the start;
    ``&``, ``<`` and ``>`` become entities, so that no tag or entity forms whatever a viewer does
    with a backslash; line breaks become spaces (a heading, a cell, a list item stays one line).
    Sentence punctuation elsewhere is left alone: the text stays readable as plain text.

    >>> markdown_text('![x](http://e.example/i.png) <b>|</b> a_b')
    '\\!\\[x\\]\\(http\\://e.example/i.png\\) &lt;b&gt;\\|&lt;/b&gt; a\\_b'
    >>> markdown_text("1. Severe"), markdown_text("- Mild")
    ('1\\. Severe', '\\- Mild')
    """
    flat = " ".join(str("" if text is None else text).split())
    escaped = _LINE_START.sub(r"\1\\\2", _MARKDOWN_PUNCTUATION.sub(r"\\\1", flat))
    return "".join(_MARKDOWN_ENTITIES.get(c, c) for c in escaped)


def markdown_code(text: Any) -> str:
    """``text`` as a Markdown code span, which shows its content literally; fenced with one
    backtick more than its longest run, so that a backtick in it cannot end the span."""
    flat = " ".join(str("" if text is None else text).split())
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"
