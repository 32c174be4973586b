"""Exports: a study's ratings in the long format the analysis library and statisticians read.

An export with arms is a sensitive read: audited, and for a person possible only once the study
is unblinded. The command line's local operator, who holds the database file itself, may export
at any time (``python -m study export`` while the app is stopped).
"""

from __future__ import annotations

import json
import platform
import tempfile
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import polars as pl

from study import audit, exporting, protocol, report
from study.access import Caller, guarded
from study.errors import StudyError
from study.exporting import FORMATS, GUESS_ITEM, with_value_labels
from study.services import analyses
from study.services._common import require_unblinded
from study.services.analyses._endpoints import RESULT_SCHEMA
from study.services.analyses._long_format import LONG_FORMAT as col
from study.services.analyses._long_format import per_criterion
from study.store import Store, utc_now

_EXPORT_SQL = f"""
SELECT
    s.study                       AS {col.STUDY},
    s.case_id                     AS {col.CASE},
    an.arm_id                     AS {col.ARM},
    p.answer_id                   AS {col.ANSWER},
    s.rater                       AS {col.RATER},
    r.item_key                    AS {col.ITEM},
    r.value_num                   AS {col.VALUE},
    r.value_text                  AS value_text,
    p.position                    AS {col.POSITION},
    p.label                       AS {col.LABEL},
    r.seconds_on_task             AS {col.SECONDS},
    r.revision                    AS {col.REVISION},
    r.instrument_key              AS instrument,
    r.instrument_version          AS instrument_version,
    r.created_at                  AS created_at,
    r.submitted_at                AS submitted_at,
    chosen.answer_id              AS chosen_answer,
    chosen_answer.arm_id          AS chosen_arm,
    CAST(guess.value_num AS INTEGER) AS source_guess,
    s.phase                       AS {col.PHASE}
FROM current_ratings c
JOIN ratings r ON r.id = c.rating
JOIN assignments s ON s.id = c.assignment
LEFT JOIN presentations p ON p.id = r.presentation
LEFT JOIN answers an ON an.study = p.study AND an.answer_id = p.answer_id
LEFT JOIN presentations chosen
    ON r.presentation IS NULL AND chosen.assignment = s.id
    AND (chosen.label = r.value_text OR chosen.label = 'Response ' || r.value_text)
LEFT JOIN answers chosen_answer
    ON chosen_answer.study = chosen.study AND chosen_answer.answer_id = chosen.answer_id
LEFT JOIN (
    SELECT gc.assignment, gr.presentation, gr.value_num
    FROM current_ratings gc JOIN ratings gr ON gr.id = gc.rating
    WHERE gr.instrument_key = $guess_instrument AND gr.item_key = $guess_item
        AND gr.status = 'submitted'
) guess ON guess.assignment = s.id AND guess.presentation = r.presentation
WHERE s.study = $s AND r.status = 'submitted' AND s.phase <> 'calibration'
ORDER BY s.case_id, s.rater, r.item_key, s.phase, p.position
"""


@guarded
def export_ratings_long(
    store: Store,
    caller: Caller,
    study: str,
    *,
    write: Callable[[pl.DataFrame, str], None] | None = None,
    formats: Sequence[str] | None = None,
) -> pl.DataFrame:
    """One row per current submitted rating, in the long format analysis reads (audited read).

    Columns: study, case, arm, answer, rater, item, value (Float64, numeric values), value_text
    (text values, e.g. a chosen label), position, label, seconds, revision, instrument,
    instrument_version, created_at, submitted_at (UTC), chosen_answer and chosen_arm (for an
    assignment-level item whose value is a label shown: the answer and arm it names),
    value_label (the chosen option's label, where the item has options), source_guess (the
    rater's answer to the built-in ``source_guess`` item for the same answer shown: 1 an AI
    model, 2 a clinician, 0 don't know; null when not asked) and phase ("live", or "repeat" for
    a rater's second rating of a case after the protocol's washout: the pairs give intra-rater
    reliability; between-rater analyses use the live rows). For assignment-level items
    arm/answer/position/label/source_guess are null. Calibration ratings are no study data and
    are left out. ``study.exporting.BASE_COLUMNS`` describes each column. A study with a rubric
    item (criteria from the case) has one row per answer x criterion for it, value 1 (met) or 0
    (not met), and the columns criterion, criterion_text, points, criterion_tags (the
    criterion's and its case's tags, ``;``-separated) and criterion_unit (``answer:criterion``),
    null on other rows (``long_format.per_criterion``).

    A person may export only an unblinded study (``StateError`` before): the arms are the
    blinding's secret until then.

    ``write(frame, audit_head)``: writes the export (to a temporary file, renamed by the caller
    once this returns); called after the export's audit event is appended and before it commits,
    with the chain's head hash including that event, to be recorded in the file. If it raises,
    the event is rolled back: a failed export leaves no audit event. ``formats``: the file
    formats written, recorded in the event.
    """
    _require_exportable(store, caller, study)
    written = None if write is None else (lambda frame, head, seq: write(frame, head))
    return _export(store, caller, study, written, formats)


