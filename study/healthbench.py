"""Read HealthBench's JSONL (Arora et al. 2025, OpenAI) as published into Clinval frames.

One JSON object per line, as in simple-evals' ``healthbench_eval.py`` inputs
(``2025-05-07-06-14-12_oss_eval.jsonl`` and its hard and consensus subsets)::

    {"prompt": [{"role": "user", "content": "..."}, ...],      # the conversation so far
     "prompt_id": "...",                                         # unique id -> case_id
     "rubrics": [{"criterion": "...", "points": 5, "tags": ["level:example", "axis:accuracy"]}],
     "example_tags": ["theme:emergency_referrals", ...],         # -> the case's tags
     "ideal_completions_data": null | {"ideal_completion": "...",
                                       "ideal_completions_group": "Group 1",
                                       "ideal_completions_ref_completions": ["...", ...]},
     "canary": "..."}

Each line becomes a conversation case (``question`` = its last user turn) with its rubric as the
case's criteria (keys ``c1``, ``c2``, ... in the order given). Where ``ideal_completion`` is
present it becomes the answer of one clinician arm (physicians who wrote HealthBench's ideal
completions; which physician is not published, so ``author_id`` is not recorded, and the group
goes into ``author_role``: Group 2 and 3 physicians saw model completions while writing). The
reference completions are model outputs without a pinned model version and are not imported;
the result counts them. Other keys (``canary``) are ignored.

Problems are ``Problem(file, line, field, reason)``, every one at once, capped per kind; nothing
is returned from a file with a problem.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from study import case_json, importing
from study.errors import Problem, ValidationError

ARM_ID = "healthbench_physicians"
ARM_LABEL = "HealthBench physicians (ideal completions)"
GROUPS = {
    "Group 1": "no model completions shown",
    "Group 2": "shown Aug/Sep 2024 model completions",
    "Group 3": "shown Apr 2025 model completions",
}
"""What each ``ideal_completions_group`` meant (simple-evals ``PHYSICIAN_COMPLETION_MODES``)."""
_ID_BAD = re.compile(r"[\s\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class HealthBench:
    """What one file holds: ``cases`` (as ``importing.read_cases`` returns them), ``arms`` (the
    clinician arm, or no rows) and ``answers`` (as ``importing.read_answers`` returns them), and
    how many reference completions were left out."""

    cases: pl.DataFrame
    arms: pl.DataFrame
    answers: pl.DataFrame
    reference_completions: int


def read_healthbench(
    path: str | Path, *, arm: str = ARM_ID, max_bytes: int | None = None
) -> HealthBench:
    """Read and validate a HealthBench JSONL file; ``ValidationError`` lists every problem."""
    file = Path(path)
    name = file.name
    limit = importing.default_max_bytes() if max_bytes is None else max_bytes
    if not file.is_file():
        raise ValidationError([Problem(name, None, None, f"no such file: {file}")])
    if file.stat().st_size > limit:
        raise ValidationError(
            [Problem(name, None, None, f"the file is larger than {limit // (1024 * 1024)} MB")]
        )
    raw = file.read_bytes().removeprefix(b"\xef\xbb\xbf")
    problems: list[Problem] = []
    cases: list[dict[str, Any]] = []
    answers: list[dict[str, Any]] = []
    first_line: dict[str, int] = {}
    references = 0
    for number, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip(b" \t\r"):
            continue

        def problem(field: str | None, reason: str, row: int = number) -> None:
            problems.append(Problem(name, row, field, reason))

        try:
            obj = json.loads(line.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
        except UnicodeDecodeError as exc:
            problem(None, f"not UTF-8 text ({exc.reason} at byte {exc.start})")
            continue
        except ValueError as exc:
            problem(None, f"not valid JSON: {getattr(exc, 'msg', exc)}")
            continue
        if not isinstance(obj, dict):
            problem(None, "each line must be a JSON object {...}")
            continue
        case = _case(obj, problem, first_line, number)
        if case is None:
            continue
        cases.append(case)
        ideal = obj.get("ideal_completions_data")
        if ideal is None:
            continue
        answer, refs = _ideal_answer(ideal, case["case_id"], arm, problem)
        references += refs
        if answer is not None:
            answers.append(answer)
    if not cases and not problems:
        problems.append(Problem(name, None, None, "the file has no data rows"))
    if problems:
        raise ValidationError(_capped(problems))
    return HealthBench(
        cases=pl.DataFrame(
            cases,
            schema=importing.CASE_SCHEMA,
        ),
        arms=pl.DataFrame(
            [
                {
                    "arm_id": arm,
                    "kind": "clinician",
                    "label": ARM_LABEL,
                    "model_name": None,
                    "model_version": None,
                    "author_role": "physician",
                    "not_recorded": [],
                }
            ]
            if answers
            else [],
            schema={
                **dict.fromkeys(importing.ARM_COLUMNS, pl.String),
                "not_recorded": pl.List(pl.String),
            },
        ),
        answers=pl.DataFrame(
            answers,
            schema={
                **dict.fromkeys(importing.ANSWER_COLUMNS, pl.String),
                "not_recorded": pl.List(pl.String),
            },
        ),
        reference_completions=references,
    )


def _case(
    obj: dict[str, Any], problem: Any, first_line: dict[str, int], number: int
) -> dict | None:
    """The case of one line, or None after reporting what is wrong with it."""
    faults = 0
    prompt_id = obj.get("prompt_id")
    if not isinstance(prompt_id, str) or not prompt_id:
        problem("prompt_id", "prompt_id is missing or not text; every line needs one")
        faults += 1
    elif len(prompt_id) > importing.MAX_ID_CHARS or _ID_BAD.search(prompt_id):
        problem("prompt_id", f"prompt_id {prompt_id[:60]!r} has spaces or control characters")
        faults += 1
    elif prompt_id in first_line:
        problem("prompt_id", f"duplicate prompt_id; first given in line {first_line[prompt_id]}")
        faults += 1
    else:
        first_line[prompt_id] = number
    if "prompt" not in obj:
        problem("prompt", "prompt (the conversation) is missing")
        faults += 1
        conversation = None
    else:
        conversation, reason = case_json.canonical_conversation(obj["prompt"])
        if reason:
            problem("prompt", reason)
            faults += 1
    if "rubrics" not in obj:
        problem("rubrics", "rubrics are missing")
        faults += 1
        criteria = None
    else:
        criteria, reason = case_json.canonical_criteria(obj["rubrics"])
        if reason:
            problem("rubrics", reason.replace("criterion ", "rubric ", 1))
            faults += 1
    tags = obj.get("example_tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
        problem("example_tags", "example_tags must be a list of non-empty texts")
        faults += 1
    if faults or conversation is None or criteria is None:
        return None
    return {
        "case_id": prompt_id,
        "question": case_json.last_user_turn(conversation),
        "context": None,
        "specialty": None,
        "tags": [t.strip() for t in tags],
        "conversation": conversation,
        "criteria": criteria,
    }


def _ideal_answer(ideal: Any, case_id: str, arm: str, problem: Any) -> tuple[dict | None, int]:
    """The clinician answer of ``ideal_completions_data`` (or None) and its reference count."""
    if not isinstance(ideal, dict):
        problem("ideal_completions_data", "must be null or an object with ideal_completion")
        return None, 0
    refs = ideal.get("ideal_completions_ref_completions") or []
    count = len(refs) if isinstance(refs, list) else 0
    text = ideal.get("ideal_completion")
    if text is None:
        return None, count
    if not isinstance(text, str) or not text.strip():
        problem("ideal_completions_data", "ideal_completion must be non-empty text")
        return None, count
    if len(text) > importing.MAX_TEXT_CHARS or "\x00" in text:
        problem("ideal_completions_data", "ideal_completion is too long or holds a NUL character")
        return None, count
    group = ideal.get("ideal_completions_group")
    role = "physician (HealthBench ideal completion"
    if isinstance(group, str) and group:
        role += f", {group}" + (f": {GROUPS[group]}" if group in GROUPS else "")
    role += ")"
    return {
        "answer_id": f"{case_id}:{arm}",
        "case_id": case_id,
        "arm_id": arm,
        "text": text,
        "model_name": None,
        "model_version": None,
        "generated_at": None,
        "prompt": None,
        "system_prompt": None,
        "parameters": None,
        "author_role": role,
        "author_id": None,
        "not_recorded": ["author_id"],
    }, count


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"{key!r} appears twice in one object")
        out[key] = value
    return out


def _capped(problems: list[Problem]) -> list[Problem]:
    limit = importing.MAX_PROBLEMS_PER_KIND
    if len(problems) <= limit:
        return problems
    return [*problems[:limit], Problem.summary(problems[0].file, None, len(problems) - limit)]
