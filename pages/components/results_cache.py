"""The Analysis screen's results, cached per study and ratings digest (screen code).

A resource cache, not a data cache: the results hold frames of tens of thousands of rows (the
per-pair kappas of 300 raters make ~45,000 rows per item), and ``st.cache_data`` unpickled a fresh
copy of them on every rerun (about a second on a million ratings). The screens never mutate what
they are given, so one shared copy per (study, digest) is safe. The key holds no person: the page
reaches this only after its guarded calls (``ratings_digest`` among them) accepted the caller.
"""

from __future__ import annotations

import streamlit as st

from study.access import Caller
from study.services import analyses
from study.store import Store


@st.cache_resource(show_spinner="Analysing the ratings…", max_entries=4)
def study_results(_store: Store, _caller: Caller, study: str, digest: str) -> dict:
    """``analyses.study_results`` for ``study``; ``digest`` (``analyses.ratings_digest``) is the
    cache key, so the results are recomputed only when the ratings, status or protocol change.
    Clear with ``study_results.clear()``."""
    del digest
    return analyses.study_results(_store, _caller, study)
