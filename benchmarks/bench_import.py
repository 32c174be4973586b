"""Import speed: reading + validating + storing cases and answers, against polars' bare read.

Generates 100,000 cases and 200,000 answers (two arms: one LLM with full provenance, one
clinician arm) as CSV and as Parquet in a temporary folder, then times, for each format:

- baseline: polars reading the same two files, nothing else (``pl.read_csv`` /
  ``pl.read_parquet`` of the cases file and the answers file);
- validate: ``study.importing.read_cases`` + ``read_answers`` (read + validate, no database);
- import: the full import into a fresh DuckDB file through ``study.services`` (create study,
  import arms, ``import_cases``, ``import_answers``, as the command line's operator), when
  ``study.services`` exists;
- peer (CSV): DuckDB's own loader doing the same storing work: a fresh file with the same
  migrated tables and constraints (keys, checks, foreign keys), the same study created through
  the service, then one ``INSERT ... SELECT ... FROM read_csv(...)`` per file (arms, cases,
  answers; tags split on ``;``, the answer id made as the importer makes it). It validates
  nothing beyond the table constraints and writes no audit event and no row digests.

Prints each time (best of ``--repeat`` runs) and ``ratio=<time/baseline>``. Targets: validate
<= 2x, import <= 3x the polars read, and the CSV import within 1.0x the peer: the last line
prints ``peer_ratio=<import / peer>`` (both timed in the same rounds, taking turns).
``--profile`` prints where the full import spends its time.

Usage: ``python benchmarks/bench_import.py [--cases 100000] [--repeat 3] [--profile]``
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import pstats
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from study import importing  # noqa: E402

# commas, quotes, semicolons and a formula-like word, so that the CSV needs real quoting
WORDS = ["patient", "pain", "dose", "mg", "daily", "chest", "fever", "cough", "history"]
WORDS += ["blood", "renal", "risk", "emergency", "follow-up", "sepsis", "ECG", "troponin"]
WORDS += ["pressure,", '"red flag"', "review;", "=score"]


def _text(rng: random.Random, n_words: int) -> str:
    words = rng.choices(WORDS, k=n_words)
    if rng.random() < 0.2:
        words.insert(rng.randrange(len(words)), "\n")
    return " ".join(words)


def make_data(n_cases: int, seed: int = 7) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Cases, arms and answers frames (all text) of the benchmark's shape."""
    rng = random.Random(seed)
    case_ids = [f"case-{i:06d}" for i in range(n_cases)]
    specialties = ["cardiology", "oncology", "general", "paediatrics", "nephrology"]
    cases = pl.DataFrame(
        {
            "case_id": case_ids,
            "question": [_text(rng, 35) for _ in case_ids],
            "context": [_text(rng, 50) if rng.random() < 0.7 else None for _ in case_ids],
            "specialty": [rng.choice(specialties) for _ in case_ids],
            "tags": [
                ";".join(rng.sample(["urgent", "chronic", "drug", "child"], 2)) for _ in case_ids
            ],
        }
    )
    arms = pl.DataFrame(
        {
            "arm_id": ["llm", "doctors"],
            "kind": ["llm", "clinician"],
            "label": ["Model arm", "Clinician arm"],
            "model_name": ["gpt-4o", None],
            "model_version": ["2024-08-06", None],
            "author_role": [None, "attending physician"],
        }
    )
    day = dt.date(2025, 3, 1)
    llm = pl.DataFrame(
        {
            "case_id": case_ids,
            "arm_id": ["llm"] * n_cases,
            "text": [_text(rng, 120) for _ in case_ids],
            "model_name": ["gpt-4o"] * n_cases,
            "model_version": ["2024-08-06"] * n_cases,
            "generated_at": [(day + dt.timedelta(days=i % 30)).isoformat() for i in range(n_cases)],
            "prompt": ["Answer the patient's question as a physician: {question}"] * n_cases,
            "system_prompt": ["You are a careful clinician."] * n_cases,
            "parameters": ['{"temperature": 0.2, "top_p": 1}'] * n_cases,
            "author_role": [None] * n_cases,
            "author_id": [None] * n_cases,
        },
        schema_overrides={"author_role": pl.String, "author_id": pl.String},
    )
    clinician = pl.DataFrame(
        {
            "case_id": case_ids,
            "arm_id": ["doctors"] * n_cases,
            "text": [_text(rng, 90) for _ in case_ids],
            "model_name": [None] * n_cases,
            "model_version": [None] * n_cases,
            "generated_at": [None] * n_cases,
            "prompt": [None] * n_cases,
            "system_prompt": [None] * n_cases,
            "parameters": [None] * n_cases,
            "author_role": [None] * n_cases,
            "author_id": [f"dr-{rng.randrange(40):02d}" for _ in case_ids],
        },
        schema_overrides={c: pl.String for c in importing.ANSWER_COLUMNS if c != "answer_id"},
    )
    answers = pl.concat([llm, clinician.select(llm.columns)], how="vertical")
    return cases, arms, answers


