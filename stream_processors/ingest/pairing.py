"""Request and response CloudEvents of one inference, paired by id in either order within a bounded wait.

The table holds at most ``max_waiting`` halves, at most ``max_rows`` rows and at most ``max_bytes`` bytes
(the sizes of their HTTP bodies, ``CloudEvent.size``) in them all, for at most ``wait_s`` seconds each. A
half that finds its partner leaves with it; one that waits too long, is pushed out when the table is full
(oldest first; the newest half always stays), or is replaced by a resend of the same half (same
InferenceService, ``ce-id`` and type), is returned by ``expire``/``offer`` as unpaired so the caller can
count it: nothing leaves silently.
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

    def __init__(self, wait_s: float, max_waiting: int, max_rows: int | None = None,
                 max_bytes: int | None = None) -> None:
        if wait_s <= 0 or max_waiting < 1 or any(m is not None and m < 1 for m in (max_rows, max_bytes)):
            raise ValueError("wait_s must be positive, max_waiting, max_rows and max_bytes at least 1")
        self.wait_s = wait_s
        self.max_waiting = max_waiting
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self._rows = 0
        self.bytes = 0
        """Bytes of the halves held."""
        self._waiting: OrderedDict[tuple[str | None, str], tuple[float, CloudEvent]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._waiting)

    @staticmethod
    def _key(ce: CloudEvent) -> tuple[str | None, str]:
        return ce.inferenceservicename, ce.id

    def offer(self, ce: CloudEvent, now: float) -> tuple[tuple[CloudEvent, CloudEvent] | None, list[CloudEvent]]:
        """((request, response) if ``ce`` completes a pair, else None; halves that leave unpaired: the copy a
        resend replaces, and the oldest ones evicted to make room)."""
        key = self._key(ce)
        held = self._waiting.get(key)
        if held is not None and held[1].half != ce.half:
            partner = self._remove(key)
            return ((ce, partner) if ce.half == "request" else (partner, ce)), []
        evicted = [] if held is None else [self._remove(key)]
        self._waiting[key] = (now, ce)
        self._rows += _rows(ce)
        self.bytes += ce.size
        while len(self._waiting) > self.max_waiting or (len(self._waiting) > 1 and self._over_rows_or_bytes()):
            evicted.append(self._remove(next(iter(self._waiting))))
        return None, evicted

    def _over_rows_or_bytes(self) -> bool:
        return ((self.max_rows is not None and self._rows > self.max_rows)
                or (self.max_bytes is not None and self.bytes > self.max_bytes))

    def _remove(self, key: tuple[str | None, str]) -> CloudEvent:
        ce = self._waiting.pop(key)[1]
        self._rows -= _rows(ce)
        self.bytes -= ce.size
        return ce

    def restore(self, ce: CloudEvent, now: float) -> list[CloudEvent]:
        """Put back a half whose pair could not be delivered, so a resent partner still finds it; returns the
        halves that leave unpaired. If its partner was resent meanwhile and waits again, ``ce`` is not paired
        a second time: it is returned as unpaired."""
        held = self._waiting.get(self._key(ce))
        if held is not None and held[1].half != ce.half:
            return [ce]
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
