"""The Analysis screen on a study of 1,000,000 ratings: first render and cached re-render, against
the analysis call alone and against drawing the screen without analysis.

Issue 9: "first render and a cached re-render timed against the library call alone (target:
cached re-render at most 1.2x the time to draw the page without analysis; first render at most
1.5x the library's own analysis time)".

Database: ``benchmarks/bench_rating.py``'s builder (imported, not copied): one study with the
built-in ``ayers_harm`` instrument, ``--ratings`` rating rows (default 1,000,000: per rated case
five items for each of two responses and one pairwise choice) over ``--raters`` raters (300),
imported through ``rating_imports.import_ratings``; its locked plan is quality, margin 0.5
(method t by default, so bootstrap and mixed model are the sensitivity analyses; the mixed model
is not fitted above ``analyses.MIXED_MAX_LEVELS`` cases and raters, which this study exceeds). Then a statistician (a demo-issuer
person, so the picker ``?person=N`` signs them in) gets the study's statistician role, rating is
closed and the statistician unblinds it (the audited step). ``--db PATH`` keeps the database
for a later run (built once); ``--from PATH`` starts from a copy of a database the rating
benchmark built (with ``--db``: the copy is made there once, and reused by later runs).

Timed, in this process, after one untimed warm-up of the screen (the imports a served app pays
once), ``--rounds`` times (default 3; best of each printed with every round):

(L) the library call alone: ``analyses.study_results(store, statistician, study)``, the one
    call the page makes: the ratings read from DuckDB into polars and every analysis of the
    locked plan (agreement per item, non-inferiority and its sensitivity analyses, secondary
    endpoints, distributions, pairwise preference, subgroups);
(F) first render: the Analysis screen through Streamlit's AppTest (the real ``app.py``, signed
    in as the statistician, Streamlit's cache cleared), i.e. the ratings digest, the analysis
    above, and drawing every figure and table;
(C) cached re-render: the same session run again; the ratings digest is computed (one aggregate
    query) and the results come from the screen's cache (``pages/components/results_cache``);
(D) drawing the page without analysis: the same screen in another session whose
    ``analyses.study_results`` and ``analyses.ratings_digest`` are replaced by the results of
    (L) and a constant, timed on a re-run (as C): navigation, protocol, figures and tables only.

Ratios: ``first_ratio = F / L`` (target <= 1.5) and ``cached_ratio = C / D`` (target <= 1.2).
AppTest runs the script in this process with no browser and no websocket, so the times are the
server's work for a run; a browser would add the transfer and drawing of the figures on its side.

Usage: ``python benchmarks/bench_analysis_page.py [--quick] [--db PATH] [--from PATH]
[--ratings N] [--raters N] [--rounds N]``. The last line is ``first_ratio=<x> cached_ratio=<y>``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_rating  # noqa: E402  (the 1M-rating database builder)

STUDY = bench_rating.STUDY
STATISTICIAN = "bench-statistician"
ANALYZE = "pages/analyze.py"
APP = str(ROOT / "app.py")
TIMEOUT = 3600  # one AppTest run: the first render analyses a million ratings


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def prepare(db: Path, layout: bench_rating.Layout, folder: Path) -> None:
    """Build the rating benchmark's database (unless ``db`` exists), then add the statistician,
    close rating and unblind (once)."""
    from study.access import system_caller
    from study.services import lifecycle, people, studies
    from study.store import Store

    if not db.exists():
        log(f"building {db.name}: {layout.ratings:,} ratings over {layout.raters} raters ...")
        t = time.perf_counter()
        bench_rating.build_database(db, layout, folder)
        log(f"built in {time.perf_counter() - t:.1f} s")
    with Store(db) as store:
        builder = system_caller("demo")
        status = studies.get_study(store, builder, STUDY)["status"]
        if status == "unblinded":
            return
        people.ensure_user(
            store,
            builder,
            issuer=people.DEMO_ISSUER,
            subject=STATISTICIAN,
            email=f"{STATISTICIAN}@bench.clinval.example",
            display_name="Bench statistician (synthetic)",
            user_id=STATISTICIAN,
        )
        people.grant_role(store, builder, STUDY, STATISTICIAN, "statistician")
        if status == "rating":
            lifecycle.close_rating(store, builder, STUDY)
        lifecycle.unblind(store, people.demo_sign_in(store, STATISTICIAN), STUDY)
        log("statistician added, rating closed, study unblinded")


def copy_database(source: Path, db: Path) -> None:
    """Copy ``source`` and its audit key (``<source>.audit.key``: the chain's events are keyed
    with it) to ``db``; the unblinding that ``prepare`` records then changes the copy only."""
    key = source.with_name(source.name + ".audit.key")
    missing = [str(p) for p in (source, key) if not p.is_file()]
    if missing:
        print(
            f"--from: {' and '.join(missing)} not found; give a database built by "
            "benchmarks/bench_rating.py, with its .audit.key beside it",
            file=sys.stderr,
        )
        raise SystemExit(2)
    db.parent.mkdir(parents=True, exist_ok=True)
    log(f"copying {source} ({source.stat().st_size / 1e6:,.0f} MB) to {db} ...")
    shutil.copyfile(source, db)
    shutil.copyfile(key, db.with_name(db.name + ".audit.key"))
    os.chmod(db.with_name(db.name + ".audit.key"), 0o600)


def library_call(db: Path) -> tuple[float, dict]:
    """(seconds, results) of ``analyses.study_results`` as the statistician."""
    from study.services import analyses, people
    from study.store import Store

    with Store(db) as store:
        caller = people.demo_sign_in(store, STATISTICIAN)
        t = time.perf_counter()
        results = analyses.study_results(store, caller, STUDY)
        return time.perf_counter() - t, results


def picker_place(db: Path) -> str:
    from study.services import people
    from study.store import Store

    with Store(db) as store:
        ids = people.demo_people(store).get_column("id").to_list()
    return str(ids.index(STATISTICIAN) + 1)


def open_screen(place: str):
    """An AppTest session signed in as the statistician, on the overview (the default page)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["person"] = place
    at.run()
    return at


