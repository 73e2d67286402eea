"""Names from users (models, versions, features, categories, event ids) made safe to show.

A name can hold any character a producer sent. Printed raw, ESC sequences move
the cursor and rewrite lines a terminal shows, CR and LF start fake lines, and
characters XML does not allow make a report's SVG charts unreadable. Shown
through ``printable``, every character that is not printable appears as
its Python escape (``\\x1b``, ``\\n``, ``\\u202e``); printable text, any
script, is kept as it is. JSON output needs none of this: it escapes already.
"""

from __future__ import annotations

__all__ = ["printable", "shorten"]


def printable(value: object) -> str:
    """``str(value)`` with every non-printable character (C0 and C1 controls, DEL, line and paragraph separators,
    format characters such as bidi overrides, surrogates, unassigned code points) written as its escape.

    >>> printable("\\x1b[2Kx\\tDECISION\\n")
    '\\\\x1b[2Kx\\\\tDECISION\\\\n'
    >>> printable("Zürich 東京")
    'Zürich 東京'
    """
    text = str(value)
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when anything was cut.

    >>> shorten("abcdef", 4)
    'abc…'
    """
    return text if len(text) <= limit else text[:max(limit - 1, 0)] + "…"
