"""The explicit, frozen parameters of the per-model logic, and what happens to them across a restart.

Each stateful class saves its parameters with its state. On restore, the parameters that shaped what was
learned (window sizes, detector designs, baselines: ``LEARNED``) are the saved ones, so that a version keeps
the statistics and thresholds it was built with; the parameters of decisions (alpha, cooldowns, trigger
rules, limits) are the configured ones, so that an operator can retune alerting without losing state. A
saved form from before parameters were saved uses the configured ones throughout.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["JoinParams", "MonitorParams", "PerformanceParams", "PolicyParams", "restored"]

P = TypeVar("P")


def _plain(params) -> dict:
    """The saved form: nested parameter objects are saved by their own class, tuples as lists (JSON)."""
    out = {}
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        if isinstance(value, dict):
            value = {k: list(v) if isinstance(v, tuple) else v for k, v in value.items()}
        if not dataclasses.is_dataclass(value):
            out[f.name] = value
    return out


def _loaded(value: object) -> object:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()} if isinstance(value, dict) \
        else value


def restored(cls: type[P], saved: dict | None, configured: P) -> P:
    """``configured``, with the saved values of ``cls.LEARNED`` where ``saved`` has them.

    >>> now = PolicyParams(1, 2, 3, True, False)
    >>> restored(PolicyParams, {"window_events": 9, "cooldown_events": 9}, now) == now
    True
    >>> restored(PerformanceParams, {"window": 7, "min_drop": 0.5}, PerformanceParams(5, 2, 0.1, {})).window
    7
    """
    if not saved:
        return configured
    return dataclasses.replace(configured, **{k: _loaded(saved[k]) for k in cls.LEARNED if k in saved})


@dataclass(frozen=True)
class PerformanceParams:
    """``window`` joined labels (or scored events) per performance window; ``baseline_windows`` of them make
    a production baseline; a drop of less than ``min_drop`` is never an alert; ``error_monitor`` are the
    ``NumericDriftMonitor`` arguments of the error stream."""

    window: int
    baseline_windows: int
    min_drop: float
    error_monitor: dict

    LEARNED = ("window", "baseline_windows", "error_monitor")

    def to_dict(self) -> dict:
        return _plain(self)


@dataclass(frozen=True)
class PolicyParams:
    """The retrain policy's rules (see ``RetrainPolicy``)."""

    window_events: int
    cooldown_events: int
    drift_features: int
    on_drift_alone: bool
    on_data_quality: bool

    LEARNED = ()

    def to_dict(self) -> dict:
        return _plain(self)


@dataclass(frozen=True)
class JoinParams:
    """Predictions are kept ``prediction_ttl_s`` (if ``keep_predictions``); a label waits ``label_wait_s`` for
    its prediction; at most ``sweep_limit`` labels of a model whose wait is over are settled per batch (the
    rest in the next batches)."""

    keep_predictions: bool
    prediction_ttl_s: int
    label_wait_s: float
    sweep_limit: int = 1000


@dataclass(frozen=True)
class MonitorParams:
    """A model version's monitor: ``monitor`` and ``category_monitor`` are the ``NumericDriftMonitor``
    arguments of numeric columns and of category indicators; ``window_size``, ``edge_events`` and
    ``baseline_windows`` those of its window tests; at most ``max_features`` features and
    ``category_monitors`` categories per column are followed; a window test alerts below ``window_alpha``
    divided by the tests per window; an episode closes after ``cooldown_events`` quiet events (or labels);
    a number beyond ``max_abs_number`` is refused (``ValueOutOfRange``)."""

    max_features: int
    window_size: int
    edge_events: int
    baseline_windows: int
    category_monitors: int
    cooldown_events: int
    window_alpha: float
    max_abs_number: float
    monitor: dict
    category_monitor: dict
    performance: PerformanceParams
    policy: PolicyParams

    LEARNED = ("window_size", "edge_events", "baseline_windows", "monitor", "category_monitor")

    def to_dict(self) -> dict:
        return _plain(self)

    def restored(self, saved: dict | None) -> MonitorParams:
        return restored(MonitorParams, saved, self)
