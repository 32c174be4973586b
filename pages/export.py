"""Export: the study's ratings in every format, the codebook, the report and the manifest.

For the statistician (and admins). A person exports only after the audited unblinding step
(the arms are the blinding's secret until then; ``exports`` refuses before it). The bundle is
written once per press of "Prepare", into a temporary folder, and each file is then offered for
download, with the whole bundle as one zip. Every preparation is one audited export event.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from pages.components.handover import store_and_caller
from pages.components.plain import plain
from pages.components.study_picker import pick_study
from study import exporting
from study.errors import StateError, StudyError
from study.services import exports

store, caller = store_and_caller()

st.title("Export")

study_id, _ = pick_study(
    store,
    caller,
    "export",
    key="export_study",
    none="You have no study to export: exports are for a study's statistician.",
)

DESCRIPTIONS = {
    "ratings.csv": "Ratings, long format (CSV, UTF-8)",
    "ratings.parquet": "Ratings, long format (Parquet)",
    "ratings.dta": "Ratings for Stata 14+ (variable and value labels)",
    "ratings.sav": "Ratings for SPSS (variable and value labels, measurement levels)",
    "codebook.md": "Codebook (Markdown): every variable, its values and labels, item wording",
    "codebook.json": "Codebook (JSON)",
    "report.html": "Report (one HTML file, opens offline): design, flow, agreement, results, "
    "deviations, TRIPOD-LLM items",
    "manifest.json": "Reproducibility manifest: package versions, protocol hash, seeds, file "
    "digests, audit chain head",
}
MEDIA = {
    ".csv": "text/csv",
    ".parquet": "application/vnd.apache.parquet",
    ".dta": "application/x-stata-dta",
    ".sav": "application/x-spss-sav",
    ".md": "text/markdown",
    ".json": "application/json",
    ".html": "text/html",
    ".zip": "application/zip",
}


def prepare(study: str, formats: list[str], raw_csv: bool) -> None:
    """Write the bundle (one audited export) and keep its files' bytes for the downloads."""
    with tempfile.TemporaryDirectory(prefix="clinval-export-") as temp:
        folder = Path(temp) / "bundle"
        folder.mkdir()
        manifest = exports.write_bundle(
            store, caller, study, folder, formats=formats, raw_csv=raw_csv
        )
        files = {path.name: path.read_bytes() for path in sorted(folder.iterdir())}
        files[f"{study}-bundle.zip"] = exporting.zip_folder(folder)
    st.session_state["export_files"] = {"study": study, "files": files, "manifest": manifest}


with st.form("export_form"):
    formats = st.multiselect(
        "Formats of the ratings file",
        list(exporting.FORMATS),
        default=list(exporting.FORMATS),
        help="The codebook, the report and the manifest are always included.",
    )
    raw_csv = st.checkbox(
        "CSV cells exactly as stored",
        help="By default a cell that a spreadsheet would run as a formula (=, +, -, @) gets a "
        "leading apostrophe; tick this to keep the text as stored.",
    )
    go = st.form_submit_button("Prepare the exports", type="primary")

if go:
    if not formats:
        st.error("Pick at least one format for the ratings file.")
    else:
        try:
            with st.spinner("Running the planned analyses and writing the files…", show_time=True):
                prepare(study_id, formats, raw_csv)
        except StateError as error:
            st.info(
                f"{error} Unblind the study on the Analysis page first: before that, the "
                "arms may not leave Clinval."
            )
        except StudyError as error:
            st.error(plain(error))

prepared = st.session_state.get("export_files")
if prepared and prepared["study"] == study_id:
    files = prepared["files"]
    head = prepared["manifest"].get("audit_chain_head", {})
    st.success(
        f"Prepared {len(files) - 1} files"
        + (f"; audit chain head {str(head.get('hash', ''))[:12]}…" if head else "")
        + ". Each preparation is recorded in the audit trail."
    )
    bundle = f"{study_id}-bundle.zip"
    st.download_button(
        "Download everything (zip)",
        files[bundle],
        file_name=bundle,
        mime=MEDIA[".zip"],
        type="primary",
        icon=":material/folder_zip:",
        on_click="ignore",
    )
    for name, data in files.items():
        if name == bundle:
            continue
        left, right = st.columns([3, 1], vertical_alignment="center")
        left.markdown(f"**{name}** · {len(data) / 1024:,.0f} KB  \n{DESCRIPTIONS.get(name, '')}")
        right.download_button(
            "Download",
            data,
            file_name=f"{study_id}-{name}",
            mime=MEDIA.get(Path(name).suffix, "application/octet-stream"),
            key=f"download-{name}",
            on_click="ignore",
        )
