"""A cache key for a study's results: it changes whenever the analysable data change."""

from __future__ import annotations

import hashlib
import json

from study import digests
from study.access import Caller, guarded
from study.protocol import newest_hash
from study.services._common import require_study
from study.store import Store


@guarded
def ratings_digest(store: Store, caller: Caller, study: str) -> str:
    """A digest that changes whenever the study's analysable data change: its status, its newest
    locked protocol, and the set of current submitted ratings (a new rating or a revision moves a
    current-rating pointer). A cache key for results (64 hex characters), not a tamper seal:
    ``audit verify`` is that. One aggregate query (``digests.CURRENT_RATINGS_SQL``), no rows
    read into Python."""
    cur = store.cursor()
    try:
        status = require_study(cur, study)["status"]
        counts = cur.execute(digests.CURRENT_RATINGS_SQL, {"study": study}).fetchall()[0]
        protocol = newest_hash(cur, study)
    finally:
        cur.close()
    text = json.dumps([study, status, protocol, *(str(c) for c in counts)])
    return hashlib.sha256(text.encode()).hexdigest()
