"""Ratings collected elsewhere (on paper, in REDCap, in a spreadsheet) brought into a study.

Imported ratings are stored as a rating in the app would be, so that agreement, non-inferiority,
the export and ``audit verify`` treat them alike: each (rater, case) becomes an assignment (its
algorithm ``"imported"``, marked done) that shows every answer of the case, in arm_id order
labelled "Response A", "Response B", ...; each value becomes revision 1 of a submitted rating on
that assignment (on the presentation of the arm it rated, or on the case for a per-case item).
The audit trail records one ``assignments.persist`` event for the assignments, one
``rating.submit`` event per assignment with its values (marked imported), and one
``ratings.import`` event with the file's SHA-256: the study says that its ratings were imported,
not collected blind in Clinval (``ratings_origin``).

Accepted only while the study is ``locked``: the protocol and instruments are fixed and no rating
has been opened in the app. All-or-nothing; every problem of the file is reported at once.
"""

from __future__ import annotations

import hashlib
import json
import string
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from study import audit, importing
from study.access import Caller, guarded
from study.case_json import stored_criteria
from study.errors import Problem, StateError, StudyError, ValidationError
from study.services._common import audit_design, author_owner_sql, require_study
from study.services.instrument_library import instrument_from_json
from study.store import Cursor, Store, utc_now

IMPORTED = "imported"
"""The ``algorithm`` of an assignment made from imported ratings."""


@dataclass(frozen=True, slots=True)
class RatingImport:
    """What an import stored: ratings, assignments (rater x case), raters, presentations."""

    study: str
    file: str
    ratings: int
    assignments: int
    raters: int
    presentations: int
    audit_seq: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"ratings: {self.ratings} imported from {self.file} ({self.assignments} rater x case "
            f"assignments, {self.raters} raters); recorded as collected outside Clinval"
        )


@guarded
def import_ratings(store: Store, caller: Caller, study: str, path: str | Path) -> RatingImport:
    """Import ratings from a CSV/JSONL/Parquet file (see ``importing.read_ratings``).

    The study must be ``locked`` (``StateError`` otherwise). Raters are the people holding the
    rater role in the study; a (rater, case) that already has an assignment is refused, so a
    file is never imported twice. Returns what was stored.
    """
    path = Path(path)
    cur = store.cursor()
    try:
        status = require_study(cur, study)["status"]
        if status != "locked":
            raise StateError(_STATE_MESSAGE.format(study=study, status=status))
        design = _design(cur, study)
    finally:
        cur.close()
    frame = importing.read_ratings(
        path,
        known_case_ids=design["cases"],
        answers=design["answers"],
        raters=design["raters"],
        items={key: item for key, (_, item) in design["items"].items()},
    )
    _refuse_unknown_criteria(store, study, frame, design["items"], path.name)
    digest = _file_digest(path)
    with store.transaction() as cur:
        require_study(cur, study, ("locked",))
        _refuse_assigned(cur, study, frame, path.name)
        _refuse_own_answers(cur, study, frame, path.name)
        assignments = _assignments(store, cur, study, frame)
        shown = _presentations(store, cur, study, assignments, design["answers"])
        store.insert_frame(cur, "assignments", assignments.drop("rated_at", "seconds"))
        store.insert_frame(cur, "presentations", shown.drop("arm_id", "case_id"))
        audit_design(cur, caller, study, None, assignments, shown)
        ratings = _ratings(store, cur, frame, assignments, shown, design["items"], caller)
        _write_ratings(store, cur, ratings)
        _audit_values(cur, caller, study, ratings, assignments, path.name)
        seq = audit.append(
            cur,
            actor=caller.actor,
            kind=audit.RATINGS_IMPORT,
            object_type="study",
            object_id=study,
            study=study,
            payload={
                "file": path.name,
                "sha256": digest,
                "rows": frame.height,
                "assignments": assignments.height,
                "raters": assignments.get_column("rater").n_unique(),
            },
        )
    return RatingImport(
        study,
        path.name,
        frame.height,
        assignments.height,
        assignments.get_column("rater").n_unique(),
        shown.height,
        seq,
    )


_STATE_MESSAGE = (
    "Study '{study}' is {status}: ratings collected elsewhere are imported into a locked study "
    "(protocol and instruments fixed, rating not opened in Clinval)."
)


