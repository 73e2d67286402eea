"""Column kinds: how Driftline decides whether a column is numeric, categorical or boolean.

One rule, used by the model monitor (per value, the first non-null one fixes a column's kind) and by
profile building (a whole column): ``bool`` is boolean, ``int`` and ``float`` (never ``bool``) are numeric,
anything else is categorical.
"""

from __future__ import annotations

__all__ = ["BOOLEAN", "CATEGORICAL", "NUMERIC", "kind_of", "kind_of_values"]

NUMERIC, CATEGORICAL, BOOLEAN = "numeric", "categorical", "boolean"


def kind_of(value: object) -> str | None:
    """The kind of one value; None for a missing one.

    >>> [kind_of(v) for v in (None, True, 3, 2.5, "a")]
    [None, 'boolean', 'numeric', 'numeric', 'categorical']
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, (int, float)):
        return NUMERIC
    return CATEGORICAL


def kind_of_values(values: list) -> str:
    """The kind of a whole column: the kind all its present values share, else categorical (also when every
    value is missing).

    >>> [kind_of_values(c) for c in ([True, None], [1, 2.5], [1, "a"], [None], [True, 1])]
    ['boolean', 'numeric', 'categorical', 'categorical', 'categorical']
    """
    kinds = {kind_of(v) for v in values} - {None}
    return kinds.pop() if len(kinds) == 1 else CATEGORICAL