def timed_run(at, *, page: str | None = None) -> float:
    t = time.perf_counter()
    (at.switch_page(page) if page else at).run()
    elapsed = time.perf_counter() - t
    if at.exception:
        raise SystemExit(f"the page failed: {[e.value for e in at.exception]}")
    if "Primary result" not in [h.value for h in at.subheader]:
        raise SystemExit("the Analysis screen did not show its results")
    return elapsed


def render_times(place: str) -> tuple[float, float]:
    """(first render, cached re-render) of the Analysis screen, its results cache cleared."""
    from pages.components.results_cache import study_results

    study_results.clear()
    at = open_screen(place)
    first = timed_run(at, page=ANALYZE)
    cached = timed_run(at)
    return first, cached


def drawing_time(place: str, results: dict) -> float:
    """A re-run of the Analysis screen whose analysis and digest are given: drawing alone."""
    from study.services import analyses

    kept = analyses.study_results, analyses.ratings_digest
    analyses.study_results = lambda *args, **kwargs: results
    analyses.ratings_digest = lambda *args, **kwargs: "bench-drawing-only"
    try:
        at = open_screen(place)
        timed_run(at, page=ANALYZE)
        return timed_run(at)
    finally:
        analyses.study_results, analyses.ratings_digest = kept


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ratings", type=int, default=1_000_000, help="rating rows stored")
    parser.add_argument("--raters", type=int, default=300, help="raters holding them")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (L), (F, C), (D)")
    parser.add_argument("--db", type=Path, help="cache: reuse this database, or build it here")
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        help="start from a copy of this rating-benchmark database (and its .audit.key beside "
        "it), made at --db (or in a temporary folder) if that does not exist; the source is "
        "never opened or changed",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.ratings, args.raters, args.rounds = min(args.ratings, 22_000), 30, 1

    with tempfile.TemporaryDirectory(prefix="bench-analysis-page-") as tmp:
        folder = Path(tmp)
        db = args.db.expanduser().resolve() if args.db else folder / "bench.duckdb"
        os.environ["CLINVAL_AUDIT_KEY_FILE"] = str(db.with_name(db.name + ".audit.key"))
        os.environ["CLINVAL_DB"] = str(db)
        os.environ["CLINVAL_DEMO_ON_START"] = "0"
        if args.source is not None and not db.exists():
            copy_database(args.source.expanduser().resolve(), db)
        prepare(db, bench_rating.Layout(args.ratings, args.raters, 1), folder)
        place = picker_place(db)
        library, first, cached, drawing = [], [], [], []
        # warm-up, not timed: the first script run in a process imports plotly, the pages and
        # Streamlit's element code, which a served app pays once, not per first render
        drawing_time(place, library_call(db)[1])
        for n in range(1, args.rounds + 1):
            seconds, results = library_call(db)
            library.append(seconds)
            f, c = render_times(place)
            first.append(f)
            cached.append(c)
            drawing.append(drawing_time(place, results))
            log(
                f"round {n}: (L) library {library[-1]:.3f} s, (F) first render {f:.3f} s, "
                f"(C) cached re-render {c:.3f} s, (D) drawing only {drawing[-1]:.3f} s"
            )
        lib, fst, cch, drw = min(library), min(first), min(cached), min(drawing)
        first_ratio, cached_ratio = fst / lib, cch / drw
        log(
            f"best of {args.rounds}: (L) {lib:.3f} s, (F) {fst:.3f} s, (C) {cch:.3f} s, "
            f"(D) {drw:.3f} s"
        )
        log(
            f"first render / library = {first_ratio:.2f} (target <= 1.5: "
            f"{'met' if first_ratio <= 1.5 else 'NOT met'}); cached re-render / drawing = "
            f"{cached_ratio:.2f} (target <= 1.2: {'met' if cached_ratio <= 1.2 else 'NOT met'})"
        )
        print(f"first_ratio={first_ratio:.3f} cached_ratio={cached_ratio:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
