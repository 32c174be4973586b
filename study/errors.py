"""Domain errors: each carries a message for the person in front of the screen.

Pages show a ``StudyError`` with ``st.error``; the CLIs print it to stderr and exit with code 2.
Anything that is not a ``StudyError`` is a bug and propagates with its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, stripped; its type name when the message is blank.

    Library errors (DuckDB, polars, pyarrow) often carry a multi-line message whose first line
    says what went wrong and whose rest is context or a traceback excerpt; one line is what a
    page or a shell can show.
    """
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def listed(
    shown: Sequence[str], total: int | None = None, *, sep: str = ", ", aside: bool = True
) -> str:
    """``shown`` joined by ``sep``, then "(and M more)" when ``total`` exceeds what is shown;
    ``aside=False`` leaves out the parentheses, for a list a message already encloses.

    The one way a message lists the first few of many things:

    >>> listed(["'c1'", "'c2'"], 5)
    "'c1', 'c2' (and 3 more)"
    >>> listed(["a", "b"], sep="; ")
    'a; b'
    >>> f"so do 4 other cases ({listed(['a', 'b'], 4, aside=False)})"
    'so do 4 other cases (a, b and 2 more)'
    """
    text = sep.join(shown)
    more = (total or 0) - len(shown)
    if more <= 0:
        return text
    return f"{text} (and {more:,} more)" if aside else f"{text} and {more:,} more"


class StudyError(Exception):
    """A user-facing failure: bad input, a forbidden action, a missing object."""


class NotFoundError(StudyError):
    """The named study, case, arm, user or instrument does not exist."""


class PermissionDenied(StudyError):
    """The actor's role does not allow the action."""


class StateError(StudyError):
    """The action is not allowed in the study's current lifecycle state."""


class ConfigError(StudyError):
    """A setting or a configuration file is invalid."""


class ConflictError(StudyError):
    """The object exists already with different content, or the action was already done."""


class InstrumentError(StudyError):
    """An instrument definition is invalid."""


_SUMMARY_PREFIX = "... and "


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input file, located as precisely as possible.

    ``row`` is 1-based over data rows (the header of a CSV is not counted); ``None`` when the
    problem concerns the whole file or a whole column. ``repeats`` is how many problems this line
    stands for: 1, or more for a summary line such as "... and 100 more rows with the same
    problem" that replaces a long run of identical problems.

    >>> print(Problem("cases.csv", 3, "question", "is empty"))
    cases.csv, row 3, column 'question': is empty
    >>> Problem.summary("cases.csv", "question", 100).repeats
    100
    """

    file: str
    row: int | None
    column: str | None
    reason: str
    repeats: int = 1

    @classmethod
    def summary(cls, file: str, column: str | None, n: int) -> Problem:
        """The line that stands for ``n`` further problems of one kind left unlisted."""
        return cls(file, None, column, f"{_SUMMARY_PREFIX}{n:,} more rows with the same problem", n)

    @property
    def is_summary(self) -> bool:
        return self.row is None and self.reason.startswith(_SUMMARY_PREFIX)

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.column is not None:
            where += f", column '{self.column}'"
        return f"{where}: {self.reason}"


class ValidationError(StudyError):
    """An input was rejected; ``problems`` lists every problem found, not just the first.

    The message lists every problem line (producers cap long runs of one kind with a summary
    line whose ``repeats`` counts what it stands for), headed by the total number of problems.
    """

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        self.total = sum(p.repeats for p in self.problems)
        shown = "\n".join(f"  - {p}" for p in self.problems)
        n = self.total
        super().__init__(
            f"{n:,} problem{'s' if n != 1 else ''} found; nothing was stored:\n{shown}"
        )
