"""Messages shown as text: an error or a note may quote what came from a file or a form (a study
name, an arm label, a reviewer's reason), and Streamlit reads ``st.error``'s text as Markdown, so
an image or a link in it would be fetched or followed. ``plain`` keeps each line as the same
characters and forms nothing (``study.rendering.markdown_text``)."""

from __future__ import annotations

from typing import Any

from study.rendering import markdown_text


def plain(message: Any) -> str:
    """``message`` (an exception or any text) as inert Markdown, its line breaks kept."""
    return "  \n".join(markdown_text(line) for line in str(message).splitlines() or [""])
