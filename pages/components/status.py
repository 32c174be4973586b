"""A study's status in the words a sentence needs: "The study is open for rating", not "The
study is rating"."""

from __future__ import annotations

STATUS_WORDS = {
    "draft": "a draft",
    "locked": "locked",
    "rating": "open for rating",
    "closed": "closed to rating",
    "unblinded": "unblinded",
}


def status_words(status: str) -> str:
    """``status`` as "The study is ..." continues, e.g. "open for rating"."""
    return STATUS_WORDS.get(status, status)
