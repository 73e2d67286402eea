"""Writes model_state_v5.json: a model state saved by the code before report series and verdicts were kept
(format 5, Driftline at commit 304e821), with labels joined and drift, and the state it reached after more
events and labels, for the loading test.

    cd <a checkout of 304e821> && PYTHONPATH=. <python> <this file> <output path>
"""

import sys

import numpy as np
import orjson

from detectors.model.label_join import Joined
from detectors.model.monitor import ModelMonitor
from stream_processors.batch import logic_params
from stream_processors.config import Settings

SETTINGS = {"window_size": 200, "edge_events": 200, "baseline_windows": 2, "cooldown_events": 300,
            "performance_window": 100, "block_size": 10, "pilot_size": 50, "baseline_blocks": 10}


def events(start: int, n: int, shift: float) -> list[dict]:
    rng = np.random.default_rng(start)
    out = []
    for i in range(start, start + n):
        x = float(rng.normal(shift, 1.0))
        out.append({"event_id": f"e{i}", "model": "m", "model_version": "1", "timestamp": 1000.0 + i,
                    "prediction": int(x > 0), "score": float(1 / (1 + np.exp(-x))),
                    "features": {"x": x, "c": "ab"[int(rng.integers(2))], "b": bool(i % 3)}})
    return out


def labels(message: list[dict], right: float, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return [Joined(e["event_id"], "1", e["prediction"], e["score"],
                   e["prediction"] if rng.random() < right else 1 - e["prediction"], e["timestamp"])
            for e in message]


monitor = ModelMonitor("m", "1", logic_params(Settings(**SETTINGS)).monitor)
for s in range(0, 1500, 100):
    message = events(s, 100, 0.0)
    monitor.apply(message)
    monitor.apply_labels(labels(message, 0.9, s))
saved = orjson.loads(orjson.dumps(monitor.to_dict()))
after = []
for s in range(1500, 2500, 100):
    message = events(s, 100, 1.5)
    joined = labels(message, 0.6, s)
    after.append({"events": message, "labels": [[j.event_id, j.prediction, j.score, j.label, j.timestamp]
                                                for j in joined]})
    monitor.apply(message)
    monitor.apply_labels(joined)
sys.stdout = open(sys.argv[1], "wb")
sys.stdout.write(orjson.dumps({"settings": SETTINGS, "saved": saved, "after": after,
                               "reached": orjson.loads(orjson.dumps(monitor.to_dict()))}))
