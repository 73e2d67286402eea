"""Where a worker's time goes on envelopes, stage by stage, without Kafka: ``BatchProcessor.process`` and the
commit on the real Redis (the worker's own code, one chunk at a time), beside ``json.loads`` of each chunk's
messages timed just before the chunk.

    python benchmarks/stages.py                          # 400k events of throughput.py's envelopes
    python benchmarks/stages.py --no-keep-predictions    # without the label join's kept predictions
    python benchmarks/stages.py --quick                  # 32k events (a smoke test)

The first tenth of the events warms the states up and is not counted. Each stage is timed by wrapping the
function that does it (``decode_message``, ``BatchProcessor._within_bounds``, ``GuardedMonitors.load`` and
``apply_run``, ``LabelJoin.run``, ``ModelMonitor.to_dict`` and the states' ``orjson.dumps``, ``commit_in_parts``;
a stage's time excludes the stages it calls); "the rest of process" is ``process`` less the stages inside it.
Wall-clock time; cyclic GC off during the process and the commit, as in the worker's batch thread, and a
young-generation collection after each batch, in the total (the worker's collector runs at its next
allocation instead). The Redis of the settings (``DRIFTLINE_REDIS_URL``), under an app id of the run's own
whose keys are removed at the end. What the worker adds in Kafka (its consumer, faust, the hand-offs between
its event loop and its batch thread) is not here: ``benchmarks/throughput.py --envelopes`` measures the whole.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rig import SETTINGS, machine, remove_keys  # noqa: E402
from throughput import ENVELOPE, MODELS, loan_workload, parse_count  # noqa: E402
from workload import envelopes  # noqa: E402

import stream_processors.batch as batch  # noqa: E402
from detectors.model.label_join import LabelJoin  # noqa: E402
from detectors.model.monitor import ModelMonitor  # noqa: E402
from stream_processors.batch import BatchProcessor, IncomingMessage  # noqa: E402
from stream_processors.faust_app.app import commit_in_parts  # noqa: E402
from stream_processors.guarded_monitors import GuardedMonitors  # noqa: E402
from stream_processors.state import RedisStateStore, redis_client  # noqa: E402

STAGES = [
    ("decode", "decoding and checking (decode_message)"),
    ("bounds", "the per-event bounds (EventBounds)"),
    ("apply", "applying the events (GuardedMonitors.apply_run)"),
    ("join", "the label join (LabelJoin.run)"),
    ("states", "loading, copying and saving states"),
    ("rest", "the rest of process (offsets read, grouping, figures)"),
    ("commit", "the commit (one script per partition, on Redis)"),
    ("outside", "after the commit (the collection put off)"),
]


class Timed:
    """Seconds spent in each wrapped function, by stage: a stage's own time, less that of stages called within it
    (a state copied for a retry inside ``apply_run`` counts as states, not as applying)."""

    def __init__(self) -> None:
        self.seconds: Counter = Counter()
        self._inner: list[float] = []  # per open call: time spent in the stages it called

    def wrap(self, stage: str, fn):
        seconds, inner = self.seconds, self._inner

        def timed(*args, **kwargs):
            inner.append(0.0)
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                seconds[stage] += elapsed - inner.pop()
                if inner:
                    inner[-1] += elapsed
        return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=parse_count, help="default 400k (quick: 32k); rounded down to whole "
                                                            "envelopes of every model (8,000 events)")
    parser.add_argument("--chunk-envelopes", type=int, default=64,
                        help="envelopes of 500 events per chunk (default 64: what the worker's 8 MiB cuts)")
    parser.add_argument("--partitions", type=int, default=4,
                        help="state partitions (default 4: throughput.py's topics have 4)")
    parser.add_argument("--no-keep-predictions", action="store_true",
                        help="as DRIFTLINE_KEEP_PREDICTIONS=false (the worker keeps them by default)")
    parser.add_argument("--quick", action="store_true", help="32k events, for a smoke test")
    args = parser.parse_args()
    if args.chunk_envelopes < 1 or args.partitions < 1:
        parser.error("--chunk-envelopes and --partitions must be at least 1")
    per_envelope_round = MODELS * ENVELOPE  # whole envelopes of every model: each chunk's events are known
    events = args.events if args.events is not None else (32_000 if args.quick else 400_000)
    events = events // per_envelope_round * per_envelope_round
    if events < 2 * per_envelope_round:
        parser.error(f"--events must be at least {2 * per_envelope_round:,} (two envelopes of each model)")

    timed = Timed()
    batch.decode_message = timed.wrap("decode", batch.decode_message)
    BatchProcessor._within_bounds = timed.wrap("bounds", BatchProcessor._within_bounds)
    GuardedMonitors.apply_run = timed.wrap("apply", GuardedMonitors.apply_run)
    GuardedMonitors.load = timed.wrap("states", GuardedMonitors.load)
    ModelMonitor.to_dict = timed.wrap("states", ModelMonitor.to_dict)
    LabelJoin.run = timed.wrap("join", LabelJoin.run)
    # the batch module serialises each state with orjson.dumps (and a dead letter's id, which a run here never
    # has: it stops at the first dead letter)
    batch.orjson = type("TimedOrjson", (), {"dumps": staticmethod(timed.wrap("states", orjson.dumps)),
                                            "loads": staticmethod(orjson.loads)})
    commit = timed.wrap("commit", commit_in_parts)

    messages = envelopes(loan_workload(events), ENVELOPE)
    app_id = f"bench-stages-{uuid.uuid4().hex[:8]}"
    settings = SETTINGS.replace(app_id=app_id, keep_predictions=not args.no_keep_predictions)
    try:
        store = RedisStateStore(settings.redis, app_id, args.partitions)
        store.prepare()
        processor = BatchProcessor(settings, store)
        incoming = [IncomingMessage(settings.inference_topic, store.partition_of(key.decode()), offset, value, key)
                    for offset, (key, value) in enumerate(messages)]
        # the models take turns in the topic: the warm-up loads every one of them
        warm_up = max(len(incoming) // 10, MODELS)

        def run(part: list[IncomingMessage]) -> None:
            for i in range(0, len(part), args.chunk_envelopes):
                chunk = part[i:i + args.chunk_envelopes]
                started = time.perf_counter()
                decoded = sum(len(json.loads(m.value)["events"]) for m in chunk)
                timed.seconds["json.loads"] += time.perf_counter() - started
                if decoded != len(chunk) * ENVELOPE:
                    raise RuntimeError(f"a chunk of {len(chunk)} envelopes held {decoded} events")
                started = time.perf_counter()
                gc.disable()
                try:
                    outcome = processor.process(chunk)
                    timed.seconds["process"] += time.perf_counter() - started
                    if not commit(store, outcome, args.partitions, set()):
                        raise RuntimeError("a commit was refused: another process wrote this run's keys")
                    processor.committed(outcome.offsets)
                finally:
                    gc.enable()
                gc.collect(0)  # what the batch put off, paid here rather than in the next chunk's floor
                timed.seconds["batch"] += time.perf_counter() - started
                if outcome.dead_letters:
                    raise RuntimeError(f"{len(outcome.dead_letters)} dead letters, e.g. {outcome.dead_letters[0]}")

        run(incoming[:warm_up])
        timed.seconds.clear()
        run(incoming[warm_up:])
    finally:
        remove_keys(redis_client(settings.redis), app_id)

    s = timed.seconds
    counted = (len(incoming) - warm_up) * ENVELOPE
    inside = sum(s[k] for k in ("decode", "bounds", "apply", "join", "states"))
    s["rest"] = s["process"] - inside
    s["outside"] = s["batch"] - s["process"] - s["commit"]
    total = s["batch"]
    kept = "not kept" if args.no_keep_predictions else "kept"
    print(f"{counted:,} events of {MODELS} models after a warm-up of {warm_up * ENVELOPE:,}, chunks of "
          f"{args.chunk_envelopes} envelopes of {ENVELOPE}, {args.partitions} state partitions, predictions {kept}")
    print(f"{'stage':<56}{'us/event':>10}{'share':>8}")
    print(f"{'json.loads of the same messages (the floor)':<56}{s['json.loads'] / counted * 1e6:>10.2f}")
    for key, label in STAGES:
        print(f"{label:<56}{s[key] / counted * 1e6:>10.2f}{s[key] / total:>8.0%}")
    print(f"{'all':<56}{total / counted * 1e6:>10.2f}   ratio to json.loads {s['json.loads'] / total:.3f}")
    print(machine())


if __name__ == "__main__":
    main()