@guarded
def ratings_origin(store: Store, caller: Caller, study: str) -> dict[str, Any]:
    """Where the study's ratings come from: ``{"origin": ..., "imports": [...]}``.

    ``origin``: ``"imported"`` (every assignment came from an import: not collected blind in
    Clinval), ``"mixed"`` (some were), ``"clinval"`` (rated in the app) or ``"none"`` (no
    assignment yet). ``imports``: one dict per ``ratings.import`` event (file, sha256, rows,
    assignments, raters, at, by), oldest first.
    """
    counts = store.read(
        "SELECT count(*) FILTER (WHERE algorithm = $a) AS imported, count(*) AS total"
        " FROM assignments WHERE study = $s",
        {"s": study, "a": IMPORTED},
    ).row(0, named=True)
    imported, total = counts["imported"], counts["total"]
    origin = (
        "none"
        if total == 0
        else "imported"
        if imported == total
        else "mixed"
        if imported
        else "clinval"
    )
    events = store.read(
        "SELECT payload, occurred_at, actor FROM audit_events WHERE study = $s AND action = $k"
        " ORDER BY seq",
        {"s": study, "k": audit.RATINGS_IMPORT.name},
    )
    imports = [
        {**json.loads(payload), "at": at, "by": actor} for payload, at, actor in events.iter_rows()
    ]
    return {"origin": origin, "imports": imports}


def _refuse_unknown_criteria(
    store: Store, study: str, frame: pl.DataFrame, items: dict[str, Any], file: str
) -> None:
    """Rows of an item rated per criterion of the case (a model grader's labels, say) must
    label exactly the case's criteria: ``Item.validate_criteria`` against the stored rubric."""
    per_case = [key for key, (_, item) in items.items() if item.per_case_criteria]
    rows = frame.filter(pl.col("item").is_in(per_case) & pl.col("value_text").is_not_null())
    if not rows.height:
        return
    keys = {
        case: [c["key"] for c in stored_criteria(text)]
        for case, text in store.read(
            "SELECT case_id, criteria FROM cases WHERE study = $s", {"s": study}
        ).iter_rows()
    }
    problems = []
    for row, case, key, text in rows.select("row", "case_id", "item", "value_text").iter_rows():
        try:
            items[key][1].validate_criteria(json.loads(text), keys.get(case, []))
        except StudyError as exc:
            problems.append(Problem(file, row, "value", str(exc)))
    if problems:
        raise ValidationError(problems[: importing.MAX_PROBLEMS_PER_KIND])


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _design(cur: Cursor, study: str) -> dict[str, Any]:
    """The study's cases, answers (answer_id, case_id, arm_id), raters and items by key."""
    cases = [
        r[0] for r in cur.execute("SELECT case_id FROM cases WHERE study = ?", [study]).fetchall()
    ]
    answers = cur.sql(
        "SELECT answer_id, case_id, arm_id FROM answers WHERE study = $s ORDER BY case_id, arm_id",
        params={"s": study},
    ).pl()
    raters = [
        r[0]
        for r in cur.execute(
            "SELECT DISTINCT user_id FROM roles WHERE study = ? AND role = 'rater'", [study]
        ).fetchall()
    ]
    items = {}
    for definition, digest in cur.execute(
        "SELECT i.definition, i.content_hash FROM study_instruments s JOIN instruments i"
        " ON i.key = s.instrument_key AND i.version = s.instrument_version"
        " WHERE s.study = ? ORDER BY s.position",
        [study],
    ).fetchall():
        instrument = instrument_from_json(definition, digest)
        for item in instrument.items:
            items[item.key] = (instrument, item)
    return {"cases": cases, "answers": answers, "raters": raters, "items": items}


