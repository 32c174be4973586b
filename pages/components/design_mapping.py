"""Design step 2, any table: upload it, map its columns to cases, arms and answers (on a form, from
a mapping kept with the study, or from a TOML file), preview what it becomes with the importer's
checks, and import it. The mapping is kept with the study (``content.import_table``)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
import streamlit as st

from pages.components.design_common import Draft, show_error
from study import importing, mapping
from study.errors import StudyError
from study.services import content

TABLE_TYPES = ["csv", "jsonl", "ndjson", "parquet", "xlsx", "xls"]
NONE = "(none)"
CASE_ID_FROM = {
    "question hash": "a hash of the question",
    "row number": "number the rows",
    "column": "a column",
}
LAYOUTS = {
    "wide": "wide: one row per case, one answer column per arm",
    "long": "long: one row per answer, an arm column and an answer column",
}
SOURCES = ("Map the columns here", "A mapping kept with this study", "Upload a mapping (TOML)")
PREVIEW_ROWS = 5


def mapped_import(draft: Draft) -> None:
    """Upload a table, choose or write its mapping, preview, import."""
    upload = st.file_uploader(
        "Table (.csv, .jsonl, .parquet or .xlsx) with any columns",
        type=TABLE_TYPES,
        key=draft.key("upload-table"),
    )
    if upload is None:
        return
    with tempfile.TemporaryDirectory(prefix="clinval-table-") as folder:
        path = Path(folder) / (Path(upload.name).name or "table.csv")
        path.write_bytes(upload.getvalue())
        try:
            table = mapping.read_table(path)
        except StudyError as error:
            show_error(error, key=draft.key("table-problems"))
            return
        st.caption(
            f"{path.name}: {table.height:,} rows; columns "
            + ", ".join(f"`{c}`" for c in table.columns if c != importing.ROW)
        )
        text = mapping_text(draft, table)
        if text is None:
            return
        with st.expander("The mapping (TOML), kept with the study when the table is imported"):
            st.code(text, language="toml")
        st.download_button(
            "Download the mapping",
            text,
            file_name=f"{Path(upload.name).stem}.toml",
            mime="application/toml",
            key=draft.key("map-download"),
        )
        preview_and_import(draft, path, text)


def mapping_text(draft: Draft, table: pl.DataFrame) -> str | None:
    """The mapping's TOML, from the form, a kept mapping or an uploaded file; None (with the
    reason on the screen) while it is incomplete or wrong."""
    kept = content.list_mappings(draft.store, draft.caller, draft.study)
    sources = SOURCES if kept.height else (SOURCES[0], SOURCES[2])
    source = st.radio("Mapping", sources, horizontal=True, key=draft.key("map-source"))
    if source == SOURCES[1]:
        name = st.selectbox(
            "Kept mapping", kept.get_column("name").to_list(), key=draft.key("map-kept")
        )
        return kept.filter(pl.col("name") == name).get_column("mapping")[0]
    if source == SOURCES[2]:
        file = st.file_uploader("Mapping file", type=["toml"], key=draft.key("map-file"))
        return None if file is None else file.getvalue().decode("utf-8", errors="replace")
    try:
        return mapping_form(draft, table)
    except StudyError as error:
        show_error(error, key=draft.key("map-form-problems"))
        return None


def mapping_form(draft: Draft, table: pl.DataFrame) -> str | None:
    """Which column is what, and each arm's kind and provenance."""
    key = draft.key
    columns = [c for c in table.columns if c != importing.ROW]
    optional = [NONE, *columns]
    st.markdown("**Cases**")
    left, right = st.columns(2)
    id_from = left.radio(
        "Case id", list(CASE_ID_FROM), format_func=CASE_ID_FROM.get, key=key("map-id-from")
    )
    id_column = (
        right.selectbox("Case id column", columns, key=key("map-id"))
        if id_from == "column"
        else None
    )
    question = left.selectbox(
        "Question", columns, index=guess(columns, "question"), key=key("map-question")
    )
    fields = {
        name: right.selectbox(name.capitalize(), optional, key=key(f"map-{name}"))
        for name in ("context", "specialty", "tags")
    }
    only_known = st.checkbox(
        "Only rows whose case is in the study already (the others are left out and counted)",
        key=key("map-only-known"),
    )
    st.markdown("**Answers**")
    layout = st.radio("Layout", list(LAYOUTS), format_func=LAYOUTS.get, key=key("map-layout"))
    arm_column = text_column = None
    if layout == "long":
        left, right = st.columns(2)
        arm_column = left.selectbox("Arm column", columns, key=key("map-arm-column"))
        text_column = right.selectbox("Answer column", columns, key=key("map-text-column"))
        sources = mapping.distinct_values(table, arm_column)
        st.caption(f"Arms: the values of `{arm_column}`, " + ", ".join(f"`{v}`" for v in sources))
    else:
        sources = st.multiselect(
            "Answer columns, one per arm (an empty cell is no answer)",
            [c for c in columns if c != question],
            key=key("map-answer-columns"),
        )
    if not sources:
        st.info("Choose the answers' columns to map the arms.")
        return None
    arms = {}
    for source in sources:
        arm_id, keys = arm_form(draft, source)
        keys["value" if layout == "long" else "column"] = source
        arms[arm_id] = keys
    return mapping.build_mapping(
        id_from=id_from,
        id_column=id_column,
        question=question,
        **{name: None if value == NONE else value for name, value in fields.items()},
        only_known=only_known,
        layout=layout,
        arm_column=arm_column,
        text_column=text_column,
        arms=arms,
    )


