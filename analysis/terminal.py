"""Text made safe for a terminal: what both command lines (``python -m analysis`` and
``python -m study``) print passes through ``escape``.

Names and values come from files and databases that others wrote; printed raw, an ANSI escape in
a rater's name can clear the screen, recolour or hide lines, or rewrite what was printed before,
and direction-changing characters make one id read as another. Lives here, at the bottom, so that
both command lines use one definition (``analysis`` imports nothing of ``study``).
"""

from __future__ import annotations

INVISIBLE = frozenset(
    {
        0x061C,
        0xFEFF,
        *range(0x200B, 0x2010),
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    }
)
"""Zero-width and direction-changing characters: they make an id look like another."""


def escape(text: str) -> str:
    """``text`` safe for a terminal: control characters (ANSI escapes, carriage returns),
    invisible and direction-changing characters shown as ``\\xNN``/``\\uNNNN``; undecodable
    bytes from the shell as ``\\udcNN``. Newlines and tabs stay.

    >>> escape("\\x1b[31mRed\\x1b[0m \\u202eevil\\n")
    '\\\\x1b[31mRed\\\\x1b[0m \\\\u202eevil\\n'
    """
    out = []
    for c in text:
        o = ord(c)
        if c in "\n\t":
            out.append(c)
        elif o < 0x20 or 0x7F <= o < 0xA0:
            out.append(f"\\x{o:02x}")
        elif o in INVISIBLE or 0xD800 <= o <= 0xDFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(c)
    return "".join(out)
