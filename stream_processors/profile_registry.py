"""Reference profiles: built from training data, registered in Redis and a compacted Kafka topic.

Redis is where workers read a profile; the compacted topic (one record per
model version, keyed ``model<TAB>version``) is the durable copy: a worker
starting against an empty Redis restores every profile from it.
"""

from __future__ import annotations

import time
import uuid

import confluent_kafka
import numpy as np
import orjson
import pandas as pd

from detectors.profile import ReferenceProfile, build_profile
from producers.replay import ColumnPlan, feature_columns, scalar_values
from producers import kafka
from producers.topics import ensure_topics
from stream_processors.errors import ServiceUnavailable
from detectors.kinds import NUMERIC, kind_of_values
from detectors.model.columns import PREDICTION, SCORE
from stream_processors.config import Settings
from stream_processors.state import RedisStateStore

__all__ = ["profile_from_table", "register_profile", "restore_profiles"]

_COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}


def _as_column(kind: str, values: list):
    if kind == NUMERIC:
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    return values


def profile_from_table(df: pd.DataFrame, plan: ColumnPlan, model: str, model_version: str,
                       settings: Settings) -> ReferenceProfile:
    columns = {name: (kind, _as_column(kind, values)) for name, (kind, values) in feature_columns(df, plan).items()}
    predictions = scalar_values(df[plan.prediction_column]) if plan.prediction_column else None
    if predictions is not None:
        kind = kind_of_values(predictions)
        columns[PREDICTION] = (kind, _as_column(kind, predictions))
    if plan.score_column:
        scores = scalar_values(df[plan.score_column])
        if kind_of_values(scores) == NUMERIC:
            columns[SCORE] = (NUMERIC, _as_column(NUMERIC, scores))
    labels = scalar_values(df[plan.label_column]) if plan.label_column else None
    return build_profile(model, model_version, columns, created_at=time.time(), window_size=settings.window_size,
                         monitor_params=settings.monitor_params(),
                         category_monitor_params=settings.category_monitor_params(),
                         category_monitors=settings.category_monitors, predictions=predictions, labels=labels)


def register_profile(settings: Settings, profile: ReferenceProfile) -> None:
    """Write the profile to the compacted topic (durable copy), then to Redis (what workers read)."""
    ensure_topics(settings.kafka, [settings.profile_topic], 1, timeout_s=10, config=_COMPACTED)
    state = profile.to_dict()
    producer = kafka.producer(settings.kafka, {"message.max.bytes": 8_000_000, "enable.idempotence": True})
    errors = []
    producer.produce(settings.profile_topic, key=f"{profile.model}\t{profile.model_version}".encode(),
                     value=orjson.dumps(state), on_delivery=lambda err, _msg: errors.append(err) if err else None)
    if producer.flush(30) or errors:
        raise ServiceUnavailable(f"Kafka did not take the profile: {errors[0] if errors else 'timed out'}")
    RedisStateStore(settings.redis, settings.app_id).put_profile(state)


def restore_profiles(settings: Settings, timeout_s: float = 30.0) -> int:
    """Copy into Redis every profile of the compacted topic that Redis lacks; returns how many."""
    consumer = kafka.consumer(settings.kafka, {"group.id": f"driftline-profiles-{uuid.uuid4().hex[:8]}",
                                               "enable.auto.commit": False})
    store = RedisStateStore(settings.redis, settings.app_id)
    restored = 0
    try:
        topic = consumer.list_topics(settings.profile_topic, timeout=10).topics.get(settings.profile_topic)
        if topic is None or topic.error is not None:
            return 0
        ends = {}
        for p in topic.partitions:
            low, high = consumer.get_watermark_offsets(confluent_kafka.TopicPartition(settings.profile_topic, p), 10)
            if high > low:
                ends[p] = high
        consumer.assign([confluent_kafka.TopicPartition(settings.profile_topic, p, confluent_kafka.OFFSET_BEGINNING)
                         for p in ends])
        latest: dict[bytes, bytes | None] = {}
        deadline = time.monotonic() + timeout_s
        done = {p: False for p in ends}
        while not all(done.values()) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            latest[msg.key()] = msg.value()
            if msg.offset() + 1 >= ends[msg.partition()]:
                done[msg.partition()] = True
        for value in latest.values():
            if value is not None and store.put_profile(orjson.loads(value), only_if_absent=True):
                restored += 1
    finally:
        consumer.close()
    return restored
