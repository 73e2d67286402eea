"""Replay a data set (CSV or Parquet) as inference and label events on Kafka."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from detectors.kinds import BOOLEAN, NUMERIC, kind_of_values
from producers import kafka
from producers.errors import ReplayError
from producers.events import encode_envelope
from producers.kafka import KafkaConnection

__all__ = ["ColumnPlan", "ReplayError", "ReplayResult", "feature_columns", "label_events", "load_table",
           "plan_columns", "replay", "rows_to_events", "scalar_values"]


@dataclass(frozen=True)
class ColumnPlan:
    id_column: str | None
    timestamp_column: str | None
    prediction_column: str | None
    score_column: str | None
    label_column: str | None
    features: dict[str, str]
    """Feature name to kind: ``numeric``, ``categorical`` or ``boolean``."""


@dataclass(frozen=True)
class ReplayResult:
    events: int
    labels: int
    messages: int
    failed: int
    seconds: float


def load_table(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise ReplayError(f"data file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".gz") or path.name.lower().endswith(".csv.gz"):
            return pd.read_csv(path)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise ReplayError(f"cannot read {str(path)!r}: {exc}") from exc
    raise ReplayError(f"{str(path)!r}: unsupported file type {suffix!r}; use .csv, .csv.gz or .parquet")


def _kind(series: pd.Series) -> str:
    """A column's kind: from its dtype when pandas typed it, else by the one rule the worker and profiles use
    (:func:`detectors.kinds.kind_of_values`), so an object column of Python numbers is numeric here too."""
    if pd.api.types.is_bool_dtype(series):
        return BOOLEAN
    if pd.api.types.is_numeric_dtype(series):
        return NUMERIC
    return kind_of_values(series.dropna().tolist())


def plan_columns(df: pd.DataFrame, id_column: str | None = None, timestamp_column: str | None = None,
                 prediction_column: str | None = None, score_column: str | None = None,
                 label_column: str | None = None, features: list[str] | None = None,
                 require_prediction: bool = True) -> ColumnPlan:
    """Decide which column plays which role; every other column is a feature."""
    columns = set(df.columns)

    def pick(given: str | None, default: str, role: str, required: bool = False) -> str | None:
        if given is not None:
            if given not in columns:
                raise ReplayError(f"{role} column {given!r} is not in the data; columns are {sorted(map(str, columns))}")
            return given
        if default in columns:
            return default
        if required:
            raise ReplayError(f"no {role} column: the data has no {default!r} column; "
                              f"name one with --{role}-column")
        return None

    plan = dict(
        id_column=pick(id_column, "event_id", "id"),
        timestamp_column=pick(timestamp_column, "timestamp", "timestamp"),
        prediction_column=pick(prediction_column, "prediction", "prediction", required=require_prediction),
        score_column=pick(score_column, "score", "score"),
        label_column=pick(label_column, "label", "label"),
    )
    roles = {c for c in plan.values() if c is not None}
    if features is not None:
        missing = [f for f in features if f not in columns]
        if missing:
            raise ReplayError(f"feature columns {missing} are not in the data")
        names = list(features)
    else:
        names = [c for c in df.columns if c not in roles]
    if not names:
        raise ReplayError("no feature columns left after the id, timestamp, prediction, score and label columns")
    return ColumnPlan(features={str(n): _kind(df[n]) for n in names}, **plan)


def _column_values(series: pd.Series, kind: str) -> list:
    if kind == NUMERIC:
        try:
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        except (OverflowError, TypeError, ValueError) as exc:
            raise ReplayError(f"column {str(series.name)!r} holds numbers that are not 64-bit floats ({exc})") from exc
        return [None if v != v else v for v in values.tolist()]
    if kind == BOOLEAN:
        return [None if pd.isna(v) else bool(v) for v in series.tolist()]
    return [None if pd.isna(v) else str(v) for v in series.tolist()]


def feature_columns(df: pd.DataFrame, plan: ColumnPlan) -> dict[str, tuple[str, list]]:
    """Each feature's kind and values in row order (None for missing)."""
    return {name: (kind, _column_values(df[name], kind)) for name, kind in plan.features.items()}


def scalar_values(series: pd.Series) -> list:
    return [None if pd.isna(v) else (v.item() if hasattr(v, "item") else v) for v in series.tolist()]


def _timestamps(df: pd.DataFrame, plan: ColumnPlan, start: float) -> list[float]:
    if plan.timestamp_column is None:
        return [start] * len(df)
    series = df[plan.timestamp_column]
    if pd.api.types.is_numeric_dtype(series):
        return series.astype(float).tolist()
    parsed = pd.to_datetime(series, utc=True, errors="coerce")
    if parsed.isna().any():
        raise ReplayError(f"timestamp column {plan.timestamp_column!r} has values that are not dates")
    return (parsed.astype("int64") / 1e9).tolist()


