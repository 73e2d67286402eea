"""What ``driftline alerts`` and ``driftline status`` read and how they print it."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone

import confluent_kafka
import orjson

from producers.topics import KAFKA_CLIENT_LOG
from stream_processors.errors import DriftlineError, ServiceUnavailable, UnknownModel
from stream_processors.settings import Settings
from stream_processors.state import RedisStateStore

__all__ = ["format_alert", "iter_alerts", "model_status", "print_status"]


def iter_alerts(settings: Settings, from_beginning: bool, follow: bool, timeout_s: float | None,
                model: str | None = None, on_idle: Callable[[], bool] | None = None) -> Iterator[dict]:
    """Alerts from the control topic, in arrival order.

    Without ``follow``: everything already on the topic, then stop. With
    ``follow``: new alerts (all of them with ``from_beginning``) until
    ``timeout_s`` passes, Ctrl-C, or ``on_idle`` returns True.
    """
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": f"driftline-alerts-{uuid.uuid4().hex[:12]}",
        "auto.offset.reset": "earliest" if (from_beginning or not follow) else "latest",
        "enable.auto.commit": False,
        "socket.connection.setup.timeout.ms": 5000,
    }, logger=KAFKA_CLIENT_LOG)
    try:
        metadata = consumer.list_topics(settings.control_topic, timeout=5)
    except confluent_kafka.KafkaException:
        consumer.close()
        raise ServiceUnavailable(f"Kafka is unreachable at {settings.kafka_bootstrap}; "
                                 "start it with 'make stack-up' or set DRIFTLINE_KAFKA_BOOTSTRAP") from None
    topic = metadata.topics.get(settings.control_topic)
    if topic is None or topic.error is not None:
        consumer.close()
        if follow:
            raise ServiceUnavailable(f"control topic {settings.control_topic!r} does not exist yet: "
                                     "start a worker first ('driftline worker')")
        return
    partitions = list(topic.partitions)
    ends = {}
    for p in partitions:
        _low, high = consumer.get_watermark_offsets(confluent_kafka.TopicPartition(settings.control_topic, p),
                                                    timeout=10)
        ends[p] = high
    if not follow and _at_end({}, ends):
        consumer.close()
        return
    consumer.subscribe([settings.control_topic])
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    positions: dict[int, int] = {}
    try:
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                return
            msg = consumer.poll(0.5)
            if msg is None:
                if not follow and _at_end(positions, ends):
                    return
                if on_idle is not None and on_idle():
                    return
                continue
            if msg.error():
                continue
            positions[msg.partition()] = msg.offset() + 1
            try:
                alert = orjson.loads(msg.value())
            except orjson.JSONDecodeError:
                continue
            if model is None or alert.get("model") == model:
                yield alert
            if not follow and _at_end(positions, ends):
                return
    finally:
        consumer.close()


def _at_end(positions: dict[int, int], ends: dict[int, int]) -> bool:
    return all(positions.get(p, 0) >= end for p, end in ends.items() if end > 0)


def format_alert(alert: dict) -> str:
    """One line per message: a firing with its severity, a resolution as RESOLVED with where its episode began."""
    when = datetime.fromtimestamp(alert.get("created_at", 0), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    evidence = alert.get("evidence", {})
    feature = alert.get("feature") or "-"
    if alert.get("status") == "resolved":
        quiet = (f"{alert.get('statistic', 0):.0f} {evidence.get('quiet_unit', 'events')} "
                 "without a firing or its condition")
        return (f"{when} RESOLVED {alert.get('type')}: model {alert.get('model')} v{alert.get('model_version')} "
                f"feature {feature} by {alert.get('detector')}: episode {alert.get('episode_id')} "
                f"(began at event {alert.get('started_at_event')}) ended at event {evidence.get('last_event_id')}, "
                f"{quiet}")
    return (f"{when} {alert.get('severity', '?').upper():8} {alert.get('type')}: model {alert.get('model')} "
            f"v{alert.get('model_version')} feature {feature} by {alert.get('detector')} "
            f"(statistic {alert.get('statistic', float('nan')):.4g}, threshold {alert.get('threshold', 0):.4g}) "
            f"at event {evidence.get('last_event_id')} after {evidence.get('events_seen')} events")


def model_status(settings: Settings, model: str, version: str | None = None) -> dict:
    """The status of one model: its latest-updated version unless one is named."""
    from detectors.model.monitor import ModelMonitor
    from stream_processors.batch import logic_params

    store = RedisStateStore(settings.redis_url, settings.app_id)
    try:
        store.ping()
    except ServiceUnavailable:
        raise ServiceUnavailable(f"Redis is unreachable at {settings.redis_url}; start it with 'make stack-up' "
                                 "or set DRIFTLINE_REDIS_URL") from None
    known = store.models()
    versions = {v: t for (m, v), t in known.items() if m == model}
    if not versions:
        names = sorted({m for m, _ in known})
        hint = f"known models: {', '.join(names)}" if names else "no model has been seen yet"
        raise UnknownModel(f"unknown model {model!r} for worker app {settings.app_id!r}; {hint}")
    if version is None:
        version = max(versions, key=versions.get)
    elif version not in versions:
        raise UnknownModel(f"model {model!r} has no version {version!r}; versions seen: {sorted(versions)}")
    state = store.load([(model, version)])[(model, version)]
    try:
        status = ModelMonitor.from_dict(state, logic_params(settings).monitor).describe()
    except BaseException as exc:  # noqa: BLE001 - damaged state (river's panics included) is reported, not raised
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise DriftlineError(f"the saved state of model {model!r} version {version!r} cannot be read "
                             f"({type(exc).__name__}); the worker quarantines it and starts the version afresh "
                             "at its next event") from None
    status["quarantined"] = store.quarantined().get((model, version))
    status["versions"] = sorted(versions)
    counts = store.label_counts()
    status["labels"] = {k: counts.get(f"{model}:{k}", 0) for k in ("joined", "pending", "unmatched")}
    return status


def print_status(status: dict, out=sys.stdout) -> None:
    scenario = "against its reference profile" if status["scenario"] == "reference" else "no reference profile"
    out.write(f"model {status['model']} version {status['model_version']}: {status['events']} events, {scenario} "
              f"(versions seen: {', '.join(status['versions'])}); last event {status['last_event_id']}\n")
    quarantined = status.get("quarantined")
    if quarantined:
        at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(quarantined["at"]))
        out.write(f"  its saved {quarantined['record']} could not be loaded at {at} ({quarantined['error']}): "
                  f"it was quarantined (sha256 {quarantined['sha256'][:12]}…) and the statistics restarted then\n")
    perf, labels = status.get("performance") or {}, status.get("labels") or {}
    if labels.get("joined") or labels.get("pending") or perf.get("estimated_accuracy") is not None:
        out.write(f"  labels: {labels.get('joined', 0)} joined (all versions), {labels.get('pending', 0)} waiting "
                  f"for their prediction, {labels.get('unmatched', 0)} never matched\n")
        if perf.get("windows"):
            last = perf["windows"][-1]
            figures = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k != "labels")
            out.write(f"  performance ({perf['task']}), last window of {last['labels']} labels: {figures}\n")
        if perf.get("baseline"):
            base = ", ".join(f"{k} {v:.4g}" for k, v in perf["baseline"].items())
            out.write(f"  baseline (from the {perf['baseline_from']}): {base}\n")
        if perf.get("estimated_accuracy") is not None:
            out.write(f"  estimated accuracy from scores (last window): {perf['estimated_accuracy']:.4f}\n")
    rows = dict(status["features"])
    if status.get("prediction"):
        rows["(prediction)"] = status["prediction"]
    if status.get("score"):
        rows["(score)"] = status["score"]
    for name, f in rows.items():
        if f["kind"] == "numeric":
            out.write(f"  {name:24} numeric     n={f['count']:<8} missing={f['missing']:<6} "
                      f"mean={_fmt(f['mean'])} std={_fmt(f['std'])} min={_fmt(f['min'])} "
                      f"p50={_fmt(f['p50'])} max={_fmt(f['max'])}")
        else:
            top = sorted(f["frequencies"].items(), key=lambda kv: -kv[1])[:4]
            shown = ", ".join(f"{k}: {v}" for k, v in top)
            out.write(f"  {name:24} {f['kind']:11} n={f['count']:<8} missing={f['missing']:<6} {shown}")
        if f.get("type_mismatches"):
            out.write(f" type_mismatches={f['type_mismatches']}")
        if "drifting_since_event" in f:  # None: the episode came from a state that kept no start (format 3)
            since = f["drifting_since_event"]
            out.write(f"  [drifting since event {since}]" if since else "  [drifting; its start was not kept]")
        out.write("\n")
    _print_episodes(status.get("episodes") or {}, perf.get("improvements") or [], out)


def _print_episodes(episodes: dict, improvements: list[dict], out) -> None:
    def what(e: dict) -> str:
        return f"{e['type']} {e.get('feature') or '(model)'} by {e['detector']}"
    if episodes.get("open"):
        out.write("  open episodes:\n")
        for e in episodes["open"]:
            out.write(f"    FIRING   {what(e)}: since event {e['started_at_event'] or '?'} "
                      f"({e['firings']} firing(s))\n")
    if episodes.get("closed"):
        out.write("  closed episodes (latest last):\n")
        for e in episodes["closed"]:
            out.write(f"    RESOLVED {what(e)}: began at event {e['started_at_event'] or '?'}, "
                      f"ended at event {e['ended_at_event']}\n")
    for i in improvements[-3:]:
        out.write(f"  improvement (not an alert): {i['detector']} {i['statistic']:.4g} past {i['threshold']:.4g} "
                  f"at event {i['event_id']}\n")


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.6g}"
