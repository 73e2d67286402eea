"""Cached live states against states read back from the store, over varied random streams (drift, labels,
type mismatches, missing values, out-of-range numbers, several versions): the same saved bytes."""
import dataclasses
import random

import orjson
import pytest

from stream_processors.batch import BatchProcessor, IncomingMessage
from stream_processors.config import Settings
from stream_processors.state import MemoryStateStore

BASE = Settings(pilot_size=60, baseline_blocks=10, block_size=5, window_size=50, edge_events=100,
                category_block_size=10, category_baseline_blocks=10, performance_window=40, max_features=10)
INF, LAB = BASE.inference_topic, BASE.label_topic


def _event(rng, i, model, version, drift):
    feats = {}
    for name in ("x", "y", "z", "c", "d", "w", "v", "u"):
        r = rng.random()
        if r < 0.1:
            continue  # absent
        if name in ("x", "y", "z"):
            if r < 0.15:
                feats[name] = None
            elif r < 0.17:
                feats[name] = "oops"  # type mismatch
            else:
                feats[name] = rng.gauss(5 if drift else 0, 1 + (3 if drift and name == "y" else 0))
        elif name in ("c", "d"):
            feats[name] = rng.choice("abcde" if not drift else "aaaf")
        elif rng.random() < 0.3:
            feats[name] = rng.random()  # features appearing late, past max_features
    kind = version % 3
    if kind == 0:
        pred, score = rng.randint(0, 1), rng.random()
    elif kind == 1:
        pred, score = rng.choice(["yes", "no", "maybe"]), {"yes": 0.5, "no": 0.3, "maybe": 0.2}
    else:
        pred, score = rng.gauss(0, 1), None
    return {"schema_version": 1, "model": model, "model_version": str(version), "event_id": f"{model}-{version}-{i}",
            "timestamp": 1000.0 + i, "features": feats, "prediction": pred, "score": score}


def _label(rng, i, model, version):
    kind = version % 3
    label = rng.randint(0, 1) if kind == 0 else rng.choice(["yes", "no"]) if kind == 1 else rng.gauss(0, 1)
    return {"schema_version": 1, "kind": "label", "model": model, "event_id": f"{model}-{version}-{i}",
            "label": label, "timestamp": 1000.5 + i}


def _stream(seed, n_msgs=160):
    rng = random.Random(seed)
    msgs, offsets, pending_labels = [], {INF: 0, LAB: 0}, []
    counters = {}
    for k in range(n_msgs):
        if pending_labels and rng.random() < 0.3:
            take = pending_labels[:rng.randint(1, 30)]
            del pending_labels[:len(take)]
            body = orjson.dumps({"schema_version": 1, "kind": "label", "model": "m",
                                 "events": take}) if False else None
            for lab in take:
                msgs.append(IncomingMessage(LAB, 0, offsets[LAB], orjson.dumps(lab), b"m"))
                offsets[LAB] += 1
            continue
        version = rng.choice([0, 1, 2])
        n = rng.choice([1, 1, 3, 10, 40])
        events = []
        for _ in range(n):
            i = counters.get(version, 0)
            counters[version] = i + 1
            drift = (i // 150) % 2 == 1
            events.append(_event(rng, i, "m", version, drift))
            if rng.random() < 0.7:
                pending_labels.append(_label(rng, i, "m", version))
        from producers.events import encode_envelope
        body = encode_envelope("m", events, str(version)) if n > 1 else orjson.dumps(events[0])
        msgs.append(IncomingMessage(INF, 0, offsets[INF], body, b"m"))
        offsets[INF] += 1
    return msgs


def _run(settings, batches, profile_at=None, profile=None):
    store = MemoryStateStore(clock=lambda: 5000.0)
    processor = BatchProcessor(settings, store)
    saved, alerts = [], []
    for i, batch in enumerate(batches):
        if profile_at is not None and i == profile_at:
            store.put_profile(profile)
        outcome = processor.process(batch)
        assert store.commit(outcome)
        processor.committed(outcome.offsets)
        saved.append(outcome.states)
        alerts.append(sorted(a["id"] for a in outcome.alerts))
    return saved, alerts, store


def stream_batches(seed: int) -> list[list]:
    """The seed's random stream, cut into batches of 1 to 8 messages."""
    msgs = _stream(seed)
    rng = random.Random(seed + 100)
    batches, i = [], 0
    while i < len(msgs):
        n = rng.randint(1, 8)
        batches.append(msgs[i:i + n])
        i += n
    return batches


@pytest.mark.parametrize("seed", range(6))
def test_fuzz_same_bytes(seed, monkeypatch):
    import time as _t
    monkeypatch.setattr(_t, "time", lambda: 5000.0)
    batches = stream_batches(seed)
    a = _run(BASE, batches)
    b = _run(dataclasses.replace(BASE, state_cache_versions=0), batches)
    for k, (x, y) in enumerate(zip(a[0], b[0])):
        for key in set(x) | set(y):
            if x.get(key) != y.get(key):
                dx, dy = orjson.loads(x[key]), orjson.loads(y[key])
                diff = [f for f in dx if dx[f] != dy.get(f)]
                pytest.fail(f"batch {k} {key}: fields differ {diff}")
    assert a[1] == b[1]


def test_fuzz_stats(monkeypatch):
    import time as _t
    monkeypatch.setattr(_t, "time", lambda: 5000.0)
    msgs = _stream(1)
    batches = [msgs[i:i + 4] for i in range(0, len(msgs), 4)]
    saved, alerts, store = _run(BASE, batches)
    print("alerts", sum(map(len, alerts)), "labels", store.label_counts(),
          {k: (v["events"]) for k, v in store.model_summaries().items()})
    st = orjson.loads(saved[-1][next(iter(saved[-1]))])
    print(st["performance"].keys() if isinstance(st["performance"], dict) else None)
