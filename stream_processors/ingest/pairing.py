"""Request and response CloudEvents of one inference, paired by id in either order within a bounded wait.

The table holds at most ``max_waiting`` halves, and at most ``max_rows`` rows in them all, for at most
``wait_s`` seconds each. A half that finds its partner leaves with it; one that waits too long, or is
pushed out when the table is full (oldest first), is returned by ``expire``/``offer`` as unpaired so the
caller can count it: nothing leaves silently.
"""

from __future__ import annotations

from collections import OrderedDict

from stream_processors.ingest.cloudevents import CloudEvent

__all__ = ["PairingTable"]


class PairingTable:
    """
    Example:

    >>> from stream_processors.ingest.cloudevents import CloudEvent
    >>> req = CloudEvent("a", "request", "", None, "m", None, {"instances": [[1]]})
    >>> res = CloudEvent("a", "response", "", None, "m", None, {"predictions": [0]})
    >>> table = PairingTable(wait_s=60, max_waiting=10)
    >>> table.offer(res, now=0.0)
    (None, [])
    >>> pair, evicted = table.offer(req, now=1.0)
    >>> [half.half for half in pair], len(table)
    (['request', 'response'], 0)
    """

    def __init__(self, wait_s: float, max_waiting: int, max_rows: int | None = None) -> None:
        if wait_s <= 0 or max_waiting < 1 or (max_rows is not None and max_rows < 1):
            raise ValueError("wait_s must be positive, max_waiting and max_rows at least 1")
        self.wait_s = wait_s
        self.max_waiting = max_waiting
        self.max_rows = max_rows
        self._rows = 0
        self._waiting: OrderedDict[tuple[str | None, str], tuple[float, CloudEvent]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._waiting)

    @staticmethod
    def _key(ce: CloudEvent) -> tuple[str | None, str]:
        return ce.inferenceservicename, ce.id

    def offer(self, ce: CloudEvent, now: float) -> tuple[tuple[CloudEvent, CloudEvent] | None, list[CloudEvent]]:
        """((request, response) if ``ce`` completes a pair, else None; halves evicted to make room)."""
        key = self._key(ce)
        held = self._waiting.get(key)
        if held is not None and held[1].half != ce.half:
            partner = self._remove(key)
            return ((ce, partner) if ce.half == "request" else (partner, ce)), []
        # a new half, or a resent one (which replaces the copy held)
        if held is not None:
            self._remove(key)
        self._waiting[key] = (now, ce)
        self._rows += _rows(ce)
        evicted = []
        while len(self._waiting) > self.max_waiting or (self.max_rows is not None and self._rows > self.max_rows
                                                        and len(self._waiting) > 1):
            evicted.append(self._remove(next(iter(self._waiting))))
        return None, evicted

    def _remove(self, key: tuple[str | None, str]) -> CloudEvent:
        ce = self._waiting.pop(key)[1]
        self._rows -= _rows(ce)
        return ce

    def restore(self, ce: CloudEvent, now: float) -> list[CloudEvent]:
        """Put back a half whose pair could not be delivered, so a resent partner still finds it."""
        return self.offer(ce, now)[1]

    def expire(self, now: float) -> list[CloudEvent]:
        """Remove and return the halves that waited longer than ``wait_s``."""
        out = []
        while self._waiting:
            key, (since, ce) = next(iter(self._waiting.items()))
            if now - since <= self.wait_s:
                break
            out.append(self._remove(key))
        return out

    def waiting(self) -> dict[str, int]:
        counts = {"request": 0, "response": 0}
        for _, ce in self._waiting.values():
            counts[ce.half] += 1
        return counts


def _rows(ce: CloudEvent) -> int:
    return len(ce.data) if isinstance(ce.data, list) else 1
