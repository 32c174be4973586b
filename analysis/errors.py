"""The one error the statistics raise for bad input, with a message a person can act on.

``analysis`` is the library at the bottom: it knows nothing of the application that calls it.
``AnalysisError`` is a ``ValueError`` (callers that treat bad arguments generically still catch
it); the application catches it next to its own domain errors and shows the message as it is,
and ``python -m analysis`` prints it and exits with code 2. The message is one line that names
the column, the value or the count that is wrong, e.g.
``"column 'rater' not found; columns are: unit, value"``.
"""

from __future__ import annotations


class AnalysisError(ValueError):
    """The input cannot be analysed as asked: a missing column, too few raters or values, ..."""


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, stripped; its type name when the message is blank.

    Library errors (polars, pyarrow) often carry a multi-line message whose first line says what
    went wrong and whose rest is context; one line is what a shell can show.

    >>> first_line(ValueError("  bad file\\n  at byte 12"))
    'bad file'
    >>> first_line(KeyError())
    'KeyError'
    """
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
