"""Versioned rating instruments: items, their levels of measurement, and built-in templates.

An **instrument** is a versioned, hashed set of **items** that raters answer. Each item declares
its type, its level of measurement (which fixes the agreement statistics that apply), its
direction (which way is better, needed for non-inferiority) and its scope (rated once per answer
shown, or once per case). Nothing here touches storage or the UI: instruments are frozen values,
validated when they are built, and identified by the SHA-256 of their canonical JSON so a locked
protocol can name exactly the instrument it used.

Public API
----------
``Option(value, label)``; ``Item(key, prompt, type, level, required=True, direction="none",
options=(), scope="answer", help="", min=None, max=None)``; ``Instrument(key, version, title,
description, citation, items, synthetic=False)`` with ``to_dict()``, ``from_dict(data,
source=...)``, ``canonical_json()``, ``content_hash()``, ``item(key)``, ``keys``,
``items_for_scope(scope)``; ``Item.validate_value(value)`` checks one rating and returns it in
canonical form, ``Item.label_for(value)`` gives the label shown for a stored value.
``load_instrument(path)`` reads ``.toml`` or ``.json``; ``parse_instrument(text, suffix=...)``
does the same for uploaded bytes. ``BUILTIN`` (read-only mapping key -> Instrument),
``get_builtin(key)``, ``list_builtin()``, ``combine(key, title, *instruments)``.
``Rule(if_item, if_values, then_item, then_values)`` is a declarative consistency rule held in
``Instrument.rules``; ``check_consistency(instrument, values) -> list[str]`` lists the rules that
one set of ratings breaks.
Every invalid definition raises ``InstrumentError`` whose message lists each problem as
``<file>: item '<key>', field '<field>': <reason>`` (one line per problem, all problems at once).

Item types and what they require
--------------------------------
=================  ==================  ========================================================
type               level               options
=================  ==================  ========================================================
likert             ordinal | interval  >= 3, integer values, increasing (1..5, 0..10)
binary             nominal             exactly 2: values 0 then 1 (1 = the event, e.g. "Yes")
categorical        nominal | ordinal   >= 2 numeric codes; increasing if ordinal; a nominal
                                       categorical item has direction "none"
numeric            interval | ratio    none; optional ``min`` and ``max``
free_text          none                none; direction "none"
pairwise_choice    nominal             values drawn from "A", "B", "tie" (A and B required);
                                       scope "case" (compares the answers shown together)
rubric_criterion   nominal | ordinal   >= 2 numeric values = points awarded, increasing
                                       (0 not met / 1 met; 0 / 0.5 / 1 for partial credit);
                                       nominal only with exactly 2 options;
                   nominal             with ``criteria = "case"``: none (see below)
=================  ==================  ========================================================

A ``rubric_criterion`` item with ``criteria = "case"`` takes its criteria from the case (a
HealthBench-style rubric: each case has its own criteria with points, negative for behaviour to
avoid; see ``study.case_json``). It is nominal, scope ``answer`` and has no options: for each answer
shown, every criterion of the case is rated met (``True``) or not met (``False``), checked by
``Item.validate_criteria`` and stored as one JSON object per answer (``{"c1": true, "c2":
false}``). The built-in ``healthbench_rubric`` is such an item.

``direction`` is ``higher_is_better``, ``lower_is_better`` or ``none``. For a binary item it says
whether value 1 is good (``higher_is_better``) or bad (``lower_is_better``, e.g. "could cause
harm"). For a pairwise item it says what being chosen means: ``higher_is_better`` = the chosen
response is the better one ("which is better?"), ``lower_is_better`` = the chosen response is the
worse one ("which has greater harm?"). Pairwise values "A" and "B" are screen positions, matching
the neutral labels "Response A" / "Response B" of ``study.shuffle``; a pairwise item therefore
needs exactly two answers per case.

Custom instrument files (TOML; JSON has the same fields)
--------------------------------------------------------
::

    key = "discharge_rubric"          # lower-case letters, digits, _; starts with a letter
    version = "1.0"                   # "1", "1.2" or "1.2.3"; bump it on any change
    title = "Discharge advice rubric"
    description = "What the instrument measures, and where its wording comes from."
    citation = "Author A, et al. Journal. Year;Vol:pages. doi:..."   # optional
    synthetic = false                 # true for made-up example content

    [[items]]
    key = "red_flags"                 # <= 32 characters (Stata variable names)
    prompt = "Does the answer tell the patient which symptoms need urgent care?"
    type = "rubric_criterion"
    level = "nominal"                 # required except for free_text
    direction = "higher_is_better"    # default "none"
    scope = "answer"                  # default "answer"; "case" = once per assignment
    required = true                   # default true
    help = "Shown under the prompt."  # optional
    options = [
      { value = 0, label = "Not met" },
      { value = 1, label = "Met" },
    ]

    [[items]]
    key = "reading_minutes"
    prompt = "How many minutes would a patient need to read this answer?"
    type = "numeric"
    level = "ratio"
    min = 0
    max = 60

Consistency rules (optional) say which ratings of two items go together: "if ``if_item`` is one
of ``if_values`` then ``then_item`` must be one of ``then_values``". Both items take options and
have the same scope; every value must be an option value of its item. ::

    [[rules]]                         # could_cause_harm "No" -> harm_extent must be "No harm"
    if_item = "could_cause_harm"
    if_values = [0]
    then_item = "harm_extent"
    then_values = [0]

An instrument without rules has no ``rules`` field in ``to_dict()``, so adding the feature left
the hash of every rule-less instrument unchanged.

A JSON file holds the object that ``Instrument.to_dict()`` returns (``schema_version`` optional).
Unknown fields are errors (a misspelt ``levle`` is caught, not ignored); JSON NaN/Infinity and
duplicate keys are rejected. Values such as ``1.0`` are stored as ``1``, so the same instrument
written in TOML or JSON has the same hash.
"""

from __future__ import annotations

# the entry callers import from; each job lives in its own module below it
from study.builtin_instruments import (  # noqa: F401
    BUILTIN,
    TEMPLATE_DIR,
    combine,
    get_builtin,
    list_builtin,
)
from study.errors import InstrumentError  # noqa: F401
from study.instrument_definition import (  # noqa: F401
    SCHEMA_VERSION,
    Instrument,
    Rule,
    broken_rules,
    check_consistency,
    item_rows,
    rule_in_words,
    severe_values,
)
from study.instrument_files import MAX_FILE_BYTES, load_instrument, parse_instrument  # noqa: F401
from study.instrument_items import (  # noqa: F401
    CRITERIA_SOURCES,
    DIRECTIONS,
    ITEM_TYPES,
    LEVELS,
    LEVELS_BY_TYPE,
    PAIRWISE_VALUES,
    SCOPES,
    Item,
    Option,
)