def rows_to_events(df: pd.DataFrame, plan: ColumnPlan, model: str) -> tuple[list[dict], list[dict]]:
    """Inference events and (where a label column exists) label events, in row order."""
    n = len(df)
    ids = [str(v) for v in df[plan.id_column].tolist()] if plan.id_column else [f"{model}-{i}" for i in range(n)]
    times = _timestamps(df, plan, time.time())
    features = feature_columns(df, plan)
    names = list(features)
    columns = [features[name][1] for name in names]
    predictions = scalar_values(df[plan.prediction_column])
    scores = scalar_values(df[plan.score_column]) if plan.score_column else [None] * n
    events = []
    for i in range(n):
        if predictions[i] is None:
            raise ReplayError(f"row {i} (event {ids[i]!r}) has no prediction")
        event = {"event_id": ids[i], "timestamp": times[i],
                 "features": dict(zip(names, (col[i] for col in columns))), "prediction": predictions[i]}
        if scores[i] is not None:
            event["score"] = scores[i]
        events.append(event)
    labels = []
    if plan.label_column:
        for i, label in enumerate(scalar_values(df[plan.label_column])):
            if label is not None:
                labels.append({"event_id": ids[i], "label": label, "timestamp": times[i]})
    return events, labels


def label_events(df: pd.DataFrame, id_column: str | None, label_column: str | None,
                 timestamp_column: str | None = None) -> list[dict]:
    """Label events from a file of event ids and labels (and optionally timestamps), in row order."""
    id_column = id_column or "event_id"
    label_column = label_column or "label"
    for role, column in (("id", id_column), ("label", label_column)):
        if column not in df.columns:
            raise ReplayError(f"the labels file has no {role} column {column!r}; name it with --{role}-column")
    plan = ColumnPlan(id_column, timestamp_column if timestamp_column in df.columns else None, None, None,
                      label_column, {})
    times = _timestamps(df, plan, time.time())
    ids = [str(v) for v in df[id_column].tolist()]
    return [{"event_id": i, "label": y, "timestamp": t}
            for i, y, t in zip(ids, scalar_values(df[label_column]), times) if y is not None]


def _chunks(items: list[dict], size: int) -> Iterator[list[dict]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class _Progress:
    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.last = total, enabled, 0.0

    def show(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self.last < 0.2):
            return
        self.last = now
        width = 30
        filled = int(width * done / max(self.total, 1))
        sys.stderr.write(f"\rreplay [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} events")
        if final:
            sys.stderr.write("\n")
        sys.stderr.flush()


def replay(bootstrap: str | KafkaConnection, model: str, model_version: str, events: list[dict],
           labels: list[dict], inference_topic: str, label_topic: str, batch_size: int = 500, rate: float | None = None,
           progress: bool | None = None, timeout_s: float = 60.0) -> ReplayResult:
    """Send events as batch envelopes keyed by model; labels follow on their own topic.

    Never drops: when the local queue is full it waits for Kafka. Returns the
    counts; ``failed`` counts events whose delivery Kafka refused.
    """
    if batch_size < 1:
        raise ReplayError("--batch-size must be at least 1")
    if rate is not None and rate <= 0:
        raise ReplayError("--rate must be positive")
    # murmur2 is the Java clients' partitioner too: a model's inference and label events then share a
    # partition number, which the worker relies on to join them.
    connection = kafka.as_connection(bootstrap)
    producer = kafka.producer(connection, {"linger.ms": 10, "enable.idempotence": True,
                                           "partitioner": "murmur2_random", "message.max.bytes": 4_000_000,
                                           "message.timeout.ms": int(timeout_s * 1000)})
    failed = 0

    def on_delivery(err, _msg, n):
        nonlocal failed
        if err is not None:
            failed += n

    bar = _Progress(len(events), sys.stderr.isatty() if progress is None else progress)
    started = time.monotonic()
    sent = messages = 0
    for topic, kind, items, version in ((inference_topic, "inference", events, model_version),
                                        (label_topic, "label", labels, None)):
        for batch in _chunks(items, batch_size):
            value = encode_envelope(model, batch, version, kind=kind)
            n = len(batch)
            while True:
                try:
                    producer.produce(topic, value=value, key=model.encode(),
                                     on_delivery=lambda err, msg, n=n: on_delivery(err, msg, n))
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
            messages += 1
            if kind == "inference":
                sent += n
                bar.show(sent)
                if rate:
                    ahead = sent / rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
    remaining = producer.flush(timeout_s)
    bar.show(sent, final=True)
    if remaining:
        raise ReplayError(f"{remaining} messages were still undelivered after {timeout_s:.0f}s: "
                          f"is Kafka reachable at {connection.bootstrap}?")
    return ReplayResult(len(events), len(labels), messages, failed, time.monotonic() - started)
