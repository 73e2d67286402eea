"""Category frequencies of a categorical or boolean stream."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable

__all__ = ["CategoryFrequencies"]

OTHER = "__other__"


class CategoryFrequencies:
    """Counts per category, with a cap on how many distinct categories are kept.

    ``None`` marks a missing value. Categories past ``max_categories`` are
    counted together under ``"__other__"`` so that a column of unique ids cannot
    grow the state without bound. Booleans are kept as ``"true"``/``"false"``.

    Parameters
    ----------
    max_categories
        Distinct categories kept before the rest are pooled.

    Examples
    --------
    >>> f = CategoryFrequencies(max_categories=2)
    >>> f.update(["a", "b", "a", None, "c"])
    >>> f.count, f.missing, f.frequencies
    (4, 1, {'a': 2, 'b': 1, '__other__': 1})
    """

    def __init__(self, max_categories: int = 1000) -> None:
        if max_categories < 1:
            raise ValueError(f"max_categories must be at least 1, got {max_categories}")
        self.max_categories = max_categories
        self._counts: dict[str, int] = {}
        self._missing = 0

    @property
    def count(self) -> int:
        return sum(self._counts.values())

    @property
    def missing(self) -> int:
        return self._missing

    @property
    def frequencies(self) -> dict[str, int]:
        return dict(self._counts)

    def update(self, values: Iterable[object]) -> None:
        counts = self._counts
        for value, n in Counter(values).items():
            if value is None:
                self._missing += n
                continue
            key = category_key(value)
            if key in counts:
                counts[key] += n
            elif len(counts) < self.max_categories:
                counts[key] = n
            else:
                counts[OTHER] = counts.get(OTHER, 0) + n

    def __iadd__(self, other: CategoryFrequencies) -> CategoryFrequencies:
        self._missing += other._missing
        for key, n in other._counts.items():
            if key in self._counts or len(self._counts) < self.max_categories:
                self._counts[key] = self._counts.get(key, 0) + n
            else:
                self._counts[OTHER] = self._counts.get(OTHER, 0) + n
        return self

    def to_dict(self) -> dict:
        return {"max_categories": self.max_categories, "missing": self._missing, "counts": dict(self._counts)}

    @classmethod
    def from_dict(cls, state: dict) -> CategoryFrequencies:
        freq = cls(max_categories=int(state["max_categories"]))
        freq._missing = int(state["missing"])
        freq._counts = {str(k): int(v) for k, v in state["counts"].items()}
        return freq


LONG_CATEGORY = 128
"""Characters of a category kept as it is; a longer value is kept as its first 100 characters, an ellipsis and
a digest of the whole value (distinct values stay distinct), so that a feature's 1,000 kept categories stay
small whatever the values' lengths."""


def category_key(value: object) -> str:
    """The key a value is counted under.

    >>> category_key(True), category_key("rent"), category_key(3)
    ('true', 'rent', '3')
    >>> key = category_key("x" * 1000); len(key), key[98:104]
    (117, 'xx…44f')
    """
    if value is True:
        return "true"
    if value is False:
        return "false"
    text = str(value)
    if len(text) <= LONG_CATEGORY:
        return text
    return f"{text[:100]}…{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"


def category_keys(values: list) -> list:
    """``category_key`` of each value, None kept as None; a column of short strings (the common case) is its
    own keys, found at C speed.

    >>> category_keys(["rent", None, True, 3])
    ['rent', None, 'true', '3']
    """
    types = set(map(type, values))
    if types <= _STR_OR_NONE and max(map(len, filter(None, values)), default=0) <= LONG_CATEGORY:
        return values if type(values) is list else list(values)
    return [None if v is None else category_key(v) for v in values]


_STR_OR_NONE = {str, type(None)}