def best_of(
    repeat: int, *fns: Callable[[], object], setups: dict[int, Callable[[], object]] | None = None
) -> list[float]:
    """Best time of each function over ``repeat`` rounds, run in turn within each round so that
    load from other processes on the machine hits all of them alike. ``setups[i]``, when given,
    runs untimed before each call of ``fns[i]``, which then gets its result as argument."""
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            setup = (setups or {}).get(i)
            args = (setup(),) if setup is not None else ()
            start = time.perf_counter()
            fn(*args)
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    try:
        from study import services
    except ImportError:
        services = None

    cases, arms, answers = make_data(args.cases)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        arms.write_csv(folder / "arms.csv")
        paths = {}
        for fmt in ("csv", "parquet"):
            c, a = folder / f"cases.{fmt}", folder / f"answers.{fmt}"
            if fmt == "csv":
                cases.write_csv(c)
                answers.write_csv(a)
                read = pl.read_csv
            else:
                cases.write_parquet(c)
                answers.write_parquet(a)
                read = pl.read_parquet
            paths[fmt] = (c, a, read)
        sizes = ", ".join(
            f"{p.name} {p.stat().st_size / 1e6:.0f} MB" for fmt in paths for p in paths[fmt][:2]
        )
        print(f"{cases.height:,} cases, {answers.height:,} answers ({sizes})")
        study_arms = importing.read_arms(folder / "arms.csv")
        case_ids = set(cases["case_id"])
        max_bytes = 1 << 31

        for fmt, (c, a, read) in paths.items():

            def baseline(c: Path = c, a: Path = a, read: Callable = read) -> None:
                read(c)
                read(a)

            def validate(c: Path = c, a: Path = a) -> None:
                got = importing.read_cases(c, max_bytes=max_bytes)
                importing.read_answers(
                    a, known_case_ids=set(got["case_id"]), arms=study_arms, max_bytes=max_bytes
                )

            base, val = best_of(args.repeat, baseline, validate)
            print(f"[{fmt}] polars read (baseline): {base:.3f} s")
            print(f"[{fmt}] read+validate:          {val:.3f} s  ratio={val / base:.2f}")
            if services is None:
                print(f"[{fmt}] full import: study.services not available yet")
                continue

            template = _template(folder)
            fresh = partial(_fresh, template, folder)

            def full_import(db: Path, c: Path = c, a: Path = a) -> None:
                _full_import(db, folder / "arms.csv", c, a, max_bytes)

            def peer(db: Path, c: Path = c, a: Path = a) -> None:
                _peer_load(db, folder / "arms.csv", c, a)

            fns = (baseline, full_import, peer) if fmt == "csv" else (baseline, full_import)
            base2, imp, *peer_time = best_of(args.repeat, *fns, setups={1: fresh, 2: fresh})
            base = min(base, base2)
            print(
                f"[{fmt}] full import (DuckDB):   {imp:.3f} s  ratio={imp / base:.2f}"
                f"  (best baseline over both rounds {base:.3f} s)"
            )
            if peer_time:
                if STORED["import"] != STORED["peer"]:
                    sys.exit(f"the peer stored {STORED['peer']}, the import {STORED['import']}")
                print(f"[{fmt}] stored by both: %d arms, %d cases, %d answers" % STORED["peer"])
                csv_import, csv_peer = imp, peer_time[0]
                print(f"[{fmt}] peer: DuckDB read_csv into the same tables: {csv_peer:.3f} s")
            if args.profile:
                db = _fresh(_template(folder), folder)
                prof = cProfile.Profile()
                prof.runcall(_full_import, db, folder / "arms.csv", c, a, max_bytes)
                out = io.StringIO()
                pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(25)
                print(out.getvalue())
        del case_ids
    if services is not None:
        print(
            f"csv import={csv_import:.3f}s peer={csv_peer:.3f}s"
            f" peer_ratio={csv_import / csv_peer:.2f}"
        )


