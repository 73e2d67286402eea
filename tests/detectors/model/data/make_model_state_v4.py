"""Writes model_state_v4.json: a model state saved by the code before parameters were saved (format 4,
Driftline at commit 367b5a6), and the state it reached after more events, for the loading test.

    cd <a checkout of 367b5a6> && .venv/bin/python <this file> <output path>
"""

import sys

import numpy as np
import orjson

from stream_processors.model_state import ModelState
from stream_processors.settings import Settings


def events(start: int, n: int, shift: float) -> list[dict]:
    rng = np.random.default_rng(start)
    out = []
    for i in range(start, start + n):
        x = float(rng.normal(shift, 1.0))
        out.append({"event_id": f"e{i}", "model": "m", "model_version": "1", "timestamp": 1000.0 + i,
                    "prediction": int(x > 0), "score": float(1 / (1 + np.exp(-x))),
                    "features": {"x": x, "c": "ab"[int(rng.integers(2))], "b": bool(i % 3)}})
    return out


settings = Settings(window_size=200, edge_events=200, baseline_windows=2, cooldown_events=300,
                    performance_window=100, block_size=10, pilot_size=50, baseline_blocks=10)
state = ModelState("m", "1", settings)
before = [events(s, 100, 0.0) for s in range(0, 1500, 100)]
after = [events(s, 100, 1.5) for s in range(1500, 2500, 100)]
for message in before:
    state.apply(message)
saved = orjson.loads(orjson.dumps(state.to_dict()))  # a copy: to_dict shares the live episodes
for message in after:
    state.apply(message)
sys.stdout = open(sys.argv[1], "wb")
sys.stdout.write(orjson.dumps({"settings": {"window_size": 200, "edge_events": 200, "baseline_windows": 2,
                                            "cooldown_events": 300, "performance_window": 100, "block_size": 10,
                                            "pilot_size": 50, "baseline_blocks": 10},
                               "saved": saved, "after": [e for m in after for e in m],
                               "reached": state.to_dict()}))
