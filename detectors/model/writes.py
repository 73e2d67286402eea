"""What the label join asks the state store to write, in domain terms.

The logic returns these; only a store turns them into Redis commands (one atomic script per batch) or
dictionary updates. Times are in seconds; ``ttl_s`` is how long the store keeps what it writes.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AwaitLabel", "CountLabels", "ForgetLabel", "JoinWrite", "KeepPrediction"]


@dataclass(frozen=True, slots=True)
class KeepPrediction:
    """Keep a prediction for labels that come later, in the bucket of hour ``hour`` (one bucket per model and
    hour, so that a batch writes one record per bucket rather than a key per event)."""

    model: str
    event_id: str
    model_version: str
    prediction: object
    score: object
    timestamp: float
    hour: int
    ttl_s: int


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


JoinWrite = KeepPrediction | AwaitLabel | ForgetLabel | CountLabels
