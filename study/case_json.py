"""Conversation cases and per-case rubric criteria: their shapes, checks and canonical JSON.

A **conversation** is the chat before the answers: a JSON array of messages
``{"role": "system" | "user" | "assistant", "content": "..."}``, at least one, the last from the
user (the answers rated are each arm's next assistant turn). A **rubric** is a case's criteria,
as HealthBench writes them: a JSON array of ``{"criterion": "...", "points": 5, "tags":
["axis:accuracy"]}`` (``tags`` optional; ``key`` optional, default ``c1``, ``c2``, ... by
position). Points are finite numbers, negative for behaviour that should not happen.

Both are stored as canonical JSON text (sorted keys, no spaces), so an identical re-import is
recognised as identical. Pure Python: the importers and the services call these.

>>> canonical_criteria([{"criterion": "Advises urgent care", "points": 5}])
('[{"criterion":"Advises urgent care","key":"c1","points":5,"tags":[]}]', None)
>>> canonical_conversation([{"role": "doctor", "content": "hi"}])[1]
"message 1: role 'doctor' is not one of system, user, assistant"
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from study.canonical import canonical_json

ROLES = ("system", "user", "assistant")
MAX_MESSAGE_CHARS = 100_000
MAX_CRITERION_CHARS = 5_000
MAX_CRITERIA = 200
MAX_TAG_CHARS = 200
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,31}")


def _number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _plain(value: float | int) -> float | int:
    value = float(value)
    return int(value) if value.is_integer() else value


def conversation_problem(messages: Any) -> str | None:
    """What is wrong with ``messages`` as a conversation (the first problem), or None."""
    if not isinstance(messages, list):
        return f"a conversation is a JSON array of messages, got {type(messages).__name__}"
    if not messages:
        return "a conversation needs at least one message"
    for number, message in enumerate(messages, 1):
        where = f"message {number}"
        if not isinstance(message, dict):
            return f"{where} must be an object with role and content"
        extra = sorted(set(message) - {"role", "content"})
        if extra:
            return f"{where}: unknown field {extra[0]!r}; a message has role and content only"
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            return f"{where}: role {role!r} is not one of {', '.join(ROLES)}"
        if not isinstance(content, str) or not content.strip():
            return f"{where}: content must be non-empty text"
        if len(content) > MAX_MESSAGE_CHARS:
            return f"{where}: {len(content):,} characters; at most {MAX_MESSAGE_CHARS:,}"
        if "\x00" in content:
            return f"{where}: contains a NUL character (byte 0x00); remove it"
    if messages[-1]["role"] != "user":
        return (
            f"the last message is from the {messages[-1]['role']}; a conversation ends with the "
            "user's turn (the answers rated are the next assistant turn)"
        )
    return None


def canonical_conversation(messages: Any) -> tuple[str | None, str | None]:
    """(canonical JSON text, None) for a valid conversation, else (None, the problem)."""
    problem = conversation_problem(messages)
    if problem:
        return None, problem
    return canonical_json([{"role": m["role"], "content": m["content"]} for m in messages]), None


def criteria_list(criteria: Any) -> tuple[list[dict[str, Any]] | None, str | None]:
    """The criteria with keys, points and tags filled in, or (None, the first problem)."""
    if not isinstance(criteria, list):
        return None, f"criteria are a JSON array of objects, got {type(criteria).__name__}"
    if not criteria:
        return None, "a rubric needs at least one criterion"
    if len(criteria) > MAX_CRITERIA:
        return None, f"{len(criteria)} criteria; at most {MAX_CRITERIA} per case"
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for number, entry in enumerate(criteria, 1):
        where = f"criterion {number}"
        if not isinstance(entry, dict):
            return None, f"{where} must be an object with criterion, points and tags"
        extra = sorted(set(entry) - {"key", "criterion", "points", "tags"})
        if extra:
            return (
                None,
                f"{where}: unknown field {extra[0]!r}; allowed: key, criterion, points, tags",
            )
        text = entry.get("criterion")
        if not isinstance(text, str) or not text.strip():
            return None, f"{where}: criterion must be non-empty text"
        if len(text) > MAX_CRITERION_CHARS or "\x00" in text:
            return None, f"{where}: criterion is too long or holds a NUL character"
        points = entry.get("points")
        if not _number(points):
            return (
                None,
                f"{where}: points must be a finite number (negative allowed), got {points!r}",
            )
        tags = entry.get("tags", [])
        if tags is None:
            tags = []
        if not isinstance(tags, list) or not all(
            isinstance(t, str) and t.strip() and len(t) <= MAX_TAG_CHARS for t in tags
        ):
            return None, f"{where}: tags must be a list of non-empty texts"
        if len(set(tags)) != len(tags):
            return None, f"{where}: a tag is listed twice"
        key = entry.get("key") or f"c{number}"  # a Parquet struct gives an absent key as null
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            return None, f"{where}: key {key!r} must be 1-32 letters, digits or _ . : -"
        if key in seen:
            return None, f"{where}: key {key!r} is used by criterion {seen[key]} too"
        seen[key] = number
        out.append({"key": key, "criterion": text, "points": _plain(points), "tags": list(tags)})
    return out, None


def canonical_criteria(criteria: Any) -> tuple[str | None, str | None]:
    """(canonical JSON text, None) for a valid rubric, else (None, the problem)."""
    checked, problem = criteria_list(criteria)
    if problem:
        return None, problem
    return canonical_json(checked), None


def last_user_turn(conversation: str) -> str:
    """The content of the last user message of a stored (canonical) conversation."""
    messages = json.loads(conversation)
    return next(m["content"] for m in reversed(messages) if m["role"] == "user")


def stored_criteria(text: str | None) -> list[dict[str, Any]]:
    """A case's stored criteria (canonical JSON text, or None) as a list of dicts."""
    return [] if text is None else json.loads(text)