def _template(folder: Path) -> Path:
    """A migrated database file holding the benchmark's (empty) study, made once: both the
    import and its peer start from a copy, so neither is timed creating tables."""
    from study.access import system_caller
    from study.services import studies
    from study.store import Store

    path = folder / "template.duckdb"
    if not path.exists():
        store = Store(path)
        try:
            store.migrate()
            studies.create_study(
                store, system_caller("cli", "bench"), "Benchmark", study_id="bench"
            )
        finally:
            store.close()
    return path


def _fresh(template: Path, folder: Path, runs: list[int] = [0]) -> Path:  # noqa: B006
    """A new copy of ``template`` (untimed set-up of one timed run)."""
    runs[0] += 1
    db = folder / f"run-{runs[0]}.duckdb"
    shutil.copyfile(template, db)
    for side in template.parent.glob(template.name + ".*"):  # key or lock files beside it
        shutil.copyfile(side, db.with_name(db.name + side.name[len(template.name) :]))
    return db


def _peer_load(db: Path, arms: Path, cases: Path, answers: Path) -> None:
    """DuckDB's own loader storing the three CSV files in the same tables, with the same
    constraints, as ``_full_import`` stores them (the peer of ``peer_ratio``)."""
    from study.store import Store

    store = Store(db)
    try:
        read = "read_csv($path, header = true, all_varchar = true)"
        statements = (
            (
                arms,
                "INSERT INTO arms (study, arm_id, kind, label, model_name, model_version,"
                " author_role) SELECT 'bench', arm_id, kind, label, model_name, model_version,"
                f" author_role FROM {read}",
            ),
            (
                cases,
                "INSERT INTO cases (study, case_id, question, context, specialty, tags)"
                " SELECT 'bench', case_id, question, context, specialty,"
                f" coalesce(string_split(tags, ';'), []) FROM {read}",
            ),
            (
                answers,
                "INSERT INTO answers (study, answer_id, case_id, arm_id, text, model_name,"
                " model_version, generated_at, prompt, system_prompt, parameters, author_role,"
                " author_id) SELECT 'bench', case_id || ':' || arm_id, case_id, arm_id, text,"
                " model_name, model_version, generated_at, prompt, system_prompt, parameters,"
                f" author_role, author_id FROM {read}",
            ),
        )
        for path, sql in statements:
            with store.transaction() as cur:
                cur.execute(sql, {"path": str(path)})
        STORED["peer"] = _counts(store)
    finally:
        store.close()


def _full_import(db: Path, arms: Path, cases: Path, answers: Path, max_bytes: int):
    """One import as a coordinator runs it with ``python -m study import``: as the operator,
    into ``db`` (a copy of ``_template``)."""
    import os

    os.environ["CLINVAL_MAX_IMPORT_MB"] = str(max_bytes // (1024 * 1024))
    from study.access import system_caller
    from study.services import content
    from study.store import Store

    store = Store(db)
    try:
        caller = system_caller("cli", "bench")
        content.import_arms(store, caller, "bench", arms)
        content.import_cases(store, caller, "bench", cases)
        content.import_answers(store, caller, "bench", answers)
        STORED["import"] = _counts(store)
    finally:
        store.close()


STORED: dict[str, tuple[int, int, int]] = {}
"""(arms, cases, answers) stored by the last run of the import and of its peer."""


def _counts(store) -> tuple[int, int, int]:
    return tuple(
        int(store.read(f"SELECT count(*) AS n FROM {table} WHERE study = 'bench'").item())
        for table in ("arms", "cases", "answers")
    )


if __name__ == "__main__":
    main()