def _refuse_assigned(cur: Cursor, study: str, frame: pl.DataFrame, file: str) -> None:
    """A (rater, case) with an assignment already: imported before, or assigned in the app."""
    taken = cur.execute(
        "SELECT rater, case_id FROM assignments WHERE study = ? ORDER BY rater, case_id", [study]
    ).fetchall()
    if not taken:
        return
    taken_frame = pl.DataFrame(
        taken, schema={"rater_id": pl.String, "case_id": pl.String}, orient="row"
    )
    clash = (
        frame.join(taken_frame, on=["rater_id", "case_id"], how="semi")
        .group_by("rater_id", "case_id", maintain_order=True)
        .agg(pl.col("row").min())
    )
    if clash.height:
        problems = [
            Problem(
                file,
                row,
                "rater_id",
                f"rater '{rater}' already has ratings or an assignment for case '{case}' "
                "(was this file imported before?)",
            )
            for rater, case, row in clash.head(importing.MAX_PROBLEMS_PER_KIND).iter_rows()
        ]
        raise ValidationError(problems)


def _refuse_own_answers(cur: Cursor, study: str, frame: pl.DataFrame, file: str) -> None:
    """A rater who wrote one of the case's answers: the app never shows them such a case."""
    own = cur.sql(
        "SELECT DISTINCT u.id AS rater_id, a.case_id FROM answers a JOIN users u"
        f" ON {author_owner_sql()} WHERE a.study = $s",
        params={"s": study},
    ).pl()
    clash = (
        frame.join(own, on=["rater_id", "case_id"], how="semi")
        .group_by("rater_id", "case_id", maintain_order=True)
        .agg(pl.col("row").min())
    )
    if clash.height:
        raise ValidationError(
            [
                Problem(
                    file,
                    row,
                    "rater_id",
                    f"rater '{rater}' wrote an answer of case '{case}': a rater never rates "
                    "their own answer",
                )
                for rater, case, row in clash.head(importing.MAX_PROBLEMS_PER_KIND).iter_rows()
            ]
        )


def _assignments(store: Store, cur: Cursor, study: str, frame: pl.DataFrame) -> pl.DataFrame:
    """One done assignment per (rater, case) in file order, queued after the rater's others."""
    first_id = store.allocate_ids(cur, "assignments")
    now = utc_now()
    queued = dict(
        cur.execute(
            "SELECT rater, max(shown_order) FROM assignments WHERE study = ? GROUP BY rater",
            [study],
        ).fetchall()
    )
    pairs = frame.group_by("rater_id", "case_id", maintain_order=True).agg(
        pl.col("rated_at").max(),
        pl.when(pl.col("seconds").is_not_null().any()).then(pl.col("seconds").sum()),
    )
    return pairs.select(
        (pl.int_range(pl.len(), dtype=pl.Int64) + first_id).alias("id"),
        pl.lit(study).alias("study"),
        pl.concat_str([pl.lit("import:"), "rater_id", pl.lit(":"), "case_id"]).alias("design_key"),
        pl.col("rater_id").alias("rater"),
        pl.col("case_id"),
        pl.lit(0, dtype=pl.Int64).alias("seed"),
        pl.lit(IMPORTED).alias("algorithm"),
        pl.lit("done").alias("status"),
        pl.lit(True).alias("done"),
        (
            pl.int_range(pl.len(), dtype=pl.Int32).over("rater_id")
            + 1
            + pl.col("rater_id").replace_strict(queued, default=0, return_dtype=pl.Int32)
        ).alias("shown_order"),
        pl.lit(now).alias("created_at"),
        pl.coalesce(pl.col("rated_at"), pl.lit(now)).alias("done_at"),
        pl.col("rated_at"),
        pl.col("seconds"),
    )


def _presentations(
    store: Store, cur: Cursor, study: str, assignments: pl.DataFrame, answers: pl.DataFrame
) -> pl.DataFrame:
    """Every answer of the assignment's case, in arm_id order, labelled Response A, B, ..."""
    first_id = store.allocate_ids(cur, "presentations")
    ordered = answers.sort("case_id", "arm_id").with_columns(
        (pl.int_range(pl.len(), dtype=pl.Int32).over("case_id") + 1).alias("position")
    )
    letters = {i + 1: f"Response {c}" for i, c in enumerate(string.ascii_uppercase)}
    shown = assignments.select(pl.col("id").alias("assignment"), "case_id").join(
        ordered, on="case_id", how="inner", maintain_order="left"
    )
    if (shown.get_column("position").max() or 0) > len(letters):
        raise ValidationError(
            [Problem("answers", None, None, f"a case has more than {len(letters)} answers")]
        )
    return shown.select(
        (pl.int_range(pl.len(), dtype=pl.Int64) + first_id).alias("id"),
        "assignment",
        pl.lit(study).alias("study"),
        "answer_id",
        "position",
        pl.col("position").replace_strict(letters, return_dtype=pl.String).alias("label"),
        "arm_id",
        "case_id",
    )


