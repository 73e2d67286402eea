"""Typing a message's columns: floats with NaN for missing, or the values of one categorical kind."""

from __future__ import annotations

import numpy as np

from detectors.kinds import BOOLEAN, CATEGORICAL, NUMERIC, kind_of

__all__ = ["BOOLEAN", "CATEGORICAL", "NUMERIC", "PREDICTION", "SCORE", "ValueOutOfRange", "categorical_column",
           "kind_of", "numeric_column"]

PREDICTION = "__prediction__"
SCORE = "__score__"
NUMBER_TYPES = (int, float)
_NUMBER_OR_NONE = {int, float, type(None)}


class ValueOutOfRange(ValueError):
    """A number beyond the monitor's ``max_abs_number`` reached a statistic (the worker dead-letters its
    event)."""


def numeric_column(column: list, max_abs_number: float) -> tuple[np.ndarray, list[int]]:
    """Floats with NaN for missing, and the positions of values of another type.

    >>> values, mismatched = numeric_column([1, None, "a", 2.5, True], 1e9)
    >>> values.tolist()[3], mismatched
    (2.5, [2, 4])
    """
    if set(map(type, column)) <= _NUMBER_OR_NONE:  # the common case, checked at C speed (None becomes NaN)
        clean, mismatched = column, []
    else:
        clean = [v if type(v) in NUMBER_TYPES else None for v in column]
        mismatched = [i for i, (v, c) in enumerate(zip(column, clean)) if c is None and v is not None]
    values = np.array(clean, dtype=np.float64)
    # checked here, vectorised, rather than per event; fmax passes over NaN (a missing value), where max would
    # return NaN and let every number of the column through
    if np.fmax.reduce(np.abs(values), initial=0.0) > max_abs_number:
        raise ValueOutOfRange(f"a number beyond ±{max_abs_number:g}")
    return values, mismatched


def categorical_column(column: list, kind: str) -> tuple[list, list[int]]:
    """The values of ``kind`` (None for the rest), and the positions of values of another type.

    >>> categorical_column(["a", 1, None, True], CATEGORICAL)
    (['a', None, None, None], [1, 3])
    """
    wanted = bool if kind == BOOLEAN else str
    clean = [v if type(v) is wanted else None for v in column]
    mismatched = [i for i, (v, c) in enumerate(zip(column, clean)) if c is None and v is not None]
    return clean, mismatched
