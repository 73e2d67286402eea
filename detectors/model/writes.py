"""What the label join asks the state store to write, in domain terms.

The logic returns these; only a store turns them into Redis commands (one atomic script per batch) or
dictionary updates. Times are in seconds; ``ttl_s`` is how long the store keeps what it writes.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AwaitLabel", "CountLabels", "ForgetLabel", "JoinWrite", "KeepPredictions", "MarkJoined"]


@dataclass(frozen=True, slots=True)
class KeepPredictions:
    """Keep one model's predictions for labels that come later, in the bucket of hour ``hour`` (one bucket per
    model and hour, so that a batch writes one record per bucket rather than a key per event): the prediction of
    ``event_ids[i]`` is ``predictions[i]``, (version, prediction, score, timestamp); of an id given twice, the
    later. One write for a bucket's events of a batch rather than one per event, so that the split by
    partition and the store's commit handle a few writes a batch, not one per event."""

    model: str
    hour: int
    ttl_s: int
    event_ids: tuple[str, ...]
    predictions: tuple[tuple[str, object, object, float], ...]

    def __post_init__(self) -> None:
        if len(self.event_ids) != len(self.predictions):
            raise ValueError(f"{len(self.event_ids)} event ids for {len(self.predictions)} predictions")
        if not set(map(type, self.event_ids)) <= {str}:  # the commit script writes them as they come
            raise TypeError("event ids must be strings")


@dataclass(frozen=True, slots=True)
class AwaitLabel:
    """Keep a label whose prediction has not been seen, until ``deadline`` (then it is due)."""

    model: str
    event_id: str
    label: object
    timestamp: float
    deadline: float
    ttl_s: int


@dataclass(frozen=True, slots=True)
class ForgetLabel:
    """A waiting label was joined or given up on: it waits no more."""

    model: str
    event_id: str


@dataclass(frozen=True, slots=True)
class CountLabels:
    """Change a model's label counts: labels waiting, given up on (unmatched), and joined."""

    model: str
    pending: int = 0
    unmatched: int = 0
    joined: int = 0


@dataclass(frozen=True, slots=True)
class MarkJoined:
    """Remember that labels of ``event_ids`` joined at time ``at``, in the model's set of joined event ids, which
    forgets those that joined before ``forget_before`` and goes when no label joined for ``ttl_s``: a later label
    of one of them is a duplicate. Apart from the kept predictions, so that a prediction sent again cannot make
    its event's label count twice."""

    model: str
    at: float
    forget_before: float
    ttl_s: int
    event_ids: tuple[str, ...]

    def __post_init__(self) -> None:
        if not set(map(type, self.event_ids)) <= {str}:
            raise TypeError("event ids must be strings")


JoinWrite = KeepPredictions | AwaitLabel | ForgetLabel | CountLabels | MarkJoined
