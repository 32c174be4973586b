"""Column names shared by every analysis function, defined once.

Input (long format, one row per rating): ``STUDY, CASE, ARM, ANSWER, RATER, ITEM, VALUE``,
plus ``POSITION``, ``LABEL``, ``SECONDS``, ``REVISION``, ``PHASE`` where the study records them. Functions
take the column names as keyword arguments defaulting to these, so any long-format file works.

Output: one row per estimate. Every result frame has at least ``RESULT_COLUMNS``; a statistic
adds its own parameters (``RATER_A``, ``MARGIN``, ``COMPETITOR``, ...) as further columns, and
frames from different statistics are combined with ``pl.concat(how="diagonal_relaxed")``.
"""

from __future__ import annotations

# --- long-format input -------------------------------------------------------------------------
STUDY = "study"
CASE = "case"
ARM = "arm"
ANSWER = "answer"
RATER = "rater"
ITEM = "item"
VALUE = "value"
POSITION = "position"
LABEL = "label"
SECONDS = "seconds"
REVISION = "revision"
PHASE = "phase"  # "live", or "repeat": a rater's second rating of a case, after a washout
UNIT = (
    "unit"  # what agreement statistics pivot on: one (answer, item), or any column the user names
)

# --- result frames -----------------------------------------------------------------------------
STATISTIC = "statistic"  # e.g. "krippendorff_alpha", "mean_difference"
VARIANT = "variant"  # e.g. "quadratic", "ICC2"; null where the statistic has one form
ESTIMATE = "estimate"
CI_LOW = "ci_low"
CI_HIGH = "ci_high"
CI_LEVEL = "ci_level"  # two-sided confidence level of [ci_low, ci_high], e.g. 0.95
P_VALUE = "p_value"  # null where undefined
METHOD = "method"  # how the estimate and interval were computed, in words a reader can cite
APPLICABLE = "applicable"  # False when the statistic does not apply; NOTE then says why
NOTE = "note"  # warnings (low prevalence, ...) or the reason a statistic does not apply
N_UNITS = "n_units"
N_RATERS = "n_raters"
N_VALUES = "n_values"  # pairable values / ratings used
LEVEL = "level"  # nominal | ordinal | interval | ratio

# Parameters and counts a statistic adds. A constant is named after its string (a count that is
# spelt "wins" is WINS, one spelt "n_guesses" is N_GUESSES): the strings are the output contract.
RATER_A = "rater_a"
RATER_B = "rater_b"
MCGRAW_WONG_NAME = "alternative_name"  # McGraw & Wong name of an ICC form, e.g. "ICC(A,1)"
STATISTIC_VALUE = "statistic_value"  # test statistic (z, F, t) where one exists
DF1 = "df1"
DF2 = "df2"
STD_ERROR = "std_error"
SEED = "seed"  # the bootstrap's seed, as given or drawn when none was given (None: a Generator)
ALTERNATIVE = "alternative"  # "two-sided" | "greater" | "less", for a statistic that reports it

# non-inferiority and equivalence
MARGIN = "margin"
DIRECTION = "direction"  # "higher" (higher is better) or "lower" (lower is better)
TEST_ARM = "test_arm"
REFERENCE_ARM = "reference_arm"
ALPHA = "alpha"  # one-sided alpha of a non-inferiority test
H0 = "h0"
H1 = "h1"
CONCLUSION = "conclusion"  # a sentence: whether non-inferiority / equivalence is shown
SHOWN = "shown"  # bool: non-inferiority (or equivalence) shown at ALPHA
P_ADJUSTED = "p_adjusted"  # Holm-adjusted p for secondary items
ROLE = "role"  # "primary" | "secondary"

# pairwise preference
COMPETITOR = "competitor"
OPPONENT = "opponent"
REFERENCE = "reference"  # Bradley-Terry: the competitor fixed at log-ability 0
WINS = "wins"
TIES = "ties"
LOSSES = "losses"
N_COMPARISONS = "n_comparisons"
WIN_PROBABILITY_VS_REFERENCE = "win_probability_vs_reference"
FIRST_WINS = "first_wins"  # position bias: decided comparisons won by the first-shown answer
SECOND_WINS = "second_wins"

# blinding
SOURCE = "source"  # the guess that is correct for an arm, e.g. "llm"
SOURCES = "sources"  # James' index: the two sources of its table, in table order
CORRECT = "correct"  # guesses of the right source
INCORRECT = "incorrect"
DONT_KNOW_COUNT = "dont_know_count"
N_GUESSES = "n_guesses"

RESULT_COLUMNS = (
    STATISTIC,
    VARIANT,
    ESTIMATE,
    CI_LOW,
    CI_HIGH,
    CI_LEVEL,
    P_VALUE,
    METHOD,
    APPLICABLE,
    NOTE,
)