def _ratings(
    store: Store,
    cur: Cursor,
    frame: pl.DataFrame,
    assignments: pl.DataFrame,
    shown: pl.DataFrame,
    items: dict[str, Any],
    caller: Caller,
) -> pl.DataFrame:
    """The rating rows: revision 1, submitted at ``rated_at`` (else now), one per file row."""
    first_id = store.allocate_ids(cur, "ratings")
    now = utc_now()
    instrument_of = {key: (inst.key, inst.version) for key, (inst, _) in items.items()}
    rows = frame.join(
        assignments.select(
            pl.col("id").alias("assignment"), pl.col("rater").alias("rater_id"), "case_id"
        ),
        on=["rater_id", "case_id"],
        how="left",
        maintain_order="left",
    ).join(
        shown.select("assignment", "arm_id", pl.col("id").alias("presentation")),
        on=["assignment", "arm_id"],
        how="left",
        maintain_order="left",
    )
    return rows.select(
        (pl.int_range(pl.len(), dtype=pl.Int64) + first_id).alias("id"),
        "assignment",
        "presentation",
        pl.col("presentation").fill_null(0).alias("slot"),
        pl.col("item")
        .replace_strict({k: v[0] for k, v in instrument_of.items()}, return_dtype=pl.String)
        .alias("instrument_key"),
        pl.col("item")
        .replace_strict({k: v[1] for k, v in instrument_of.items()}, return_dtype=pl.String)
        .alias("instrument_version"),
        pl.col("item").alias("item_key"),
        "value_num",
        "value_text",
        pl.lit(1, dtype=pl.Int32).alias("revision"),
        pl.lit("submitted").alias("status"),
        pl.col("seconds").alias("seconds_on_task"),
        pl.coalesce(pl.col("rated_at"), pl.lit(now)).alias("created_at"),
        pl.coalesce(pl.col("rated_at"), pl.lit(now)).alias("submitted_at"),
        pl.lit(caller.actor).alias("actor"),
        "comment",
    )


def _write_ratings(store: Store, cur: Cursor, ratings: pl.DataFrame) -> None:
    store.insert_frame(cur, "ratings", ratings.drop("comment"))
    store.insert_frame(
        cur,
        "current_ratings",
        ratings.select("assignment", "slot", "item_key", pl.col("id").alias("rating")),
    )
    store.insert_frame(
        cur,
        "rating_comments",
        ratings.filter(pl.col("comment").is_not_null()).select(
            pl.col("id").alias("rating"), "comment"
        ),
    )


def _audit_values(
    cur: Cursor,
    caller: Caller,
    study: str,
    ratings: pl.DataFrame,
    assignments: pl.DataFrame,
    file: str,
) -> None:
    """One ``rating.submit`` event per assignment, with every value, as the app writes it: what
    ``audit verify`` checks the stored ratings against."""
    rater_of = dict(assignments.select("id", "rater").iter_rows())
    seconds_of = dict(assignments.select("id", "seconds").iter_rows())
    done_at_of = dict(assignments.select("id", "done_at").iter_rows())
    grouped = ratings.sort("assignment", "slot", "item_key").group_by(
        "assignment", maintain_order=True
    )
    for (assignment,), rows in grouped:
        audit.append(
            cur,
            actor=caller.actor,
            kind=audit.RATING_SUBMIT,
            object_type="assignment",
            object_id=str(assignment),
            study=study,
            payload={
                "rater": rater_of[assignment],
                "seconds": seconds_of[assignment],
                "imported": file,
                # the file's times and per-row seconds, which audit verify holds the stored
                # ratings and the assignment's done_at to
                "done_at": done_at_of[assignment].isoformat(),
                "values": rows.select(
                    "slot",
                    "item_key",
                    "value_num",
                    "value_text",
                    "revision",
                    pl.col("submitted_at").dt.strftime("%Y-%m-%dT%H:%M:%S%.6f"),
                    "seconds_on_task",
                ).to_dicts(),
            },
        )