def _export(
    store: Store,
    caller: Caller,
    study: str,
    write: Callable[[pl.DataFrame, str, int], None] | None,
    formats: Sequence[str] | None,
    frame: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """``export_ratings_long``'s read, event and ``write(frame, head hash, head seq)`` (the
    caller checked the permission and the blinding rule). ``frame``: the export read already
    (so that what was analysed is what is written), else read here."""
    frame = _long_frame(store, caller, study) if frame is None else frame
    payload: dict[str, Any] = {"rows": frame.height}
    if formats is not None:
        payload["formats"] = list(formats)
    with store.transaction() as cur:
        seq = audit.append(
            cur,
            actor=caller.actor,
            kind=audit.RATINGS_EXPORT,
            object_type="study",
            object_id=study,
            study=study,
            payload=payload,
        )
        if write is not None:
            head_hash = cur.execute("SELECT hash FROM audit_events WHERE seq = ?", [seq]).fetchall()
            write(frame, head_hash[0][0], seq)
    return frame


def _require_exportable(store: Store, caller: Caller, study: str) -> str:
    """The study's status; ``StateError`` for a person before unblinding."""
    return require_unblinded(store, caller, study, "its ratings are exported with their arms")


def _long_frame(store: Store, caller: Caller, study: str) -> pl.DataFrame:
    frame = store.read(
        _EXPORT_SQL,
        {"s": study, "guess_instrument": GUESS_ITEM[0], "guess_item": GUESS_ITEM[1]},
    )
    labelled = with_value_labels(frame, _items(store, caller, study))
    tail = ["value_label", "source_guess", "phase"]
    order = [c for c in frame.columns if c not in tail] + tail
    # a rubric item's labels (one JSON object per answer): one row per criterion
    return per_criterion(store, study, labelled.select(order))


def _items(store: Store, caller: Caller, study: str) -> pl.DataFrame:
    """The study's items (``instrument_library.study_items``: whoever may export may view the study)."""
    from study.services import instrument_library

    return instrument_library.study_items(store, caller, study)


# --- the bundle: files, codebook, report, manifest --------------------------------------------

BUNDLE_FILES = (
    "codebook.md",
    "codebook.json",
    "results.csv",
    "results.json",
    "report.html",
    "manifest.json",
)
"""What a bundle holds besides ``ratings.<format>`` for each format."""

MANIFEST_PACKAGES = (
    "polars",
    "duckdb",
    "statsmodels",
    "scipy",
    "numpy",
    "pandas",
    "pyarrow",
    "krippendorff",
    "plotly",
    "pyreadstat",
    "streamlit",
)
"""Packages whose versions the manifest records (those that read, compute or write the files)."""


@guarded
def write_bundle(
    store: Store,
    caller: Caller,
    study: str,
    folder: str | Path,
    *,
    formats: Sequence[str] = FORMATS,
    raw_csv: bool = False,
    boot: int = 1000,
    seed: int | None = None,
) -> dict[str, Any]:
    """Write the export bundle into ``folder`` (an existing, empty folder); return the manifest.

    Files: ``ratings.<format>`` for each of ``formats`` (``study.exporting.FORMATS``: csv,
    parquet, dta, sav), ``codebook.md`` and ``codebook.json`` (every variable of those files,
    its type, values and labels, the items' wording and instrument versions), ``report.html``
    (``study.report``: design, flow, agreement, results with figures, deviations, TRIPOD-LLM
    items; one self-contained file) and ``manifest.json`` (package versions, protocol hash,
    seeds, the SHA-256 of every other file, the audit chain's head). One audited export
    (``ratings.export``, its formats recorded): the files are written before the event commits,
    so a failure leaves no event (files already written stay in ``folder``: write into a
    temporary folder and move it, as ``bundle_zip`` and the command line do).

    ``results.csv`` and ``results.json`` hold the results table (``analyses.RESULT_COLUMNS``),
    the same rows the report, the Analysis screen and ``python -m study results`` show
    (``exporting.results_csv`` / ``results_json``).

    The study's results are computed once before the export (``analyses.study_results``,
    ``boot`` replicates with ``seed``; by default the plan's seed, from the newest protocol's
    hash (``study.protocol.Plan.seed``), so that the figures are the Analysis screen's; a study
    without a locked protocol has no results and its report says so). The
    assignment seed appears in the manifest only once the study is unblinded; before that (the
    command line may export a blind study) only its commitment.
    ``raw_csv``: CSV cells as stored (default: formula-like cells get a leading ``'``).
    """
    folder = Path(folder)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise StudyError(
            f"Export formats are {', '.join(FORMATS)}; not {', '.join(map(repr, unknown)) or 'none'}."
        )
    if not folder.is_dir() or any(folder.iterdir()):
        raise StudyError(
            f"The bundle is written into an existing, empty folder; {folder} is not one."
        )
    status = _require_exportable(store, caller, study)
    facts = _report_facts(store, caller, study, status)
    ratings = _long_frame(store, caller, study)
    results = (
        analyses.study_results(store, caller, study, boot=boot, seed=seed)
        if facts["plan"] is not None
        else None
    )
    seed = results["plan"]["seed"] if results is not None else UNPLANNED_SEED
    table = results["results"] if results is not None else pl.DataFrame(schema=RESULT_SCHEMA)
    manifest: dict[str, Any] = {}

    def write(frame: pl.DataFrame, head: str, seq: int) -> None:
        items = facts["items"]
        written = []
        for fmt in formats:
            path = folder / f"ratings.{fmt}"
            exporting.write(frame, items, path, fmt, study=study, audit_head=head, raw_csv=raw_csv)
            written.append(path)
        book = exporting.codebook(
            frame, items, facts["instruments"], study=study, formats=list(formats), raw_csv=raw_csv
        )
        (folder / "codebook.json").write_text(
            json.dumps(book, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
        )
        (folder / "codebook.md").write_text(exporting.codebook_markdown(book), encoding="utf-8")
        (folder / "results.csv").write_text(exporting.results_csv(table), encoding="utf-8")
        (folder / "results.json").write_text(exporting.results_json(table), encoding="utf-8")
        html = report.render(
            {**facts, "ratings": frame, "results": results, "audit_head": head, "audit_seq": seq}
        )
        (folder / "report.html").write_text(html, encoding="utf-8")
        written += [
            folder / name for name in ("codebook.json", "codebook.md", "results.csv",
                                       "results.json", "report.html")
        ]  # fmt: skip
        manifest.update(
            _manifest(facts, study, head, seq, frame.height, list(formats), boot, seed, written)
        )
        (folder / "manifest.json").write_text(
            json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n",
            encoding="utf-8",
        )

    _export(store, caller, study, write, ["bundle", *formats], frame=ratings)
    return manifest


UNPLANNED_SEED = 20260101
"""The manifest's bootstrap seed for a study with no locked protocol (the operator's export;
nothing is analysed, so nothing used it)."""


@guarded
def bundle_zip(
    store: Store,
    caller: Caller,
    study: str,
    *,
    formats: Sequence[str] = FORMATS,
    raw_csv: bool = False,
    boot: int = 1000,
    seed: int | None = None,
) -> bytes:
    """The export bundle (``write_bundle``) as the bytes of one zip file, for a download.

    The zip holds the files at its top level: ``ratings.<format>`` for each format,
    ``codebook.md``, ``codebook.json``, ``report.html``, ``manifest.json``.
    """
    with tempfile.TemporaryDirectory(prefix="clinval-bundle-") as temp:
        folder = Path(temp) / "bundle"
        folder.mkdir()
        write_bundle(
            store, caller, study, folder, formats=formats, raw_csv=raw_csv, boot=boot, seed=seed
        )
        return exporting.zip_folder(folder)


def _manifest(
    facts: dict[str, Any],
    study: str,
    head: str,
    seq: int,
    rows: int,
    formats: list[str],
    boot: int,
    seed: int,
    written: list[Path],
) -> dict[str, Any]:
    protocol = facts["protocols"][-1] if facts["protocols"] else None
    return {
        "study": study,
        "status": facts["study"]["status"],
        "generated_at": utc_now().isoformat(timespec="seconds") + "Z",
        "generated_by": facts["actor"],
        "rows": rows,
        "formats": formats,
        "audit_chain_head": {"seq": seq, "hash": head},
        "protocol": None
        if protocol is None
        else {
            "version": protocol["version"],
            "content_hash": protocol["content_hash"],
            "versions": [
                {"version": p["version"], "content_hash": p["content_hash"]}
                for p in facts["protocols"]
            ],
        },
        "instruments": [
            {k: i[k] for k in ("key", "version", "content_hash")} for i in facts["instruments"]
        ],
        "seeds": {
            "assignment": facts["seed"],
            "analysis_bootstrap": {"seed": seed, "replicates": boot},
        },
        "software": {
            "python": platform.python_version(),
            "packages": {name: _version(name) for name in MANIFEST_PACKAGES},
        },
        "files": [
            {"name": path.name, "bytes": path.stat().st_size, "sha256": exporting.sha256_file(path)}
            for path in written
        ],
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _report_facts(store: Store, caller: Caller, study: str, status: str) -> dict[str, Any]:
    """Everything the report and manifest say about the study besides its ratings and results."""
    from study.services import content, design, rating_imports

    study_row = store.read("SELECT * FROM studies WHERE id = $s", {"s": study}).row(0, named=True)
    cur = store.cursor()
    try:
        plans = protocol.read_plans(cur, study)
    finally:
        cur.close()
    commitment = store.read("SELECT commitment FROM sealed_seeds WHERE study = $s", {"s": study})
    if commitment.height == 0:
        seed = {"sealed": False, "seed": None, "commitment": None, "note": "no seed was sealed"}
    elif status == "unblinded":
        seed = {
            "sealed": True,
            "seed": design.assignment_seed(store, caller, study),
            "commitment": commitment.item(0, 0),
            "note": "revealed at unblinding; check it against the commitment",
        }
    else:
        # the seed is a blinding secret until unblinding, whoever exports
        seed = {
            "sealed": True,
            "seed": None,
            "commitment": commitment.item(0, 0),
            "note": f"sealed until unblinding (the study is {status}); only its commitment is shown",
        }
    events = store.read(
        "SELECT seq, occurred_at, actor, action, payload FROM audit_events WHERE study = $s"
        " AND action IN ($lock, $persist, $rating, $closed, $unblinded) ORDER BY seq",
        {
            "s": study,
            "lock": audit.PROTOCOL_LOCK.name,
            "persist": audit.ASSIGNMENTS_PERSIST.name,
            "rating": audit.STUDY_RATING.name,
            "closed": audit.STUDY_CLOSED.name,
            "unblinded": audit.STUDY_UNBLINDED.name,
        },
    )
    lifecycle_events = [
        {**row, "payload": _public_payload(json.loads(row["payload"]))}
        for row in events.iter_rows(named=True)
    ]
    return {
        "study": study_row,
        "actor": caller.actor,
        "protocols": protocol.described(plans),
        "plan": plans[-1] if plans else None,
        "events": lifecycle_events,
        "seed": seed,
        "items": _items(store, caller, study),
        "instruments": store.read(_INSTRUMENTS_SQL, {"s": study}).to_dicts(),
        "arms": store.read(_ARMS_SQL, {"s": study}),
        "unknown_provenance": content.unknown_provenance(store, caller, study),
        "raters": store.read(_RATERS_SQL, {"s": study}),
        "flow": store.read(_FLOW_SQL, {"s": study}).row(0, named=True),
        "case_flags": store.read(_FLAGS_SQL, {"s": study}),
        "origin": rating_imports.ratings_origin(store, caller, study),
        "leak": _leak_figures(store, study),
    }


def _leak_figures(store: Store, study: str) -> dict[str, pl.DataFrame | None]:
    """The blinding leak report's figures for the report: ``arms``, one row per arm
    (``analysis.leakage.leak_report``: length, markdown, self-identifying phrases, sign-offs and
    the cross-validated AUC of length and format against the other arms), and ``pairs``, one
    row per pair of arms on the cases both answered (``analysis.leakage.pairwise_format_auc``),
    computed only with three arms or more (with two, the pair is the per-arm figure); either is
    None for a study without answers.

    The services ``design.leak_report`` and ``design.leak_pairs`` compute the same from the same
    rows, but they serve the Design screen before launch and are the coordinator's alone
    (``design_study``); the bundle is written by a statistician (after unblinding) or the
    operator. Rather than widen that permission, the report calls the pure functions those
    services call, on the same query (no order: the folds of the AUC follow the rows' order, so
    the figures match what the coordinator read on the Design screen). What it shows is the
    form of each arm's answers, aggregated, in a report that names the arms anyway."""
    from study.services.analyses import leak_report, pairwise_format_auc

    answers = store.read("SELECT arm_id, case_id, text FROM answers WHERE study = $s", {"s": study})
    if answers.height == 0:
        return {"arms": None, "pairs": None}
    arms = leak_report(answers.select("arm_id", "text"))
    pairs = pairwise_format_auc(answers) if arms.height >= 3 else None
    return {"arms": arms, "pairs": pairs}


def _public_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """An event's payload without a revealed seed or salt (the manifest says it when it may)."""
    return {k: v for k, v in payload.items() if k not in ("seed", "salt", "revealed", "sealed")}


_INSTRUMENTS_SQL = """
SELECT si.instrument_key AS key, si.instrument_version AS version, i.title, i.content_hash,
       coalesce(json_extract_string(i.definition, '$.citation'), '') AS citation,
       coalesce(json_extract_string(i.definition, '$.description'), '') AS description
FROM study_instruments si
JOIN instruments i ON i.key = si.instrument_key AND i.version = si.instrument_version
WHERE si.study = $s ORDER BY si.position
"""

_ARMS_SQL = """
SELECT r.arm_id, r.kind, r.label, r.model_name, r.model_version, r.author_role,
       count(a.answer_id) AS answers,
       min(a.generated_at) AS first_generated, max(a.generated_at) AS last_generated,
       count(DISTINCT a.prompt) AS prompts, count(DISTINCT a.system_prompt) AS system_prompts,
       count(DISTINCT CAST(a.parameters AS VARCHAR)) AS parameter_sets,
       min(a.prompt) AS example_prompt, min(a.system_prompt) AS example_system_prompt,
       min(CAST(a.parameters AS VARCHAR)) AS example_parameters,
       count(DISTINCT a.author_id) AS authors
FROM arms r LEFT JOIN answers a ON a.study = r.study AND a.arm_id = r.arm_id
WHERE r.study = $s
GROUP BY ALL ORDER BY r.arm_id
"""

_RATERS_SQL = """
SELECT s.rater, coalesce(u.specialty, '') AS specialty, count(*) AS assignments,
       count(*) FILTER (WHERE s.done) AS done
FROM assignments s JOIN users u ON u.id = s.rater
WHERE s.study = $s GROUP BY ALL ORDER BY s.rater
"""

_FLOW_SQL = """
SELECT
    (SELECT count(*) FROM cases WHERE study = $s) AS cases,
    (SELECT count(*) FROM answers WHERE study = $s) AS answers,
    (SELECT count(*) FROM assignments WHERE study = $s) AS assignments,
    (SELECT count(*) FROM assignments WHERE study = $s AND done) AS done,
    (SELECT count(DISTINCT case_id) FROM assignments WHERE study = $s) AS cases_assigned,
    (SELECT count(DISTINCT case_id) FROM assignments WHERE study = $s AND done) AS cases_rated,
    (SELECT count(DISTINCT rater) FROM assignments WHERE study = $s) AS raters_assigned,
    (SELECT count(DISTINCT rater) FROM assignments WHERE study = $s AND done) AS raters_rated,
    (SELECT count(*) FROM case_flags WHERE study = $s AND kind = 'skip') AS skipped,
    (SELECT count(*) FROM case_flags WHERE study = $s AND kind = 'flag') AS flagged,
    (SELECT min(n) FROM (SELECT count(*) AS n FROM assignments WHERE study = $s
        GROUP BY case_id)) AS fewest_raters_per_case,
    (SELECT max(n) FROM (SELECT count(*) AS n FROM assignments WHERE study = $s
        GROUP BY case_id)) AS most_raters_per_case
"""

_FLAGS_SQL = """
SELECT f.kind, s.case_id, s.rater, f.reason, f.created_at
FROM case_flags f JOIN assignments s ON s.id = f.assignment
WHERE f.study = $s ORDER BY f.kind, s.case_id, s.rater
"""


@guarded
def audit_head(store: Store, caller: Caller, study: str) -> dict[str, object]:
    """The audit chain's head: {"seq": events so far, "hash": the newest event's hash}.

    The hash to record outside the database (a ticket, an e-mail, a report): later,
    ``python -m study audit verify --expect HASH`` shows that the chain still holds it.
    """
    seq, head_hash = audit.head(store)
    return {"seq": seq, "hash": head_hash}