def arm_form(draft: Draft, source: str) -> tuple[str, dict[str, str]]:
    """One arm: its id, kind and provenance; "not recorded" where the source never said."""
    key = draft.key
    with st.container(border=True):
        st.markdown(f"Arm from `{source}`")
        first, second, third = st.columns(3)
        arm_id = first.text_input(
            "Arm id", value=mapping.suggest_arm_id(source), key=key(f"map-arm:{source}:id")
        )
        kind = second.selectbox("Kind", importing.ARM_KINDS, key=key(f"map-arm:{source}:kind"))
        label = third.text_input("Label (raters never see it)", key=key(f"map-arm:{source}:label"))
        fields = (
            ("model_name", "model_version", "generated_at", "prompt")
            if kind == "llm"
            else ("author_role", "author_id")
        )
        keys = {"kind": kind, "label": label}
        for column, field in zip(st.columns(len(fields)), fields, strict=True):
            keys[field] = column.text_input(
                field.replace("_", " ").capitalize(),
                value=importing.NOT_RECORDED,
                key=key(f"map-arm:{source}:{kind}:{field}"),
            )
    return arm_id, keys


def guess(columns: list[str], name: str) -> int:
    """The first column whose name contains ``name`` (case-insensitive), else the first."""
    return next((i for i, c in enumerate(columns) if name in c.lower()), 0)


def preview_and_import(draft: Draft, path: Path, text: str) -> None:
    """Preview (nothing stored) and import, each showing the importer's problems table."""
    key = draft.key
    name = st.text_input("Keep the mapping as", value=path.stem, key=key("map-name"))
    preview, store = st.columns(2)
    if preview.button("Preview", key=key("map-preview")):
        try:
            mapped = content.preview_table(draft.store, draft.caller, draft.study, path, text)
        except StudyError as error:
            show_error(error, key=key("map-problems"))
        else:
            show_preview(mapped)
    if store.button("Import the table", type="primary", key=key("map-import")):
        try:
            result = content.import_table(
                draft.store, draft.caller, draft.study, path, text, name=name
            )
        except StudyError as error:
            st.markdown(f"**{path.name} was rejected.**")
            show_error(error, key=key("map-problems"))
        else:
            st.success(str(result), icon=":material/check:")


def show_preview(mapped: mapping.MappedTable) -> None:
    """The counts (folded, left out) and the first rows as cases, arms and answers."""
    st.info(f"Preview, nothing stored. {mapped.summary()}.", icon=":material/visibility:")
    listed = pl.col("not_recorded").list.join(", ")
    if mapped.cases.height:
        st.markdown("**Cases**")
        st.dataframe(
            mapped.cases.head(PREVIEW_ROWS).select("case_id", "question", "specialty", "tags"),
            hide_index=True,
        )
    st.markdown("**Arms**")
    st.dataframe(
        mapped.arms.with_columns(listed).select(
            "arm_id", "kind", "label", "model_name", "model_version", "author_role", "not_recorded"
        ),
        hide_index=True,
    )
    st.markdown("**Answers**")
    st.dataframe(
        mapped.answers.head(PREVIEW_ROWS)
        .with_columns(listed)
        .select("case_id", "arm_id", "text", "author_role", "not_recorded"),
        hide_index=True,
    )
