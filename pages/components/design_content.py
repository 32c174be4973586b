"""The Design screen's content steps (screen code): 2, uploading cases, arms and answers with
each arm's provenance; 3, the instrument, attached from the library or uploaded, and a preview
of exactly what a rater will see."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import polars as pl
import streamlit as st

from pages.components.design_common import Draft, show_error
from pages.components.design_mapping import mapped_import
from pages.components.rating_sheet import (
    keyed_fields,
    rating_sheet,
    sheet_data,
    show_case,
    submitted,
    typed_fields,
)
from pages.components.status import status_words
from study.access import allowed
from study.errors import StudyError
from study.instruments import Instrument, list_builtin, parse_instrument
from study.rendering import markdown_code, markdown_text
from study.services import content, design, instrument_library

UPLOADS = (
    ("arms", "Arms", content.import_arms, "one row per source of answers: arm_id, kind, label"),
    ("cases", "Cases", content.import_cases, "one row per case: case_id, question, context"),
    ("answers", "Answers", content.import_answers, "one row per answer (cases and arms first)"),
)
# (kind, title, import service, what a file holds), in the order they can be imported.
TABLE_TYPES = ["csv", "jsonl", "ndjson", "parquet"]


def step_content(draft: Draft) -> None:
    """Step 2: three uploads, each imported all-or-nothing, then what is stored."""
    st.caption(
        "Import arms and cases first, then answers. A rejected file stores nothing: its full "
        "report lists every problem with its row and column. Importing a file again skips the "
        "rows stored already."
    )
    if draft.editable:
        for kind, title, importer, holds in UPLOADS:
            with st.container(border=True):
                upload = st.file_uploader(
                    f"{title} file ({holds})", type=TABLE_TYPES, key=draft.key(f"upload-{kind}")
                )
                if st.button(
                    f"Import {kind}", key=draft.key(f"import-{kind}"), disabled=upload is None
                ):
                    import_upload(draft, kind, importer, upload)
                # each file's confirmation stays under its own upload: the next import's rerun
                # used to leave only the last one on the screen
                if done := st.session_state.get(draft.key(f"imported-{kind}")):
                    st.success(done, icon=":material/check:")
        with st.container(border=True):
            st.markdown("**Any table, by mapping its columns** (cases, arms and answers at once)")
            mapped_import(draft)
    else:
        st.info(
            f"The study is {status_words(draft.status)}: its cases, arms and answers no longer change."
        )
    stored(draft)


def import_upload(draft: Draft, kind: str, importer, upload) -> None:
    """Write the upload to a temporary file under its own name (the report names that file and
    the importer reads the format from its suffix) and import it."""
    with tempfile.TemporaryDirectory(prefix="clinval-upload-") as folder:
        path = Path(folder) / (Path(upload.name).name or f"{kind}.csv")
        path.write_bytes(upload.getvalue())
        try:
            result = importer(draft.store, draft.caller, draft.study, path)
        except StudyError as error:
            st.markdown(f"**{markdown_text(path.name)} was rejected.**")
            show_error(error, key=draft.key(f"problems-{kind}"))
            return
    st.session_state[draft.key(f"imported-{kind}")] = (
        f"{markdown_text(path.name)}: {markdown_text(result)}"
    )


def stored(draft: Draft) -> None:
    """What the study holds: counts, each arm's coverage and provenance, what was never
    recorded."""
    cases = content.list_cases(draft.store, draft.caller, draft.study)
    coverage = design.arm_coverage(draft.store, draft.caller, draft.study)
    answers = int(coverage.get_column("answers").sum() or 0) if coverage.height else 0
    first, second, third = st.columns(3)
    first.metric("Cases", f"{cases.height:,}")
    second.metric("Arms", f"{coverage.height:,}")
    third.metric("Answers", f"{answers:,}")
    if not coverage.height:
        return
    st.markdown("**Arms and their provenance**")
    st.dataframe(
        provenance(draft, coverage),
        hide_index=True,
        key=draft.key("provenance"),
        column_config={
            "arm_id": "Arm",
            "kind": "Kind",
            "label": "Label",
            "model_name": "Model",
            "model_version": "Version",
            "generated": "Generated",
            "prompts": "Prompt",
            "answers": st.column_config.TextColumn("Cases answered"),
            "not_recorded": st.column_config.TextColumn("Not recorded", width="medium"),
        },
    )
    # One warning per field, naming its arms: third-party data leave the same fields unknown
    # for every model (K-QA: three fields for each of four arms, twelve warnings otherwise).
    unknown = content.unknown_provenance(draft.store, draft.caller, draft.study)
    for (field,), rows in unknown.group_by("field", maintain_order=True):
        arms = ", ".join(
            f"**{markdown_text(row['arm_id'])}**"
            + ("" if row["level"] == "arm" else f" ({row['answers']:,} of its answers)")
            for row in rows.iter_rows(named=True)
        )
        st.warning(
            f"`{field}` not recorded for {arms}. {rows.get_column('consequence')[0].capitalize()}.",
            icon=":material/help:",
        )


def provenance(draft: Draft, coverage: pl.DataFrame) -> pl.DataFrame:
    """One row per arm: its own fields, the dates and prompts of its answers, its coverage, and
    the provenance fields it never recorded."""
    arms = content.list_arms(draft.store, draft.caller, draft.study)
    if allowed(draft.store, draft.caller, "view_answer_arms", study=draft.study):
        answers = content.list_answers(draft.store, draft.caller, draft.study)
    else:
        # blind (study.access.BLIND_STATUSES): answers beside their arms would let the safety
        # queue's answer text be joined to an arm; their dates and prompts show as a dash
        answers = pl.DataFrame(schema=ANSWER_PROVENANCE)
    per_arm = answers.group_by("arm_id").agg(
        pl.col("model_name").drop_nulls().first().alias("answer_model"),
        pl.col("model_version").drop_nulls().first().alias("answer_version"),
        pl.col("generated_at").drop_nulls().min().alias("from"),
        pl.col("generated_at").drop_nulls().max().alias("to"),
        pl.col("prompt").drop_nulls().n_unique().alias("n_prompts"),
        pl.col("prompt").drop_nulls().first().alias("prompt"),
    )
    unknown = (
        content.unknown_provenance(draft.store, draft.caller, draft.study)
        .group_by("arm_id")
        .agg(pl.col("field").unique().sort().str.join(", ").alias("not_recorded"))
    )
    table = (
        arms.join(per_arm, on="arm_id", how="left")
        .join(coverage.select("arm_id", "answers", "cases"), on="arm_id", how="left")
        .join(unknown, on="arm_id", how="left")
    )
    return table.select(
        "arm_id",
        "kind",
        "label",
        # a clinician arm has no model: a dash, as for its dates and prompts
        pl.coalesce("model_name", "answer_model", pl.lit("—")).alias("model_name"),
        pl.coalesce("model_version", "answer_version", pl.lit("—")).alias("model_version"),
        pl.when(pl.col("from").is_null())
        .then(pl.lit("—"))
        .when(pl.col("from") == pl.col("to"))
        .then(pl.col("from").cast(pl.String))
        .otherwise(pl.format("{} to {}", "from", "to"))
        .alias("generated"),
        pl.when(pl.col("n_prompts").fill_null(0) == 0)
        .then(pl.lit("—"))
        .when(pl.col("n_prompts") == 1)
        .then(pl.col("prompt"))
        .otherwise(pl.format("{} prompts, e.g. {}", "n_prompts", "prompt"))
        .alias("prompts"),
        pl.format("{} of {}", "answers", "cases").alias("answers"),
        pl.col("not_recorded").fill_null(""),
    )


# --- step 3: the instrument ------------------------------------------------------------------


def step_instrument(draft: Draft) -> None:
    """Step 3: what is attached, attaching a built-in or an uploaded instrument, the preview."""
    attached = instrument_library.study_instruments(draft.store, draft.caller, draft.study)
    if attached:
        st.markdown(
            "**Attached:** "
            + "; ".join(
                f"{markdown_text(i.title)} ({markdown_code(i.key)} {markdown_text(i.version)}, "
                f"{len(i.items)} items)"
                for i in attached
            )
        )
    else:
        st.info("No instrument attached yet: choose a built-in one or upload your own.")
    if draft.editable:
        library, custom = st.tabs(["Built-in instruments", "Upload a custom instrument"])
        with library:
            builtin = {i.key: i for i in list_builtin()}
            key = st.selectbox(
                "Instrument",
                list(builtin),
                format_func=lambda k: f"{builtin[k].title} ({k} {builtin[k].version})",
                key=draft.key("builtin"),
            )
            st.caption(builtin[key].description.strip())
            items_table(builtin[key], key=draft.key("builtin-items"))
            if st.button("Attach this instrument", key=draft.key("attach-builtin")):
                attach(draft, builtin[key])
        with custom:
            upload = st.file_uploader(
                "Instrument file (.toml or .json, as data/instruments/example_custom.toml)",
                type=["toml", "json"],
                key=draft.key("upload-instrument"),
            )
            if upload is not None:
                try:
                    instrument = parse_instrument(
                        upload.getvalue(), suffix=Path(upload.name).suffix, source=upload.name
                    )
                except StudyError as error:
                    show_error(error, key=draft.key("instrument-problems"))
                else:
                    st.markdown(
                        f"**{markdown_text(instrument.title)}** "
                        f"({markdown_code(instrument.key)} {markdown_text(instrument.version)})"
                    )
                    items_table(instrument, key=draft.key("custom-items"))
                    if st.button("Add and attach this instrument", key=draft.key("attach-custom")):
                        attach(draft, instrument)
    if instrument_library.study_instruments(draft.store, draft.caller, draft.study):
        preview(draft)


def items_table(instrument: Instrument, *, key: str) -> None:
    st.dataframe(
        pl.DataFrame(
            [
                {
                    "item": item.key,
                    "prompt": item.prompt,
                    "type": item.type,
                    "level": item.level,
                    "scope": item.scope,
                    "options": ", ".join(f"{o.value} {o.label}" for o in item.options),
                }
                for item in instrument.items
            ]
        ),
        hide_index=True,
        key=key,
    )


def attach(draft: Draft, instrument: Instrument) -> None:
    """Store the instrument in the library (a no-op when stored with the same content) and
    attach it to the draft."""
    try:
        key, version = instrument_library.add_instrument(draft.store, draft.caller, instrument)
        instrument_library.attach_instrument(draft.store, draft.caller, draft.study, key, version)
    except StudyError as error:
        show_error(error, key=draft.key("attach-problems"))
    else:
        # run again, so that what is attached (and the step's mark) shows it
        st.session_state["design_flash"] = f"Instrument {key} {version} attached."
        st.rerun()


# The columns of content.list_answers that the provenance table reads (empty while blind).
ANSWER_PROVENANCE = {
    "arm_id": pl.String,
    "model_name": pl.String,
    "model_version": pl.String,
    "generated_at": pl.String,
    "prompt": pl.String,
}

PREVIEW_KEY = "design-preview-sheet"


def preview(draft: Draft) -> None:
    """A sample case exactly as a rater will see it: the case, the responses under their
    neutral labels and the rating sheet; keys work, and nothing is stored."""
    st.subheader("Preview: what a rater sees", anchor=False)
    cases = content.list_cases(draft.store, draft.caller, draft.study).get_column("case_id")
    if not cases.len():
        st.caption("Import cases and answers to preview a case.")
        return
    if not allowed(draft.store, draft.caller, "view_answer_arms", study=draft.study):
        st.caption(
            f"The study is {status_words(draft.status)}: while it may hold ratings nobody has unblinded, no "
            "answer is shown beside its arm, so the preview waits for unblinding."
        )
        return
    case_id = st.selectbox("Sample case", cases.to_list(), key=draft.key("preview-case"))
    try:
        view = design.preview_view(
            draft.store,
            draft.caller,
            draft.study,
            case_id=case_id,
            mode=draft.settings["mode"],
            display=draft.settings["display"],
        )
    except StudyError as error:
        show_error(error, key=draft.key("preview-problems"))
        return
    st.caption(
        f"Screen of a {draft.settings['mode'].replace('_', ' ')} design (step 4). Behind the "
        "labels, for you only: "
        + ", ".join(f"{label} = {markdown_text(arm)}" for label, arm in view["arms"].items())
        + ". A rater's own screens put the answers in the order the design draws."
    )
    items = [
        json.loads(d)
        for d in instrument_library.study_items(draft.store, draft.caller, draft.study).get_column(
            "definition"
        )
    ]
    keyed = [item for item in items if item["type"] != "free_text"]
    typed = [item for item in items if item["type"] == "free_text"]
    state = st.session_state.setdefault(draft.key("preview-state"), {"attempt": 0})
    with st.container(border=True):
        show_case(view)
        st.subheader("Your rating", anchor=False)
        rating_sheet(
            sheet_data(
                view,
                keyed_fields(view, keyed),
                typed_fields(view, typed),
                token=f"preview-{draft.study}-{case_id}",
                attempt=state["attempt"],
                revising=False,
                problems=state.get("problems", {}),
                submit_label="Submit (preview: nothing is stored)",
                keys_help="Keys: digits pick an option, A / B / T pick a response or a tie, "
                "Backspace goes back, Enter submits.",
            ),
            lambda: tried(state),
            key=PREVIEW_KEY,
        )


def tried(state: dict) -> None:
    """A preview's submission: nothing is stored; the sheet is handed back, saying so."""
    if submitted(PREVIEW_KEY) is None:
        return
    state["attempt"] += 1
    state["problems"] = {"sheet": "Preview: this is what a rater submits; nothing was stored."}
