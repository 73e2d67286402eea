"""CPU time and peak memory of applying one 1 MB envelope whose events each override ``model_version``.

Run: ``python benchmarks/hostile_envelope.py`` (in-memory store, default settings).
"""

from __future__ import annotations

import resource
import time
import tracemalloc

import orjson

from stream_processors.batch import BatchProcessor, IncomingMessage
from stream_processors.config import Settings
from stream_processors.state import MemoryStateStore


def hostile_envelope(max_bytes: int = 1_000_000) -> bytes:
    events, size, i = [], 100, 0
    while True:
        event = {"event_id": f"e{i}", "model_version": f"v{i}", "timestamp": 1.0, "features": {"x": 1.0},
                 "prediction": 1}
        size += len(orjson.dumps(event)) + 1
        if size > max_bytes:
            break
        events.append(event)
        i += 1
    return orjson.dumps({"schema_version": 1, "kind": "inference", "model": "m", "events": events})


def main() -> None:
    raw = hostile_envelope()
    processor = BatchProcessor(Settings(), MemoryStateStore())
    tracemalloc.start()
    cpu = time.process_time()
    outcome = processor.process([IncomingMessage("t", 0, 0, raw, b"m")])
    cpu = time.process_time() - cpu
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    committed = sum(len(s) for s in outcome.states.values())
    print(f"{len(raw)} bytes: {outcome.events} events applied to {len(outcome.states)} versions, "
          f"{sum(d.get('count', 1) for d in outcome.dead_letters)} dead-lettered; {cpu:.2f} s CPU, "
          f"peak {peak / 1e6:.0f} MB traced (max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB), "
          f"commit {committed / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
