"""Events per second of one worker on real Kafka and Redis, against a decode-only baseline.

    python benchmarks/throughput.py [--envelope-events 200000] [--single-events 20000]

For each message shape (batch envelopes of 500 events; one event per message)
the same messages are (1) only decoded and validated, in this process, and
(2) consumed by one `driftline worker` from a topic already filled with them,
timed from its first saved offset to its last ("worker"), and from a quarter
of the way to the end ("steady", leaving out the consumer's start-up fetches).
Prints events/s and the ratio of each worker rate to the decode-only rate
measured in this run. Envelopes run twice: keeping every prediction for the
label join (the default), and with DRIFTLINE_KEEP_PREDICTIONS=false.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from producers import kafka  # noqa: E402
from producers.events import decode_message, encode_envelope  # noqa: E402
from producers.topics import ensure_topics  # noqa: E402
from stream_processors.config import load_settings  # noqa: E402
from stream_processors.state import RedisStateStore  # noqa: E402

N_FEATURES = 10


def make_events(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    values = rng.normal(0, 1, (n, N_FEATURES - 2)).round(6).tolist()
    cats = rng.choice(["a", "b", "c", "d"], size=(n, 2)).tolist()
    names = [f"x{j}" for j in range(N_FEATURES - 2)]
    events = []
    for i in range(n):
        features = dict(zip(names, values[i]))
        features["c0"], features["c1"] = cats[i]
        events.append({"event_id": f"e{i}", "timestamp": 1764000000.0 + i, "features": features,
                       "prediction": i % 2, "score": 0.5})
    return events


def messages_of(events: list[dict], per_message: int) -> list[bytes]:
    return [encode_envelope("bench", events[i:i + per_message], "1") for i in range(0, len(events), per_message)]


def decode_rate(messages: list[bytes], events: int, limit: int) -> float:
    started = time.perf_counter()
    decoded = sum(len(decode_message(m, limit).events) for m in messages)
    elapsed = time.perf_counter() - started
    assert decoded == events
    return events / elapsed


def worker_rate(settings, messages: list[bytes], per_message: int, timeout: float,
                keep_predictions: bool = True) -> tuple[float, float]:
    """(overall, steady) events/s: from the first saved offset, and from a quarter of the way."""
    tag = f"bench-{uuid.uuid4().hex[:8]}"
    s = settings.replace(app_id=tag, inference_topic=f"{tag}.inference", control_topic=f"{tag}.control",
                         dead_letter_topic=f"{tag}.deadletter", label_topic=f"{tag}.labels")
    ensure_topics(s.kafka, [s.inference_topic, s.control_topic, s.dead_letter_topic, s.label_topic],
                  s.topic_partitions)
    producer = kafka.producer(s.kafka, {"linger.ms": 20, "message.max.bytes": 4_000_000,
                                        "queue.buffering.max.messages": 1_000_000})
    for m in messages:
        while True:
            try:
                producer.produce(s.inference_topic, key=b"bench", value=m)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0
    with socket.socket() as sock:  # metrics on, as in production, on a free port
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = s.replace(log_level="warning", metrics_port=port, metrics_host="127.0.0.1",
                    keep_predictions=keep_predictions).to_env()
    proc = subprocess.Popen([sys.executable, "-m", "stream_processors.cli", "worker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = RedisStateStore(s.redis, s.app_id)
    tps = [(s.inference_topic, p) for p in range(s.topic_partitions)]

    def applied() -> int:
        return sum(o + 1 for o in store.offsets(tps).values())

    try:
        deadline = time.monotonic() + timeout
        while (first := applied()) == 0:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the worker did not start processing")
            time.sleep(0.01)
        t0 = time.monotonic()
        quarter, t_quarter = None, None
        while (done := applied()) < len(messages):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker applied {done}/{len(messages)} messages in {timeout}s")
            if quarter is None and done >= len(messages) // 4:
                quarter, t_quarter = done, time.monotonic()
            time.sleep(0.005)
        t1 = time.monotonic()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    overall = (len(messages) - first) * per_message / (t1 - t0)
    steady = (len(messages) - quarter) * per_message / (t1 - t_quarter) if quarter is not None else overall
    return overall, steady


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envelope-events", type=int, default=200_000)
    parser.add_argument("--envelope-size", type=int, default=500)
    parser.add_argument("--single-events", type=int, default=20_000)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    settings = load_settings()
    print(f"one worker, {N_FEATURES} features per event (8 numeric, 2 categorical), "
          f"Kafka {settings.kafka.bootstrap}, Redis {settings.redis.redacted()}")
    print(f"{'messages':<24}{'events':>8}{'decode-only ev/s':>18}{'worker ev/s':>13}{'steady ev/s':>13}"
          f"{'worker/decode':>15}{'steady/decode':>15}")
    cases = ((f"envelopes of {args.envelope_size}", args.envelope_events, args.envelope_size, True),
             (f"  same, predictions not kept", args.envelope_events, args.envelope_size, False),
             ("one event per message", args.single_events, 1, True))
    for label, n, per, keep in cases:
        events = make_events(n)
        messages = messages_of(events, per)
        decode = decode_rate(messages, n, settings.max_message_bytes)
        worker, steady = worker_rate(settings, messages, per, args.timeout, keep)
        print(f"{label:<24}{n:>8}{decode:>18,.0f}{worker:>13,.0f}{steady:>13,.0f}{worker / decode:>15.2f}"
              f"{steady / decode:>15.2f}", flush=True)


if __name__ == "__main__":
    main()
